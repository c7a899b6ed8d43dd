package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// sweptByRefresh leaves a staging table of the window totals as a crashed
// refresh would, two hours old, and one as a running refresh has, on each
// server of servers; then refresh runs a refresh of the totals, after which
// the old one must be gone from every server and the new one still there.
func sweptByRefresh(t *testing.T, servers map[string]driver.Conn, db string, refresh func() error) {
	t.Helper()
	ctx := context.Background()
	old := fmt.Sprintf("window_totals_stage_%d_0badcafe", time.Now().Add(-2*time.Hour).UnixNano())
	running := fmt.Sprintf("window_totals_stage_%d_0badcafe", time.Now().UnixNano())
	for addr, conn := range servers {
		for _, name := range []string{old, running} {
			if err := conn.Exec(ctx, "CREATE TABLE "+db+"."+name+" (n UInt8) ENGINE = Memory"); err != nil {
				t.Fatalf("%s: create %s: %v", addr, name, err)
			}
			t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+db+"."+name) })
		}
	}
	if err := refresh(); err != nil {
		t.Fatal(err)
	}
	for addr, conn := range servers {
		for name, want := range map[string]uint64{old: 0, running: 1} {
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Errorf("on %s after a refresh: %d tables %s, want %d", addr, n, name, want)
			}
		}
	}
}

// A refresh of the window totals drops the staging tables that crashed
// refreshes left (older than an hour), and only those.
func TestRefreshDropsStaleStages(t *testing.T) {
	e := getEnv(t)
	s := e.scratchStore(t, "_stages")
	db := e.cfg.ClickHouseDatabase + "_stages"
	sweptByRefresh(t, map[string]driver.Conn{e.cfg.ClickHouseAddr: e.db}, db, func() error {
		return s.RefreshTotals(context.Background(), "stages", []time.Time{time.Now().UTC().Truncate(time.Hour)})
	})
}

// On a cluster a refresh runs on the first server that answers, so a crashed
// one may have left its staging table on any server: a refresh drops the
// stale ones on every server, not only on the one its process is connected to.
func TestClusterRefreshDropsStaleStagesOnEveryServer(t *testing.T) {
	c, addrs := getEnv(t).clusterEnv(t)
	ctx := context.Background()
	store := c.storeOn(t, addrs[0])
	servers := map[string]driver.Conn{}
	for _, addr := range addrs {
		servers[addr] = onServer(t, addr)
	}
	sweptByRefresh(t, servers, c.cfg.ClickHouseDatabase, func() error {
		return store.RefreshTotals(ctx, "stages", []time.Time{time.Now().UTC().Truncate(time.Hour)})
	})
}
