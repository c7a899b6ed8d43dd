package e2e

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A topic written in transactions, one of them aborted: the windows hold
// exactly the committed events, and the ledger accounts for every offset
// (the markers and the aborted records in their own counts). The records
// are stamped an hour ago, but a transaction's marker is stamped by the
// broker as it commits: the first slot ends at the first marker (the first
// offset stamped past its minute), and the rest is taken by the slot of the
// minute the markers were written in.
func TestTransactionsAreReadCommitted(t *testing.T) {
	e := getEnv(t).alongside(t) // waits for the markers' minute to end
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(70)
	r := rand.New(rand.NewPCG(9, 9))
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.KafkaBrokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	committed, aborted := newDataset(), newDataset()
	txn := func(d *dataset, n int, at time.Time, commit kgo.TransactionEndTry) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		from := len(d.recs)
		for i := range n {
			logTime := at.Add(time.Duration(i) * time.Second)
			d.add(r, 0, logTime, logTime)
		}
		for _, rec := range d.recs[from:] {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 0, Timestamp: rec.logTime, Value: rec.value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	txn(committed, 20, base, kgo.TryCommit)                     // offsets 0-19, marker 20
	txn(aborted, 10, base.Add(20*time.Second), kgo.TryAbort)    // 21-30, marker 31
	txn(committed, 20, base.Add(30*time.Second), kgo.TryCommit) // 32-51, marker 52
	txn(committed, 1, base.Add(time.Minute), kgo.TryCommit)     // 53, marker 54: ends the slot
	markedAt := time.Now().UTC().Truncate(time.Minute)
	e.runSlot(t, topic, base)
	time.Sleep(time.Until(markedAt.Add(time.Minute + time.Second)))
	e.runSlot(t, topic, markedAt)
	e.checkExact(t, topic, committed.want)
	e.checkLedger(t, topic, map[int32]int64{0: 55})
	var events, markers, skipped uint64
	for _, b := range e.ledger(t, topic) {
		events, markers, skipped = events+b.Events, markers+b.Markers, skipped+b.Skipped
	}
	if events != 41 || markers != 4 || skipped != 10 {
		t.Fatalf("ledger: %d events, %d markers, %d skipped; want 41, 4 and the 10 aborted", events, markers, skipped)
	}
}
