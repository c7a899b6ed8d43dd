package main

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
)

func (a *app) metricsCmd() *cobra.Command {
	promURL := config.Env("RTB_PROMETHEUS_URL", "http://127.0.0.1:9090")
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "metrics [--prometheus URL] [--window 10m]",
		Short: "Show the topic's throughput, lag and latency from the Prometheus that scrapes the workers",
		Long: "Asks Prometheus (RTB_PROMETHEUS_URL; the local stack's by default) for the topic's events and\n" +
			"dead letters per second, consumer lag, and minute end to windows written, now and over the\n" +
			"last --window, and prints them with the expressions, to paste into Prometheus or Grafana.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if window < time.Minute || window > 24*time.Hour {
				return fmt.Errorf("--window must be between 1m and 24h, got %s", window)
			}
			u, err := url.Parse(promURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("--prometheus (RTB_PROMETHEUS_URL) %q is not an http(s) URL", promURL)
			}
			c, err := api.NewClient(api.Config{Address: promURL})
			if err != nil {
				return fmt.Errorf("prometheus %s: %w", promURL, err)
			}
			return a.printHealth(cmd, promv1.NewAPI(c), promURL, window)
		},
	}
	cmd.Flags().StringVar(&promURL, "prometheus", promURL, "Prometheus base URL (env RTB_PROMETHEUS_URL)")
	cmd.Flags().DurationVar(&window, "window", 10*time.Minute, "peaks and quantiles over this last period")
	return cmd
}

func (a *app) printHealth(cmd *cobra.Command, prom promv1.API, promURL string, window time.Duration) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "topic %s, from Prometheus %s (last %s)\n", a.cfg.Topic, promURL, window)
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	now := time.Now()
	for _, q := range metrics.HealthQueries(a.cfg.Topic, window) {
		ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
		v, _, err := prom.Query(ctx, q.Expr, now)
		cancel()
		if err != nil {
			return fmt.Errorf("prometheus %s (RTB_PROMETHEUS_URL): %s: %w", promURL, q.Name, err)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", q.Name, valueOf(v), q.Expr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	graph := promURL + "/graph?g0.range_input=1h&g0.expr=" + url.QueryEscape(metrics.HealthQueries(a.cfg.Topic, window)[1].Expr)
	fmt.Fprintf(out, "events/s as a graph: %s\n", graph)
	return nil
}

// valueOf prints a query's one value, or "-" when it has none (no worker
// scraped yet, no slot closed in the window).
func valueOf(v model.Value) string {
	vec, ok := v.(model.Vector)
	if !ok || len(vec) == 0 {
		return "-"
	}
	f := float64(vec[0].Value)
	switch {
	case math.IsNaN(f):
		return "-"
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return message.NewPrinter(language.English).Sprintf("%d", int64(f))
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
	}
}
