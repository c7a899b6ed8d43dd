package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// The worker writes the partials of the batches that end together in one
// insert, after one read of the keys their earlier runs wrote. A rerun
// that no longer produces a key writes it as a zero row, batch by batch:
// another batch of the same write keeps its own.
func TestPartialsOfSeveralBatchesInOneWrite(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	topic := fmt.Sprintf("partials-%d", time.Now().UnixNano())
	slot := pastBase(40)
	key := func(minute int, country string) agg.Key {
		return agg.Key{Window: slot.Add(time.Duration(minute) * time.Minute).Unix(), EventType: "click", Country: country, AdFormat: "banner"}
	}
	write := func(version uint64, ps ...batch.Partials) {
		t.Helper()
		for i := range ps {
			ps[i].Version = version
		}
		if err := e.store.WritePartials(ctx, ps); err != nil {
			t.Fatalf("write partials: %v", err)
		}
	}
	// The partials alone (the window totals follow in the slot workflow).
	check := func(want agg.Table) {
		t.Helper()
		if d := agg.Diff(want, e.windows(t, topic)); len(d) > 0 {
			t.Fatalf("partials differ: %v", d)
		}
	}
	a := ledger.BatchID{Topic: topic, Partition: 0, Slot: slot}
	b := ledger.BatchID{Topic: topic, Partition: 1, Slot: slot}
	c := ledger.BatchID{Topic: topic, Partition: 1, Slot: slot, Sub: 1}
	write(1,
		batch.Partials{ID: a, Table: agg.Table{key(0, "US"): {Count: 2, RevenueMicros: 20}, key(-1, "DE"): {Count: 1, RevenueMicros: 10}}},
		batch.Partials{ID: b, Table: agg.Table{key(0, "US"): {Count: 3, RevenueMicros: 30}, key(-1, "DE"): {Count: 4, RevenueMicros: 40}}},
		batch.Partials{ID: c, Table: agg.Table{key(0, "FR"): {Count: 5, RevenueMicros: 50}}})
	check(agg.Table{key(0, "US"): {Count: 5, RevenueMicros: 50}, key(-1, "DE"): {Count: 5, RevenueMicros: 50},
		key(0, "FR"): {Count: 5, RevenueMicros: 50}})

	// Reruns of a and c (as a logic change could make them): a drops DE,
	// c drops FR for IT; b, not rerun, keeps its DE.
	write(2,
		batch.Partials{ID: a, Table: agg.Table{key(0, "US"): {Count: 2, RevenueMicros: 20}}},
		batch.Partials{ID: c, Table: agg.Table{key(0, "IT"): {Count: 5, RevenueMicros: 50}}})
	check(agg.Table{key(0, "US"): {Count: 5, RevenueMicros: 50}, key(-1, "DE"): {Count: 4, RevenueMicros: 40},
		key(0, "IT"): {Count: 5, RevenueMicros: 50}})

	// One batch alone (a list of one tuple), with no keys left at all.
	write(3, batch.Partials{ID: b, Table: agg.Table{}})
	check(agg.Table{key(0, "US"): {Count: 2, RevenueMicros: 20}, key(0, "IT"): {Count: 5, RevenueMicros: 50}})
}
