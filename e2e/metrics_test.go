package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
)

// scrape reads the worker's metrics page.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// sumMetric sums the samples of a metric whose labels include topic.
func sumMetric(page, name, topic string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + name + `\{([^}]*)\} (\S+)$`)
	var sum float64
	found := false
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], `topic="`+topic+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// The worker serves Prometheus metrics at RTB_METRICS_ADDR: rtbpipe's
// (events, dead letters, lag, batch duration, minute end to slot closed)
// and the Temporal SDK's own.
func TestWorkerMetrics(t *testing.T) {
	e := getEnv(t)
	const addr = "127.0.0.1:29464"
	e.startWorker(t, "RTB_METRICS_ADDR="+addr)
	topic := e.newTopic(t, 2)
	base := pastBase(20)
	d := standard(101, 2, base, 2, 400)
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 3)
	var page string
	for i := 0; ; i++ { // tally reports every second
		page = scrape(t, addr)
		if n, _ := sumMetric(page, "rtb_events_total", topic); n == float64(d.n) || i == 50 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		want float64 // -1: present
	}{
		{"rtb_events_total", float64(d.n)},
		{"rtb_dead_letters_total", float64(d.malformed)},
		{"rtb_consumer_lag", -1},
		{"rtb_batch_duration_seconds_count", 6},
		{"rtb_slot_close_latency_seconds_count", 3},
	} {
		got, ok := sumMetric(page, c.name, topic)
		if !ok || (c.want >= 0 && got != c.want) {
			t.Errorf("%s for topic %s: %v (found %v), want %v", c.name, topic, got, ok, c.want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(page, "\n") {
			if strings.HasPrefix(l, "rtb_") {
				t.Log(l)
			}
		}
	}
	if !strings.Contains(page, "temporal_workflow_completed") && !strings.Contains(page, "temporal_request") {
		t.Errorf("no Temporal SDK metrics on the page")
	}
}

// promValue evaluates a PromQL expression that has one value, or false.
func promValue(t *testing.T, prom promv1.API, expr string) (float64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, err := prom.Query(ctx, expr, time.Now())
	if err != nil {
		t.Fatalf("prometheus: %s: %v", expr, err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		return 0, false
	}
	return float64(vec[0].Value), true
}

// The local stack's Prometheus scrapes every worker listed in its targets
// folder: the topic's events reach it, and starter metrics prints the
// throughput and lag from it.
func TestPrometheusScrapesTheWorker(t *testing.T) {
	e := getEnv(t).alongside(t)
	promURL := config.Env("RTB_PROMETHEUS_URL", "http://127.0.0.1:9090")
	targets := config.Env("RTB_PROMETHEUS_TARGETS", "../.local/prometheus/targets")
	c, err := promapi.NewClient(promapi.Config{Address: promURL})
	if err != nil {
		t.Fatal(err)
	}
	prom := promv1.NewAPI(c)
	const addr = "127.0.0.1:29465"
	e.startWorker(t, "RTB_METRICS_ADDR="+addr)
	target := filepath.Join(targets, fmt.Sprintf("e2e-%d.json", os.Getpid()))
	if err := os.WriteFile(target, []byte(`[{"targets": ["`+addr+`"], "labels": {"instance_name": "e2e"}}]`), 0o644); err != nil {
		t.Fatalf("the stack's Prometheus targets folder (RTB_PROMETHEUS_TARGETS): %v", err)
	}
	t.Cleanup(func() { os.Remove(target) })

	topic := e.newTopic(t, 2)
	base := pastBase(20)
	d := standard(121, 2, base, 2, 300) // late events reach the third slot
	e.produce(t, topic, d.recs)
	scraped := func(want float64) {
		t.Helper()
		expr := fmt.Sprintf(`sum(rtb_events_total{topic=%q})`, topic)
		for i := 0; ; i++ { // file discovery and scrapes every 5 s
			got, ok := promValue(t, prom, expr)
			if ok && got == want {
				return
			}
			if i == 120 {
				t.Fatalf("Prometheus %s: %s = %v (found %v) after 60 s, want %v", promURL, expr, got, ok, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// In two steps, so that Prometheus sees the counter grow.
	first := e.runSlot(t, topic, base)
	scraped(float64(first.Events))
	e.runSlots(t, topic, base.Add(time.Minute), 2)
	scraped(float64(d.n))
	if n, ok := promValue(t, prom, fmt.Sprintf(`sum(rtb_consumer_lag{topic=%q})`, topic)); !ok || n < 0 {
		t.Errorf("consumer lag %v (found %v)", n, ok)
	}

	// The peak is over a 5-second grid: it has a value once a grid point
	// follows two scrapes of the counter.
	peak := metrics.HealthQueries(topic, 10*time.Minute)[2]
	for i := 0; ; i++ {
		if v, ok := promValue(t, prom, peak.Expr); ok && v > 0 {
			break
		}
		if i == 60 {
			t.Fatalf("%s: no value after 30 s", peak.Expr)
		}
		time.Sleep(500 * time.Millisecond)
	}

	bin := build(t, "starter")
	out, err := exec.Command(bin, "metrics", "--topic", topic, "--prometheus", promURL).CombinedOutput()
	if err != nil {
		t.Fatalf("starter metrics: %v\n%s", err, out)
	}
	for _, row := range []struct {
		name     string
		positive bool
	}{{"workers scraped and up", true}, {peak.Name, true}, {"consumer lag now (offsets)", false}} {
		m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(row.name) + ` +([0-9.,]+) `).FindStringSubmatch(string(out))
		if m == nil || (row.positive && m[1] == "0") {
			t.Errorf("starter metrics: no %q figure (positive: %v):\n%s", row.name, row.positive, out)
		}
	}
	// A Prometheus that is not there is one clear line.
	out, err = exec.Command(bin, "metrics", "--topic", topic, "--prometheus", "http://127.0.0.1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "RTB_PROMETHEUS_URL") {
		t.Errorf("starter metrics against no Prometheus: %v\n%s", err, out)
	}
}
