// Package kafka is rtbpipe's Kafka layer: clients, topics and offsets by
// timestamp on sarama (kafka.go), and reading one partition on franz-go
// (read.go).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/config"
)

// NewConfig returns the sarama configuration rtbpipe uses everywhere.
func NewConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = sarama.V2_8_0_0 // kfake needs >= 0.11; 2.8 gives ListOffsets by timestamp and record headers
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 2
	// Never ask a broker to create a topic by reading it: a misspelt topic
	// is an error, not a new empty topic.
	c.Metadata.AllowAutoTopicCreation = false
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Min = 1
	c.Consumer.Fetch.Default = 4 << 20
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	c.ChannelBufferSize = 1024
	return c
}

// connectWait bounds a connection: against a server that accepts it and
// never answers (not a Kafka broker, or a TLS or SASL listener spoken to
// without them), sarama's attempts take a read timeout (30 s) each, minutes
// in all.
const connectWait = 20 * time.Second

// NewClient connects to brokers, with an error that says where it failed.
// It gives up when ctx ends or after connectWait, and a client connected
// after that is closed.
func NewClient(ctx context.Context, brokers []string, cfg *sarama.Config) (sarama.Client, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, connectWait, fmt.Errorf("no answer within %s: is every address of RTB_KAFKA_BROKERS a Kafka broker, "+
		"spoken to with its listener's security (RTB_KAFKA_TLS, RTB_KAFKA_SASL_MECHANISM)?", connectWait))
	defer cancel()
	type connected struct {
		cl  sarama.Client
		err error
	}
	done := make(chan connected, 1)
	go func() {
		cl, err := sarama.NewClient(brokers, cfg)
		done <- connected{cl, err}
	}()
	select {
	case c := <-done:
		if c.err != nil {
			return nil, fmt.Errorf("connect to Kafka at %v (%s): %w", brokers, config.KafkaBrokersSetting, c.err)
		}
		return c.cl, nil
	case <-ctx.Done():
		go func() { // sarama's attempts end by themselves
			if c := <-done; c.cl != nil {
				c.cl.Close()
			}
		}()
		return nil, fmt.Errorf("connect to Kafka at %v (%s): %w", brokers, config.KafkaBrokersSetting, context.Cause(ctx))
	}
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

// ErrNoTopic says that a topic does not exist.
var ErrNoTopic = errors.New("no such topic")

// noTopic is ErrNoTopic for topic, saying what to do.
func noTopic(topic string) error {
	return fmt.Errorf("topic %s does not exist on the brokers: create it (starter setup --topic %s) or check the topic name (%s): %w",
		topic, topic, config.TopicSetting, ErrNoTopic)
}

// Partitions lists topic's partitions, refreshing metadata first so that
// added partitions are seen.
func Partitions(cl sarama.Client, topic string) ([]int32, error) {
	if err := cl.RefreshMetadata(topic); err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return nil, noTopic(topic)
		}
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
	start, err := ListOffsets(cl, topic, []int32{p}, sarama.OffsetOldest)
	if err != nil {
		return Bounds{}, fmt.Errorf("log start: %w", err)
	}
	end, err := ListOffsets(cl, topic, []int32{p}, sarama.OffsetNewest)
	if err != nil {
		return Bounds{}, fmt.Errorf("high watermark: %w", err)
	}
	return Bounds{Start: start[p], End: end[p]}, nil
}

// OffsetForTime returns the first offset whose record timestamp is >= t, and
// false when the partition holds no such record yet.
func OffsetForTime(cl sarama.Client, topic string, p int32, t time.Time) (int64, bool, error) {
	offs, err := ListOffsets(cl, topic, []int32{p}, t.UnixMilli())
	if err != nil {
		return 0, false, fmt.Errorf("at %s: %w", t.Format(time.RFC3339), err)
	}
	if offs[p] < 0 {
		return 0, false, nil
	}
	return offs[p], true, nil
}

// ListOffsets returns each partition's offset for when: sarama.OffsetOldest
// (the log start), sarama.OffsetNewest (the last stable offset: the high
// watermark, or below it the first offset of a transaction still open), or a
// time in Unix milliseconds (the first offset stamped at or after it; -1
// when there is none yet). Questions are asked read-committed, so that no
// plan ends past the last stable offset. It asks each partition leader once for all its partitions:
// a planner that asked per partition waited behind busy fetches 3x as often.
// Like sarama's own GetOffset, it asks once more after refreshing the
// topic's metadata, so that a moved leader is found.
func ListOffsets(cl sarama.Client, topic string, parts []int32, when int64) (map[int32]int64, error) {
	out, _, err := listOffsetsStamped(cl, topic, parts, when)
	return out, err
}

// EarliestStamp returns the earliest timestamp of the first records of
// topic's partitions parts stamped at or after the Unix epoch: every offset
// Kafka holds is at or after the first offset stamped past any earlier
// minute, so a plan of such a minute made now would be empty. When none is
// so stamped it is the epoch if the partitions hold records (stamped before
// it, or without a timestamp: -1), and found is false if they hold none.
func EarliestStamp(cl sarama.Client, topic string, parts []int32) (earliest time.Time, found bool, err error) {
	offs, stamps, err := listOffsetsStamped(cl, topic, parts, 0)
	if err != nil {
		return time.Time{}, false, err
	}
	for p, off := range offs {
		if ts := time.UnixMilli(stamps[p]).UTC(); off >= 0 && (!found || ts.Before(earliest)) {
			earliest, found = ts, true
		}
	}
	if found {
		return earliest, true, nil
	}
	starts, err := ListOffsets(cl, topic, parts, sarama.OffsetOldest)
	if err != nil {
		return time.Time{}, false, err
	}
	ends, err := ListOffsets(cl, topic, parts, sarama.OffsetNewest)
	if err != nil {
		return time.Time{}, false, err
	}
	for _, p := range parts {
		if ends[p] > starts[p] {
			return time.Unix(0, 0).UTC(), true, nil
		}
	}
	return time.Time{}, false, nil
}

// listOffsetsStamped is ListOffsets, with the timestamp of each offset's
// record when when is a time (not sarama.OffsetOldest or OffsetNewest).
func listOffsetsStamped(cl sarama.Client, topic string, parts []int32, when int64) (offsets, stamps map[int32]int64, err error) {
	offsets, stamps, err = listOffsets(cl, topic, parts, when)
	if err == nil {
		return offsets, stamps, nil
	}
	if rerr := cl.RefreshMetadata(topic); rerr != nil {
		return nil, nil, errors.Join(err, fmt.Errorf("metadata of topic %s: %w", topic, rerr))
	}
	return listOffsets(cl, topic, parts, when)
}

func listOffsets(cl sarama.Client, topic string, parts []int32, when int64) (map[int32]int64, map[int32]int64, error) {
	type ask struct {
		req   *sarama.OffsetRequest
		parts []int32
	}
	asks := map[*sarama.Broker]*ask{}
	for _, p := range parts {
		b, err := cl.Leader(topic, p)
		if err != nil {
			return nil, nil, fmt.Errorf("leader of %s/%d: %w", topic, p, err)
		}
		a := asks[b]
		if a == nil {
			a = &ask{req: sarama.NewOffsetRequest(cl.Config().Version)}
			a.req.IsolationLevel = sarama.ReadCommitted
			asks[b] = a
		}
		a.req.AddBlock(topic, p, when, 1)
		a.parts = append(a.parts, p)
	}
	out, stamps := make(map[int32]int64, len(parts)), make(map[int32]int64, len(parts))
	for b, a := range asks {
		resp, err := b.GetAvailableOffsets(a.req)
		if err != nil {
			_ = b.Close() // as sarama's own GetOffset: the next request reconnects
			return nil, nil, fmt.Errorf("offsets of %s %v at %d: %w", topic, a.parts, when, err)
		}
		for _, p := range a.parts {
			blk := resp.GetBlock(topic, p)
			switch {
			case blk == nil:
				return nil, nil, fmt.Errorf("offset of %s/%d at %d: %w", topic, p, when, sarama.ErrIncompleteResponse)
			case !errors.Is(blk.Err, sarama.ErrNoError):
				return nil, nil, fmt.Errorf("offset of %s/%d at %d: %w", topic, p, when, blk.Err)
			case len(blk.Offsets) != 1:
				return nil, nil, fmt.Errorf("offset of %s/%d at %d: %d offsets in the answer", topic, p, when, len(blk.Offsets))
			}
			out[p], stamps[p] = blk.Offsets[0], blk.Timestamp
		}
	}
	return out, stamps, nil
}

// TopicID returns the topic's ID, which Kafka (2.8 and later) gives a topic
// when it is created: a topic deleted and created again under the same name
// has a new one. It is "" when the broker gives none.
func TopicID(cl sarama.Client, topic string) (string, error) {
	b, err := cl.Controller()
	if err != nil {
		return "", fmt.Errorf("topic ID of %s: no broker: %w", topic, err)
	}
	req := &sarama.MetadataRequest{Version: 10, Topics: []string{topic}}
	res, err := b.GetMetadata(req)
	// Controller opens the connection in the background: a request made
	// before it is up fails with ErrNotConnected. Wait for it, up to 1 s.
	for i := 0; i < 20 && errors.Is(err, sarama.ErrNotConnected); i++ {
		time.Sleep(50 * time.Millisecond)
		res, err = b.GetMetadata(req)
	}
	if err != nil {
		return "", fmt.Errorf("topic ID of %s: %w", topic, err)
	}
	for _, t := range res.Topics {
		if t.Name != topic {
			continue
		}
		if errors.Is(t.Err, sarama.ErrUnknownTopicOrPartition) {
			return "", noTopic(topic)
		}
		if t.Err != sarama.ErrNoError {
			return "", fmt.Errorf("topic ID of %s: %w", topic, t.Err)
		}
		if t.Uuid == (sarama.Uuid{}) {
			return "", nil
		}
		return t.Uuid.String(), nil
	}
	return "", fmt.Errorf("topic ID of %s: the broker did not answer for it", topic)
}
