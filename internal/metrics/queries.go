package metrics

import (
	"fmt"
	"strconv"
	"time"
)

// Job is the Prometheus job that scrapes the workers, in the local stack's
// and docker-compose's Prometheus configurations alike.
const Job = "rtbpipe-worker"

// Query is a PromQL expression of the pipeline's health.
type Query struct {
	Name string // what it measures, for people
	Expr string
}

// HealthQueries are the expressions `starter metrics` evaluates for a topic,
// peaks and quantiles over the last window: throughput, dead letters, lag,
// minute end to windows written, and the workers scraped.
func HealthQueries(topic string, window time.Duration) []Query {
	t := "topic=" + strconv.Quote(topic)
	w := promDuration(window)
	rate := fmt.Sprintf("sum(rate(%s_total{%s}[1m]))", Events, t)
	// A partition's lag is what its latest plan saw; several workers may
	// have planned it, the highest is the cautious figure.
	lag := fmt.Sprintf("sum(max by (partition) (%s{%s}))", Lag, t)
	latency := func(q string) string {
		return fmt.Sprintf("histogram_quantile(%s, sum by (le) (rate(%s_seconds_bucket{%s}[%s])))", q, SlotLatency, t, w)
	}
	return []Query{
		{"workers scraped and up", fmt.Sprintf("sum(up{job=%q})", Job)},
		{"events/s now (1-minute rate)", rate},
		{"events/s peak over " + w, fmt.Sprintf("max_over_time((%s)[%s:5s])", rate, w)},
		{"dead letters/s now", fmt.Sprintf("sum(rate(%s_total{%s}[1m]))", DeadLetters, t)},
		{"consumer lag now (offsets)", lag},
		{"consumer lag peak over " + w, fmt.Sprintf("max_over_time((%s)[%s:5s])", lag, w)},
		{"minute end → windows, p50 (s)", latency("0.5")},
		{"minute end → windows, p99 (s)", latency("0.99")},
	}
}

// promDuration writes d as PromQL does: whole seconds, "10m" or "90s".
func promDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s%60 == 0 {
		return fmt.Sprintf("%dm", s/60)
	}
	return fmt.Sprintf("%ds", s)
}
