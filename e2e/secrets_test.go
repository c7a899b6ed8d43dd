package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A secret given to any command (the ClickHouse password, in its variable or
// its file) never shows in --help, nor in the errors and logs of a command
// that fails to connect. (It is never a flag, so the process list cannot
// show it either.)
func TestSecretsStaySecret(t *testing.T) {
	if os.Getenv("RTB_E2E") != "1" {
		t.Skip("e2e: RTB_E2E is not 1")
	}
	const canary = "s3cr3t-canary-7f1d"
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, name := range []string{"worker", "starter", "generator", "bench", "chaos"} {
		bins[name] = build(t, name)
	}
	unreachable := []string{"RTB_CLICKHOUSE_ADDR=127.0.0.1:1", "RTB_TEMPORAL_ADDRESS=127.0.0.1:1", "RTB_KAFKA_BROKERS=127.0.0.1:1",
		"RTB_WORKER_CONNECT_WAIT=1s"}
	runs := []struct {
		name string
		args []string
		fail bool // the command must fail (nothing is reachable)
	}{
		{"worker", []string{"--help"}, false},
		{"starter", []string{"--help"}, false},
		{"starter", []string{"status", "--help"}, false},
		{"generator", []string{"--help"}, false},
		{"bench", []string{"--help"}, false},
		{"chaos", []string{"--help"}, false},
		{"starter", []string{"status"}, true},
		{"starter", []string{"migrate"}, true},
		{"worker", nil, true},
	}
	for _, source := range []string{"RTB_CLICKHOUSE_PASSWORD=" + canary, "RTB_CLICKHOUSE_PASSWORD_FILE=" + file} {
		for _, r := range runs {
			cmd := exec.Command(bins[r.name], r.args...)
			cmd.Env = append(append(os.Environ(), unreachable...), source)
			out, err := cmd.CombinedOutput()
			what := r.name + " " + strings.Join(r.args, " ") + " with " + strings.SplitN(source, "=", 2)[0]
			if r.fail && err == nil {
				t.Errorf("%s: succeeded with nothing reachable", what)
			}
			if strings.Contains(string(out), canary) {
				t.Errorf("%s printed the password:\n%s", what, out)
			}
		}
	}
}

// A misspelt topic is an error that says so, and creates nothing: neither
// the local broker (auto-creation off, as on most clusters) nor rtbpipe's
// clients (which never ask for it) make a new, empty topic of it.
func TestMisspeltTopicIsAnError(t *testing.T) {
	e := getEnv(t)
	bin := build(t, "starter")
	topic := "ad-evnets-" + sanitize(t.Name())
	slot := pastBase(5).Format(time.RFC3339)
	for _, args := range [][]string{
		{"run-slot", "--topic", topic, "--slot", slot},
		{"backfill", "--topic", topic, "--from", slot, "--to", pastBase(3).Format(time.RFC3339)},
		{"reconcile", "--topic", topic, "--from", slot, "--to", pastBase(3).Format(time.RFC3339)},
		{"wait", "--topic", topic},
		{"schedule", "create", "--topic", topic}, // slots that would fail every minute
	} {
		out, err := e.starterCmd(bin, e.cfg.TaskQueue, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "topic "+topic+" does not exist") {
			t.Errorf("starter %s: %v\n%s\nwant an error saying the topic does not exist", args[0], err, out)
		}
	}
	if err := e.kafka.RefreshMetadata(topic); err == nil {
		if ps, _ := e.kafka.Partitions(topic); len(ps) > 0 {
			t.Fatalf("topic %s exists now, with %d partitions: reading it created it", topic, len(ps))
		}
	}
}
