package batch

import (
	"context"
	"fmt"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// A run writes its dead letters once it holds deadLetterFlush of them or
// could not take one more within deadLetterFlushBytes of payload (each
// stores at most sink.MaxDeadLetterPayload bytes, however large its
// record): a held run stops reading there instead. Its raw events are sent
// every rawFlush.
const (
	defaultBeatEvery     = 2 * time.Second
	deadLetterFlush      = 1000
	deadLetterFlushBytes = 4 << 20
	rawFlush             = 10_000
)

// run is one batch being read from Kafka: its counts, its aggregate and
// the dead letters and raw events not yet written.
type run struct {
	p             *Processor
	hb            Heartbeat
	id            ledger.BatchID
	slot, slotEnd time.Time
	st            progress
	end           int64 // the plan's end; 0 while a tail does not know it
	table         agg.Table
	dead          []sink.DeadLetter
	deadBytes     int            // payload bytes in dead
	raw           sink.RawBuffer // events not yet sent to the archive
	ins           RawWriter      // the archive insert they go to
	parser        event.Parser
	// hold keeps dead letters and raw events in memory and out of
	// heartbeats: a tailing batch whose start offset is a guess must not
	// write rows in the name of offsets that may not be its own.
	hold     bool
	ann      *announcement // to the group commit of outcomes, once the end is near; nil before
	lastBeat time.Time
	beaten   progress // the last heartbeat's details, or the progress resumed from; alive before either
	// tabled is when a beat last marshalled the table, tableCost how long
	// that took (tableShare); tooBig, that it passed maxTableBytes. They
	// start at zero on a new run, a resumed one included.
	tabled    time.Time
	tableCost time.Duration
	tooBig    bool
	n         int
	// due says when the run beats (nil: every beat interval), and linger
	// how long its raw rows wait for others' in the group commit (nil:
	// not at all): a tail's (tail.beatDue, tail.linger).
	due    func(last, now time.Time) bool
	linger func() linger
}

func (p *Processor) newRun(plan ledger.Batch, hb Heartbeat, start int64, hold bool) *run {
	id := plan.ID()
	return &run{p: p, hb: hb, id: id, slot: id.Slot, slotEnd: id.Slot.Add(time.Minute), end: plan.End,
		st: progress{Start: start, Next: start}, table: agg.Table{}, ins: p.Sink.NewRawWriter(),
		parser: event.Parser{SkipIDs: !p.Raw}, hold: hold, lastBeat: time.Now(), beaten: alive}
}

// add counts one record.
func (r *run) add(ctx context.Context, m *kafka.Record) error {
	st := &r.st
	if m.Offset > st.Next {
		st.Skipped += uint64(m.Offset - st.Next)
	}
	st.Next = m.Offset + 1
	if m.Attrs.IsControl() { // a transaction's marker: an offset, not an event
		st.Markers++
		return r.maybeBeat(ctx)
	}
	ev, err := r.parser.Parse(m.Value)
	if err != nil {
		reason, _ := event.IsInvalid(err)
		switch {
		case m.Value == nil: // Kafka's null, which compaction reads as a deletion
			reason = "null value (a tombstone): a record without a value"
		case len(m.Value) == 0:
			reason = "empty value"
		}
		d := sink.DeadLetter{Topic: r.id.Topic, Partition: r.id.Partition, Offset: m.Offset, Slot: r.slot,
			LogTime: m.Timestamp, Reason: reason}
		d.SetPayload(m.Value)
		r.dead = append(r.dead, d)
		r.deadBytes += len(d.Payload)
		st.Dead++
		if r.deadFull() && !r.hold {
			return r.flush(ctx)
		}
	} else {
		if err := r.table.Add(&ev); err != nil {
			return r.overflow(m.Offset, err)
		}
		if r.p.Raw {
			r.raw.Add(r.id, m.Offset, m.Timestamp, &ev)
			if r.raw.Len() >= rawFlush && !r.hold {
				if err := r.ins.Send(ctx, &r.raw); err != nil {
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
	return r.maybeBeat(ctx)
}

// maybeBeat heartbeats when one is due (checked every 64 records).
func (r *run) maybeBeat(ctx context.Context) error {
	if r.n++; r.n%64 == 0 && r.beatDue(time.Now()) {
		return r.beat(ctx)
	}
	return nil
}

// beatDue says whether the run heartbeats at now.
func (r *run) beatDue(now time.Time) bool {
	if r.due != nil {
		return r.due(r.lastBeat, now)
	}
	return now.Sub(r.lastBeat) >= r.p.beatEvery()
}

// overflow is the error of the record at offset, whose revenue would make
// its key's sum pass an Int64 (agg.Totals). In a run of a known plan no
// retry can fix it: bad input (non-retryable). A run that a tail started
// before its plan was known (end 0) cannot tell whether the record is the
// batch's (its start a wrong guess, or the record past the plan's end), and
// keeps end 0 while it reads the rest of the plan: its error is an ordinary
// one, retried, and the retry, with the plan in the ledger, reads the plan
// as a planned batch and knows.
func (r *run) overflow(offset int64, err error) error {
	where := fmt.Sprintf("%s/%d slot %s, offset %d", r.id.Topic, r.id.Partition, r.slot.UTC().Format(time.RFC3339), offset)
	if r.end == 0 {
		return fmt.Errorf("%s, read while tailing (before the plan was known): %w", where, err)
	}
	return fmt.Errorf("%w: %s: the batch's sums cannot be stored exactly: %w", ErrBadInput, where, err)
}

// deadFull says that the dead letters must be written before the run takes
// another: they are deadLetterFlush, or one more of the largest size could
// pass deadLetterFlushBytes. So the buffer never holds more than that.
func (r *run) deadFull() bool {
	return len(r.dead) >= deadLetterFlush || r.deadBytes > deadLetterFlushBytes-sink.MaxDeadLetterPayload
}

// full says that a held run should stop reading until its start is confirmed.
func (r *run) full() bool { return r.deadFull() || r.raw.Len() >= rawFlush }

// flush stores the dead letters and raw events read so far, unless held.
func (r *run) flush(ctx context.Context) error {
	return r.store(ctx, true)
}

// store stores what flush does, but leaves the raw events not yet sent in
// r.raw unless withRaw: at a batch's end they go with its outcome (record).
func (r *run) store(ctx context.Context, withRaw bool) error {
	if r.hold {
		return nil
	}
	// The insert first, so that this never holds two connections at once.
	// A run that streamed blocks commits its own insert; the rows of one
	// that did not go with those of the worker's other runs (groupCommit).
	switch {
	case r.ins.Open():
		if err := r.ins.Commit(ctx, &r.raw); err != nil {
			return err
		}
	case r.raw.Len() > 0 && withRaw:
		var l linger
		if r.linger != nil {
			l = r.linger()
		}
		if err := r.p.commits.raw.commit(ctx, &r.raw, nil, l, r.p.Sink.WriteRaw); err != nil {
			return err
		}
		r.raw.Reset()
	}
	if err := r.p.Sink.WriteDeadLetters(ctx, r.dead); err != nil {
		return err
	}
	clear(r.dead) // let the payloads go
	r.dead, r.deadBytes = r.dead[:0], 0
	return nil
}

// abort ends the run's archive insert, if one is open (an error ended the
// run before its flush).
func (r *run) abort() { r.ins.Abort() }

// outcome is the plan with the run's counts.
func (r *run) outcome(plan ledger.Batch) ledger.Batch {
	done := plan
	done.Events, done.LateEvents, done.EarlyEvents = r.st.Events, r.st.Late, r.st.Early
	done.DeadLetters, done.Markers, done.Skipped = r.st.Dead, r.st.Markers, r.st.Skipped
	done.MinEventTime, done.MaxEventTime = r.st.MinEventTime, r.st.MaxEventTime
	done.Archived = r.p.Raw
	return done
}
