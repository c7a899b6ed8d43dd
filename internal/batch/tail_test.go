package batch

import (
	"context"
	"testing"
	"time"
)

// In the quiet after its minute's end a tail writes nothing, yet stays
// alive, and its last heartbeat must stand: a progress a retry of an
// ungrouped tail resumes from, not replaced by one that says only that it
// is alive.
func TestTailQuietAfterEndKeepsItsProgress(t *testing.T) {
	ctx := context.Background()
	hb := &memBeat{}
	p := &Processor{Ledger: newLedger(), Sink: newSink(), BeatEvery: time.Millisecond}
	r := p.newRun(plan(10, 0), hb, 10, false)
	r.st.Next = 20
	if err := r.beat(ctx); err != nil { // stores nothing (no rows pending), heartbeats [10, 20)
		t.Fatal(err)
	}
	r.st.Next = 30 // read since, not stored
	tl := &tail{p: p, hb: hb, end: time.Now().Add(-time.Second), r: r}
	beats := hb.n
	for range 3 {
		time.Sleep(2 * time.Millisecond)
		if err := tl.maybeBeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if hb.n == beats {
		t.Fatal("no heartbeat in the quiet after the end: the tail must stay alive")
	}
	if got := hb.progress(); got.Start != 10 || got.Next != 20 {
		t.Fatalf("last heartbeat [%d, %d) after the quiet beats: want the stored progress [10, 20) kept", got.Start, got.Next)
	}
}
