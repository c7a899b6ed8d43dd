package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// rtbpipe's custom search attributes, set on every slot, backfill and
// reconciliation run when the namespace has them (starter setup registers
// them): filter the Temporal UI's workflow list with, for example,
//
//	RtbTopic = 'ad-events' AND RtbOutcome = 'failed' AND StartTime > '2026-11-24T00:00:00Z'
var (
	AttrTopic   = temporal.NewSearchAttributeKeyKeyword("RtbTopic")   // the run's topic
	AttrSlot    = temporal.NewSearchAttributeKeyTime("RtbSlot")       // a slot run's minute
	AttrOutcome = temporal.NewSearchAttributeKeyKeyword("RtbOutcome") // running, done, failed or findings
	AttrEvents  = temporal.NewSearchAttributeKeyInt64("RtbEvents")    // events the slot or backfill counted
)

// Outcomes of a run, as AttrOutcome holds them.
const (
	OutcomeRunning  = "running"
	OutcomeDone     = "done"
	OutcomeFailed   = "failed"
	OutcomeFindings = "findings" // a reconciliation that left findings it could not repair
)

// SearchAttributes are the custom search attributes rtbpipe uses, by name,
// with their types: what starter setup registers.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	AttrTopic.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrSlot.GetName():    enumspb.INDEXED_VALUE_TYPE_DATETIME,
	AttrOutcome.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	AttrEvents.GetName():  enumspb.INDEXED_VALUE_TYPE_INT,
}

// startAttributes sets the run's search attributes (topic, the slot unless
// zero, running) when the namespace has them, and says whether it does.
// Runs started by a worker older than them skip it (workflow.GetVersion).
func startAttributes(ctx workflow.Context, topic string, slot time.Time) bool {
	if workflow.GetVersion(ctx, "search-attributes", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 2}})
	var ready bool
	if err := workflow.ExecuteLocalActivity(lctx, "SearchAttributesReady").Get(ctx, &ready); err != nil || !ready {
		return false // a run without them is still a run
	}
	set := []temporal.SearchAttributeUpdate{AttrTopic.ValueSet(topic), AttrOutcome.ValueSet(OutcomeRunning)}
	if !slot.IsZero() {
		set = append(set, AttrSlot.ValueSet(slot))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, set...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes", "error", err)
		return false
	}
	return true
}

// endAttributes records the run's outcome, and what else is given.
func endAttributes(ctx workflow.Context, outcome string, more ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, append(more, AttrOutcome.ValueSet(outcome))...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes", "error", err)
	}
}
