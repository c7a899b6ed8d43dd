package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// How often a tailing batch asks the ledger about its plans: while its slot
// runs (only to confirm its start), and once the slot has ended (for the
// plan that ends it), unless its worker is planning the slot (every()).
const (
	tailPollRunning = time.Second
	tailPollEnded   = 100 * time.Millisecond
)

// Until lazyUntil before its minute's end, a tail's fetches wait for
// records to gather (kafka.Consume's wait, lazyWait): it needs them by the
// end, not each as it arrives. From then on they are answered at once, so
// that the tail has read everything when the plan comes.
const (
	lazyUntil = 2 * time.Second
	lazyWait  = 500 * time.Millisecond
)

// Right after its slot's end (quietAfterEnd), a tail waiting for its plan
// heartbeats without storing what it read: the plan is expected then.
// Before the end its beats fall on the minute's ticks (tail.nextTick): every
// beat interval from the slot's start, and lastTick before its end, so
// that little is left to store at the end. The tails of a worker beat at
// the same moments, and their raw rows wait up to tickLinger for each
// other in the worker's group commit: one archive insert (one part for
// ClickHouse to write and merge) for all of them instead of one for each.
const (
	quietAfterEnd = 5 * time.Second
	lastTick      = time.Second
	tickLinger    = 300 * time.Millisecond
)

// errTailRestart stops a tailing read whose guessed start proved wrong.
var errTailRestart = errors.New("tail: the start offset was a guess, and wrong")

// tail processes the batch of a slot that is still running: it reads the
// partition's records as they arrive, so that when the slot ends only its
// last records remain to read.
//
// Exactness does not depend on any of this: the batch always ends as the
// plan [Start, End) that the planner writes to the ledger after the slot's
// end, and is read from Kafka again whenever what was read does not match
// it. The start is the previous slot's plan end, or, until that plan
// exists, a guess (the first offset at the slot's start) under which no row
// is written (the run is held). Reading pauses at the first record stamped
// at or after the slot's end (where the planner ends the plan), until the
// plan is in the ledger.
type tail struct {
	p         *Processor
	hb        Heartbeat
	in        Input
	began     time.Time
	slot, end time.Time // the slot's minute [slot, end)

	r         *run          // the read in progress, nil before a start is known
	plan      *ledger.Batch // the slot's own plan, once the ledger has it
	prevEnd   int64         // where the previous slot's plan ends ...
	hasPrev   bool          // ... once the ledger has it
	lastCheck time.Time
	// ann announces the tail's end to its worker's group commit, from the
	// moment it waits at its slot's end for its plan (or has it): the
	// worker's tails learn their plans at one moment, and the first to end
	// is written with the others, not alone before them.
	ann *announcement
}

// announce announces the tail's end, once.
func (t *tail) announce() {
	if t.ann == nil {
		t.ann = t.p.commits.outcomes.announce()
	}
}

func (p *Processor) newTail(in Input, hb Heartbeat) *tail {
	slot := in.Plan.Slot.UTC()
	return &tail{p: p, hb: hb, in: in, began: time.Now(), slot: slot, end: slot.Add(time.Minute)}
}

// process tails the partition until the plan is known, then finishes the
// batch as that plan says.
func (t *tail) process(ctx context.Context) (Result, error) {
	t.p.tails.Add(1)
	defer func() {
		t.p.tails.Add(-1)
		if t.r != nil {
			t.r.abort()
		}
		t.ann.withdraw()
	}()
	if err := t.check(ctx, true); err != nil {
		return Result{}, err
	}
	for {
		var resumed int64
		switch {
		case t.plan != nil: // planned before anything was read: an ordinary batch
			t.in.Plan = *t.plan
			return t.readPlan(ctx)
		case t.hasPrev: // the start is known: the previous plan's end
			t.r = t.newRun(t.prevEnd, false)
			resumed = t.r.resume(ctx, 0)
		default: // a guess, held until the ledger confirms it
			off, found, err := kafka.OffsetForTime(t.p.Kafka, t.in.Plan.Topic, t.in.Plan.Partition, t.slot)
			if err != nil {
				return Result{}, err
			}
			if !found {
				if err := t.wait(ctx); err != nil {
					return Result{}, err
				}
				continue
			}
			t.r = t.newRun(off, true)
		}
		err := t.read(ctx)
		if errors.Is(err, errTailRestart) {
			slog.InfoContext(ctx, "tail: the guessed start was wrong, starting again", "topic", t.in.Plan.Topic,
				"partition", t.in.Plan.Partition, "guess", t.r.st.Start)
			t.r.abort()
			t.r = nil // check refreshed what the ledger says before it refuted the guess
			continue
		}
		if err != nil {
			return Result{}, err
		}
		plan := *t.plan
		if t.r.st.Next > plan.End {
			// Records past the plan's end were read (the partition was idle
			// when it was planned): read the plan again from its start.
			slog.InfoContext(ctx, "tail: read past the plan's end, reading the plan again", "topic", plan.Topic,
				"partition", plan.Partition, "end", plan.End, "next", t.r.st.Next)
			t.r.abort()
			t.in.Plan = plan
			return t.readPlan(ctx)
		}
		t.announce()
		t.r.ann = t.ann
		res, err := t.r.finish(ctx, t.in, plan, t.began, resumed)
		res.Tailed = err == nil
		return res, err
	}
}

// newRun starts the tail's read from start, beating at its ticks.
func (t *tail) newRun(start int64, hold bool) *run {
	r := t.p.newRun(t.in.Plan, t.hb, start, hold)
	r.due, r.linger = t.beatDue, t.linger
	return r
}

// readPlan reads the tail's plan as an ordinary batch; the tail's end is
// no longer near, and its announcement is withdrawn.
func (t *tail) readPlan(ctx context.Context) (Result, error) {
	t.ann.withdraw()
	return t.p.readPlan(ctx, t.in, t.hb)
}

// read reads records into the run as they arrive, until the slot's plan is
// in the ledger (and, when the plan comes while it reads, on to the plan's
// end). It pauses at the first record stamped at or after the slot's end,
// and while a held run holds too much.
func (t *tail) read(ctx context.Context) error {
	r := t.r
	for {
		atEnd := false
		var wait time.Duration
		lazy := time.Until(t.end) > lazyUntil
		if lazy {
			wait = lazyWait
		}
		err := kafka.Consume(ctx, t.p.Conn, r.id.Topic, r.id.Partition, r.st.Next, tailPollEnded, wait,
			func(m *kafka.Record) error {
				if t.plan != nil { // the plan's last records, read on here
					if m.Offset >= t.plan.End {
						return kafka.ErrStop
					}
					if err := r.add(ctx, m); err != nil {
						return err
					}
					if r.st.Next >= t.plan.End {
						return kafka.ErrStop
					}
					return nil
				}
				if !m.Timestamp.Before(t.end) {
					atEnd = true
					return kafka.ErrStop
				}
				if r.hold && r.full() {
					return kafka.ErrStop
				}
				return r.add(ctx, m)
			},
			func(seen int) error {
				if err := t.check(ctx, false); err != nil {
					return err
				}
				// Planned, the read goes on over this connection to the
				// plan's end, not over a new one (finish reads what is
				// left: records that stopped coming, offsets Kafka skips).
				if t.plan != nil && (r.st.Next >= t.plan.End || seen == 0) {
					return kafka.ErrStop
				}
				if err := t.maybeBeat(ctx); err != nil {
					return err
				}
				if lazy && time.Until(t.end) <= lazyUntil {
					return kafka.ErrStop // to read on with fetches answered at once
				}
				return nil
			})
		if err != nil {
			return err
		}
		if atEnd {
			t.announce()
		}
		for t.plan == nil && (atEnd || (r.hold && r.full())) {
			if err := t.wait(ctx); err != nil {
				return err
			}
		}
		if t.plan != nil {
			return nil
		}
	}
}

// wait heartbeats, pauses a poll interval, and asks the ledger again.
func (t *tail) wait(ctx context.Context) error {
	if t.r == nil {
		t.hb.Record(ctx, alive)
	} else if err := t.maybeBeat(ctx); err != nil {
		return err
	}
	woken := t.p.plans.woken()
	if t.takeWritten() { // written before the tail came to wait
		return t.check(ctx, true)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(t.every()):
	case <-woken: // this worker wrote plans, or its planner ended
	}
	return t.check(ctx, true)
}

// takeWritten takes the tail's plan from the plans its worker wrote (no
// ledger read: the ledger acknowledged them, and a plan never changes once
// written), and says whether it was there.
func (t *tail) takeWritten() bool {
	b, ok := t.p.plans.writtenPlan(t.in.Plan.Topic, t.in.Plan.Partition, t.slot)
	if ok {
		t.plan = &b
	}
	return ok
}

// maybeBeat heartbeats the run when a beat is due (beatDue), with what it
// read stored (run.beat), except in the quietAfterEnd after the slot's end:
// there no write that the plan's arrival would wait for (the end stores
// it), it repeats its last heartbeat, a progress an ungrouped tail's retry
// resumes from, so that it stays alive without replacing it.
func (t *tail) maybeBeat(ctx context.Context) error {
	r, now := t.r, time.Now()
	switch {
	case now.After(t.end) && now.Before(t.end.Add(quietAfterEnd)):
		if now.Sub(r.lastBeat) >= t.p.beatEvery() {
			r.lastBeat = now
			t.hb.Record(ctx, r.beaten)
		}
		return nil
	case t.beatDue(r.lastBeat, now):
		return r.beat(ctx)
	}
	return nil
}

// beatDue says whether a tail's run that last beat at last beats at now:
// before the slot's end, once a tick has come since (nextTick); after it,
// every beat interval.
func (t *tail) beatDue(last, now time.Time) bool {
	if now.Before(t.end) {
		return !now.Before(t.nextTick(last))
	}
	return now.Sub(last) >= t.p.beatEvery()
}

// nextTick is the first tick after last: the slot's start plus a multiple
// of the beat interval, or lastTick before the slot's end.
func (t *tail) nextTick(last time.Time) time.Time {
	every := t.p.beatEvery()
	k := last.Sub(t.slot) / every // rounded down, before the slot's start too
	if last.Before(t.slot.Add(k * every)) {
		k--
	}
	next := t.slot.Add((k + 1) * every)
	if e := t.end.Add(-lastTick); last.Before(e) && e.Before(next) {
		next = e
	}
	return next
}

// linger is how long a tail's raw rows wait for the other tails' in the
// group commit: tickLinger before the slot's end (they beat at the same
// ticks), or until the group holds a row set of each tail the worker runs;
// none after the end (the end's write is waited for).
func (t *tail) linger() linger {
	if time.Now().Before(t.end) {
		return linger{d: tickLinger, want: int(t.p.tails.Load())}
	}
	return linger{}
}

// every is how often the tail asks the ledger about its plans. After the
// slot's end it asks often, unless its own worker is planning the slot
// (its plan then comes from there: Processor.Planning).
func (t *tail) every() time.Duration {
	if time.Now().After(t.end) && !t.p.plans.planningHere(t.in.Plan.Topic, t.slot) {
		return tailPollEnded
	}
	return tailPollRunning
}

// check reads the ledger (at most once per poll interval unless forced)
// and confirms or refutes the run's start: confirmed, a held run writes
// what it held; refuted, errTailRestart.
//
// Unless forced, a tail whose start is confirmed does not ask while its
// minute runs: the only thing left to learn is its own plan, which no
// planner writes before the minute's end (PlanSlot waits for it). So the
// ledger is not read every second by every worker's tails for nothing.
func (t *tail) check(ctx context.Context, force bool) error {
	if !force && (time.Since(t.lastCheck) < t.every() || t.confirmed() && time.Now().Before(t.end)) {
		return nil
	}
	t.lastCheck = time.Now()
	if t.r != nil && t.r.ins.Open() {
		// Store what the run sent before asking the ledger: a run never
		// holds two connections at once.
		if err := t.r.flush(ctx); err != nil {
			return err
		}
	}
	if t.lastCheck.After(t.in.TailUntil) {
		return fmt.Errorf("%s/%d slot %s: no plan in the ledger by %s", t.in.Plan.Topic, t.in.Plan.Partition,
			t.slot.Format(time.RFC3339), t.in.TailUntil.Format(time.RFC3339))
	}
	if err := t.readLedger(ctx); err != nil || t.r == nil {
		return err
	}
	start, known := t.prevEnd, t.hasPrev
	if t.plan != nil {
		start, known = t.plan.Start, true
	}
	switch {
	case !known:
	case start != t.r.st.Start:
		return errTailRestart
	case t.r.hold:
		t.r.hold = false // confirmed: write what was held
		return t.r.flush(ctx)
	}
	return nil
}

// confirmed says whether the run's start is the previous plan's end, as
// the ledger says.
func (t *tail) confirmed() bool {
	return t.r != nil && !t.r.hold && t.hasPrev && t.r.st.Start == t.prevEnd
}

// readLedger reads the plans of the slot and of the one before it, through
// the worker's shared read of the topic's plans (planCache). A tail is the
// batch of its slot's first sub-batch: a plan split in sub-batches
// (plan.Split) has its others run as batches of their own.
// A read under way when its worker writes plans is left to the others
// (topicPlans' stop), and the tail takes its plan if it was among them;
// if not, it waits for that read again, however long it has run, or for
// one begun since: it does not begin a read of its own at each of its
// worker's writes.
func (t *tail) readLedger(ctx context.Context) error {
	var bs []ledger.Batch
	every := t.every()
	maxAge := every
	for began := time.Now(); ; maxAge = time.Since(began) + every + time.Millisecond {
		woken := t.p.plans.woken()
		if t.takeWritten() {
			return nil
		}
		var err error
		bs, err = t.p.plans.topicPlans(ctx, t.p.Ledger, t.in.Plan.Topic, t.slot.Add(-time.Minute), t.slot, maxAge, woken)
		if errors.Is(err, errPlansWritten) {
			continue // others' plans: wait for the read again
		}
		if err != nil {
			return err
		}
		break
	}
	t.plan, t.hasPrev = nil, false
	for _, b := range bs { // by slot, partition and sub-batch
		switch {
		case b.Partition != t.in.Plan.Partition:
		case b.Slot.Equal(t.slot) && b.Sub == 0:
			t.plan = &b
		case !b.Slot.Equal(t.slot):
			t.prevEnd, t.hasPrev = b.End, true // the previous plan's last sub-batch
		}
	}
	return nil
}
