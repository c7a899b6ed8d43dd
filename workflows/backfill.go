package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/plan"
)

// BackfillQuery is the query that returns a backfill's progress.
const BackfillQuery = "progress"

// slotsPerRun bounds the slots one backfill run handles before it continues
// as new, so that the history of a backfill of days stays small.
const slotsPerRun = 240

// MaxRange is the longest range one backfill or reconciliation takes:
// from Kafka every minute of a backfill is a slot, and the workflow carries
// the list of the slots left (about 25 bytes each) under Temporal's 2 MiB
// payload limit; a reconciliation reads the whole range's ledger at once.
const MaxRange = 31 * 24 * time.Hour

// CheckRange refuses a range [from, to) of minutes longer than MaxRange,
// or of minutes no slot can have (plan.CheckSlot).
func CheckRange(from, to time.Time) error {
	if to.Sub(from) > MaxRange {
		return fmt.Errorf("a range covers at most %d days, and [%s, %s) is %.0f days: run one per month", MaxRange/(24*time.Hour),
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), to.Sub(from).Hours()/24)
	}
	for _, m := range []time.Time{from.Truncate(time.Minute), to.Add(-time.Nanosecond).Truncate(time.Minute)} {
		if err := plan.CheckSlot(m); err != nil {
			return fmt.Errorf("range [%s, %s): %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}

// BackfillInput asks to recompute every window in [From, To) of Topic.
type BackfillInput struct {
	Topic       string
	From, To    time.Time
	Source      activities.Source // activities.SourceKafka (default) or SourceRaw
	Parallelism int               // slots at once; default 4
	IdleWait    time.Duration

	// Carried across continue-as-new; empty on the first run.
	Remaining []time.Time
	Progress  BackfillProgress
}

// BackfillProgress is what the progress query and the result tell.
type BackfillProgress struct {
	Topic       string
	From, To    time.Time
	Source      activities.Source
	Found       bool // the slots to run are known
	Total       int
	Done        int
	Joined      int // slots someone else was running; they did the work
	Failed      int
	FailedSlots []string `json:",omitempty"`
	Events      uint64
	DeadLetters uint64
	Runs        int // workflow runs so far (continue-as-new)
}

func (p BackfillProgress) String() string {
	return fmt.Sprintf("backfill %s [%s, %s) from %s: %d/%d slots done (%d joined, %d failed), %d events",
		p.Topic, p.From.Format("2006-01-02T15:04Z"), p.To.Format("2006-01-02T15:04Z"), p.Source, p.Done, p.Total, p.Joined, p.Failed, p.Events)
}

// BackfillWorkflow reruns every slot that holds events of windows in
// [From, To), slots never run before included, with bounded parallelism.
// After it, the windows in range are exact; slots outside it are rerun only
// when they hold events of the range, and a rerun rewrites the same values.
func BackfillWorkflow(ctx workflow.Context, in BackfillInput) (BackfillProgress, error) {
	if in.Topic == "" || !in.From.Before(in.To) {
		return in.Progress, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("backfill needs a topic and from < to (got %s, %s)", in.From, in.To), activities.ErrTypeBadInput, nil)
	}
	if err := CheckRange(in.From, in.To); err != nil {
		return in.Progress, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, nil)
	}
	if in.Source == "" {
		in.Source = activities.SourceKafka
	}
	if in.Parallelism <= 0 {
		in.Parallelism = 4
	}
	p := &in.Progress
	p.Topic, p.From, p.To, p.Source = in.Topic, in.From.UTC(), in.To.UTC(), in.Source
	p.Runs++
	if err := workflow.SetQueryHandler(ctx, BackfillQuery, func() (BackfillProgress, error) { return *p, nil }); err != nil {
		return *p, err
	}
	attrs := startAttributes(ctx, in.Topic, time.Time{})
	err := backfill(ctx, &in)
	if workflow.IsContinueAsNewError(err) {
		return *p, err
	}
	outcome := OutcomeDone
	if err != nil {
		outcome = OutcomeFailed
	}
	workflow.SetCurrentDetails(ctx, outcome+" · "+p.String())
	if attrs {
		endAttributes(ctx, outcome, AttrEvents.ValueSet(int64(p.Events)))
	}
	return *p, err
}

// backfill is BackfillWorkflow's work: find the slots, run up to
// slotsPerRun of them, continue as new with the rest.
func backfill(ctx workflow.Context, in *BackfillInput) error {
	p := &in.Progress
	if !p.Found {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 5 * time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
		})
		if err := workflow.ExecuteActivity(actx, a.FindBackfillSlots, activities.RangeInput{
			Topic: in.Topic, From: in.From, To: in.To, Source: in.Source}).Get(ctx, &in.Remaining); err != nil {
			return err
		}
		p.Found, p.Total = true, len(in.Remaining)
	}
	now := in.Remaining
	if len(now) > slotsPerRun {
		now = now[:slotsPerRun]
	}
	workflow.SetCurrentDetails(ctx, p.String())
	err := planAndRunSlots(ctx, in.Topic, now, in.Parallelism, in.Source, "backfill", in.IdleWait, func(r slotRun) {
		switch {
		case r.Err != nil:
			p.Failed++
			p.FailedSlots = append(p.FailedSlots, fmt.Sprintf("%s: %v", r.Slot.Format("2006-01-02T15:04Z"), r.Err))
		case r.Joined:
			p.Joined++
		default:
			p.Done++
			p.Events += r.Result.Events
			p.DeadLetters += r.Result.DeadLetters
		}
		workflow.SetCurrentDetails(ctx, p.String())
	})
	if err != nil {
		return err
	}
	in.Remaining = in.Remaining[len(now):]
	if len(in.Remaining) > 0 {
		return workflow.NewContinueAsNewError(ctx, BackfillWorkflow, *in)
	}
	if p.Failed > 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%d of %d slots failed: %v", p.Failed, p.Total, p.FailedSlots),
			"BackfillIncomplete", nil, *p)
	}
	return nil
}
