// Package dashboard serves rtbpipe's dashboard: a web page (assets embedded
// in the binary, uPlot vendored from the npm registry) and its JSON API,
// both reading the window totals through a narrow Reader.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/anomaly"
	"github.com/rtbpipe/rtbpipe/internal/cache"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/workflows"
)

//go:embed assets
var assets embed.FS

// Reader is what the dashboard reads; *chstore.Store implements it.
type Reader interface {
	Topics(ctx context.Context) ([]string, error)
	WindowRows(ctx context.Context, topic string, from, to time.Time) ([]chstore.WindowRow, error)
	Minutes(ctx context.Context, topic string, from, to time.Time) ([]chstore.MinuteRow, error)
	Rates(ctx context.Context, topic string, from, to time.Time, step time.Duration, dim string) ([]chstore.RateRow, error)
	Countries(ctx context.Context, topic string, from, to time.Time) ([]chstore.CountryRow, error)
	RecentSlots(ctx context.Context, topic string, minutes int) ([]ledger.Batch, error)
	DeadLettersSince(ctx context.Context, topic string, since time.Time) (uint64, error)
	LastReconciliation(ctx context.Context, topic string) (*chstore.ReconciliationRun, error)
	Anomalies(ctx context.Context, topic string, from, to time.Time, all bool) ([]anomaly.Record, error)
	// TotalsGeneration names the state of topic's window totals of windows
	// [from, to): it changes whenever a run swaps in one of their hours.
	TotalsGeneration(ctx context.Context, topic string, from, to time.Time) (string, error)
}

// MaxRange bounds the range one API request reads.
const MaxRange = 7 * 24 * time.Hour

// Server is the dashboard's HTTP handler.
type Server struct {
	Read Reader
	// Lag returns each partition's consumer lag (offsets: high watermark
	// minus the end of the latest plan); nil leaves it out.
	Lag func(ctx context.Context, topic string) (map[int32]int64, error)
	// TemporalUI is the Temporal UI's base URL and Namespace the runs'
	// namespace, for the links to the runs.
	TemporalUI, Namespace string
	Log                   *slog.Logger
	Now                   func() time.Time // nil: time.Now
	// Cache, if set, keeps the responses read from the window totals; an
	// entry is served only while the totals of its range have the
	// generation it was made at (see cached).
	Cache cache.Store
}

// Handler routes the page, its assets and the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.FileServerFS(assets))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, assets, "assets/index.html")
	})
	mux.HandleFunc("GET /api/topics", s.api(func(ctx context.Context, _ url.Values) (any, error) { return s.Read.Topics(ctx) }))
	mux.HandleFunc("GET /api/windows", s.cached(func(ctx context.Context, q query) (any, error) {
		return s.Read.WindowRows(ctx, q.topic, q.from, q.to)
	}))
	mux.HandleFunc("GET /api/minutes", s.cached(func(ctx context.Context, q query) (any, error) {
		return s.Read.Minutes(ctx, q.topic, q.from, q.to)
	}))
	mux.HandleFunc("GET /api/countries", s.cached(func(ctx context.Context, q query) (any, error) {
		return s.Read.Countries(ctx, q.topic, q.from, q.to)
	}))
	mux.HandleFunc("GET /api/rates", s.cached(func(ctx context.Context, q query) (any, error) {
		step := time.Minute
		switch v := q.values.Get("step"); v {
		case "", "minute":
		case "hour":
			step = time.Hour
			if !q.from.Equal(q.from.Truncate(time.Hour)) || !q.to.Equal(q.to.Truncate(time.Hour)) {
				return nil, badRequest("step=hour reads whole hours: from %s and to %s must be on the hour",
					q.from.Format(time.RFC3339), q.to.Format(time.RFC3339))
			}
		default:
			return nil, badRequest("step %q: want minute or hour", v)
		}
		dim := q.values.Get("by")
		switch dim {
		case chstore.ByFormat, chstore.ByCountry:
		case "", "none":
			dim = chstore.ByNone
		default:
			return nil, badRequest("by %q: want ad_format, country or none", dim)
		}
		return s.Read.Rates(ctx, q.topic, q.from, q.to, step, dim)
	}))
	mux.HandleFunc("GET /api/anomalies", s.ranged(func(ctx context.Context, q query) (any, error) {
		all := false
		if v := q.values.Get("all"); v != "" {
			var err error
			if all, err = strconv.ParseBool(v); err != nil {
				return nil, badRequest("all %q: want true or false (1 or 0)", v)
			}
		}
		return s.Read.Anomalies(ctx, q.topic, q.from, q.to, all)
	}))
	mux.HandleFunc("GET /api/health", s.api(s.health))
	return mux
}

// query is a request's topic and range [from, to).
type query struct {
	topic    string
	from, to time.Time
	values   url.Values
}

// errBadRequest marks errors of the request, answered 400.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// topicOf reads the topic a request names, refusing one Kafka would not
// allow (config.CheckTopic).
func topicOf(v url.Values) (string, error) {
	topic := v.Get("topic")
	if topic == "" {
		return "", badRequest("topic is required (e.g. ?topic=ad-events)")
	}
	if err := config.CheckTopic(topic); err != nil {
		return "", badRequest("%v", err)
	}
	return topic, nil
}

// parseQuery reads topic, from and to (RFC 3339; to defaults to now, from
// to an hour before to).
func (s *Server) parseQuery(v url.Values) (query, error) {
	q := query{values: v}
	var err error
	if q.topic, err = topicOf(v); err != nil {
		return q, err
	}
	q.to = s.now().UTC()
	if t := v.Get("to"); t != "" {
		var err error
		if q.to, err = time.Parse(time.RFC3339, t); err != nil {
			return q, badRequest("to %q is not RFC 3339 (e.g. 2026-11-24T10:00:00Z)", t)
		}
	}
	q.from = q.to.Add(-time.Hour)
	if f := v.Get("from"); f != "" {
		var err error
		if q.from, err = time.Parse(time.RFC3339, f); err != nil {
			return q, badRequest("from %q is not RFC 3339 (e.g. 2026-11-24T09:00:00Z)", f)
		}
	}
	switch {
	case !q.from.Before(q.to):
		return q, badRequest("from %s is not before to %s", q.from.Format(time.RFC3339), q.to.Format(time.RFC3339))
	case q.to.Sub(q.from) > MaxRange:
		return q, badRequest("the range [%s, %s) is longer than %d days: ask for less", q.from.UTC().Format(time.RFC3339),
			q.to.UTC().Format(time.RFC3339), MaxRange/(24*time.Hour))
	}
	q.from, q.to = q.from.UTC(), q.to.UTC()
	return q, nil
}

func (s *Server) ranged(fn func(context.Context, query) (any, error)) http.HandlerFunc {
	return s.api(func(ctx context.Context, v url.Values) (any, error) {
		q, err := s.parseQuery(v)
		if err != nil {
			return nil, err
		}
		return fn(ctx, q)
	})
}

// api answers with fn's result as JSON, or {"error": ...}: 400 for a bad
// request, 502 when the servers behind failed.
func (s *Server) api(fn func(context.Context, url.Values) (any, error)) http.HandlerFunc {
	return s.respond(func(ctx context.Context, r *http.Request) ([]byte, string, error) {
		res, err := fn(ctx, r.URL.Query())
		if err != nil {
			return nil, "", err
		}
		b, err := json.Marshal(res)
		return b, "", err
	})
}

// cached is ranged with the cache: the generation of the range's window
// totals is read first, then the entry of the request is served if it was
// made at that generation, else the response is made and stored with it.
// A run that swaps in an hour of the range changes the generation before
// any read can see the new totals, so an entry made from the totals before
// the swap is never served after it; an entry made after it is.
func (s *Server) cached(fn func(context.Context, query) (any, error)) http.HandlerFunc {
	return s.respond(func(ctx context.Context, r *http.Request) ([]byte, string, error) {
		q, err := s.parseQuery(r.URL.Query())
		if err != nil {
			return nil, "", err
		}
		compute := func() ([]byte, error) {
			res, err := fn(ctx, q)
			if err != nil {
				return nil, err
			}
			return json.Marshal(res)
		}
		if s.Cache == nil {
			b, err := compute()
			return b, "", err
		}
		gen, err := s.Read.TotalsGeneration(ctx, q.topic, q.from, q.to)
		if err != nil {
			return nil, "", err
		}
		key := r.URL.Path + "?" + r.URL.Query().Encode() // Encode sorts the parameters
		if g, body, ok, err := s.Cache.Get(ctx, key); err != nil {
			s.warn("dashboard cache: get", err) // served without the cache
		} else if ok && g == gen {
			return body, "hit", nil
		}
		b, err := compute()
		if err != nil {
			return nil, "", err
		}
		if err := s.Cache.Put(ctx, key, gen, b); err != nil {
			s.warn("dashboard cache: put", err)
		}
		return b, "miss", nil
	})
}

// respond writes fn's JSON body (and X-Cache, when it says hit or miss),
// or its error as {"error": ...}: 400 for a bad request, 502 when the
// servers behind failed.
func (s *Server) respond(fn func(context.Context, *http.Request) ([]byte, string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		body, hit, err := fn(ctx, r)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			err = chstore.WithHint(err)
			code := http.StatusBadGateway
			if errors.Is(err, errBadRequest) {
				code = http.StatusBadRequest
			} else if s.Log != nil {
				s.Log.Error("dashboard API", "path", r.URL.Path, "err", err)
			}
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		if hit != "" {
			w.Header().Set("X-Cache", hit)
		}
		if _, err := w.Write(append(body, '\n')); err != nil {
			s.warn("dashboard API: write", err)
		}
	}
}

func (s *Server) warn(msg string, err error) {
	if s.Log != nil {
		s.Log.Warn(msg, "err", err)
	}
}

// Health is the pipeline's state of a topic, as the dashboard shows it.
type Health struct {
	Topic              string                     `json:"topic"`
	Slots              []SlotLine                 `json:"slots"` // newest first
	LastClosed         *time.Time                 `json:"last_closed,omitempty"`
	Lag                map[int32]int64            `json:"lag,omitempty"`
	LagError           string                     `json:"lag_error,omitempty"`
	DeadLettersHour    uint64                     `json:"dead_letters_last_hour"`
	LastReconciliation *chstore.ReconciliationRun `json:"last_reconciliation,omitempty"`
	ReconciliationURL  string                     `json:"reconciliation_url,omitempty"`
}

// SlotLine is a recent slot with the link to its run.
type SlotLine struct {
	ledger.SlotSummary
	URL string `json:"url"`
}

func (s *Server) health(ctx context.Context, v url.Values) (any, error) {
	topic, err := topicOf(v)
	if err != nil {
		return nil, err
	}
	h := Health{Topic: topic, Slots: []SlotLine{}}
	bs, err := s.Read.RecentSlots(ctx, topic, 10)
	if err != nil {
		return nil, err
	}
	for _, sum := range ledger.Summarise(bs) {
		h.Slots = append(h.Slots, SlotLine{SlotSummary: sum, URL: s.runURL(workflows.SlotWorkflowID(topic, sum.Slot))})
		if sum.State == ledger.StateDone && h.LastClosed == nil {
			t := sum.Slot
			h.LastClosed = &t
		}
	}
	if h.DeadLettersHour, err = s.Read.DeadLettersSince(ctx, topic, s.now().Add(-time.Hour)); err != nil {
		return nil, err
	}
	if h.LastReconciliation, err = s.Read.LastReconciliation(ctx, topic); err != nil {
		return nil, err
	}
	if h.LastReconciliation != nil {
		h.ReconciliationURL = s.runURL(h.LastReconciliation.WorkflowID)
	}
	if s.Lag != nil {
		if h.Lag, err = s.Lag(ctx, topic); err != nil { // the rest still tells
			h.LagError = err.Error()
		}
	}
	return h, nil
}

// runURL links to a workflow's runs in the Temporal UI.
func (s *Server) runURL(id string) string { return workflows.UIURL(s.TemporalUI, s.Namespace, id) }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
