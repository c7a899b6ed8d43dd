package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/anomaly"
	"github.com/rtbpipe/rtbpipe/internal/cache"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// memReader is an in-memory Reader: rows of one topic, and an error to
// fail with.
type memReader struct {
	rows []chstore.WindowRow
	fail error
	asks []string // topic and range of each windows read
	gen  string   // the totals' generation
}

func (m *memReader) TotalsGeneration(context.Context, string, time.Time, time.Time) (string, error) {
	return m.gen, m.fail
}

func (m *memReader) Topics(context.Context) ([]string, error) { return []string{"t"}, m.fail }
func (m *memReader) WindowRows(_ context.Context, topic string, from, to time.Time) ([]chstore.WindowRow, error) {
	m.asks = append(m.asks, topic+" "+from.Format(time.RFC3339)+" "+to.Format(time.RFC3339))
	var out []chstore.WindowRow
	for _, r := range m.rows {
		if !r.WindowStart.Before(from) && r.WindowStart.Before(to) {
			out = append(out, r)
		}
	}
	return out, m.fail
}
func (m *memReader) Minutes(context.Context, string, time.Time, time.Time) ([]chstore.MinuteRow, error) {
	return nil, m.fail
}
func (m *memReader) Rates(context.Context, string, time.Time, time.Time, time.Duration, string) ([]chstore.RateRow, error) {
	return nil, m.fail
}
func (m *memReader) Countries(context.Context, string, time.Time, time.Time) ([]chstore.CountryRow, error) {
	return nil, m.fail
}
func (m *memReader) RecentSlots(context.Context, string, int) ([]ledger.Batch, error) {
	return []ledger.Batch{{Topic: "t", Partition: 0, Slot: t0, State: ledger.StateDone, Events: 7}}, m.fail
}
func (m *memReader) DeadLettersSince(context.Context, string, time.Time) (uint64, error) {
	return 2, m.fail
}
func (m *memReader) LastReconciliation(context.Context, string) (*chstore.ReconciliationRun, error) {
	return nil, m.fail
}

func (m *memReader) Anomalies(context.Context, string, time.Time, time.Time, bool) ([]anomaly.Record, error) {
	return []anomaly.Record{{Topic: "t", Flagged: true, Flag: anomaly.Flag{Minute: t0, Scope: "country=US", Metric: anomaly.CTR,
		Value: 0.01, Baseline: 0.1, Spread: 0.005, Score: -18, Threshold: 6, Samples: 60}}}, m.fail
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// /api/windows returns the prototype's columns for the range asked, and a
// bad request says what is wrong.
func TestWindowsAPI(t *testing.T) {
	m := &memReader{rows: []chstore.WindowRow{
		{WindowStart: t0, WindowEnd: t0.Add(time.Minute), EventType: "click", Country: "US", AdFormat: "banner", EventCount: 3, AvgRevenue: 0.5, TotalRevenue: 1.5},
		{WindowStart: t0.Add(2 * time.Hour), WindowEnd: t0.Add(2*time.Hour + time.Minute), EventType: "click", Country: "US", AdFormat: "banner", EventCount: 1},
	}}
	h := (&Server{Read: m, Now: func() time.Time { return t0.Add(30 * time.Minute) }}).Handler()
	code, body := get(t, h, "/api/windows?topic=t&from=2026-11-24T09:30:00Z&to=2026-11-24T10:30:00Z")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(body), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("rows %s: %v", body, err)
	}
	for _, col := range []string{"window_start", "window_end", "event_type", "country", "ad_format", "event_count", "avg_revenue", "total_revenue"} {
		if _, ok := rows[0][col]; !ok {
			t.Errorf("row lacks the prototype's column %s: %s", col, body)
		}
	}
	if rows[0]["window_start"] != "2026-11-24T10:00:00Z" || rows[0]["event_count"] != 3.0 {
		t.Errorf("row %v", rows[0])
	}
	// Without from and to: the last hour before now.
	if code, _ := get(t, h, "/api/windows?topic=t"); code != http.StatusOK || m.asks[len(m.asks)-1] != "t 2026-11-24T09:30:00Z 2026-11-24T10:30:00Z" {
		t.Errorf("default range: %d, asked %v", code, m.asks)
	}
	for url, want := range map[string]string{
		"/api/windows?from=2026-11-24T09:30:00Z":                                 "topic is required",
		"/api/windows?topic=t&from=yesterday":                                    "not RFC 3339",
		"/api/windows?topic=t&from=2026-11-24T11:00:00Z&to=2026-11-24T10:00:00Z": "is not before",
		"/api/windows?topic=t&from=2026-10-01T00:00:00Z&to=2026-11-24T10:00:00Z": "longer than",
		"/api/rates?topic=t&step=week":                                           "want minute or hour",
		"/api/rates?topic=t&by=city":                                             "want ad_format, country or none",
		"/api/health":                                                            "topic is required",
		// Hourly rates are of whole hours: a range cut inside one gave the
		// whole hour's counts, or none.
		"/api/rates?topic=t&step=hour&from=2026-11-24T09:00:00Z&to=2026-11-24T09:25:00Z": "whole hours",
		"/api/rates?topic=t&step=hour&from=2026-11-24T09:25:00Z&to=2026-11-24T10:00:00Z": "whole hours",
		"/api/anomalies?topic=t&all=maybe":                                               "all",
		"/api/windows?topic=a/b":                                                         "topic",
		"/api/health?topic=x'%20OR%201=1--":                                              "topic",
		"/api/windows?topic=t&from=2026-11-01T00:00:00.5Z&to=2026-11-24T10:00:00Z":       "longer than 7 days",
	} {
		code, body := get(t, h, url)
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 400 saying %q", url, code, body, want)
		}
	}
}

// A server behind that fails is a 502 that says why; the page and its
// vendored chart library are served from the binary.
func TestServerErrorsAndAssets(t *testing.T) {
	h := (&Server{Read: &memReader{fail: errors.New("connect to ClickHouse at 127.0.0.1:9000: refused")}}).Handler()
	code, body := get(t, h, "/api/windows?topic=t")
	if code != http.StatusBadGateway || !strings.Contains(body, "connect to ClickHouse") {
		t.Errorf("%d %s", code, body)
	}
	for url, want := range map[string]string{"/": "<title>rtbpipe dashboard</title>", "/assets/vendor/uPlot.iife.min.js": "uPlot",
		"/assets/app.js": "refreshCharts"} {
		if code, body := get(t, h, url); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d, lacks %q", url, code, want)
		}
	}
}

// Health links each recent slot to its run in the Temporal UI.
func TestHealthLinksRuns(t *testing.T) {
	h := (&Server{Read: &memReader{}, TemporalUI: "http://ui:8233/", Namespace: "default"}).Handler()
	code, body := get(t, h, "/api/health?topic=t")
	if code != http.StatusOK || !strings.Contains(body, `"url":"http://ui:8233/namespaces/default/workflows/slot-t-2026-11-24T10:00Z"`) ||
		!strings.Contains(body, `"last_closed":"2026-11-24T10:00:00Z"`) || !strings.Contains(body, `"dead_letters_last_hour":2`) {
		t.Errorf("%d %s", code, body)
	}
}

// /api/anomalies returns the flags, each with what explains it.
func TestAnomaliesAPI(t *testing.T) {
	h := (&Server{Read: &memReader{}, Now: func() time.Time { return t0.Add(time.Minute) }}).Handler()
	code, body := get(t, h, "/api/anomalies?topic=t")
	for _, want := range []string{`"scope":"country=US"`, `"metric":"ctr"`, `"value":0.01`, `"baseline":0.1`, `"score":-18`, `"threshold":6`, `"flagged":true`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%d %s: lacks %s", code, body, want)
		}
	}
}

// The cache serves a response only while the totals have the generation it
// was made at: a run that swaps in an hour of its range changes it, and the
// next request reads the new totals.
func TestCacheServesOnlyTheCurrentGeneration(t *testing.T) {
	m := &memReader{gen: "p1", rows: []chstore.WindowRow{{WindowStart: t0, EventType: "click", Country: "US", AdFormat: "banner", EventCount: 3}}}
	h := (&Server{Read: m, Cache: cache.NewMemory(100)}).Handler()
	url := "/api/windows?topic=t&from=2026-11-24T09:30:00Z&to=2026-11-24T10:30:00Z"
	req := func() (string, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return rec.Header().Get("X-Cache"), rec.Body.String()
	}
	if c, _ := req(); c != "miss" {
		t.Fatalf("first request: %s", c)
	}
	if c, _ := req(); c != "hit" || len(m.asks) != 1 {
		t.Fatalf("second request: %s, %d reads", c, len(m.asks))
	}
	m.rows[0].EventCount, m.gen = 4, "p2" // a run swapped the hour in
	c, body := req()
	if c != "miss" || !strings.Contains(body, `"event_count":4`) {
		t.Fatalf("after the swap: %s %s", c, body)
	}
}
