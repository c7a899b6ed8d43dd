// Package e2e tests rtbpipe end to end against real servers: ClickHouse,
// the Temporal dev server and the local Kafka broker, as `make test` starts
// them. Without RTB_E2E=1 the tests are skipped (plain `go test ./...` on a
// machine without the stack); with it, a server that cannot be reached fails
// the run.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/IBM/sarama"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/workerproc"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// env is what every test shares: connections and the test configuration.
type env struct {
	cfg       config.Config
	store     *chstore.Store
	db        driver.Conn // the tests' own connection, for what they inspect or break in the tables
	kafka     sarama.Client
	temporal  client.Client
	workerBin string
}

var shared *env

func TestMain(m *testing.M) {
	if os.Getenv("RTB_E2E") != "1" {
		fmt.Println("e2e: skipped (set RTB_E2E=1 with the stack up, or run `make test`)")
		os.Exit(m.Run())
	}
	e, cleanup, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func setup() (*env, func(), error) {
	ctx := context.Background()
	cfg := config.FromEnv()
	cfg.ClickHouseDatabase = config.Env("RTB_E2E_DATABASE", "rtb_e2e")
	cfg.TaskQueue = fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	store, err := connect.ClickHouse(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := store.DropDatabase(ctx); err != nil {
		return nil, nil, fmt.Errorf("drop test database: %w", err)
	}
	db, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.ClickHouseAddr}, Protocol: clickhouse.Native,
		Auth: clickhouse.Auth{Database: "default", Username: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()}})
	if err != nil {
		return nil, nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		return nil, nil, err
	}
	if _, err := store.Migrate(ctx); err != nil { // idempotent
		return nil, nil, fmt.Errorf("second migrate: %w", err)
	}
	kc, err := connect.Kafka(ctx, cfg, "rtbpipe-e2e")
	if err != nil {
		return nil, nil, err
	}
	tc, err := connect.Temporal(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "rtbpipe-e2e")
	if err != nil {
		return nil, nil, err
	}
	bin := filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-o", bin, "../worker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, nil, fmt.Errorf("build worker: %w", err)
	}
	return &env{cfg: cfg, store: store, db: db, kafka: kc, temporal: tc, workerBin: bin}, func() {
		tc.Close()
		db.Close()
		kc.Close()
		store.Close()
		os.RemoveAll(dir)
	}, nil
}

// build compiles the command ../name into the test's temporary folder and
// returns its path.
func build(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "../"+name).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// starterCmd is the command `starter args...` of the starter binary bin
// (build), on the test database, its workflows on the task queue queue.
func (e *env) starterCmd(bin, queue string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "RTB_CLICKHOUSE_DATABASE="+e.cfg.ClickHouseDatabase, "RTB_TASK_QUEUE="+queue)
	return cmd
}

// scratchStore is a migrated database of the test's own (the test
// database's name and suffix), dropped when the test ends.
func (e *env) scratchStore(t *testing.T, suffix string) *chstore.Store {
	t.Helper()
	s := e.store.In(e.cfg.ClickHouseDatabase + suffix)
	t.Cleanup(func() { _ = s.DropDatabase(context.Background()) })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// logged is ctx whose queries go to ClickHouse's query log, which
// rowsRead reads.
func logged(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
}

// rowsRead sums the rows read by the logged SELECTs since since whose text
// holds marker (a topic's or a database's name). ClickHouse 18.16 leaves
// the subqueries of IN out of the limits it enforces (max_rows_to_read),
// so the log counts them.
func (e *env) rowsRead(t *testing.T, since time.Time, marker string) uint64 {
	t.Helper()
	ctx := context.Background()
	if err := e.db.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	var read uint64
	if err := e.db.QueryRow(ctx, "SELECT sum(read_rows) FROM system.query_log WHERE type = 2 AND event_time >= ? AND position(query, ?) > 0 AND query LIKE 'SELECT%'",
		since.Truncate(time.Second), marker).Scan(&read); err != nil {
		t.Fatal(err)
	}
	return read
}

// table names a table of the test database.
func (e *env) table(name string) string { return e.cfg.ClickHouseDatabase + "." + name }

func getEnv(t *testing.T) *env {
	t.Helper()
	if shared == nil {
		t.Skip("e2e: RTB_E2E is not 1")
	}
	return shared
}

// alongside lets a test that mostly waits (on the clock, on Prometheus's
// scrapes, on a server's restart) run in parallel with the others that call
// it, after the sequential tests (testing runs parallel tests last). Its
// workers poll a task queue of its own, so that killing one, or one with
// other settings, touches no other test's activities. A test that stops or
// restarts a server other tests use must not call it. scripts/test.sh runs
// them all at once (-parallel 4: keep it at least their number, or the live
// one may wait for the others); at most one of them may be CPU-bound.
func (e *env) alongside(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	c := *e
	c.cfg.TaskQueue = e.cfg.TaskQueue + "-" + sanitize(t.Name())
	return &c
}

// startWorker runs the real worker binary on the test task queue.
func (e *env) startWorker(t *testing.T, env ...string) *workerproc.Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "worker.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w, err := workerproc.Start(e.workerBin, append([]string{"RTB_TASK_QUEUE=" + e.cfg.TaskQueue,
		"RTB_CLICKHOUSE_ADDR=" + e.cfg.ClickHouseAddr, "RTB_CLICKHOUSE_CLUSTER=" + e.cfg.ClickHouseCluster,
		"RTB_CLICKHOUSE_DATABASE=" + e.cfg.ClickHouseDatabase}, env...), f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Stop()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker log:\n%s", tail(b, 4000))
		}
	})
	return w
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// newTopic creates a fresh topic for one test.
func (e *env) newTopic(t *testing.T, partitions int32) string {
	t.Helper()
	topic := fmt.Sprintf("e2e-%s-%d", sanitize(t.Name()), time.Now().UnixNano()%1e9)
	n, err := kafka.EnsureTopic(e.kafka, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	if n != partitions {
		t.Fatalf("topic %s has %d partitions, want %d", topic, n, partitions)
	}
	return topic
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			out[i] = '-'
		}
	}
	return string(out)
}

// record is one Kafka record to produce.
type record struct {
	partition int32
	logTime   time.Time
	value     []byte
}

// produce writes records in order and waits for every acknowledgement.
func (e *env) produce(t *testing.T, topic string, recs []record) {
	t.Helper()
	cfg := kafka.NewConfig("rtbpipe-e2e-producer")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Flush.Messages = 1000
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	p, err := sarama.NewAsyncProducer(e.cfg.KafkaBrokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, r := range recs {
			p.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: r.partition, Timestamp: r.logTime, Value: sarama.ByteEncoder(r.value)}
		}
	}()
	for range recs {
		select {
		case <-p.Successes():
		case err := <-p.Errors():
			t.Fatalf("produce: %v", err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// runSlot runs one slot workflow on the test task queue and waits for it.
func (e *env) runSlot(t *testing.T, topic string, slot time.Time) workflows.SlotResult {
	t.Helper()
	run := e.startSlot(t, topic, slot)
	return e.waitSlot(t, run)
}

// runSlots runs the n slots from first on, one after the other.
func (e *env) runSlots(t *testing.T, topic string, first time.Time, n int) {
	t.Helper()
	for s := range n {
		e.runSlot(t, topic, first.Add(time.Duration(s)*time.Minute))
	}
}

func (e *env) startSlot(t *testing.T, topic string, slot time.Time) client.WorkflowRun {
	t.Helper()
	run, err := e.temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:                    workflows.SlotWorkflowID(topic, slot),
		TaskQueue:             e.cfg.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowRunTimeout:    5 * time.Minute,
	}, workflows.SlotWorkflow, workflows.SlotInput{Topic: topic, Slot: slot, IdleWait: time.Second, HeartbeatTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func (e *env) waitSlot(t *testing.T, run client.WorkflowRun) workflows.SlotResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var res workflows.SlotResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("slot workflow %s: %v", run.GetID(), err)
	}
	return res
}

// windows reads the exact windows of a topic from ClickHouse.
func (e *env) windows(t *testing.T, topic string) agg.Table {
	t.Helper()
	got, err := e.store.TopicWindows(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// ledger reads a topic's batches.
func (e *env) ledger(t *testing.T, topic string) []ledger.Batch {
	t.Helper()
	bs, err := e.store.TopicBatches(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// checkExact fails the test unless ClickHouse holds exactly want for topic:
// in the partials, and in the window totals analysts read.
func (e *env) checkExact(t *testing.T, topic string, want agg.Table) {
	t.Helper()
	if d := agg.Diff(want, e.windows(t, topic)); len(d) > 0 {
		for _, x := range d {
			t.Errorf("differs: %v", x)
		}
		t.FailNow()
	}
	totals, err := e.store.ReadTotals(context.Background(), topic, time.Unix(0, 0), time.Now().Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d := agg.Diff(want, totals); len(d) > 0 {
		for _, x := range d {
			t.Errorf("window totals differ: %v", x)
		}
		t.FailNow()
	}
}

// checkLedger checks that the topic's plans are contiguous per partition
// from offset 0 to the given high watermarks, all done, and that every
// offset is accounted for.
func (e *env) checkLedger(t *testing.T, topic string, hw map[int32]int64) {
	t.Helper()
	next := map[int32]int64{}
	for _, b := range e.ledger(t, topic) {
		if b.State != ledger.StateDone {
			t.Errorf("batch %d@%s is %s", b.Partition, b.Slot, b.State)
		}
		if b.Start != next[b.Partition] {
			t.Errorf("partition %d slot %s starts at %d, previous plan ended at %d", b.Partition, b.Slot, b.Start, next[b.Partition])
		}
		next[b.Partition] = b.End
		if !b.Balanced() {
			t.Errorf("partition %d slot %s: events %d + dead %d + markers %d + skipped %d != offsets %d", b.Partition, b.Slot,
				b.Events, b.DeadLetters, b.Markers, b.Skipped, b.End-b.Start)
		}
	}
	for p, want := range hw {
		if next[p] != want {
			t.Errorf("partition %d: plans end at %d, high watermark %d", p, next[p], want)
		}
	}
}
