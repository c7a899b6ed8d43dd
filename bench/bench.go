package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
	"github.com/rtbpipe/rtbpipe/internal/workerproc"
	"github.com/rtbpipe/rtbpipe/workflows"
)

type bench struct {
	o         options
	cfg       config.Config
	log       *slog.Logger
	dir       string
	workerBin string
	genBin    string
	conn      *chstore.Store // the connection, for every database
	store     *chstore.Store // conn in the current run's database
	dbBase    string         // the databases are dbBase_<n>
	dbs       []string       // made so far, dropped at the end
	kc        sarama.Client
	tc        client.Client
	first     time.Time // first minute of the backlog
}

func newBench(ctx context.Context, cfg config.Config, log *slog.Logger, o options) (*bench, error) {
	b := &bench{o: o, cfg: cfg, log: log}
	var err error
	if b.dir, err = os.MkdirTemp("", "rtbpipe-bench"); err != nil {
		return nil, err
	}
	if b.workerBin, b.genBin, err = buildBinaries(b.dir); err != nil {
		return nil, err
	}
	if b.conn, err = connect.ClickHouse(ctx, cfg); err != nil {
		return nil, err
	}
	b.dbBase = cfg.ClickHouseDatabase
	if err := b.newDatabase(ctx); err != nil {
		return nil, err
	}
	if b.kc, err = connect.Kafka(ctx, cfg, "rtbpipe-bench"); err != nil {
		return nil, err
	}
	if b.tc, err = connect.Temporal(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return nil, err
	}
	return b, nil
}

// newDatabase moves the bench to a database of its own (no ledger, no
// windows), for the next run. The earlier ones are dropped only at the end:
// dropping a database deletes thousands of part files, and on a filesystem
// without a journal (as on the machines we measured) ext4 then makes every
// file created in the next minutes search past those inodes, which slows
// every ClickHouse insert of the runs that follow.
//
// The previous run's tables stop merging first: their merges would
// otherwise go on in the background of the next runs (the bare read too),
// and be counted in them.
func (b *bench) newDatabase(ctx context.Context) error {
	if len(b.dbs) > 0 {
		if err := b.store.StopMerges(ctx); err != nil { // the previous run's database
			return err
		}
	}
	b.cfg.ClickHouseDatabase = fmt.Sprintf("%s_%d", b.dbBase, len(b.dbs)+1)
	b.dbs = append(b.dbs, b.cfg.ClickHouseDatabase)
	b.store = b.conn.In(b.cfg.ClickHouseDatabase)
	_, err := b.store.Migrate(ctx)
	return err
}

func (b *bench) close() {
	if !b.o.keep && b.conn != nil {
		for _, db := range b.dbs {
			if err := b.conn.In(db).DropDatabase(context.Background()); err != nil {
				b.log.Warn("drop bench database", "db", db, "err", err)
			}
		}
	}
	for _, c := range []io.Closer{b.kc, b.conn} {
		if c != nil {
			c.Close()
		}
	}
	if b.tc != nil {
		b.tc.Close()
	}
	os.RemoveAll(b.dir)
}

// produceBacklog writes the events into a fresh topic with log times spread
// over past minutes, with the generator itself (synthetic time mode).
func (b *bench) produceBacklog(ctx context.Context) (string, *manifest.Manifest, error) {
	topic := fmt.Sprintf("bench-%d", time.Now().Unix())
	if _, err := kafka.EnsureTopic(b.kc, topic, b.o.partitions); err != nil {
		return "", nil, err
	}
	b.first = time.Now().UTC().Truncate(time.Minute).Add(-time.Duration(b.o.minutes+5) * time.Minute)
	rate := float64(b.o.events) / float64(b.o.minutes*60)
	path := filepath.Join(b.dir, "backlog.json")
	b.log.Info("producing the backlog", "topic", topic, "events", b.o.events, "partitions", b.o.partitions, "minutes", b.o.minutes)
	began := time.Now()
	if err := b.runGenerator(ctx, "--topic", topic, "--count", strconv.Itoa(b.o.events), "--start", b.first.Format(time.RFC3339),
		"--rate", strconv.FormatFloat(rate, 'f', 3, 64), "--seed", "1", "--manifest", path, "--progress", "30s"); err != nil {
		return "", nil, err
	}
	b.log.Info("backlog produced", "seconds", time.Since(began).Seconds())
	m, err := manifest.Read(path)
	return topic, m, err
}

func (b *bench) runGenerator(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, b.genBin, append([]string{"--partitions", strconv.Itoa(int(b.o.partitions))}, args...)...)
	cmd.Env = append(os.Environ(), "RTB_KAFKA_BROKERS="+strings.Join(b.cfg.KafkaBrokers, ","))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("generator: %w", err)
	}
	return nil
}

// bareRead is the baseline: every offset of the topic read with sarama, one
// consumer per partition, nothing parsed.
func (b *bench) bareRead(ctx context.Context, topic string) (Result, error) {
	cl, err := connect.Kafka(ctx, b.cfg, "rtbpipe-bench-baseline")
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	parts, err := kafka.Partitions(cl, topic)
	if err != nil {
		return Result{}, err
	}
	consumer, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return Result{}, err
	}
	defer consumer.Close()
	var n atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	began := time.Now()
	for _, p := range parts {
		bounds, err := kafka.PartitionBounds(cl, topic, p)
		if err != nil {
			return Result{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- bareReadRange(ctx, consumer, topic, p, bounds, &n)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return Result{}, err
		}
	}
	secs := time.Since(began).Seconds()
	return Result{Name: "bare sarama read (baseline)", Events: n.Load(), Seconds: secs, EventsPerSec: float64(n.Load()) / secs, VsBaseline: 1,
		Note: "records/s, no parsing"}, nil
}

// bareReadRange reads [bounds.Start, bounds.End) of topic/p with a plain
// sarama partition consumer and counts the records.
func bareReadRange(ctx context.Context, consumer sarama.Consumer, topic string, p int32, bounds kafka.Bounds, n *atomic.Int64) error {
	if bounds.Start >= bounds.End {
		return nil
	}
	pc, err := consumer.ConsumePartition(topic, p, bounds.Start)
	if err != nil {
		return fmt.Errorf("bare read of %s/%d: %w", topic, p, err)
	}
	defer pc.AsyncClose()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-pc.Messages():
			// Then what is already buffered, with plain receives (as the
			// pipeline's reads did when they were on sarama): the baseline
			// is the fastest bare read, not the simplest.
			for k := len(pc.Messages()); ; k-- {
				n.Add(1)
				if m.Offset+1 >= bounds.End {
					return nil
				}
				if k <= 0 {
					break
				}
				m = <-pc.Messages()
			}
		case err := <-pc.Errors():
			return fmt.Errorf("bare read of %s/%d: %w", topic, p, err)
		}
	}
}

// pipeline runs every slot of the backlog through the real worker (its own
// process) with a backfill, and measures it.
func (b *bench) pipeline(ctx context.Context, topic string, m *manifest.Manifest, archive bool) (Result, error) {
	w, err := b.startWorker(archive)
	if err != nil {
		return Result{}, err
	}
	defer w.Stop()
	if err := b.waitPolling(ctx, w); err != nil {
		return Result{}, err
	}
	cpu0, err := w.CPUSeconds()
	if err != nil {
		return Result{}, err
	}
	from, to := b.first, b.first.Add(time.Duration(b.o.minutes+2)*time.Minute)
	name := fmt.Sprintf("rtbpipe, raw archive %s", map[bool]string{false: "off", true: "on"}[archive])
	b.log.Info("running", "what", name)
	began := time.Now()
	run, err := b.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.BackfillID(topic, from, to), TaskQueue: b.cfg.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE},
		workflows.BackfillWorkflow, workflows.BackfillInput{Topic: topic, From: from, To: to, Parallelism: b.o.parallelism, IdleWait: time.Second})
	if err != nil {
		return Result{}, err
	}
	var p workflows.BackfillProgress
	if err := run.Get(ctx, &p); err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(began).Seconds()
	cpu1, err := w.CPUSeconds()
	if err != nil {
		return Result{}, err
	}
	rss, err := w.PeakRSSMiB()
	if err != nil {
		return Result{}, err
	}
	exact, err := b.exact(ctx, topic, m, false)
	if err != nil {
		return Result{}, err
	}
	return Result{Name: name, Events: m.Produced, Seconds: secs, EventsPerSec: float64(m.Produced) / secs,
		CPUSecPerMEv: (cpu1 - cpu0) / (float64(m.Produced) / 1e6), PeakRSSMiB: rss, Exact: &exact,
		Note: fmt.Sprintf("%d slots, worker process only", p.Total)}, nil
}

// waitPolling waits until the worker polls its task queue for workflow and
// activity tasks: a backfill is measured from there, as a user's backfill
// starts on a running worker.
func (b *bench) waitPolling(ctx context.Context, w *workerproc.Proc) error {
	me := fmt.Sprintf("%d@", w.Pid())
	polls := func(t enumspb.TaskQueueType) (bool, error) {
		resp, err := b.tc.DescribeTaskQueue(ctx, b.cfg.TaskQueue, t)
		if err != nil {
			return false, fmt.Errorf("describe task queue %s: %w", b.cfg.TaskQueue, err)
		}
		return slices.ContainsFunc(resp.GetPollers(), func(p *taskqueuepb.PollerInfo) bool {
			return strings.HasPrefix(p.GetIdentity(), me)
		}), nil
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		wf, err := polls(enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err != nil {
			return err
		}
		act, err := polls(enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err != nil {
			return err
		}
		if wf && act {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the worker (pid %d) does not poll task queue %s after 30 s", w.Pid(), b.cfg.TaskQueue)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exact compares ClickHouse with the manifest, and logs the first
// differences unless quiet (a caller still waiting for the last slot).
func (b *bench) exact(ctx context.Context, topic string, m *manifest.Manifest, quiet bool) (bool, error) {
	got, err := b.store.TopicWindows(ctx, topic)
	if err != nil {
		return false, err
	}
	d := agg.Diff(m.Table(), got)
	for i, x := range d {
		if i == 5 || quiet {
			break
		}
		b.log.Error("differs", "key", x.String())
	}
	return len(d) == 0, nil
}

// startWorker runs the real worker as its own process on the bench's task
// queue and database.
func (b *bench) startWorker(archive bool) (*workerproc.Proc, error) {
	logf, err := os.Create(filepath.Join(b.dir, fmt.Sprintf("worker-%d.log", time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	return workerproc.Start(b.workerBin, []string{"RTB_TASK_QUEUE=" + b.cfg.TaskQueue, "RTB_CLICKHOUSE_DATABASE=" + b.cfg.ClickHouseDatabase,
		"RTB_RAW_ARCHIVE=" + strconv.FormatBool(archive), "RTB_KAFKA_BROKERS=" + strings.Join(b.cfg.KafkaBrokers, ",")}, logf)
}

func printReport(out io.Writer, r *Report) {
	fmt.Fprintf(out, "\nrtbpipe bench: %d events, %d partitions, over %d minutes of log time; %s; %s\n",
		r.Events, r.Partition, r.Minutes, r.Machine, r.When.Format(time.RFC3339))
	if r.Rounds > 1 {
		fmt.Fprintf(out, "backlog: medians of %d rounds; each ratio is against the bare read of its own round\n", r.Rounds)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tvs baseline (range)\tevents/s\tseconds\tCPU s per M events\tpeak RSS MiB\texact\tnote")
	for _, x := range r.Results {
		exact := "-"
		if x.Exact != nil {
			exact = strconv.FormatBool(*x.Exact)
		}
		cpu, rss := "-", "-"
		if x.CPUSecPerMEv > 0 {
			cpu = fmt.Sprintf("%.2f", x.CPUSecPerMEv)
		}
		if x.PeakRSSMiB > 0 {
			rss = fmt.Sprintf("%.0f", x.PeakRSSMiB)
		}
		vs := fmt.Sprintf("%.2f", x.VsBaseline)
		if len(x.Rounds) > 1 {
			lo, hi := x.Rounds[0].VsBaseline, x.Rounds[0].VsBaseline
			for _, r := range x.Rounds {
				lo, hi = min(lo, r.VsBaseline), max(hi, r.VsBaseline)
			}
			vs += fmt.Sprintf(" (%.2f-%.2f)", lo, hi)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%s\t%s\t%s\t%s\n", x.Name, vs, x.EventsPerSec, x.Seconds, cpu, rss, exact, x.Note)
	}
	tw.Flush()
	if l := r.Live; l != nil {
		mode := "tailing"
		if !l.Tail {
			mode = "not tailing"
		}
		fmt.Fprintf(out, "\nlive: %d events/s for %s, %s, grace %s: minute end -> slot done in ClickHouse over %d minutes: "+
			"p50 %.2fs  p99 %.2fs  max %.2fs (warm-up minute %.2fs); exact: %v\n",
			l.Rate, l.Duration, mode, l.Grace, len(l.Latencies), l.P50, l.P99, l.Max, l.WarmUp, l.Exact)
		fmt.Fprintf(out, "  of which: minute end -> every batch done (windows in the partials) p50 %.2fs  p99 %.2fs; "+
			"-> window totals refreshed p50 %.2fs  p99 %.2fs\n", l.Partials.P50, l.Partials.P99, l.Totals.P50, l.Totals.P99)
	}
}
