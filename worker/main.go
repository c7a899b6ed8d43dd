// Command worker runs rtbpipe's Temporal worker: it serves the slot,
// planner and scheduled workflows and their activities on one task queue,
// for any topic.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // profiles on RTB_PPROF_ADDR only
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v4"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/workflows"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(context.Background(), logger, os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return // --help: the usage is printed
		}
		logger.Error("worker failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, args []string) error {
	for _, w := range config.UnknownVariables(os.Environ()) {
		logger.Warn(w)
	}
	cfg := config.FromEnv()
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	cfg.BindFlags(fs)
	concurrency, err := strconv.Atoi(config.Env("RTB_WORKER_ACTIVITIES", strconv.Itoa(DefaultActivities)))
	if err != nil {
		return fmt.Errorf("RTB_WORKER_ACTIVITIES: %w", err)
	}
	fs.IntVar(&concurrency, "activities", concurrency, "activities run at once by this worker (env RTB_WORKER_ACTIVITIES); unset: 32, "+
		"or 2 × the partitions of the topics it serves + 4 if more; set below that, the worker refuses to start")
	reads, err := strconv.Atoi(config.Env("RTB_WORKER_READS", "0"))
	if err != nil {
		return fmt.Errorf("RTB_WORKER_READS: %w", err)
	}
	fs.IntVar(&reads, "reads", reads, "batches that read a backlog at once, tailing batches not counted (0: 16, or 8 with the raw archive on) (env RTB_WORKER_READS)")
	archive, err := strconv.ParseBool(config.Env("RTB_RAW_ARCHIVE", "true"))
	if err != nil {
		return fmt.Errorf("RTB_RAW_ARCHIVE: want true or false: %w", err)
	}
	fs.BoolVar(&archive, "raw-archive", archive, "write every valid event to the raw archive rtb.ad_events_raw (env RTB_RAW_ARCHIVE)")
	beat, err := time.ParseDuration(config.Env("RTB_WORKER_HEARTBEAT", "2s"))
	if err != nil {
		return fmt.Errorf("RTB_WORKER_HEARTBEAT: want a duration like 2s: %w", err)
	}
	fs.DurationVar(&beat, "heartbeat", beat, "how often a batch stores what it read and heartbeats its progress, from which a retry resumes (env RTB_WORKER_HEARTBEAT)")
	maxOffsets, err := strconv.ParseInt(config.Env("RTB_MAX_BATCH_OFFSETS", strconv.Itoa(activities.DefaultMaxBatchOffsets)), 10, 64)
	if err != nil {
		return fmt.Errorf("RTB_MAX_BATCH_OFFSETS: want a number of offsets: %w", err)
	}
	fs.Int64Var(&maxOffsets, "max-batch-offsets", maxOffsets, "split a slot's plan of a partition larger than this into sub-batches that run in parallel (env RTB_MAX_BATCH_OFFSETS)")
	metricsAddr := config.Env("RTB_METRICS_ADDR", "")
	fs.StringVar(&metricsAddr, "metrics-addr", metricsAddr, "serve Prometheus metrics at host:port/metrics (env RTB_METRICS_ADDR; empty: none)")
	connectWait, err := time.ParseDuration(config.Env("RTB_WORKER_CONNECT_WAIT", "2m"))
	if err != nil {
		return fmt.Errorf("RTB_WORKER_CONNECT_WAIT: want a duration like 2m: %w", err)
	}
	fs.DurationVar(&connectWait, "connect-wait", connectWait, "at start, how long to wait for a server that cannot be reached (restarting) before giving up; 0: try once (env RTB_WORKER_CONNECT_WAIT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: the worker takes flags only (worker --help)", fs.Arg(0))
	}
	pprofAddr := config.Env("RTB_PPROF_ADDR", "")
	for _, a := range []struct{ name, addr string }{{"--metrics-addr (RTB_METRICS_ADDR)", metricsAddr}, {"RTB_PPROF_ADDR", pprofAddr}} {
		if a.addr == "" {
			continue
		}
		if err := config.CheckListenAddr(a.addr); err != nil {
			return fmt.Errorf("%s %q: %w", a.name, a.addr, err)
		}
	}
	if connectWait < 0 {
		return fmt.Errorf("--connect-wait (RTB_WORKER_CONNECT_WAIT) must not be negative, got %s (0: try once)", connectWait)
	}
	if maxOffsets < 1000 {
		return fmt.Errorf("--max-batch-offsets (RTB_MAX_BATCH_OFFSETS) must be at least 1000, got %d", maxOffsets)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if concurrency < 1 {
		return fmt.Errorf("--activities (RTB_WORKER_ACTIVITIES) must be at least 1, got %d", concurrency)
	}
	if beat <= 0 {
		return fmt.Errorf("--heartbeat (RTB_WORKER_HEARTBEAT) must be positive, got %s", beat)
	}
	if reads == 0 {
		// A read with the archive on also holds its pending archive rows:
		// fewer at once keep the worker under its memory limit, where the GC
		// would otherwise take the CPU the reads need.
		reads = 16
		if archive {
			reads = 8
		}
	}
	if reads < 1 {
		return fmt.Errorf("--reads (RTB_WORKER_READS) must be at least 1, got %d", reads)
	}

	if os.Getenv("GOGC") == "" {
		// Under that limit, collect when the heap has grown 4x, not 2x: a
		// read allocates fast but keeps little, and the default spent a
		// quarter of the worker's CPU in the GC (0.92 CPU s per M events
		// with the archive off, 0.67 with this). GOGC overrides it.
		debug.SetGCPercent(400)
	}
	if pprofAddr != "" {
		go func() {
			logger.Info("pprof listening", "addr", pprofAddr)
			if err := http.ListenAndServe(pprofAddr, nil); err != nil {
				logger.Error("pprof", "err", err)
			}
		}()
	}
	store, err := waitFor(ctx, logger, "ClickHouse", connectWait, func() (*chstore.Store, error) {
		s, err := connect.ClickHouse(ctx, cfg)
		if errors.Is(err, chstore.ErrLayout) {
			return nil, backoff.Permanent(err) // a setting to fix, not a server to wait for
		}
		return s, err
	})
	if err != nil {
		return err
	}
	defer store.Close()
	kc, err := waitFor(ctx, logger, "Kafka", connectWait, func() (sarama.Client, error) { return connect.Kafka(ctx, cfg, "rtbpipe-worker") })
	if err != nil {
		return err
	}
	defer kc.Close()
	var handler client.MetricsHandler
	if metricsAddr != "" {
		ms, err := serveMetrics(metricsAddr, logger)
		if err != nil {
			return err
		}
		defer ms.Close(context.Background())
		handler = ms.Handler
	}
	tc, err := waitFor(ctx, logger, "Temporal", connectWait, func() (client.Client, error) {
		return connect.TemporalWithMetrics(ctx, cfg, logger, handler)
	})
	if err != nil {
		return err
	}
	defer tc.Close()
	// The topics it serves: those with a slot schedule.
	served, err := servedPartitions(ctx, tc, kc)
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the GC works harder near it, so that the worker's
		// memory stays flat however large a slot is; room for the tails of
		// the partitions it serves. GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(memoryLimit(served))
	}
	if concurrency, err = activitySlots(fs.Changed("activities") || os.Getenv("RTB_WORKER_ACTIVITIES") != "", concurrency, served); err != nil {
		return err
	}

	w := worker.New(tc, cfg.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: concurrency,
		WorkerStopTimeout:                  30 * time.Second, // for running activities to finish
	})
	w.RegisterWorkflow(workflows.SlotWorkflow)
	w.RegisterWorkflow(workflows.PlannerWorkflow)
	w.RegisterWorkflow(workflows.ScheduledSlotWorkflow)
	w.RegisterWorkflow(workflows.BackfillWorkflow)
	w.RegisterWorkflow(workflows.ReconcileWorkflow)
	w.RegisterWorkflow(workflows.ScheduledReconcileWorkflow)
	w.RegisterActivity(&activities.Activities{Kafka: kc, Conn: kafka.ConnOf(cfg), Plans: store, Ops: store, Analysis: store, MaxBatchOffsets: maxOffsets,
		SearchAttributes: func(ctx context.Context) (bool, error) {
			missing, err := connect.MissingSearchAttributes(ctx, tc, cfg.TemporalNamespace, workflows.SearchAttributes)
			return err == nil && len(missing) == 0, err
		}, Batches: &batch.Processor{
			Ledger: store, Sink: store, Archive: store, Kafka: kc, Conn: kafka.ConnOf(cfg), Raw: archive,
			Reads: make(chan struct{}, reads), BeatEvery: beat}})

	logger.Info("worker started", "task_queue", cfg.TaskQueue, "temporal", cfg.TemporalAddress,
		"kafka", cfg.KafkaBrokers, "scheduled_topics", len(served), "kafka_tls", cfg.KafkaTLS != nil, "kafka_sasl", cfg.KafkaSASLMechanism, "clickhouse", cfg.ClickHouseAddr, "activities", concurrency, "reads", reads, "memory_limit_mib", debug.SetMemoryLimit(-1)>>20, "raw_archive", archive, "max_batch_offsets", maxOffsets)
	if err := w.Run(worker.InterruptCh()); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	logger.Info("worker stopped")
	return nil
}

// waitFor calls open until it succeeds, with backoff, for at most within:
// a worker started while a server restarts waits for it instead of exiting.
// Within 0, open is tried once (the library's zero means no limit).
func waitFor[T any](ctx context.Context, logger *slog.Logger, what string, within time.Duration, open func() (T, error)) (T, error) {
	var b backoff.BackOff = backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(within), backoff.WithMaxInterval(5*time.Second))
	if within <= 0 {
		b = &backoff.StopBackOff{}
	}
	return backoff.RetryNotifyWithData(open, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		logger.Warn("waiting for "+what, "err", err, "retry_in", next.Round(time.Millisecond))
	})
}

// servedPartitions returns the partitions of each topic that has a slot
// schedule (starter setup, schedule create): what tailing slots read.
func servedPartitions(ctx context.Context, tc client.Client, kc sarama.Client) (map[string]int, error) {
	it, err := tc.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 1000})
	if err != nil {
		return nil, fmt.Errorf("list the schedules: %w", err)
	}
	out := map[string]int{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list the schedules: %w", err)
		}
		topic, ok := workflows.ScheduleTopic(e.ID)
		if !ok {
			continue
		}
		parts, err := kafka.Partitions(kc, topic)
		if errors.Is(err, kafka.ErrNoTopic) {
			continue // deleted: its slots fail and say so
		}
		if err != nil {
			return nil, err
		}
		out[topic] = len(parts)
	}
	return out, nil
}
