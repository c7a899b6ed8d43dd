package chstore

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/rtbpipe/rtbpipe/internal/config"
	rtbsql "github.com/rtbpipe/rtbpipe/sql"
)

// A ClickHouse cluster (README: Exactly once, 7). The sharded tables (sql.Sharded)
// are read and written through their Distributed tables, every version of
// a row on the shard its key picks; the window totals are replicated on
// every host and swapped in on the host connected to.
//
// Each shard has one replica: a read of the ledger or of the partials then
// always reaches the server that took the write it follows. ClickHouse
// 18.16 cannot give read-your-writes across replicas of a shard at the
// speed rtbpipe writes (quorum inserts are one at a time per table; a
// sequentially consistent read fails once a partition has been replaced),
// so a cluster whose shards have several replicas is refused.
var clusterSettings = clickhouse.Settings{
	// An INSERT into a Distributed table returns once every shard has
	// written its rows (the default queues them on the local disk and
	// sends them later: a read could miss them).
	"insert_distributed_sync": 1,
	// Idempotence is the ReplacingMergeTree keys' (README: Exactly once),
	// not the replicated tables' memory of recent blocks.
	"insert_deduplicate": 0,
	// (The ledger's subqueries over a Distributed table say GLOBAL IN
	// (globalIn): 18.16 refuses them by default, and takes no string
	// settings from clickhouse-go, such as distributed_product_mode.)
}

// globalIn is the IN of a subquery over the store's tables: GLOBAL IN on a
// cluster (the subquery runs once, on the server connected to, and its
// result goes to every shard), a plain IN on one server (half the cost:
// no temporary table).
func (s *Store) globalIn() string {
	if s.cluster == "" {
		return "IN"
	}
	return "GLOBAL IN"
}

// ErrLayout marks a cluster rtbpipe cannot run on: waiting does not help.
var ErrLayout = errors.New("cluster layout")

// onCluster is the ON CLUSTER clause of the store's DDL ("" on one server).
func (s *Store) onCluster() string {
	if s.cluster == "" {
		return ""
	}
	return " ON CLUSTER " + s.cluster
}

// servers holds a pool to each server of the cluster, each opened on its
// first use, for the reads that ask every server (onEveryServer). A
// table function (cluster()) would not do: ClickHouse 18.16 takes the
// table's columns from the cluster's first server, and fails while that
// one is down.
type servers struct {
	hosts     []clusterHost // from Open; a process does not look again
	mu        sync.Mutex
	pools     map[string]driver.Conn // by address
	downUntil map[string]time.Time   // by address: not dialled again before
}

// serverRedial is how long a server that could not be reached is left out
// before it is dialled again (a server black-holed by the network would
// otherwise cost every read a dial timeout).
const serverRedial = 2 * time.Second

// errServerDown marks a server left out of onEveryServer: it could not be
// reached (or could not a moment ago).
var errServerDown = errors.New("not reachable")

// pool returns the pool to the server at addr, opening it if needed (the
// lock is not held while dialling); errServerDown if it cannot be reached.
func (sv *servers) pool(ctx context.Context, s *Store, addr string) (driver.Conn, error) {
	sv.mu.Lock()
	c, ok := sv.pools[addr]
	down := time.Now().Before(sv.downUntil[addr])
	sv.mu.Unlock()
	switch {
	case ok:
		return c, nil
	case down:
		return nil, fmt.Errorf("ClickHouse server %s: %w a moment ago", addr, errServerDown)
	}
	c, err := openConn(ctx, s.cfg, []string{addr}, s.settings)
	if err != nil {
		if ctx.Err() == nil && unreachable(err) {
			sv.markDown(addr)
			return nil, fmt.Errorf("%w: %w", errServerDown, err)
		}
		return nil, err
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if other, ok := sv.pools[addr]; ok { // opened meanwhile
		c.Close()
		return other, nil
	}
	if sv.pools == nil {
		sv.pools = map[string]driver.Conn{}
	}
	sv.pools[addr] = c
	return c, nil
}

// markDown leaves the server at addr out for serverRedial. Its pool stays:
// the driver drops its broken connections and dials again.
func (sv *servers) markDown(addr string) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.downUntil == nil {
		sv.downUntil = map[string]time.Time{}
	}
	sv.downUntil[addr] = time.Now().Add(serverRedial)
}

func (sv *servers) close() {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, c := range sv.pools {
		c.Close()
	}
	sv.pools = nil
}

// onEveryServer runs fn on each server of the cluster that answers, in the
// cluster's order, and returns how many answered. A server that cannot be
// reached is left out, not an error (a read there would fail; it takes no
// writes while down); none answering is. Any other error ends it. On one
// server it runs fn on the store's pool.
func (s *Store) onEveryServer(ctx context.Context, fn func(conn driver.Conn) error) (answered int, err error) {
	if s.cluster == "" {
		if err := fn(s.conn); err != nil {
			return 0, err
		}
		return 1, nil
	}
	var down []error
	for _, h := range s.servers.hosts {
		conn, err := s.servers.pool(ctx, s, h.Addr)
		if err == nil {
			err = fn(conn)
			if err != nil && ctx.Err() == nil && unreachable(err) {
				s.servers.markDown(h.Addr)
				err = fmt.Errorf("%w: %w", errServerDown, err)
			}
		}
		switch {
		case errors.Is(err, errServerDown):
			down = append(down, fmt.Errorf("%s: %w", h.Addr, err))
		case err != nil:
			return answered, fmt.Errorf("ClickHouse cluster %s, server %s: %w", s.cluster, h.Addr, err)
		default:
			answered++
		}
	}
	if answered == 0 {
		return 0, fmt.Errorf("ClickHouse cluster %s: no server answers: %w", s.cluster, errors.Join(down...))
	}
	return answered, nil
}

// unreachable says whether err is a server's going away or not answering,
// rather than an answer.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, sqldriver.ErrBadConn)
}

// clusterHost is one server of the cluster, as a server lists it.
type clusterHost struct {
	Shard, Weight uint32
	Addr          string
}

// readCluster reads the cluster as the server behind conn lists it, by
// shard and replica (none if it has no such cluster).
func readCluster(ctx context.Context, conn driver.Conn, cluster string) ([]clusterHost, error) {
	rows, err := conn.Query(ctx, "SELECT shard_num, shard_weight, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hosts []clusterHost
	for rows.Next() {
		var h clusterHost
		var addr string
		var port uint16
		if err := rows.Scan(&h.Shard, &h.Weight, &addr, &port); err != nil {
			return nil, err
		}
		h.Addr = net.JoinHostPort(addr, strconv.Itoa(int(port)))
		hosts = append(hosts, h)
	}
	return hosts, rows.Err()
}

// clusterHosts lists the cluster's servers, and checks the layout rtbpipe
// needs: the cluster exists on the server connected to, and every shard
// has one replica.
func (s *Store) clusterHosts(ctx context.Context) ([]clusterHost, error) {
	hosts, err := readCluster(ctx, s.conn, s.cluster)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse cluster %s: read system.clusters: %w", s.cluster, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: ClickHouse cluster %s: the server at %s has no such cluster in its remote_servers (system.clusters); set RTB_CLICKHOUSE_CLUSTER to one it has, or empty for a single server",
			ErrLayout, s.cluster, s.cfg.ClickHouseAddr)
	}
	replicas := map[uint32]int{}
	for _, h := range hosts {
		replicas[h.Shard]++
	}
	for shard, n := range replicas {
		if n > 1 {
			return nil, fmt.Errorf("%w: ClickHouse cluster %s: shard %d has %d replicas; rtbpipe needs one server per shard (reads of the ledger must see its latest writes, which replicas of ClickHouse 18.16 cannot promise at rtbpipe's write rate: README, Exactly once, 7)",
				ErrLayout, s.cluster, shard, n)
		}
	}
	return hosts, nil
}

// hostsView says how hosts place rows: each shard's number, weight and
// hosts, in order ("" for none).
func hostsView(hosts []clusterHost) string {
	shards := make([]string, len(hosts))
	for i, h := range hosts {
		shards[i] = fmt.Sprintf("shard %d (weight %d) on %s", h.Shard, h.Weight, h.Addr)
	}
	return strings.Join(shards, ", ")
}

// checkHostsAgree refuses a cluster whose servers list its shards' hosts
// differently: a Distributed table sends a row to the host its own server
// lists for the row's shard, so versions of one row written through two
// such servers would land on two servers, where they cannot replace each
// other. It asks each of the cluster's hosts and of the store's addresses
// that answers; one that does not is not checked (it takes no writes while
// it is down).
func (s *Store) checkHostsAgree(ctx context.Context, hosts []clusterHost) error {
	mine := hostsView(hosts)
	addrs := config.SplitList(s.cfg.ClickHouseAddr)
	for _, h := range hosts {
		if !slices.Contains(addrs, h.Addr) {
			addrs = append(addrs, h.Addr)
		}
	}
	for _, addr := range addrs {
		conn, err := openConn(ctx, s.cfg, []string{addr}, nil)
		if err != nil {
			continue
		}
		listed, err := readCluster(ctx, conn, s.cluster)
		conn.Close()
		if err != nil {
			return fmt.Errorf("ClickHouse cluster %s: read system.clusters on %s: %w", s.cluster, addr, err)
		}
		theirs := hostsView(listed)
		if theirs == "" {
			theirs = "no such cluster"
		}
		if theirs != mine {
			return fmt.Errorf("%w: ClickHouse cluster %s: the servers list its shards' hosts differently: the server connected to (the first "+
				"that answers of %s) lists %s; the server at %s lists %s. A Distributed table sends a row to the host its own server lists "+
				"for the row's shard, so versions of one row written through each would land on different servers, where they cannot "+
				"replace each other (windows would count twice); make remote_servers the same on every server (README: ClickHouse cluster)",
				ErrLayout, s.cluster, s.cfg.ClickHouseAddr, mine, addr, theirs)
		}
	}
	return nil
}

// onHosts returns the connections a migration statement with target t
// runs on: the store's own, or the pool of every host (EachHost) or of one
// host of every shard (EachShard), each of which must answer.
func (s *Store) onHosts(ctx context.Context, t rtbsql.Target) ([]driver.Conn, error) {
	if t == rtbsql.Connected || t == rtbsql.OnCluster {
		return []driver.Conn{s.conn}, nil
	}
	var out []driver.Conn
	seen := map[uint32]bool{}
	for _, host := range s.servers.hosts {
		if t == rtbsql.EachShard && seen[host.Shard] {
			continue
		}
		seen[host.Shard] = true
		c, err := s.servers.pool(ctx, s, host.Addr)
		if err != nil {
			return nil, fmt.Errorf("ClickHouse cluster %s, shard %d: %w", s.cluster, host.Shard, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// checkLayout refuses a database migrated for the other layout: one laid
// out on a cluster (its ledger a Distributed table) used without the
// cluster's name would write through its Distributed tables without
// waiting for the shards (a read could miss an acknowledged write), and one
// migrated for a single server used with a cluster's name would keep every
// row on the server connected to. A database not migrated yet passes.
// hosts are the cluster's (clusterHosts; none on one server).
func (s *Store) checkLayout(ctx context.Context, hosts []clusterHost) error {
	rows, err := s.conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? AND name IN ('batches', ?)", s.db, layoutTable)
	if err != nil {
		return fmt.Errorf("ClickHouse database %s: read its layout (system.tables): %w", s.db, err)
	}
	defer rows.Close()
	engines := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return fmt.Errorf("ClickHouse database %s: read its layout (system.tables): %w", s.db, err)
		}
		engines[name] = engine
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ClickHouse database %s: read its layout (system.tables): %w", s.db, err)
	}
	engine, migrated := engines["batches"]
	if !migrated {
		return nil
	}
	switch distributed := engine == "Distributed"; {
	case distributed && s.cluster != "":
		if _, recorded := engines[layoutTable]; !recorded {
			return nil // migrated before rtbpipe recorded the shards
		}
		_, _, err := s.checkShards(ctx, hosts)
		return err
	case distributed && s.cluster == "":
		return fmt.Errorf("%w: ClickHouse database %s is laid out on a cluster (its tables are Distributed): set RTB_CLICKHOUSE_CLUSTER "+
			"(starter --cluster) to the cluster's name, as for every process that uses it", ErrLayout, s.db)
	case !distributed && s.cluster != "":
		return fmt.Errorf("%w: ClickHouse database %s was migrated for a single server (its ledger is a %s table), not for cluster %s: "+
			"rtbpipe does not convert a database; migrate a new one with --cluster, or leave RTB_CLICKHOUSE_CLUSTER empty", ErrLayout, s.db, engine, s.cluster)
	}
	return nil
}

// oneServer returns the store on connections to one server only (the
// first of its addresses that answers), for work whose statements must
// all reach the same server: a refresh of the window totals creates its
// staging table there, swaps its partitions in there and checks them
// there. The store's own pool may hold connections to several (after a
// failover it keeps those it opened to the next server), and hands them
// out in turn. On one server it is the store itself; close closes what
// oneServer opened.
func (s *Store) oneServer(ctx context.Context) (one *Store, close func(), err error) {
	if s.cluster == "" {
		return s, func() {}, nil
	}
	var errs []error
	for _, addr := range config.SplitList(s.cfg.ClickHouseAddr) {
		conn, err := openConn(ctx, s.cfg, []string{addr}, s.settings)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c := *s
		c.conn = conn
		return &c, func() { conn.Close() }, nil
	}
	return nil, nil, errors.Join(errs...)
}

// totalsAgreeWait bounds how long totalsAgreed waits for the servers to
// hold the same window totals.
const totalsAgreeWait = 30 * time.Second

// totalsAgreed returns the store on one server (oneServer) once every server
// that answers holds the same window totals of topics' windows [from, to):
// for reads whose results are stored or reported (anomaly scoring, verify,
// reconciliation), which must not take the totals before a swap a refresh
// on another server has just made for the totals. A refresh swaps on one
// server and the others fetch the swap a moment later; a server that is
// down is not waited for. It fails after totalsAgreeWait. On one server it
// is the store itself.
//
// (ClickHouse 18.16's SYSTEM SYNC REPLICA would wait for the whole
// replication queue, and for ever while a part it needs is on a server
// that is down.)
func (s *Store) totalsAgreed(ctx context.Context, topics []string, from, to time.Time) (one *Store, close func(), err error) {
	one, close, err = s.oneServer(ctx)
	if err != nil || s.cluster == "" {
		return one, close, err
	}
	q, args := s.totalsParts(topics, from, to)
	deadline := time.Now().Add(totalsAgreeWait)
	for {
		agreed, err := one.totalsAgree(ctx, q, args)
		if err != nil {
			close()
			return nil, nil, fmt.Errorf("compare the window totals of %s on the cluster's servers: %w", strings.Join(topics, ", "), err)
		}
		if agreed {
			return one, close, nil
		}
		if time.Now().After(deadline) {
			close()
			return nil, nil, fmt.Errorf("the window totals of %s from %s to %s differ between the servers of cluster %s after %s: "+
				"a server has not fetched a refresh's swap (see system.replication_queue on each server)",
				strings.Join(topics, ", "), from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), s.cluster, totalsAgreeWait)
		}
		select {
		case <-ctx.Done():
			close()
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// totalsParts is the query of the parts (and their rows) of the window
// totals of topics' windows [from, to), with its arguments.
func (s *Store) totalsParts(topics []string, from, to time.Time) (string, []any) {
	q := "SELECT _part, count() FROM " + s.Table("window_totals") + " WHERE topic IN (?" + strings.Repeat(", ?", len(topics)-1) +
		") AND window_start >= ? AND window_start < ? GROUP BY _part"
	return q, append(anys(topics), from.UTC(), to.UTC())
}

// totalsAgree says whether every server of the cluster that answers holds
// the same parts of the window totals as the server connected to, as q
// (totalsParts) reads them: each part's rows, over all of them, are its
// rows here times the number of servers.
func (s *Store) totalsAgree(ctx context.Context, q string, args []any) (bool, error) {
	here := map[string]uint64{}
	if err := partRows(ctx, s.conn, q, args, here); err != nil {
		return false, err
	}
	everywhere := map[string]uint64{}
	servers, err := s.onEveryServer(ctx, func(conn driver.Conn) error { return partRows(ctx, conn, q, args, everywhere) })
	if err != nil {
		return false, err
	}
	if len(here) != len(everywhere) {
		return false, nil
	}
	for p, n := range here {
		if everywhere[p] != n*uint64(servers) {
			return false, nil
		}
	}
	return true, nil
}

// partRows adds the rows of q (a part's name and a count) to rows, once
// all are read (nothing if the read fails).
func partRows(ctx context.Context, conn driver.Conn, q string, args []any, rows map[string]uint64) error {
	rs, err := conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	read := map[string]uint64{}
	for rs.Next() {
		var p string
		var n uint64
		if err := rs.Scan(&p, &n); err != nil {
			return err
		}
		read[p] += n
	}
	if err := rs.Err(); err != nil {
		return err
	}
	for p, n := range read {
		rows[p] += n
	}
	return nil
}

// anys is ss as query arguments.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}

// layoutTable records the shards a cluster's database was migrated on.
const layoutTable = "cluster_layout"

// shardLayout is the cluster's shards as rows are placed on them: each
// shard's number and weight, in order ("1:1,2:1"). A row goes to the shard
// its key's hash modulo the total weight picks, so with other shards or
// weights later versions of a row land on another shard than the earlier
// ones, where FINAL cannot replace them.
func shardLayout(hosts []clusterHost) string {
	var shards []string
	for i, h := range hosts {
		if i == 0 || h.Shard != hosts[i-1].Shard {
			shards = append(shards, fmt.Sprintf("%d:%d", h.Shard, h.Weight))
		}
	}
	return strings.Join(shards, ",")
}

// recordedShards is the layout the database was migrated on, from its
// cluster_layout table ("" when the table holds none yet: a migration under
// way).
func (s *Store) recordedShards(ctx context.Context) (string, error) {
	var shards string
	err := s.conn.QueryRow(ctx, "SELECT shards FROM "+s.Table(layoutTable)+" ORDER BY recorded_at LIMIT 1").Scan(&shards)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("ClickHouse database %s: read its shard layout: %w", s.db, err)
	}
	return shards, nil
}

// checkShards refuses a cluster whose shards (hosts, as the server
// connected to lists them) are not those the database was migrated on (its
// cluster_layout table exists). It returns the recorded and the current
// layout.
func (s *Store) checkShards(ctx context.Context, hosts []clusterHost) (recorded, now string, err error) {
	if recorded, err = s.recordedShards(ctx); err != nil {
		return "", "", err
	}
	now = shardLayout(hosts)
	if recorded != "" && now != recorded {
		return "", "", fmt.Errorf("%w: ClickHouse database %s was migrated on cluster %s with the shards %s (number:weight), and the server at %s "+
			"now sees %s: a row's shard is its key's hash modulo the shards' total weight, so later versions of the rows already "+
			"written would land on other shards than the earlier ones, where they cannot replace them (windows would count twice); "+
			"restore the layout in remote_servers (the same on every server), or migrate a new database on the new one and backfill "+
			"into it (README: ClickHouse cluster)", ErrLayout, s.db, s.cluster, recorded, s.cfg.ClickHouseAddr, now)
	}
	return recorded, now, nil
}

// recordShards records the cluster's shard layout in the database, once
// (Migrate, on a cluster): from then on every process checks it at start.
func (s *Store) recordShards(ctx context.Context) error {
	engine, err := rtbsql.ReplicatedEngine("MergeTree", s.db, layoutTable)
	if err != nil {
		return err
	}
	if err := s.conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.Table(layoutTable)+s.onCluster()+
		" (shards String, recorded_at DateTime) ENGINE = "+engine+" ORDER BY recorded_at"); err != nil {
		return fmt.Errorf("create %s: %w", layoutTable, err)
	}
	recorded, now, err := s.checkShards(ctx, s.servers.hosts)
	if err != nil || recorded != "" {
		return err
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table(layoutTable)+" (shards, recorded_at)")
	if err != nil {
		return fmt.Errorf("record the shard layout: %w", err)
	}
	defer b.Abort()
	if err := b.Append(now, time.Now().UTC()); err != nil {
		return fmt.Errorf("record the shard layout: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record the shard layout: %w", err)
	}
	return nil
}
