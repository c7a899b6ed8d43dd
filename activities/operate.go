package activities

import (
	"context"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/IBM/sarama"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/reconcile"
)

// OperateStore is what the operator's activities (backfill, reconciliation)
// read from and write to ClickHouse; *chstore.Store implements it.
type OperateStore interface {
	// SlotsHoldingWindows returns the slots whose batches hold events of
	// windows in [from, to) (ledger and partials), and the planned slots of
	// [from, to).
	SlotsHoldingWindows(ctx context.Context, topic string, from, to time.Time) ([]time.Time, error)
	// BatchesInRange returns the ledger rows of slots [from, to).
	BatchesInRange(ctx context.Context, topic string, from, to time.Time) ([]ledger.Batch, error)
	// Neighbours returns, per partition, the latest plan before slot and
	// the earliest plan after it: of each of partitions at least (of every
	// partition the ledger holds with partitions nil).
	Neighbours(ctx context.Context, topic string, slot time.Time, partitions []int32) (prev, next map[int32]ledger.Batch, err error)
	// LatestPlans returns each partition's latest plan.
	LatestPlans(ctx context.Context, topic string) (map[int32]ledger.Batch, error)
	// PartialEventsBySlot returns the partials' events per partition and
	// slot of [from, to).
	PartialEventsBySlot(ctx context.Context, topic string, from, to time.Time) (map[int32]map[time.Time]uint64, error)
	// RecordReconciliation stores a reconciliation's outcome.
	RecordReconciliation(ctx context.Context, r reconcile.Record) error
	// AdoptedTopicIDs returns the topic IDs an operator adopted for the
	// topic (starter topic adopt).
	AdoptedTopicIDs(ctx context.Context, topic string) (map[string]bool, error)
	// RefreshTotals rewrites the window totals of the hours (of topic and
	// of every topic) from the partials.
	RefreshTotals(ctx context.Context, topic string, hours []time.Time) error
	// StaleTotals returns the hours overlapping [from, to) whose window
	// totals differ from the partials.
	StaleTotals(ctx context.Context, topic string, from, to time.Time) ([]time.Time, error)
}

// TotalsInput names the windows whose totals a refresh rewrites.
type TotalsInput struct {
	Topic   string
	Windows []time.Time // the windows a run touched; their hours are refreshed
	Hours   []time.Time // hours to refresh besides (reconciliation's findings)
}

// RefreshTotals rewrites the window totals of the hours of the windows a
// run touched (and of the hours given), after the run wrote their partials.
func (a *Activities) RefreshTotals(ctx context.Context, in TotalsInput) error {
	if in.Topic == "" {
		return temporal.NewNonRetryableApplicationError("refresh window totals: no topic", ErrTypeBadInput, nil)
	}
	return a.Ops.RefreshTotals(ctx, in.Topic, append(slices.Clone(in.Windows), in.Hours...))
}

// totalsSettle is how long a check waits before it looks again at hours
// whose totals differ from the partials: a run refreshes them right after
// writing the partials, so only a difference that stays is a finding.
const totalsSettle = 10 * time.Second

// RangeInput names a range of windows (or slots) of a topic.
type RangeInput struct {
	Topic    string
	From, To time.Time
	Source   Source // for FindBackfillSlots: SourceRaw keeps only slots the ledger knows
}

// FindBackfillSlots returns every slot that holds events of windows in
// [From, To), in order: the slots of those minutes themselves (never run
// before included, if they have ended), and every slot, however much later,
// whose batches hold events of those windows (late events), from the ledger
// and from the partials.
func (a *Activities) FindBackfillSlots(ctx context.Context, in RangeInput) ([]time.Time, error) {
	from, to := in.From.UTC(), in.To.UTC()
	found, err := a.Ops.SlotsHoldingWindows(ctx, in.Topic, from, to)
	if err != nil {
		return nil, err
	}
	set := map[time.Time]bool{}
	for _, s := range found {
		set[s.UTC()] = true
	}
	if in.Source != SourceRaw { // from Kafka, slots never run can be planned now
		// but not those before the minute of the first record Kafka holds:
		// their plans would be empty (a mistyped year, thousands of them).
		parts, err := kafka.Partitions(a.Kafka, in.Topic)
		if err != nil {
			return nil, err
		}
		first, holds, err := kafka.EarliestStamp(a.Kafka, in.Topic, parts)
		if err != nil {
			return nil, err
		}
		last := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute) // the last slot that has ended
		s := from.Truncate(time.Minute)
		if f := first.Truncate(time.Minute); f.After(s) {
			s = f
		}
		for ; holds && s.Before(to) && !s.After(last); s = s.Add(time.Minute) {
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

// checkBeat is how often CheckRange heartbeats while it reads: a check of
// a long range reads for minutes, and only a heartbeat lets a terminated or
// cancelled reconciliation stop it (its context ends then).
const checkBeat = 10 * time.Second

// beatWhile calls beat every `every` until the returned stop is called.
func beatWhile(ctx context.Context, every time.Duration, beat func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Finding is one thing a reconciliation found wrong.
type Finding = reconcile.Finding

// CheckInput is the range a reconciliation checks.
type CheckInput struct {
	Topic    string
	From, To time.Time     // slots [From, To)
	Grace    time.Duration // how old unprocessed work must be to count
}

// CheckReport is what a check found.
type CheckReport = reconcile.Report

// CheckRange checks the exactly-once invariants over slots [From, To): it
// loads what the ledger, the partials and Kafka hold, and reconcile.Check
// decides the findings.
func (a *Activities) CheckRange(ctx context.Context, in CheckInput) (CheckReport, error) {
	defer beatWhile(ctx, checkBeat, func() { activity.RecordHeartbeat(ctx, "checking") })()
	now := time.Now().UTC()
	from, to := reconcile.Clip(in.From, in.To, now, in.Grace)
	cutoff := reconcile.Cutoff(now, in.Grace)
	rin := reconcile.Input{From: from, To: to, Now: now, Grace: in.Grace}
	var err error
	if rin.Partitions, err = kafka.Partitions(a.Kafka, in.Topic); err != nil {
		return CheckReport{}, err
	}
	if rin.Batches, err = a.Ops.BatchesInRange(ctx, in.Topic, from, to); err != nil {
		return CheckReport{}, err
	}
	if rin.Prev, rin.Next, err = a.Ops.Neighbours(ctx, in.Topic, from, nil); err != nil {
		return CheckReport{}, err
	}
	if rin.Partials, err = a.Ops.PartialEventsBySlot(ctx, in.Topic, from, to); err != nil {
		return CheckReport{}, err
	}
	if rin.Latest, err = a.Ops.LatestPlans(ctx, in.Topic); err != nil {
		return CheckReport{}, err
	}
	if rin.Seen, _, err = a.Ops.Neighbours(ctx, in.Topic, reconcile.SeenBefore(now, in.Grace), nil); err != nil {
		return CheckReport{}, err
	}
	// One request per partition leader for each: the log starts, the high
	// watermarks, and the first offsets stamped at or after the cutoff.
	if rin.LogStart, err = kafka.ListOffsets(a.Kafka, in.Topic, rin.Partitions, sarama.OffsetOldest); err != nil {
		return CheckReport{}, err
	}
	if rin.AtCutoff, err = kafka.ListOffsets(a.Kafka, in.Topic, rin.Partitions, cutoff.UnixMilli()); err != nil {
		return CheckReport{}, err
	}
	highs, err := kafka.ListOffsets(a.Kafka, in.Topic, rin.Partitions, sarama.OffsetNewest) // after: no lower than those found
	if err != nil {
		return CheckReport{}, err
	}
	for p, off := range rin.AtCutoff {
		if off < 0 { // no record stamped at or after the cutoff yet
			rin.AtCutoff[p] = highs[p]
		}
	}
	rin.HighWater = highs
	if rin.TopicID, err = kafka.TopicID(a.Kafka, in.Topic); err != nil {
		return CheckReport{}, err
	}
	if rin.Adopted, err = a.Ops.AdoptedTopicIDs(ctx, in.Topic); err != nil {
		return CheckReport{}, err
	}
	if rin.StaleTotals, err = a.staleTotals(ctx, in.Topic, from, to); err != nil {
		return CheckReport{}, err
	}
	rep := reconcile.Check(rin)
	activity.RecordHeartbeat(ctx, len(rep.Findings))
	return rep, nil
}

// ReconciliationRecord is one row of rtb.reconciliation_runs.
type ReconciliationRecord = reconcile.Record

// RecordReconciliation stores a reconciliation's outcome.
func (a *Activities) RecordReconciliation(ctx context.Context, r ReconciliationRecord) error {
	return a.Ops.RecordReconciliation(ctx, r)
}

// staleTotals returns the hours of [from, to) whose window totals differ
// from the partials now and still after totalsSettle.
func (a *Activities) staleTotals(ctx context.Context, topic string, from, to time.Time) ([]time.Time, error) {
	if !from.Before(to) {
		return nil, nil
	}
	first, err := a.Ops.StaleTotals(ctx, topic, from, to)
	if err != nil || len(first) == 0 {
		return nil, err
	}
	activity.RecordHeartbeat(ctx, "totals settling")
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(totalsSettle):
	}
	again, err := a.Ops.StaleTotals(ctx, topic, from, to)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(again, func(h time.Time) bool { return !slices.ContainsFunc(first, h.Equal) }), nil
}
