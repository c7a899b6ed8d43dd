package e2e

import (
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
