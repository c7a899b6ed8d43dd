package activities

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// ledgerSlots is an OperateStore whose ledger and partials hold the given
// slots (only SlotsHoldingWindows is used by FindBackfillSlots).
type ledgerSlots struct {
	OperateStore
	slots []time.Time
}

func (l ledgerSlots) SlotsHoldingWindows(context.Context, string, time.Time, time.Time) ([]time.Time, error) {
	return l.slots, nil
}

// A backfill from Kafka runs the minutes of its range that never ran, but
// not those before the first record the topic holds: their plans would all
// be empty (a mistyped year meant tens of thousands of empty slot runs and
// ledger rows). Slots the ledger knows are run whatever their minute.
func TestBackfillSkipsMinutesBeforeTheTopicsFirstRecord(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	long := base.AddDate(0, 0, -20)                                      // a mistyped day
	f.a.Ops = ledgerSlots{slots: []time.Time{long.Add(7 * time.Minute)}} // a slot that ran, years ago
	find := func(from, to time.Time) []time.Time {
		t.Helper()
		got, err := f.a.FindBackfillSlots(context.Background(), RangeInput{Topic: planTopic, From: from, To: to, Source: SourceKafka})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := find(long, long.Add(time.Hour)); !slices.Equal(got, []time.Time{long.Add(7 * time.Minute)}) {
		t.Errorf("an empty topic, a range of days ago: %d slots, want only the one the ledger knows", len(got))
	}
	f.produce(base.Add(90*time.Second), base.Add(30*time.Second), base.Add(200*time.Second)) // the first stamped at base+1m30s
	got := find(long, base.Add(3*time.Minute))
	want := []time.Time{long.Add(7 * time.Minute), base.Add(time.Minute), base.Add(2 * time.Minute)}
	if n := len(got); !slices.Equal(got, want) {
		if n > 5 {
			got = append(got[:3], got[len(got)-2:]...)
		}
		t.Errorf("%d slots (%v ...), want %v: the one the ledger knows, and the minutes from the first record's", n, got, want)
	}
}

// beatWhile beats at its interval until stopped, and not after.
func TestBeatWhile(t *testing.T) {
	var n atomic.Int32
	stop := beatWhile(context.Background(), 10*time.Millisecond, func() { n.Add(1) })
	time.Sleep(200 * time.Millisecond)
	stop()
	got := n.Load()
	time.Sleep(50 * time.Millisecond)
	if got < 3 || n.Load() != got {
		t.Errorf("%d beats in 200 ms at every 10 ms, then %d after the stop", got, n.Load()-got)
	}
}

// Records without a timestamp (-1) say nothing of their minutes: a
// backfill runs every minute of its range then, as before.
func TestBackfillRunsEveryMinuteOfRecordsWithoutTimestamps(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.a.Ops = ledgerSlots{}
	f.produce(time.UnixMilli(-1), time.UnixMilli(-1))
	got, err := f.a.FindBackfillSlots(context.Background(), RangeInput{Topic: planTopic, From: base, To: base.Add(3 * time.Minute), Source: SourceKafka})
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{base, base.Add(time.Minute), base.Add(2 * time.Minute)}; !slices.Equal(got, want) {
		t.Errorf("slots %v, want %v", got, want)
	}
}
