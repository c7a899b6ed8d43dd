#!/usr/bin/env bash
# rtbpipe's test command (make test): static checks, unit tests, then the
# end-to-end tests against real servers (ClickHouse, Temporal dev server,
# local Kafka broker), which this script installs and starts if needed.
# A stack this script started is stopped again at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! command -v docker-compose >/dev/null 2>&1; then
	echo "installing docker-compose (apt), to check docker-compose.yml..."
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
fi

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)         # the dashboard's browser test
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server) # the dashboard's shared cache
if ((${#missing[@]})); then
	echo "installing ${missing[*]} (apt)..."
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

step "gofmt, go vet"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [[ -n "$unformatted" ]]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi
go vet ./...

step "unit tests"
go test -race -count=1 ./...
# the parser's property tests in full (under -race they check a sample: race_test.go there)
go test -count=1 ./internal/event

step "local stack"
started=0
if ! scripts/stack.sh status | grep -Eq '^kafka +running'; then
	started=1
fi
scripts/stack.sh up --no-worker
if ((started)); then
	trap 'scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
fi

step "local ClickHouse cluster (two shards and ZooKeeper, for the cluster tests)"
cluster_started=0
if ! scripts/stack.sh status | grep -Eq '^clickhouse-1 +running'; then
	cluster_started=1
fi
scripts/stack.sh up cluster

step "end-to-end tests (real ClickHouse, Temporal, Kafka broker; the ClickHouse cluster)"
RTB_E2E=1 RTB_E2E_CLUSTER=rtbpipe RTB_E2E_CLUSTER_ADDRS="${RTB_CLUSTER_ADDRS:-127.0.0.1:9101,127.0.0.1:9102}" \
	go test -count=1 -timeout 30m -parallel 4 -v ./e2e/ 2>&1 | grep --line-buffered -Ev '^\s*$'
if ((cluster_started)); then
	scripts/stack.sh down cluster # the chaos soak below runs on one server
fi

step "chaos soak, short (make chaos runs the 6-minute one)"
go run ./chaos --duration 2m --rate 1000 --kill-every 20s --stall 20s --move-leaders-every 20s
