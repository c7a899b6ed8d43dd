package chstore

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// WritePartials stores batches' aggregates, each at its version, in one
// insert (batch.Sink). Keys that an earlier run of a batch wrote and this
// one no longer produces are written as zero rows, so a rerun with fewer
// keys leaves nothing behind. The batches' keys go to partial_keys first,
// at once with the read of the keys their earlier runs wrote there: every
// key of the partials has its row there before it is written.
func (s *Store) WritePartials(ctx context.Context, ps []batch.Partials) error {
	ids := make([]ledger.BatchID, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	var old map[ledger.BatchID][]agg.Key
	var g errgroup.Group
	g.Go(func() (err error) {
		old, err = s.PartialKeys(ctx, ids)
		return err
	})
	g.Go(func() error { return s.writePartialKeys(ctx, ps) })
	if err := g.Wait(); err != nil {
		return err
	}
	ins, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("window_partials")+
		" (window_start, event_type, country, ad_format, topic, kafka_partition, slot, sub, events, revenue_micros, version)")
	if err != nil {
		return fmt.Errorf("write partials: %w", err)
	}
	defer ins.Abort()
	for _, p := range ps {
		slot := p.ID.Slot.UTC()
		appendRow := func(k agg.Key, v agg.Totals) error {
			return ins.Append(time.Unix(k.Window, 0).UTC(), k.EventType, k.Country, k.AdFormat, p.ID.Topic, p.ID.Partition,
				slot, p.ID.Sub, uint64(v.Count), v.RevenueMicros, p.Version)
		}
		for k, v := range p.Table {
			if err := appendRow(k, v); err != nil {
				return fmt.Errorf("write partials: %w", err)
			}
		}
		zeroed := map[agg.Key]bool{}
		for _, k := range old[batchOf(p.ID)] {
			if _, ok := p.Table[k]; !ok && !zeroed[k] {
				zeroed[k] = true
				if err := appendRow(k, agg.Totals{}); err != nil {
					return fmt.Errorf("write partials: %w", err)
				}
			}
		}
	}
	return sendRows(ins, "write partials")
}

// batchOf is a batch's ID as PartialKeys keys it (its slot in UTC).
func batchOf(id ledger.BatchID) ledger.BatchID {
	id.Slot = id.Slot.UTC()
	return id
}

// writePartialKeys stores the keys of the batches' partials in
// partial_keys, the index by batch that PartialKeys reads.
func (s *Store) writePartialKeys(ctx context.Context, ps []batch.Partials) error {
	ins, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("partial_keys")+
		" (topic, kafka_partition, slot, sub, window_start, event_type, country, ad_format)")
	if err != nil {
		return fmt.Errorf("write partial keys: %w", err)
	}
	defer ins.Abort()
	for _, p := range ps {
		slot := p.ID.Slot.UTC()
		for k := range p.Table {
			if err := ins.Append(p.ID.Topic, p.ID.Partition, slot, p.ID.Sub, time.Unix(k.Window, 0).UTC(), k.EventType, k.Country, k.AdFormat); err != nil {
				return fmt.Errorf("write partial keys: %w", err)
			}
		}
	}
	return sendRows(ins, "write partial keys")
}

// sendRows sends an insert's rows, if it has any.
func sendRows(ins driver.Batch, what string) error {
	if ins.Rows() == 0 {
		return nil
	}
	if err := ins.Send(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// PartialKeys returns the keys that runs of each of the batches wrote (or
// were about to write) to the partials, in one read of partial_keys, whose
// key the batch's ID leads. A key may repeat.
func (s *Store) PartialKeys(ctx context.Context, ids []ledger.BatchID) (map[ledger.BatchID][]agg.Key, error) {
	out := map[ledger.BatchID][]agg.Key{}
	if len(ids) == 0 {
		return out, nil
	}
	// One conjunction per batch: ClickHouse narrows the read by each (a
	// list of tuples that holds a DateTime it takes neither as a literal
	// nor by the index).
	var where strings.Builder
	args := make([]any, 0, 4*len(ids))
	for i, id := range ids {
		if i > 0 {
			where.WriteString(" OR ")
		}
		where.WriteString("(topic = ? AND kafka_partition = ? AND slot = ? AND sub = ?)")
		args = append(args, id.Topic, id.Partition, id.Slot.UTC(), id.Sub)
	}
	rows, err := s.conn.Query(ctx, "SELECT topic, kafka_partition, slot, sub, window_start, event_type, country, ad_format FROM "+
		s.Table("partial_keys")+" WHERE "+where.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read partial keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id ledger.BatchID
		var w time.Time
		var k agg.Key
		if err := rows.Scan(&id.Topic, &id.Partition, &id.Slot, &id.Sub, &w, &k.EventType, &k.Country, &k.AdFormat); err != nil {
			return nil, fmt.Errorf("read partial keys: %w", err)
		}
		k.Window = w.Unix()
		id = batchOf(id)
		out[id] = append(out[id], k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partial keys: %w", err)
	}
	return out, nil
}

// sumPartials sums the partials matching where (with ? args) per window and
// key: the exact windows.
func (s *Store) sumPartials(ctx context.Context, where string, args ...any) (agg.Table, error) {
	return s.sumWindows(ctx, true, partialsSource, where, args...)
}

// windowSource is a table sumWindows reads: its rows, and their sums.
type windowSource struct{ rows, sums string }

var (
	// partialsSource: the partials, read FINAL.
	partialsSource = windowSource{"window_partials FINAL WHERE events > 0 AND ", totalsColumns}
	// totalsSource: the window totals, whose Float64 sum is stored.
	totalsSource = windowSource{"window_totals WHERE ", "sum(events), sum(revenue_micros), sum(revenue_float)"}
)

// sumWindows sums the rows of src matching where (with ? args) per window
// and key, with the revenue check unless checked is false (see readTable).
func (s *Store) sumWindows(ctx context.Context, checked bool, src windowSource, where string, args ...any) (agg.Table, error) {
	return s.readTable(ctx, checked, "SELECT window_start, event_type, country, ad_format, "+src.sums+" FROM "+s.db+"."+src.rows+
		"("+where+") GROUP BY window_start, event_type, country, ad_format", args...)
}

// totalsColumns are the sums queryTable reads: the count, the revenue in
// micro-units (an Int64 sum, which ClickHouse wraps silently past its
// range) and the same revenue summed as Float64, which cannot wrap: a
// wrapped sum is off from it by about 2^64 (checkRevenue).
const totalsColumns = "sum(events), sum(revenue_micros), sum(toFloat64(revenue_micros))"

// checkRevenue fails when ClickHouse's Int64 revenue sum wrapped: it then
// differs from the Float64 sum by far more than the Float64 sum's rounding
// (at most about 2^10 micro-units for sums below 2^63).
func checkRevenue(what string, sum int64, fsum float64) error {
	if math.Abs(float64(sum)-fsum) > 1e15 {
		return fmt.Errorf("%s: revenue sums to %.0f micro-units, past the range of an Int64 (ClickHouse's sum wrapped to %d): %w",
			what, fsum, sum, agg.ErrOverflow)
	}
	return nil
}

// queryTable runs a query whose rows are (window start, event type,
// country, ad format, totalsColumns) and returns them as a table; a sum
// that wrapped is an error (checkRevenue).
func (s *Store) queryTable(ctx context.Context, q string, args ...any) (agg.Table, error) {
	return s.readTable(ctx, true, q, args...)
}

// readTable is queryTable, whose revenue check can be left out where two
// sums computed alike are compared (both wrap alike).
func (s *Store) readTable(ctx context.Context, checked bool, q string, args ...any) (agg.Table, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	defer rows.Close()
	t := agg.Table{}
	for rows.Next() {
		var w time.Time
		var k agg.Key
		var n uint64
		var rev int64
		var frev float64
		if err := rows.Scan(&w, &k.EventType, &k.Country, &k.AdFormat, &n, &rev, &frev); err != nil {
			return nil, fmt.Errorf("read windows: %w", err)
		}
		if checked {
			if err := checkRevenue(fmt.Sprintf("window %s %s/%s/%s", w.UTC().Format("2006-01-02T15:04Z"), k.EventType, k.Country, k.AdFormat), rev, frev); err != nil {
				return nil, err
			}
		}
		k.Window = w.Unix()
		t[k] = agg.Totals{Count: int64(n), RevenueMicros: rev}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	return t, nil
}

// WriteDeadLetters stores dead letters; keyed by (topic, partition, offset),
// so writing one again replaces it.
func (s *Store) WriteDeadLetters(ctx context.Context, dls []sink.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("dead_letters")+
		" (topic, kafka_partition, kafka_offset, slot, log_time, reason, payload, payload_bytes, payload_sha256, version)")
	if err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	defer batch.Abort()
	v := ledger.Version()
	for _, d := range dls {
		if err := batch.Append(d.Topic, d.Partition, d.Offset, d.Slot.UTC(), sink.ClampTime(d.LogTime), d.Reason, string(d.Payload), d.PayloadBytes, d.PayloadSHA256, v); err != nil {
			return fmt.Errorf("write dead letters: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	return nil
}

// countDeadLetters counts the dead letters matching where (with ? args).
func (s *Store) countDeadLetters(ctx context.Context, where string, args ...any) (uint64, error) {
	var n uint64
	q := "SELECT count() FROM " + s.Table("dead_letters") + " FINAL WHERE " + where
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}
