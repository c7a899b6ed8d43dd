package batch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

func plan(start, end int64) ledger.Batch {
	return ledger.Batch{Topic: topic, Partition: 0, Slot: slot, Start: start, End: end}
}

func prevPlan(start, end int64) ledger.Batch {
	b := plan(start, end)
	b.Slot = slot.Add(-time.Minute)
	return b
}

// A planned batch counts exactly its offsets: events + dead letters = plan,
// the partials are the aggregate of those records, and the records outside
// the plan are not read.
func TestPlannedBatchCountsExactlyItsOffsets(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot.Add(-time.Minute), 30, 0)...)
	f.produce(span(slot, 60, 7)...)
	f.produce(span(slot.Add(time.Minute), 20, 0)...)
	res, err := f.processor().Process(testCtx(t), Input{Plan: plan(30, 90)}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	f.checkDone(res, 30, 90)
	if res.Batch.Events+res.Batch.DeadLetters != 60 || res.Batch.DeadLetters == 0 {
		t.Fatalf("counted %d events and %d dead letters in 60 offsets", res.Batch.Events, res.Batch.DeadLetters)
	}
	if len(f.sink.raw) != int(res.Batch.Events) {
		t.Fatalf("raw archive holds %d rows for %d events", len(f.sink.raw), res.Batch.Events)
	}
}

// tailInput is a tail of the slot, with a bound far enough away.
func tailInput() Input {
	return Input{Plan: ledger.Batch{Topic: topic, Partition: 0, Slot: slot}, Tail: true, TailUntil: time.Now().Add(time.Minute)}
}

type outcome struct {
	res Result
	err error
}

func startTail(t *testing.T, p *Processor, hb Heartbeat) <-chan outcome {
	done := make(chan outcome, 1)
	ctx := testCtx(t)
	go func() {
		res, err := p.Process(ctx, tailInput(), hb)
		done <- outcome{res, err}
	}()
	return done
}

func wait(t *testing.T, done <-chan outcome) Result {
	t.Helper()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatal(o.err)
		}
		return o.res
	case <-time.After(30 * time.Second):
		t.Fatal("the tail did not end")
	}
	return Result{}
}

// A tail with no previous plan guesses its start (the first record stamped
// at the slot's start), holds what it reads, and writes nothing under that
// guess. When the ledger says the slot starts elsewhere (the previous slot
// took records stamped in this minute), it starts again from the plan:
// the offsets read under the wrong guess are never written in its name.
func TestTailGuessRefutedByTheLedger(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot.Add(-time.Minute), 20, 0)...) // offsets 0-19: the minute before
	f.produce(span(slot, 40, 3)...)                   // 20-59: this minute; dead letters at 22, 25, ...
	f.produce(span(slot.Add(time.Minute), 10, 0)...)  // 60-69: the next minute
	p := f.processor()
	p.BeatEvery = time.Millisecond // a run that is not held writes at every heartbeat
	done := startTail(t, p, &memBeat{})
	// Let the tail read under its guess (20), then plan: the previous
	// slot ends at 26, so this one is [26, 60).
	eventually(t, "the tail reads the ledger while holding", func() bool { return f.ledger.readCount() >= 3 })
	if got := f.sink.deadOffsets(); len(got) > 0 {
		t.Fatalf("a held tail wrote dead letters %v before its start was confirmed", got)
	}
	f.ledger.plan(prevPlan(0, 26))
	f.ledger.plan(plan(26, 60))
	res := wait(t, done)
	f.checkDone(res, 26, 60)
	for _, o := range f.sink.deadOffsets() {
		if o < 26 {
			t.Fatalf("dead letter at offset %d, which is the previous slot's, stored under this slot", o)
		}
	}
	for o, s := range f.sink.raw {
		if o < 26 || !s.Equal(slot) {
			t.Fatalf("raw row of offset %d (slot %s) written by the wrong guess", o, s)
		}
	}
}

// A held tail whose guess the ledger confirms (the previous plan ends
// where it started) writes what it held at once, before its own plan
// exists, and then ends as the plan says, counting each offset once.
func TestTailHoldThenConfirm(t *testing.T) {
	f := newFixture(t)
	f.produceMinutes()
	res := f.holdThenConfirm(20, 60)
	if !res.Tailed {
		t.Fatal("a confirmed tail should finish from what it read (Tailed)")
	}
	f.checkDone(res, 20, 60)
}

// A tail that read past its plan's end (the partition was idle when it was
// planned, and records stamped in the minute came later) reads the plan
// again from its start: the records past the end belong to the next slot.
func TestTailReadPastThePlanEndReadsThePlanAgain(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot.Add(-time.Minute), 20, 0)...)
	f.produce(span(slot, 40, 4)...) // 20-59, all stamped in the minute
	f.ledger.plan(prevPlan(0, 20))
	hb := &memBeat{}
	p := f.processor()
	p.BeatEvery = time.Millisecond
	done := startTail(t, p, hb)
	eventually(t, "the tail reads to offset 60", func() bool { return hb.progress().Next == 60 })
	// Planned idle at 45: offsets 45-59 are the next slot's.
	f.ledger.plan(plan(20, 45))
	res := wait(t, done)
	if res.Tailed {
		t.Fatal("a tail past its plan's end must read the plan again, not finish from what it read")
	}
	f.checkDone(res, 20, 45)
	if o := f.sink.deadOffsets(); len(o) > 0 && o[len(o)-1] >= 45 {
		// Dead letters are keyed by offset; the next slot rewrites them with its slot.
		d := f.sink.dead[o[len(o)-1]]
		if !d.Slot.Equal(slot) {
			t.Fatalf("dead letter %+v", d)
		}
	}
}

// A retry resumes from the last heartbeat of the attempt before it, and the
// outcome is the same as a run in one go.
func TestResumeFromAHeartbeat(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot, 2000, 9)...)
	p := f.processor()
	p.BeatEvery = time.Nanosecond // a progress heartbeat every 64 records
	hb := &memBeat{}
	f.sink.failPartials = 1 // the first attempt reads everything, then fails to write
	if _, err := p.Process(testCtx(t), Input{Plan: plan(0, 2000)}, hb); err == nil {
		t.Fatal("the injected failure did not fail the attempt")
	}
	saved := hb.progress()
	if saved.Start != 0 || saved.Next <= 0 || saved.Next > 2000 || len(saved.Table) == 0 {
		t.Fatalf("no usable progress heartbeat: %+v", saved)
	}
	res, err := p.Process(testCtx(t), Input{Plan: plan(0, 2000)}, hb)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != saved.Next {
		t.Fatalf("resumed from %d, the last heartbeat said %d", res.Resumed, saved.Next)
	}
	f.checkDone(res, 0, 2000)
}

// A write that fails half-way (dead letters, then the ledger) fails the
// attempt; the retry ends exact, with each offset counted once.
func TestRetryAfterAFailedWrite(t *testing.T) {
	for _, c := range []struct {
		name   string
		inject func(*fixture)
	}{
		{"dead letters", func(f *fixture) { f.sink.failDead = 1 }},
		{"ledger", func(f *fixture) { f.ledger.fail = 1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.produce(span(slot, 3000, 5)...)
			p := f.processor()
			p.BeatEvery = time.Nanosecond
			hb := &memBeat{}
			c.inject(f)
			if _, err := p.Process(testCtx(t), Input{Plan: plan(0, 3000)}, hb); err == nil {
				t.Fatal("the injected failure did not fail the attempt")
			}
			res, err := p.Process(testCtx(t), Input{Plan: plan(0, 3000)}, hb)
			if err != nil {
				t.Fatal(err)
			}
			f.checkDone(res, 0, 3000)
		})
	}
}

// The raw events a batch has not stored by its end go with its outcome,
// beside its partials: the ledger says done, and archived, only once they
// are stored. A failed archive write fails the attempt before the ledger
// row; the retry stores every event.
func TestRawEventsAreStoredBeforeTheLedgerSaysDone(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot, 500, 0)...)
	p, pl := f.processor(), plan(0, 500)
	f.sink.failRaw = 1
	if _, err := p.Process(testCtx(t), Input{Plan: pl}, &memBeat{}); err == nil {
		t.Fatal("the injected failure did not fail the attempt")
	}
	if b, _ := f.ledger.row(pl.ID()); b.Done() {
		t.Fatal("the ledger says done although the batch's raw events were not stored")
	}
	res, err := p.Process(testCtx(t), Input{Plan: pl}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	f.checkDone(res, 0, 500)
	f.sink.mu.Lock()
	defer f.sink.mu.Unlock()
	if b, _ := f.ledger.row(pl.ID()); !b.Archived || len(f.sink.raw) != 500 {
		t.Fatalf("archived %v, %d of 500 events in the archive", b.Archived, len(f.sink.raw))
	}
}

// A source other than kafka or raw is bad input, which no retry can fix.
func TestUnknownSourceIsBadInput(t *testing.T) {
	f := newFixture(t)
	_, err := f.processor().Process(context.Background(), Input{Plan: plan(0, 1), Source: "s3"}, &memBeat{})
	if !errors.Is(err, ErrBadInput) {
		t.Fatalf("got %v, want ErrBadInput", err)
	}
}

// Row versions do not depend on the clock of the worker that writes: a
// batch finished by a worker whose clock is behind the one that planned it
// (or ran it before) still replaces the plan row and the earlier partials.
func TestVersionsDoNotDependOnClocks(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot, 100, 10)...)
	future := uint64(time.Now().Add(time.Hour).UnixNano()) // the planner's clock was an hour ahead
	pl := plan(0, 100)
	pl.Version = future
	f.ledger.plan(pl)
	res, err := f.processor().Process(testCtx(t), Input{Plan: pl}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := f.ledger.row(pl.ID()); !b.Done() {
		t.Fatalf("the plan row (version %d) won over its own done row (version %d)", future, res.Batch.Version)
	}
	// A rerun on yet another slow clock replaces the first run's rows.
	f.sink.mu.Lock()
	f.sink.partials[pl.ID()] = nil
	f.sink.mu.Unlock()
	rerun, err := f.processor().Process(testCtx(t), Input{Plan: res.Batch}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	if rerun.Batch.Version <= res.Batch.Version {
		t.Fatalf("rerun version %d does not replace %d", rerun.Batch.Version, res.Batch.Version)
	}
	f.checkDone(rerun, 0, 100)
}

// Recomputing from the raw archive refuses when the archive holds fewer
// events than the ledger counted (rows lost, or a batch only partly
// archived): it would silently lower the windows.
func TestArchiveRecomputeRefusesACountThatDiffers(t *testing.T) {
	f := newFixture(t)
	done := plan(0, 100)
	done.State, done.Archived, done.Events, done.DeadLetters = ledger.StateDone, true, 90, 10
	f.ledger.rows[done.ID()] = done
	p := f.processor()
	p.Archive = &memArchive{table: agg.Table{}, ro: sink.RawOffsets{Events: 60, DeadLetters: 10}}
	_, err := p.Process(testCtx(t), Input{Plan: plan(0, 100), Source: SourceRaw}, &memBeat{})
	if !errors.Is(err, ErrNotArchived) {
		t.Fatalf("got %v, want ErrNotArchived: the archive holds 60 of the ledger's 90 events", err)
	}
}

// A retry on a worker with the raw archive set differently does not resume
// from the previous attempt's progress: a batch marked archived holds every
// one of its events in the archive.
func TestResumeAcrossAnArchiveSettingChange(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot, 2000, 9)...)
	first := f.processor()
	first.Raw, first.BeatEvery = false, time.Nanosecond
	hb := &memBeat{}
	f.sink.failPartials = 1
	if _, err := first.Process(testCtx(t), Input{Plan: plan(0, 2000)}, hb); err == nil {
		t.Fatal("the injected failure did not fail the attempt")
	}
	second := f.processor() // archive on
	res, err := second.Process(testCtx(t), Input{Plan: plan(0, 2000)}, hb)
	if err != nil {
		t.Fatal(err)
	}
	f.checkDone(res, 0, 2000)
	if res.Batch.Archived && uint64(len(f.sink.raw)) != res.Batch.Events {
		t.Fatalf("marked archived with %d of its %d events in the archive", len(f.sink.raw), res.Batch.Events)
	}
}

// Heartbeats stay well under Temporal's payload limit (2 MiB, past which
// the server fails the activity for good) however many keys a batch
// aggregates, and a retry still resumes a batch of 60,000 keys (24,000 under
// the race detector, where encoding is slow; late
// events spread over hours, hundreds of countries).
func TestHeartbeatsBoundedAndResumeWithManyKeys(t *testing.T) {
	f := newFixture(t)
	countries, windows := 600, 100
	if raceEnabled {
		windows = 40 // 24,000 keys: still past what heartbeats carried before (20,000 rows)
	}
	rs := make([]rec, countries*windows)
	for i := range rs {
		rs[i] = rec{at: slot.Add(time.Duration(i) * time.Millisecond), evTime: slot.Add(-time.Duration(i/countries) * time.Minute),
			country: fmt.Sprintf("C%03d", i%countries)}
	}
	f.produce(rs...)
	p := f.processor()
	p.BeatEvery = 20 * time.Millisecond
	hb := &memBeat{}
	f.sink.failPartials = 1
	if _, err := p.Process(testCtx(t), Input{Plan: plan(0, int64(len(rs)))}, hb); err == nil {
		t.Fatal("the injected failure did not fail the attempt")
	}
	if hb.maxSize > maxHeartbeatBytes {
		t.Fatalf("a heartbeat of %d bytes: over the bound of %d", hb.maxSize, maxHeartbeatBytes)
	}
	res, err := p.Process(testCtx(t), Input{Plan: plan(0, int64(len(rs)))}, hb)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed == 0 {
		t.Fatal("the retry did not resume: the aggregate of 60,000 keys was not carried")
	}
	if hb.maxSize > maxHeartbeatBytes {
		t.Fatalf("a heartbeat of %d bytes: over the bound of %d", hb.maxSize, maxHeartbeatBytes)
	}
	f.checkDone(res, 0, int64(len(rs)))
	t.Logf("largest heartbeat: %d bytes for %d keys; %d heartbeats, %d with a new table", hb.maxSize, len(f.sink.partials[res.Batch.ID()]), hb.n, hb.tables)
	// A heartbeat due every 20 ms cannot carry a table of tens of thousands
	// of keys each time: its sort and compression take longer than that,
	// and the batch would spend its time on them (quadratic in its keys):
	// before the fix, every one of 677 heartbeats carried a new table.
	if hb.n > 4 && hb.tables == hb.n {
		t.Errorf("%d of %d heartbeats carried a new table: the run spends more on its heartbeats than on its records", hb.tables, hb.n)
	}
}

// A batch over transactions counts what was committed, and accounts for
// every offset: events + dead letters + markers + skipped (the aborted
// records, proven by the markers after them) = offsets.
func TestTransactionalBatchAccountsForEveryOffset(t *testing.T) {
	f := newFixture(t)
	f.produceTxn(true, span(slot, 10, 4)...) // 0-9 (dead letters at 3, 7), marker 10
	aborted := span(slot, 5, 0)
	for i := range aborted {
		aborted[i].aborted = true
	}
	f.produceTxn(false, aborted...)          // 11-15, marker 16
	f.produceTxn(true, span(slot, 10, 0)...) // 17-26, marker 27
	res, err := f.processor().Process(testCtx(t), Input{Plan: plan(0, 28)}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	f.checkDone(res, 0, 28)
	b := res.Batch
	if b.Events != 18 || b.DeadLetters != 2 || b.Markers != 3 || b.Skipped != 5 {
		t.Fatalf("events %d, dead letters %d, markers %d, skipped %d; want 18, 2, 3, 5", b.Events, b.DeadLetters, b.Markers, b.Skipped)
	}
}
