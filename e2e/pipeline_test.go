package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// dataset builds records and the windows they must produce.
type dataset struct {
	recs      []record
	want      agg.Table
	malformed int
	hw        map[int32]int64
	n         int
}

func newDataset() *dataset { return &dataset{want: agg.Table{}, hw: map[int32]int64{}} }

var (
	countries = []string{"US", "JP", "CA", "UK", "KR", "DE", "FR"}
	formats   = []string{"banner", "interstitial", "rewarded_video"}
)

// add appends a valid event with the given log and event times.
func (d *dataset) add(r *rand.Rand, p int32, logTime, evTime time.Time) {
	d.n++
	typ, rev := "impression", "0"
	if r.IntN(5) == 0 {
		typ, rev = "click", fmt.Sprintf("0.%06d", r.IntN(1_000_000))
	}
	m := map[string]any{"event_id": fmt.Sprintf("ev-%d", d.n), "timestamp": evTime.Format(time.RFC3339Nano),
		"user_id": fmt.Sprintf("u%d", r.IntN(1000)), "campaign_id": "c1", "ad_format": formats[r.IntN(3)],
		"country": countries[r.IntN(7)], "device": "ios", "event_type": typ, "revenue": json.Number(rev)}
	b, _ := json.Marshal(m)
	var ps event.Parser
	ev, err := ps.Parse(b)
	if err != nil {
		panic(fmt.Sprintf("test data does not parse: %v: %s", err, b))
	}
	d.want.Add(&ev)
	d.recs = append(d.recs, record{partition: p, logTime: logTime, value: b})
	d.hw[p]++
}

var badRecords = []string{
	`{"event_id":"x"`,
	`not json at all`,
	`{"event_id":"b1","timestamp":"2026-01-01T00:00:00Z","ad_format":"popup","country":"US","event_type":"click","revenue":1}`,
	`{"event_id":"b2","timestamp":"2026-01-01T00:00:00Z","ad_format":"banner","country":"US","event_type":"click","revenue":-1}`,
	`{"event_id":"b3","timestamp":"tomorrow","ad_format":"banner","country":"US","event_type":"click","revenue":1}`,
	`{"event_id":"b4","ad_format":"banner","country":"US","event_type":"click","revenue":1}`,
	``,
}

func (d *dataset) addBad(r *rand.Rand, p int32, logTime time.Time) {
	d.recs = append(d.recs, record{partition: p, logTime: logTime, value: []byte(badRecords[r.IntN(len(badRecords))])})
	d.malformed++
	d.hw[p]++
}

// standard builds, over `partitions` partitions, `perSlot` records in each
// of `slots` minutes from base, with late (up to a day), early (up to three
// minutes) and out-of-order events and some malformed records; and one
// record per partition at the start of the minute after, so that every
// slot's end is found without waiting.
func standard(seed uint64, partitions int32, base time.Time, slots, perSlot int) *dataset {
	r := rand.New(rand.NewPCG(seed, 7))
	d := newDataset()
	for s := 0; s < slots; s++ {
		for i := 0; i < perSlot; i++ {
			logTime := base.Add(time.Duration(s)*time.Minute + time.Duration(i)*time.Minute/time.Duration(perSlot))
			p := int32(r.IntN(int(partitions)))
			switch k := r.IntN(100); {
			case k < 3:
				d.addBad(r, p, logTime)
			case k < 10: // late, up to a day
				d.add(r, p, logTime, logTime.Add(-time.Duration(r.Int64N(int64(24*time.Hour)))))
			case k < 15: // early, up to three minutes
				d.add(r, p, logTime, logTime.Add(time.Duration(r.Int64N(int64(3*time.Minute)))))
			case k < 30: // out of order within a few seconds
				d.add(r, p, logTime, logTime.Add(-time.Duration(r.Int64N(int64(5*time.Second)))))
			default:
				d.add(r, p, logTime, logTime)
			}
		}
	}
	end := base.Add(time.Duration(slots) * time.Minute)
	for p := int32(0); p < partitions; p++ {
		d.add(r, p, end, end)
	}
	return d
}

// pastBase is a minute far enough in the past that every slot of a test
// has ended.
func pastBase(minutesAgo int) time.Time {
	return time.Now().UTC().Truncate(time.Minute).Add(-time.Duration(minutesAgo) * time.Minute)
}

func TestExactWindowsAndRerun(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 3)
	base := pastBase(30)
	d := standard(1, 3, base, 3, 2000)
	e.produce(t, topic, d.recs)

	var total workflows.SlotResult
	for s := 0; s <= 3; s++ { // the last slot holds only the closing records, and idles
		res := e.runSlot(t, topic, base.Add(time.Duration(s)*time.Minute))
		total.Events += res.Events
		total.DeadLetters += res.DeadLetters
		total.LateEvents += res.LateEvents
		total.EarlyEvents += res.EarlyEvents
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	if total.Events != uint64(d.n) || total.DeadLetters != uint64(d.malformed) {
		t.Fatalf("results say %d events, %d dead letters; produced %d events, %d malformed", total.Events, total.DeadLetters, d.n, d.malformed)
	}
	if total.LateEvents == 0 || total.EarlyEvents == 0 {
		t.Fatalf("late %d early %d: the data set has both", total.LateEvents, total.EarlyEvents)
	}

	// Dead letters keep their partition, offset, payload and reason.
	ctx := context.Background()
	rows, err := e.db.Query(ctx, "SELECT kafka_partition, kafka_offset, reason, payload FROM "+e.table("dead_letters")+" FINAL WHERE topic = ?", topic)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var p int32
		var off int64
		var reason, payload string
		if err := rows.Scan(&p, &off, &reason, &payload); err != nil {
			t.Fatal(err)
		}
		n++
		if reason == "" || off < 0 || off >= d.hw[p] {
			t.Errorf("dead letter %d/%d: reason %q", p, off, reason)
		}
		found := false
		for _, b := range badRecords {
			found = found || b == payload
		}
		if !found {
			t.Errorf("dead letter %d/%d holds %q, not one of the malformed records", p, off, payload)
		}
	}
	rows.Close()
	if n != d.malformed {
		t.Fatalf("%d dead letters, want %d", n, d.malformed)
	}

	// Running a slot again changes nothing: same offsets, same rows.
	before := e.ledger(t, topic)
	var partialRows uint64
	countQ := "SELECT count() FROM " + e.table("window_partials") + " FINAL WHERE topic = ?"
	if err := e.db.QueryRow(ctx, countQ, topic).Scan(&partialRows); err != nil {
		t.Fatal(err)
	}
	again := e.runSlot(t, topic, base.Add(time.Minute))
	if again.NewPlans != 0 {
		t.Fatalf("a rerun wrote %d new plans", again.NewPlans)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	after := e.ledger(t, topic)
	for i := range before {
		if before[i].Start != after[i].Start || before[i].End != after[i].End || before[i].Events != after[i].Events {
			t.Fatalf("rerun changed the ledger: %+v -> %+v", before[i], after[i])
		}
	}
	var partialRowsAfter uint64
	if err := e.db.QueryRow(ctx, countQ, topic).Scan(&partialRowsAfter); err != nil {
		t.Fatal(err)
	}
	if partialRows != partialRowsAfter {
		t.Fatalf("partial rows %d before the rerun, %d after", partialRows, partialRowsAfter)
	}
	// The prototype's view shows exactly one row per window and key.
	var dup uint64
	if err := e.db.QueryRow(ctx, "SELECT count() FROM (SELECT window_start, event_type, country, ad_format, count() c FROM "+
		e.table("ad_events_aggregated")+" GROUP BY window_start, event_type, country, ad_format HAVING c > 1)").Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Fatalf("%d keys have more than one row in ad_events_aggregated", dup)
	}
}

// An activity that fails after it wrote its partials, and is retried,
// counts nothing twice. The worker here runs in the test process so that
// the real ProcessBatch can be wrapped with the failure.
func TestRetryAfterWriteCountsOnce(t *testing.T) {
	e := getEnv(t)
	topic := e.newTopic(t, 2)
	base := pastBase(40)
	d := standard(2, 2, base, 1, 1500)
	e.produce(t, topic, d.recs)

	real := &activities.Activities{Kafka: e.kafka, Conn: kafka.ConnOf(e.cfg), Plans: e.store, Ops: e.store, Analysis: e.store, Batches: &batch.Processor{
		Ledger: e.store, Sink: e.store, Archive: e.store, Kafka: e.kafka, Conn: kafka.ConnOf(e.cfg)}}
	var mu sync.Mutex // activities run on the worker's goroutines
	failed := map[int32]bool{}
	w := worker.New(e.temporal, e.cfg.TaskQueue+"-inproc", worker.Options{})
	w.RegisterWorkflow(workflows.SlotWorkflow)
	w.RegisterWorkflow(workflows.PlannerWorkflow)
	w.RegisterActivity(real.PlanSlot)
	w.RegisterActivity(real.SlotPlans)
	w.RegisterActivity(real.RefreshTotals)
	w.RegisterActivity(real.ScoreAnomalies)
	w.RegisterActivityWithOptions(func(ctx context.Context, in activities.BatchInput) (activities.BatchResult, error) {
		res, err := real.ProcessBatch(ctx, in)
		if err == nil && activity.GetInfo(ctx).Attempt == 1 && res.Batch.Events > 0 {
			mu.Lock()
			failed[in.Plan.Partition] = true
			mu.Unlock()
			return res, errors.New("injected failure after partials, dead letters and ledger were written")
		}
		return res, err
	}, activity.RegisterOptions{Name: "ProcessBatch"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	saved := e.cfg.TaskQueue
	e.cfg.TaskQueue += "-inproc"
	defer func() { e.cfg.TaskQueue = saved }()

	e.runSlot(t, topic, base)
	e.runSlot(t, topic, base.Add(time.Minute))
	mu.Lock()
	defer mu.Unlock()
	if len(failed) == 0 {
		t.Fatal("no batch failed: the test did not test anything")
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
}

// A worker killed in the middle of a slot, and started again, ends exact.
func TestWorkerKilledMidSlot(t *testing.T) {
	e := getEnv(t)
	topic := e.newTopic(t, 2)
	base := pastBase(50)
	d := standard(3, 2, base, 1, 200_000)
	e.produce(t, topic, d.recs)

	// Heartbeats every 100 ms: a batch stores what it read before each, so
	// the kill below comes after the slot has written rows and recorded
	// progress, and the retry resumes from it.
	w := e.startWorker(t, "RTB_WORKER_HEARTBEAT=100ms")
	run := e.startSlot(t, topic, base)
	e.waitBatchProgress(t, run)
	t.Log("killing the worker")
	w.Kill()
	e.startWorker(t)
	res := e.waitSlot(t, run)
	e.runSlot(t, topic, base.Add(time.Minute))
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	t.Logf("slot after the kill: %v", res)
}

// waitBatchProgress waits until a batch of the slot run has heartbeated
// stored progress (the slot has written rows and a retry would resume),
// and returns the identity of the worker running it.
func (e *env) waitBatchProgress(t *testing.T, run client.WorkflowRun) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		desc, err := e.temporal.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		for _, pa := range desc.PendingActivities {
			var p struct{ Start, Next int64 }
			if pa.GetActivityType().GetName() == "ProcessBatch" && pa.GetHeartbeatDetails() != nil &&
				converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &p) == nil && p.Start >= 0 && p.Next > p.Start {
				t.Logf("a batch stored offsets [%d,%d) on worker %s", p.Start, p.Next, pa.GetLastWorkerIdentity())
				return pa.GetLastWorkerIdentity()
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch heartbeated stored progress within 2 minutes: a kill would not test a resume")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A partition with nothing past the slot's end does not block the slot:
// after the idle wait it is planned to its high watermark, and records that
// arrive later belong to the next slot.
func TestIdlePartitionDoesNotBlock(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(60)
	r := rand.New(rand.NewPCG(4, 4))
	d := newDataset()
	for i := 0; i < 100; i++ {
		d.add(r, int32(i%2), base.Add(time.Duration(i)*100*time.Millisecond), base.Add(time.Duration(i)*100*time.Millisecond))
	}
	d.add(r, 0, base.Add(2*time.Minute), base.Add(2*time.Minute)) // only partition 0 moves on
	e.produce(t, topic, d.recs)

	res := e.runSlot(t, topic, base)
	if len(res.IdleParts) != 1 || res.IdleParts[0] != 1 {
		t.Fatalf("idle partitions %v, want [1]", res.IdleParts)
	}
	// Partition 1 receives a late-arriving record stamped inside the slot
	// that has already run: it is counted by the next slot, not lost.
	late := newDataset()
	late.n = d.n
	late.add(r, 1, base.Add(30*time.Second), base.Add(30*time.Second))
	late.add(r, 1, base.Add(3*time.Minute), base.Add(3*time.Minute))
	e.produce(t, topic, late.recs)
	d.want.Merge(late.want)
	d.hw[1] += late.hw[1]
	for s := 1; s <= 3; s++ {
		e.runSlot(t, topic, base.Add(time.Duration(s)*time.Minute))
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
}
