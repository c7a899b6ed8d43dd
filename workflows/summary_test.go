package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rtbpipe/rtbpipe/activities"
)

// attrsLog records the search attributes a run upserts.
type attrsLog struct {
	mu  sync.Mutex
	set []temporal.SearchAttributes
}

// withAttributes makes env's namespace have rtbpipe's search attributes and
// records what the run sets.
func withAttributes(env *testsuite.TestWorkflowEnvironment) *attrsLog {
	env.RegisterActivity(&activities.Activities{SearchAttributes: func(context.Context) (bool, error) { return true, nil }})
	l := &attrsLog{}
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.set = append(l.set, args.Get(0).(temporal.SearchAttributes))
	}).Return(nil)
	return l
}

// last is the last value the run set of an attribute, read by get.
func last[T any](l *attrsLog, get func(temporal.SearchAttributes) (T, bool)) (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v T
	ok := false
	for _, s := range l.set {
		if x, has := get(s); has {
			v, ok = x, true
		}
	}
	return v, ok
}

func (l *attrsLog) keyword(k temporal.SearchAttributeKeyKeyword) (string, bool) {
	return last(l, func(s temporal.SearchAttributes) (string, bool) { return s.GetKeyword(k) })
}

func (l *attrsLog) int64(k temporal.SearchAttributeKeyInt64) (int64, bool) {
	return last(l, func(s temporal.SearchAttributes) (int64, bool) { return s.GetInt64(k) })
}

// details is the run's current details, as the UI shows them.
func details(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	if err != nil {
		t.Fatal(err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	return md.GetCurrentDetails()
}

// A slot run tells its outcome in one line, carries its topic, minute,
// outcome and events as search attributes, and its result's durations read
// as durations.
func TestSlotRunReadsWellInTheUI(t *testing.T) {
	env := newEnv(t)
	attrs := withAttributes(env)
	notPlanned(env)
	p := plans()
	p.Waited = 1500 * time.Millisecond
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(p, nil)
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BatchInput) (activities.BatchResult, error) { return done(in) })
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := "done · slot 2026-11-24 21:14Z · 2 partitions · 12 events · 2 dead letters · 4 late events · waited 1.5s for idle partitions"
	if got := details(t, env); got != want {
		t.Errorf("details %q\nwant    %q", got, want)
	}
	if v, _ := attrs.keyword(AttrTopic); v != "t" {
		t.Errorf("RtbTopic %q", v)
	}
	if v, _ := attrs.keyword(AttrOutcome); v != OutcomeDone {
		t.Errorf("RtbOutcome %q", v)
	}
	if v, _ := attrs.int64(AttrEvents); v != 12 {
		t.Errorf("RtbEvents %d", v)
	}
	var res SlotResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil || !strings.Contains(string(b), `"PlanWait":"1.5s"`) {
		t.Errorf("result %s, %v: PlanWait is not written as a duration", b, err)
	}
}

func TestFailedSlotSaysWhy(t *testing.T) {
	env := newEnv(t)
	attrs := withAttributes(env)
	notPlanned(env)
	env.OnActivity(a.PlanSlot, mock.Anything, mock.Anything).Return(plans(), nil)
	env.OnActivity(a.ProcessBatch, mock.Anything, mock.Anything).Return(activities.BatchResult{},
		temporal.NewNonRetryableApplicationError("offsets [0,10) of t/0 are gone", activities.ErrTypeOffsetsGone, nil))
	env.ExecuteWorkflow(SlotWorkflow, SlotInput{Topic: "t", Slot: slot})
	if env.GetWorkflowError() == nil {
		t.Fatal("the slot did not fail")
	}
	if got := details(t, env); !strings.HasPrefix(got, "failed · slot 2026-11-24 21:14Z · ") || !strings.Contains(got, "are gone") {
		t.Errorf("details %q", got)
	}
	if v, _ := attrs.keyword(AttrOutcome); v != OutcomeFailed {
		t.Errorf("RtbOutcome %q", v)
	}
}

// Backfills and reconciliations carry the same attributes and an outcome
// line; a reconciliation that leaves findings says so.
func TestOperationsReadWellInTheUI(t *testing.T) {
	t.Run("backfill", func(t *testing.T) {
		env := backfillEnv(t, &fakeLedger{}, minutes(2))
		attrs := withAttributes(env)
		env.ExecuteWorkflow(BackfillWorkflow, BackfillInput{Topic: "t", From: slot, To: slot.Add(2 * time.Minute)})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if got := details(t, env); !strings.HasPrefix(got, "done · backfill t [2026-11-24T21:14Z, 2026-11-24T21:16Z)") ||
			!strings.Contains(got, "2/2 slots done") {
			t.Errorf("details %q", got)
		}
		if v, _ := attrs.keyword(AttrOutcome); v != OutcomeDone {
			t.Errorf("RtbOutcome %q", v)
		}
		if v, _ := attrs.int64(AttrEvents); v != 18 {
			t.Errorf("RtbEvents %d, want 18", v)
		}
	})
	t.Run("reconcile with findings", func(t *testing.T) {
		env := newEnv(t)
		env.RegisterWorkflow(ReconcileWorkflow)
		attrs := withAttributes(env)
		env.OnActivity(a.CheckRange, mock.Anything, mock.Anything).Return(activities.CheckReport{SlotsChecked: 3,
			Findings: []activities.Finding{{Kind: "recreated", Slot: slot}}}, nil)
		env.OnActivity(a.RecordReconciliation, mock.Anything, mock.Anything).Return(nil)
		env.ExecuteWorkflow(ReconcileWorkflow, ReconcileInput{Topic: "t", From: slot, To: slot.Add(3 * time.Minute), Repair: true})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if got := details(t, env); !strings.HasPrefix(got, "findings · reconcile t ") || !strings.Contains(got, "1 findings") {
			t.Errorf("details %q", got)
		}
		if v, _ := attrs.keyword(AttrOutcome); v != OutcomeFindings {
			t.Errorf("RtbOutcome %q", v)
		}
	})
	t.Run("reconcile that cannot check", func(t *testing.T) {
		env := newEnv(t)
		env.RegisterWorkflow(ReconcileWorkflow)
		attrs := withAttributes(env)
		env.OnActivity(a.CheckRange, mock.Anything, mock.Anything).Return(activities.CheckReport{},
			temporal.NewNonRetryableApplicationError("clickhouse down", "Down", errors.New("refused")))
		env.ExecuteWorkflow(ReconcileWorkflow, ReconcileInput{Topic: "t", From: slot, To: slot.Add(3 * time.Minute)})
		if env.GetWorkflowError() == nil {
			t.Fatal("no error")
		}
		if v, _ := attrs.keyword(AttrOutcome); v != OutcomeFailed {
			t.Errorf("RtbOutcome %q", v)
		}
	})
}

func TestCountsReadWell(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 events", 1: "1 event", 12345: "12,345 events", 1234567: "1,234,567 events"} {
		if got := count(n, "event", "events"); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
