package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// planReadTTL bounds how long a shared read of the ledger is kept: no tail
// asks for one older than its poll interval (tailPollRunning at most).
const planReadTTL = time.Minute

// planCache shares the ledger reads of the tailing batches of one worker.
// Once a slot has ended, each of its tails asks the ledger every
// tailPollEnded for the plan that ends it; read one partition at a time,
// that was 640 queries a second at 64 partitions, at the very moment the
// slot's planner and final writes need ClickHouse (measured: 600 ledger
// queries in the 8 s after a minute's end, 124 s of query time between
// them, the slot done 4.5 s after the minute). Through the cache the tails
// of a topic share one read of every partition's plans per interval, so
// the queries no longer grow with the partitions.
//
// Exactness does not depend on it: a tail acts on a plan only as the
// ledger holds it (or as its own worker's planner wrote it, once the ledger
// acknowledged the write: the planner's lock and its check before the write
// make that the slot's only plan of the partition), and a read begun less
// than a poll interval ago is what polling every interval gives anyway.
//
// Plans this worker's planner wrote (Processor.Planned) are added to every
// read without waiting for the next one, and wake the tails that wait: at
// the minute's end, a tail learns its plan as the planner's write returns,
// not up to a poll interval and a ledger read later. They are rows the
// ledger acknowledged, and a plan never changes once written.
type planCache struct {
	mu      sync.Mutex
	reads   map[planKey]*planRead
	written []writtenPlan
	wake    chan struct{} // closed (and replaced) when plans are written, or a planner ends
	// planning counts the planners of each topic and slot running in this
	// worker: their tails need not poll the ledger often, since the plans
	// come to them (add) or the planner ends (which wakes them too).
	planning map[slotKey]int
}

type slotKey struct {
	topic string
	slot  time.Time
}

// startPlanning records that this worker plans topic's slot, until end is
// called; end wakes the waiting tails, which then ask the ledger.
func (c *planCache) startPlanning(topic string, slot time.Time) (end func()) {
	k := slotKey{topic, slot.UTC()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.planning == nil {
		c.planning = map[slotKey]int{}
	}
	c.planning[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.planning[k]--; c.planning[k] <= 0 {
				delete(c.planning, k)
			}
			c.wakeLocked()
		})
	}
}

// planningHere says whether this worker is planning topic's slot.
func (c *planCache) planningHere(topic string, slot time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.planning[slotKey{topic, slot.UTC()}] > 0
}

// wakeLocked wakes the waiting tails; the caller holds c.mu.
func (c *planCache) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// writtenPlan is a plan this worker wrote to the ledger, and when.
type writtenPlan struct {
	at time.Time
	b  ledger.Batch
}

// add records plans written to the ledger and wakes the waiting tails.
func (c *planCache) add(bs []ledger.Batch) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written = slices.DeleteFunc(c.written, func(w writtenPlan) bool { return now.Sub(w.at) > planReadTTL })
	for _, b := range bs {
		c.written = append(c.written, writtenPlan{now, b})
	}
	c.wakeLocked()
}

// writtenPlan returns partition's plan of slot (its first sub-batch), if
// this worker wrote it.
func (c *planCache) writtenPlan(topic string, partition int32, slot time.Time) (ledger.Batch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.written {
		if b := w.b; b.Topic == topic && b.Partition == partition && b.Slot.Equal(slot) && b.Sub == 0 {
			return b, true
		}
	}
	return ledger.Batch{}, false
}

// woken returns a channel closed when plans are next written.
func (c *planCache) woken() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

// withWritten returns plans (of topic, slots first to last, as TopicPlans
// orders them) with the written plans of those slots that it lacks.
func (c *planCache) withWritten(plans []ledger.Batch, topic string, first, last time.Time) []ledger.Batch {
	c.mu.Lock()
	var add []ledger.Batch
	for _, w := range c.written {
		if w.b.Topic == topic && !w.b.Slot.Before(first) && !w.b.Slot.After(last) {
			add = append(add, w.b)
		}
	}
	c.mu.Unlock()
	if len(add) == 0 {
		return plans
	}
	have := make(map[ledger.BatchID]bool, len(plans))
	for i := range plans {
		have[plans[i].ID()] = true
	}
	out := plans
	for _, b := range add {
		if have[b.ID()] {
			continue
		}
		if len(out) == len(plans) {
			out = slices.Clone(plans) // the read's slice is shared
		}
		out = append(out, b)
	}
	if len(out) > len(plans) {
		slices.SortFunc(out, ledger.Compare)
	}
	return out
}

type planKey struct {
	topic       string
	first, last time.Time
}

// planRead is one read of the ledger, shared by the tails that ask while
// it is fresh.
type planRead struct {
	began time.Time
	done  chan struct{} // closed once plans and err are set
	plans []ledger.Batch
	err   error
}

// errPlansWritten: plans were written by this worker while a tail waited
// for a ledger read (topicPlans' stop).
var errPlansWritten = errors.New("plans written meanwhile")

// planReadTimeout bounds a shared ledger read, which runs apart from the
// tail that began it (its waiters do not depend on that tail's context).
const planReadTimeout = time.Minute

// topicPlans returns the plans of every partition of topic for the slots
// from first to last (both included), as TopicPlans orders them, from a
// read begun at most maxAge ago: its own, or one another tail began. The
// slice is shared: callers must not modify it. When stop is closed before
// the read returns (its worker wrote plans: woken), it returns
// errPlansWritten and leaves the read to the others: at a minute's end a
// ledger read can take half a second, and a tail whose plan its worker
// wrote meanwhile has no need of it. A read that fails is not shared: its
// waiters wait on one new read.
func (c *planCache) topicPlans(ctx context.Context, l Ledger, topic string, first, last time.Time, maxAge time.Duration,
	stop <-chan struct{}) ([]ledger.Batch, error) {
	key := planKey{topic, first.UTC(), last.UTC()}
	for again := false; ; again = true {
		r, mine := c.join(ctx, l, key, maxAge)
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stop:
			return nil, errPlansWritten
		}
		if r.err == nil {
			return c.withWritten(r.plans, topic, first, last), nil
		}
		// Another tail's read failed (read forgot it): those that waited
		// on it wait on one new read, begun by the first of them, and its
		// error is theirs.
		if mine || again {
			return nil, r.err
		}
	}
}

// join returns the read of key begun at most maxAge ago, or begins one
// (mine).
func (c *planCache) join(ctx context.Context, l Ledger, key planKey, maxAge time.Duration) (r *planRead, mine bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reads == nil {
		c.reads = map[planKey]*planRead{}
	}
	for k, r := range c.reads {
		if now.Sub(r.began) > planReadTTL {
			delete(c.reads, k)
		}
	}
	r, ok := c.reads[key]
	if mine = !ok || now.Sub(r.began) >= maxAge; mine {
		r = &planRead{began: now, done: make(chan struct{})}
		c.reads[key] = r
		go c.read(context.WithoutCancel(ctx), l, key, r)
	}
	return r, mine
}

// read runs a shared read (bounded by planReadTimeout), and forgets it if
// it failed, before its waiters learn so (they may begin another).
func (c *planCache) read(ctx context.Context, l Ledger, key planKey, r *planRead) {
	ctx, cancel := context.WithTimeout(ctx, planReadTimeout)
	defer cancel()
	plans, err := l.TopicPlans(ctx, key.topic, key.first, key.last)
	c.mu.Lock()
	r.plans, r.err = plans, err
	if err != nil && c.reads[key] == r { // not shared with later callers
		delete(c.reads, key)
	}
	c.mu.Unlock()
	close(r.done)
}
