package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/reconcile"
)

// The queries of the operator's workflows: backfill and reconciliation.

// SlotsHoldingWindows returns the slots, in no order, whose batches hold
// events of windows in [from, to) by the ledger (its event-time range) or by
// the partials, and the slots of [from, to) the ledger has plans for.
func (s *Store) SlotsHoldingWindows(ctx context.Context, topic string, from, to time.Time) ([]time.Time, error) {
	from, to = from.UTC(), to.UTC()
	bs, err := s.queryBatches(ctx, "topic = ? AND ((min_event_time < ? AND max_event_time >= ? AND events > 0) OR (slot >= ? AND slot < ?))", "",
		topic, to, from, from, to)
	if err != nil {
		return nil, err
	}
	seen := map[time.Time]bool{}
	var out []time.Time
	put := func(t time.Time) {
		if t = t.UTC(); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, b := range bs {
		put(b.Slot)
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT slot FROM "+s.Table("window_partials")+
		" FINAL WHERE topic = ? AND window_start >= ? AND window_start < ? AND events > 0", topic, from, to)
	if err != nil {
		return nil, fmt.Errorf("read partials: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("read partials: %w", err)
		}
		put(t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partials: %w", err)
	}
	return out, nil
}

// BatchesInRange returns the ledger rows of slots [from, to), by partition
// and slot.
func (s *Store) BatchesInRange(ctx context.Context, topic string, from, to time.Time) ([]ledger.Batch, error) {
	return s.queryBatches(ctx, "topic = ? AND slot >= ? AND slot < ?", "ORDER BY kafka_partition, slot, sub", topic, from.UTC(), to.UTC())
}

// LatestPlans returns each partition's latest plan (its last sub-batch).
func (s *Store) LatestPlans(ctx context.Context, topic string) (map[int32]ledger.Batch, error) {
	return s.edgePlans(ctx, true, topic, "")
}

// PartialEventsBySlot returns the events the partials hold per partition and
// slot of [from, to).
func (s *Store) PartialEventsBySlot(ctx context.Context, topic string, from, to time.Time) (map[int32]map[time.Time]uint64, error) {
	rows, err := s.conn.Query(ctx, "SELECT kafka_partition, slot, sum(events) FROM "+s.Table("window_partials")+
		" FINAL WHERE topic = ? AND slot >= ? AND slot < ? GROUP BY kafka_partition, slot", topic, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("read partials: %w", err)
	}
	defer rows.Close()
	out := map[int32]map[time.Time]uint64{}
	for rows.Next() {
		var p int32
		var slot time.Time
		var n uint64
		if err := rows.Scan(&p, &slot, &n); err != nil {
			return nil, fmt.Errorf("read partials: %w", err)
		}
		if out[p] == nil {
			out[p] = map[time.Time]uint64{}
		}
		out[p][slot.UTC()] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partials: %w", err)
	}
	return out, nil
}

// RecordReconciliation inserts a reconciliation's outcome into
// rtb.reconciliation_runs.
func (s *Store) RecordReconciliation(ctx context.Context, r reconcile.Record) error {
	details, err := r.Details()
	if err != nil {
		return err
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("reconciliation_runs")+
		" (workflow_id, run_id, topic, range_from, range_to, started_at, finished_at, repair, slots_checked, batches_checked,"+
		" findings, repaired_slots, remaining, details)")
	if err != nil {
		return fmt.Errorf("record reconciliation: %w", err)
	}
	defer b.Abort()
	repair := uint8(0)
	if r.Repair {
		repair = 1
	}
	if err := b.Append(r.WorkflowID, r.RunID, r.Topic, r.From.UTC(), r.To.UTC(), r.Started.UTC(), r.Finished.UTC(), repair,
		uint32(r.SlotsChecked), uint32(r.BatchesChecked), uint32(len(r.Found)), uint32(len(r.RepairedSlots)),
		uint32(len(r.Remaining)), details); err != nil {
		return fmt.Errorf("record reconciliation: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record reconciliation: %w", err)
	}
	return nil
}
