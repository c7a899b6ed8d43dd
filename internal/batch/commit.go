package batch

import (
	"cmp"
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// maxCommitGroup bounds the items written together; commitTimeout bounds
// one group's write; maxGather bounds how long a group's leader waits for
// the items announced to it.
const (
	maxCommitGroup = 256
	commitTimeout  = 2 * time.Minute
	maxGather      = 100 * time.Millisecond
)

// groupCommit writes the items of a worker's batches in groups (group
// commit): the items that come while a group is being written wait, and
// are written together after it, in one write. An item that comes alone is
// written at once. Live at 64 partitions, every batch of a slot ends within
// the same second of the minute's end, and each tailing batch stores its
// raw events every heartbeat: written one batch at a time, that was 32
// archive inserts a second during the minute and 128 partials and ledger
// inserts (and 64 reads of earlier keys) at its end, competing for
// ClickHouse at once.
//
// Exactness does not depend on the grouping: a batch's commit returns only
// once its group's write has returned, with that write's error, so a batch
// goes on (heartbeats its progress, records itself done) only once what it
// wrote is stored, as when it wrote alone; a group whose write fails fails
// each of its batches, and each is retried as it would be alone.
//
// Items can be announced (announce) before they come: a tail waiting at its
// slot's end for its plan, or reading its last records. A leader whose turn
// has come waits for the announced items to join its group, up to
// maxGather: at a minute's end every tail of the worker learns its plan at
// once, and the first to end would otherwise be written alone while the
// others queue behind it.
type groupCommit[T any] struct {
	mu      sync.Mutex
	pending *commitGroup[T] // gathering items; nil when none
	turn    chan struct{}   // held by the group being written (capacity 1)
	// announced are the items announced that have not joined a group, and
	// when; a leader waits only for those announced less than
	// maxAnnounceAge ago (a tail whose plan is slow to come holds no
	// other batch's write back for long).
	announced map[*announcement]time.Time
	gather    time.Duration // how long a leader waits for them; 0: maxGather
}

// maxAnnounceAge: an announcement older than this no longer holds a
// group's leader.
const maxAnnounceAge = time.Second

// announcement is an item announced to a groupCommit; its commit takes it,
// and withdraw (after a commit: nothing) says it will not come.
type announcement struct {
	mu  *sync.Mutex
	set map[*announcement]time.Time
}

// announce tells c that an item will come soon.
func (c *groupCommit[T]) announce() *announcement {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.announced == nil {
		c.announced = map[*announcement]time.Time{}
	}
	a := &announcement{mu: &c.mu, set: c.announced}
	c.announced[a] = time.Now()
	return a
}

// expecting says whether an item announced less than maxAnnounceAge ago
// has not come yet; the caller holds c.mu.
func (c *groupCommit[T]) expecting(now time.Time) bool {
	for _, at := range c.announced {
		if now.Sub(at) < maxAnnounceAge {
			return true
		}
	}
	return false
}

// withdraw says that the announced item will not come (a no-op once it
// has, or on nil).
func (a *announcement) withdraw() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.take()
}

// take marks the announced item as come; the caller holds its lock.
func (a *announcement) take() {
	if a != nil {
		delete(a.set, a)
	}
}

// commitGroup is the items written together: the first to join writes the
// group once the group before it is written; the others wait.
type commitGroup[T any] struct {
	items []T
	done  chan struct{} // closed once err is set
	err   error
}

// linger is how long a group's leader gathers others before its write: d,
// or until the group holds want items (0: the whole d).
type linger struct {
	d    time.Duration
	want int
}

// full says whether a group of n items needs no more lingering.
func (l linger) full(n int) bool { return l.want > 0 && n >= l.want }

// commit writes item with the other items that come meanwhile, by write;
// ann is item's announcement, or nil. When item leads its group, the group
// gathers others for linger l before its write (and the announced ones as
// long as it expects them, up to the gather time). The group holds item
// until it is written: commit returns only then (at most two
// commitTimeouts and the longer of l.d and maxGather later, whatever
// ctx says), so that the caller's buffers are never read by a write after
// it has gone on.
func (c *groupCommit[T]) commit(ctx context.Context, item T, ann *announcement, l linger,
	write func(context.Context, []T) error) error {
	c.mu.Lock()
	ann.take()
	if c.turn == nil {
		c.turn = make(chan struct{}, 1)
	}
	g := c.pending
	if g == nil || len(g.items) >= maxCommitGroup {
		g = &commitGroup[T]{done: make(chan struct{})}
		c.pending = g
	}
	g.items = append(g.items, item)
	lead := len(g.items) == 1
	c.mu.Unlock()
	if !lead {
		<-g.done
		return g.err
	}
	// The leader waits for the group before it, then closes its own to
	// newcomers and writes it. The others depend on it, so its write does
	// not stop with its own context.
	c.turn <- struct{}{}
	c.mu.Lock()
	gather := cmp.Or(c.gather, maxGather)
	for began := time.Now(); c.pending == g && len(g.items) < maxCommitGroup; {
		if w := time.Since(began); (w >= l.d || l.full(len(g.items))) && (w >= gather || !c.expecting(time.Now())) {
			break
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
		c.mu.Lock()
	}
	if c.pending == g {
		c.pending = nil
	}
	c.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	g.err = write(wctx, g.items)
	cancel()
	<-c.turn
	close(g.done)
	return g.err
}

// batchEnd is what a batch writes when it ends: its partials and its raw
// events not yet stored, then its ledger row.
type batchEnd struct {
	partials Partials
	raw      *sink.RawBuffer // nil or empty: none
	row      ledger.Batch
}

// writeOutcomes writes batches' partials and raw events (at once: two
// tables, neither waits for the other), then their ledger rows: the ledger
// says a batch is done only once its partials and its archive are stored.
func (p *Processor) writeOutcomes(ctx context.Context, ends []batchEnd) error {
	ps := make([]Partials, len(ends))
	rows := make([]ledger.Batch, len(ends))
	var raws []*sink.RawBuffer
	for i, o := range ends {
		ps[i], rows[i] = o.partials, o.row
		if o.raw != nil && o.raw.Len() > 0 {
			raws = append(raws, o.raw)
		}
	}
	var g errgroup.Group
	g.Go(func() error { return p.Sink.WritePartials(ctx, ps) })
	if len(raws) > 0 {
		g.Go(func() error { return p.Sink.WriteRaw(ctx, raws) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return p.Ledger.WriteBatches(ctx, rows)
}

// commits are the group commits of a worker's batches.
type commits struct {
	outcomes groupCommit[batchEnd]
	raw      groupCommit[*sink.RawBuffer]
}
