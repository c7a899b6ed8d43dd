package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// slotRun is the outcome of one child slot run.
type slotRun struct {
	Slot   time.Time
	Result SlotResult
	Err    error
	Joined bool // the slot was already running (another backfill, the schedule): that run does the work
}

// planInOrder has the planner plan the slots one after the other before
// they run in parallel, so that each slot gets its own minute's offsets
// (planned out of order, a later slot would take the earlier ones' too:
// still exact, but one long batch instead of many parallel ones).
func planInOrder(ctx workflow.Context, topic string, slots []time.Time, idleWait time.Duration) error {
	if len(slots) == 0 {
		return nil
	}
	if idleWait <= 0 {
		idleWait = DefaultIdleWait
	}
	_, err := planSlots(ctx, PlannerInput{Topic: topic, Slots: slots, IdleWait: idleWait, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID})
	return err
}

// runSlots runs the slots as child SlotWorkflows, at most parallelism at a
// time, in slot order, and calls done for each as it ends. Child IDs are the
// slots' own IDs, so a slot is never run twice at once by anyone.
func runSlots(ctx workflow.Context, topic string, slots []time.Time, parallelism int, source, why string,
	idleWait time.Duration, done func(slotRun)) {
	if parallelism < 1 {
		parallelism = 1
	}
	sel := workflow.NewSelector(ctx)
	running := 0
	start := func(slot time.Time) {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            SlotWorkflowID(topic, slot),
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         fmt.Sprintf("%s slot %s (%s)", topic, slot.Format("2006-01-02T15:04Z"), why),
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
	for _, s := range slots {
		if running >= parallelism {
			sel.Select(ctx)
		}
		start(s)
	}
	for running > 0 {
		sel.Select(ctx)
	}
}
