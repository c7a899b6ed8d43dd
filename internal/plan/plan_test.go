package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

var slot = time.Date(2026, 11, 24, 21, 14, 0, 0, time.UTC)

func batch(start, end int64, minutes int) *ledger.Batch {
	return &ledger.Batch{Slot: slot.Add(time.Duration(minutes) * time.Minute), Start: start, End: end}
}

func TestPartition(t *testing.T) {
	cases := []struct {
		name       string
		in         Input
		start, end int64
		idle       bool
	}{
		{"first plan starts at the log start", Input{LogStart: 5, HighWater: 100, EndOffset: 40, EndFound: true}, 5, 40, false},
		{"continues the previous plan", Input{Prev: batch(0, 40, -1), LogStart: 0, HighWater: 100, EndOffset: 70, EndFound: true}, 40, 70, false},
		{"after missed slots takes the gap", Input{Prev: batch(0, 40, -5), HighWater: 100, EndOffset: 90, EndFound: true}, 40, 90, false},
		{"idle partition planned to the high watermark", Input{Prev: batch(0, 40, -1), HighWater: 55}, 40, 55, true},
		{"out-of-order timestamps never go backwards", Input{Prev: batch(0, 40, -1), HighWater: 100, EndOffset: 30, EndFound: true}, 40, 40, false},
		{"slot before the first plan is empty", Input{Next: batch(10, 40, 3), HighWater: 100, EndOffset: 5, EndFound: true}, 10, 10, false},
		{"hole between plans stays inside them", Input{Prev: batch(0, 40, -2), Next: batch(60, 80, 1), HighWater: 100, EndOffset: 70, EndFound: true}, 40, 60, false},
		{"hole between plans, end found inside", Input{Prev: batch(0, 40, -2), Next: batch(60, 80, 1), HighWater: 100, EndOffset: 50, EndFound: true}, 40, 50, false},
		{"hole with no end found takes up to the next plan", Input{Prev: batch(0, 40, -2), Next: batch(60, 80, 1), HighWater: 100}, 40, 60, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Slot = slot
			b, err := Partition(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if b.Start != c.start || b.End != c.end || b.Idle != c.idle || b.State != ledger.StatePlanned || !b.Slot.Equal(slot) {
				t.Fatalf("got [%d,%d) idle=%v state=%s, want [%d,%d) idle=%v", b.Start, b.End, b.Idle, b.State, c.start, c.end, c.idle)
			}
		})
	}
}

func TestPartitionLogTruncated(t *testing.T) {
	_, err := Partition(Input{Topic: "t", Slot: slot, Prev: batch(0, 400, -1), HighWater: 10, EndFound: false})
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("want a clear error, got %v", err)
	}
}

func TestPartitionTopicRecreated(t *testing.T) {
	prev := batch(0, 400, -1)
	prev.TopicID = "old"
	in := Input{Topic: "t", Slot: slot, Prev: prev, LogStart: 0, HighWater: 500, EndOffset: 450, EndFound: true, TopicID: "new"}
	if _, err := Partition(in); err == nil || !strings.Contains(err.Error(), "deleted and created again") {
		t.Fatalf("want a clear error, got %v", err)
	}
	in.Adopted = true
	b, err := Partition(in)
	if err != nil || b.Start != 0 || b.End != 450 || b.TopicID != "new" {
		t.Fatalf("adopted: got [%d,%d) for %q, %v; want [0,450) for new", b.Start, b.End, b.TopicID, err)
	}
	in.Prev, in.Next = nil, prev
	if _, err := Partition(in); err == nil || !strings.Contains(err.Error(), "raw archive") {
		t.Fatalf("a slot before plans of the old topic: want a clear error, got %v", err)
	}
}

// Planning a run of consecutive slots, in any mix of found and idle ends,
// yields contiguous, non-overlapping plans that cover every offset once.
func TestPartitionChainCoversLog(t *testing.T) {
	var prev *ledger.Batch
	hw := int64(0)
	covered := int64(0)
	for i := 0; i < 50; i++ {
		hw += int64(i % 7 * 3)
		in := Input{Slot: slot.Add(time.Duration(i) * time.Minute), Prev: prev, HighWater: hw}
		if i%3 != 0 {
			in.EndOffset, in.EndFound = hw-int64(i%4), true
		}
		b, err := Partition(in)
		if err != nil {
			t.Fatal(err)
		}
		if b.Start != covered || b.End < b.Start || b.End > hw {
			t.Fatalf("slot %d: plan [%d,%d) after %d offsets covered, hw %d", i, b.Start, b.End, covered, hw)
		}
		covered = b.End
		prev = &b
	}
}

func TestSplit(t *testing.T) {
	b := *batch(100, 1100, 0)
	b.Idle = true
	for _, c := range []struct {
		max  int64
		want int
	}{{0, 1}, {1000, 1}, {999, 2}, {300, 4}, {1, 1000}} {
		subs := Split(b, c.max)
		if len(subs) != c.want {
			t.Errorf("max %d: %d sub-batches, want %d", c.max, len(subs), c.want)
		}
		next := b.Start
		for i, s := range subs {
			if s.Start != next || s.Sub != uint32(i) || (c.max > 0 && s.Offsets() > c.max) || s.Offsets() < 1 ||
				s.Idle != (i == len(subs)-1) || !s.Slot.Equal(b.Slot) {
				t.Fatalf("max %d: sub-batch %d is %+v", c.max, i, s)
			}
			next = s.End
		}
		if next != b.End {
			t.Errorf("max %d: sub-batches end at %d, want %d", c.max, next, b.End)
		}
	}
}

// A slot is a whole minute in the range Kafka's timestamps and ClickHouse's
// DateTime share: one before 1970 would ask Kafka for the offset of a
// negative time (its special values: "the version of API is not supported"),
// retried while the topic's planner waited; year 1 is Go's zero time.
func TestCheckSlot(t *testing.T) {
	for _, c := range []struct {
		slot time.Time
		ok   bool
	}{
		{time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), true},
		{time.Unix(0, 0), true},
		{time.Date(2105, 12, 30, 23, 59, 0, 0, time.UTC), true},
		{time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC), false},
		{time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC), false},
		{time.Time{}, false},
		{time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC), false},
	} {
		if err := CheckSlot(c.slot); (err == nil) != c.ok {
			t.Errorf("CheckSlot(%s): %v, want ok %v", c.slot.Format(time.RFC3339Nano), err, c.ok)
		}
	}
}
