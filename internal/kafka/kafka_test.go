package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestListOffsets(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod := client(t, c.ListenAddrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	for p := range int32(2) { // partition 2 stays empty
		for i := range 10 {
			r := &kgo.Record{Partition: p, Value: []byte("x"), Timestamp: base.Add(time.Duration(i) * time.Second)}
			if err := prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cl, err := NewClient(context.Background(), c.ListenAddrs(), NewConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts := []int32{0, 1, 2}
	for _, c := range []struct {
		name string
		when int64
		want map[int32]int64
	}{
		{"log start", sarama.OffsetOldest, map[int32]int64{0: 0, 1: 0, 2: 0}},
		{"high watermark", sarama.OffsetNewest, map[int32]int64{0: 10, 1: 10, 2: 0}},
		{"by time", base.Add(4 * time.Second).UnixMilli(), map[int32]int64{0: 4, 1: 4, 2: -1}},
		{"after the last record", base.Add(time.Hour).UnixMilli(), map[int32]int64{0: -1, 1: -1, 2: -1}},
	} {
		got, err := ListOffsets(cl, topic, parts, c.when)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, p := range parts {
			if got[p] != c.want[p] {
				t.Errorf("%s: partition %d at offset %d, want %d", c.name, p, got[p], c.want[p])
			}
		}
	}
	if _, err := ListOffsets(cl, "no-such-topic", []int32{0}, sarama.OffsetNewest); err == nil {
		t.Error("an unknown topic gave no error")
	}
}

// The latest offset that plans may end at is the last stable offset: no
// plan takes offsets of a transaction still open.
func TestListOffsetsNewestIsTheLastStableOffset(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod := client(t, c.ListenAddrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("open"))
	produce(t, client(t, c.ListenAddrs(), kgo.RecordPartitioner(kgo.ManualPartitioner())), 5) // 0-4, no transaction
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(t, prod, 3) // 5-7, in a transaction left open
	cl, err := NewClient(context.Background(), c.ListenAddrs(), NewConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, err := ListOffsets(cl, topic, []int32{0}, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 5 {
		t.Fatalf("newest offset %d, want the last stable offset 5 (the high watermark is 8)", got[0])
	}
	if err := prod.EndTransaction(context.Background(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// A topic the brokers do not have is the same error whichever question
// finds it: one that says what to do, not the broker's code.
func TestMissingTopicSaysWhatToDo(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := NewClient(context.Background(), c.ListenAddrs(), NewConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, errParts := Partitions(cl, "no-such-topic")
	_, errID := TopicID(cl, "no-such-topic")
	for name, err := range map[string]error{"Partitions": errParts, "TopicID": errID} {
		if !errors.Is(err, ErrNoTopic) || !strings.Contains(err.Error(), "starter setup") {
			t.Errorf("%s: %v, want ErrNoTopic saying what to do", name, err)
		}
	}
}
