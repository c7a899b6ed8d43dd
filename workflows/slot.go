package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/dur"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
	"github.com/rtbpipe/rtbpipe/internal/plan"
)

// Defaults of a slot run.
const (
	DefaultIdleWait         = 10 * time.Second
	DefaultHeartbeatTimeout = 30 * time.Second
	// plannerWaitMax bounds how long a slot waits for the topic's planner
	// to be free before it gives up (and is retried as a whole).
	plannerWaitMax = 15 * time.Minute
)

// SlotInput names the slot to run: the minute of log time [Slot, Slot+1m)
// of Topic.
type SlotInput struct {
	Topic            string
	Slot             time.Time
	IdleWait         time.Duration // wait for partitions with no record past the slot's end; 0 = DefaultIdleWait
	HeartbeatTimeout time.Duration // of the batch activities; 0 = DefaultHeartbeatTimeout
	// Source is where batches are read: activities.SourceKafka (default) or
	// activities.SourceRaw (the raw archive, for offsets past retention; only
	// slots already planned can be computed from it).
	Source activities.Source
	// Tail starts the slot before its minute is over: its batches read the
	// records as they arrive, and the slot is planned Grace after its end,
	// so that little is left to read then. Tailing ends by the same plans
	// and the same outcome as a slot run after its minute.
	Tail  bool
	Grace time.Duration
}

// SlotResult tells what a slot run did.
type SlotResult struct {
	Topic       string
	Slot        time.Time
	Offsets     int64
	Events      uint64
	LateEvents  uint64 // events of windows before the slot's minute
	EarlyEvents uint64 // events of windows after it
	DeadLetters uint64
	Markers     uint64 // transaction markers
	Skipped     uint64 // offsets Kafka proved it will not deliver (aborted transactions, compaction)
	Windows     []time.Time
	NewPlans    int          // plans this run wrote (0 on a rerun)
	PlanWait    dur.Duration // time spent waiting for idle partitions
	IdleParts   []int32      // partitions planned to their high watermark
	Batches     []ledger.Batch
	Tailed      int                      `json:",omitempty"` // batches read as their records arrived, while the slot ran
	Anomalies   activities.AnomalyResult // the scoring of its windows again
	Note        string                   `json:",omitempty"`
}

func (r SlotResult) String() string {
	return fmt.Sprintf("slot %s: %d offsets, %d events (%d late, %d early), %d dead letters, %d windows",
		r.Slot.Format("2006-01-02T15:04Z"), r.Offsets, r.Events, r.LateEvents, r.EarlyEvents, r.DeadLetters, len(r.Windows))
}

// a is used only to name activity methods; it is never dereferenced.
var a *activities.Activities

func (in *SlotInput) validate() error {
	if in.Topic == "" {
		return temporal.NewNonRetryableApplicationError("topic is empty", activities.ErrTypeBadInput, nil)
	}
	if err := plan.CheckSlot(in.Slot); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, nil)
	}
	in.Slot = in.Slot.UTC()
	if in.IdleWait <= 0 {
		in.IdleWait = DefaultIdleWait
	}
	if in.Grace < 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("grace %s is negative", in.Grace), activities.ErrTypeBadInput, nil)
	}
	if in.HeartbeatTimeout <= 0 {
		in.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	src, err := activities.ParseSource(string(in.Source))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, nil)
	}
	in.Source = src
	return nil
}

// SlotWorkflow runs one slot: plan (ledger), then one batch activity per
// partition, in parallel, then a summary. Run it with SlotWorkflowID so that
// one slot never runs twice at once.
func SlotWorkflow(ctx workflow.Context, in SlotInput) (SlotResult, error) {
	if err := in.validate(); err != nil {
		return SlotResult{}, err
	}
	attrs := startAttributes(ctx, in.Topic, in.Slot)
	res, err := runSlot(ctx, in)
	outcome := OutcomeDone
	if err != nil {
		outcome = OutcomeFailed
	}
	workflow.SetCurrentDetails(ctx, res.Line(outcome, err))
	if attrs { // the outcome, for the UI's filters (AttrOutcome)
		endAttributes(ctx, outcome, AttrEvents.ValueSet(int64(res.Events)))
	}
	return res, err
}

// runSlot is SlotWorkflow's work: plan, process, sum up.
func runSlot(ctx workflow.Context, in SlotInput) (SlotResult, error) {
	res := SlotResult{Topic: in.Topic, Slot: in.Slot}
	info := workflow.GetInfo(ctx)

	// Tailing: the batches start now and read records as they arrive; the
	// plans are made once the minute (and the grace) is over.
	planAt := in.Slot.Add(time.Minute + in.Grace)
	tails := map[int32]tail{}
	tctx, cancelTails := workflow.WithCancel(ctx)
	if in.Tail && in.Source == activities.SourceKafka && workflow.Now(ctx).Before(planAt) {
		if err := sleepBeforeTails(ctx, in.Slot); err != nil {
			return res, err
		}
		if err := startTails(tctx, in, planAt, tails); err != nil {
			return res, err
		}
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("tailing %d partitions until %s", len(tails), planAt.Format(time.TimeOnly)))
		if d := planAt.Add(-planLeadOf(ctx)).Sub(workflow.Now(ctx)); d > 0 {
			if err := workflow.Sleep(ctx, d); err != nil {
				return res, err
			}
		}
	}

	workflow.SetCurrentDetails(ctx, "planning")
	plan, err := slotPlans(ctx, in, info.WorkflowExecution.ID, len(tails) > 0, planAt)
	if err != nil {
		cancelTails()
		return res, err // unwrapped, so that callers see the activity's error type
	}
	res.NewPlans, res.PlanWait = plan.New, dur.Duration(plan.Waited)

	workflow.SetCurrentDetails(ctx, fmt.Sprintf("processing %d batches", len(plan.Batches)))
	futures := make([]workflow.Future, len(plan.Batches))
	split := map[int32]bool{} // partitions whose plan is split into sub-batches
	for _, b := range plan.Batches {
		split[b.Partition] = split[b.Partition] || b.Sub > 0
	}
	// The batches no tail ran first, then the tails' (waiting for a group
	// of tails does not hold the others back), then a batch of its own for
	// each plan whose tail failed.
	for i, b := range plan.Batches {
		if _, ok := tails[b.Partition]; !ok || b.Sub != 0 { // a tail is its partition's first sub-batch
			futures[i] = startBatch(ctx, in, b, split[b.Partition])
		}
	}
	for i, f := range tailResults(ctx, plan.Batches, tails) {
		futures[i] = f
	}
	for i, b := range plan.Batches {
		if futures[i] == nil {
			futures[i] = startBatch(ctx, in, b, split[b.Partition])
		}
	}
	windows := map[time.Time]bool{}
	var firstErr error
	for i, f := range futures {
		var br activities.BatchResult
		if err := f.Get(ctx, &br); err != nil {
			workflow.GetLogger(ctx).Error("batch failed", "topic", plan.Batches[i].Topic,
				"partition", plan.Batches[i].Partition, "error", err)
			if firstErr == nil {
				firstErr = err // unwrapped, so that callers see the activity's error type
			}
			continue
		}
		b := br.Batch
		res.Batches = append(res.Batches, b)
		if br.Tailed {
			res.Tailed++
		}
		res.Offsets += b.Offsets()
		res.Events += b.Events
		res.LateEvents += b.LateEvents
		res.EarlyEvents += b.EarlyEvents
		res.DeadLetters += b.DeadLetters
		res.Markers += b.Markers
		res.Skipped += b.Skipped
		if b.Idle {
			res.IdleParts = append(res.IdleParts, b.Partition)
		}
		for _, w := range br.Windows {
			windows[w] = true
		}
	}
	for w := range windows {
		res.Windows = append(res.Windows, w)
	}
	slices.SortFunc(res.Windows, func(x, y time.Time) int { return x.Compare(y) })
	// The window totals of the hours it touched, from the partials it wrote
	// (those of the batches that failed are refreshed by their rerun).
	if len(res.Windows) > 0 && workflow.GetVersion(ctx, "window-totals", workflow.DefaultVersion, 1) == 1 {
		workflow.SetCurrentDetails(ctx, "refreshing window totals")
		err := refreshTotals(ctx, activities.TotalsInput{Topic: in.Topic, Windows: res.Windows})
		if err != nil && firstErr == nil {
			firstErr = err
		}
		// The windows' anomaly scores, again: late events may have changed
		// them. A failure is told, not fatal: the windows are exact.
		if err == nil && workflow.GetVersion(ctx, "anomalies", workflow.DefaultVersion, 1) == 1 {
			workflow.SetCurrentDetails(ctx, "scoring anomalies")
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: 5 * time.Minute, HeartbeatTimeout: time.Minute,
				Summary:     fmt.Sprintf("%s anomalies", in.Topic),
				RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: []string{activities.ErrTypeBadInput}},
			})
			if err := workflow.ExecuteActivity(actx, a.ScoreAnomalies, activities.AnomalyInput{Topic: in.Topic, Windows: res.Windows}).
				Get(ctx, &res.Anomalies); err != nil {
				workflow.GetLogger(ctx).Error("anomaly scoring failed", "topic", in.Topic, "error", err)
				res.Note = "anomaly scoring failed: " + err.Error()
			}
		}
	}
	if firstErr != nil {
		return res, firstErr
	}
	// Minute end to slot closed (replay-safe: not recorded on replay).
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"topic": in.Topic}).
		Timer(metrics.SlotLatency).Record(workflow.Now(ctx).Sub(in.Slot.Add(time.Minute)))
	return res, nil
}

// startBatch starts the activity of one planned batch.
func startBatch(ctx workflow.Context, in SlotInput, b ledger.Batch, split bool) workflow.Future {
	summary := fmt.Sprintf("%s/%d offsets [%d,%d)", b.Topic, b.Partition, b.Start, b.End)
	if split {
		summary += fmt.Sprintf(" (sub-batch %d)", b.Sub)
	}
	info := workflow.GetInfo(ctx)
	actx := workflow.WithActivityOptions(ctx, batchOptions(in, 2*time.Hour, summary))
	return workflow.ExecuteActivity(actx, a.ProcessBatch, activities.BatchInput{
		Plan: b, Source: in.Source, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID})
}

// batchOptions are the options of the batch activities.
func batchOptions(in SlotInput, timeout time.Duration, summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    in.HeartbeatTimeout,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{activities.ErrTypeOffsetsGone, activities.ErrTypeBadInput, activities.ErrTypeNotArchived},
		},
	}
}

// tailDelay is how far into its minute a slot starts its tails. A slot
// starts as the minute before it ends, and that minute's slot then plans,
// finishes its batches and refreshes its totals within seconds: 64 tails
// started at that moment (at 64 partitions) delayed its totals refresh by
// half a second waiting for an activity slot's poll, and took CPU from
// its last reads and writes. A tail started 10 s late reads those 10 s
// of records in well under a second.
const tailDelay = 10 * time.Second

// planLead is how long before its planning time a tailing slot starts its
// planner, which waits in its activity until that time (PlanInput's
// NotBefore): the workflow task, the planner's start and its activity's
// dispatch (measured here at 64 partitions: 0.4-0.8 s after the minute's
// end, when every slot's tails finish at once) happen before the minute
// ends, not after it. The plans are the same: they are made at the same
// time, from the same offsets.
const planLead = 2 * time.Second

// planLeadOf is planLead, or 0 for runs started by a worker older than it
// (workflow.GetVersion).
func planLeadOf(ctx workflow.Context) time.Duration {
	if workflow.GetVersion(ctx, "plan-lead", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return 0
	}
	return planLead
}

// sleepBeforeTails waits until tailDelay into the slot's minute, if it is
// not there yet. Runs started by a worker older than this start their
// tails at once (workflow.GetVersion).
func sleepBeforeTails(ctx workflow.Context, slot time.Time) error {
	if workflow.GetVersion(ctx, "tail-delay", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if d := slot.Add(tailDelay).Sub(workflow.Now(ctx)); d > 0 {
		return workflow.Sleep(ctx, d)
	}
	return nil
}

// tailGroup is how many partitions' tails run in one activity
// (ProcessTails): at 64 partitions, 8 activities instead of 64, so that
// the slot's end costs Temporal 8 activity completions, not 64. A topic
// of 8 partitions or fewer has one.
const tailGroup = 8

// tail is where a partition's tail will give its result: its own
// ProcessBatch activity (runs started before tailGroup), or member i of a
// ProcessTails activity.
type tail struct {
	f     workflow.Future
	group bool
	i     int
}

// startTails starts the tails of the topic's partitions: one tailing batch
// per partition, in groups of tailGroup partitions (workflow.GetVersion:
// one activity each in runs started by an older worker).
func startTails(ctx workflow.Context, in SlotInput, planAt time.Time, tails map[int32]tail) error {
	var parts []int32
	pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	if err := workflow.ExecuteActivity(pctx, a.TopicPartitions, in.Topic).Get(ctx, &parts); err != nil {
		return err
	}
	info := workflow.GetInfo(ctx)
	// A tail gives up when no plan came long after the slot's end (the
	// planner failing makes the slot fail, and cancels the tails first).
	until := planAt.Add(in.IdleWait + plannerWaitMax + 5*time.Minute)
	input := func(p int32) activities.BatchInput {
		return activities.BatchInput{
			Plan: ledger.Batch{Topic: in.Topic, Partition: p, Slot: in.Slot}, Source: in.Source, Tail: true, TailUntil: until,
			WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID}
	}
	timeout := until.Sub(workflow.Now(ctx)) + 2*time.Hour
	if workflow.GetVersion(ctx, "tail-groups", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		for _, p := range parts {
			actx := workflow.WithActivityOptions(ctx, batchOptions(in, timeout,
				fmt.Sprintf("%s/%d tailing slot %s", in.Topic, p, in.Slot.Format("15:04Z"))))
			tails[p] = tail{f: workflow.ExecuteActivity(actx, a.ProcessBatch, input(p))}
		}
		return nil
	}
	for g := range slices.Chunk(parts, tailGroup) {
		var gin activities.TailsInput
		for _, p := range g {
			gin.Batches = append(gin.Batches, input(p))
		}
		opts := batchOptions(in, timeout, fmt.Sprintf("%s/%s tailing slot %s", in.Topic, partitionRange(g), in.Slot.Format("15:04Z")))
		// Not retried: a tail that did not end is run again from its plan,
		// as an ordinary batch (runSlot).
		opts.RetryPolicy = &temporal.RetryPolicy{MaximumAttempts: 1}
		f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), a.ProcessTails, gin)
		for i, p := range g {
			tails[p] = tail{f: f, group: true, i: i}
		}
	}
	return nil
}

// partitionRange names partitions for a summary: "3", or "0-7" (or a list,
// when they are not consecutive).
func partitionRange(ps []int32) string {
	first, last := ps[0], ps[len(ps)-1]
	switch {
	case len(ps) == 1:
		return fmt.Sprint(first)
	case int(last-first) == len(ps)-1:
		return fmt.Sprintf("%d-%d", first, last)
	}
	return strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ps)), ","), "[]")
}

// tailResults gets what the tails of the slot's plans gave: for each plan
// a tail ran (its partition's first sub-batch), a future of its result, or
// nothing when its tail failed (it is then run as an ordinary batch).
func tailResults(ctx workflow.Context, plans []ledger.Batch, tails map[int32]tail) map[int]workflow.Future {
	out := map[int]workflow.Future{}
	groups := map[workflow.Future][]activities.TailOutcome{}
	for i, b := range plans {
		t, ok := tails[b.Partition]
		if !ok || b.Sub != 0 {
			continue
		}
		if !t.group {
			out[i] = t.f
			continue
		}
		outs, got := groups[t.f]
		if !got {
			if err := t.f.Get(ctx, &outs); err != nil {
				workflow.GetLogger(ctx).Warn("tails failed; their plans run as ordinary batches", "topic", b.Topic, "error", err)
			}
			groups[t.f] = outs
		}
		if t.i < len(outs) && outs[t.i].Err == "" {
			f, set := workflow.NewFuture(ctx)
			set.SetValue(outs[t.i].Result)
			out[i] = f
		}
	}
	return out
}

// slotPlans returns the slot's plans: read from the ledger when they all
// exist (a rerun, or planned by a backfill), else made by the planner. A
// slot that tailed its minute is the live run, whose plans the planner
// makes (and which it would return as they are if they existed): it goes
// to the planner at once, which saves the read and a workflow task at the
// moment its latency is counted. Runs started by a worker older than this
// read first (workflow.GetVersion).
func slotPlans(ctx workflow.Context, in SlotInput, workflowID string, tailed bool, planAt time.Time) (activities.PlanResult, error) {
	pin := PlannerInput{Topic: in.Topic, Slots: []time.Time{in.Slot}, IdleWait: in.IdleWait, WorkflowID: workflowID}
	if tailed && workflow.GetVersion(ctx, "tail-plans-direct", workflow.DefaultVersion, 1) == 1 {
		pin.NotBefore = planAt
	} else {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: []string{activities.ErrTypeBadInput}},
		})
		var res activities.PlanResult
		err := workflow.ExecuteActivity(actx, a.SlotPlans, activities.PlanInput{Topic: in.Topic, Slot: in.Slot,
			ExistingOnly: in.Source == activities.SourceRaw}).Get(ctx, &res)
		if err != nil || res.Complete {
			return res, err
		}
	}
	made, err := planSlots(ctx, pin)
	if err != nil {
		return activities.PlanResult{}, err
	}
	return made[0], nil
}

// refreshTotals runs the RefreshTotals activity.
func refreshTotals(ctx workflow.Context, in activities.TotalsInput) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		Summary:             fmt.Sprintf("%s window totals", in.Topic),
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: []string{activities.ErrTypeBadInput}},
	})
	return workflow.ExecuteActivity(actx, a.RefreshTotals, in).Get(ctx, nil)
}
