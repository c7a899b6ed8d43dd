package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// --connect-wait 0 means one try, not a wait without end: the backoff
// library reads a zero maximum as "never stop".
func TestConnectWaitZeroTriesOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	calls := 0
	down := errors.New("connection refused")
	_, err := waitFor(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), "ClickHouse", 0, func() (int, error) {
		calls++
		return 0, down
	})
	if !errors.Is(err, down) || calls != 1 {
		t.Fatalf("waitFor within 0: %d tries, error %v; want one try and its error", calls, err)
	}
}

// Bad settings stop the worker before it connects to anything, naming the
// flag and its variable; a word that is no flag is one of them.
func TestWorkerSettings(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"bogus"}, "", `unexpected argument "bogus"`},
		{nil, "RTB_WORKER_READS=-1", "RTB_WORKER_READS"},
		{nil, "RTB_WORKER_ACTIVITIES=-3", "RTB_WORKER_ACTIVITIES"},
		{nil, "RTB_PPROF_ADDR=host", "RTB_PPROF_ADDR"},
		{nil, "RTB_METRICS_ADDR=host", "RTB_METRICS_ADDR"},
		{[]string{"--metrics-addr", "127.0.0.1:99999"}, "", "--metrics-addr"},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Setenv("RTB_CLICKHOUSE_ADDR", "127.0.0.1:1") // reached only if the settings pass
			t.Setenv("RTB_WORKER_CONNECT_WAIT", "0")
			if name, value, ok := strings.Cut(c.env, "="); ok {
				t.Setenv(name, value)
			}
			err := run(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("worker %v with %s: %v, want an error with %q", c.args, c.env, err, c.want)
			}
		})
	}
}

// A misspelt RTB_* variable is logged as a warning at start, with the name
// it likely meant: otherwise its setting stays at its default without a word.
func TestMisspeltVariableWarned(t *testing.T) {
	t.Setenv("RTB_CLICKHOUSE_ADDR", "127.0.0.1:1")
	t.Setenv("RTB_WORKER_CONNECT_WAIT", "0")
	const misspelt = "RTB_TEMPORAL_ADDR" // misspelt on purpose
	t.Setenv(misspelt, "temporal.example:7233")
	var log strings.Builder
	_ = run(context.Background(), slog.New(slog.NewTextHandler(&log, nil)), nil)
	if !strings.Contains(log.String(), misspelt+" is set") || !strings.Contains(log.String(), "did you mean RTB_TEMPORAL_ADDRESS?") {
		t.Errorf("log %q does not warn of %s", log.String(), misspelt)
	}
}
