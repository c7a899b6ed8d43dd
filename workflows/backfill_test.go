package workflows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// fakeLedger is a fake of the plans a backfill's activities see: it checks that
// no slot runs before it is planned and records the planning order.
type fakeLedger struct {
	mu       sync.Mutex
	planned  []time.Time
	early    []time.Time // slots asked for their plans before they had any
	failFrom time.Time   // PlanSlot fails for this slot and later ones, if set
}

func (l *fakeLedger) plan(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failFrom.IsZero() && !in.Slot.Before(l.failFrom) {
		return activities.PlanResult{}, temporal.NewNonRetryableApplicationError("topic changed", activities.ErrTypeTopicChanged, nil)
	}
	l.planned = append(l.planned, in.Slot)
	return plansOf(in.Slot), nil
}

func (l *fakeLedger) plans(_ context.Context, in activities.PlanInput) (activities.PlanResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.planned {
		if s.Equal(in.Slot) {
			return plansOf(in.Slot), nil
		}
	}
	l.early = append(l.early, in.Slot)
	return activities.PlanResult{}, nil
}

func plansOf(s time.Time) activities.PlanResult {
	return activities.PlanResult{Complete: true, Batches: []ledger.Batch{
		{Topic: "t", Partition: 0, Slot: s, Start: 0, End: 10, State: ledger.StatePlanned}}}
}

func runBackfill(t *testing.T, l *fakeLedger, slots []time.Time, parallelism int) (BackfillProgress, error) {
	t.Helper()
	env := backfillEnv(t, l, slots)
	env.ExecuteWorkflow(BackfillWorkflow, BackfillInput{Topic: "t", From: slots[0], To: slots[len(slots)-1].Add(time.Minute),
		Parallelism: parallelism})
	var p BackfillProgress
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&p); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return p, err
}

// backfillEnv is a test environment for BackfillWorkflow whose slots to
// run are slots, planned in l, with batches that succeed.
func backfillEnv(t *testing.T, l *fakeLedger, slots []time.Time) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newEnv(t)
	env.RegisterWorkflow(BackfillWorkflow)
	env.OnActivity(a.FindBackfillSlots, mock.Anything, mock.Anything).Return(slots, nil)
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(l.plan)
	env.OnActivity(a.SlotPlans, mock.Anything, mock.Anything).Return(l.plans)
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) { return done(in) })
	return env
}

func minutes(n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = slot.Add(time.Duration(i) * time.Minute)
	}
	return out
}

// The first slots start once they are planned, the others are planned
// while they run; all are planned in order, and none runs unplanned.
func TestBackfillPlansInOrderWhileSlotsRun(t *testing.T) {
	l := &fakeLedger{}
	slots := minutes(7)
	p, err := runBackfill(t, l, slots, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Done != 7 || p.Failed != 0 {
		t.Fatalf("progress %+v", p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.planned) != 7 {
		t.Fatalf("planned %v", l.planned)
	}
	for i, s := range l.planned {
		if !s.Equal(slots[i]) {
			t.Fatalf("planned out of order: %v", l.planned)
		}
	}
	if len(l.early) != 0 {
		t.Fatalf("slots asked for plans before they were planned: %v", l.early)
	}
}

// A planning error after the first slots leaves the slots planned with the
// rest unrun and failed, with the error, while the first slots are done.
func TestBackfillPlanningErrorFailsTheRest(t *testing.T) {
	slots := minutes(5)
	l := &fakeLedger{failFrom: slots[3]}
	_, err := runBackfill(t, l, slots, 2)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "BackfillIncomplete" {
		t.Fatalf("want BackfillIncomplete, got %v", err)
	}
	var p BackfillProgress
	if err := appErr.Details(&p); err != nil {
		t.Fatal(err)
	}
	if p.Done != 2 || p.Failed != 3 || !strings.Contains(strings.Join(p.FailedSlots, " "), "planning") {
		t.Fatalf("progress %+v", p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.early) != 0 {
		t.Fatalf("slots asked for plans before they were planned: %v", l.early)
	}
}

// A range longer than MaxRange (a mistyped year) is bad input, said
// at once: from Kafka every minute of it is a slot, and the list of them
// would pass Temporal's payload limit (2 MiB, some 60,000 slots) deep in
// the run.
func TestBackfillRefusesATooLongRange(t *testing.T) {
	env := backfillEnv(t, &fakeLedger{}, minutes(1))
	env.ExecuteWorkflow(BackfillWorkflow, BackfillInput{Topic: "t", From: slot, To: slot.Add(MaxRange + time.Minute)})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeBadInput {
		t.Fatalf("a backfill over %s: %v, want bad input", MaxRange+time.Minute, err)
	}
}
