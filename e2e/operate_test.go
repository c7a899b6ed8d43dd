package e2e

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/reconcile"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// execute runs a workflow on the test task queue and waits for its result.
func (e *env) execute(t *testing.T, id string, wf, arg, res any) error {
	t.Helper()
	run, err := e.temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: id, TaskQueue: e.cfg.TaskQueue, WorkflowRunTimeout: 10 * time.Minute,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, wf, arg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return run.Get(ctx, res)
}

func (e *env) backfill(t *testing.T, topic string, from, to time.Time, source activities.Source) (workflows.BackfillProgress, error) {
	t.Helper()
	var p workflows.BackfillProgress
	err := e.execute(t, workflows.BackfillID(topic, from, to), workflows.BackfillWorkflow,
		workflows.BackfillInput{Topic: topic, From: from, To: to, Source: source, Parallelism: 3, IdleWait: time.Second}, &p)
	return p, err
}

func (e *env) reconcile(t *testing.T, topic string, from, to time.Time, repair bool) workflows.ReconcileResult {
	t.Helper()
	var r workflows.ReconcileResult
	if err := e.execute(t, workflows.ReconcileID(topic, from, to), workflows.ReconcileWorkflow,
		workflows.ReconcileInput{Topic: topic, From: from, To: to, Repair: repair, Grace: time.Second}, &r); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return r
}

// deletePartials removes rows by hand, as an operator's mistake would, and
// waits for ClickHouse's mutation to finish.
func (e *env) deletePartials(t *testing.T, where string, args ...any) {
	t.Helper()
	ctx := context.Background()
	if err := e.db.Exec(ctx, "ALTER TABLE "+e.table("window_partials")+" DELETE WHERE "+where, args...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		var pending uint64
		if err := e.db.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = 'window_partials' AND is_done = 0",
			e.cfg.ClickHouseDatabase).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the delete mutation did not finish in 30 s")
}

func findings(r workflows.ReconcileResult, kind string) int {
	n := 0
	for _, f := range r.Found {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

// The worker was down for several minutes while events kept arriving: a
// backfill of that range makes the windows exact, and reconciliation then
// finds nothing.
func TestBackfillAfterDowntime(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(90)
	d := standard(11, 2, base, 5, 600)
	e.produce(t, topic, d.recs)
	e.runSlot(t, topic, base) // before the outage

	p, err := e.backfill(t, topic, base.Add(time.Minute), base.Add(6*time.Minute), activities.SourceKafka)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if p.Done+p.Joined < 5 || p.Failed != 0 {
		t.Fatalf("progress %+v", p)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	r := e.reconcile(t, topic, base, base.Add(6*time.Minute), false)
	if len(r.Found) != 0 {
		t.Fatalf("after the backfill reconciliation found %v", r.Found)
	}
}

// Events hours late are counted in their own windows by the normal slots;
// a backfill of their windows finds the (later) slots that hold them.
func TestLateEventsBackfillFindsTheirSlots(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(100)
	r := rand.New(rand.NewPCG(12, 12))
	d := newDataset()
	lateWindow := base.Add(-5 * time.Hour)
	for i := 0; i < 50; i++ {
		d.add(r, 0, base.Add(time.Duration(i)*time.Second), base.Add(time.Duration(i)*time.Second))
		d.add(r, 0, base.Add(time.Minute+time.Duration(i)*time.Second), lateWindow.Add(time.Duration(i)*time.Second))
	}
	d.add(r, 0, base.Add(2*time.Minute), base.Add(2*time.Minute))
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 3)
	e.checkExact(t, topic, d.want)

	// Lose the late window, then recompute it by window range.
	e.deletePartials(t, "topic = ? AND window_start = ?", topic, lateWindow)
	if got := e.windows(t, topic); len(got) == len(d.want) {
		t.Fatal("the delete removed nothing")
	}
	p, err := e.backfill(t, topic, lateWindow, lateWindow.Add(time.Minute), activities.SourceKafka)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	// The slot holding its late events; not the window's own minute, which
	// precedes the topic's first record (its plan would be empty).
	if p.Total != 1 || p.Done != 1 {
		t.Fatalf("backfill found %d slots: %+v", p.Total, p)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
}

// Reconciliation finds deleted partials and repairs them by rerunning their
// slot; then nothing remains. A slot that never ran is no finding: the next
// slot took its offsets (issue 11, item 10), so rerunning it would plan an
// empty batch.
func TestReconcileRepairs(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(110)
	d := standard(13, 2, base, 4, 500)
	e.produce(t, topic, d.recs)
	for _, s := range []int{0, 1, 3, 4} { // slot 2 never runs
		e.runSlot(t, topic, base.Add(time.Duration(s)*time.Minute))
	}
	e.deletePartials(t, "topic = ? AND slot = ?", topic, base.Add(time.Minute))

	r := e.reconcile(t, topic, base, base.Add(5*time.Minute), false)
	if findings(r, reconcile.Missing) != 0 || findings(r, reconcile.Partials) == 0 || len(r.Remaining) != len(r.Found) {
		t.Fatalf("check only: %+v", r)
	}
	r = e.reconcile(t, topic, base, base.Add(5*time.Minute), true)
	if len(r.RepairedSlots) != 1 || !r.RepairedSlots[0].Equal(base.Add(time.Minute)) || len(r.Remaining) != 0 {
		t.Fatalf("repair: %+v", r)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)

	var runs, found uint64
	if err := e.db.QueryRow(context.Background(), "SELECT count(), sum(findings) FROM "+
		e.table("reconciliation_runs")+" WHERE topic = ?", topic).Scan(&runs, &found); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || found == 0 {
		t.Fatalf("reconciliation_runs: %d runs, %d findings", runs, found)
	}
}

// Reconciliation sees records older than the grace that no plan covers
// (the schedule stopped), and runs the slot that takes them.
func TestReconcileFindsWorkNeverDone(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(120)
	d := standard(14, 1, base, 3, 300)
	e.produce(t, topic, d.recs)
	e.runSlot(t, topic, base)
	r := e.reconcile(t, topic, base, base.Add(time.Minute), true)
	if findings(r, reconcile.Behind) != 1 || len(r.Remaining) != 0 {
		t.Fatalf("%+v", r)
	}
	e.checkExact(t, topic, d.want)
}

// Kafka dropped the offsets (retention): a backfill from Kafka says so
// clearly; from the raw archive it recomputes exactly.
func TestBackfillFromRawArchiveAfterRetention(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t) // the raw archive is on by default
	topic := e.newTopic(t, 2)
	base := pastBase(130)
	d := standard(15, 2, base, 2, 800)
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 3)
	e.checkExact(t, topic, d.want)

	admin, err := sarama.NewClusterAdminFromClient(e.kafka)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRecords(topic, map[int32]int64{0: d.hw[0], 1: d.hw[1]}); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	e.deletePartials(t, "topic = ?", topic)

	_, err = e.backfill(t, topic, base, base.Add(2*time.Minute), activities.SourceKafka)
	if err == nil || !strings.Contains(err.Error(), "no longer in Kafka") {
		t.Fatalf("backfill from Kafka after retention: want a clear 'offsets no longer in Kafka' error, got %v", err)
	}
	if _, err := e.backfill(t, topic, base, base.Add(3*time.Minute), activities.SourceRaw); err != nil {
		t.Fatalf("backfill from the raw archive: %v", err)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
}

// Two backfills of one range at once: the second is refused while the
// first runs; an overlapping one joins the slots already running. The
// result is exact.
func TestConcurrentBackfills(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(140)
	d := standard(16, 2, base, 4, 800)
	e.produce(t, topic, d.recs)
	from, to := base, base.Add(5*time.Minute)
	in := workflows.BackfillInput{Topic: topic, From: from, To: to, Parallelism: 2, IdleWait: time.Second}
	opts := client.StartWorkflowOptions{ID: workflows.BackfillID(topic, from, to), TaskQueue: e.cfg.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, WorkflowExecutionErrorWhenAlreadyStarted: true}
	ctx := context.Background()
	first, err := e.temporal.ExecuteWorkflow(ctx, opts, workflows.BackfillWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.temporal.ExecuteWorkflow(ctx, opts, workflows.BackfillWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		t.Fatalf("a second backfill of the same range: want it refused, got %v", err)
	}
	over := in
	over.From = base.Add(time.Minute)
	second, err := e.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.BackfillID(topic, over.From, to),
		TaskQueue: e.cfg.TaskQueue}, workflows.BackfillWorkflow, over)
	if err != nil {
		t.Fatal(err)
	}
	var p1, p2 workflows.BackfillProgress
	if err := first.Get(ctx, &p1); err != nil {
		t.Fatal(err)
	}
	if err := second.Get(ctx, &p2); err != nil {
		t.Fatal(err)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	t.Logf("first %v; second %v", p1, p2)
}
