package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// BatchInput asks for one batch to be processed.
type BatchInput struct {
	Plan       ledger.Batch
	Source     string // SourceKafka (default) or SourceRaw
	WorkflowID string
	RunID      string
	// Tail: the slot is still running and Plan names only its topic,
	// partition and slot (see ProcessBatch). TailUntil bounds the wait for
	// the plan.
	Tail      bool
	TailUntil time.Time
}

// BatchResult is the batch's ledger row once done, and the windows it touched.
type BatchResult struct {
	Batch   ledger.Batch
	Windows []time.Time
	Resumed int64 // offset a retry resumed from (0 when it started at the plan's start)
	Tailed  bool  // read as the records arrived, while the slot ran
}

// progress is what a batch heartbeats: everything in [Start, Next) is
// counted in it and its dead letters are stored, so a retry of the same
// plan resumes at Next.
type progress struct {
	Start, Next                        int64
	Rows                               []agg.Row
	Events, Late, Early, Dead, Skipped uint64
	MinEventTime, MaxEventTime         time.Time
	Windows                            int
}

const (
	heartbeatEvery = 2 * time.Second
	// maxResumeRows bounds the aggregate carried in heartbeats (Temporal
	// limits their size); past it a retry starts the batch again instead.
	maxResumeRows   = 20000
	deadLetterFlush = 1000
	rawFlush        = 10_000
)

// ProcessBatch reads the plan's offsets [Start, End) of one partition,
// parses and validates every record, aggregates the events by event-time
// window, and writes partials, dead letters and the ledger's outcome.
// Its output depends on the offsets only, so any retry or rerun writes the
// same rows again (replacing, never adding). With Tail, the slot has not
// ended yet and the plan is not made: the batch reads records as they
// arrive and takes its plan from the ledger once the planner has written it.
func (a *Activities) ProcessBatch(ctx context.Context, in BatchInput) (BatchResult, error) {
	switch {
	case in.Tail:
		return a.processTail(ctx, in)
	case in.Source == "", in.Source == SourceKafka:
		return a.processFromKafka(ctx, in)
	case in.Source == SourceRaw:
		return a.processFromRaw(ctx, in)
	}
	return BatchResult{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("source %q: want kafka or raw", in.Source), ErrTypeBadInput, nil)
}

func (a *Activities) processFromKafka(ctx context.Context, in BatchInput) (BatchResult, error) {
	r := a.newRun(in.Plan, in.Plan.Start, false)
	defer r.abort()
	resumed := r.resume(ctx, in.Plan.End)
	release, err := r.acquireRead(ctx)
	if err != nil {
		return BatchResult{}, err
	}
	defer release()
	return a.readAndFinish(ctx, in, r, in.Plan, time.Now(), resumed)
}

// acquireRead waits for a place among the worker's backlog reads
// (Activities.Reads), heartbeating meanwhile.
func (r *run) acquireRead(ctx context.Context) (release func(), err error) {
	if r.a.Reads == nil {
		return func() {}, nil
	}
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case r.a.Reads <- struct{}{}:
			return func() { <-r.a.Reads }, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			if err := r.beat(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// readAndFinish reads the rest of the plan into r and writes the outcome.
func (a *Activities) readAndFinish(ctx context.Context, in BatchInput, r *run, plan ledger.Batch,
	began time.Time, resumed int64) (BatchResult, error) {
	if err := r.readTo(ctx, plan.End); err != nil {
		if errors.Is(err, kafka.ErrOffsetsGone) {
			return BatchResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%v (plan [%d,%d) of slot %s): recompute from the raw archive", err, plan.Start, plan.End,
					plan.Slot.UTC().Format(time.RFC3339)), ErrTypeOffsetsGone, err)
		}
		return BatchResult{}, err
	}
	in.Plan = plan
	res, err := a.finish(ctx, in, r.outcome(plan), r.table, began)
	res.Resumed = resumed
	return res, err
}

// consume reads records from r's next offset on (see kafka.Consume).
func (r *run) consume(ctx context.Context, every time.Duration, fn func(*kafka.Record) error, tick func(seen int) error) error {
	return kafka.Consume(ctx, r.a.Brokers, r.id.Topic, r.id.Partition, r.st.Next, every, fn, tick)
}

// run is one batch being read from Kafka: its counts, its aggregate and
// the dead letters and raw events not yet written.
type run struct {
	a             *Activities
	id            ledger.BatchID
	slot, slotEnd time.Time
	st            progress
	table         agg.Table
	dead          []sink.DeadLetter
	raw           sink.RawBuffer    // events not yet sent to the archive
	ins           chstore.RawInsert // the archive insert they go to
	parser        event.Parser
	// hold keeps dead letters and raw events in memory and out of
	// heartbeats: a tailing batch whose start offset is a guess must not
	// write rows in the name of offsets that may not be its own.
	hold     bool
	lastBeat time.Time
	n        int
}

func (a *Activities) newRun(p ledger.Batch, start int64, hold bool) *run {
	slot := p.Slot.UTC()
	return &run{a: a, id: ledger.BatchID{Topic: p.Topic, Partition: p.Partition, Slot: slot},
		slot: slot, slotEnd: slot.Add(time.Minute), st: progress{Start: start, Next: start},
		table: agg.Table{}, parser: event.Parser{SkipIDs: !a.Archive}, hold: hold, lastBeat: time.Now()}
}

// resume continues from a previous attempt's heartbeat, when it read the
// same plan from the same start and not past end (0: the end is not known
// yet); it returns the offset resumed from, or 0.
func (r *run) resume(ctx context.Context, end int64) int64 {
	if !activity.HasHeartbeatDetails(ctx) {
		return 0
	}
	var saved progress
	if err := activity.GetHeartbeatDetails(ctx, &saved); err != nil || !resumable(saved, r.st.Start, end) {
		return 0
	}
	r.st, r.table = saved, agg.FromRows(saved.Rows)
	activity.GetLogger(ctx).Info("resuming batch", "topic", r.id.Topic, "partition", r.id.Partition, "offset", saved.Next)
	return saved.Next
}

// resumable says whether saved progress can be continued by a run from
// start to end (0: not known yet). A tailing attempt that read past its
// plan's end heartbeats such progress before it reads the plan again, and a
// retry must not take it: it counts records of the next slot.
func resumable(saved progress, start, end int64) bool {
	return saved.Start == start && saved.Next > start && (end == 0 || saved.Next <= end)
}

// add counts one record.
func (r *run) add(ctx context.Context, m *kafka.Record) error {
	st := &r.st
	if m.Offset > st.Next {
		st.Skipped += uint64(m.Offset - st.Next)
	}
	st.Next = m.Offset + 1
	ev, err := r.parser.Parse(m.Value)
	if err != nil {
		reason, _ := event.IsInvalid(err)
		r.dead = append(r.dead, sink.DeadLetter{Topic: r.id.Topic, Partition: r.id.Partition, Offset: m.Offset, Slot: r.slot,
			LogTime: m.Timestamp, Reason: reason, Payload: bytes.Clone(m.Value)})
		st.Dead++
		if len(r.dead) >= deadLetterFlush && !r.hold {
			return r.flush(ctx)
		}
	} else {
		r.table.Add(&ev)
		if r.a.Archive {
			r.raw.Add(r.id, m.Offset, m.Timestamp, &ev)
			if r.raw.Len() >= rawFlush && !r.hold {
				if err := r.a.Store.SendRaw(ctx, &r.ins, &r.raw); err != nil {
					return err
				}
			}
		}
		st.Events++
		switch {
		case ev.Time.Before(r.slot):
			st.Late++
		case !ev.Time.Before(r.slotEnd):
			st.Early++
		}
		if st.MinEventTime.IsZero() || ev.Time.Before(st.MinEventTime) {
			st.MinEventTime = ev.Time
		}
		if ev.Time.After(st.MaxEventTime) {
			st.MaxEventTime = ev.Time
		}
	}
	if r.n++; r.n%64 == 0 && time.Since(r.lastBeat) >= heartbeatEvery {
		return r.beat(ctx)
	}
	return nil
}

// full says that a held run should stop reading until its start is confirmed.
func (r *run) full() bool { return len(r.dead) >= deadLetterFlush || r.raw.Len() >= rawFlush }

// flush stores the dead letters and raw events read so far, unless held.
func (r *run) flush(ctx context.Context) error {
	if r.hold {
		return nil
	}
	// The insert first, so that this never holds two connections at once.
	if err := r.a.Store.CommitRaw(ctx, &r.ins, &r.raw); err != nil {
		return err
	}
	if err := r.a.Store.WriteDeadLetters(ctx, r.dead); err != nil {
		return err
	}
	r.dead = r.dead[:0]
	return nil
}

// abort ends the run's archive insert, if one is open (an error ended the
// run before its flush).
func (r *run) abort() { r.ins.Abort() }

// beat flushes, then heartbeats the progress (or only that it is alive,
// while held, or when the aggregate is too big to carry).
func (r *run) beat(ctx context.Context) error {
	r.lastBeat = time.Now()
	if err := r.flush(ctx); err != nil {
		return err
	}
	r.st.Rows = nil
	if r.hold || len(r.table) > maxResumeRows {
		activity.RecordHeartbeat(ctx, progress{Start: -1})
		return nil
	}
	r.st.Rows = r.table.Rows()
	activity.RecordHeartbeat(ctx, r.st)
	return nil
}

// readTo reads the records up to end, then writes what is pending.
func (r *run) readTo(ctx context.Context, end int64) error {
	if r.st.Next < end {
		err := kafka.ReadRange(ctx, r.a.Brokers, r.id.Topic, r.id.Partition, r.st.Next, end, func(m *kafka.Record) error {
			return r.add(ctx, m)
		})
		if err != nil {
			return err
		}
	}
	if r.st.Next < end { // the range ended in offsets Kafka does not deliver
		r.st.Skipped += uint64(end - r.st.Next)
		r.st.Next = end
	}
	return r.flush(ctx)
}

// outcome is the plan with the run's counts.
func (r *run) outcome(plan ledger.Batch) ledger.Batch {
	done := plan
	done.Events, done.LateEvents, done.EarlyEvents = r.st.Events, r.st.Late, r.st.Early
	done.DeadLetters, done.Skipped = r.st.Dead, r.st.Skipped
	done.MinEventTime, done.MaxEventTime = r.st.MinEventTime, r.st.MaxEventTime
	done.Archived = r.a.Archive
	return done
}

// finish writes a batch's partials, then its outcome to the ledger: the
// ledger says done only once everything else is stored.
func (a *Activities) finish(ctx context.Context, in BatchInput, done ledger.Batch, table agg.Table, began time.Time) (BatchResult, error) {
	id := ledger.BatchID{Topic: done.Topic, Partition: done.Partition, Slot: done.Slot}
	if err := a.Store.WritePartials(ctx, id, table, chstore.Version()); err != nil {
		return BatchResult{}, err
	}
	info := activity.GetInfo(ctx)
	done.State = ledger.StateDone
	windows := table.Windows()
	done.Windows = uint32(len(windows))
	done.FinishedAt = time.Now().UTC()
	done.DurationMs = uint64(time.Since(began).Milliseconds())
	done.WorkflowID, done.RunID, done.Attempt = in.WorkflowID, in.RunID, uint32(info.Attempt)
	done.Version = chstore.Version()
	if err := a.Store.WriteBatches(ctx, []ledger.Batch{done}); err != nil {
		return BatchResult{}, err
	}
	res := BatchResult{Batch: done}
	for _, w := range windows {
		res.Windows = append(res.Windows, time.Unix(w, 0).UTC())
	}
	return res, nil
}

// processFromRaw recomputes a batch from the raw archive, for offsets that
// Kafka no longer holds. Only a batch whose events were archived can be.
func (a *Activities) processFromRaw(ctx context.Context, in BatchInput) (BatchResult, error) {
	began := time.Now()
	p := in.Plan
	prev, err := a.Store.SlotBatches(ctx, p.Topic, p.Slot)
	if err != nil {
		return BatchResult{}, err
	}
	if b, ok := prev[p.Partition]; p.End > p.Start && (!ok || b.State != ledger.StateDone || !b.Archived) {
		return BatchResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"%s/%d slot %s: offsets [%d,%d) were never archived (the batch ran with the raw archive off, or never ran): "+
				"it can only be computed from Kafka", p.Topic, p.Partition, p.Slot.Format(time.RFC3339), p.Start, p.End),
			ErrTypeNotArchived, nil)
	}
	id := ledger.BatchID{Topic: p.Topic, Partition: p.Partition, Slot: p.Slot}
	table, ro, err := a.Store.AggregateRaw(ctx, id, p.Start, p.End)
	if err != nil {
		return BatchResult{}, err
	}
	done := p
	done.Events, done.LateEvents, done.EarlyEvents, done.DeadLetters = ro.Events, ro.Late, ro.Early, ro.DeadLetters
	done.MinEventTime, done.MaxEventTime = ro.MinEventTime, ro.MaxEventTime
	if ro.Events+ro.DeadLetters > uint64(p.End-p.Start) {
		return BatchResult{}, fmt.Errorf("%s/%d slot %s: the archive holds %d events and %d dead letters for %d offsets",
			p.Topic, p.Partition, p.Slot.Format(time.RFC3339), ro.Events, ro.DeadLetters, p.End-p.Start)
	}
	done.Skipped = uint64(p.End-p.Start) - ro.Events - ro.DeadLetters
	done.Archived = true
	return a.finish(ctx, in, done, table, began)
}
