package sql

import (
	"fmt"
	"regexp"
	"strings"
)

// Target says where a statement runs.
type Target int

const (
	// Connected: on the server connected to (single node; on a cluster, an
	// ALTER of a table replicated on every node, which its replicas follow).
	Connected Target = iota
	// OnCluster: the statement says ON CLUSTER; the server runs it on every
	// host of the cluster.
	OnCluster
	// EachShard: on one host of every shard (an ALTER of a sharded table's
	// replicated local table; the shard's other replicas follow it).
	// ClickHouse 18.16 runs no MODIFY ORDER BY ON CLUSTER.
	EachShard
	// EachHost: on every host (an ALTER of a Distributed table, which is
	// not replicated).
	EachHost
)

// Statement is one step of a migration and where it runs.
type Statement struct {
	SQL    string
	Target Target
}

// Sharded are the tables split across the shards of a cluster, each with
// the key that picks a row's shard: every version of a row (a partial, a
// batch of the ledger, a dead letter, an archived event) has the same key,
// so a ReplacingMergeTree finds all of them on one shard, and a batch's
// partials, ledger rows, dead letters and archived events share a shard.
// The data is in <name>_local (Replicated engine) on each shard; <name> is
// the Distributed table that reads and writes go through.
var Sharded = map[string]string{
	"window_partials":     "cityHash64(topic, kafka_partition)",
	"partial_keys":        "cityHash64(topic, kafka_partition)",
	"batches":             "cityHash64(topic, kafka_partition)",
	"dead_letters":        "cityHash64(topic, kafka_partition)",
	"ad_events_raw":       "cityHash64(topic, kafka_partition)",
	"reconciliation_runs": "cityHash64(topic)",
	"topic_incarnations":  "cityHash64(topic)",
	"anomalies":           "cityHash64(topic)",
}

// Everywhere are the tables replicated on every host of a cluster (one
// replica set across the shards): the window totals, which are swapped in
// a partition at a time (REPLACE PARTITION works on a local table only),
// and the records of the migrations and of the shards (chstore).
var Everywhere = map[string]bool{"window_totals": true, "schema_migrations": true, "cluster_layout": true}

// LocalSuffix names a sharded table's local table.
const LocalSuffix = "_local"

// ReplicatedEngine is the Replicated form of a MergeTree family engine
// ("ReplacingMergeTree(version)", "MergeTree") for table db.name: its
// replicas share the ZooKeeper path, one per shard for sharded tables and
// one for the whole cluster for the others. Replica names ({replica}) must
// be unique in the cluster.
func ReplicatedEngine(engine, db, name string) (string, error) {
	m := engineRE.FindStringSubmatch(strings.TrimSpace(engine))
	if m == nil || !strings.HasSuffix(m[1], "MergeTree") {
		return "", fmt.Errorf("table %s.%s: engine %q has no replicated form", db, name, engine)
	}
	shard := "all"
	if _, ok := Sharded[name]; ok {
		shard = "{shard}"
	}
	args := fmt.Sprintf("'/clickhouse/tables/rtbpipe/%s/%s/%s', '{replica}'", shard, db, name)
	if a := strings.TrimSpace(m[2]); a != "" {
		args += ", " + a
	}
	return "Replicated" + m[1] + "(" + args + ")", nil
}

var (
	engineRE      = regexp.MustCompile(`^(\w+)(?:\((.*)\))?$`)
	createDBRE    = regexp.MustCompile(`(?is)^CREATE DATABASE IF NOT EXISTS (\w+)$`)
	createTableRE = regexp.MustCompile(`(?is)^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) (\(.*\))\s*ENGINE = (\w+(?:\([^)]*\))?)(.*)$`)
	createViewRE  = regexp.MustCompile(`(?is)^CREATE VIEW IF NOT EXISTS (\w+)\.(\w+) AS(\s.*)$`)
	dropTableRE   = regexp.MustCompile(`(?is)^DROP TABLE IF EXISTS (\w+)\.(\w+)$`)
	alterRE       = regexp.MustCompile(`(?is)^ALTER TABLE (\w+)\.(\w+) (.*)$`)
	orderByRE     = regexp.MustCompile(`(?is),\s*MODIFY ORDER BY \([^)]*\)\s*$`)
	insertRE      = regexp.MustCompile(`(?is)^INSERT INTO (\w+)\.(\w+) \([^)]*\)\s*SELECT\s`)
)

// OnClusterStatements rewrites one single-node statement for cluster: the
// same schema, with replicated engines, the sharded tables' Distributed
// tables, and each statement's target. A statement of a shape it does not
// know is an error, not a guess.
func OnClusterStatements(st, cluster string) ([]Statement, error) {
	st = strings.TrimSpace(st)
	on := " ON CLUSTER " + cluster
	if m := createDBRE.FindStringSubmatch(st); m != nil {
		return []Statement{{st + on, OnCluster}}, nil
	}
	if m := createTableRE.FindStringSubmatch(st); m != nil {
		db, name, cols, engine, rest := m[1], m[2], m[3], m[4], m[5]
		repl, err := ReplicatedEngine(engine, db, name)
		if err != nil {
			return nil, err
		}
		if key, ok := Sharded[name]; ok {
			local := name + LocalSuffix
			return []Statement{
				{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s %s ENGINE = %s%s", db, local, on, cols, repl, rest), OnCluster},
				{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s ENGINE = Distributed(%s, %s, %s, %s)",
					db, name, on, db, local, cluster, db, local, key), OnCluster},
			}, nil
		}
		if Everywhere[name] {
			return []Statement{{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s %s ENGINE = %s%s", db, name, on, cols, repl, rest), OnCluster}}, nil
		}
		return nil, fmt.Errorf("table %s.%s has no cluster layout (sql.Sharded or sql.Everywhere)", db, name)
	}
	if m := createViewRE.FindStringSubmatch(st); m != nil {
		return []Statement{{fmt.Sprintf("CREATE VIEW IF NOT EXISTS %s.%s%s AS%s", m[1], m[2], on, m[3]), OnCluster}}, nil
	}
	if m := dropTableRE.FindStringSubmatch(st); m != nil {
		if _, ok := Sharded[m[2]]; ok || Everywhere[m[2]] {
			return nil, fmt.Errorf("drop of table %s.%s: not supported on a cluster", m[1], m[2])
		}
		return []Statement{{st + on, OnCluster}}, nil
	}
	if m := alterRE.FindStringSubmatch(st); m != nil {
		db, name, change := m[1], m[2], m[3]
		if _, ok := Sharded[name]; ok {
			out := []Statement{{fmt.Sprintf("ALTER TABLE %s.%s%s %s", db, name, LocalSuffix, change), EachShard}}
			// The Distributed table gets the new columns (a sorting key is
			// the local table's).
			if dist := orderByRE.ReplaceAllString(change, ""); !strings.Contains(strings.ToUpper(dist), "ORDER BY") {
				out = append(out, Statement{fmt.Sprintf("ALTER TABLE %s.%s %s", db, name, dist), EachHost})
			} else {
				return nil, fmt.Errorf("alter of table %s.%s: cannot split %q for its Distributed table", db, name, change)
			}
			return out, nil
		}
		if Everywhere[name] {
			return []Statement{{st, Connected}}, nil
		}
		return nil, fmt.Errorf("alter of table %s.%s: it has no cluster layout", db, name)
	}
	if m := insertRE.FindStringSubmatch(st); m != nil {
		// Through the Distributed tables, on the server connected to: the
		// rows go to the shards their keys pick.
		if _, ok := Sharded[m[2]]; !ok {
			return nil, fmt.Errorf("insert into table %s.%s: not a sharded table", m[1], m[2])
		}
		return []Statement{{st, Connected}}, nil
	}
	return nil, fmt.Errorf("statement has no cluster form: %.80q", st)
}
