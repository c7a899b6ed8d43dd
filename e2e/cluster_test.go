package e2e

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// clusterEnv is the shared environment on the local ClickHouse cluster
// (scripts/stack.sh up cluster: two shards, one server each), with a
// database of its own laid out by migrate --cluster. RTB_E2E_CLUSTER names
// the cluster and RTB_E2E_CLUSTER_ADDRS its servers (scripts/test.sh sets
// both).
func (e *env) clusterEnv(t *testing.T) (*env, []string) {
	t.Helper()
	name, addrs := os.Getenv("RTB_E2E_CLUSTER"), os.Getenv("RTB_E2E_CLUSTER_ADDRS")
	if name == "" || addrs == "" {
		t.Skip("e2e: no ClickHouse cluster (set RTB_E2E_CLUSTER and RTB_E2E_CLUSTER_ADDRS, as make test does)")
	}
	ctx := context.Background()
	c := *e
	c.cfg.ClickHouseAddr, c.cfg.ClickHouseCluster = addrs, name
	c.cfg.ClickHouseDatabase = e.cfg.ClickHouseDatabase + "_cluster"
	// Dropped before the store opens: what an earlier test left there (a
	// changed shard layout) would refuse it.
	drop := "DROP DATABASE IF EXISTS " + c.cfg.ClickHouseDatabase + " ON CLUSTER " + name
	if err := onServer(t, strings.Split(addrs, ",")[0]).Exec(ctx, drop); err != nil {
		t.Fatalf("%s: %v", drop, err)
	}
	store, err := connect.ClickHouse(ctx, c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for range 2 { // the second finds nothing to do
		if _, err := store.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.store = store
	return &c, strings.Split(addrs, ",")
}

// onServer connects to one server of the cluster.
func onServer(t *testing.T, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// countOn runs a count query on one server of the cluster.
func countOn(t *testing.T, addr, query string) uint64 {
	t.Helper()
	conn := onServer(t, addr)
	var n uint64
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", query, addr, err)
	}
	return n
}

// storeOn is the cluster's store on one server (addr) only, closed when
// the test ends.
func (e *env) storeOn(t *testing.T, addr string) *chstore.Store {
	t.Helper()
	cfg := e.cfg
	cfg.ClickHouseAddr = addr
	store, err := connect.ClickHouse(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// swapIn writes n events of topic in hour's first minutes, one every step,
// as the partials of one batch at version, and refreshes the hour's totals
// through s.
func swapIn(t *testing.T, s *chstore.Store, topic string, hour time.Time, version uint64, n int, step time.Duration) {
	t.Helper()
	ctx := context.Background()
	table := agg.Table{}
	for i := range n {
		ev := event.Event{EventID: strconv.Itoa(i), Time: hour.Add(time.Duration(i) * step), AdFormat: "banner",
			Country: "US", EventType: []string{"impression", "impression", "click"}[i%3], RevenueMicros: 1000}
		if err := table.Add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	id := ledger.BatchID{Topic: topic, Partition: 0, Slot: hour}
	if err := s.WritePartials(ctx, []batch.Partials{{ID: id, Table: table, Version: version}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RefreshTotals(ctx, topic, []time.Time{hour}); err != nil {
		t.Fatal(err)
	}
}

// stackPid is the pid of a component of the local stack.
func stackPid(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", ".local", "run", name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// On a ClickHouse cluster of two shards, a slot whose first server (the
// one the worker is connected to) is killed in the middle, and started
// again, ends exact, and so does a rerun of the slot: the partials, the
// ledger and the window totals, with the rows spread over both shards and
// the totals on both servers.
func TestClusterServerKilledMidSlot(t *testing.T) {
	// In parallel with the tests that wait; the other cluster tests, which
	// are not, have ended before it kills a server.
	e, addrs := getEnv(t).alongside(t).clusterEnv(t)
	// A topic whose partitions are on both shards (the key is the topic
	// and partition: four partitions all land on one shard one time in 8).
	var topic string
	for i := 0; topic == ""; i++ {
		if i == 20 {
			t.Fatal("20 topics of 4 partitions all on one shard: is the sharding key constant?")
		}
		topic = e.newTopic(t, 4)
		shards := countOn(t, addrs[0], "SELECT uniqExact(cityHash64('"+topic+"', toInt32(number)) % 2) FROM numbers(4)")
		if shards < 2 {
			topic = ""
		}
	}
	base := pastBase(50)
	d := standard(14, 4, base, 2, 150_000)
	e.produce(t, topic, d.recs)

	e.startWorker(t, "RTB_WORKER_HEARTBEAT=100ms")
	run := e.startSlot(t, topic, base)
	e.waitBatchProgress(t, run)
	pid := stackPid(t, "clickhouse-1")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed clickhouse-1 (pid %d, %s)", pid, addrs[0])
	killed := time.Now()
	// The reads of the totals that ask every server (to wait for them to
	// agree, or for the dashboard cache's generation) leave out one that is
	// down.
	cfg := e.cfg
	cfg.ClickHouseAddr = addrs[1]
	if second, err := connect.ClickHouse(context.Background(), cfg); err != nil {
		t.Errorf("connect to the second server with the first down: %v", err)
	} else {
		if _, err := second.ReadTotals(context.Background(), topic, base.Add(-time.Hour), base.Add(time.Hour)); err != nil {
			t.Errorf("read the totals on the second server with the first down: %v", err)
		}
		if _, err := second.TotalsGeneration(context.Background(), topic, base.Add(-time.Hour), base.Add(time.Hour)); err != nil {
			t.Errorf("the dashboard cache's generation with the first server down: %v", err)
		}
		second.Close()
	}
	time.Sleep(5*time.Second - time.Since(killed))
	if out, err := exec.Command("../scripts/stack.sh", "up", "clickhouse-1").CombinedOutput(); err != nil {
		t.Fatalf("restart clickhouse-1: %v\n%s", err, out)
	}
	res := e.waitSlot(t, run)
	t.Logf("slot after the kill: %v", res)
	e.runSlot(t, topic, base.Add(time.Minute))
	e.runSlot(t, topic, base.Add(2*time.Minute))
	// A rerun writes every partial and ledger row of the slot again, at a
	// higher version: the new versions must replace the old on their shard.
	e.runSlot(t, topic, base)
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)

	db := e.cfg.ClickHouseDatabase
	for _, a := range addrs {
		if n := countOn(t, a, "SELECT count() FROM "+db+".window_partials_local WHERE topic = '"+topic+"'"); n == 0 {
			t.Errorf("server %s holds none of the topic's partials: the rows are not sharded", a)
		}
	}
	// The restarted server fetches the swaps it missed. Polled, not SYSTEM
	// SYNC REPLICA: on 18.16 that waits for the replica's whole queue,
	// without a time limit.
	conns := []driver.Conn{onServer(t, addrs[0]), onServer(t, addrs[1])}
	totals := make([]uint64, len(conns))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		for i, c := range conns {
			q := "SELECT count() FROM " + db + ".window_totals WHERE topic = '" + topic + "'"
			if err := c.QueryRow(context.Background(), q).Scan(&totals[i]); err != nil {
				t.Fatalf("%s on %s: %v", q, addrs[i], err)
			}
		}
		if totals[0] != 0 && totals[0] == totals[1] || time.Now().After(deadline) {
			break
		}
	}
	if totals[0] == 0 || totals[0] != totals[1] {
		t.Errorf("window totals rows per server after a minute: %v, want the same on both", totals)
	}
}

// A cluster rtbpipe cannot be exact on is refused at connection, with a
// line that says why: a name the server does not know, a shard of two
// replicas (a read could reach the replica without the latest write), and
// servers that list the shards' hosts differently (a row written through
// one would go to another shard than through the other).
func TestClusterRefusesUnsafeLayouts(t *testing.T) {
	e := getEnv(t)
	addrs := os.Getenv("RTB_E2E_CLUSTER_ADDRS")
	if addrs == "" {
		t.Skip("e2e: no ClickHouse cluster (set RTB_E2E_CLUSTER_ADDRS, as make test does)")
	}
	for cluster, want := range map[string]string{
		"rtbpipe_replicated_shard": "shard 1 has 2 replicas; rtbpipe needs one server per shard",
		"no_such_cluster":          "has no such cluster in its remote_servers",
		"rtbpipe_hosts_disagree":   "the servers list its shards' hosts differently",
	} {
		cfg := e.cfg
		cfg.ClickHouseAddr, cfg.ClickHouseCluster = addrs, cluster
		store, err := connect.ClickHouse(context.Background(), cfg)
		if err == nil {
			store.Close()
			t.Errorf("cluster %s: connected, want an error", cluster)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("cluster %s: %v, want %q", cluster, err, want)
		}
	}
}

// A database migrated for one layout is refused in the other, with a line
// that says what to set: a cluster's database without the cluster's name
// (its Distributed tables would take writes without waiting for the
// shards), and a single server's database with one (every row would stay
// on the server connected to).
func TestClusterDatabaseRefusedInTheOtherLayout(t *testing.T) {
	c, addrs := getEnv(t).clusterEnv(t)
	ctx := context.Background()
	single := c.cfg
	single.ClickHouseAddr, single.ClickHouseCluster = addrs[0], ""
	if store, err := connect.ClickHouse(ctx, single); err == nil {
		store.Close()
		t.Error("the cluster's database opened without the cluster's name; want an error")
	} else if !strings.Contains(err.Error(), "is laid out on a cluster") || !strings.Contains(err.Error(), "RTB_CLICKHOUSE_CLUSTER") {
		t.Errorf("the cluster's database without the cluster's name: %v", err)
	}

	single.ClickHouseDatabase = c.cfg.ClickHouseDatabase + "_single"
	store, err := connect.ClickHouse(ctx, single)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.DropDatabase(context.Background()); store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	clustered := single
	clustered.ClickHouseCluster = c.cfg.ClickHouseCluster
	if store, err := connect.ClickHouse(ctx, clustered); err == nil {
		store.Close()
		t.Error("a single server's database opened with a cluster's name; want an error")
	} else if !strings.Contains(err.Error(), "was migrated for a single server") {
		t.Errorf("a single server's database with a cluster's name: %v", err)
	}
}

// goAwayProxy is a TCP proxy to a server (toxiproxy) that can go away
// (Stop closes its listener and every connection through it) and come back
// on the same address (Start): a server that fails over and back, as its
// clients see it.
func goAwayProxy(t *testing.T, name, to string) *toxiproxy.Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", to)
	if err := p.Start(); err != nil {
		t.Fatalf("proxy to %s: %v", to, err)
	}
	t.Cleanup(p.Stop)
	return p
}

// A refresh of the window totals runs every statement on one server, even
// when its process's pool holds connections to both (after a failover: it
// keeps those it opened to the second server, and opens new ones to the
// first once it is back), and hands them out in turn: its staging table is
// on the server that swaps it in, and its check reads the totals it swapped.
func TestClusterTotalsRefreshOnOneServer(t *testing.T) {
	c, addrs := getEnv(t).clusterEnv(t)
	ctx := context.Background()
	first := goAwayProxy(t, "first-server", addrs[0])
	cfg := c.cfg
	cfg.ClickHouseAddr = first.Listen + "," + addrs[1]
	store, err := connect.ClickHouse(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	slot := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	table := agg.Table{}
	for i := range 100 {
		ev := event.Event{EventID: strconv.Itoa(i), Time: slot.Add(time.Duration(i) * 100 * time.Millisecond), AdFormat: "banner",
			Country: []string{"DE", "FR", "US"}[i%3], EventType: []string{"impression", "click"}[i%2], RevenueMicros: int64(i) * 1000}
		if err := table.Add(&ev); err != nil {
			t.Fatal(err)
		}
	}
	const topic = "refresh-one-server"
	id := ledger.BatchID{Topic: topic, Partition: 0, Slot: slot}
	if err := store.WritePartials(ctx, []batch.Partials{{ID: id, Table: table, Version: 1}}); err != nil {
		t.Fatal(err)
	}

	// The first server goes away and comes back: the store's pool then
	// holds one connection, to the second, and the connections it opens
	// next are to the first.
	first.Stop()
	var err2 error
	for range 3 { // the first ask finds the broken connection
		if _, err2 = store.Topics(ctx); err2 == nil {
			break
		}
	}
	if err2 != nil {
		t.Fatal(err2)
	}
	if err := first.Start(); err != nil {
		t.Fatalf("proxy back on %s: %v", first.Listen, err)
	}

	if err := store.RefreshTotals(ctx, topic, []time.Time{slot.Truncate(time.Hour)}); err != nil {
		t.Fatalf("refresh with a pool on both servers: %v", err)
	}
	var want uint64
	for _, v := range table {
		want += uint64(v.Count)
	}
	q := "SELECT toUInt64(sum(events)) FROM " + c.cfg.ClickHouseDatabase + ".window_totals WHERE topic = '" + topic + "'"
	for _, addr := range addrs {
		var n uint64
		conn := onServer(t, addr)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) { // replication
			if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
				t.Fatalf("%s on %s: %v", q, addr, err)
			}
			if n == want || time.Now().After(deadline) {
				break
			}
		}
		if n != want {
			t.Errorf("window totals on %s: %d events, want %d", addr, n, want)
		}
	}
}

// A cluster's database records the shards it was migrated on, and a
// process that finds the cluster's shards changed (another shard, another
// weight) is refused with a line that says why: later versions of the rows
// already written would land on other shards, where they cannot replace
// the earlier ones.
func TestClusterRefusesChangedShards(t *testing.T) {
	c, _ := getEnv(t).clusterEnv(t)
	ctx := context.Background()
	table := c.cfg.ClickHouseDatabase + ".cluster_layout"
	var shards string
	second := onServer(t, strings.Split(c.cfg.ClickHouseAddr, ",")[1]) // replicated there from the first
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := second.QueryRow(ctx, "SELECT shards FROM "+table).Scan(&shards)
		if err == nil {
			break
		}
		if !errors.Is(err, sql.ErrNoRows) || time.Now().After(deadline) {
			t.Fatalf("the recorded shards, on the second server: %v", err)
		}
	}
	if shards != "1:1,2:1" {
		t.Fatalf("recorded shards %q, want 1:1,2:1 (two shards of weight 1)", shards)
	}
	if store, err := connect.ClickHouse(ctx, c.cfg); err != nil {
		t.Fatalf("the same layout: %v", err)
	} else {
		store.Close()
	}
	// As if the database had been migrated on one shard, before a second
	// was added.
	first := onServer(t, strings.Split(c.cfg.ClickHouseAddr, ",")[0]) // the server the store connects to
	b, err := first.PrepareBatch(ctx, "INSERT INTO "+table+" (shards, recorded_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append("1:1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if store, err := connect.ClickHouse(ctx, c.cfg); err == nil {
		store.Close()
		t.Error("a database migrated on one shard opened on two; want an error")
	} else if !strings.Contains(err.Error(), "was migrated on cluster rtbpipe with the shards 1:1") || !strings.Contains(err.Error(), "now sees 1:1,2:1") {
		t.Errorf("a database migrated on one shard, on two: %v", err)
	}
}

// The generation of the window totals (the dashboard cache's key) differs
// while the servers hold different totals: a refresh swaps them on one
// server, and the others fetch the swap a moment later. A generation read
// on the first server and a body read on another then must not be cached
// as current: the body would be served until the hour changed again.
func TestClusterTotalsGenerationWhileServersDiffer(t *testing.T) {
	c, addrs := getEnv(t).clusterEnv(t)
	ctx := context.Background()
	first, second := c.storeOn(t, addrs[0]), c.storeOn(t, addrs[1])
	totals := c.cfg.ClickHouseDatabase + ".window_totals"
	secondConn := onServer(t, addrs[1])
	sync := func() { // bounded: on 18.16 the statement itself has no time limit
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := secondConn.Exec(ctx, "SYSTEM SYNC REPLICA "+totals); err != nil {
			t.Fatal(err)
		}
	}
	const topic = "generation-servers-differ"
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	gen := func(s *chstore.Store) string {
		t.Helper()
		g, err := s.TotalsGeneration(ctx, topic, hour, hour.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	swapIn(t, c.store, topic, hour, 1, 30, time.Second)
	sync()
	before := gen(first)
	if g := gen(second); g != before {
		t.Fatalf("generation with the same totals on both servers: %q on the first, %q on the second", before, g)
	}
	// The second server stops fetching: the next swap stays on the first.
	if err := secondConn.Exec(ctx, "SYSTEM STOP REPLICATION QUEUES "+totals); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secondConn.Exec(ctx, "SYSTEM START REPLICATION QUEUES "+totals) })
	swapIn(t, c.store, topic, hour, 2, 60, time.Second)
	differFirst, differSecond := gen(first), gen(second)
	if err := secondConn.Exec(ctx, "SYSTEM START REPLICATION QUEUES "+totals); err != nil {
		t.Fatal(err)
	}
	sync()
	after := gen(first)
	if g := gen(second); g != after {
		t.Fatalf("generation once both servers have the swap: %q on the first, %q on the second", after, g)
	}
	if after == before {
		t.Fatalf("generation %q did not change with the totals", after)
	}
	for name, g := range map[string]string{"first": differFirst, "second": differSecond} {
		if g == before || g == after {
			t.Errorf("generation read on the %s server while the servers differ: %q, the same as with the totals on both servers (before %q, after %q)",
				name, g, before, after)
		}
	}
}

// Anomaly scoring, verify and reconciliation read the window totals a
// slot's refresh has just swapped in, and what they find is stored,
// reported or repaired: on a cluster
// the refresh swaps them on one server, and the reader may be connected to
// another server that has not fetched the swap yet (scoring runs in any
// worker). Such a read waits for its server to have every swap made before
// it, instead of reading what it had.
func TestClusterTotalsReadsSeeTheLatestSwap(t *testing.T) {
	c, addrs := getEnv(t).clusterEnv(t)
	ctx := context.Background()
	second := c.storeOn(t, addrs[1])
	totals := c.cfg.ClickHouseDatabase + ".window_totals"
	secondConn := onServer(t, addrs[1])
	t.Cleanup(func() { _ = secondConn.Exec(ctx, "SYSTEM START REPLICATION QUEUES "+totals) })
	const topic = "totals-reads-latest-swap"
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	// swap writes n events in the hour's first minutes and swaps them in
	// through the first server (the store c's) while the second one's
	// replication waits, which resumes a second after.
	swap := func(version uint64, n int) {
		t.Helper()
		if err := secondConn.Exec(ctx, "SYSTEM STOP REPLICATION QUEUES "+totals); err != nil {
			t.Fatal(err)
		}
		swapIn(t, c.store, topic, hour, version, n, 5*time.Second)
		go func() {
			time.Sleep(time.Second)
			_ = secondConn.Exec(context.Background(), "SYSTEM START REPLICATION QUEUES "+totals)
		}()
	}

	swap(1, 600) // 50 minutes
	got, err := second.AnomalyCells(ctx, topic, hour, hour.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Errorf("anomaly scoring's cells read on the second server before it fetched the swap: %d, want the 50 minutes it holds", len(got))
	}

	swap(2, 1200) // 100 minutes: the whole hour
	sums, err := second.ReadTotals(ctx, topic, hour, hour.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var events int64
	for _, v := range sums {
		events += v.Count
	}
	if events != 720 {
		t.Errorf("verify's totals read on the second server before it fetched the swap: %d events, want the hour's 720", events)
	}

	swap(3, 300)
	stale, err := second.StaleTotals(ctx, topic, hour, hour.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 0 {
		t.Errorf("reconciliation's check on the second server before it fetched the swap: hours %v stale, want none (the first swapped them)", stale)
	}
}
