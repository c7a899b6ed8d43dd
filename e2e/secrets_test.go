package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
		bins[name] = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], "../"+name).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
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
