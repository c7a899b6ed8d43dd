package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// The raw archive's insert stays open across blocks and is one part once
// committed. An insert that ends without its commit (a failed batch) may
// still have stored what it sent (ClickHouse 18.16 completes an insert whose
// client goes away); the retry writes the same offsets again, and the
// archive counts each offset once.
func TestRawInsertRetryCountsOnce(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	slot := pastBase(30)
	id := ledger.BatchID{Topic: fmt.Sprintf("raw-insert-%d", time.Now().UnixNano()), Partition: 0, Slot: slot}
	send := func(ins *chstore.RawInsert, from, blocks, rows int64) {
		t.Helper()
		var buf sink.RawBuffer
		for b := range blocks {
			for i := range rows {
				off := from + b*rows + i
				ev := event.Event{EventID: fmt.Sprintf("e%d", off), Time: slot.Add(time.Duration(off) * time.Millisecond),
					UserID: "u", CampaignID: "c", AdFormat: "banner", Country: "US", Device: "mobile", EventType: "click",
					RevenueMicros: 1500}
				buf.Add(id, off, slot, &ev)
			}
			if err := e.store.SendRaw(ctx, ins, &buf); err != nil {
				t.Fatalf("send raw block: %v", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("buffer holds %d rows after a send, want 0", buf.Len())
			}
		}
	}

	var failed chstore.RawInsert
	send(&failed, 0, 3, 500) // offsets [0, 1500), never committed
	failed.Abort()

	var retry chstore.RawInsert
	send(&retry, 0, 7, 500) // the retry: [0, 3500)
	if err := e.store.CommitRaw(ctx, &retry, &sink.RawBuffer{}); err != nil {
		t.Fatalf("commit raw insert: %v", err)
	}
	var parts uint64
	if err := e.db.QueryRow(ctx, "SELECT uniqExact(_part) FROM "+e.table("ad_events_raw")+
		" WHERE topic = ? AND kafka_offset >= 1500", id.Topic).Scan(&parts); err != nil {
		t.Fatalf("count raw parts: %v", err)
	}
	if parts != 1 {
		t.Fatalf("4 blocks of the committed insert made %d parts, want 1", parts)
	}
	table, ro, err := e.store.AggregateRaw(ctx, id, 0, 3500)
	if err != nil {
		t.Fatal(err)
	}
	var n, rev int64
	for _, tot := range table {
		n += tot.Count
		rev += tot.RevenueMicros
	}
	if ro.Events != 3500 || n != 3500 || rev != 3500*1500 {
		t.Fatalf("the archive holds %d events (%d in windows, revenue %d), want 3500 (revenue %d)", ro.Events, n, rev, 3500*1500)
	}
}

// Every migration can be applied again, as after one interrupted half-way:
// with its record gone, the whole schema is applied over itself (ClickHouse
// 18.16 has no ADD COLUMN IF NOT EXISTS: the migrator skips a column that
// exists).
func TestMigrationsApplyAgain(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	s := e.scratchStore(t, "_migrate")
	if err := e.db.Exec(ctx, "DROP TABLE "+e.cfg.ClickHouseDatabase+"_migrate.schema_migrations"); err != nil {
		t.Fatal(err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("applying the migrations again: %v", err)
	}
	if len(applied) == 0 {
		t.Fatal("nothing was applied again")
	}
}
