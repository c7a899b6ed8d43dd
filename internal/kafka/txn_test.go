package kafka

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readValues reads [from, to) of partition 0 and returns how many data
// records of each value it delivered.
func readValues(t *testing.T, brokers []string, from, to int64) map[string]int {
	t.Helper()
	got := map[string]int{}
	err := ReadRange(ctxT(t), Conn{Brokers: brokers}, topic, 0, from, to, func(r *Record) error {
		if !r.Attrs.IsControl() {
			got[string(r.Value)]++
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// abortedTxn writes three transactions to partition 0: committed ("ok",
// 0-9, marker 10), aborted ("aborted", 11-15, marker 16), committed (17-26,
// marker 27).
func abortedTxn(t *testing.T, brokers []string) {
	t.Helper()
	cl := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("x"))
	ctx := ctxT(t)
	txn := func(n int, commit kgo.TransactionEndTry, value string) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value), Partition: 0}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	txn(10, kgo.TryCommit, "ok")    // 0-9, marker 10
	txn(5, kgo.TryAbort, "aborted") // 11-15, marker 16
	txn(10, kgo.TryCommit, "ok")    // 17-26, marker 27
}

// A read that starts inside an aborted transaction (a batch resumed from a
// heartbeat, or a plan that starts there) delivers none of its records.
func TestReadRangeFromInsideAnAbortedTransaction(t *testing.T) {
	brokers := cluster(t)
	abortedTxn(t, brokers)
	if got := readValues(t, brokers, 13, 28); got["aborted"] != 0 || got["ok"] != 10 {
		t.Fatalf("read [13,28): %v, want 10 ok and no aborted record", got)
	}
}

// After the broker restarts from its data directory, records of aborted
// transactions are still not delivered.
func TestReadRangeSkipsAbortedTransactionsAfterARestart(t *testing.T) {
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.DataDir(dir), kfake.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	abortedTxn(t, c.ListenAddrs())
	c.Close()
	c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, from := range []int64{0, 13} {
		if got := readValues(t, c.ListenAddrs(), from, 28); got["aborted"] != 0 {
			t.Fatalf("after a restart, read [%d,28): %v, want no aborted record", from, got)
		}
	}
}

// A fetch answer cut at the request's byte limit must still carry the
// aborted transactions of what it returns. kfake (the local broker) leaves
// them out when an answer reaches the request-level limit (FetchMaxBytes)
// before the partition-level one, and read-committed clients then deliver
// records of aborted transactions as committed: found by make chaos, where
// whole aborted transactions were counted as events. Reads keep the request
// limit above the partition limit, so that the partition limit is the one
// reached, which kfake handles.
func TestReadRangeSkipsAbortedTransactionsInAFullFetch(t *testing.T) {
	brokers := cluster(t)
	ctx := ctxT(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	produce := func(cl *kgo.Client, value []byte) {
		if value == nil { // random letters: batches that do not compress below the limit
			value = make([]byte, 300)
			for i := range value {
				value[i] = byte('a' + rnd.IntN(26))
			}
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value, Partition: 0}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	plain := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	txc := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("full"))
	for range 1000 {
		produce(plain, nil)
	}
	if err := txc.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for range 5 { // interleaved with other records, as a live topic has them
		produce(txc, []byte("aborted"))
		produce(plain, nil)
	}
	if err := txc.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	for range 5995 { // 2 MB after them: the first answer is cut at the limit
		produce(plain, nil)
	}
	got := readValues(t, brokers, 0, 1000+10+1+5995)
	if others := total(got) - got["aborted"]; got["aborted"] != 0 || others != 7000 {
		t.Fatalf("read %d records of an aborted transaction and %d of the 7000 others", got["aborted"], others)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
