package chstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The analysis reads: what the dashboard and its API show. All read the
// window totals (or the views over them) for a topic and a range of
// windows, so that their cost follows the range asked for.

// WindowRow is one row of the prototype's table: a window and key.
type WindowRow struct {
	WindowStart  time.Time `json:"window_start"`
	WindowEnd    time.Time `json:"window_end"`
	EventType    string    `json:"event_type"`
	Country      string    `json:"country"`
	AdFormat     string    `json:"ad_format"`
	EventCount   uint64    `json:"event_count"`
	AvgRevenue   float64   `json:"avg_revenue"`
	TotalRevenue float64   `json:"total_revenue"`
}

// WindowRows returns the rows of the prototype's table for topic (AllTopics:
// every topic summed) and windows [from, to), in window and key order.
func (s *Store) WindowRows(ctx context.Context, topic string, from, to time.Time) ([]WindowRow, error) {
	return collect(ctx, s, "read windows of "+topic, "SELECT window_start, event_type, country, ad_format, events, revenue_float / 1000000 FROM "+
		s.Table("window_totals")+" WHERE topic = ? AND window_start >= ? AND window_start < ? "+
		"ORDER BY window_start, event_type, country, ad_format", []any{topic, from.UTC(), to.UTC()},
		func(rows driver.Rows, r *WindowRow) error {
			if err := rows.Scan(&r.WindowStart, &r.EventType, &r.Country, &r.AdFormat, &r.EventCount, &r.TotalRevenue); err != nil {
				return err
			}
			r.WindowStart = r.WindowStart.UTC()
			r.WindowEnd = r.WindowStart.Add(time.Minute)
			if r.EventCount > 0 {
				r.AvgRevenue = r.TotalRevenue / float64(r.EventCount)
			}
			return nil
		})
}

// RateRow is CTR and eCPM of one time step (a minute or an hour) and one
// value of a dimension (an ad format or a country; "" for all).
type RateRow struct {
	Time        time.Time `json:"time"`
	Key         string    `json:"key"`
	Impressions uint64    `json:"impressions"`
	Clicks      uint64    `json:"clicks"`
	Revenue     float64   `json:"revenue"`
	CTR         float64   `json:"ctr"`  // clicks / impressions; 0 without impressions
	ECPM        float64   `json:"ecpm"` // 1000 × revenue / impressions; 0 without impressions
}

// Rate dimensions and steps.
const (
	ByFormat  = "ad_format"
	ByCountry = "country"
	ByNone    = ""
)

// Rates returns CTR and eCPM of topic per step (time.Minute or time.Hour)
// and value of dim (ByFormat, ByCountry or ByNone) over windows [from, to),
// from the rates views: impressions, clicks and revenue are summed first,
// then divided (rtb.rates_by_window and rates_by_hour define them).
func (s *Store) Rates(ctx context.Context, topic string, from, to time.Time, step time.Duration, dim string) ([]RateRow, error) {
	view, tcol := "rates_by_window", "window_start"
	switch step {
	case time.Minute:
	case time.Hour:
		view, tcol = "rates_by_hour", "hour"
	default:
		return nil, fmt.Errorf("rates: step %s is neither a minute nor an hour", step)
	}
	key := "''"
	switch dim {
	case ByFormat, ByCountry:
		key = dim
	case ByNone:
	default:
		return nil, fmt.Errorf("rates: unknown dimension %q", dim)
	}
	q := fmt.Sprintf("SELECT %[1]s AS t, %[2]s AS k, sum(impressions) AS i, sum(clicks) AS c, sum(revenue) AS r, "+
		"if(i = 0, 0, c / i), if(i = 0, 0, r * 1000 / i) FROM %[3]s WHERE topic = ? AND %[1]s >= ? AND %[1]s < ? "+
		"GROUP BY t, k ORDER BY t, k", tcol, key, s.Table(view))
	return collect(ctx, s, "read rates of "+topic, q, []any{topic, from.UTC(), to.UTC()}, func(rows driver.Rows, r *RateRow) error {
		err := rows.Scan(&r.Time, &r.Key, &r.Impressions, &r.Clicks, &r.Revenue, &r.CTR, &r.ECPM)
		r.Time = r.Time.UTC()
		return err
	})
}

// Topics returns the topics the ledger has plans of.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	return collect(ctx, s, "list topics", "SELECT DISTINCT topic FROM "+s.Table("batches")+" ORDER BY topic", nil,
		func(rows driver.Rows, t *string) error { return rows.Scan(t) })
}

// MinuteRow is one window of a topic: its events per event type and its
// revenue.
type MinuteRow struct {
	Time    time.Time         `json:"time"`
	Events  map[string]uint64 `json:"events"` // by event type
	Revenue float64           `json:"revenue"`
}

// Minutes returns topic's windows [from, to) that have events, in order.
func (s *Store) Minutes(ctx context.Context, topic string, from, to time.Time) ([]MinuteRow, error) {
	type cell struct {
		t   time.Time
		typ string
		n   uint64
		rev float64
	}
	cells, err := collect(ctx, s, "read minutes of "+topic, "SELECT window_start, event_type, sum(events), sum(revenue_float) / 1000000 FROM "+
		s.Table("window_totals")+" WHERE topic = ? AND window_start >= ? AND window_start < ? "+
		"GROUP BY window_start, event_type ORDER BY window_start, event_type", []any{topic, from.UTC(), to.UTC()},
		func(rows driver.Rows, c *cell) error { return rows.Scan(&c.t, &c.typ, &c.n, &c.rev) })
	if err != nil {
		return nil, err
	}
	out := []MinuteRow{}
	for _, c := range cells {
		if len(out) == 0 || !out[len(out)-1].Time.Equal(c.t) {
			out = append(out, MinuteRow{Time: c.t.UTC(), Events: map[string]uint64{}})
		}
		m := &out[len(out)-1]
		m.Events[c.typ] += c.n
		m.Revenue += c.rev
	}
	return out, nil
}

// CountryRow is a country's events and revenue over a range.
type CountryRow struct {
	Country string  `json:"country"`
	Events  uint64  `json:"events"`
	Clicks  uint64  `json:"clicks"`
	Revenue float64 `json:"revenue"`
}

// Countries returns topic's events, clicks and revenue per country over
// windows [from, to), highest revenue first.
func (s *Store) Countries(ctx context.Context, topic string, from, to time.Time) ([]CountryRow, error) {
	return collect(ctx, s, "read countries of "+topic, "SELECT country, sum(events), sum(if(event_type = 'click', events, 0)), sum(revenue_float) / 1000000 AS r FROM "+
		s.Table("window_totals")+" WHERE topic = ? AND window_start >= ? AND window_start < ? GROUP BY country ORDER BY r DESC, country",
		[]any{topic, from.UTC(), to.UTC()}, func(rows driver.Rows, r *CountryRow) error {
			return rows.Scan(&r.Country, &r.Events, &r.Clicks, &r.Revenue)
		})
}

// ReconciliationRun is a reconciliation's row, as the dashboard shows it.
type ReconciliationRun struct {
	WorkflowID string    `json:"workflow_id"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Finished   time.Time `json:"finished"`
	Findings   uint32    `json:"findings"`
	Repaired   uint32    `json:"repaired_slots"`
	Remaining  uint32    `json:"remaining"`
}

// LastReconciliation returns topic's latest reconciliation, if any.
func (s *Store) LastReconciliation(ctx context.Context, topic string) (*ReconciliationRun, error) {
	runs, err := collect(ctx, s, "read reconciliations of "+topic, "SELECT workflow_id, range_from, range_to, finished_at, findings, repaired_slots, remaining FROM "+
		s.Table("reconciliation_runs")+" WHERE topic = ? ORDER BY finished_at DESC LIMIT 1", []any{topic},
		func(rows driver.Rows, r *ReconciliationRun) error {
			return rows.Scan(&r.WorkflowID, &r.From, &r.To, &r.Finished, &r.Findings, &r.Repaired, &r.Remaining)
		})
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// DeadLettersSince counts topic's dead letters stamped at or after since.
func (s *Store) DeadLettersSince(ctx context.Context, topic string, since time.Time) (uint64, error) {
	return s.countDeadLetters(ctx, "topic = ? AND log_time >= ?", topic, since.UTC())
}

// TotalsGeneration names the state of topic's window totals of windows
// [start, end): the names of the parts their rows are in. A refresh swaps in
// an hour's partition as new parts (and a merge renames them), so the name
// changes whenever the rows may have; it is the same while they have not.
//
// On a cluster the totals are a replica on every server, swapped on one and
// fetched by the others a moment later. The generation is then read on every
// server that answers, each part with its rows on all of them: while the
// servers differ it is one no settled state has (a part on fewer servers than
// all), so a body read meanwhile, from whichever server, is never taken as
// current; and a server that is down leaves the generation to the others
// (with their number).
func (s *Store) TotalsGeneration(ctx context.Context, topic string, start, end time.Time) (string, error) {
	q, args := s.totalsParts([]string{topic}, start, end)
	rows := map[string]uint64{}
	servers, err := s.onEveryServer(ctx, func(conn driver.Conn) error { return partRows(ctx, conn, q, args, rows) })
	if err != nil {
		return "", fmt.Errorf("read the generation of the window totals of %q: %w", topic, err)
	}
	parts := make([]string, 0, len(rows))
	for p, n := range rows {
		parts = append(parts, fmt.Sprintf("%s*%d", p, n))
	}
	slices.Sort(parts)
	// The servers that answered: a part on one of two servers, the other
	// down, is another state than a part on one of two that answer.
	return fmt.Sprintf("%d:%s", servers, strings.Join(parts, ",")), nil
}

// collect runs q with args and scans each row into a T with scan; what
// names the read in errors.
func collect[T any](ctx context.Context, s *Store, what, q string, args []any, scan func(driver.Rows, *T) error) ([]T, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
