package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/rtbpipe/rtbpipe/internal/workerproc"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// batchWorkers returns, per worker identity, how many ProcessBatch
// activities of the slot's run it started (the attempt that ended them).
func (e *env) batchWorkers(t *testing.T, topic string, slot time.Time) map[string]int {
	t.Helper()
	it := e.temporal.GetWorkflowHistory(context.Background(), workflows.SlotWorkflowID(topic, slot), "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	batches := map[int64]bool{} // scheduled event IDs of ProcessBatch
	out := map[string]int{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "ProcessBatch" {
			batches[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && batches[a.GetScheduledEventId()] {
			out[a.GetIdentity()]++
		}
	}
	return out
}

// Three worker processes on one task queue share the slots' batches, and
// one of them killed in the middle of a slot, while it runs a batch that
// has written rows, loses nothing: another worker takes the batch over
// (after its heartbeat timeout) and resumes it, and every slot ends exact.
func TestSeveralWorkersShareSlotsAndSurviveAKill(t *testing.T) {
	e := getEnv(t)
	topic := e.newTopic(t, 6)
	base := pastBase(50)
	d := standard(21, 6, base, 3, 120_000)
	e.produce(t, topic, d.recs)

	procs := map[string]*workerproc.Proc{}
	for range 3 {
		w := e.startWorker(t, "RTB_WORKER_HEARTBEAT=100ms")
		procs[strconv.Itoa(w.Pid())] = w
	}
	run := e.startSlot(t, topic, base)
	victim := e.waitBatchProgress(t, run)
	pid, _, _ := strings.Cut(victim, "@")
	w, ok := procs[pid]
	if !ok {
		t.Fatalf("the batch runs on %q, none of the test's workers", victim)
	}
	w.Kill()
	t.Logf("killed worker %s", victim)
	e.waitSlot(t, run)
	e.runSlots(t, topic, base.Add(time.Minute), 3)
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)

	first := e.batchWorkers(t, topic, base)
	// (A history keeps the last attempt's start of an activity: the killed
	// worker's attempt of the batch is gone, its retry is on a survivor.)
	if first[victim] > 0 || len(first) == 0 {
		t.Errorf("slot with the kill: batches completed per worker %v, want them all on the survivors", first)
	}
	shared := map[string]int{}
	for s := 1; s < 4; s++ {
		for id, n := range e.batchWorkers(t, topic, base.Add(time.Duration(s)*time.Minute)) {
			shared[id] += n
		}
	}
	survivors := map[string]bool{}
	for id := range shared {
		survivors[id] = true
	}
	for id := range first {
		survivors[id] = true
	}
	delete(survivors, victim)
	if shared[victim] > 0 || len(survivors) != 2 {
		t.Errorf("later slots: batches per worker %v, want batches on both survivors and none on the killed one", shared)
	}
	t.Logf("batches per worker: slot with the kill %v, the next three %v", first, shared)
}
