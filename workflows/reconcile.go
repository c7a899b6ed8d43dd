package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
	rcl "github.com/rtbpipe/rtbpipe/internal/reconcile"
)

// ReconcileInput asks to check (and with Repair, heal) slots [From, To).
type ReconcileInput struct {
	Topic    string
	From, To time.Time
	Repair   bool
	Grace    time.Duration // unprocessed work younger than this is not a finding; default 2 min
}

// ReconcileResult is what a reconciliation checked, found and repaired.
type ReconcileResult struct {
	Topic          string
	From, To       time.Time
	SlotsChecked   int
	BatchesChecked int
	Found          []activities.Finding
	RepairedSlots  []time.Time
	RepairedHours  []time.Time          `json:",omitempty"` // hours whose window totals were refreshed
	Remaining      []activities.Finding // still wrong after the repair (or all, without --repair)
}

func (r ReconcileResult) String() string {
	return fmt.Sprintf("reconcile %s [%s, %s): %d slots, %d batches checked; %d findings, %d slots repaired, %d remaining",
		r.Topic, r.From.Format("2006-01-02T15:04Z"), r.To.Format("2006-01-02T15:04Z"), r.SlotsChecked, r.BatchesChecked,
		len(r.Found), len(r.RepairedSlots), len(r.Remaining))
}

// ReconcileWorkflow checks the exactly-once invariants over a range of
// slots, reruns the slots whose findings a rerun fixes, checks again, and
// records the run in rtb.reconciliation_runs.
func ReconcileWorkflow(ctx workflow.Context, in ReconcileInput) (ReconcileResult, error) {
	res := ReconcileResult{Topic: in.Topic, From: in.From.UTC(), To: in.To.UTC()}
	if in.Topic == "" || !in.From.Before(in.To) {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("reconcile needs a topic and from < to (got %s, %s)", in.From, in.To), activities.ErrTypeBadInput, nil)
	}
	if err := CheckRange(in.From, in.To); err != nil {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, nil)
	}
	attrs := startAttributes(ctx, in.Topic, time.Time{})
	err := reconcile(ctx, in, &res)
	outcome := OutcomeDone
	switch {
	case err != nil:
		outcome = OutcomeFailed
	case len(res.Remaining) > 0:
		outcome = OutcomeFindings
	}
	workflow.SetCurrentDetails(ctx, outcome+" · "+res.String())
	if attrs {
		endAttributes(ctx, outcome)
	}
	return res, err
}

// reconcile is ReconcileWorkflow's work: check, repair, check again, record.
func reconcile(ctx workflow.Context, in ReconcileInput, res *ReconcileResult) error {
	if in.Grace <= 0 {
		in.Grace = 2 * time.Minute
	}
	started := workflow.Now(ctx)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	check := func() (activities.CheckReport, error) {
		var rep activities.CheckReport
		err := workflow.ExecuteActivity(actx, a.CheckRange, activities.CheckInput{Topic: in.Topic, From: in.From, To: in.To, Grace: in.Grace}).Get(ctx, &rep)
		return rep, err
	}
	workflow.SetCurrentDetails(ctx, "checking")
	rep, err := check()
	if err != nil {
		return err
	}
	res.SlotsChecked, res.BatchesChecked, res.Found, res.Remaining = rep.SlotsChecked, rep.BatchesChecked, rep.Findings, rep.Findings
	if in.Repair {
		var slots, hours []time.Time
		for _, f := range rep.Findings {
			switch {
			case f.Kind == rcl.Totals:
				hours = append(hours, f.Slot)
			case f.Repairable && !slices.ContainsFunc(slots, f.Slot.Equal):
				slots = append(slots, f.Slot)
			}
		}
		slices.SortFunc(slots, func(x, y time.Time) int { return x.Compare(y) })
		if len(hours) > 0 {
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("refreshing the window totals of %d hours", len(hours)))
			if err := refreshTotals(ctx, activities.TotalsInput{Topic: in.Topic, Hours: hours}); err != nil {
				return err
			}
			res.RepairedHours = hours
		}
		if len(slots) > 0 || len(hours) > 0 {
			if len(slots) > 0 {
				workflow.SetCurrentDetails(ctx, fmt.Sprintf("repairing %d slots", len(slots)))
				err := planAndRunSlots(ctx, in.Topic, slots, 4, activities.SourceKafka, "reconcile repair", 0, func(r slotRun) {
					if r.Err == nil {
						res.RepairedSlots = append(res.RepairedSlots, r.Slot)
					}
				})
				if err != nil {
					return err
				}
			}
			slices.SortFunc(res.RepairedSlots, func(x, y time.Time) int { return x.Compare(y) })
			workflow.SetCurrentDetails(ctx, "checking again")
			if rep, err = check(); err != nil {
				return err
			}
			res.Remaining = rep.Findings
		}
	}
	info := workflow.GetInfo(ctx)
	rec := activities.ReconciliationRecord{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
		Topic: in.Topic, From: in.From, To: in.To, Started: started, Finished: workflow.Now(ctx), Repair: in.Repair,
		SlotsChecked: res.SlotsChecked, BatchesChecked: res.BatchesChecked, Found: res.Found,
		RepairedSlots: res.RepairedSlots, Remaining: res.Remaining}
	if err := workflow.ExecuteActivity(actx, a.RecordReconciliation, rec).Get(ctx, nil); err != nil {
		return err
	}
	mh := workflow.GetMetricsHandler(ctx) // replay-safe
	for _, f := range res.Found {
		mh.WithTags(map[string]string{"topic": in.Topic, "kind": f.Kind}).Counter(metrics.Findings).Inc(1)
	}
	mh.WithTags(map[string]string{"topic": in.Topic}).Counter(metrics.Repairs).Inc(int64(len(res.RepairedSlots)))
	return nil
}

// ScheduledReconcileInput is the reconcile schedule's static argument.
type ScheduledReconcileInput struct {
	Topic    string
	Lookback time.Duration // default 3 h
}

// ScheduledReconcileWorkflow reconciles, with repair, the slots of the last
// Lookback before the schedule's time.
func ScheduledReconcileWorkflow(ctx workflow.Context, in ScheduledReconcileInput) (ReconcileResult, error) {
	at, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStartTime)
	if !ok {
		at = workflow.Now(ctx)
	}
	if in.Lookback <= 0 {
		in.Lookback = 3 * time.Hour
	}
	to := at.UTC().Truncate(time.Minute)
	return ReconcileWorkflow(ctx, ReconcileInput{Topic: in.Topic, From: to.Add(-in.Lookback), To: to, Repair: true})
}
