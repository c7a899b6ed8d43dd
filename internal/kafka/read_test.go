package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const topic = "t"

// cluster starts an in-process broker with one single-partition topic.
func cluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func client(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, n int) {
	t.Helper()
	for i := range n {
		r := &kgo.Record{Value: fmt.Appendf(nil, "v%d", i), Partition: 0}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func readAll(t *testing.T, brokers []string, from, to int64) ([]int64, error) {
	var got []int64
	err := ReadRange(ctxT(t), brokers, topic, 0, from, to, func(r *Record) error {
		if want := fmt.Sprintf("v%d", r.Offset); string(r.Value) != want {
			t.Errorf("offset %d holds %q, want %q", r.Offset, r.Value, want)
		}
		got = append(got, r.Offset)
		return nil
	})
	return got, err
}

func TestReadRangeReadsExactlyTheRange(t *testing.T) {
	brokers := cluster(t)
	produce(t, client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner())), 100)
	got, err := readAll(t, brokers, 10, 60)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || got[0] != 10 || got[49] != 59 {
		t.Fatalf("read %d records, %v..%v; want offsets 10..59", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("offsets out of order: %v", got)
		}
	}
	if got, err := readAll(t, brokers, 60, 60); err != nil || len(got) != 0 {
		t.Fatalf("an empty range read %v, %v", got, err)
	}
}

// A range that ends in a transaction marker, which Kafka never delivers,
// still ends: the partition's high watermark says nothing more will come.
func TestReadRangeEndsInUndeliveredOffsets(t *testing.T) {
	brokers := cluster(t)
	cl := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("x"))
	ctx := ctxT(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, 3)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, brokers, 0, 4) // offset 3 is the commit marker
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %v, want offsets 0..2", got)
	}
}

func TestReadRangeOffsetsGone(t *testing.T) {
	brokers := cluster(t)
	cl := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce(t, cl, 10)
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = 5
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if _, err := req.RequestWith(ctxT(t), cl); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, brokers, 0, 10); !errors.Is(err, ErrOffsetsGone) {
		t.Fatalf("want ErrOffsetsGone, got %v", err)
	}
	if got, err := readAll(t, brokers, 5, 10); err != nil || len(got) != 5 {
		t.Fatalf("the offsets still held: read %v, %v", got, err)
	}
}

// Consume hands over records as they arrive, ticks while none do, and ends
// without an error on ErrStop from either.
func TestConsumeTicksAndStops(t *testing.T) {
	brokers := cluster(t)
	cl := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var got []int64
	ticks, quiet := 0, 0
	produce(t, cl, 5)
	err := Consume(ctxT(t), brokers, topic, 0, 0, 50*time.Millisecond, func(r *Record) error {
		got = append(got, r.Offset)
		return nil
	}, func(seen int) error {
		ticks++
		if seen == 0 && len(got) == 5 {
			if quiet++; quiet == 3 {
				return ErrStop
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || ticks < 3 {
		t.Fatalf("read %v with %d ticks", got, ticks)
	}
	stop := errors.New("enough")
	err = Consume(ctxT(t), brokers, topic, 0, 2, time.Second, func(r *Record) error {
		if r.Offset != 2 {
			t.Errorf("first record at offset %d, want 2", r.Offset)
		}
		return stop
	}, func(int) error { return nil })
	if !errors.Is(err, stop) {
		t.Fatalf("want the callback's error, got %v", err)
	}
}

func TestReadEndsWithItsContext(t *testing.T) {
	brokers := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := ReadRange(ctx, brokers, topic, 0, 0, 10, func(*Record) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
}
