package e2e

import (
	"testing"
	"time"
)

// A slot that takes a long history (here a schedule's first slot after
// hours of records, shrunk to a few thousand offsets by a small
// RTB_MAX_BATCH_OFFSETS) runs as sub-batches of bounded size, in parallel;
// together they hold exactly the plan's offsets, and the windows are exact,
// also after a rerun.
func TestHugeSlotRunsAsSubBatches(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t, "RTB_MAX_BATCH_OFFSETS=1000")
	topic := e.newTopic(t, 2)
	base := pastBase(30)
	d := standard(51, 2, base.Add(-20*time.Minute), 20, 400) // 20 minutes of history before the first slot
	e.produce(t, topic, d.recs)

	first := e.runSlot(t, topic, base) // takes the whole history: ~4,000 offsets per partition
	subs := map[int32]int{}
	for _, b := range first.Batches {
		subs[b.Partition]++
		if b.Offsets() > 1000 {
			t.Errorf("partition %d sub-batch %d holds %d offsets, more than 1000", b.Partition, b.Sub, b.Offsets())
		}
	}
	if subs[0] < 4 || subs[1] < 4 {
		t.Fatalf("sub-batches per partition: %v, want at least 4 each for ~4,000 offsets", subs)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	if r := e.reconcile(t, topic, base.Add(-time.Minute), base.Add(time.Minute), false); len(r.Found) != 0 {
		t.Fatalf("reconciliation found %+v", r.Found)
	}
	again := e.runSlot(t, topic, base)
	if again.NewPlans != 0 || len(again.Batches) != len(first.Batches) || again.Events != first.Events {
		t.Fatalf("rerun: %d new plans, %d batches, %d events; first run %d batches, %d events",
			again.NewPlans, len(again.Batches), again.Events, len(first.Batches), first.Events)
	}
	e.checkExact(t, topic, d.want)
}
