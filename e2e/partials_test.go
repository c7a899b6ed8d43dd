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

// Every write of a batch's partials first looks up the keys its earlier
// runs wrote (to zero those a rerun no longer produces). The partials are
// ordered by window for their readers, and grow by thousands of rows a
// minute at 64 partitions: that lookup must not read them all. With a
// month of other batches' partials in the table, writing a batch, then
// rerunning it with fewer keys, must read under a tenth of the table's rows
// (the query log counts them) and leave exactly the rerun's keys.
func TestPartialsWriteDoesNotReadTheWholeHistory(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	store := e.scratchStore(t, "_history")

	topic := fmt.Sprintf("history-%d", time.Now().UnixNano())
	slot := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	const history = 400_000 // 50 keys per partition and minute, 4 partitions, 2,000 minutes
	if err := e.db.Exec(ctx, fmt.Sprintf("INSERT INTO %s_history.window_partials (window_start, event_type, country, ad_format, topic, kafka_partition, slot, sub, events, revenue_micros, version)"+
		" SELECT toDateTime(?) - 60 * (1 + intDiv(number, 200)) AS w, concat('e', toString(number %% 5)), concat('c', toString(intDiv(number, 5) %% 10)), 'banner', ?, toInt32(intDiv(number, 50) %% 4), w, 0, 1, 1000, 1"+
		" FROM numbers(%d)", e.cfg.ClickHouseDatabase, history), slot, topic); err != nil {
		t.Fatal(err)
	}

	id := ledger.BatchID{Topic: topic, Partition: 2, Slot: slot}
	w := slot.Unix()
	keys := []agg.Key{{Window: w, EventType: "click", Country: "US", AdFormat: "banner"},
		{Window: w, EventType: "impression", Country: "US", AdFormat: "banner"},
		{Window: w - 3600, EventType: "click", Country: "DE", AdFormat: "video"}} // a late event's window
	first, rerun := agg.Table{}, agg.Table{}
	for i, k := range keys {
		first[k] = agg.Totals{Count: int64(i + 1), RevenueMicros: 10}
	}
	rerun[keys[0]] = agg.Totals{Count: 1, RevenueMicros: 10}
	since := time.Now()
	if err := store.WritePartials(logged(ctx), []batch.Partials{{ID: id, Table: first, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := store.WritePartials(logged(ctx), []batch.Partials{{ID: id, Table: rerun, Version: 2}}); err != nil {
		t.Fatal(err)
	}

	read := e.rowsRead(t, since, e.cfg.ClickHouseDatabase+"_history.")
	if limit := uint64(history / 10); read > limit {
		t.Errorf("writing a batch's partials twice read %d rows of a history of %d, want at most %d", read, history, limit)
	}
	var n, events uint64
	if err := e.db.QueryRow(ctx, fmt.Sprintf("SELECT count(), sum(events) FROM %s_history.window_partials FINAL WHERE topic = ? AND kafka_partition = 2 AND slot = ? AND events > 0",
		e.cfg.ClickHouseDatabase), topic, slot).Scan(&n, &events); err != nil {
		t.Fatal(err)
	}
	if n != 1 || events != 1 {
		t.Errorf("after a rerun with one key of three, the batch's partials hold %d keys with %d events, want 1 key with 1", n, events)
	}
}

// Partials written before partial_keys existed (by an earlier release) get
// their keys there when the migration that creates it is applied: a rerun
// after the upgrade still zeroes the keys it no longer produces.
func TestPartialKeysOfAnEarlierReleaseAreMigrated(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	db := e.cfg.ClickHouseDatabase + "_upgrade"
	store := e.scratchStore(t, "_upgrade")
	slot := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	// As the earlier release wrote them: partials only.
	if err := e.db.Exec(ctx, fmt.Sprintf("INSERT INTO %s.window_partials (window_start, event_type, country, ad_format, topic, kafka_partition, slot, sub, events, revenue_micros, version)"+
		" SELECT toDateTime(%[2]d), arrayJoin(['click', 'impression']) AS e, 'US', 'banner', 'old', 0, toDateTime(%[2]d), 0, if(e = 'click', 3, 5), 10, 1", db, slot.Unix())); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"DROP TABLE " + db + ".partial_keys", "DROP TABLE " + db + ".schema_migrations"} {
		if err := e.db.Exec(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	k := agg.Key{Window: slot.Unix(), EventType: "click", Country: "US", AdFormat: "banner"}
	id := ledger.BatchID{Topic: "old", Partition: 0, Slot: slot}
	if err := store.WritePartials(ctx, []batch.Partials{{ID: id, Table: agg.Table{k: {Count: 3, RevenueMicros: 30}}, Version: 2}}); err != nil {
		t.Fatal(err)
	}
	var n, events uint64
	if err := e.db.QueryRow(ctx, "SELECT count(), sum(events) FROM "+db+".window_partials FINAL WHERE topic = 'old' AND events > 0").Scan(&n, &events); err != nil {
		t.Fatal(err)
	}
	if n != 1 || events != 3 {
		t.Errorf("a rerun after the upgrade with one key of the two an earlier release wrote: %d keys with %d events, want 1 with 3", n, events)
	}
}
