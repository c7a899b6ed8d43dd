package chstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/rtbpipe/rtbpipe/internal/agg"
)

// AllTopics is the topic under which the window totals hold the sums over
// every topic: the prototype's table (ad_events_aggregated) reads them.
const AllTopics = ""

// Bounds of a refresh of the window totals.
const (
	// hoursPerSwap bounds the hours (partitions) one staging insert holds:
	// current ClickHouse refuses inserts into more than 100 partitions.
	hoursPerSwap = 48
	// refreshAttempts bounds the refreshes of one set of hours whose
	// partials keep changing while it runs.
	refreshAttempts = 5
	// stageMaxAge: a staging table older than this was left by a crashed
	// refresh and is dropped by the next one.
	stageMaxAge = time.Hour
	stagePrefix = "window_totals_stage_"
)

// Hours returns the distinct hours of the windows, in order.
func Hours(windows []time.Time) []time.Time {
	set := map[time.Time]bool{}
	for _, w := range windows {
		set[w.UTC().Truncate(time.Hour)] = true
	}
	hours := slices.Collect(maps.Keys(set))
	slices.SortFunc(hours, func(a, b time.Time) int { return a.Compare(b) })
	return hours
}

// RefreshTotals rewrites the window totals of the hours from the partials,
// for topic and for AllTopics: each hour's partition is built in a staging
// table and swapped in whole (REPLACE PARTITION, atomic), then checked
// against the partials and built again while they differ (a run that wrote
// partials meanwhile swapped in an older read: the last check decides).
// Call it after the partials of the windows are written.
func (s *Store) RefreshTotals(ctx context.Context, topic string, hours []time.Time) error {
	if topic == AllTopics {
		return fmt.Errorf("refresh window totals: no topic")
	}
	// Best effort, beside the refresh: it drops only tables older than
	// stageMaxAge, never this refresh's own.
	var cleaning sync.WaitGroup
	cleaning.Go(func() { s.dropStaleStages(ctx) })
	defer cleaning.Wait()
	for chunk := range slices.Chunk(Hours(hours), hoursPerSwap) {
		if err := s.refreshHours(ctx, scopeHours{topic: chunk, AllTopics: chunk}); err != nil {
			return err
		}
	}
	return nil
}

// scopeHours are the hours of each scope (a topic, or AllTopics) that one
// staging table rebuilds.
type scopeHours map[string][]time.Time

// scopes are the scopes of sh, in order.
func (sh scopeHours) scopes() []string { return slices.Sorted(maps.Keys(sh)) }

// RefreshAllTotals rebuilds the window totals of every hour the partials
// hold (after the migration that creates them), and returns the number of
// hours of every topic refreshed.
func (s *Store) RefreshAllTotals(ctx context.Context) (int, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT topic, toStartOfHour(window_start) FROM "+s.Table("window_partials"))
	if err != nil {
		return 0, fmt.Errorf("refresh window totals: %w", err)
	}
	byTopic := map[string][]time.Time{}
	for rows.Next() {
		var topic string
		var h time.Time
		if err := rows.Scan(&topic, &h); err != nil {
			rows.Close()
			return 0, fmt.Errorf("refresh window totals: %w", err)
		}
		byTopic[topic] = append(byTopic[topic], h)
		byTopic[AllTopics] = append(byTopic[AllTopics], h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("refresh window totals: %w", err)
	}
	n := 0
	for scope, hours := range byTopic {
		for chunk := range slices.Chunk(Hours(hours), hoursPerSwap) {
			if err := s.refreshHours(ctx, scopeHours{scope: chunk}); err != nil {
				return n, err
			}
			if scope != AllTopics {
				n += len(chunk)
			}
		}
	}
	return n, nil
}

// StaleTotals returns the hours overlapping [from, to) whose window totals
// of topic, or of AllTopics, differ from the partials: what reconciliation
// repairs. On a cluster it reads them once every server holds the same
// (totalsAgreed).
func (s *Store) StaleTotals(ctx context.Context, topic string, from, to time.Time) ([]time.Time, error) {
	var hours []time.Time
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	if len(hours) == 0 {
		return nil, nil
	}
	scopes := []string{topic, AllTopics}
	s, closeConn, err := s.totalsAgreed(ctx, scopes, hours[0], hours[len(hours)-1].Add(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("check the window totals of %s: %w", topic, err)
	}
	defer closeConn()
	stale := map[time.Time]bool{}
	for _, scope := range scopes {
		for chunk := range slices.Chunk(hours, hoursPerSwap) {
			st, err := s.staleHours(ctx, scope, chunk)
			if err != nil {
				return nil, err
			}
			for _, h := range st {
				stale[h] = true
			}
		}
	}
	return Hours(slices.Collect(maps.Keys(stale))), nil
}

// refreshHours swaps in the hours of each scope until they match the
// partials, every statement on one server (oneServer).
func (s *Store) refreshHours(ctx context.Context, todo scopeHours) error {
	s, closeConn, err := s.oneServer(ctx)
	if err != nil {
		return fmt.Errorf("refresh window totals: %w", err)
	}
	defer closeConn()
	for attempt := 1; ; attempt++ {
		drop, err := s.swapIn(ctx, todo)
		if err != nil {
			drop()
			return err
		}
		// The staging table is dropped while the scopes are checked, each
		// scope at once.
		scopes := todo.scopes()
		stales := make([][]time.Time, len(scopes))
		var g errgroup.Group
		g.Go(func() error { drop(); return nil })
		for i, scope := range scopes {
			g.Go(func() (err error) {
				stales[i], err = s.staleHours(ctx, scope, todo[scope])
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		stale := scopeHours{}
		for i, scope := range scopes {
			if len(stales[i]) > 0 {
				stale[scope] = stales[i]
			}
		}
		if len(stale) == 0 {
			return nil
		}
		if attempt == refreshAttempts {
			scope := stale.scopes()[0]
			return fmt.Errorf("window totals of topic %q: hours %s still differ from the partials after %d refreshes (partials written meanwhile)",
				scope, formatHours(stale[scope]), attempt)
		}
		todo = stale
	}
}

// stageEngine is the staging table's: the totals' partitioning and order
// (sql/010_window_totals.sql), never replicated (on a cluster the totals
// are, and a staging table is the refresh's own).
const stageEngine = " ENGINE = MergeTree PARTITION BY (topic, toStartOfHour(window_start)) ORDER BY (topic, window_start, event_type, country, ad_format)"

// swapIn builds the hours of each scope from the partials in one staging
// table of its own and replaces each hour's partition of the totals with
// it; drop drops the staging table (call it once, whatever err says: a
// table it leaves is dropped by a later refresh).
func (s *Store) swapIn(ctx context.Context, todo scopeHours) (drop func(), err error) {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return func() {}, fmt.Errorf("refresh window totals: %w", err)
	}
	stage := s.Table(fmt.Sprintf("%s%d_%s", stagePrefix, time.Now().UnixNano(), hex.EncodeToString(suffix[:])))
	if err := s.conn.Exec(ctx, "CREATE TABLE "+stage+" AS "+s.Table("window_totals")+stageEngine); err != nil {
		return func() {}, fmt.Errorf("refresh window totals: staging table: %w", err)
	}
	drop = func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.conn.Exec(dctx, "DROP TABLE IF EXISTS "+stage) // else a later refresh drops it
	}
	// Each scope's insert, then its hours' swaps, at once with the others'.
	var g errgroup.Group
	for _, scope := range todo.scopes() {
		g.Go(func() error {
			where, args := scopeWhere(scope, todo[scope])
			q := "INSERT INTO " + stage + " (topic, window_start, event_type, country, ad_format, events, revenue_micros, revenue_float)" +
				" SELECT " + quote(scope) + ", window_start, event_type, country, ad_format, sum(events) AS n, sum(revenue_micros), sum(toFloat64(revenue_micros))" +
				" FROM " + s.Table("window_partials") + " FINAL WHERE " + where +
				" GROUP BY window_start, event_type, country, ad_format HAVING n > 0"
			if err := s.conn.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("refresh window totals of topic %q, %s: %w", scope, formatHours(todo[scope]), err)
			}
			for _, h := range todo[scope] {
				partition := fmt.Sprintf("(%s, toDateTime(%d))", quote(scope), h.Unix())
				if err := s.conn.Exec(ctx, "ALTER TABLE "+s.Table("window_totals")+" REPLACE PARTITION "+partition+" FROM "+stage); err != nil {
					return fmt.Errorf("refresh window totals of topic %q, hour %s: %w", scope, h.Format(hourFormat), err)
				}
			}
			return nil
		})
	}
	return drop, g.Wait()
}

// staleHours returns the hours of scope whose totals differ from the
// partials (read FINAL). A revenue sum past the range of an Int64 wraps
// alike on both sides: the totals keep it (with its Float64 sum, which the
// prototype's views show) and the exact reads refuse it (checkRevenue).
func (s *Store) staleHours(ctx context.Context, scope string, hours []time.Time) ([]time.Time, error) {
	where, args := scopeWhere(scope, hours)
	var want, have agg.Table
	var g errgroup.Group
	g.Go(func() (err error) {
		want, err = s.sumWindows(ctx, false, partialsSource, where, args...)
		return err
	})
	g.Go(func() (err error) {
		have, err = s.sumWindows(ctx, false, totalsSource, "topic = ? AND ("+where+")", append([]any{scope}, args...)...)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var stale []time.Time
	for _, d := range agg.Diff(want, have) {
		stale = append(stale, time.Unix(d.Key.Window, 0))
	}
	return Hours(stale), nil
}

// ReadTotals returns the window totals of topic (AllTopics: of every topic)
// for windows in [from, to): what verify checks. On a cluster it reads them
// once every server holds the same (totalsAgreed).
func (s *Store) ReadTotals(ctx context.Context, topic string, from, to time.Time) (agg.Table, error) {
	s, closeConn, err := s.totalsAgreed(ctx, []string{topic}, from, to)
	if err != nil {
		return nil, fmt.Errorf("read the window totals of %s: %w", topic, err)
	}
	defer closeConn()
	return s.sumWindows(ctx, true, totalsSource, "topic = ? AND window_start >= ? AND window_start < ?", topic, from.UTC(), to.UTC())
}

// scopeWhere selects the partials of scope's windows in the hours.
func scopeWhere(scope string, hours []time.Time) (string, []any) {
	var ranges []string
	var args []any
	for _, h := range hours {
		ranges = append(ranges, "(window_start >= ? AND window_start < ?)")
		args = append(args, h.UTC(), h.UTC().Add(time.Hour))
	}
	where := "(" + strings.Join(ranges, " OR ") + ")"
	if scope != AllTopics {
		where += " AND topic = ?"
		args = append(args, scope)
	}
	return where, args
}

// dropStaleStages drops the staging tables crashed refreshes left behind.
// It is best effort: a failure leaves them for the next refresh. On a
// cluster a refresh stages on the first server that answers, so they are
// dropped on every server that answers.
func (s *Store) dropStaleStages(ctx context.Context) {
	_, _ = s.onEveryServer(ctx, func(conn driver.Conn) error {
		rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND startsWith(name, ?)", s.db, stagePrefix)
		if err != nil {
			return nil // best effort: the next refresh looks again
		}
		var old []string
		for rows.Next() {
			var name string
			if rows.Scan(&name) != nil {
				break
			}
			ns, _, _ := strings.Cut(strings.TrimPrefix(name, stagePrefix), "_")
			if n, err := strconv.ParseInt(ns, 10, 64); err == nil && time.Since(time.Unix(0, n)) > stageMaxAge {
				old = append(old, name)
			}
		}
		rows.Close()
		for _, name := range old {
			_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+s.Table(name))
		}
		return nil
	})
}

const hourFormat = "2006-01-02T15Z"

func formatHours(hours []time.Time) string {
	parts := make([]string, len(hours))
	for i, h := range hours {
		parts[i] = h.UTC().Format(hourFormat)
	}
	return strings.Join(parts, ", ")
}

// quote is a ClickHouse string literal of s.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
