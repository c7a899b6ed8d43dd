package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
)

// ScheduledInput is the static argument the every-minute schedule passes.
type ScheduledInput struct {
	Topic    string
	IdleWait time.Duration
}

// scheduledStartTime is set by Temporal on every workflow a schedule starts.
var scheduledStartTime = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// ScheduledSlotWorkflow is what the schedule starts a few seconds after each
// minute: it runs the slot of the minute that just ended as a child
// SlotWorkflow with the slot's deterministic ID. The minute comes from the
// schedule's own time, so a run delayed or caught up after an outage still
// runs the right slot.
func ScheduledSlotWorkflow(ctx workflow.Context, in ScheduledInput) (SlotResult, error) {
	if in.Topic == "" {
		return SlotResult{}, temporal.NewNonRetryableApplicationError("topic is empty", activities.ErrTypeBadInput, nil)
	}
	at, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStartTime)
	if !ok {
		at = workflow.Now(ctx)
	}
	slot := at.UTC().Truncate(time.Minute).Add(-time.Minute)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            SlotWorkflowID(in.Topic, slot),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:         fmt.Sprintf("%s slot %s (scheduled)", in.Topic, slot.Format("2006-01-02T15:04Z")),
	})
	var res SlotResult
	err := workflow.ExecuteChildWorkflow(cctx, SlotWorkflow, SlotInput{Topic: in.Topic, Slot: slot, IdleWait: in.IdleWait}).Get(ctx, &res)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return SlotResult{Topic: in.Topic, Slot: slot, Note: "slot already running (a rerun or backfill has it)"}, nil
	}
	return res, err
}
