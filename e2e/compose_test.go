package e2e

import (
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docker-compose.yml cannot run here (no Docker engine), but it must stay a
// valid file that wires the same services and settings as the local stack.
func TestComposeConfig(t *testing.T) {
	getEnv(t)
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed (make test installs Debian's package)")
	}
	out, err := exec.Command(bin, "-f", "../docker-compose.yml", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	cfg := string(out)
	for _, want := range []string{"kafka:", "clickhouse:", "temporal:", "temporal-ui:", "worker:", "generator:", "starter:",
		"temporal-schema:", "temporal-namespace:", "prometheus:", "grafana:", "dashboard:", "RTB_KAFKA_BROKERS: kafka:9092", "RTB_CLICKHOUSE_ADDR: clickhouse:9000",
		"RTB_TEMPORAL_ADDRESS: temporal:7233", "KAFKA_PROCESS_ROLES: broker,controller", "- setup",
		"KAFKA_LOG_DIRS: /var/lib/kafka/data", "/var/lib/kafka/data", "RTB_TEMPORAL_UI: http://localhost:8080"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("docker-compose config lacks %q", want)
		}
	}
	if strings.Contains(cfg, "auto-setup") {
		t.Error("docker-compose still uses Temporal's deprecated auto-setup image")
	}
	if n := strings.Count(cfg, "build:"); n != 1 {
		t.Errorf("%d services build the image; one builds it, the others use it", n)
	}

	// Every RTB_* variable compose sets is one the code reads, and the
	// connection settings the code reads are all set.
	set := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(RTB_[A-Z0-9_]+):`).FindAllStringSubmatch(cfg, -1) {
		set[m[1]] = true
	}
	read := map[string]bool{}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".local" || d.Name() == ".git" || d.Name() == "e2e") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`"(RTB_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(b), -1) {
			read[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for v := range set {
		if !read[v] {
			t.Errorf("docker-compose sets %s, which no command reads", v)
		}
	}
	for _, v := range []string{"RTB_KAFKA_BROKERS", "RTB_KAFKA_TOPIC", "RTB_CLICKHOUSE_ADDR", "RTB_CLICKHOUSE_DATABASE",
		"RTB_CLICKHOUSE_USER", "RTB_TEMPORAL_ADDRESS", "RTB_TEMPORAL_NAMESPACE", "RTB_TASK_QUEUE"} {
		if !read[v] {
			t.Errorf("the code no longer reads %s: update this test", v)
		}
		if !set[v] {
			t.Errorf("docker-compose does not set %s", v)
		}
	}
	if _, err := os.Stat("../.dockerignore"); err != nil {
		t.Errorf("no .dockerignore: %v", err)
	}
}

// The compose profile "cluster" lays out the same cluster as the local
// stack's: cluster "rtbpipe" of two shards, one server each, whose hosts are
// the profile's services, with unique macros, and Keeper where the servers
// look for it.
func TestComposeClusterProfile(t *testing.T) {
	getEnv(t)
	cmd := exec.Command("docker-compose", "-f", "../docker-compose.yml", "--profile", "cluster", "config")
	cmd.Env = append(os.Environ(), "RTB_CLICKHOUSE_ADDR=clickhouse-1:9000,clickhouse-2:9000", "RTB_CLICKHOUSE_CLUSTER=rtbpipe",
		"RTB_GRAFANA_CLICKHOUSE_HOST=clickhouse-1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose --profile cluster config: %v\n%s", err, out)
	}
	cfg := string(out)
	for _, want := range []string{"keeper:", "clickhouse-1:", "clickhouse-2:", "RTB_CLICKHOUSE_CLUSTER: rtbpipe",
		"RTB_CLICKHOUSE_ADDR: clickhouse-1:9000,clickhouse-2:9000", "CLICKHOUSE_HOST: clickhouse-1",
		"/etc/clickhouse-keeper/keeper_config.xml", "/etc/clickhouse-server/config.d/cluster.xml", "/etc/clickhouse-server/config.d/macros.xml"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("docker-compose --profile cluster config lacks %q", want)
		}
	}

	type server struct {
		Macros struct {
			Shard   string `xml:"shard"`
			Replica string `xml:"replica"`
		} `xml:"macros"`
		ZooKeeper []struct {
			Host string `xml:"host"`
			Port string `xml:"port"`
		} `xml:"zookeeper>node"`
		SessionTimeoutMs int `xml:"zookeeper>session_timeout_ms"`
		Clusters         struct {
			Rtbpipe struct {
				Shards []struct {
					Internal bool `xml:"internal_replication"`
					Replicas []struct {
						Host string `xml:"host"`
						Port string `xml:"port"`
					} `xml:"replica"`
				} `xml:"shard"`
			} `xml:"rtbpipe"`
		} `xml:"remote_servers"`
		Keeper struct {
			Port             string `xml:"tcp_port"`
			SessionTimeoutMs int    `xml:"coordination_settings>session_timeout_ms"`
		} `xml:"keeper_server"`
	}
	read := func(name string) server {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		var s server
		if err := xml.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s
	}
	compose, local := read("deploy/clickhouse-cluster/cluster.xml"), read("deploy/local/clickhouse/cluster.xml")
	for name, c := range map[string]server{"compose": compose, "local stack": local} {
		shards := c.Clusters.Rtbpipe.Shards
		if len(shards) != 2 {
			t.Fatalf("%s: cluster rtbpipe has %d shards, want 2", name, len(shards))
		}
		for i, s := range shards {
			if len(s.Replicas) != 1 || !s.Internal {
				t.Errorf("%s: shard %d has %d replicas (internal_replication %v), want one", name, i+1, len(s.Replicas), s.Internal)
			}
		}
	}
	for i, s := range compose.Clusters.Rtbpipe.Shards {
		host := fmt.Sprintf("clickhouse-%d", i+1)
		if s.Replicas[0].Host != host || s.Replicas[0].Port != "9000" {
			t.Errorf("compose shard %d is %s:%s, want the service %s:9000", i+1, s.Replicas[0].Host, s.Replicas[0].Port, host)
		}
		m := read(fmt.Sprintf("deploy/clickhouse-cluster/macros-%d.xml", i+1)).Macros
		if m.Shard != fmt.Sprintf("0%d", i+1) || m.Replica != fmt.Sprintf("ch%d", i+1) {
			t.Errorf("compose server %d: macros shard %q replica %q", i+1, m.Shard, m.Replica)
		}
	}
	keeper := read("deploy/clickhouse-cluster/keeper.xml")
	if len(compose.ZooKeeper) != 1 || compose.ZooKeeper[0].Host != "keeper" || compose.ZooKeeper[0].Port != keeper.Keeper.Port {
		t.Errorf("compose servers look for Keeper at %+v; Keeper listens on keeper:%s", compose.ZooKeeper, keeper.Keeper.Port)
	}
	// A server killed and started again takes writes once its old ZooKeeper
	// session has expired: both stacks wait the same (README, ClickHouse
	// cluster), within the longest session Keeper grants.
	if compose.SessionTimeoutMs == 0 || compose.SessionTimeoutMs != local.SessionTimeoutMs || compose.SessionTimeoutMs > keeper.Keeper.SessionTimeoutMs {
		t.Errorf("ZooKeeper session timeout: compose %d ms, local stack %d ms, Keeper's longest %d ms; want the same, within Keeper's",
			compose.SessionTimeoutMs, local.SessionTimeoutMs, keeper.Keeper.SessionTimeoutMs)
	}
}
