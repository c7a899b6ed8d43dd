package chstore

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// The queries of the starter's status, wait, verify and report commands.

// PartitionProgress is how far the ledger has processed one partition,
// against a target offset.
type PartitionProgress struct {
	Target  int64
	DoneEnd int64  // the largest end offset of a done batch (0: none)
	Pending uint64 // batches not done that hold offsets below Target
}

// Caught says whether every offset below the target is processed.
func (p PartitionProgress) Caught() bool { return p.DoneEnd >= p.Target && p.Pending == 0 }

// PartitionProgress tells how far the ledger has processed partition p of
// topic: the end of its last done batch, and how many batches holding
// offsets below target are not done yet.
func (s *Store) PartitionProgress(ctx context.Context, topic string, p int32, target int64) (PartitionProgress, error) {
	pp := PartitionProgress{Target: target}
	q := "SELECT maxIf(end_offset, state = ?), countIf(state != ? AND start_offset < ? AND end_offset > start_offset) FROM " +
		s.Table("batches") + " FINAL WHERE topic = ? AND kafka_partition = ?"
	if err := s.conn.QueryRow(ctx, q, ledger.StateDone, ledger.StateDone, target, topic, p).Scan(&pp.DoneEnd, &pp.Pending); err != nil {
		return pp, fmt.Errorf("read ledger: %w", err)
	}
	return pp, nil
}

// LedgerTotals sums a topic's batches.
type LedgerTotals struct {
	Batches, Unbalanced                     uint64 // done batches; those whose offsets are not all accounted for
	Offsets, Events, Dead, Markers, Skipped uint64 // of the done batches
	Pending                                 uint64 // batches planned but not done
}

// LedgerTotals sums the ledger of topic: the done batches' offsets, events,
// dead letters, markers and skipped offsets, the done batches that do not balance,
// and the batches not done.
func (s *Store) LedgerTotals(ctx context.Context, topic string) (LedgerTotals, error) {
	var t LedgerTotals
	q := "SELECT countIf(state = ?), countIf(state = ? AND events + dead_letters + control_markers + skipped_offsets != end_offset - start_offset), " +
		"sumIf(end_offset - start_offset, state = ?), sumIf(events, state = ?), sumIf(dead_letters, state = ?), " +
		"sumIf(control_markers, state = ?), sumIf(skipped_offsets, state = ?), countIf(state != ?) FROM " + s.Table("batches") + " FINAL WHERE topic = ?"
	args := append(slices.Repeat([]any{ledger.StateDone}, 8), topic) // every state above is "done"
	var offsets int64
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&t.Batches, &t.Unbalanced, &offsets, &t.Events, &t.Dead, &t.Markers, &t.Skipped, &t.Pending); err != nil {
		return t, fmt.Errorf("read ledger totals: %w", err)
	}
	t.Offsets = uint64(offsets)
	return t, nil
}

// RecentSlots returns the ledger rows of topic's last `minutes` minutes of
// slots (counted back from its latest planned slot), newest slot first, by
// partition.
func (s *Store) RecentSlots(ctx context.Context, topic string, minutes int) ([]ledger.Batch, error) {
	minutes = min(max(minutes, 1), MaxRecentMinutes)
	return s.queryBatches(ctx, "topic = ? AND slot >= (SELECT max(slot) FROM "+s.Table("batches")+" WHERE topic = ?) - ?",
		"ORDER BY slot DESC, kafka_partition, sub", topic, topic, uint32((minutes-1)*60))
}

// MaxRecentMinutes bounds RecentSlots: 31 days of minutes.
const MaxRecentMinutes = 31 * 24 * 60

// TopicWindows returns the exact windows of topic: its partials summed per
// window and key.
func (s *Store) TopicWindows(ctx context.Context, topic string) (agg.Table, error) {
	return s.sumPartials(ctx, "topic = ?", topic)
}

// AllWindows returns the exact windows in [from, to) summed over every
// topic, from the partials.
func (s *Store) AllWindows(ctx context.Context, from, to time.Time) (agg.Table, error) {
	return s.sumPartials(ctx, "window_start >= ? AND window_start < ?", from.UTC(), to.UTC())
}

// TopicDeadLetters counts the dead letters of topic.
func (s *Store) TopicDeadLetters(ctx context.Context, topic string) (uint64, error) {
	return s.countDeadLetters(ctx, "topic = ?", topic)
}

// TextTable is the result of a query as text: its column names, and its
// rows with floats to 4 decimals and times as UTC "2006-01-02 15:04:05".
type TextTable struct {
	Columns []string
	Rows    [][]string
}

// The prototype's analysis queries, unchanged but for the table's name:
// {source} is rtb.ad_events_aggregated, or its rows of one topic.
const (
	revenueByCountrySQL = `SELECT
    country,
    sum(total_revenue) as total_revenue,
    sum(event_count) as total_events
FROM {source}
WHERE event_type = 'click'
GROUP BY country
ORDER BY total_revenue DESC`
	formatPerformanceSQL = `SELECT
    ad_format,
    sum(CASE WHEN event_type = 'impression' THEN event_count ELSE 0 END) as impressions,
    sum(CASE WHEN event_type = 'click' THEN event_count ELSE 0 END) as clicks,
    round(sum(total_revenue), 2) as revenue
FROM {source}
GROUP BY ad_format
ORDER BY revenue DESC`
	integrityCheckSQL = `SELECT
    count(*) as total_records,
    count(DISTINCT window_start) as unique_windows,
    min(window_start) as first_window,
    max(window_start) as last_window
FROM {source}`
)

// RevenueByCountry is the prototype's first analysis query: clicks'
// revenue and events per country, highest revenue first. An empty topic
// means every topic (the prototype's table); else only topic's windows.
func (s *Store) RevenueByCountry(ctx context.Context, topic string) (TextTable, error) {
	return s.analysis(ctx, revenueByCountrySQL, topic)
}

// FormatPerformance is the prototype's second analysis query: impressions,
// clicks and revenue per ad format. topic as in RevenueByCountry.
func (s *Store) FormatPerformance(ctx context.Context, topic string) (TextTable, error) {
	return s.analysis(ctx, formatPerformanceSQL, topic)
}

// IntegrityCheck is the prototype's third analysis query: rows, distinct
// windows, first and last window. topic as in RevenueByCountry.
func (s *Store) IntegrityCheck(ctx context.Context, topic string) (TextTable, error) {
	return s.analysis(ctx, integrityCheckSQL, topic)
}

// analysis runs one of the analysis queries over every topic's windows
// (topic empty) or one topic's.
func (s *Store) analysis(ctx context.Context, query, topic string) (TextTable, error) {
	source, args := s.Table("ad_events_aggregated"), []any(nil)
	if topic != "" {
		source, args = "(SELECT * FROM "+s.Table("ad_events_aggregated_by_topic")+" WHERE topic = ?)", []any{topic}
	}
	return s.textTable(ctx, strings.ReplaceAll(query, "{source}", source), args...)
}

// textTable runs q and returns its result as text.
func (s *Store) textTable(ctx context.Context, q string, args ...any) (TextTable, error) {
	var t TextTable
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return t, err
	}
	defer rows.Close()
	t.Columns = rows.Columns()
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return t, err
		}
		cells := make([]string, len(dest))
		for i, d := range dest {
			switch v := reflect.ValueOf(d).Elem().Interface().(type) {
			case float64:
				cells[i] = fmt.Sprintf("%.4f", v)
			case time.Time:
				cells[i] = v.UTC().Format("2006-01-02 15:04:05")
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		t.Rows = append(t.Rows, cells)
	}
	return t, rows.Err()
}
