// Package chstore is rtbpipe's ClickHouse layer: the connection, the schema
// migrations, the ledger of batches, the window partials and dead letters.
package chstore

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/rtbpipe/rtbpipe/internal/config"
	rtbsql "github.com/rtbpipe/rtbpipe/sql"
)

// Store is a ClickHouse connection bound to rtbpipe's database.
type Store struct {
	conn driver.Conn
	db   string
	// cluster names the ClickHouse cluster the tables are laid out on
	// (cluster.go); "" for a single server.
	cluster  string
	cfg      config.Config       // to reach the cluster's hosts (migrations)
	settings clickhouse.Settings // the connections' (oneServer's too)
	servers  *servers            // on a cluster: its servers, for reads that ask each
}

// Open connects over the native protocol (the only one ClickHouse 18.16
// speaks with clickhouse-go v2) and checks the server answers. With a
// cluster, it checks the cluster's layout too (cluster.go).
func Open(ctx context.Context, cfg config.Config) (*Store, error) {
	settings := clickhouse.Settings{
		// Push WHERE into the views read (the rates views group by window):
		// off by default in ClickHouse 18.16, on in current releases.
		"enable_optimize_predicate_expression": 1,
	}
	if cfg.ClickHouseCluster != "" {
		maps.Copy(settings, clusterSettings)
	}
	conn, err := openConn(ctx, cfg, config.SplitList(cfg.ClickHouseAddr), settings)
	if err != nil {
		return nil, err
	}
	s := &Store{conn: conn, db: cfg.ClickHouseDatabase, cluster: cfg.ClickHouseCluster, cfg: cfg, settings: settings}
	var hosts []clusterHost
	if s.cluster != "" {
		hosts, err = s.clusterHosts(ctx)
		if err == nil {
			s.servers = &servers{hosts: hosts}
			err = s.checkHostsAgree(ctx, hosts)
		}
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	if err := s.checkLayout(ctx, hosts); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// openConn opens a pool to the first of addrs that answers, and pings it.
func openConn(ctx context.Context, cfg config.Config, addrs []string, settings clickhouse.Settings) (driver.Conn, error) {
	where := strings.Join(addrs, ",")
	if where == cfg.ClickHouseAddr {
		where += " (" + config.ClickHouseAddrSetting + ")"
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:             addrs,
		Protocol:         clickhouse.Native,
		Auth:             clickhouse.Auth{Database: "default", Username: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()},
		TLS:              cfg.ClickHouseTLS,
		DialTimeout:      5 * time.Second,
		ReadTimeout:      time.Minute,
		MaxOpenConns:     64, // each of a worker's reads may hold one for its archive insert
		MaxIdleConns:     32, // archive inserts end every 2 s: keep their connections
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Settings:         settings,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to ClickHouse at %s: %w", where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to ClickHouse at %s: %w", where, err)
	}
	return conn, nil
}

// In is the same connection bound to another database (for tools that
// use several; closing the original closes both).
func (s *Store) In(db string) *Store {
	c := *s
	c.db = db
	return &c
}

// Close closes the connection pool.
func (s *Store) Close() error {
	if s.servers != nil {
		s.servers.close()
	}
	return s.conn.Close()
}

// Table qualifies a table name with the database.
func (s *Store) Table(name string) string { return s.db + "." + name }

// Database is the name of the store's database.
func (s *Store) Database() string { return s.db }

// Migrate applies the migrations not yet applied, in order, and returns the
// names of those it applied. Every statement is idempotent, so a migration
// interrupted half-way is simply applied again.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	on, engine := s.onCluster(), "MergeTree"
	if s.cluster != "" {
		var err error
		if engine, err = rtbsql.ReplicatedEngine(engine, s.db, "schema_migrations"); err != nil {
			return nil, err
		}
	}
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db+on); err != nil {
		return nil, fmt.Errorf("create database %s: %w", s.db, err)
	}
	if err := s.conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.Table("schema_migrations")+on+
		" (version UInt32, name String, applied_at DateTime) ENGINE = "+engine+" ORDER BY version"); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[uint32]bool{}
	rows, err := s.conn.Query(ctx, "SELECT version FROM "+s.Table("schema_migrations"))
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	migs, err := rtbsql.Migrations(s.db)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, m := range migs {
		if applied[uint32(m.Version)] {
			continue
		}
		sts, err := m.For(s.cluster)
		if err != nil {
			return done, err
		}
		for i, st := range sts {
			conns, err := s.onHosts(ctx, st.Target)
			if err != nil {
				return done, fmt.Errorf("migration %s, statement %d: %w", m.Name, i+1, err)
			}
			for _, c := range conns {
				if err := execMigration(ctx, c, st.SQL); err != nil {
					return done, fmt.Errorf("migration %s, statement %d: %w", m.Name, i+1, err)
				}
			}
		}
		if m.Version == windowTotalsMigration { // the totals of the windows written before them
			if _, err := s.RefreshAllTotals(ctx); err != nil {
				return done, fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if err := s.recordMigration(ctx, m); err != nil {
			return done, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		done = append(done, m.Name)
	}
	if s.cluster != "" {
		if err := s.recordShards(ctx); err != nil {
			return done, err
		}
	}
	return done, nil
}

// execMigration runs one statement on conn, unless it adds a column that
// is there already.
func execMigration(ctx context.Context, conn driver.Conn, st string) error {
	if done, err := columnAdded(ctx, conn, st); err != nil || done {
		return err
	}
	return conn.Exec(ctx, st)
}

// windowTotalsMigration creates the window totals: applying it fills them
// from the partials already written.
const windowTotalsMigration = 10

// addColumn matches "ALTER TABLE db.table ADD COLUMN name ...".
var addColumn = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ADD\s+COLUMN\s+(\w+)\s`)

// columnAdded says whether st adds a column that already exists, so that a
// migration interrupted after it can be applied again (ClickHouse 18.16 has
// no ADD COLUMN IF NOT EXISTS).
func columnAdded(ctx context.Context, conn driver.Conn, st string) (bool, error) {
	m := addColumn.FindStringSubmatch(st)
	if m == nil {
		return false, nil
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		m[1], m[2], m[3]).Scan(&n); err != nil {
		return false, fmt.Errorf("look up column %s.%s.%s: %w", m[1], m[2], m[3], err)
	}
	return n > 0, nil
}

// recordMigration inserts m into schema_migrations. Inserts go through
// batches: ClickHouse 18.16 does not answer an INSERT ... VALUES with bound
// parameters over the native protocol.
func (s *Store) recordMigration(ctx context.Context, m rtbsql.Migration) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("schema_migrations")+" (version, name, applied_at)")
	if err != nil {
		return err
	}
	defer b.Abort()
	if err := b.Append(uint32(m.Version), m.Name, time.Now().UTC()); err != nil {
		return err
	}
	return b.Send()
}
