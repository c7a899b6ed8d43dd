// Package batch is the exactly-once core of rtbpipe: it processes one batch,
// the offsets [Start, End) of one partition that the ledger's plan gives a
// slot, and writes its outcome exactly once (DESIGN.md, steps 2, 3 and 5).
//
// Where a slot is read, aggregated and written:
//
//	batch.go   what a batch needs (Ledger, Sink, Heartbeat), its input and result
//	read.go    a planned batch read from Kafka: read, aggregate, write, record done
//	run.go     one read in progress: counts, aggregate, pending dead letters and raw rows
//	resume.go  the progress a batch heartbeats, and when a retry may resume from it
//	tail.go    a tailing batch: reads while its minute runs, ends as the plan says
//	raw.go     a batch recomputed from the raw archive instead of Kafka
//
// The package does no Temporal and no ClickHouse: the activity
// (activities/batch.go) adapts Temporal's heartbeats and errors, and the
// ClickHouse store (internal/chstore) implements Ledger and Sink. Its tests
// run against in-memory doubles and franz-go's in-process broker (kfake).
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// Ledger is what a batch reads and writes in the ledger.
type Ledger interface {
	// PartitionPlans returns the plans of the topic's partition p for the
	// slots from first to last, both included, in slot and sub-batch order.
	PartitionPlans(ctx context.Context, topic string, p int32, first, last time.Time) ([]ledger.Batch, error)
	// TopicPlans returns the plans of every partition of the topic for the
	// slots from first to last, both included, in slot, partition and
	// sub-batch order.
	TopicPlans(ctx context.Context, topic string, first, last time.Time) ([]ledger.Batch, error)
	// WriteBatches writes ledger rows; a later version replaces an earlier.
	WriteBatches(ctx context.Context, bs []ledger.Batch) error
}

// Sink is where a batch writes its rows. Every write is keyed (partials by
// window, key and batch; dead letters and raw rows by offset), so writing
// the same rows again replaces them.
type Sink interface {
	// WritePartials writes the aggregates of one or more batches, in one
	// write where the store can.
	WritePartials(ctx context.Context, ps []Partials) error
	WriteDeadLetters(ctx context.Context, dls []sink.DeadLetter) error
	// WriteRaw stores raw archive rows, in one insert.
	WriteRaw(ctx context.Context, bufs []*sink.RawBuffer) error
	// NewRawWriter opens a writer of raw archive rows that streams one
	// insert (a batch reading a backlog).
	NewRawWriter() RawWriter
}

// Partials is one batch's aggregate, to be written at Version. Keys that an
// earlier run of the batch wrote and this one no longer produces are
// written as zero rows, so a rerun with fewer keys leaves nothing behind.
type Partials struct {
	ID      ledger.BatchID
	Table   agg.Table
	Version uint64
}

// RawWriter streams raw archive rows into one insert: Send sends what is
// buffered, Commit sends it and ends the insert (only then is everything
// sent known to be stored), Abort ends it without committing (what was
// sent may or may not be stored: harmless, rows are keyed by offset).
type RawWriter interface {
	Send(ctx context.Context, r *sink.RawBuffer) error
	Commit(ctx context.Context, r *sink.RawBuffer) error
	Open() bool
	Abort()
}

// Archive reads the raw archive back, for batches recomputed from it.
type Archive interface {
	AggregateRaw(ctx context.Context, id ledger.BatchID, start, end int64) (agg.Table, sink.RawOffsets, error)
}

// Heartbeat is how a batch reports progress, and how a retry finds the
// progress of the attempt before it (Temporal's activity heartbeats).
type Heartbeat interface {
	Record(ctx context.Context, details any)
	// Last fills out with the previous attempt's last details and says
	// whether there were any.
	Last(ctx context.Context, out any) bool
}

// Source is where a batch's records are read.
type Source string

// Sources a batch can be computed from.
const (
	SourceKafka Source = "kafka" // the default
	SourceRaw   Source = "raw"   // the raw archive, for offsets past Kafka's retention
)

// Input asks for one batch to be processed.
type Input struct {
	Plan       ledger.Batch
	Source     Source
	WorkflowID string
	RunID      string
	Attempt    uint32
	// Tail: the slot is still running and Plan names only its topic,
	// partition and slot (see tail.go). TailUntil bounds the wait for the
	// plan.
	Tail      bool
	TailUntil time.Time
}

// Result is the batch's ledger row once done, and the windows it touched.
type Result struct {
	Batch   ledger.Batch
	Windows []time.Time
	Resumed int64 // offset a retry resumed from (0 when it started at the plan's start)
	Tailed  bool  // read as the records arrived, while the slot ran
}

// Errors no retry can fix, wrapped with what failed.
var (
	ErrOffsetsGone = errors.New("offsets no longer in Kafka")
	ErrNotArchived = errors.New("not in the raw archive")
	ErrBadInput    = errors.New("bad input")
	// ErrTopicChanged: Kafka's topic has another topic ID than the plan
	// was made for (deleted and created again).
	ErrTopicChanged = errors.New("topic deleted and created again")
)

// Processor processes batches with what every batch of a worker shares.
type Processor struct {
	Ledger  Ledger
	Sink    Sink
	Archive Archive
	// Kafka answers offset questions (the tail's first guess); Conn is how
	// reads connect (brokers, TLS, SASL): each read has a connection of its
	// own, since reads that share one wait for each other's fetches.
	Kafka sarama.Client
	Conn  kafka.Conn
	// Raw writes every valid event to the raw archive.
	Raw bool
	// Reads, when not nil, bounds the batches that read a backlog at once
	// (its capacity). Tailing batches are not bounded by it.
	Reads chan struct{}
	// BeatEvery is how often a batch heartbeats its progress (0: every 2 s).
	BeatEvery time.Duration

	plans   planCache    // the tails' ledger reads, shared
	commits commits      // the batches' outcomes and raw rows, written in groups
	tails   atomic.Int32 // the tails running (tail.linger)
}

// Planned tells the worker's tails of plans written to the ledger by this
// process (the planner's activity, once the write returned): a tail
// waiting for its plan takes it at once instead of at its next ledger read
// (planCache).
func (p *Processor) Planned(bs []ledger.Batch) { p.plans.add(bs) }

// Planning tells the worker's tails that this process plans topic's slot
// until end is called (the planner's activity, from its start): the
// plans will come to them through Planned, so they ask the ledger only
// every tailPollRunning meanwhile, not every tailPollEnded, and wake when
// the planner ends.
func (p *Processor) Planning(topic string, slot time.Time) (end func()) {
	return p.plans.startPlanning(topic, slot)
}

func (p *Processor) beatEvery() time.Duration {
	if p.BeatEvery > 0 {
		return p.BeatEvery
	}
	return defaultBeatEvery
}

// Process reads the batch's offsets, parses and validates every record,
// aggregates the events by event-time window, and writes partials, dead
// letters, raw rows and the ledger's outcome. Its output depends on the
// offsets only, so any retry or rerun writes the same rows again.
func (p *Processor) Process(ctx context.Context, in Input, hb Heartbeat) (Result, error) {
	src, err := ParseSource(string(in.Source))
	switch {
	case err != nil:
		return Result{}, err
	case in.Tail:
		return p.newTail(in, hb).process(ctx)
	case src == SourceRaw:
		return p.fromArchive(ctx, in)
	}
	return p.readPlan(ctx, in, hb)
}

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// ParseSource reads a source's name; empty is SourceKafka.
func ParseSource(s string) (Source, error) {
	switch Source(s) {
	case "", SourceKafka:
		return SourceKafka, nil
	case SourceRaw:
		return SourceRaw, nil
	}
	return "", badInput("source %q: want kafka or raw", s)
}
