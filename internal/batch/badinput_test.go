package batch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
)

// Bad input that is valid JSON: records that would make a batch's memory or
// its sums unbounded.

// What the batch must hold to, whatever its records: dead letters buffered
// at most deadBytesBound payload bytes at once, each payload stored at most
// storedPayloadBound bytes.
const (
	deadBytesBound     = 4 << 20
	storedPayloadBound = 64 << 10
)

// bigBad makes n records stamped in [from, from+1m): every other one
// invalid, its payload padded to size bytes.
func bigBad(from time.Time, n, size int) []rec {
	rs := span(from, n, 0)
	for i := range rs {
		if i%2 == 1 {
			rs[i].bad, rs[i].size = true, size
		}
	}
	return rs
}

// A batch of large invalid records (100 of 100 kB: 10 MB) never buffers
// more than the bound of dead-letter bytes, and stores each payload cut
// to its bound.
func TestDeadLettersBoundedByBytes(t *testing.T) {
	f := newFixture(t)
	f.produce(bigBad(slot, 200, 100_000)...)
	res, err := f.processor().Process(testCtx(t), Input{Plan: plan(0, 200)}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	f.checkDone(res, 0, 200)
	calls, most := f.sink.deadWrites()
	if most > deadBytesBound {
		t.Fatalf("a dead-letter write of %d payload bytes (%d writes in all): the batch buffered more than %d bytes of dead letters",
			most, calls, deadBytesBound)
	}
	if calls < 2 {
		t.Fatalf("100 dead letters of 64 KiB (stored) in %d write: the bound of bytes did not flush them", calls)
	}
	for o, d := range f.sink.dead {
		if len(d.Payload) > storedPayloadBound {
			t.Fatalf("dead letter at offset %d stored with a payload of %d bytes, over %d", o, len(d.Payload), storedPayloadBound)
		}
	}
}

// A held run (a tail whose start is a guess) cannot write what it reads:
// it stops reading once its dead letters reach the bound of bytes, not
// only their count.
func TestHeldRunFullByBytes(t *testing.T) {
	p := &Processor{Ledger: newLedger(), Sink: newSink(), Raw: true}
	r := p.newRun(plan(0, 1000), &memBeat{}, 0, true)
	defer r.abort()
	bad := rec{bad: true, size: 100_000}
	n := 0
	for ; n < 200 && !r.full(); n++ {
		if err := r.add(testCtx(t), &kgo.Record{Offset: int64(n), Timestamp: slot, Value: bad.value(n)}); err != nil {
			t.Fatal(err)
		}
	}
	held := 0
	for _, d := range r.dead {
		held += len(d.Payload)
	}
	if held > deadBytesBound {
		t.Fatalf("a held run took %d invalid records of 100 kB and holds %d bytes of dead letters (full: %v), over %d",
			n, held, r.full(), deadBytesBound)
	}
	if !r.full() {
		t.Fatalf("a held run took %d invalid records of 100 kB and is not full", n)
	}
}

// A held tail that meets large invalid records stops reading at the bound,
// writes what it held once its start is confirmed, and ends exact: no
// dead-letter write past the bound.
func TestHeldTailBoundedByBytes(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot.Add(-time.Minute), 20, 0)...)
	f.produce(bigBad(slot, 200, 100_000)...) // 20-219, 100 of them invalid
	res := f.holdThenConfirm(20, 220)
	f.checkDone(res, 20, 220)
	if calls, most := f.sink.deadWrites(); most > deadBytesBound {
		t.Fatalf("a dead-letter write of %d payload bytes (%d writes in all): the tail held more than %d bytes of dead letters",
			most, calls, deadBytesBound)
	}
}

// Revenue that would pass an Int64 in one key (some 9.2 million events at
// the per-event cap) fails the batch as bad input, which no retry can fix,
// naming the batch and the key; nothing is recorded done and no partial
// carries a wrapped sum. The table is resumed from a heartbeat that already
// holds 9,223,371 events at the cap (as a retry would), so that two more
// records reach the overflow.
func TestRevenueOverflowFailsTheBatch(t *testing.T) {
	f := newFixture(t)
	f.produce(cappedRecs()...)
	hb, k := nearMax(t)
	pl := plan(0, 3)
	res, err := f.processor().Process(testCtx(t), Input{Plan: pl}, hb)
	if err == nil {
		got := f.sink.partials[pl.ID()][k]
		t.Fatalf("the batch succeeded: %d events at the cap of %d micro-units summed to %d micro-units (%s)",
			got.Count, int64(event.MaxRevenueMicros), got.RevenueMicros, agg.FormatMicros(got.RevenueMicros))
	}
	if !errors.Is(err, ErrBadInput) || !errors.Is(err, agg.ErrOverflow) {
		t.Fatalf("got %v, want ErrBadInput (no retry can fix it) and agg.ErrOverflow", err)
	}
	t.Log(err)
	for _, want := range []string{"ads/0", "slot 2026-11-30T10:00:00Z", "offset 2", "2026-11-30T10:00Z impression/US/banner"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if b, ok := f.ledger.row(pl.ID()); ok && b.Done() || res.Batch.Done() {
		t.Fatalf("a batch whose sum overflowed was recorded done: %+v", b)
	}
	if _, ok := f.sink.partials[pl.ID()]; ok {
		t.Fatal("a batch whose sum overflowed wrote partials")
	}
}

// nearMax is a heartbeat of offset 0 done, whose table holds 9,223,371
// events at the revenue cap in the key of the records cappedRecs makes: the
// second of those (offset 2) passes an Int64.
func nearMax(t *testing.T) (*memBeat, agg.Key) {
	k := agg.Key{Window: slot.Unix(), EventType: "impression", Country: "US", AdFormat: "banner"}
	n := int64(math.MaxInt64/event.MaxRevenueMicros) - 1
	table, err := agg.Table{k: {Count: n, RevenueMicros: n * event.MaxRevenueMicros}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	hb := &memBeat{}
	hb.Record(testCtx(t), progress{Start: 0, Next: 1, Table: table, Events: uint64(n), Archived: true})
	return hb, k
}

// cappedRecs are three records in the slot, in one key, each at the cap.
func cappedRecs() []rec {
	capped := "1000000" // event.MaxRevenueMicros, in currency units
	return []rec{{at: slot, country: "US", revenue: capped}, {at: slot.Add(time.Second), country: "US", revenue: capped},
		{at: slot.Add(2 * time.Second), country: "US", revenue: capped}}
}

// A tail meets the overflow before its plan is known, when the record may
// not be its batch's: it fails as an ordinary error, which Temporal
// retries. The retry, with the plan in the ledger, reads the plan and fails
// as bad input.
func TestTailOverflowRetriedThenBadInput(t *testing.T) {
	f := newFixture(t)
	f.produce(cappedRecs()...)
	f.ledger.plan(prevPlan(0, 0)) // the tail starts at 0
	hb, _ := nearMax(t)
	in := tailInput()
	in.TailUntil = time.Now().Add(5 * time.Second)
	_, err := f.processor().Process(testCtx(t), in, hb)
	if err == nil || errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "overflows Int64") ||
		!strings.Contains(err.Error(), "offset 2") {
		t.Fatalf("tailing before the plan: got %v, want a retryable overflow error at offset 2", err)
	}
	t.Log(err)
	f.ledger.plan(plan(0, 3))
	_, err = f.processor().Process(testCtx(t), in, hb)
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "overflows Int64") {
		t.Fatalf("the retry with the plan known: got %v, want bad input (overflow)", err)
	}
}

// The dead letters a batch writes carry their payload's start, cut at the
// bound, with the full payload's length and SHA-256: large and small.
func TestDeadLettersKeepLengthAndHash(t *testing.T) {
	f := newFixture(t)
	rs := bigBad(slot, 20, 300_000)
	rs[3].size = 0 // a small one too
	f.produce(rs...)
	res, err := f.processor().Process(testCtx(t), Input{Plan: plan(0, 20)}, &memBeat{})
	if err != nil {
		t.Fatal(err)
	}
	f.checkDone(res, 0, 20)
	for _, o := range f.sink.deadOffsets() {
		d := f.sink.dead[o]
		orig := f.recs[o].value(int(o))
		sum := sha256.Sum256(orig)
		keep := min(len(orig), storedPayloadBound)
		if !bytes.Equal(d.Payload, orig[:keep]) || d.PayloadBytes != uint64(len(orig)) || d.PayloadSHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("dead letter at offset %d: %d bytes stored, length %d, SHA-256 %s; want the first %d of %d bytes, SHA-256 %x",
				o, len(d.Payload), d.PayloadBytes, d.PayloadSHA256, keep, len(orig), sum)
		}
	}
}

// A record without a value (a tombstone: Kafka's null) and a record whose
// value is empty are dead letters whose reasons tell them apart.
func TestTombstoneAndEmptyValueToldApart(t *testing.T) {
	f := newFixture(t)
	cl := f.producer()
	for _, v := range [][]byte{nil, {}} {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: v, Timestamp: slot, Partition: 0}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if _, err := f.processor().Process(testCtx(t), Input{Plan: plan(0, 2)}, &memBeat{}); err != nil {
		t.Fatal(err)
	}
	for o, want := range map[int64]string{0: "null value (a tombstone)", 1: "empty value"} {
		if d, ok := f.sink.dead[o]; !ok || !strings.Contains(d.Reason, want) {
			t.Errorf("offset %d: dead letter %v (reason %q), want the reason %q", o, ok, d.Reason, want)
		}
	}
}
