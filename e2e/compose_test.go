package e2e

import (
	"os/exec"
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
		"RTB_KAFKA_BROKERS: kafka:9092", "RTB_CLICKHOUSE_ADDR: clickhouse:9000", "RTB_TEMPORAL_ADDRESS: temporal:7233",
		"KAFKA_PROCESS_ROLES: broker,controller", "- setup"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("docker-compose config lacks %q", want)
		}
	}
}
