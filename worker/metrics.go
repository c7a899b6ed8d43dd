package main

// The worker's Prometheus metrics (RTB_METRICS_ADDR): the Temporal SDK's own
// (workflow and activity tasks, polls, requests, latencies) and rtbpipe's
// (internal/metrics, rtb_*), through one Temporal metrics handler: tally
// with its Prometheus reporter.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// metricsServer is the worker's metrics: a Temporal metrics handler whose
// metrics an HTTP server exposes for Prometheus at /metrics.
type metricsServer struct {
	Handler client.MetricsHandler
	scope   tally.Scope
	closer  interface{ Close() error }
	http    *http.Server
	ln      net.Listener
}

// serveMetrics starts serving metrics on addr (host:port) at /metrics.
func serveMetrics(addr string, logger *slog.Logger) (*metricsServer, error) {
	reg := prom.NewRegistry()
	reporter, err := tallyprom.Configuration{TimerType: "histogram",
		DefaultHistogramBuckets: buckets(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)}.NewReporter(
		tallyprom.ConfigurationOptions{Registry: reg, OnError: func(err error) { logger.Warn("metrics", "err", err) }})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// Prometheus's sanitizing of names and keys, but label values (topic
	// names) keep their - and . as Prometheus allows.
	sanitize := tallyprom.DefaultSanitizerOpts
	sanitize.ValueCharacters = tally.ValidCharacters{Ranges: tally.AlphanumericRange,
		Characters: []rune{'_', '-', '.', ':', '/'}}
	scope, closer := tally.NewRootScope(tally.ScopeOptions{CachedReporter: reporter, Separator: tallyprom.DefaultSeparator,
		SanitizeOptions: &sanitize}, time.Second)
	scope = sdktally.NewPrometheusNamingScope(scope)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("metrics on RTB_METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", reporter.HTTPHandler())
	s := &metricsServer{Handler: sdktally.NewMetricsHandler(scope), scope: scope, closer: closer,
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "err", err)
		}
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return s, nil
}

// Addr is where the metrics are served.
func (s *metricsServer) Addr() string { return s.ln.Addr().String() }

// Close stops serving (after a last report).
func (s *metricsServer) Close(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	return errors.Join(err, s.closer.Close())
}

func buckets(upper ...float64) []tallyprom.HistogramObjective {
	out := make([]tallyprom.HistogramObjective, len(upper))
	for i, u := range upper {
		out[i] = tallyprom.HistogramObjective{Upper: u}
	}
	return out
}
