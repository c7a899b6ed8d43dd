package sql

import (
	"strings"
	"testing"
)

// Every migration has a cluster form, and every table it creates has a
// layout: sharded ones a replicated local table and a Distributed table
// with their sharding key, the others a table replicated on every host.
func TestEveryMigrationHasAClusterForm(t *testing.T) {
	migs, err := Migrations("rtb")
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	for _, m := range migs {
		single, err := m.For("")
		if err != nil || len(single) != len(m.Statements) {
			t.Fatalf("%s single server: %d statements, %v", m.Name, len(single), err)
		}
		sts, err := m.For("rtbc")
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			switch st.Target {
			case OnCluster:
				if !strings.Contains(st.SQL, " ON CLUSTER rtbc") {
					t.Errorf("%s: %q runs on the cluster without ON CLUSTER", m.Name, st.SQL)
				}
			case EachShard:
				if !strings.HasPrefix(st.SQL, "ALTER TABLE rtb.") || !strings.Contains(st.SQL, LocalSuffix+" ") {
					t.Errorf("%s: %q on each shard is not an ALTER of a local table", m.Name, st.SQL)
				}
			case EachHost:
				if strings.Contains(st.SQL, "ORDER BY") {
					t.Errorf("%s: %q changes a Distributed table's sorting key", m.Name, st.SQL)
				}
			}
			if strings.Contains(st.SQL, "ENGINE = ReplacingMergeTree") || strings.Contains(st.SQL, "ENGINE = MergeTree") {
				t.Errorf("%s: %q is not replicated", m.Name, st.SQL)
			}
			if f := strings.Fields(st.SQL); strings.HasPrefix(st.SQL, "CREATE TABLE") {
				created[f[5]] = true
			}
		}
	}
	for name, key := range Sharded {
		if !created["rtb."+name+LocalSuffix] || !created["rtb."+name] {
			t.Errorf("sharded table %s: local or Distributed table not created", name)
		}
		if !strings.Contains(key, "topic") {
			t.Errorf("sharded table %s: key %s does not keep a topic's rows together", name, key)
		}
	}
	if !created["rtb.window_totals"] {
		t.Error("window totals not created")
	}
}

func TestClusterForms(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Statement
	}{
		{"CREATE TABLE IF NOT EXISTS db.batches (topic String, slot DateTime, version UInt64) ENGINE = ReplacingMergeTree(version)\nORDER BY (topic, slot)",
			[]Statement{
				{"CREATE TABLE IF NOT EXISTS db.batches_local ON CLUSTER c (topic String, slot DateTime, version UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/rtbpipe/{shard}/db/batches', '{replica}', version)\nORDER BY (topic, slot)", OnCluster},
				{"CREATE TABLE IF NOT EXISTS db.batches ON CLUSTER c AS db.batches_local ENGINE = Distributed(c, db, batches_local, cityHash64(topic, kafka_partition))", OnCluster},
			}},
		{"CREATE TABLE IF NOT EXISTS db.window_totals (topic String) ENGINE = MergeTree\nORDER BY topic",
			[]Statement{{"CREATE TABLE IF NOT EXISTS db.window_totals ON CLUSTER c (topic String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/rtbpipe/all/db/window_totals', '{replica}')\nORDER BY topic", OnCluster}}},
		{"ALTER TABLE db.window_partials ADD COLUMN sub UInt32,\n    MODIFY ORDER BY (window_start, sub)",
			[]Statement{
				{"ALTER TABLE db.window_partials_local ADD COLUMN sub UInt32,\n    MODIFY ORDER BY (window_start, sub)", EachShard},
				{"ALTER TABLE db.window_partials ADD COLUMN sub UInt32", EachHost},
			}},
		{"DROP TABLE IF EXISTS db.ad_events_aggregated", []Statement{{"DROP TABLE IF EXISTS db.ad_events_aggregated ON CLUSTER c", OnCluster}}},
		{"CREATE VIEW IF NOT EXISTS db.v AS\nSELECT 1", []Statement{{"CREATE VIEW IF NOT EXISTS db.v ON CLUSTER c AS\nSELECT 1", OnCluster}}},
	} {
		got, err := OnClusterStatements(c.in, "c")
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", c.in, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q:\n got %+v\nwant %+v", c.in, got[i], c.want[i])
			}
		}
	}
	for _, bad := range []string{
		"CREATE TABLE IF NOT EXISTS db.unknown (a String) ENGINE = MergeTree ORDER BY a",
		"DROP TABLE IF EXISTS db.window_partials",
		"ALTER TABLE db.unknown ADD COLUMN a String",
		"TRUNCATE TABLE db.batches",
		"CREATE TABLE IF NOT EXISTS db.batches (a String) ENGINE = Log",
	} {
		if got, err := OnClusterStatements(bad, "c"); err == nil {
			t.Errorf("%q: no error, got %+v", bad, got)
		}
	}
}
