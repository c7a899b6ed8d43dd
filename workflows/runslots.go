package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
)

// slotRun is the outcome of one child slot run.
type slotRun struct {
	Slot   time.Time
	Result SlotResult
	Err    error
	Joined bool // the slot was already running (another backfill, the schedule): that run does the work
}

// planAndRunSlots plans the slots in order (from Kafka only: a slot
// recomputed from the raw archive keeps the plans it has) and runs them as
// runSlots does. Slots are planned in chunks of `parallelism`: the first
// chunk starts once planned, and each later chunk is planned while the
// slots before it run; a slot starts only once it is planned. An error
// planning the first chunk is returned; the slots that a later planning
// error leaves unplanned end with that error.
func planAndRunSlots(ctx workflow.Context, topic string, slots []time.Time, parallelism int, source activities.Source, why string,
	idleWait time.Duration, done func(slotRun)) error {
	parallelism = max(parallelism, 1)
	var planned func(i int) error
	if source == activities.SourceKafka {
		first := min(len(slots), parallelism)
		if err := planInOrder(ctx, topic, slots[:first], idleWait); err != nil {
			return err
		}
		var chunks []workflow.Future
		var settles []workflow.Settable
		for from := first; from < len(slots); from += parallelism {
			f, s := workflow.NewFuture(ctx)
			chunks, settles = append(chunks, f), append(settles, s)
		}
		workflow.Go(ctx, func(gctx workflow.Context) {
			var err error
			for k, s := range settles {
				if err == nil {
					from := first + k*parallelism
					err = planInOrder(gctx, topic, slots[from:min(from+parallelism, len(slots))], idleWait)
				}
				s.Set(nil, err)
			}
		})
		planned = func(i int) error {
			if i < first {
				return nil
			}
			return chunks[(i-first)/parallelism].Get(ctx, nil)
		}
	}
	runSlots(ctx, topic, slots, parallelism, source, why, idleWait, planned, done)
	return nil
}

// runSlots runs the slots as child SlotWorkflows, at most parallelism at a
// time, in slot order, and calls done for each as it ends. Child IDs are the
// slots' own IDs, so a slot is never run twice at once by anyone. When
// planned is not nil, slot i starts only once planned(i) returns, and not
// at all when it returns an error.
func runSlots(ctx workflow.Context, topic string, slots []time.Time, parallelism int, source activities.Source, why string,
	idleWait time.Duration, planned func(i int) error, done func(slotRun)) {
	sel := workflow.NewSelector(ctx)
	running := 0
	start := func(slot time.Time) {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            SlotWorkflowID(topic, slot),
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         SlotSummary(topic, slot, why),
		})
		f := workflow.ExecuteChildWorkflow(cctx, SlotWorkflow, SlotInput{Topic: topic, Slot: slot, Source: source, IdleWait: idleWait})
		running++
		sel.AddFuture(f, func(f workflow.Future) {
			running--
			r := slotRun{Slot: slot}
			r.Err = f.Get(ctx, &r.Result)
			if temporal.IsWorkflowExecutionAlreadyStartedError(r.Err) {
				r.Err, r.Joined = nil, true
			}
			done(r)
		})
	}
	for i, s := range slots {
		if running >= parallelism {
			sel.Select(ctx)
		}
		if planned != nil {
			if err := planned(i); err != nil {
				done(slotRun{Slot: s, Err: fmt.Errorf("planning: %w", err)})
				continue
			}
		}
		start(s)
	}
	for running > 0 {
		sel.Select(ctx)
	}
}
