package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rtbpipe/rtbpipe/generator/gen"
	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestManifestIsWhatParses: the manifest built from the records' metadata
// (as the Successes channel delivers them) equals what event.Parser makes
// of the records' values, and malformed records fail to parse.
func TestManifestIsWhatParses(t *testing.T) {
	g := gen.New(gen.Config{Seed: 99, LateFraction: 0.2, MaxLateness: 5 * time.Minute, MalformedFraction: 0.05})
	tl := newTally()
	malformed := &recordMeta{}
	var p event.Parser
	parsed := agg.Table{}
	var valid, bad, late int64
	start := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	for i := range 100_000 {
		r := g.Next(start.Add(time.Duration(i) * 3 * time.Millisecond))
		m := newMessage("t", int32(i%4), &r, malformed)
		tl.ack(m) // as if acknowledged
		ev, err := p.Parse(r.Value)
		if !r.Valid {
			bad++
			if err == nil {
				t.Fatalf("malformed record (%s) parses: %s", r.Defect, r.Value)
			}
			continue
		}
		if err != nil {
			t.Fatalf("valid record fails: %v: %s", err, r.Value)
		}
		valid++
		if ev.Window() < event.WindowOf(m.Timestamp) {
			late++
		}
		parsed.Add(&ev)
	}
	m := tl.manifest("t", 4, start, start)
	if m.Produced != 100_000 || m.Valid != valid || m.Malformed != bad || m.Late != late || m.Failed != 0 {
		t.Errorf("manifest counts %+v; parsed %d valid, %d malformed, %d late", m, valid, bad, late)
	}
	if late == 0 || bad == 0 {
		t.Errorf("no late (%d) or malformed (%d) records", late, bad)
	}
	if d := agg.Diff(parsed, m.Table()); len(d) > 0 {
		t.Fatalf("%d differences, first: %v", len(d), d[0])
	}
}

// startKafka starts an in-process Kafka-protocol broker (kfake).
func startKafka(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// parseArgs runs the command line up to validation and returns the options.
func parseArgs(args ...string) (options, error) {
	var got options
	cmd := newCommand(func(_ context.Context, o options) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	return got, err
}

func mustParse(t *testing.T, args ...string) options {
	t.Helper()
	o, err := parseArgs(args...)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestFlags(t *testing.T) {
	o := mustParse(t, "--kafka-brokers", "a:1,b:2", "--topic", "x", "--rate", "20000", "--count", "5",
		"--duration", "1m", "--seed", "0", "--late-fraction", "0.1", "--malformed-fraction", "1",
		"--start", "2026-11-24T21:00:00.5+09:00", "--compression", "LZ4")
	if !reflect.DeepEqual(o.brokers, []string{"a:1", "b:2"}) || o.topic != "x" || o.rate != 20000 || o.count != 5 ||
		o.duration != time.Minute || !o.seedSet || o.seed != 0 || o.late != 0.1 || o.malformed != 1 ||
		!o.startTime.Equal(time.Date(2026, 11, 24, 12, 0, 0, 5e8, time.UTC)) || o.codec != sarama.CompressionLZ4 {
		t.Errorf("parsed %+v", o)
	}
	d := mustParse(t, "--kafka-brokers", "k:9092")
	if d.rate != 80 || d.partitions != 4 || d.maxLateness != 5*time.Minute || d.seedSet || !d.startTime.IsZero() ||
		d.codec != sarama.CompressionNone || d.count != 0 || d.duration != 0 {
		t.Errorf("defaults %+v", d)
	}

	for _, c := range []struct{ args, want string }{
		{"--rate -1", "--rate -1: must be a number >= 0"},
		{"--rate NaN", "--rate NaN"},
		{"--late-fraction 1.5", "--late-fraction 1.5: must be in [0, 1]"},
		{"--malformed-fraction -0.1", "--malformed-fraction -0.1: must be in [0, 1]"},
		{"--late-fraction 0.1 --max-lateness 0s", "--max-lateness"},
		{"--start yesterday", `--start "yesterday": not an RFC 3339 time`},
		{"--start 2026-11-24T21:00:00Z --rate 0", "--start needs --rate > 0"},
		{"--count -3", "--count -3"},
		{"--duration -1s", "--duration -1s"},
		{"--partitions 0", "--partitions 0"},
		{"--batch 0", "--batch 0"},
		{"--compression brotli", `--compression "brotli"`},
		{"--topic  ", "topic is empty (RTB_KAFKA_TOPIC, --topic)"},
		{"--rate fast", "invalid argument"},
		{"--manifest /nonexistent/dir/run.json", "--manifest /nonexistent/dir/run.json"}, // found before producing, not after
	} {
		_, err := parseArgs(append([]string{"--kafka-brokers", "k:1"}, strings.Fields(c.args)...)...)
		if c.args == "--topic  " {
			_, err = parseArgs("--kafka-brokers", "k:1", "--topic", " ")
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestUnreachableBroker(t *testing.T) {
	o := mustParse(t, "--kafka-brokers", "127.0.0.1:1", "--count", "1")
	_, err := run(context.Background(), o, quietLog())
	if err == nil || !strings.Contains(err.Error(), "connect to Kafka at [127.0.0.1:1] (RTB_KAFKA_BROKERS, --kafka-brokers): ") {
		t.Fatalf("error %v", err)
	}
}

// TestSynthetic produces past minutes with late and malformed records and
// checks the topic against the manifest, record by record.
func TestSynthetic(t *testing.T) {
	_, brokers := startKafka(t)
	path := filepath.Join(t.TempDir(), "m.json")
	const n, rate = 30_000, 100.0
	o := mustParse(t, "--kafka-brokers", brokers[0], "--topic", "synth", "--partitions", "3", "--count", strconv.Itoa(n),
		"--rate", "100", "--start", "2026-11-24T21:00:00Z", "--seed", "5", "--late-fraction", "0.1",
		"--malformed-fraction", "0.05", "--manifest", path, "--compression", "lz4")
	m, err := run(context.Background(), o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if m.Produced != n || m.Failed != 0 || m.Partitions != 3 || m.Late == 0 || m.Malformed == 0 {
		t.Fatalf("manifest %+v", *m)
	}
	onDisk, err := manifest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := agg.Diff(m.Table(), onDisk.Table()); len(d) > 0 || onDisk.Produced != m.Produced || onDisk.Late != m.Late {
		t.Errorf("manifest file differs from the run's manifest")
	}
	// 30,000 events at 100/s: 5 minutes, plus up to 5 minutes of lateness.
	if w := m.Table().Windows(); len(w) < 5 || len(w) > 10 || w[len(w)-1] != o.startTime.Unix()+4*60 {
		t.Errorf("windows %v", w)
	}
	c := readTopic(t, brokers, "synth")
	checkManifest(t, m, c)
	last := o.startTime.Add(time.Duration(float64(n-1) * 1e9 / rate)).Truncate(time.Millisecond)
	if !c.minTime.Equal(o.startTime) || !c.maxTime.Equal(last) {
		t.Errorf("record timestamps %v .. %v, want %v .. %v", c.minTime, c.maxTime, o.startTime, last)
	}

	// The same seed and start give the same records.
	o.topic, o.manifest = "synth2", ""
	m2, err := run(context.Background(), o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if d := agg.Diff(m.Table(), m2.Table()); len(d) > 0 || m2.Late != m.Late || m2.Malformed != m.Malformed {
		t.Errorf("same seed, different manifest: %v", d)
	}
}

// TestRealTime paces by the wall clock for a duration; log times are the
// wall clock and late events are late relative to them.
func TestRealTime(t *testing.T) {
	_, brokers := startKafka(t)
	o := mustParse(t, "--kafka-brokers", brokers[0], "--topic", "rt", "--rate", "2000", "--duration", "1500ms",
		"--late-fraction", "0.2", "--max-lateness", "2m")
	before := time.Now()
	m, err := run(context.Background(), o, quietLog())
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if m.Produced != 3000 { // the schedule is exact: events due in [0, 1.5s)
		t.Errorf("produced %d in 1.5 s at 2000/s, want 3000", m.Produced)
	}
	c := readTopic(t, brokers, "rt")
	checkManifest(t, m, c)
	if c.minTime.Before(before.Truncate(time.Millisecond)) || c.maxTime.After(after) {
		t.Errorf("record timestamps %v .. %v outside the run %v .. %v", c.minTime, c.maxTime, before, after)
	}
}

// TestInterrupt: a run without a limit stops on the context (SIGINT), drains
// the producer and still writes a manifest that matches the topic.
func TestInterrupt(t *testing.T) {
	_, brokers := startKafka(t)
	path := filepath.Join(t.TempDir(), "m.json")
	o := mustParse(t, "--kafka-brokers", brokers[0], "--topic", "stop", "--rate", "0", "--manifest", path,
		"--malformed-fraction", "0.01")
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	m, err := run(ctx, o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if m.Produced == 0 {
		t.Fatal("nothing produced")
	}
	if _, err := manifest.Read(path); err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, readTopic(t, brokers, "stop"))
	t.Logf("produced %d records before the stop", m.Produced)
}

// TestFailedRecords: records the broker rejects are counted as failed, not
// in the rows, and the run reports an error.
func TestFailedRecords(t *testing.T) {
	c, brokers := startKafka(t)
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "fail", Partitions: []int32{1},
		Err: kerr.PolicyViolation, Count: 3})
	o := mustParse(t, "--kafka-brokers", brokers[0], "--topic", "fail", "--partitions", "2", "--rate", "0",
		"--count", "20000", "--batch", "100")
	m, err := run(context.Background(), o, quietLog())
	if err == nil || !strings.Contains(err.Error(), "records were not acknowledged by Kafka") {
		t.Fatalf("error %v", err)
	}
	if h.Hits() == 0 || m.Failed == 0 || m.Failed+m.Produced != 20000 {
		t.Fatalf("fault hits %d; manifest: %d produced, %d failed", h.Hits(), m.Produced, m.Failed)
	}
	checkManifest(t, m, readTopic(t, brokers, "fail"))
	t.Logf("%v", err)
}

func TestPacer(t *testing.T) {
	for _, rate := range []float64{80, 20_000} {
		const span = 700 * time.Millisecond
		start := time.Now()
		p := newPacer(rate, start, quietLog())
		ctx := context.Background()
		n := int64(0)
		for ; ; n++ {
			due := p.due(n)
			if !due.Before(start.Add(span)) {
				break
			}
			p.wait(ctx, n, due)
			if lag := time.Since(due); lag < -minSleep {
				t.Fatalf("rate %v: event %d went %v early", rate, n, -lag)
			}
		}
		elapsed := time.Since(start)
		want := math.Ceil(rate * span.Seconds())
		if float64(n) != want || elapsed < span-time.Duration(1e9/rate)-minSleep || elapsed > span+250*time.Millisecond {
			t.Errorf("rate %v: %d events in %v, want %v in ~%v", rate, n, elapsed, want, span)
		}
	}
}

func BenchmarkNewMessage(b *testing.B) {
	g := gen.New(gen.Config{Seed: 1})
	tl := newTally()
	md := &recordMeta{}
	t0 := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := g.Next(t0.Add(time.Duration(i) * time.Microsecond))
		tl.ack(newMessage("t", 0, &r, md))
	}
}

// TestBrokerDies: when the broker goes away, the records in flight fail (or
// are given up after --drain-timeout), the run ends in bounded time with an
// error, and the manifest still accounts for every record.
func TestBrokerDies(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	o := mustParse(t, "--kafka-brokers", c.ListenAddrs()[0], "--topic", "dies", "--rate", "2000",
		"--drain-timeout", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(500*time.Millisecond, c.Close)
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	m, err := run(ctx, o, quietLog())
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "Kafka") {
		t.Fatalf("error %v", err)
	}
	if m.Produced == 0 || m.Failed == 0 {
		t.Errorf("manifest: %d produced, %d failed", m.Produced, m.Failed)
	}
	if elapsed > 6*time.Second {
		t.Errorf("run took %v", elapsed)
	}
	t.Logf("%v after %v: %d produced, %d failed", err, elapsed.Round(time.Millisecond), m.Produced, m.Failed)
}

// TestUntil stops before a wall-clock time: no record is logged at or
// after it (the demo ends its live run on a whole minute).
func TestUntil(t *testing.T) {
	_, brokers := startKafka(t)
	until := time.Now().Add(800 * time.Millisecond)
	o := mustParse(t, "--kafka-brokers", brokers[0], "--topic", "until", "--rate", "3000", "--until", until.Format(time.RFC3339Nano))
	m, err := run(context.Background(), o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	c := readTopic(t, brokers, "until")
	checkManifest(t, m, c)
	if m.Produced < 1000 || !c.maxTime.Before(until.Truncate(time.Millisecond).Add(time.Millisecond)) {
		t.Errorf("%d records, the last logged at %v; want them all before %v", m.Produced, c.maxTime, until)
	}
	if _, err := parseArgs("--kafka-brokers", brokers[0], "--until", "soon"); err == nil {
		t.Error("--until soon was accepted")
	}
}
