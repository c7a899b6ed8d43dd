// Package kafka is rtbpipe's Kafka layer on sarama: clients, topics, offsets
// by timestamp, and reading a fixed offset range of one partition.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// NewConfig returns the sarama configuration rtbpipe uses everywhere.
func NewConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = sarama.V2_8_0_0 // kfake needs >= 0.11; 2.8 gives ListOffsets by timestamp and record headers
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 2
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Min = 1
	c.Consumer.Fetch.Default = 4 << 20
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	c.ChannelBufferSize = 1024
	return c
}

// NewClient connects to brokers, with an error that says where it failed.
func NewClient(brokers []string, cfg *sarama.Config) (sarama.Client, error) {
	cl, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka at %v: %w", brokers, err)
	}
	return cl, nil
}

// EnsureTopic creates topic with the given partition count unless it exists;
// it returns the topic's partition count.
func EnsureTopic(cl sarama.Client, topic string, partitions int32) (int32, error) {
	admin, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		return 0, fmt.Errorf("kafka admin: %w", err)
	}
	// Not admin.Close(): it would close the shared client.
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
			return 0, fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	if err := cl.RefreshMetadata(topic); err != nil {
		return 0, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	ps, err := cl.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of topic %s: %w", topic, err)
	}
	return int32(len(ps)), nil
}

// Partitions lists topic's partitions, refreshing metadata first so that
// added partitions are seen.
func Partitions(cl sarama.Client, topic string) ([]int32, error) {
	if err := cl.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	ps, err := cl.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of topic %s: %w", topic, err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	return ps, nil
}

// Bounds are a partition's log start offset and high watermark.
type Bounds struct{ Start, End int64 }

// PartitionBounds returns the log start offset and high watermark.
func PartitionBounds(cl sarama.Client, topic string, p int32) (Bounds, error) {
	start, err := cl.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return Bounds{}, fmt.Errorf("log start of %s/%d: %w", topic, p, err)
	}
	end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return Bounds{}, fmt.Errorf("high watermark of %s/%d: %w", topic, p, err)
	}
	return Bounds{Start: start, End: end}, nil
}

// OffsetForTime returns the first offset whose record timestamp is >= t, and
// false when the partition holds no such record yet.
func OffsetForTime(cl sarama.Client, topic string, p int32, t time.Time) (int64, bool, error) {
	off, err := cl.GetOffset(topic, p, t.UnixMilli())
	if err != nil {
		return 0, false, fmt.Errorf("offset of %s/%d at %s: %w", topic, p, t.Format(time.RFC3339), err)
	}
	if off < 0 {
		return 0, false, nil
	}
	return off, true, nil
}

// idleCheck is how long a range read waits for a message before it asks
// whether the rest of the range is undeliverable.
const idleCheck = 3 * time.Second

// ErrOffsetsGone says that the offsets to read are no longer in Kafka
// (retention, or the topic was recreated).
var ErrOffsetsGone = errors.New("offsets no longer in Kafka")

// ErrStop, returned by a Consume callback, ends the read without an error.
var ErrStop = errors.New("stop reading")

// ReadRange calls fn for every record of topic/p with offset in [from, to),
// in offset order. Offsets that Kafka does not deliver (transaction markers,
// compacted records) are simply not seen; the caller counts them as the gap.
// fn may stop the read early by returning an error.
func ReadRange(ctx context.Context, consumer sarama.Consumer, topic string, p int32, from, to int64,
	fn func(*sarama.ConsumerMessage) error) error {
	if from >= to {
		return nil
	}
	return Consume(ctx, consumer, topic, p, from, idleCheck, func(m *sarama.ConsumerMessage) error {
		if m.Offset >= to {
			return ErrStop
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset+1 >= to {
			return ErrStop
		}
		return nil
	}, func(highWater int64, seen int) error {
		// If the range ends in offsets Kafka never delivers (transaction
		// markers, compacted records), no message at or past `to` may ever
		// arrive: a silent consumer whose high watermark is past `to` has
		// nothing more to give.
		if seen == 0 && highWater >= to {
			return ErrStop
		}
		return nil
	})
}

// Consume calls fn for every record of topic/p from offset from on, in
// offset order and as records arrive, and tick every `every` with the
// partition's high watermark and the number of records since the last tick,
// until ctx ends or fn or tick returns an error (ErrStop: the read ends
// without one).
func Consume(ctx context.Context, consumer sarama.Consumer, topic string, p int32, from int64, every time.Duration,
	fn func(*sarama.ConsumerMessage) error, tick func(highWater int64, seen int) error) error {
	err := consume(ctx, consumer, topic, p, from, every, fn, tick)
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

func consume(ctx context.Context, consumer sarama.Consumer, topic string, p int32, from int64, every time.Duration,
	fn func(*sarama.ConsumerMessage) error, tick func(highWater int64, seen int) error) error {
	pc, err := consumer.ConsumePartition(topic, p, from)
	if err != nil {
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			return fmt.Errorf("read %s/%d from offset %d: %w", topic, p, from, ErrOffsetsGone)
		}
		return fmt.Errorf("read %s/%d from offset %d: %w", topic, p, from, err)
	}
	defer pc.AsyncClose()
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	closed := fmt.Errorf("read %s/%d: consumer closed", topic, p)
	seen := 0 // messages since the last tick
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			if err := tick(pc.HighWaterMarkOffset(), seen); err != nil {
				return err
			}
			seen = 0
		case m, ok := <-pc.Messages():
			if !ok {
				return closed
			}
			// Then take what is already buffered with plain receives: a
			// select per message costs more than the rest of the read.
			for n := len(pc.Messages()); ; n-- {
				if err := fn(m); err != nil {
					return err
				}
				seen++
				if n <= 0 {
					break
				}
				if m, ok = <-pc.Messages(); !ok {
					return closed
				}
			}
		case cerr, ok := <-pc.Errors():
			if !ok {
				return closed
			}
			if errors.Is(cerr.Err, sarama.ErrOffsetOutOfRange) {
				return fmt.Errorf("read %s/%d from offset %d: %w", topic, p, from, ErrOffsetsGone)
			}
			return fmt.Errorf("read %s/%d from offset %d: %w", topic, p, from, cerr)
		}
	}
}
