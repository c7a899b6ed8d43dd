package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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
