package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

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
	store := e.store.In(e.cfg.ClickHouseDatabase + "_history")
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.DropDatabase(context.Background()) })

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
	logged := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	start := time.Now().Add(-time.Second)
	if err := store.WritePartials(logged, []batch.Partials{{ID: id, Table: first, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := store.WritePartials(logged, []batch.Partials{{ID: id, Table: rerun, Version: 2}}); err != nil {
		t.Fatal(err)
	}

	if err := e.db.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	var read uint64
	if err := e.db.QueryRow(ctx, "SELECT sum(read_rows) FROM system.query_log WHERE type = 2 AND event_time >= ? AND position(query, ?) > 0 AND query LIKE 'SELECT%'",
		start.Truncate(time.Second), e.cfg.ClickHouseDatabase+"_history.").Scan(&read); err != nil {
		t.Fatal(err)
	}
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
	store := e.store.In(db)
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.DropDatabase(context.Background()) })
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
