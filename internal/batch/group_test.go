package batch

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// A group runs its batches at once, each as it would run on its own: a
// batch that fails does not stop the others and its outcome says why, and
// the group's heartbeats carry no batch's progress (several could pass
// Temporal's payload limit together; a retry starts each batch again).
func TestGroupRunsEachBatchAndReportsFailuresApart(t *testing.T) {
	f := newFixture(t)
	f.produceMinutes()
	f.ledger.plan(prevPlan(0, 20))
	p := f.processor()
	p.BeatEvery = time.Millisecond
	bad := tailInput()
	bad.Source = "carrier pigeon"
	hb := &memBeat{}
	type group struct {
		out []Outcome
		err error
	}
	done := make(chan group, 1)
	go func() {
		out, err := p.ProcessGroup(testCtx(t), []Input{tailInput(), bad}, hb)
		done <- group{out, err}
	}()
	eventually(t, "the tail writes what it read before its plan exists", func() bool { return len(f.sink.deadOffsets()) > 0 })
	f.ledger.plan(plan(20, 60))
	var g group
	select {
	case g = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the group did not end")
	}
	if g.err != nil || len(g.out) != 2 {
		t.Fatalf("group: %v, %d outcomes", g.err, len(g.out))
	}
	if g.out[0].Err != "" || !g.out[0].Result.Tailed {
		t.Fatalf("the tail: %+v", g.out[0])
	}
	f.checkDone(g.out[0].Result, 20, 60)
	if g.out[1].Err == "" {
		t.Fatal("a batch of an unknown source reported no error")
	}
	aliveJSON, _ := json.Marshal(alive)
	if hb.n == 0 || hb.progress().Start != alive.Start || hb.maxSize > len(aliveJSON) {
		t.Fatalf("the group heartbeat %d times, the largest %d bytes, the last %+v: want only that it is alive",
			hb.n, hb.maxSize, hb.progress())
	}
}

// A group whose context ends fails as a whole: the slot runs its batches
// again from their plans.
func TestGroupCancelled(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot, 10, 0)...)
	ctx, cancel := context.WithCancel(testCtx(t))
	time.AfterFunc(200*time.Millisecond, cancel)
	out, err := f.processor().ProcessGroup(ctx, []Input{tailInput()}, &memBeat{})
	if !errors.Is(err, context.Canceled) || out != nil {
		t.Fatalf("cancelled group: %v, %v", out, err)
	}
}
