package batch

import (
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// sub is sub-batch i of a plan of slot split at the given offsets.
func sub(i uint32, start, end int64) ledger.Batch {
	b := plan(start, end)
	b.Sub = i
	return b
}

// A tail is its partition's first sub-batch: it starts where the previous
// slot's last sub-batch ends, and ends where its own first sub-batch does;
// the other sub-batches are batches of their own. Together they count each
// offset once.
func TestTailOfASplitPlan(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot.Add(-time.Minute), 20, 0)...) // 0-19
	f.produce(span(slot, 40, 3)...)                   // 20-59
	f.produce(span(slot.Add(time.Minute), 10, 0)...)  // 60-69
	prev0, prev1 := prevPlan(0, 12), prevPlan(12, 20)
	prev1.Sub = 1
	f.ledger.plan(prev0)
	f.ledger.plan(prev1) // confirms the tail's start: 20, not 12
	p := f.processor()
	p.BeatEvery = time.Millisecond
	hb := &memBeat{}
	done := startTail(t, p, hb)
	eventually(t, "the tail reads the minute", func() bool { return hb.progress().Next == 60 })
	f.ledger.plan(sub(0, 20, 41))
	f.ledger.plan(sub(1, 41, 60))
	res := wait(t, done)
	f.checkSubDone(res, 0, 20, 41)
	res, err := p.Process(testCtx(t), Input{Plan: sub(1, 41, 60)}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	f.checkSubDone(res, 1, 41, 60)
}
