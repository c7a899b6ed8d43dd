package batch

import (
	"context"
	"fmt"
	"time"
)

// fromArchive recomputes a batch from the raw archive, for offsets that
// Kafka no longer holds. Only a batch whose events were archived can be.
func (p *Processor) fromArchive(ctx context.Context, in Input) (Result, error) {
	began := time.Now()
	plan := in.Plan
	id := plan.ID()
	if p.Archive == nil {
		return Result{}, badInput("this worker cannot read the raw archive")
	}
	prev, err := p.Ledger.PartitionPlans(ctx, plan.Topic, plan.Partition, id.Slot, id.Slot)
	if err != nil {
		return Result{}, err
	}
	if plan.End > plan.Start && (len(prev) == 0 || !prev[0].Done() || !prev[0].Archived) {
		return Result{}, fmt.Errorf("%w: %s/%d slot %s: offsets [%d,%d) were never archived (the batch ran with the raw archive off, "+
			"or never ran): it can only be computed from Kafka", ErrNotArchived, plan.Topic, plan.Partition,
			id.Slot.Format(time.RFC3339), plan.Start, plan.End)
	}
	table, ro, err := p.Archive.AggregateRaw(ctx, id, plan.Start, plan.End)
	if err != nil {
		return Result{}, err
	}
	if len(prev) > 0 && ro.Events != prev[0].Events {
		return Result{}, fmt.Errorf("%w: %s/%d slot %s: the archive holds %d events of offsets [%d,%d), the ledger counted %d "+
			"(archive rows lost, or the batch was only partly archived): recompute it from Kafka", ErrNotArchived,
			plan.Topic, plan.Partition, id.Slot.Format(time.RFC3339), ro.Events, plan.Start, plan.End, prev[0].Events)
	}
	done := plan
	done.Events, done.LateEvents, done.EarlyEvents, done.DeadLetters = ro.Events, ro.Late, ro.Early, ro.DeadLetters
	done.MinEventTime, done.MaxEventTime = ro.MinEventTime, ro.MaxEventTime
	done.Markers = 0
	if len(prev) > 0 {
		done.Markers = prev[0].Markers // markers are not archived; the ledger counted them
	}
	if ro.Events+ro.DeadLetters+done.Markers > uint64(plan.Offsets()) {
		return Result{}, fmt.Errorf("%s/%d slot %s: the archive holds %d events and %d dead letters, and the ledger %d markers, for %d offsets",
			plan.Topic, plan.Partition, id.Slot.Format(time.RFC3339), ro.Events, ro.DeadLetters, done.Markers, plan.Offsets())
	}
	done.Skipped = uint64(plan.Offsets()) - ro.Events - ro.DeadLetters - done.Markers
	done.Archived = true
	return p.record(ctx, in, done, table, batchRest{}, began)
}
