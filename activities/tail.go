package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// How often a tailing batch asks the ledger about its plans: while its slot
// runs (only to confirm its start), and once the slot has ended (for the
// plan that ends it).
const (
	tailPollRunning = time.Second
	tailPollEnded   = 100 * time.Millisecond
)

// tailState is what the ledger says of a partition's slot and the one
// before it.
type tailState struct {
	plan    *ledger.Batch // the slot's own plan, once made
	prevEnd int64         // where the previous slot's plan ends
	hasPrev bool
}

func (a *Activities) tailState(ctx context.Context, p ledger.Batch) (tailState, error) {
	slot := p.Slot.UTC()
	bs, err := a.Store.QueryBatches(ctx, "topic = ? AND kafka_partition = ? AND slot IN (?, ?)", "",
		p.Topic, p.Partition, slot.Add(-time.Minute), slot)
	if err != nil {
		return tailState{}, err
	}
	var s tailState
	for i := range bs {
		if bs[i].Slot.Equal(slot) {
			s.plan = &bs[i]
		} else {
			s.prevEnd, s.hasPrev = bs[i].End, true
		}
	}
	return s, nil
}

// errTailRestart stops a tailing read whose guessed start proved wrong.
var errTailRestart = errors.New("tail: the start offset was a guess, and wrong")

// processTail processes the batch of a slot that is still running: it reads
// the partition's records as they arrive, so that when the slot ends only
// its last records remain to read.
//
// Exactness does not depend on any of this: the batch always ends as the
// plan [Start, End) that the planner writes to the ledger after the slot's
// end, and is read from Kafka again whenever what was read does not match
// it. The start is the previous slot's plan end, or, until that plan
// exists, a guess (the first offset at the slot's start) under which no row
// is written. Reading pauses at the first record stamped at or after the
// slot's end (where the planner ends the plan, ListOffsets), until the plan
// is in the ledger.
func (a *Activities) processTail(ctx context.Context, in BatchInput) (BatchResult, error) {
	began := time.Now()
	p := in.Plan
	slot := p.Slot.UTC()
	slotEnd := slot.Add(time.Minute)
	log := activity.GetLogger(ctx)

	var (
		r         *run
		ls        tailState
		lastCheck time.Time
	)
	// check reads the ledger (at most once per poll interval unless forced)
	// and confirms or refutes the run's start.
	check := func(force bool) error {
		every := tailPollRunning
		if time.Now().After(slotEnd) {
			every = tailPollEnded
		}
		if !force && time.Since(lastCheck) < every {
			return nil
		}
		lastCheck = time.Now()
		if r != nil && r.ins.Open() {
			// Store what the run sent before asking the ledger: a run
			// never holds two connections at once.
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
		if lastCheck.After(in.TailUntil) {
			return fmt.Errorf("%s/%d slot %s: no plan in the ledger by %s", p.Topic, p.Partition,
				slot.Format(time.RFC3339), in.TailUntil.Format(time.RFC3339))
		}
		var err error
		if ls, err = a.tailState(ctx, p); err != nil || r == nil {
			return err
		}
		start, known := ls.prevEnd, ls.hasPrev
		if ls.plan != nil {
			start, known = ls.plan.Start, true
		}
		switch {
		case !known:
		case start != r.st.Start:
			return errTailRestart
		case r.hold:
			r.hold = false // confirmed: write what was held
			return r.flush(ctx)
		}
		return nil
	}
	wait := func() error {
		if r == nil {
			activity.RecordHeartbeat(ctx, progress{Start: -1})
		} else if time.Since(r.lastBeat) >= heartbeatEvery {
			if err := r.beat(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tailPollEnded):
			return check(true)
		}
	}

	defer func() {
		if r != nil {
			r.abort()
		}
	}()
	if err := check(true); err != nil {
		return BatchResult{}, err
	}
	for {
		// A start: the previous plan's end, else a guess.
		var resumed int64
		switch {
		case ls.plan != nil:
			in.Plan = *ls.plan
			return a.processFromKafka(ctx, in)
		case ls.hasPrev:
			r = a.newRun(p, ls.prevEnd, false)
			resumed = r.resume(ctx, 0)
		default:
			off, found, err := kafka.OffsetForTime(a.Kafka, p.Topic, p.Partition, slot)
			if err != nil {
				return BatchResult{}, err
			}
			if !found {
				if err := wait(); err != nil {
					return BatchResult{}, err
				}
				continue
			}
			r = a.newRun(p, off, true)
		}
		err := r.tail(ctx, slotEnd, &ls, check, wait)
		if errors.Is(err, errTailRestart) {
			log.Info("tail: the guessed start was wrong, starting again", "topic", p.Topic, "partition", p.Partition,
				"guess", r.st.Start)
			r.abort()
			r = nil // check refreshed ls before it refuted the guess
			continue
		}
		if err != nil {
			return BatchResult{}, err
		}
		plan := *ls.plan
		if r.st.Next > plan.End {
			// Records past the plan's end were read (the partition was idle
			// when it was planned): read the plan again from its start.
			log.Info("tail: read past the plan's end, reading the plan again", "topic", p.Topic, "partition", p.Partition,
				"end", plan.End, "next", r.st.Next)
			r.abort()
			in.Plan = plan
			return a.processFromKafka(ctx, in)
		}
		res, err := a.readAndFinish(ctx, in, r, plan, began, resumed)
		res.Tailed = err == nil
		return res, err
	}
}

// tail reads records into r as they arrive, until the slot's plan is in the
// ledger (ls.plan, then r's start is confirmed). It pauses at the first
// record stamped at or after the slot's end, and while r holds too much.
func (r *run) tail(ctx context.Context, slotEnd time.Time, ls *tailState, check func(force bool) error, wait func() error) error {
	for {
		atEnd := false
		err := r.consume(ctx, tailPollEnded,
			func(m *kafka.Record) error {
				if ls.plan != nil {
					return kafka.ErrStop
				}
				if !m.Timestamp.Before(slotEnd) {
					atEnd = true
					return kafka.ErrStop
				}
				if r.hold && r.full() {
					return kafka.ErrStop
				}
				return r.add(ctx, m)
			},
			func(int) error {
				if err := check(false); err != nil {
					return err
				}
				if ls.plan != nil {
					return kafka.ErrStop
				}
				if time.Since(r.lastBeat) >= heartbeatEvery {
					return r.beat(ctx)
				}
				return nil
			})
		if err != nil {
			return err
		}
		for ls.plan == nil && (atEnd || (r.hold && r.full())) {
			if err := wait(); err != nil {
				return err
			}
		}
		if ls.plan != nil {
			return nil
		}
	}
}
