package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

var slot = time.Date(2026, 11, 24, 21, 14, 0, 0, time.UTC)

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(SlotWorkflow)
	env.RegisterWorkflow(PlannerWorkflow)
	env.RegisterWorkflow(ScheduledSlotWorkflow)
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.RefreshTotals, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(a.ScoreAnomalies, mock.Anything, mock.Anything).Return(activities.AnomalyResult{}, nil).Maybe()
	return env
}

// recordRefreshes records the inputs of the RefreshTotals activities env
// starts (newEnv's mock completes them).
func recordRefreshes(t *testing.T, env *testsuite.TestWorkflowEnvironment) *[]activities.TotalsInput {
	var got []activities.TotalsInput
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name == "RefreshTotals" {
			var in activities.TotalsInput
			if err := args.Get(&in); err != nil {
				t.Error(err)
			}
			got = append(got, in)
		}
	})
	return &got
}

func plans() activities.PlanResult {
	return activities.PlanResult{New: 2, Batches: []ledger.Batch{
		{Topic: "t", Partition: 0, Slot: slot, Start: 0, End: 10, State: ledger.StatePlanned},
		{Topic: "t", Partition: 1, Slot: slot, Start: 5, End: 9, State: ledger.StatePlanned, Idle: true},
	}}
}

func done(in activities.BatchInput) (activities.BatchResult, error) {
	b := in.Plan
	b.State = ledger.StateDone
	b.Events = uint64(b.End-b.Start) - 1
	b.DeadLetters = 1
	b.LateEvents = 2
	return activities.BatchResult{Batch: b, Windows: []time.Time{slot.Add(-time.Hour), slot}}, nil
}

// notPlanned is what SlotPlans says of a slot never planned.
func notPlanned(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(a.SlotPlans, mock.Anything, mock.Anything).Return(activities.PlanResult{}, nil)
}

func TestSlotWorkflowSumsBatches(t *testing.T) {
	env := newEnv(t)
	notPlanned(env)
	env.OnActivity(a.PlanSlot, mock.Anything, mock.MatchedBy(func(in activities.PlanInput) bool {
		return in.Topic == "t" && in.Slot.Equal(slot) && in.IdleWait == DefaultIdleWait && in.WorkflowID != ""
	})).Return(plans(), nil).Once()
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) { return done(in) }).Times(2)
	refreshes := recordRefreshes(t, env)
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res SlotResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	// Once the batches are done, the totals of the windows they touched.
	refreshed := *refreshes
	if len(refreshed) != 1 || refreshed[0].Topic != "t" || fmt.Sprint(refreshed[0].Windows) != fmt.Sprint(res.Windows) {
		t.Errorf("window totals refreshed %+v, want once for the windows %v", refreshed, res.Windows)
	}
	if res.Offsets != 14 || res.Events != 12 || res.DeadLetters != 2 || res.LateEvents != 4 || len(res.Windows) != 2 ||
		len(res.Batches) != 2 || res.NewPlans != 2 || len(res.IdleParts) != 1 || res.IdleParts[0] != 1 {
		t.Fatalf("result %+v", res)
	}
	env.AssertExpectations(t)
}

func TestSlotWorkflowRejectsBadInput(t *testing.T) {
	for _, in := range []SlotInput{{Topic: "", Slot: slot}, {Topic: "t", Slot: slot.Add(time.Second)}, {Topic: "t"}} {
		env := newEnv(t)
		env.ExecuteWorkflow(SlotWorkflow, in)
		var appErr *temporal.ApplicationError
		if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeBadInput {
			t.Fatalf("input %+v: want a BadInput error, got %v", in, err)
		}
	}
}

func TestSlotWorkflowFailsWhenABatchFails(t *testing.T) {
	env := newEnv(t)
	notPlanned(env)
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(plans(), nil)
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) {
			if in.Plan.Partition == 1 {
				return activities.BatchResult{}, temporal.NewNonRetryableApplicationError("gone", activities.ErrTypeOffsetsGone, nil)
			}
			return done(in)
		})
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeOffsetsGone {
		t.Fatalf("want the batch's OffsetsGone error, got %v", err)
	}
}

func TestBatchActivityIsRetried(t *testing.T) {
	env := newEnv(t)
	notPlanned(env)
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(plans(), nil)
	var mu sync.Mutex // the batches run on goroutines of their own
	calls := map[int32]int{}
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) {
			mu.Lock()
			calls[in.Plan.Partition]++
			n := calls[in.Plan.Partition]
			mu.Unlock()
			if n == 1 {
				return activities.BatchResult{}, errors.New("clickhouse: connection reset")
			}
			return done(in)
		})
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls[0] != 2 || calls[1] != 2 {
		t.Fatalf("calls %v", calls)
	}
}

func TestScheduledSlotRunsTheMinuteThatEnded(t *testing.T) {
	env := newEnv(t)
	notPlanned(env)
	env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(scheduledStartTime.ValueSet(slot.Add(time.Minute + 5*time.Second))))
	env.OnActivity(a.PlanSlot, mock.Anything, mock.MatchedBy(func(in activities.PlanInput) bool {
		return in.Slot.Equal(slot) && in.WorkflowID == SlotWorkflowID("t", slot)
	})).Return(plans(), nil).Once()
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) { return done(in) })
	env.ExecuteWorkflow(ScheduledSlotWorkflow, ScheduledInput{Topic: "t"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res SlotResult
	if err := env.GetWorkflowResult(&res); err != nil || !res.Slot.Equal(slot) || res.Events != 12 {
		t.Fatalf("%+v %v", res, err)
	}
	env.AssertExpectations(t)
}

// A slot whose plans all exist (a rerun) reads them and never takes the
// planner's lock.
func TestRerunSkipsThePlanner(t *testing.T) {
	env := newEnv(t)
	existing := plans()
	existing.Complete, existing.New = true, 0
	env.OnActivity(a.SlotPlans, mock.Anything, mock.Anything).Return(existing, nil).Once()
	// PlanSlot is mocked (an unmocked activity records no call, so that
	// asserting it was not called could never fail), and counts its calls.
	var planned atomic.Int32
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
			planned.Add(1)
			return plans(), nil
		}).Maybe()
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) { return done(in) }).Times(2)
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res SlotResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if n := planned.Load(); n != 0 || res.NewPlans != 0 {
		t.Fatalf("a rerun asked the planner: PlanSlot called %d times, %d new plans", n, res.NewPlans)
	}
	env.AssertExpectations(t)
}

// The planner plans the slots it is given one after the other, in order.
func TestPlannerPlansInOrder(t *testing.T) {
	env := newEnv(t)
	var mu sync.Mutex // the activities run on goroutines of their own
	var order []time.Time
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, in.Slot)
			return activities.PlanResult{Complete: true}, nil
		})
	slots := []time.Time{slot, slot.Add(time.Minute), slot.Add(2 * time.Minute)}
	env.ExecuteWorkflow(PlannerWorkflow, PlannerInput{Topic: "t", Slots: slots})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || !order[0].Equal(slots[0]) || !order[2].Equal(slots[2]) {
		t.Fatalf("planned %v", order)
	}
}

func TestIDs(t *testing.T) {
	kst := slot.In(time.FixedZone("KST", 9*3600))
	for _, c := range [][2]string{
		{SlotWorkflowID("ad-events", kst), "slot-ad-events-2026-11-24T21:14Z"},
		{PlannerWorkflowID("ad-events"), "planner-ad-events"},
		{BackfillID("ad-events", kst, kst.Add(time.Hour)), "backfill-ad-events-2026-11-24T21:14Z-2026-11-24T22:14Z"},
		{ReconcileID("ad-events", kst, kst.Add(time.Hour)), "reconcile-ad-events-2026-11-24T21:14Z-2026-11-24T22:14Z"},
		{ScheduleID("ad-events"), "slots-ad-events"},
		{ReconcileScheduleID("ad-events"), "reconcile-ad-events"},
		{ScheduledWorkflowID("ad-events"), "scheduled-slot-ad-events"},
		{ScheduledReconcileWorkflowID("ad-events"), "scheduled-reconcile-ad-events"},
	} {
		if got, want := c[0], c[1]; got != want {
			t.Errorf("ID %q, want %q", got, want)
		}
	}
}

// A tailing slot starts its batches at once, one per partition (in one
// group of tails), and plans only once its minute and the grace are over;
// the tails end as the plans.
func TestTailingSlotPlansAfterItsMinute(t *testing.T) {
	env := newEnv(t)
	env.SetStartTime(slot.Add(10 * time.Second))
	grace := 3 * time.Second
	planAt := slot.Add(time.Minute + grace)
	env.OnActivity(a.TopicPartitions, mock.Anything, "t").Return([]int32{0, 1}, nil).Once()
	env.OnActivity(a.ProcessTails, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TailsInput) ([]activities.TailOutcome, error) {
			for i, b := range in.Batches {
				if !b.Tail || !b.TailUntil.After(planAt) || b.Plan.End != 0 || !b.Plan.Slot.Equal(slot) || b.Plan.Partition != int32(i) {
					return nil, fmt.Errorf("not the tails of partitions 0 and 1: %+v", in)
				}
			}
			return tailsDone(in), nil
		}).Once()
	// A tailing slot goes to the planner without reading the ledger first,
	// planLead ahead of its time, which the planning waits for.
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
			if env.Now().Before(planAt.Add(-planLead)) || !in.NotBefore.Equal(planAt) {
				return activities.PlanResult{}, fmt.Errorf("planner started at %s, to plan from %s; want from %s, started at most %s before",
					env.Now(), in.NotBefore, planAt, planLead)
			}
			return plans(), nil
		}).Once()
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot, Tail: true, Grace: grace})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res SlotResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Tailed != 2 || res.Offsets != 14 || res.Events != 12 {
		t.Fatalf("result %+v", res)
	}
	env.AssertExpectations(t)
}

// tailsDone is what a group of tails returns: each tail's plan (from
// plans()) processed.
func tailsDone(in activities.TailsInput) []activities.TailOutcome {
	out := make([]activities.TailOutcome, len(in.Batches))
	for i, b := range in.Batches {
		for _, p := range plans().Batches {
			if p.Partition == b.Plan.Partition {
				b.Plan = p
			}
		}
		out[i].Result, _ = done(b)
		out[i].Result.Tailed = true
	}
	return out
}

// The tails of many partitions run in groups of tailGroup, one activity
// each; a tail that failed, or a group that did, has its plans run as
// ordinary batches, and the slot is still whole.
func TestTailsRunInGroupsAndFailedTailsRunAgain(t *testing.T) {
	parts := make([]int32, 2*tailGroup+2) // groups of 8, 8 and 2
	many := activities.PlanResult{New: len(parts)}
	for i := range parts {
		parts[i] = int32(i)
		many.Batches = append(many.Batches, ledger.Batch{Topic: "t", Partition: int32(i), Slot: slot, Start: 0, End: 10, State: ledger.StatePlanned})
	}
	env := newEnv(t)
	env.SetStartTime(slot.Add(10 * time.Second))
	env.OnActivity(a.TopicPartitions, mock.Anything, "t").Return(parts, nil).Once()
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(many, nil).Once()
	var mu sync.Mutex // the groups run at once, on goroutines of their own
	var groups [][]int32
	env.OnActivity(a.ProcessTails, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TailsInput) ([]activities.TailOutcome, error) {
			var g []int32
			for _, b := range in.Batches {
				g = append(g, b.Plan.Partition)
			}
			mu.Lock()
			groups = append(groups, g)
			mu.Unlock()
			if g[0] == tailGroup { // the second group fails as a whole
				return nil, errors.New("worker lost")
			}
			out := make([]activities.TailOutcome, len(in.Batches))
			for i, b := range in.Batches {
				if b.Plan.Partition == 3 { // one tail of the first group fails
					out[i].Err = "ClickHouse went away"
					continue
				}
				b.Plan = many.Batches[b.Plan.Partition]
				out[i].Result, _ = done(b)
				out[i].Result.Tailed = true
			}
			return out, nil
		}).Times(3)
	var again []int32
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) {
			if in.Tail || in.Plan.End != 10 {
				return activities.BatchResult{}, fmt.Errorf("not a planned batch: %+v", in)
			}
			mu.Lock()
			again = append(again, in.Plan.Partition)
			mu.Unlock()
			return done(in)
		})
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot, Tail: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res SlotResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(groups, func(x, y []int32) int { return int(x[0] - y[0]) })
	slices.Sort(again)
	want := append([]int32{3}, parts[tailGroup:2*tailGroup]...)
	if len(groups) != 3 || len(groups[0]) != tailGroup || len(groups[1]) != tailGroup || len(groups[2]) != 2 || !slices.Equal(again, want) {
		t.Fatalf("groups %v, run again %v (want %v)", groups, again, want)
	}
	if len(res.Batches) != len(parts) || res.Tailed != len(parts)-1-tailGroup || res.Offsets != 10*int64(len(parts)) {
		t.Fatalf("result %+v", res)
	}
}

// A tailing slot that starts after its minute (a catch-up) runs as any
// slot; a scheduled tailing run takes the minute that starts.
func TestScheduledTailTakesTheMinuteThatStarts(t *testing.T) {
	for _, late := range []bool{false, true} {
		env := newEnv(t)
		at := slot // the schedule fires as the minute starts
		env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(scheduledStartTime.ValueSet(at)))
		if late {
			env.SetStartTime(slot.Add(5 * time.Minute))
			notPlanned(env) // a tailing slot goes to the planner without asking
		} else {
			env.SetStartTime(slot.Add(200 * time.Millisecond))
			env.OnActivity(a.TopicPartitions, mock.Anything, "t").Return([]int32{0, 1}, nil).Once()
			env.OnActivity(a.ProcessTails, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.TailsInput) ([]activities.TailOutcome, error) {
					return tailsDone(in), nil
				}).Once()
		}
		env.OnActivity(a.PlanSlot, mock.Anything, mock.MatchedBy(func(in activities.PlanInput) bool {
			return in.Slot.Equal(slot)
		})).Return(plans(), nil).Once()
		env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) {
				if in.Tail || !late {
					return activities.BatchResult{}, fmt.Errorf("late %v, tail %v: a batch of its own", late, in.Tail)
				}
				return done(in)
			}).Maybe()
		env.ExecuteWorkflow(ScheduledSlotWorkflow, ScheduledInput{Topic: "t", Tail: true})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatalf("late %v: %v", late, err)
		}
		var res SlotResult
		if err := env.GetWorkflowResult(&res); err != nil || !res.Slot.Equal(slot) || res.Events != 12 || (res.Tailed == 2) == late {
			t.Fatalf("late %v: %+v %v", late, res, err)
		}
		env.AssertExpectations(t)
	}
}

// A slot started with its minute starts its tails tailDelay into it, out of
// the way of the slot before it, which ends then.
func TestTailsStartTailDelayIntoTheMinute(t *testing.T) {
	env := newEnv(t)
	env.SetStartTime(slot.Add(time.Second))
	var startedAt time.Time
	env.OnActivity(a.TopicPartitions, mock.Anything, "t").Return(
		func(context.Context, string) ([]int32, error) {
			startedAt = env.Now()
			return []int32{0}, nil
		}).Once()
	env.OnActivity(a.ProcessTails, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TailsInput) ([]activities.TailOutcome, error) {
			return tailsDone(in), nil
		}).Once()
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) {
			return done(in)
		}).Once() // partition 1, which has no tail
	notPlanned(env)
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(plans(), nil).Once()
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot, Tail: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if startedAt.Before(slot.Add(tailDelay)) || startedAt.After(slot.Add(tailDelay+time.Second)) {
		t.Fatalf("tails started at %s, want %s", startedAt.Format(time.TimeOnly), slot.Add(tailDelay).Format(time.TimeOnly))
	}
}

// A group of tails is named by its partitions in its activity's summary.
func TestPartitionRange(t *testing.T) {
	for _, c := range []struct {
		ps   []int32
		want string
	}{{[]int32{3}, "3"}, {[]int32{0, 1, 2, 3, 4, 5, 6, 7}, "0-7"}, {[]int32{0, 2, 5}, "0,2,5"}} {
		if got := partitionRange(c.ps); got != c.want {
			t.Errorf("partitionRange(%v) = %q, want %q", c.ps, got, c.want)
		}
	}
}
