// Package activities holds rtbpipe's Temporal activities: all the I/O of the
// pipeline (Kafka and ClickHouse). The workflows only decide what runs when.
package activities

import (
	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
)

// Activities carries the connections the activities share. Register a
// value with the worker; workflows refer to the methods through a nil
// *Activities.
type Activities struct {
	Kafka sarama.Client
	Store *chstore.Store
	// Archive writes every valid event to the raw archive (rtb.ad_events_raw),
	// so that slots can be recomputed after Kafka's retention.
	Archive bool
	// Brokers are where batch reads connect: each read has a connection of
	// its own, since reads that share one wait for each other's fetches (a
	// broker answers a connection's requests in order, and a fetch at the
	// end of a partition waits there for new records).
	Brokers []string
	// Reads, when not nil, bounds the batches that read a backlog at once
	// (its capacity): each holds a connection, fetch buffers and pending
	// rows, so that a backfill of many slots at once would otherwise only
	// add memory and GC work. Tailing batches, which read at the rate
	// records arrive, are not bounded by it.
	Reads chan struct{}
}

// Error types that no retry can fix; the workflows see them as
// non-retryable application errors with these types.
const (
	ErrTypeOffsetsGone  = "OffsetsGone"
	ErrTypeBadInput     = "BadInput"
	ErrTypeTopicChanged = "TopicChanged"
	ErrTypeNotArchived  = "NotArchived"
)

// Sources a batch can be computed from.
const (
	SourceKafka = "kafka"
	SourceRaw   = "raw"
)
