package ledger

import (
	"slices"
	"time"
)

// SlotSummary is one slot's ledger rows folded into one line.
type SlotSummary struct {
	Slot       time.Time `json:"slot"`
	Partitions int       `json:"partitions"` // whatever their sub-batches
	Offsets    int64     `json:"offsets"`
	State      string    `json:"state"` // done once every batch is
	Events     uint64    `json:"events"`
	Late       uint64    `json:"late"`
	Early      uint64    `json:"early"`
	Dead       uint64    `json:"dead_letters"`
	Markers    uint64    `json:"markers"`
	Skipped    uint64    `json:"skipped"`
	MaxMs      uint64    `json:"max_batch_ms"`
	Finished   time.Time `json:"finished,omitzero"` // when its latest done batch finished
}

// Summarise folds batches into one summary per slot, newest slot first.
func Summarise(bs []Batch) []SlotSummary {
	by := map[time.Time]*SlotSummary{}
	for _, b := range bs {
		s := by[b.Slot]
		if s == nil {
			s = &SlotSummary{Slot: b.Slot, State: StateDone}
			by[b.Slot] = s
		}
		if b.Sub == 0 {
			s.Partitions++ // a partition's plan split in sub-batches counts once
		}
		s.Offsets += b.Offsets()
		if b.State != StateDone {
			s.State = b.State
		}
		s.Events += b.Events
		s.Late += b.LateEvents
		s.Early += b.EarlyEvents
		s.Dead += b.DeadLetters
		s.Markers += b.Markers
		s.Skipped += b.Skipped
		s.MaxMs = max(s.MaxMs, b.DurationMs)
		if b.State == StateDone && b.FinishedAt.After(s.Finished) {
			s.Finished = b.FinishedAt
		}
	}
	out := make([]SlotSummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y SlotSummary) int { return y.Slot.Compare(x.Slot) })
	return out
}
