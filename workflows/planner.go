package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
)

// PlannerInput asks the topic's planner for the plans of slots, in order.
type PlannerInput struct {
	Topic      string
	Slots      []time.Time
	IdleWait   time.Duration
	WorkflowID string // who asks, recorded in the ledger
	// NotBefore: the first slot is planned no earlier than this (see
	// activities.PlanInput).
	NotBefore time.Time
}

// planSlots runs the topic's planner as a child workflow with a fixed ID: a
// second planner of the same topic cannot start while one runs, so plans
// are written one slot at a time, in order, and never overlap. While it is
// busy, wait.
func planSlots(ctx workflow.Context, in PlannerInput) ([]activities.PlanResult, error) {
	summary := fmt.Sprintf("plan %s slot %s", in.Topic, in.Slots[0].Format("2006-01-02T15:04Z"))
	if n := len(in.Slots); n > 1 {
		summary = fmt.Sprintf("plan %s slots %s..%s (%d)", in.Topic, in.Slots[0].Format("2006-01-02T15:04Z"),
			in.Slots[n-1].Format("2006-01-02T15:04Z"), n)
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            PlannerWorkflowID(in.Topic),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:         summary,
		WorkflowRunTimeout:    time.Duration(len(in.Slots))*(in.IdleWait+time.Minute) + 30*time.Minute,
		// The planner is the lock on the topic's plans: its end must not
		// come with its parent's (a slot terminated or timed out) while its
		// activity may still write. Abandoned, it finishes its writes, and
		// only then can another planner start.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	backoff := 100 * time.Millisecond
	deadline := workflow.Now(ctx).Add(plannerWaitMax)
	for {
		var res []activities.PlanResult
		err := workflow.ExecuteChildWorkflow(cctx, PlannerWorkflow, in).Get(ctx, &res)
		if err == nil || !temporal.IsWorkflowExecutionAlreadyStartedError(err) || workflow.Now(ctx).After(deadline) {
			return res, err
		}
		if err := workflow.Sleep(ctx, backoff); err != nil {
			return res, err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// PlannerWorkflow writes (or reads back) the plans of slots, one after the
// other in the order given.
func PlannerWorkflow(ctx workflow.Context, in PlannerInput) ([]activities.PlanResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: in.IdleWait + 5*time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{activities.ErrTypeBadInput, activities.ErrTypeTopicChanged},
		},
	})
	out := make([]activities.PlanResult, len(in.Slots))
	for i, slot := range in.Slots {
		pin := activities.PlanInput{Topic: in.Topic, Slot: slot, IdleWait: in.IdleWait, WorkflowID: in.WorkflowID}
		if i == 0 {
			pin.NotBefore = in.NotBefore
		}
		err := workflow.ExecuteActivity(actx, a.PlanSlot, pin).Get(ctx, &out[i])
		if err != nil {
			return out, err
		}
	}
	return out, nil
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
