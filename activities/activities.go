// Package activities holds rtbpipe's Temporal activities: all the I/O of the
// pipeline (Kafka and ClickHouse). The workflows only decide what runs when.
package activities

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// Activities carries the connections the activities share. Register a
// value with the worker; workflows refer to the methods through a nil
// *Activities.
type Activities struct {
	Kafka sarama.Client
	// Conn reaches the brokers for reads of records (the planner's, past
	// a record stamped ahead), within EndScan's bounds (zero: the defaults).
	Conn    kafka.Conn
	EndScan EndScan
	// Plans is the ledger as the planner reads and writes it.
	Plans PlanLedger
	// Batches processes batches (internal/batch).
	Batches *batch.Processor
	// Ops is the store as backfill and reconciliation read and write it.
	Ops OperateStore
	// Analysis is the store as anomaly scoring reads and writes it.
	Analysis AnalysisStore
	// Clock is the wall clock planning reads; nil is time.Now. Tests set it.
	Clock func() time.Time
	// MaxBatchOffsets splits a slot's plan of a partition holding more
	// offsets into sub-batches of at most this many (0: DefaultMaxBatchOffsets).
	MaxBatchOffsets int64
	// SearchAttributes says whether the namespace has rtbpipe's custom
	// search attributes (nil: never ask, they are not used).
	SearchAttributes func(ctx context.Context) (bool, error)
	attrsReady       atomic.Bool // once true, stays true
}

// SearchAttributesReady says whether slot runs can set rtbpipe's custom
// search attributes: a workflow that set one the namespace lacks would
// fail its tasks. A yes is remembered; a no is asked again next time.
func (a *Activities) SearchAttributesReady(ctx context.Context) (bool, error) {
	if a.attrsReady.Load() {
		return true, nil
	}
	if a.SearchAttributes == nil {
		return false, nil
	}
	ok, err := a.SearchAttributes(ctx)
	if ok {
		a.attrsReady.Store(true)
	}
	return ok, err
}

// DefaultMaxBatchOffsets bounds a batch: a few seconds of reading, so that a
// slot that takes a long history (a schedule's first slot, the slot after an
// outage) runs as many batches in parallel, across workers, each resumed on
// its own.
const DefaultMaxBatchOffsets = 2_000_000

func (a *Activities) maxBatchOffsets() int64 {
	if a.MaxBatchOffsets > 0 {
		return a.MaxBatchOffsets
	}
	return DefaultMaxBatchOffsets
}

func (a *Activities) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// Error types that no retry can fix; the workflows see them as
// non-retryable application errors with these types.
const (
	ErrTypeOffsetsGone  = "OffsetsGone"
	ErrTypeBadInput     = "BadInput"
	ErrTypeTopicChanged = "TopicChanged"
	ErrTypeNotArchived  = "NotArchived"
)

// Source is where a slot's batches are read: SourceKafka or SourceRaw.
type Source = batch.Source

// Sources a batch can be computed from.
const (
	SourceKafka = batch.SourceKafka
	SourceRaw   = batch.SourceRaw
)

// ParseSource reads a source's name (kafka or raw; empty is kafka).
func ParseSource(s string) (Source, error) { return batch.ParseSource(s) }
