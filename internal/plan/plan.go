// Package plan decides which offsets of a partition belong to a slot. It is
// the first step of the exactly-once argument (DESIGN.md): plans partition
// the log, so every offset belongs to exactly one batch.
package plan

import (
	"fmt"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// Input is what deciding one partition's plan for one slot needs.
type Input struct {
	Topic     string
	Partition int32
	Slot      time.Time     // minute of log time, UTC
	Prev      *ledger.Batch // latest plan before Slot, if any
	Next      *ledger.Batch // earliest plan after Slot, if any
	LogStart  int64         // first offset Kafka still holds
	HighWater int64         // next offset to be written
	EndOffset int64         // first offset whose timestamp >= slot end ...
	EndFound  bool          // ... if Kafka holds such a record
	Now       time.Time     // for PlannedAt
	TopicID   string        // Kafka's ID of the topic now ("" if the broker gives none)
	Adopted   bool          // an operator adopted TopicID (starter topic adopt)
}

// Partition returns the plan [Start, End) of in.Partition for in.Slot.
//
//   - Start is where the previous plan ended (no offset skipped, none taken
//     twice); the very first plan of a partition starts at the log start,
//     so nothing already in Kafka is left out.
//   - End is the first offset stamped at or after the slot's end. A partition
//     with no such record yet is idle: it is planned to the high watermark,
//     and the next slot starts there.
//   - End is never below the high watermark the previous plan saw, if that
//     plan was made before this slot ended: those records were appended
//     before the slot's end, whatever their timestamps say. Without this
//     floor, one record stamped far ahead (a producer clock years fast,
//     microseconds sent as milliseconds) would be the first offset stamped
//     past every later slot's end, and every later plan would end at it.
//     With it, a record appended at t is planned by about t + 2 minutes
//     when slots are planned less than a minute after they end (see
//     Floor). Membership stays by offset: which slot counts a record never
//     changes the window its event goes to. (For a live slot the planner
//     looks for EndOffset past the start and floor, within bounds:
//     activities.endPastPlanned; any EndOffset is clamped here.)
//   - A slot planned after a later slot (a slot that never ran, planned by a
//     backfill or reconciliation) only takes offsets between its neighbours,
//     so it can never overlap them; usually that range is empty, because the
//     later slot's batch already holds those offsets.
//   - A slot planned after missed slots takes their offsets too: the gap is
//     never lost, it is counted in this slot.
//
// The plan records the topic ID it was made for. A neighbour made for
// another topic ID was made on a topic since deleted and created again,
// whose offsets meant other records: planning stops with an error, unless
// the operator adopted the new topic ID, after which its first plan starts
// at the new log's start.
func Partition(in Input) (ledger.Batch, error) {
	b := ledger.Batch{Topic: in.Topic, TopicID: in.TopicID, Partition: in.Partition, Slot: in.Slot, State: ledger.StatePlanned,
		PlannedAt: in.Now, HighWater: in.HighWater}
	if in.Next != nil && in.Next.OtherTopic(in.TopicID) {
		return b, fmt.Errorf("%s/%d: slot %s lies before plans made for topic ID %s, and Kafka's topic now has topic ID %s: "+
			"the topic was deleted and created again, and its offsets now mean other records; "+
			"recompute that slot from the raw archive (--source raw)", in.Topic, in.Partition, in.Slot.Format(time.RFC3339),
			in.Next.TopicID, in.TopicID)
	}
	if in.Prev != nil && in.Prev.OtherTopic(in.TopicID) {
		if !in.Adopted {
			return b, fmt.Errorf("%s/%d: the topic was deleted and created again: its plans up to slot %s were made for topic ID %s, "+
				"and Kafka's topic now has topic ID %s, whose offsets start again. Planning stops rather than read the new log "+
				"as the old one's continuation; the windows written so far stay as they are. To process the new topic from its "+
				"first offset, run `starter topic adopt --topic %s`; to recompute slots of the old topic, use --source raw",
				in.Topic, in.Partition, in.Prev.Slot.Format(time.RFC3339), in.Prev.TopicID, in.TopicID, in.Topic)
		}
		in.Prev = nil // the adopted incarnation's first plan
	}
	floor := Floor(in.Prev, in.Slot)
	if in.Next != nil {
		b.Start = in.Next.Start
		if in.Prev != nil {
			b.Start = in.Prev.End
		}
		b.End = in.Next.Start
		if in.EndFound {
			b.End = clamp(max(in.EndOffset, floor), b.Start, in.Next.Start)
		}
		return b, nil
	}
	b.Start = in.LogStart
	if in.Prev != nil {
		b.Start = in.Prev.End
		if b.Start > in.HighWater {
			return b, fmt.Errorf("%s/%d: the ledger's last plan (slot %s) ends at offset %d but Kafka's high watermark is %d: "+
				"the log was truncated (records lost to an unclean leader election, or deleted), or the topic was created again "+
				"on a broker that gives no topic IDs; recompute from the raw archive (--source raw)", in.Topic, in.Partition,
				in.Prev.Slot.Format(time.RFC3339), b.Start, in.HighWater)
		}
	}
	if in.EndFound {
		b.End = clamp(max(in.EndOffset, floor), b.Start, in.HighWater)
	} else {
		b.End, b.Idle = in.HighWater, true
	}
	return b, nil
}

// Floor is the offset below which the plan of slot must end, given the
// partition's previous plan: the high watermark that plan saw, when it was
// made before slot ended (everything below it was appended before then),
// else 0. A plan made after slot ended (a catch-up, a backfill) sets no
// floor, so each minute's records stay in their own slot.
func Floor(prev *ledger.Batch, slot time.Time) int64 {
	if prev == nil || !prev.PlannedAt.Before(slot.Add(time.Minute)) {
		return 0
	}
	return prev.HighWater
}

// CheckSlot refuses a slot that is not a whole minute from 1970-01-01 (Kafka
// reads a negative time as one of its special values) to the day before
// event.EndTime (where event times end).
func CheckSlot(slot time.Time) error {
	switch {
	case !slot.Equal(slot.Truncate(time.Minute)):
		return fmt.Errorf("slot %s is not the start of a minute", slot.UTC().Format(time.RFC3339Nano))
	case slot.Before(time.Unix(0, 0)) || !slot.Before(event.EndTime):
		return fmt.Errorf("slot %s: slots run from 1970-01-01T00:00:00Z to before %s", slot.UTC().Format(time.RFC3339),
			event.EndTime.Format(time.RFC3339))
	}
	return nil
}

func clamp(v, lo, hi int64) int64 {
	if hi < lo {
		hi = lo
	}
	return max(lo, min(v, hi))
}

// Split divides a plan of more than max offsets into sub-batches of at most
// max (as equal as can be), numbered 0..n-1 in offset order: each is a batch
// of its own, run in parallel and resumed on its own, and together they
// hold exactly the plan's offsets. A plan of at most max offsets (or max <
// 1) is returned as it is. The last sub-batch keeps the plan's Idle flag.
func Split(b ledger.Batch, max int64) []ledger.Batch {
	n := b.Offsets()
	if max < 1 || n <= max {
		return []ledger.Batch{b}
	}
	parts := (n + max - 1) / max
	out := make([]ledger.Batch, 0, parts)
	start := b.Start
	for i := range parts {
		sb := b
		sb.Sub, sb.Start, sb.End = uint32(i), start, b.Start+n*(i+1)/parts
		sb.Idle = b.Idle && i == parts-1
		out = append(out, sb)
		start = sb.End
	}
	return out
}
