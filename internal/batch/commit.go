package batch

import (
	"context"
	"sync"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// maxCommitGroup bounds the items written together; commitTimeout bounds
// one group's write.
const (
	maxCommitGroup = 256
	commitTimeout  = 2 * time.Minute
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
type groupCommit[T any] struct {
	mu      sync.Mutex
	pending *commitGroup[T] // gathering items; nil when none
	turn    chan struct{}   // held by the group being written (capacity 1)
}

// commitGroup is the items written together: the first to join writes the
// group once the group before it is written; the others wait.
type commitGroup[T any] struct {
	items []T
	done  chan struct{} // closed once err is set
	err   error
}

// commit writes item with the other items that come meanwhile, by write.
// The group holds item until it is written: commit returns only then (at
// most two commitTimeouts later, whatever ctx says), so that the caller's
// buffers are never read by a write after it has gone on.
func (c *groupCommit[T]) commit(ctx context.Context, item T, write func(context.Context, []T) error) error {
	c.mu.Lock()
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

// batchEnd is what a batch writes when it ends: its partials, then its
// ledger row.
type batchEnd struct {
	partials Partials
	row      ledger.Batch
}

// writeOutcomes writes batches' partials, then their ledger rows: the
// ledger says a batch is done only once its partials are stored.
func (p *Processor) writeOutcomes(ctx context.Context, ends []batchEnd) error {
	ps := make([]Partials, len(ends))
	rows := make([]ledger.Batch, len(ends))
	for i, o := range ends {
		ps[i], rows[i] = o.partials, o.row
	}
	if err := p.Sink.WritePartials(ctx, ps); err != nil {
		return err
	}
	return p.Ledger.WriteBatches(ctx, rows)
}

// commits are the group commits of a worker's batches.
type commits struct {
	outcomes groupCommit[batchEnd]
	raw      groupCommit[*sink.RawBuffer]
}
