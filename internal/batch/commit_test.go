package batch

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// gatedSink is memSink whose partials writes each announce their size on
// entered, then wait for gate.
type gatedSink struct {
	*memSink
	entered chan int
	gate    chan struct{}
}

func (g *gatedSink) WritePartials(ctx context.Context, ps []Partials) error {
	g.entered <- len(ps)
	<-g.gate
	return g.memSink.WritePartials(ctx, ps)
}

func (g *gatedSink) WriteRaw(ctx context.Context, bufs []*sink.RawBuffer) error {
	g.entered <- len(bufs)
	<-g.gate
	return g.memSink.WriteRaw(ctx, bufs)
}

// commitFixture is a processor whose first partials write is held until
// the test lets it go, so that the batches that end meanwhile gather.
type commitFixture struct {
	t    *testing.T
	p    *Processor
	l    *memLedger
	s    *gatedSink
	slot time.Time
}

func newCommitFixture(t *testing.T) *commitFixture {
	s := &gatedSink{memSink: newSink(), entered: make(chan int, 100), gate: make(chan struct{})}
	l := newLedger()
	return &commitFixture{t: t, p: &Processor{Ledger: l, Sink: s}, l: l, s: s, slot: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
}

// outcome is partition n's batch, done, with one key.
func (f *commitFixture) outcome(n int32) (Partials, ledger.Batch) {
	b := ledger.Batch{Topic: "ad-events", Partition: n, Slot: f.slot, Start: 0, End: 10, State: ledger.StateDone, Events: 10, Version: 2}
	t := agg.Table{{Window: f.slot.Unix(), EventType: "click", Country: "US", AdFormat: "banner"}: {Count: 10, RevenueMicros: int64(n)}}
	return Partials{ID: b.ID(), Table: t, Version: 2}, b
}

// commitAll commits partitions from..to-1 at once, each with ctx, and
// returns their errors once every one has returned.
func (f *commitFixture) commitAll(ctx context.Context, from, to int32) <-chan []error {
	out := make(chan []error, 1)
	errs := make([]error, to-from)
	var wg sync.WaitGroup
	for n := from; n < to; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part, row := f.outcome(n)
			errs[n-from] = f.p.commits.outcomes.commit(ctx, batchEnd{partials: part, row: row}, nil, linger{}, f.p.writeOutcomes)
		}()
	}
	go func() { wg.Wait(); out <- errs }()
	return out
}

// holdFirst commits partition 0, which ends alone and is written at once,
// and returns once its write has begun (held at the gate).
func (f *commitFixture) holdFirst(ctx context.Context) <-chan []error {
	first := f.commitAll(ctx, 0, 1)
	if n := <-f.s.entered; n != 1 {
		f.t.Fatalf("first write: %d batches, want 1", n)
	}
	return first
}

// holdFirstGather holds partition 0's write (holdFirst), then commits
// partitions 1..to-1, which gather behind it.
func (f *commitFixture) holdFirstGather(ctx context.Context, to int32) (first, rest <-chan []error) {
	first = f.holdFirst(ctx)
	rest = f.commitAll(ctx, 1, to)
	f.gathered(int(to - 1))
	return first, rest
}

// gathered waits until the group after the one being written holds n batches.
func (f *commitFixture) gathered(n int) {
	eventually(f.t, "batches gathered", func() bool {
		c := &f.p.commits.outcomes
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.pending != nil && len(c.pending.items) == n
	})
}

func (f *commitFixture) done(n int32) bool {
	part, _ := f.outcome(n)
	row, ok := f.l.row(part.ID)
	return ok && row.Done()
}

func TestGroupCommitWritesTheBatchesThatEndTogetherInOneWrite(t *testing.T) {
	f := newCommitFixture(t)
	ctx := testCtx(t)
	first, rest := f.holdFirstGather(ctx, 20)
	close(f.s.gate)
	for _, errs := range [][]error{<-first, <-rest} {
		for i, err := range errs {
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
		}
	}
	if n := <-f.s.entered; n != 19 {
		t.Fatalf("second write: %d batches, want the 19 that ended during the first", n)
	}
	if f.s.partialWrites != 2 {
		t.Fatalf("%d partials writes, want 2", f.s.partialWrites)
	}
	for n := range int32(20) {
		part, _ := f.outcome(n)
		var rev int64
		for _, v := range f.s.partials[part.ID] {
			rev += v.RevenueMicros
		}
		if !f.done(n) || rev != int64(n) {
			t.Fatalf("partition %d: done %v, partials %v", n, f.done(n), f.s.partials[part.ID])
		}
	}
}

// The tails of a worker learn their plans at the same moment and end within
// a few milliseconds of each other: announced, they are written in one
// group, not the first alone and the others queued behind it.
func TestGroupCommitLeaderWaitsForTheAnnouncedBatches(t *testing.T) {
	f := newCommitFixture(t)
	c := &f.p.commits.outcomes
	c.gather = 30 * time.Second // the test's time, not the machine's, decides
	anns := make([]*announcement, 4)
	for i := range anns {
		anns[i] = c.announce()
	}
	ctx := testCtx(t)
	errs := make(chan error, 4)
	for n := range int32(4) {
		go func() {
			time.Sleep(time.Duration(n) * 10 * time.Millisecond) // they end one after the other
			part, row := f.outcome(n)
			errs <- c.commit(ctx, batchEnd{partials: part, row: row}, anns[n], linger{}, f.p.writeOutcomes)
		}()
	}
	if n := <-f.s.entered; n != 4 {
		t.Fatalf("first write: %d batches, want the 4 announced", n)
	}
	close(f.s.gate)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// One that will not come (its batch failed before its end) is
	// withdrawn, and the leader does not wait for it.
	stray, leader := c.announce(), c.announce()
	stray.withdraw()
	stray.withdraw() // twice: still one
	part, row := f.outcome(5)
	if err := c.commit(ctx, batchEnd{partials: part, row: row}, leader, linger{}, f.p.writeOutcomes); err != nil {
		t.Fatal(err)
	}
	leader.withdraw() // after its commit: nothing

	// One announced long ago (a tail whose plan is slow to come) no longer
	// holds the leader.
	old := c.announce()
	c.mu.Lock()
	c.announced[old] = time.Now().Add(-2 * maxAnnounceAge)
	c.mu.Unlock()
	part, row = f.outcome(6)
	alone := make(chan error, 1)
	go func() { alone <- c.commit(ctx, batchEnd{partials: part, row: row}, nil, linger{}, f.p.writeOutcomes) }()
	select {
	case err := <-alone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second): // the gather is 30 s
		t.Fatal("a leader waited for a batch announced long ago")
	}
	old.withdraw()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.announced) != 0 {
		t.Fatalf("%d announced batches still expected, want 0", len(c.announced))
	}
}

func TestGroupCommitFailsEveryBatchOfAGroupWhosePartialsFailAndRecordsNoneDone(t *testing.T) {
	f := newCommitFixture(t)
	ctx := testCtx(t)
	first, rest := f.holdFirstGather(ctx, 6)
	f.s.mu.Lock()
	f.s.failPartials = 2 // the first write's and the second's
	f.s.mu.Unlock()
	close(f.s.gate)
	for _, errs := range [][]error{<-first, <-rest} {
		for i, err := range errs {
			if err == nil {
				t.Fatalf("batch %d: no error from a failed write", i)
			}
		}
	}
	for n := range int32(6) {
		if f.done(n) {
			t.Fatalf("partition %d recorded done though its partials were not written", n)
		}
	}
	// Each is retried as it would be alone.
	for _, err := range <-f.commitAll(ctx, 0, 6) {
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
	}
	for n := range int32(6) {
		if !f.done(n) {
			t.Fatalf("partition %d not done after its retry", n)
		}
	}
}

func TestGroupCommitRecordsNoneDoneWhenTheLedgerWriteFails(t *testing.T) {
	f := newCommitFixture(t)
	close(f.s.gate)
	f.l.fail = 3 // however the three group, each write fails
	for _, err := range <-f.commitAll(testCtx(t), 0, 3) {
		if err == nil {
			t.Fatal("no error from a failed ledger write")
		}
	}
	for n := range int32(3) {
		if f.done(n) {
			t.Fatalf("partition %d recorded done by a failed write", n)
		}
	}
}

func TestGroupCommitWaiterWhoseContextEndsWaitsForItsGroup(t *testing.T) {
	f := newCommitFixture(t)
	ctx := testCtx(t)
	first := f.holdFirst(ctx)
	leader := f.commitAll(ctx, 1, 2)
	f.gathered(1)
	wctx, cancel := context.WithCancel(ctx)
	waiter := f.commitAll(wctx, 2, 3)
	f.gathered(2)
	cancel()
	select {
	case errs := <-waiter:
		t.Fatalf("a waiter returned (%v) while its group, which holds its rows, was not written", errs[0])
	case <-time.After(100 * time.Millisecond):
	}
	close(f.s.gate)
	for _, errs := range [][]error{<-first, <-leader, <-waiter} {
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	if !f.done(2) {
		t.Fatal("the group did not write the batch whose context ended")
	}
}

// Tailing batches store their raw events at every heartbeat: those of the
// runs that flush while another flush is written go in one insert.
func TestRunsThatFlushTogetherShareOneRawInsert(t *testing.T) {
	f := newCommitFixture(t)
	ctx := testCtx(t)
	const runs = 8
	rs := make([]*run, runs)
	for i := range rs {
		rs[i] = f.p.newRun(ledger.Batch{Topic: "ad-events", Partition: int32(i), Slot: f.slot, End: 10}, &memBeat{}, 0, false)
		for o := range int64(10) {
			ev := event.Event{EventID: fmt.Sprint(i, o), Time: f.slot, EventType: "click", Country: "US", AdFormat: "banner"}
			rs[i].raw.Add(rs[i].id, int64(i)*100+o, f.slot, &ev)
		}
	}
	errs := make(chan error, runs)
	flush := func(r *run) { errs <- r.flush(ctx) }
	go flush(rs[0])
	<-f.s.entered
	for _, r := range rs[1:] {
		go flush(r)
	}
	eventually(t, "flushes gathered", func() bool {
		c := &f.p.commits.raw
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.pending != nil && len(c.pending.items) == runs-1
	})
	close(f.s.gate)
	for range runs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := <-f.s.entered; n != runs-1 || f.s.rawWrites != 2 {
		t.Fatalf("second insert of %d runs, %d inserts; want %d runs, 2 inserts", n, f.s.rawWrites, runs-1)
	}
	for i, r := range rs {
		if r.raw.Len() != 0 {
			t.Fatalf("run %d still holds %d raw rows after its flush", i, r.raw.Len())
		}
		for o := range int64(10) {
			if _, ok := f.s.raw[int64(i)*100+o]; !ok {
				t.Fatalf("run %d: offset %d not archived", i, int64(i)*100+o)
			}
		}
	}
}

// recordGroups returns a group commit's write that records the groups it
// writes, and the groups it recorded (read once the commits returned).
func recordGroups() (*[][]int, func(context.Context, []int) error) {
	var mu sync.Mutex
	var groups [][]int
	return &groups, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		groups = append(groups, append([]int(nil), items...))
		return nil
	}
}

// A leader with a linger waits that long for others before its write, even
// with nothing announced: the tails' raw rows of one tick share an insert.
func TestGroupCommitLeaderLingers(t *testing.T) {
	for _, c := range []struct {
		linger time.Duration
		writes int
	}{{0, 2}, {time.Second, 1}} {
		var g groupCommit[int]
		groups, write := recordGroups()
		errs := make(chan error, 2)
		go func() { errs <- g.commit(context.Background(), 1, nil, linger{d: c.linger}, write) }()
		eventually(t, "the first item leads", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.pending == nil || len(g.pending.items) == 1
		})
		time.Sleep(50 * time.Millisecond)
		go func() { errs <- g.commit(context.Background(), 2, nil, linger{}, write) }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if len(*groups) != c.writes {
			t.Fatalf("linger %s: writes %v, want %d", c.linger, *groups, c.writes)
		}
	}
}

// A leader lingers only until its group holds the items it waits for (a
// worker's tails at a tick: as many as the tails it runs): a worker's only
// tail is written at once, and two are written together as soon as both
// came, not a whole linger later.
func TestGroupCommitLeaderLingersUntilItsGroupIsFull(t *testing.T) {
	for _, want := range []int{1, 2} {
		var g groupCommit[int]
		groups, write := recordGroups()
		l := linger{d: time.Hour, want: want}
		errs := make(chan error, want)
		for i := range want {
			go func() { errs <- g.commit(context.Background(), i, nil, l, write) }()
		}
		for range want {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("want %d: the group is still lingering with its %d items", want, want)
			}
		}
		if len(*groups) != 1 || len((*groups)[0]) != want {
			t.Fatalf("want %d: writes %v; want one of %d items", want, *groups, want)
		}
	}
}
