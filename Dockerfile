# rtbpipe's binaries (worker, starter, generator) in one small image, for
# docker-compose.yml. Build: docker build -t rtbpipe .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/worker ./worker && \
    CGO_ENABLED=0 go build -trimpath -o /out/starter ./starter && \
    CGO_ENABLED=0 go build -trimpath -o /out/generator ./generator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/worker"]
