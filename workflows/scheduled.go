package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
)

// ScheduledInput is the static argument the every-minute schedule passes.
type ScheduledInput struct {
	Topic    string
	IdleWait time.Duration
	// Tail: the schedule fires as each minute starts, and the slot of that
	// minute reads its records as they arrive (see SlotInput.Tail). Else it
	// fires Grace after each minute and runs the slot that just ended.
	Tail  bool
	Grace time.Duration // after the slot's end, before it is planned
}

// SlotSchedule is the every-minute schedule of a topic's slots.
func SlotSchedule(in ScheduledInput, taskQueue string) client.ScheduleOptions {
	offset, note := time.Duration(0), fmt.Sprintf("rtbpipe: every minute, the slot of topic %s that starts, tailed, planned %s after its end", in.Topic, in.Grace)
	if !in.Tail {
		offset, note = in.Grace, fmt.Sprintf("rtbpipe: every minute + %s, the slot of topic %s that just ended", in.Grace, in.Topic)
	}
	return client.ScheduleOptions{
		ID:   ScheduleID(in.Topic),
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Minute, Offset: offset}}},
		Action: &client.ScheduleWorkflowAction{
			ID:        ScheduledWorkflowID(in.Topic),
			Workflow:  ScheduledSlotWorkflow,
			Args:      []any{in},
			TaskQueue: taskQueue,
		},
		// A tailing slot runs while the one before it finishes.
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
		CatchupWindow: time.Hour,
		Note:          note,
	}
}

// scheduledStartTime is set by Temporal on every workflow a schedule starts.
var scheduledStartTime = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// ScheduledSlotWorkflow is what the schedule starts every minute: it runs
// the slot of the minute that starts (Tail) or that just ended as a child
// SlotWorkflow with the slot's deterministic ID. The minute comes from the
// schedule's own time, so a run delayed or caught up after an outage still
// runs the right slot (and, once the slot is over, simply does not tail).
func ScheduledSlotWorkflow(ctx workflow.Context, in ScheduledInput) (SlotResult, error) {
	if in.Topic == "" {
		return SlotResult{}, temporal.NewNonRetryableApplicationError("topic is empty", activities.ErrTypeBadInput, nil)
	}
	at, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStartTime)
	if !ok {
		at = workflow.Now(ctx)
	}
	slot := at.UTC().Truncate(time.Minute)
	if !in.Tail {
		slot = slot.Add(-time.Minute)
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            SlotWorkflowID(in.Topic, slot),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:         SlotSummary(in.Topic, slot, "scheduled"),
	})
	var res SlotResult
	err := workflow.ExecuteChildWorkflow(cctx, SlotWorkflow, SlotInput{Topic: in.Topic, Slot: slot, IdleWait: in.IdleWait,
		Tail: in.Tail, Grace: in.Grace}).Get(ctx, &res)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return SlotResult{Topic: in.Topic, Slot: slot, Note: "slot already running (a rerun or backfill has it)"}, nil
	}
	return res, err
}
