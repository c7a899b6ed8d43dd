// Command bench measures rtbpipe on the local stack, side by side with
// baselines measured in the same run (absolute numbers drift on shared
// machines; ratios do not):
//
//   - baseline: a bare sarama read of all the offsets (no parsing);
//   - rtbpipe: the same slots through the real workflows, activities and
//     worker into ClickHouse, raw archive off, then on;
//   - peer: ClickHouse's own Kafka engine with a materialized view doing the
//     same 1-minute aggregation on the same topic;
//   - live: the generator at a steady rate with the schedule running, and
//     per minute the delay from the minute's end until its slot is done.
//
// Results are checked exact against the generator's manifest. Run it with
// `make bench` (which starts the local stack).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/config"
)

type options struct {
	events       int
	partitions   int32
	minutes      int
	rounds       int
	parallelism  int
	liveRate     int
	liveDuration time.Duration
	liveGrace    time.Duration
	liveNoTail   bool
	skipPeer     bool
	skipBacklog  bool
	jsonPath     string
	keep         bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	cmd := &cobra.Command{
		Use:           "bench",
		Short:         "Measure rtbpipe against a bare Kafka read and ClickHouse's Kafka engine, and its live latency",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.events < 1 || o.partitions < 1 || o.minutes < 1 || o.rounds < 1 || o.parallelism < 0 || o.liveRate < 0 || o.liveDuration < 0 || o.liveGrace < 0 || o.liveGrace >= 50*time.Second {
				return fmt.Errorf("--events, --partitions, --minutes and --rounds must be positive, --live-rate and --live-duration not negative, --live-grace in [0s, 50s)")
			}
			return run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 5_000_000, "events to produce for the backlog runs")
	f.Int32Var(&o.partitions, "partitions", 4, "partitions of the bench topics")
	f.IntVar(&o.minutes, "minutes", 10, "past minutes of log time the backlog is spread over (1: one slot holds everything)")
	f.IntVar(&o.rounds, "rounds", 3, "rounds of the backlog runs (bare read, archive off, archive on, one after the other): "+
		"medians are reported, each run's ratio against the bare read of its own round")
	f.IntVar(&o.parallelism, "parallelism", 0, "slots the backfill runs at once (0: the backfill's default)")
	f.IntVar(&o.liveRate, "live-rate", 20_000, "events/s of the live latency run")
	f.DurationVar(&o.liveDuration, "live-duration", 10*time.Minute, "length of the live latency run (0: skip it)")
	f.DurationVar(&o.liveGrace, "live-grace", 0, "the live schedule's grace: after each minute's end, before its slot is planned")
	f.BoolVar(&o.liveNoTail, "live-no-tail", false, "live schedule without tailing: each slot runs after its minute + grace")
	f.BoolVar(&o.skipPeer, "skip-peer", false, "skip ClickHouse's Kafka engine")
	f.BoolVar(&o.skipBacklog, "skip-backlog", false, "skip the backlog runs (bare read, rtbpipe, peer): only the live run")
	f.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	f.BoolVar(&o.keep, "keep", false, "keep the bench databases (rtb_bench_<time>_<n>) afterwards")
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// Result is one measured line.
type Result struct {
	Name         string  `json:"name"`
	Events       int64   `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	VsBaseline   float64 `json:"vs_baseline,omitempty"`
	// Over the rounds: VsBaseline, EventsPerSec and Seconds are medians,
	// CPU the median, RSS the peak, Exact all of them.
	Rounds       []Round `json:"rounds,omitempty"`
	CPUSecPerMEv float64 `json:"cpu_sec_per_million_events,omitempty"`
	PeakRSSMiB   float64 `json:"peak_rss_mib,omitempty"`
	Exact        *bool   `json:"exact,omitempty"`
	Note         string  `json:"note,omitempty"`
}

// Round is one run of a line, in one round.
type Round struct {
	EventsPerSec float64 `json:"events_per_sec"`
	VsBaseline   float64 `json:"vs_baseline"`
}

// Report is everything bench prints.
type Report struct {
	Machine   string      `json:"machine"`
	When      time.Time   `json:"when"`
	Events    int         `json:"events"`
	Partition int32       `json:"partitions"`
	Minutes   int         `json:"minutes"`
	Rounds    int         `json:"rounds"`
	Results   []Result    `json:"results"`
	Live      *LiveResult `json:"live,omitempty"`
}

func run(ctx context.Context, o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := config.FromEnv()
	cfg.ClickHouseDatabase = fmt.Sprintf("rtb_bench_%d", time.Now().Unix()) // one per run: runs never collide
	cfg.TaskQueue = fmt.Sprintf("bench-%d", time.Now().Unix())
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := newBench(ctx, cfg, log, o)
	if err != nil {
		return err
	}
	defer b.close()
	rep := &Report{Machine: machine(), When: time.Now().UTC(), Events: o.events, Partition: o.partitions, Minutes: o.minutes, Rounds: o.rounds}

	if !o.skipBacklog {
		if rep.Results, err = b.backlog(ctx); err != nil {
			return err
		}
	}
	if o.liveDuration > 0 {
		if !o.skipBacklog {
			if err := b.newDatabase(ctx); err != nil {
				return err
			}
		}
		if rep.Live, err = b.live(ctx); err != nil {
			return err
		}
	}
	printReport(os.Stdout, rep)
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.jsonPath, err)
		}
	}
	return nil
}

// backlog produces one backlog, then runs the bare read and rtbpipe with
// the archive off and on, round after round (each rtbpipe run on a fresh
// database, compared with the bare read of its own round: the machine's
// speed drifts), then the peer once.
func (b *bench) backlog(ctx context.Context) ([]Result, error) {
	topic, man, err := b.produceBacklog(ctx)
	if err != nil {
		return nil, err
	}
	var runs [3][]Result // bare read, archive off, archive on
	for round := 1; round <= b.o.rounds; round++ {
		b.log.Info("round", "n", round, "of", b.o.rounds)
		base, err := b.bareRead(ctx, topic)
		if err != nil {
			return nil, err
		}
		runs[0] = append(runs[0], base)
		for i, archive := range []bool{false, true} {
			if err := b.newDatabase(ctx); err != nil {
				return nil, err
			}
			r, err := b.pipeline(ctx, topic, man, archive)
			if err != nil {
				return nil, err
			}
			r.VsBaseline = r.EventsPerSec / base.EventsPerSec
			runs[i+1] = append(runs[i+1], r)
		}
	}
	out := []Result{summarize(runs[0]), summarize(runs[1]), summarize(runs[2])}
	if !b.o.skipPeer {
		if err := b.newDatabase(ctx); err != nil {
			return nil, err
		}
		r, err := b.kafkaEngine(ctx, topic, man)
		if err != nil {
			return nil, err
		}
		r.VsBaseline = r.EventsPerSec / out[0].EventsPerSec
		out = append(out, r)
	}
	return out, nil
}

// summarize makes one line of a run's rounds: medians, the peak RSS, and
// exact only when every round was.
func summarize(rs []Result) Result {
	out := rs[0]
	col := func(f func(Result) float64) []float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return v
	}
	out.EventsPerSec = median(col(func(r Result) float64 { return r.EventsPerSec }))
	out.Seconds = median(col(func(r Result) float64 { return r.Seconds }))
	out.VsBaseline = median(col(func(r Result) float64 { return r.VsBaseline }))
	out.CPUSecPerMEv = median(col(func(r Result) float64 { return r.CPUSecPerMEv }))
	out.PeakRSSMiB = slices.Max(col(func(r Result) float64 { return r.PeakRSSMiB }))
	for _, r := range rs {
		out.Rounds = append(out.Rounds, Round{EventsPerSec: r.EventsPerSec, VsBaseline: r.VsBaseline})
		if r.Exact != nil && !*r.Exact {
			out.Exact = r.Exact
		}
	}
	return out
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func machine() string {
	host, _ := os.Hostname()
	out, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("%s, %s cores, stack on the same machine", host, string(trimNL(out)))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// buildBinaries builds the worker and generator into dir.
func buildBinaries(dir string) (worker, generator string, err error) {
	worker, generator = filepath.Join(dir, "worker"), filepath.Join(dir, "generator")
	for _, x := range [][2]string{{worker, "./worker"}, {generator, "./generator"}} {
		cmd := exec.Command("go", "build", "-o", x[0], x[1])
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("build %s: %w", x[1], err)
		}
	}
	return worker, generator, nil
}
