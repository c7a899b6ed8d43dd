// Package ledger holds the ledger row of rtbpipe: one batch, the plan of one
// partition for one slot and, once processed, its outcome (DESIGN.md: plans
// partition the log; every offset is accounted for). It is plain data: the
// ClickHouse table that stores it is internal/chstore's (ledger.go), and the
// workflows and the planning rule use it without a database driver.
package ledger

import (
	"cmp"
	"time"
)

// Batch states in the ledger.
const (
	StatePlanned = "planned"
	StateDone    = "done"
)

// BatchID names one batch: a partition's offsets for one slot, or the
// Sub'th part of them when the slot's plan was split (see Batch.Sub).
type BatchID struct {
	Topic     string
	Partition int32
	Slot      time.Time
	Sub       uint32
}

// Batch is one ledger row: the plan of one partition for one slot and, once
// processed, its outcome.
type Batch struct {
	Topic     string    `json:"topic"`
	TopicID   string    `json:"topic_id,omitempty"` // Kafka's ID of the topic it was planned for ("" if unknown)
	Partition int32     `json:"partition"`
	Slot      time.Time `json:"slot"`
	// Sub numbers the parts of a slot's plan that was split (internal/plan.Split):
	// sub-batches 0..n-1 hold consecutive offset ranges, each a batch of its
	// own. 0 for a plan not split.
	Sub          uint32    `json:"sub,omitempty"`
	Start        int64     `json:"start"`
	End          int64     `json:"end"`
	Idle         bool      `json:"idle,omitempty"` // planned to the high watermark: no record past the slot's end yet
	HighWater    int64     `json:"high_water"`     // the partition's high watermark (last stable offset) when it was planned
	State        string    `json:"state"`
	Events       uint64    `json:"events"`
	LateEvents   uint64    `json:"late_events"`
	EarlyEvents  uint64    `json:"early_events"`
	DeadLetters  uint64    `json:"dead_letters"`
	Markers      uint64    `json:"control_markers"`    // transaction markers (control records)
	Skipped      uint64    `json:"skipped_offsets"`    // offsets Kafka proved it will not deliver: aborted transactions, compaction
	Archived     bool      `json:"archived,omitempty"` // its valid events are in the raw archive
	Windows      uint32    `json:"windows"`
	MinEventTime time.Time `json:"min_event_time"`
	MaxEventTime time.Time `json:"max_event_time"`
	PlannedAt    time.Time `json:"planned_at"`
	FinishedAt   time.Time `json:"finished_at"`
	DurationMs   uint64    `json:"duration_ms"`
	WorkflowID   string    `json:"workflow_id"`
	RunID        string    `json:"run_id"`
	Attempt      uint32    `json:"attempt"`
	Version      uint64    `json:"version"`
}

// Incarnation is a topic ID an operator adopted for a topic that was
// deleted and created again (starter topic adopt): plans of the new
// incarnation start at its log start instead of refusing to follow the
// old incarnation's plans.
type Incarnation struct {
	Topic, TopicID string
	AdoptedAt      time.Time
	AdoptedBy      string
}

// ID is the batch's identity.
func (b *Batch) ID() BatchID {
	return BatchID{Topic: b.Topic, Partition: b.Partition, Slot: b.Slot.UTC(), Sub: b.Sub}
}

// OtherTopic says whether the batch was planned for a topic ID other than
// id (both known): on an incarnation of its topic since deleted and created
// again.
func (b *Batch) OtherTopic(id string) bool {
	return b.TopicID != "" && id != "" && b.TopicID != id
}

// Offsets is the number of offsets in the plan.
func (b *Batch) Offsets() int64 { return b.End - b.Start }

// Compare orders plans as the ledger's reads return them: by slot,
// partition and sub-batch (for slices.SortFunc).
func Compare(x, y Batch) int {
	return cmp.Or(x.Slot.Compare(y.Slot), cmp.Compare(x.Partition, y.Partition), cmp.Compare(x.Sub, y.Sub))
}

// Done says whether the batch's outcome is recorded.
func (b *Batch) Done() bool { return b.State == StateDone }

// Balanced says whether every offset of a done batch is accounted for:
// events + dead letters + markers + skipped = offsets.
func (b *Batch) Balanced() bool {
	return int64(b.Events+b.DeadLetters+b.Markers+b.Skipped) == b.Offsets()
}

// Version returns a row version for a write made now: later writes win in
// the ReplacingMergeTree tables.
func Version() uint64 { return uint64(time.Now().UnixNano()) }

// After returns a version for rows that must replace rows of version prev:
// the clock's, unless the clock is behind prev (another worker's clock
// ahead, or this one set back), then prev + 1. So a batch's done row always
// wins over its own plan row, and a rerun's rows over the run before it,
// whatever the clocks of the workers that wrote them.
func After(prev uint64) uint64 { return max(Version(), prev+1) }
