package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// gatedLedger holds every TopicPlans read until the gate is closed, and
// fails the next fail reads.
type gatedLedger struct {
	*memLedger
	gate chan struct{}
	mu   sync.Mutex
	fail int
}

func (l *gatedLedger) TopicPlans(ctx context.Context, topic string, first, last time.Time) ([]ledger.Batch, error) {
	<-l.gate
	l.mu.Lock()
	failing := l.fail > 0
	if failing {
		l.fail--
	}
	l.mu.Unlock()
	bs, err := l.memLedger.TopicPlans(ctx, topic, first, last)
	if failing {
		return nil, errors.New("injected: ledger read failed")
	}
	return bs, err
}

func planFixture(t *testing.T) (*gatedLedger, time.Time) {
	t.Helper()
	slot := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := &gatedLedger{memLedger: newLedger(), gate: make(chan struct{})}
	var rows []ledger.Batch
	for p := range int32(4) {
		rows = append(rows, ledger.Batch{Topic: "t", Partition: p, Slot: slot, Start: 10 * int64(p), End: 10*int64(p) + 10})
	}
	rows = append(rows, ledger.Batch{Topic: "other", Partition: 0, Slot: slot, End: 5})
	if err := l.WriteBatches(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	l.reads = 0
	return l, slot
}

func TestPlanCacheSharesOneReadAmongTails(t *testing.T) {
	l, slot := planFixture(t)
	var c planCache
	const tails = 16
	var wg sync.WaitGroup
	got := make([][]ledger.Batch, tails)
	errs := make([]error, tails)
	for i := range tails {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.topicPlans(context.Background(), l, "t", slot.Add(-time.Minute), slot, time.Hour, nil)
		}()
	}
	eventually(t, "the first read reaches the ledger", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.reads) == 1
	})
	time.Sleep(50 * time.Millisecond) // the others wait on it rather than read
	close(l.gate)
	wg.Wait()
	if n := l.readCount(); n != 1 {
		t.Fatalf("%d tails made %d ledger reads, want 1 shared read", tails, n)
	}
	for i := range tails {
		if errs[i] != nil || len(got[i]) != 4 {
			t.Fatalf("tail %d: %d plans, err %v; want the topic's 4 plans", i, len(got[i]), errs[i])
		}
		for p, b := range got[i] {
			if b.Topic != "t" || b.Partition != int32(p) {
				t.Fatalf("tail %d: plan %d is %s/%d, want t/%d in partition order", i, p, b.Topic, b.Partition, p)
			}
		}
	}
	// Fresh enough: no new read. Older than asked: a new one.
	if _, err := c.topicPlans(context.Background(), l, "t", slot.Add(-time.Minute), slot, time.Hour, nil); err != nil || l.readCount() != 1 {
		t.Fatalf("a read within maxAge: %d reads, err %v; want it reused", l.readCount(), err)
	}
	if _, err := c.topicPlans(context.Background(), l, "t", slot.Add(-time.Minute), slot, 0, nil); err != nil || l.readCount() != 2 {
		t.Fatalf("a read past maxAge: %d reads, err %v; want a new one", l.readCount(), err)
	}
	// Another topic, or other slots, are reads of their own.
	bs, err := c.topicPlans(context.Background(), l, "other", slot.Add(-time.Minute), slot, time.Hour, nil)
	if err != nil || len(bs) != 1 || l.readCount() != 3 {
		t.Fatalf("another topic: %d plans, %d reads, err %v; want 1 plan from a read of its own", len(bs), l.readCount(), err)
	}
}

// A failed read is not shared: the tails that waited on it wait on one new
// read (not one each: at 64 partitions that is 63 reads at once of a ledger
// that has just failed), and a read that fails again is their error.
func TestPlanCacheDoesNotShareAFailedRead(t *testing.T) {
	l, slot := planFixture(t)
	l.fail = 1
	var c planCache
	var wg sync.WaitGroup
	var firstErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, firstErr = c.topicPlans(context.Background(), l, "t", slot, slot, time.Hour, nil)
	}()
	eventually(t, "the first read reaches the ledger", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.reads) == 1
	})
	const waiters = 3
	waiterErrs := make([]error, waiters)
	waiterPlans := make([][]ledger.Batch, waiters)
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			waiterPlans[i], waiterErrs[i] = c.topicPlans(context.Background(), l, "t", slot, slot, time.Hour, nil)
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(l.gate)
	wg.Wait()
	if firstErr == nil {
		t.Fatal("the failed read returned no error")
	}
	for i := range waiters {
		if waiterErrs[i] != nil || len(waiterPlans[i]) != 4 {
			t.Fatalf("a tail waiting on a failed read: %d plans, err %v; want the 4 plans of a new read", len(waiterPlans[i]), waiterErrs[i])
		}
	}
	if n := l.readCount(); n != 2 {
		t.Fatalf("%d ledger reads; want 2: the failed one, and one new read for its %d waiters", n, waiters)
	}

	// A waiter whose new read fails too has that error.
	l.fail = 2
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, firstErr = c.topicPlans(context.Background(), l, "t", slot, slot, 0, nil)
	}()
	eventually(t, "the read reaches the ledger", func() bool { return l.readCount() == 3 })
	_, err := c.topicPlans(context.Background(), l, "t", slot, slot, time.Hour, nil)
	wg.Wait()
	if firstErr == nil || err == nil {
		t.Fatalf("reads failing twice: errors %v and %v; want both", firstErr, err)
	}
}

func TestPlanCacheWaiterHonoursItsContext(t *testing.T) {
	l, slot := planFixture(t)
	var c planCache
	go func() { _, _ = c.topicPlans(context.Background(), l, "t", slot, slot, time.Hour, nil) }()
	eventually(t, "the first read reaches the ledger", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.reads) == 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.topicPlans(ctx, l, "t", slot, slot, time.Hour, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled waiter: err %v, want context.Canceled", err)
	}
	close(l.gate)
}

// Plans this worker wrote join every read, once, in the read's order,
// before the ledger's next read has them.
func TestPlanCacheAddsThePlansThisWorkerWrote(t *testing.T) {
	l, slot := planFixture(t)
	close(l.gate)
	var c planCache
	woken := c.woken()
	known := ledger.Batch{Topic: "t", Partition: 2, Slot: slot, Start: 20, End: 30} // the ledger has it
	fresh := ledger.Batch{Topic: "t", Partition: 1, Slot: slot.Add(time.Minute), Start: 10, End: 19}
	c.add([]ledger.Batch{known, fresh, {Topic: "other", Partition: 1, Slot: slot, End: 3}})
	select {
	case <-woken:
	default:
		t.Fatal("writing plans did not wake the waiting tails")
	}
	got, err := c.topicPlans(context.Background(), l, "t", slot, slot.Add(time.Minute), time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[4] != fresh || got[2].Partition != 2 || got[2].Slot != slot {
		t.Fatalf("plans %+v: want the ledger's 4, then the one written", got)
	}
	if got, _ := c.topicPlans(context.Background(), l, "t", slot, slot, time.Second, nil); len(got) != 4 {
		t.Fatalf("plans of the first slot only: %+v", got)
	}
}

// tailFixture is a slot's records and the previous slot's plan, ending at
// 20, with a worker's processor.
func tailFixture(t *testing.T) (*fixture, *Processor) {
	t.Helper()
	f := newFixture(t)
	f.produceMinutes()
	f.ledger.plan(prevPlan(0, 20))
	return f, f.processor()
}

// startWaitingTail starts the slot's tail on p, and returns once it has
// asked the ledger for its plan.
func startWaitingTail(t *testing.T, f *fixture, p *Processor) <-chan outcome {
	t.Helper()
	done := startTail(t, p, &memBeat{})
	eventually(t, "the tail reads the ledger", func() bool { return f.ledger.readCount() >= 2 })
	return done
}

// A tail waiting for its plan takes the plan its worker's planner wrote
// as soon as it is written, without reading the ledger for it.
func TestTailTakesThePlanItsWorkerWrote(t *testing.T) {
	f, p := tailFixture(t)
	done := startWaitingTail(t, f, p)
	p.Planned([]ledger.Batch{plan(20, 60)}) // in the ledger too, but not in this double's reads
	f.checkDone(wait(t, done), 20, 60)
}

// Nor does it wait for a ledger read begun before the plan was written: at
// the minute's end such a read can take half a second. Here the read never
// returns.
func TestTailWaitingOnALedgerReadTakesThePlanItsWorkerWrote(t *testing.T) {
	f, p := tailFixture(t)
	done := startWaitingTail(t, f, p)
	f.ledger.hang(t)
	eventually(t, "a ledger read hangs", func() bool { return f.ledger.hungReads() >= 1 })
	p.Planned([]ledger.Batch{plan(20, 60)})
	f.checkDone(wait(t, done), 20, 60)
}

// When its worker writes plans that are not its own while it waits on a
// ledger read, the tail waits for that read again, however long it has
// run: it neither begins a read of its own each time nor gives up the one
// under way (at a minute's end the planners of other topics write while a
// read takes half a second).
func TestTailWokenByOthersPlansWaitsForTheSameRead(t *testing.T) {
	f, p := tailFixture(t)
	done := startWaitingTail(t, f, p)
	release := f.ledger.holdReads(t)
	eventually(t, "a ledger read is held", func() bool { return f.ledger.heldReads() >= 1 })
	f.ledger.plan(plan(20, 60))
	other := plan(0, 10)
	other.Topic = "other"
	for range 4 {
		time.Sleep(2 * tailPollEnded) // the read is older than the tail's poll interval
		p.Planned([]ledger.Batch{other})
	}
	time.Sleep(tailPollEnded)
	if n := f.ledger.heldReads(); n != 1 {
		t.Fatalf("%d ledger reads begun while the first was under way; want only that one", n)
	}
	release()
	f.checkDone(wait(t, done), 20, 60)
}

// While its worker plans its slot, a tail at the slot's end asks the ledger
// only every tailPollRunning, not every tailPollEnded: the plan comes to it.
// When the planner ends without its plan (here another wrote it), the tail
// is woken and asks the ledger.
func TestTailWhoseWorkerPlansItsSlotWaitsForThePlans(t *testing.T) {
	f, p := tailFixture(t)
	end := p.Planning(topic, slot)
	done := startWaitingTail(t, f, p)
	before := f.ledger.readCount()
	time.Sleep(tailPollRunning * 3 / 4)
	if n := f.ledger.readCount() - before; n > 1 {
		t.Fatalf("%d ledger reads in %s while its worker planned the slot; want at most 1", n, tailPollRunning*3/4)
	}
	f.ledger.plan(plan(20, 60))
	end()
	f.checkDone(wait(t, done), 20, 60)
}

// Nor does it read the ledger for it: at the minute's end a ledger read
// waits behind everyone's writes. Here the ledger no longer answers, and a
// tail of a slot whose plan its worker wrote still learns it.
func TestTailTakesThePlanItsWorkerWroteWithoutReadingTheLedger(t *testing.T) {
	f := newFixture(t)
	p := f.processor()
	p.Planned([]ledger.Batch{plan(20, 60)})
	f.ledger.hang(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tl := p.newTail(tailInput(), &memBeat{})
	if err := tl.check(ctx, true); err != nil || tl.plan == nil || tl.plan.End != 60 {
		t.Fatalf("check: %v, plan %+v; want the plan [20,60) its worker wrote, without a ledger read", err, tl.plan)
	}
}
