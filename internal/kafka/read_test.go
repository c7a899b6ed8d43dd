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
	got, _, err := readRange(t, brokers, from, to)
	return got, err
}

// readRange reads [from, to): the offsets of its data records, and of its
// control records (transaction markers).
func readRange(t *testing.T, brokers []string, from, to int64) (data, control []int64, err error) {
	var got []int64
	err = ReadRange(ctxT(t), Conn{Brokers: brokers}, topic, 0, from, to, func(r *Record) error {
		if r.Attrs.IsControl() {
			control = append(control, r.Offset)
			return nil
		}
		if want := fmt.Sprintf("v%d", r.Offset); string(r.Value) != want {
			t.Errorf("offset %d holds %q, want %q", r.Offset, r.Value, want)
		}
		got = append(got, r.Offset)
		return nil
	}, nil)
	return got, control, err
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

// A range that ends in a transaction marker ends with it: markers are
// delivered (as control records), so that the range's end is seen.
func TestReadRangeEndsInAMarker(t *testing.T) {
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
	got, markers, err := readRange(t, brokers, 0, 4) // offset 3 is the commit marker
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(markers) != 1 || markers[0] != 3 {
		t.Fatalf("read %v and markers %v, want offsets 0..2 and the marker at 3", got, markers)
	}
}

// Reads are read-committed: records of an aborted transaction are never
// delivered, and the markers are, so that every offset is accounted for.
func TestReadRangeSkipsAbortedTransactions(t *testing.T) {
	brokers := cluster(t)
	abortedTxn(t, brokers) // 0-9 ok, marker 10; 11-15 aborted, marker 16; 17-26 ok, marker 27
	var data, markers int
	err := ReadRange(ctxT(t), Conn{Brokers: brokers}, topic, 0, 0, 28, func(r *Record) error {
		switch {
		case r.Attrs.IsControl():
			markers++
		case string(r.Value) != "ok":
			t.Errorf("offset %d: a record of an aborted transaction was delivered", r.Offset)
		default:
			data++
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if data != 20 || markers != 3 {
		t.Fatalf("read %d records and %d markers, want 20 and 3", data, markers)
	}
}

// Silence is not the end of a range: a broker that answers its fetches
// with nothing for longer than any idle check (a pause, a moving leader)
// is waited for, and every record of the range is then delivered.
func TestReadRangeWaitsOutASilentBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	produce(t, client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner())), 100)
	quietUntil := time.Now().Add(idleCheck + 2*time.Second)
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if time.Now().After(quietUntil) {
			return nil, nil, false // speak again
		}
		c.KeepControl()
		time.Sleep(50 * time.Millisecond)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.GetVersion()
		return resp, nil, true // an empty answer: nothing to give yet
	})
	got, err := readAll(t, brokers, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("read %d of the range's 100 records: a silent broker ended the read", len(got))
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
	err := Consume(ctxT(t), Conn{Brokers: brokers}, topic, 0, 0, 50*time.Millisecond, 0, func(r *Record) error {
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
	err = Consume(ctxT(t), Conn{Brokers: brokers}, topic, 0, 2, time.Second, 200*time.Millisecond, func(r *Record) error {
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
	err := ReadRange(ctx, Conn{Brokers: brokers}, topic, 0, 0, 10, func(*Record) error { return nil }, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
}
