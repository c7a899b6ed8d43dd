package batch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// maxCommitGroup bounds the batches written together; commitTimeout bounds
// one group's writes.
const (
	maxCommitGroup = 256
	commitTimeout  = 2 * time.Minute
)

// committer writes the outcomes of a worker's batches in groups (group
// commit): the batches that end while a group is being written wait, and
// are written together after it, in one partials write and one ledger
// insert. A batch that ends alone is written at once. Live at 64
// partitions, every batch of a slot ends within the same second of the
// minute's end, and each wrote its own partials and ledger row, 128
// inserts and 64 reads of earlier keys competing for ClickHouse at once.
//
// Exactness does not depend on the grouping: a group writes every batch's
// partials before any of their ledger rows, so the ledger says done only
// once the batch's partials are stored, as for one batch; a group whose
// write fails fails each of its batches, and each is retried as it would
// be alone; a batch that stops waiting (its context ended) may still be
// written by its group, as a batch whose worker died after its writes.
type committer struct {
	mu      sync.Mutex
	pending *commitGroup  // gathering batches; nil when none
	turn    chan struct{} // held by the group being written (capacity 1)
}

// commitGroup is the batches written together: the first to join writes
// the group once the group before it is written; the others wait.
type commitGroup struct {
	partials []Partials
	rows     []ledger.Batch
	done     chan struct{} // closed once err is set
	err      error
}

// commit writes one batch's partials, then its ledger row, with the other
// batches of the worker that end meanwhile.
func (c *committer) commit(ctx context.Context, p *Processor, part Partials, row ledger.Batch) error {
	c.mu.Lock()
	if c.turn == nil {
		c.turn = make(chan struct{}, 1)
	}
	g := c.pending
	if g == nil || len(g.rows) >= maxCommitGroup {
		g = &commitGroup{done: make(chan struct{})}
		c.pending = g
	}
	g.partials = append(g.partials, part)
	g.rows = append(g.rows, row)
	lead := len(g.rows) == 1
	c.mu.Unlock()
	if !lead {
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the batch's outcome to be written: %w", ctx.Err())
		}
	}
	// The leader waits for the group before it (bounded by its
	// commitTimeout), then closes its own to newcomers and writes it. The
	// others depend on it, so its writes do not stop with its own context.
	c.turn <- struct{}{}
	c.mu.Lock()
	if c.pending == g {
		c.pending = nil
	}
	c.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	g.err = p.writeOutcomes(wctx, g.partials, g.rows)
	cancel()
	<-c.turn
	close(g.done)
	return g.err
}

// writeOutcomes writes batches' partials, then their ledger rows.
func (p *Processor) writeOutcomes(ctx context.Context, ps []Partials, rows []ledger.Batch) error {
	if err := p.Sink.WritePartials(ctx, ps); err != nil {
		return err
	}
	return p.Ledger.WriteBatches(ctx, rows)
}
