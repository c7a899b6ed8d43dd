package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// RangeInput names a range of windows (or slots) of a topic.
type RangeInput struct {
	Topic    string
	From, To time.Time
	Source   string // for FindBackfillSlots: SourceRaw keeps only slots the ledger knows
}

// FindBackfillSlots returns every slot that holds events of windows in
// [From, To), in order: the slots of those minutes themselves (never run
// before included, if they have ended), and every slot, however much later,
// whose batches hold events of those windows (late events), from the ledger
// and from the partials.
func (a *Activities) FindBackfillSlots(ctx context.Context, in RangeInput) ([]time.Time, error) {
	from, to := in.From.UTC(), in.To.UTC()
	set := map[time.Time]bool{}
	bs, err := a.Store.QueryBatches(ctx, "topic = ? AND ((min_event_time < ? AND max_event_time >= ? AND events > 0) OR (slot >= ? AND slot < ?))", "",
		in.Topic, to, from, from, to)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		set[b.Slot] = true
	}
	rows, err := a.Store.Conn().Query(ctx, "SELECT DISTINCT slot FROM "+a.Store.Table("window_partials")+
		" FINAL WHERE topic = ? AND window_start >= ? AND window_start < ? AND events > 0", in.Topic, from, to)
	if err != nil {
		return nil, fmt.Errorf("read partials: %w", err)
	}
	for rows.Next() {
		var s time.Time
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read partials: %w", err)
		}
		set[s.UTC()] = true
	}
	rows.Close()
	if in.Source != SourceRaw { // from Kafka, slots never run can be planned now
		last := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute) // the last slot that has ended
		for s := from.Truncate(time.Minute); s.Before(to) && !s.After(last); s = s.Add(time.Minute) {
			set[s] = true
		}
	}
	out := make([]time.Time, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y time.Time) int { return x.Compare(y) })
	return out, nil
}

// Finding kinds of a reconciliation.
const (
	FindMissing    = "missing"     // a slot that has ended has no plan for a partition
	FindNotDone    = "not-done"    // planned long ago, never finished
	FindUnbalanced = "unaccounted" // events + dead letters + skipped != offsets
	FindPartials   = "partials"    // the partials' events disagree with the ledger
	FindGap        = "gap"         // plans not contiguous: offsets skipped
	FindOverlap    = "overlap"     // plans overlap: offsets planned twice
	FindBehind     = "behind"      // Kafka holds records older than the grace past the last plan
)

// Finding is one thing a reconciliation found wrong.
type Finding struct {
	Slot       time.Time
	Partition  int32
	Kind       string
	Detail     string
	Repairable bool // re-running the slot fixes it
}

// CheckInput is the range a reconciliation checks.
type CheckInput struct {
	Topic    string
	From, To time.Time     // slots [From, To)
	Grace    time.Duration // how old unprocessed work must be to count
}

// CheckReport is what a check found.
type CheckReport struct {
	SlotsChecked   int
	BatchesChecked int
	Findings       []Finding
}

// CheckRange checks the exactly-once invariants over slots [From, To).
func (a *Activities) CheckRange(ctx context.Context, in CheckInput) (CheckReport, error) {
	var rep CheckReport
	now := time.Now().UTC()
	from, to := in.From.UTC().Truncate(time.Minute), in.To.UTC()
	if last := now.Add(-in.Grace).Truncate(time.Minute).Add(-time.Minute); to.After(last.Add(time.Minute)) {
		to = last.Add(time.Minute) // slots that have not ended (with the grace) are not checked
	}
	parts, err := kafka.Partitions(a.Kafka, in.Topic)
	if err != nil {
		return rep, err
	}
	bs, err := a.Store.QueryBatches(ctx, "topic = ? AND slot >= ? AND slot < ?", "ORDER BY kafka_partition, slot", in.Topic, from, to)
	if err != nil {
		return rep, err
	}
	prev, _, err := a.Store.Neighbours(ctx, in.Topic, from)
	if err != nil {
		return rep, err
	}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }
	have := map[int32]map[time.Time]bool{}
	last := map[int32]ledger.Batch{}
	for p, b := range prev {
		last[p] = b
	}
	for _, b := range bs {
		rep.BatchesChecked++
		if have[b.Partition] == nil {
			have[b.Partition] = map[time.Time]bool{}
		}
		have[b.Partition][b.Slot] = true
		if pb, ok := last[b.Partition]; ok {
			switch {
			case b.Start > pb.End:
				add(Finding{b.Slot, b.Partition, FindGap, fmt.Sprintf("starts at %d, the plan of %s ends at %d: offsets [%d,%d) in no batch",
					b.Start, pb.Slot.Format("15:04"), pb.End, pb.End, b.Start), false})
			case b.Start < pb.End:
				add(Finding{b.Slot, b.Partition, FindOverlap, fmt.Sprintf("starts at %d, before the plan of %s ends (%d)",
					b.Start, pb.Slot.Format("15:04"), pb.End), false})
			}
		}
		last[b.Partition] = b
		switch {
		case b.State != ledger.StateDone && now.Sub(b.PlannedAt) > 2*time.Minute+in.Grace:
			add(Finding{b.Slot, b.Partition, FindNotDone, fmt.Sprintf("planned at %s, never finished", b.PlannedAt.Format(time.RFC3339)), true})
		case b.State == ledger.StateDone && int64(b.Events+b.DeadLetters+b.Skipped) != b.Offsets():
			add(Finding{b.Slot, b.Partition, FindUnbalanced, fmt.Sprintf("%d events + %d dead letters + %d skipped != %d offsets",
				b.Events, b.DeadLetters, b.Skipped, b.Offsets()), true})
		}
	}
	for s := from; s.Before(to); s = s.Add(time.Minute) {
		rep.SlotsChecked++
		for _, p := range parts {
			if !have[p][s] {
				add(Finding{s, p, FindMissing, "no plan in the ledger: the slot never ran", true})
			}
		}
	}
	// Partials against the ledger.
	sums := map[int32]map[time.Time]uint64{}
	rows, err := a.Store.Conn().Query(ctx, "SELECT kafka_partition, slot, sum(events) FROM "+a.Store.Table("window_partials")+
		" FINAL WHERE topic = ? AND slot >= ? AND slot < ? GROUP BY kafka_partition, slot", in.Topic, from, to)
	if err != nil {
		return rep, fmt.Errorf("read partials: %w", err)
	}
	for rows.Next() {
		var p int32
		var s time.Time
		var n uint64
		if err := rows.Scan(&p, &s, &n); err != nil {
			rows.Close()
			return rep, fmt.Errorf("read partials: %w", err)
		}
		if sums[p] == nil {
			sums[p] = map[time.Time]uint64{}
		}
		sums[p][s.UTC()] = n
	}
	rows.Close()
	for _, b := range bs {
		if b.State == ledger.StateDone && sums[b.Partition][b.Slot] != b.Events {
			add(Finding{b.Slot, b.Partition, FindPartials, fmt.Sprintf("partials hold %d events, the ledger %d",
				sums[b.Partition][b.Slot], b.Events), true})
		}
	}
	// Work never done: records older than the grace past the last plan.
	cutoff := now.Add(-in.Grace).Truncate(time.Minute)
	latest, _, err := a.Store.Neighbours(ctx, in.Topic, now.Add(time.Hour))
	if err != nil {
		return rep, err
	}
	for _, p := range parts {
		off, found, err := kafka.OffsetForTime(a.Kafka, in.Topic, p, cutoff)
		if err != nil {
			return rep, err
		}
		if !found {
			bnd, err := kafka.PartitionBounds(a.Kafka, in.Topic, p)
			if err != nil {
				return rep, err
			}
			off = bnd.End
		}
		if b := latest[p]; b.End < off {
			add(Finding{cutoff.Add(-time.Minute), p, FindBehind, fmt.Sprintf("records [%d,%d) stamped before %s are in no plan (last plan: slot %s)",
				b.End, off, cutoff.Format(time.RFC3339), b.Slot.Format(time.RFC3339)), true})
		}
	}
	activity.RecordHeartbeat(ctx, len(rep.Findings))
	return rep, nil
}

// ReconciliationRecord is one row of rtb.reconciliation_runs.
type ReconciliationRecord struct {
	WorkflowID, RunID, Topic     string
	From, To, Started, Finished  time.Time
	Repair                       bool
	SlotsChecked, BatchesChecked int
	Found                        []Finding
	RepairedSlots                []time.Time
	Remaining                    []Finding
}

// RecordReconciliation stores a reconciliation's outcome.
func (a *Activities) RecordReconciliation(ctx context.Context, r ReconciliationRecord) error {
	details, err := json.Marshal(map[string]any{"found": r.Found, "repaired_slots": r.RepairedSlots, "remaining": r.Remaining})
	if err != nil {
		return fmt.Errorf("encode reconciliation details: %w", err)
	}
	b, err := a.Store.Conn().PrepareBatch(ctx, "INSERT INTO "+a.Store.Table("reconciliation_runs")+
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
		uint32(len(r.Remaining)), string(details)); err != nil {
		return fmt.Errorf("record reconciliation: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record reconciliation: %w", err)
	}
	return nil
}
