package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Reads use franz-go rather than sarama: for the same records it spends
// about 30% less CPU (it decodes a fetch's records in one pass and hands
// them over as a slice, where sarama sends each through a channel), and
// CPU is what bounds a backlog read on a small machine. See README,
// Performance.

// Record is a record read from a partition.
type Record = kgo.Record

// idleCheck is how long a range read waits for a record before it checks
// that the partition is still there (and tells its caller it is idle).
const idleCheck = 3 * time.Second

// fetchBytes bounds one fetch response: large enough that the broker is not
// asked once per few records, small enough that many reads at once stay
// within the worker's memory.
const fetchBytes = 1 << 20

// ErrOffsetsGone says that the offsets to read are no longer in Kafka
// (retention, or the topic was recreated).
var ErrOffsetsGone = errors.New("offsets no longer in Kafka")

// consumeMinBytes is what a Consume's fetch waits for, up to its wait: see
// Consume.
const consumeMinBytes = fetchBytes / 4

// ErrStop, returned by a Consume callback, ends the read without an error.
var ErrStop = errors.New("stop reading")

// reader is a connection that consumes one partition from an offset on.
type reader struct {
	cl        *kgo.Client
	topic     string
	partition int32
	from      int64
}

func newReader(conn Conn, clientID, topic string, p int32, from int64, opts ...kgo.Opt) (*reader, error) {
	if len(conn.Brokers) == 0 {
		return nil, fmt.Errorf("kafka reader for %s/%d: no brokers given", topic, p)
	}
	all := append(conn.opts(),
		kgo.ClientID(clientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()), // offsets gone are an error, never a silent jump
		// Read committed: records of aborted transactions are not delivered,
		// and nothing past the last stable offset is. Markers are delivered
		// (as control records), so that every offset is accounted for.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		// The request's limit above the partition's: an answer cut at the
		// request's limit leaves out the aborted transactions of what it
		// returns on kfake (the local broker), and their records would be
		// delivered as committed (TestReadRangeSkipsAbortedTransactionsInAFullFetch).
		// With one partition per reader, the partition's limit is reached
		// first; real Kafka handles either.
		kgo.FetchMaxBytes(2*fetchBytes),
		kgo.FetchMaxPartitionBytes(fetchBytes),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.DialTimeout(5*time.Second),
		kgo.RetryTimeout(10*time.Second),
		// A read's client lives for one batch: it has nothing to tell the
		// broker's operators (KIP-714), and each one pushing its metrics
		// kept a compressor of its own (some 0.5 MiB for each of 64 tails).
		kgo.DisableClientMetrics(),
	)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka reader for %s/%d at %v: %w", topic, p, conn.Brokers, err)
	}
	return &reader{cl: cl, topic: topic, partition: p, from: from}, nil
}

// highWater asks the partition's high watermark. It is also how a read
// that receives nothing learns that Kafka cannot be reached: the fetches
// themselves are retried without end.
func (r *reader) highWater(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = r.topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = r.partition, -1 // -1: the latest offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return 0, fmt.Errorf("high watermark of %s/%d: %w", r.topic, r.partition, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Partition != r.partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("high watermark of %s/%d: %w", r.topic, r.partition, err)
			}
			return p.Offset, nil
		}
	}
	return 0, fmt.Errorf("high watermark of %s/%d: not in the broker's answer", r.topic, r.partition)
}

// consume calls fn for every record as it arrives, and tick every `every`
// with the number of records since the last tick; see Consume.
func (r *reader) consume(ctx context.Context, every time.Duration, fn func(*Record) error, tick func(seen int) error) error {
	seen := 0
	next := time.Now().Add(every)
	for {
		pctx, cancel := context.WithDeadline(ctx, next)
		fs := r.cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, f := range fs {
			for _, t := range f.Topics {
				for _, p := range t.Partitions {
					if err := r.fetchError(p.Err); err != nil {
						return err
					}
					for _, rec := range p.Records {
						if err := fn(rec); err != nil {
							return err
						}
						seen++
					}
				}
			}
		}
		if now := time.Now(); !now.Before(next) {
			if err := tick(seen); err != nil {
				return err
			}
			seen, next = 0, now.Add(every)
		}
	}
}

// fetchError returns a fetch's error as the read's, or nil when there is
// none or it is only the end of a poll.
func (r *reader) fetchError(err error) error {
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, kerr.OffsetOutOfRange):
		return fmt.Errorf("read %s/%d from offset %d: %w", r.topic, r.partition, r.from, ErrOffsetsGone)
	}
	return fmt.Errorf("read %s/%d from offset %d: %w", r.topic, r.partition, r.from, err)
}

// ErrLogTruncated says that a partition's high watermark fell below the
// end of a range to read: the topic was recreated or truncated.
var ErrLogTruncated = errors.New("the partition's log is shorter than the range")

// ReadRange calls fn for every record of topic/p with offset in [from, to),
// in offset order, over a connection of its own to brokers: data records
// and, as control records (Attrs.IsControl), transaction markers. Reads are
// read-committed, so records of aborted transactions are not delivered.
//
// It returns nil only once Kafka has proved the range complete: the record
// at to-1 was delivered, or one at or past to was (every offset below it
// that was not delivered is then known to be of an aborted transaction or
// compacted away). Silence proves nothing: a broker that sends nothing is
// waited for, however long, with idle (if not nil) called every idleCheck
// while nothing arrives; the read ends with an error when the partition
// cannot be reached or its log no longer reaches to, or when ctx ends. fn
// may stop the read early by returning an error.
func ReadRange(ctx context.Context, conn Conn, topic string, p int32, from, to int64, fn func(*Record) error, idle func() error) error {
	if from >= to {
		return nil
	}
	r, err := newReader(conn, "rtbpipe-read", topic, p, from)
	if err != nil {
		return err
	}
	defer r.cl.Close()
	err = r.consume(ctx, idleCheck, func(rec *Record) error {
		if rec.Offset >= to {
			return ErrStop
		}
		if err := fn(rec); err != nil {
			return err
		}
		if rec.Offset+1 >= to {
			return ErrStop
		}
		return nil
	}, func(seen int) error {
		if seen > 0 {
			return nil
		}
		// Fetches are retried without end; this is how a read learns that
		// the partition is unreachable, or that its log was cut short.
		hw, err := r.highWater(ctx)
		if err != nil {
			return err
		}
		if hw < to {
			return fmt.Errorf("read %s/%d [%d,%d): high watermark %d: %w", topic, p, from, to, hw, ErrLogTruncated)
		}
		if idle != nil {
			return idle()
		}
		return nil
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// FirstStamped returns the first offset in [from, to) of topic/p whose
// record (a transaction marker included) is stamped at or after at, as
// ReadRange reads them; found is false when there is none. Unlike Kafka's
// ListOffsets, which looks from the log's start, it looks from from.
func FirstStamped(ctx context.Context, conn Conn, topic string, p int32, from, to int64, at time.Time) (off int64, found bool, err error) {
	off = -1
	err = ReadRange(ctx, conn, topic, p, from, to, func(r *Record) error {
		if !r.Timestamp.Before(at) {
			off = r.Offset
			return ErrStop
		}
		return nil
	}, nil)
	if err != nil {
		return -1, false, fmt.Errorf("find the first record of %s/%d stamped at or after %s from offset %d: %w",
			topic, p, at.UTC().Format(time.RFC3339), from, err)
	}
	return off, off >= 0, nil
}

// Consume calls fn for every record of topic/p from offset from on, in
// offset order and as records arrive, over a connection of its own to
// brokers, and tick every `every` with the number of records since the
// last tick, until ctx ends or fn or tick returns an error (ErrStop: the
// read ends without one).
//
// With wait 0, the broker answers a fetch as soon as it has a record for
// it; with wait > 0, once it has consumeMinBytes or wait has passed. A
// reader that needs records soon, not each as it arrives, saves both sides
// most of their work: at 20,000 events/s over 64 partitions, each partition
// receives a few records every few milliseconds, and answering each fetch
// at once meant hundreds of fetches a second per partition.
func Consume(ctx context.Context, conn Conn, topic string, p int32, from int64, every, wait time.Duration,
	fn func(*Record) error, tick func(seen int) error) error {
	var opts []kgo.Opt
	if wait > 0 {
		opts = append(opts, kgo.FetchMinBytes(consumeMinBytes), kgo.FetchMaxWait(wait))
	}
	r, err := newReader(conn, "rtbpipe-tail", topic, p, from, opts...)
	if err != nil {
		return err
	}
	defer r.cl.Close()
	err = r.consume(ctx, every, fn, tick)
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}
