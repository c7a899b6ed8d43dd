package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// A mistyped subcommand of a command group is an error (exit 1), as a
// mistyped command is: a deploy script's `starter schedule crate` must not
// succeed having done nothing. The group alone still prints its help.
func TestMistypedSubcommandIsAnError(t *testing.T) {
	for _, args := range [][]string{{"schedule", "creat"}, {"topic", "adpot"}, {"completion", "bsh"}, {"statsu"}} {
		root := newRoot()
		var out bytes.Buffer
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), `unknown command "`+args[len(args)-1]+`"`) {
			t.Errorf("starter %s: %v, want unknown command\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	root := newRoot()
	var out bytes.Buffer
	root.SetArgs([]string{"schedule"})
	root.SetOut(&out)
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("starter schedule: %v, want its help\n%s", err, out.String())
	}
}

// setup checks the schedule's settings before it migrates, creates the
// topic and registers search attributes: a bad one must not leave half an
// installation. (ClickHouse is unreachable here: an error about it would
// mean the settings were checked too late.)
func TestSetupChecksTheScheduleFirst(t *testing.T) {
	refusedBeforeConnecting(t, "setup", []struct{ args, want string }{
		{"--grace -1s", "--grace"},
		{"--grace 20s --idle-wait 45s", "--idle-wait"},
		{"--reconcile-every -1s", "--reconcile-every"},
		{"--reconcile-every 30s", "--reconcile-every"},
	})
}

// refusedBeforeConnecting runs starter command with each case's flags and
// ClickHouse unreachable, and wants the error to be about the flag named.
func refusedBeforeConnecting(t *testing.T, command string, cases []struct{ args, want string }) {
	t.Helper()
	for _, c := range cases {
		root := newRoot()
		root.SetArgs(append([]string{command, "--clickhouse-addr", "127.0.0.1:1", "--kafka-brokers", "127.0.0.1:1",
			"--temporal-address", "127.0.0.1:1"}, strings.Fields(c.args)...)) // no server is reached, whatever a test's stack runs
		root.SetOut(io.Discard)
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want an error about %s", command, c.args, err, c.want)
		}
	}
}

// The dashboard's flags are checked before it connects to anything, and
// --redis-addr makes redis the cache, as its help says, from the flag as
// from RTB_REDIS_ADDR.
func TestDashboardFlags(t *testing.T) {
	refusedBeforeConnecting(t, "dashboard", []struct{ args, want string }{
		{"--cache bogus", "--cache"},
		{"--addr host", "--addr"},
		{"--addr 127.0.0.1:99999", "--addr"},
		{"--cache redis", "--redis-addr"},
	})
	for _, c := range []struct {
		kind      string
		kindSet   bool
		redis     string
		want, err string
	}{
		{"memory", false, "", "memory", ""},
		{"memory", false, "127.0.0.1:6379", "redis", ""}, // --redis-addr alone
		{"memory", true, "127.0.0.1:6379", "memory", ""}, // --cache memory says otherwise
		{"off", true, "", "off", ""},
		{"redis", true, "", "", "--redis-addr"},
	} {
		got, err := dashboardCache(c.kind, c.kindSet, c.redis)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("cache %q (set %v), redis %q: %q, %v; want %q, %q", c.kind, c.kindSet, c.redis, got, err, c.want, c.err)
		}
	}
}

// verify compares the manifest's topic: a --topic that names another is
// refused (it was ignored, and another topic verified).
func TestVerifyTopicIsTheManifests(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(p, []byte(`{"topic":"ad-events","produced":1,"valid":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	refusedBeforeConnecting(t, "verify", []struct{ args, want string }{
		{"--manifest " + p + " --topic other-topic", "--topic other-topic"},
		{"--manifest " + p + " --manifest " + p, "twice"},
	})
}

// A time that is not RFC 3339 is an error that shows one, not Go's layout
// ("2006-01-02T15:04:05Z07:00" reads as a time to check against).
func TestTimeFlagErrors(t *testing.T) {
	_, _, errRange := parseRange("garbage", "2026-11-24T10:00:00Z")
	_, errSlot := parseSlot("10:00")
	for _, err := range []error{errRange, errSlot} {
		if err == nil || strings.Contains(err.Error(), "2006-01-02T15:04:05Z07:00") || !strings.Contains(err.Error(), "like 2026-11-24T") {
			t.Errorf("error %v: want one that shows an RFC 3339 time, without Go's layout", err)
		}
	}
}

// Ranges, slots and limits that no run can take (a mistyped year, a
// minute before 1970, a range not yet begun) are refused before anything
// connects or starts.
func TestRangesAndLimitsRefusedBeforeConnecting(t *testing.T) {
	refusedBeforeConnecting(t, "backfill", []struct{ args, want string }{
		{"--from 2006-01-01T00:00:00Z --to 2026-01-01T00:00:00Z", "at most 31 days"},
		{"--from 2099-01-01T00:00:00Z --to 2099-01-01T01:00:00Z", "has ended yet"},
		{"--from 1969-12-31T23:00:00Z --to 1970-01-01T00:10:00Z", "1970"},
	})
	refusedBeforeConnecting(t, "reconcile", []struct{ args, want string }{
		{"--from 1969-12-31T23:00:00Z --to 1970-01-01T00:10:00Z", "1970"},
		{"--from 2099-01-01T00:00:00Z --to 2099-01-01T01:00:00Z", "has ended yet"},
		{"--from 2026-01-01T00:00:00Z --to 2026-11-01T00:00:00Z", "at most 31 days"},
	})
	refusedBeforeConnecting(t, "status", []struct{ args, want string }{
		{"--limit 1000000000", "--limit"}, // read as a negative range of seconds: "no slot has run yet"
	})
	refusedBeforeConnecting(t, "wait", []struct{ args, want string }{
		{"--timeout -1s", "--timeout"}, // "not processed after -1s"
	})
	refusedBeforeConnecting(t, "run-slot", []struct{ args, want string }{
		{"--slot 1969-12-31T23:00:00Z", "1970"},
		{"--slot 0001-01-01T00:00:00Z", "1970"},
	})
}

// A backfill covers the minutes that have ended: a --to in the future is
// cut to the current minute, and the command says so (the progress and
// the workflow's ID show the range it covers, not the one asked for).
func TestBackfillCutAtTheCurrentMinute(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 30, 20, 0, time.UTC)
	at := func(hm string) time.Time {
		v, err := time.Parse("2006-01-02T15:04", "2026-12-03T"+hm)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		from, to, want string
		cut            bool
		err            string
	}{
		{"10:00", "10:20", "10:20", false, ""},
		{"10:00", "10:30", "10:30", false, ""},
		{"10:00", "10:31", "10:30", true, ""},
		{"10:00", "23:00", "10:30", true, ""},
		{"10:29", "10:45", "10:30", true, ""},
		{"10:30", "10:45", "", false, "has ended yet"},
		{"11:00", "12:00", "", false, "has ended yet"},
	} {
		got, cut, err := endedAt(at(c.from), at(c.to), now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("[%s, %s): %v, want an error about %q", c.from, c.to, err, c.err)
			}
			continue
		}
		if err != nil || !got.Equal(at(c.want)) || cut != c.cut {
			t.Errorf("[%s, %s): to %s, cut %v, %v; want %s, %v", c.from, c.to, got.Format("15:04"), cut, err, c.want, c.cut)
		}
	}
}

// A misspelt RTB_* variable is a warning on stderr, with the name it likely
// meant, whatever the command.
func TestMisspeltVariableWarned(t *testing.T) {
	const misspelt = "RTB_CLICKHOUSE_ADRR" // misspelt on purpose
	t.Setenv(misspelt, "ch.example:9000")
	root := newRoot()
	var stderr strings.Builder
	root.SetArgs([]string{"status", "--clickhouse-addr", "127.0.0.1:1"})
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	_ = root.Execute()
	if !strings.Contains(stderr.String(), "warning: "+misspelt+" is set") || !strings.Contains(stderr.String(), "did you mean RTB_CLICKHOUSE_ADDR?") {
		t.Errorf("stderr %q does not warn of %s", stderr.String(), misspelt)
	}
}

// The dashboard's Kafka client: a failed connection is not retried on
// every request, but again after kafkaRetry, and kept once made.
func TestLazyKafkaRetries(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	calls := 0
	l := &lazyKafka{now: func() time.Time { return now }, connect: func(context.Context) (sarama.Client, error) {
		calls++
		return nil, errors.New("connection refused")
	}}
	ctx := context.Background()
	for range 3 {
		if _, err := l.client(ctx); err == nil {
			t.Fatal("connected to nothing")
		}
	}
	if calls != 1 {
		t.Errorf("%d connection attempts within %s, want 1", calls, kafkaRetry)
	}
	now = now.Add(kafkaRetry)
	if _, err := l.client(ctx); err == nil || calls != 2 {
		t.Errorf("after %s: %d attempts (%v), want a second", kafkaRetry, calls, err)
	}
}
