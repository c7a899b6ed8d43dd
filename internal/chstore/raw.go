package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// RawInsert is one INSERT into the raw archive that stays open across
// blocks. ClickHouse gathers the blocks of an insert into parts of up to
// min_insert_block_size_rows, so a batch writes a few large parts, not one
// small part (some 40 files) per block, and the merges that follow have far
// less to do. What was sent is known to be stored only once CommitRaw
// returns nil. An insert that ends otherwise may still have stored some or
// all of it (ClickHouse 18.16 completes an insert whose client goes away),
// which is harmless: those rows are what the record at each offset gives,
// and the retry writes them again (the table keeps one row per offset).
type RawInsert struct {
	batch driver.Batch
}

// SendRaw sends the buffered events as one block of the insert (opening it
// if needed) and empties the buffer. Unlike the commit, sending a block does
// not watch ctx: a server that stops reading holds it until the
// connection's timeouts end it.
func (s *Store) SendRaw(ctx context.Context, ins *RawInsert, r *sink.RawBuffer) error {
	if r.Len() == 0 {
		return nil
	}
	if ins.batch == nil {
		b, err := s.prepareRaw(ctx)
		if err != nil {
			return err
		}
		ins.batch = b
	}
	if err := appendRaw(ins.batch, r, ledger.Version()); err != nil {
		ins.Abort()
		return err
	}
	if err := ins.batch.Flush(); err != nil {
		ins.Abort()
		return fmt.Errorf("write raw archive: %w", err)
	}
	r.Reset()
	return nil
}

// WriteRaw stores the buffered events of bufs in one insert (batch.Sink);
// it leaves the buffers as they are.
func (s *Store) WriteRaw(ctx context.Context, bufs []*sink.RawBuffer) error {
	b, err := s.prepareRaw(ctx)
	if err != nil {
		return err
	}
	defer b.Abort()
	v := ledger.Version()
	for _, r := range bufs {
		if err := appendRaw(b, r, v); err != nil {
			return err
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write raw archive: %w", err)
	}
	return nil
}

func (s *Store) prepareRaw(ctx context.Context) (driver.Batch, error) {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("ad_events_raw")+" ("+sink.RawColumns+")")
	if err != nil {
		return nil, fmt.Errorf("write raw archive: %w", err)
	}
	return b, nil
}

// appendRaw appends r's events to an insert's columns, at version.
func appendRaw(b driver.Batch, r *sink.RawBuffer, version uint64) error {
	for i, col := range r.Columns(version) {
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("write raw archive, column %d: %w", i, err)
		}
	}
	return nil
}

// CommitRaw sends the buffered events and ends the insert: when it returns
// nil, everything sent through ins is stored.
func (s *Store) CommitRaw(ctx context.Context, ins *RawInsert, r *sink.RawBuffer) error {
	if err := s.SendRaw(ctx, ins, r); err != nil {
		return err
	}
	if ins.batch == nil {
		return nil
	}
	err := ins.batch.Send()
	ins.batch = nil
	if err != nil {
		return fmt.Errorf("write raw archive: %w", err)
	}
	return nil
}

// Open says whether an insert is open (sent blocks not yet committed).
func (ins *RawInsert) Open() bool { return ins.batch != nil }

// Abort ends an open insert without committing it: what it sent may or may
// not be stored.
func (ins *RawInsert) Abort() {
	if ins.batch != nil {
		_ = ins.batch.Abort()
		ins.batch = nil
	}
}

// AggregateRaw recomputes a batch's windows from the raw archive for the
// offsets [start, end) (ClickHouse does the grouping), and counts its dead
// letters.
func (s *Store) AggregateRaw(ctx context.Context, id ledger.BatchID, start, end int64) (agg.Table, sink.RawOffsets, error) {
	var ro sink.RawOffsets
	slot := id.Slot.UTC()
	rows, err := s.conn.Query(ctx, "SELECT toStartOfMinute(timestamp) AS w, event_type, country, ad_format, count(), sum(revenue_micros), sum(toFloat64(revenue_micros)),"+
		" min(timestamp), max(timestamp), countIf(timestamp < ?), countIf(timestamp >= ?) FROM "+s.Table("ad_events_raw")+
		" FINAL WHERE topic = ? AND kafka_partition = ? AND slot = ? AND kafka_offset >= ? AND kafka_offset < ?"+
		" GROUP BY w, event_type, country, ad_format", slot, slot.Add(time.Minute), id.Topic, id.Partition, slot, start, end)
	if err != nil {
		return nil, ro, fmt.Errorf("read raw archive: %w", err)
	}
	defer rows.Close()
	t := agg.Table{}
	for rows.Next() {
		var w, lo, hi time.Time
		var k agg.Key
		var n, late, early uint64
		var rev int64
		var frev float64
		if err := rows.Scan(&w, &k.EventType, &k.Country, &k.AdFormat, &n, &rev, &frev, &lo, &hi, &late, &early); err != nil {
			return nil, ro, fmt.Errorf("read raw archive: %w", err)
		}
		if err := checkRevenue(fmt.Sprintf("raw archive, window %s %s/%s/%s", w.UTC().Format("2006-01-02T15:04Z"), k.EventType, k.Country, k.AdFormat), rev, frev); err != nil {
			return nil, ro, err
		}
		k.Window = w.Unix()
		t[k] = agg.Totals{Count: int64(n), RevenueMicros: rev}
		ro.Events += n
		ro.Late += late
		ro.Early += early
		if ro.MinEventTime.IsZero() || lo.Before(ro.MinEventTime) {
			ro.MinEventTime = lo.UTC()
		}
		if hi.After(ro.MaxEventTime) {
			ro.MaxEventTime = hi.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return nil, ro, fmt.Errorf("read raw archive: %w", err)
	}
	ro.DeadLetters, err = s.countDeadLetters(ctx, "topic = ? AND kafka_partition = ? AND kafka_offset >= ? AND kafka_offset < ?",
		id.Topic, id.Partition, start, end)
	return t, ro, err
}

// NewRawWriter opens a writer of raw archive rows (batch.RawWriter): one
// streaming insert at a time.
func (s *Store) NewRawWriter() batch.RawWriter { return &rawWriter{s: s} }

type rawWriter struct {
	s   *Store
	ins RawInsert
}

func (w *rawWriter) Send(ctx context.Context, r *sink.RawBuffer) error {
	return w.s.SendRaw(ctx, &w.ins, r)
}
func (w *rawWriter) Commit(ctx context.Context, r *sink.RawBuffer) error {
	return w.s.CommitRaw(ctx, &w.ins, r)
}
func (w *rawWriter) Open() bool { return w.ins.Open() }
func (w *rawWriter) Abort()     { w.ins.Abort() }
