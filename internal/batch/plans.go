package batch

import (
	"context"
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
// ledger holds it, and a read begun less than a poll interval ago is what
// polling every interval gives anyway.
type planCache struct {
	mu    sync.Mutex
	reads map[planKey]*planRead
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

// topicPlans returns the plans of every partition of topic for the slots
// from first to last (both included), as TopicPlans orders them, from a
// read begun at most maxAge ago: its own, or one another tail began. The
// slice is shared: callers must not modify it.
func (c *planCache) topicPlans(ctx context.Context, l Ledger, topic string, first, last time.Time, maxAge time.Duration) ([]ledger.Batch, error) {
	key := planKey{topic, first.UTC(), last.UTC()}
	now := time.Now()
	c.mu.Lock()
	if c.reads == nil {
		c.reads = map[planKey]*planRead{}
	}
	for k, r := range c.reads {
		if now.Sub(r.began) > planReadTTL {
			delete(c.reads, k)
		}
	}
	r, ok := c.reads[key]
	if !ok || now.Sub(r.began) >= maxAge {
		r = &planRead{began: now, done: make(chan struct{})}
		c.reads[key] = r
		c.mu.Unlock()
		r.plans, r.err = l.TopicPlans(ctx, topic, first, last)
		close(r.done)
		if r.err != nil { // not shared with later callers
			c.mu.Lock()
			if c.reads[key] == r {
				delete(c.reads, key)
			}
			c.mu.Unlock()
		}
		return r.plans, r.err
	}
	c.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		// Another tail's read failed, perhaps only because its activity
		// was cancelled: this tail asks for itself.
		return l.TopicPlans(ctx, topic, first, last)
	}
	return r.plans, nil
}
