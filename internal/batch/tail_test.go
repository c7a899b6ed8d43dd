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

// While its minute runs, a tail whose start the ledger confirmed does not
// ask the ledger again unless it must (its plan cannot exist yet); one
// whose start is a guess still asks, and so does every tail once the
// minute is over.
func TestConfirmedTailDoesNotReadTheLedgerWhileItsMinuteRuns(t *testing.T) {
	ctx := context.Background()
	l := newLedger()
	l.plan(prevPlan(0, 10))
	newTail := func(end time.Time, hold bool) *tail {
		p := &Processor{Ledger: l, Sink: newSink()} // each its own worker: no shared read
		tl := p.newTail(tailInput(), &memBeat{})
		tl.end, tl.r = end, p.newRun(plan(10, 0), &memBeat{}, 10, hold)
		tl.prevEnd, tl.hasPrev = 10, true
		return tl
	}
	reads := func(tl *tail, force bool) int {
		t.Helper()
		before := l.readCount()
		tl.lastCheck = time.Time{}
		if err := tl.check(ctx, force); err != nil {
			t.Fatal(err)
		}
		return l.readCount() - before
	}
	running := time.Now().Add(time.Minute)
	if n := reads(newTail(running, false), false); n != 0 {
		t.Fatalf("a confirmed tail of a running minute read the ledger %d times; want none", n)
	}
	if n := reads(newTail(running, false), true); n != 1 {
		t.Fatalf("a confirmed tail asked to check: %d reads, want 1", n)
	}
	if n := reads(newTail(running, true), false); n != 1 {
		t.Fatalf("a tail holding a guessed start: %d reads, want 1", n)
	}
	if n := reads(newTail(time.Now().Add(-time.Second), false), false); n != 1 {
		t.Fatalf("a confirmed tail after its minute: %d reads, want 1 (its plan is due)", n)
	}
}

// Before its slot's end a tail beats at the minute's ticks, whenever it
// last beat: every beat interval from the slot's start, and a second before
// the end; after the end, every beat interval from its last beat.
func TestTailBeatsAtTheMinutesTicks(t *testing.T) {
	p := &Processor{BeatEvery: 2 * time.Second}
	tl := p.newTail(tailInput(), &memBeat{})
	s := tl.slot
	at := func(d time.Duration) time.Time { return s.Add(d) }
	for _, c := range []struct{ last, next time.Duration }{
		{10300 * time.Millisecond, 12 * time.Second},
		{12 * time.Second, 14 * time.Second},
		{57500 * time.Millisecond, 58 * time.Second},
		{58200 * time.Millisecond, 59 * time.Second},
		{59100 * time.Millisecond, 60 * time.Second},
		{-500 * time.Millisecond, 0},
		{-3 * time.Second, -2 * time.Second},
	} {
		if got := tl.nextTick(at(c.last)); !got.Equal(at(c.next)) {
			t.Errorf("last beat at %s: next tick at %s, want %s", c.last, got.Sub(s), c.next)
		}
	}
	for _, c := range []struct {
		last, now time.Duration
		due       bool
	}{
		{10300 * time.Millisecond, 11900 * time.Millisecond, false},
		{10300 * time.Millisecond, 12 * time.Second, true}, // 1.7 s after the last beat: the tick
		{59100 * time.Millisecond, 59900 * time.Millisecond, false},
		{59100 * time.Millisecond, 61 * time.Second, false}, // after the end: the interval
		{59100 * time.Millisecond, 61100 * time.Millisecond, true},
	} {
		if got := tl.beatDue(at(c.last), at(c.now)); got != c.due {
			t.Errorf("last beat at %s, now %s: due %v, want %v", c.last, c.now, got, c.due)
		}
	}
}
