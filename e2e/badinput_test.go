package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
)

// A record of nearly a megabyte that is not an event is a dead letter that keeps
// its first 64 KiB, its length and its SHA-256.
func TestLargeInvalidRecordIsATruncatedDeadLetter(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(20)
	big := bytes.Repeat([]byte("x"), 900<<10) // under the producer's 1 MiB limit
	d := newDataset()
	r := rand.New(rand.NewPCG(61, 7))
	d.add(r, 0, base.Add(time.Second), base)
	d.recs = append(d.recs, record{partition: 0, logTime: base.Add(2 * time.Second), value: big})
	d.add(r, 0, base.Add(time.Minute), base.Add(time.Minute))
	e.produce(t, topic, d.recs)
	if res := e.runSlot(t, topic, base); res.DeadLetters != 1 || res.Events != 1 {
		t.Fatalf("slot: %d events, %d dead letters; want 1 and 1", res.Events, res.DeadLetters)
	}
	var n, size uint64
	var payload, sum string
	if err := e.db.QueryRow(context.Background(), "SELECT count(), any(payload), any(payload_bytes), any(payload_sha256) FROM "+
		e.table("dead_letters")+" FINAL WHERE topic = ?", topic).Scan(&n, &payload, &size, &sum); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(big)
	if n != 1 || len(payload) != 64<<10 || size != uint64(len(big)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("dead letters %d: payload of %d bytes, payload_bytes %d, sha256 %s; want 1, 65536, %d, %x",
			n, len(payload), size, sum, len(big), want)
	}
}

// ClickHouse sums Int64 silently past its range. Partials of one window and
// key from two partitions whose revenue passes it together are refused by
// rtbpipe's exact reads, and the prototype's view shows the sum without
// wrapping.
func TestRevenueSumPastInt64IsNotWrapped(t *testing.T) {
	e := getEnv(t)
	topic := e.newTopic(t, 2)
	ctx := context.Background()
	w := pastBase(30)
	b, err := e.db.PrepareBatch(ctx, "INSERT INTO "+e.table("window_partials")+
		" (window_start, event_type, country, ad_format, topic, kafka_partition, slot, events, revenue_micros, version)")
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ { // 6M events at the cap each: each partial fits, their sum does not
		if err := b.Append(w, "click", "US", "banner", topic, p, w, uint64(6_000_000), int64(6_000_000_000_000_000_000), uint64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RefreshTotals(ctx, topic, []time.Time{w}); err != nil { // as the run that wrote them would
		t.Fatalf("refresh the window totals: %v", err)
	}
	got, err := e.store.TopicWindows(ctx, topic)
	if !errors.Is(err, agg.ErrOverflow) {
		t.Fatalf("exact windows: got %v, %v; want an overflow error, not a wrapped sum", got, err)
	}
	if got, err := e.store.ReadTotals(ctx, topic, w, w.Add(time.Minute)); !errors.Is(err, agg.ErrOverflow) {
		t.Fatalf("window totals: got %v, %v; want an overflow error, not a wrapped sum", got, err)
	}
	var total float64
	if err := e.db.QueryRow(ctx, "SELECT total_revenue FROM "+e.table("ad_events_aggregated_by_topic")+" WHERE topic = ?", topic).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total < 11.9e12 || total > 12.1e12 {
		t.Fatalf("the view's total_revenue is %g, want 1.2e13 (12M events at $1M)", total)
	}
}
