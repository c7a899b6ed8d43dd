package e2e

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// stream produces records stamped with the time they are sent, at a steady
// rate, until stop; every record goes into d.
type stream struct {
	d    *dataset
	mu   sync.Mutex
	err  error
	done chan struct{}
}

// startStream sends about perTick records every 50 ms to the partitions
// `to`, with late, early and malformed records, and some stamped a few
// seconds in the past (as a slow producer would), until `until`.
func (e *env) startStream(t *testing.T, topic string, to []int32, perTick int, until time.Time) *stream {
	t.Helper()
	cfg := kafka.NewConfig("rtbpipe-e2e-stream")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(e.cfg.KafkaBrokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{d: newDataset(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer p.Close()
		r := rand.New(rand.NewPCG(11, 3))
		for now := time.Now(); now.Before(until); now = time.Now() {
			s.mu.Lock()
			from := len(s.d.recs)
			for i := 0; i < perTick; i++ {
				part := to[r.IntN(len(to))]
				logTime := now
				if r.IntN(50) == 0 {
					logTime = now.Add(-3 * time.Second) // a slow producer
				}
				switch k := r.IntN(100); {
				case k < 2:
					s.d.addBad(r, part, logTime)
				case k < 8:
					s.d.add(r, part, logTime, logTime.Add(-time.Duration(r.Int64N(int64(6*time.Hour)))))
				case k < 12:
					s.d.add(r, part, logTime, logTime.Add(time.Duration(r.Int64N(int64(2*time.Minute)))))
				default:
					s.d.add(r, part, logTime, logTime)
				}
			}
			msgs := make([]*sarama.ProducerMessage, 0, perTick)
			for _, rec := range s.d.recs[from:] {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: rec.partition, Timestamp: rec.logTime,
					Value: sarama.ByteEncoder(rec.value)})
			}
			s.mu.Unlock()
			if err := p.SendMessages(msgs); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return s
}

func (s *stream) wait(t *testing.T) *dataset {
	t.Helper()
	<-s.done
	if s.err != nil {
		t.Fatalf("stream: %v", s.err)
	}
	return s.d
}

// tailingSchedule creates topic's tailing slot schedule on the test's task
// queue (idle partitions waited for 2 s), deleted when the test ends.
func (e *env) tailingSchedule(t *testing.T, topic string) client.ScheduleHandle {
	t.Helper()
	sched, err := e.temporal.ScheduleClient().Create(context.Background(),
		workflows.SlotSchedule(workflows.ScheduledInput{Topic: topic, Tail: true, IdleWait: 2 * time.Second}, e.cfg.TaskQueue))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sched.Delete(context.Background()) })
	return sched
}

// waitWorkflow waits for a workflow started by someone else (the schedule).
func (e *env) waitWorkflow(t *testing.T, id string, timeout time.Duration, res any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := e.temporal.GetWorkflow(ctx, id, "").Get(ctx, res)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("workflow %s: %v", id, err)
		}
		if _, derr := e.temporal.DescribeWorkflowExecution(ctx, id, ""); derr == nil {
			t.Fatalf("workflow %s: %v", id, err) // it exists, and failed
		}
		time.Sleep(time.Second) // not started yet
	}
}

// The live path: the tailing schedule on a stream of records stamped as
// they are sent (some late, early, malformed, a few seconds behind), with
// an idle partition and the worker killed mid-minute. Every minute's slot
// reads its records as they arrive, and the windows are exact.
func TestLiveScheduleTails(t *testing.T) {
	e := getEnv(t).alongside(t)
	w := e.startWorker(t)
	topic := e.newTopic(t, 3)
	sched := e.tailingSchedule(t, topic)

	// s1 is the warm-up (no slot ran the minute before it); s2 and s3 tail
	// from their start. Records stop before s3 ends, so that its partitions
	// end idle.
	s1 := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	s2, s3 := s1.Add(time.Minute), s1.Add(2*time.Minute)
	st := e.startStream(t, topic, []int32{0, 1}, 10, s3.Add(50*time.Second)) // partition 2 stays idle

	// Kill the worker in the middle of s2: its group of tails times out
	// (heartbeat), and s2 runs their plans as batches of their own on the
	// restarted worker.
	time.Sleep(time.Until(s2.Add(15 * time.Second)))
	w.Kill()
	w = e.startWorker(t)

	d := st.wait(t)
	var results []workflows.SlotResult
	for s := s1; !s.After(s3); s = s.Add(time.Minute) {
		var res workflows.SlotResult
		e.waitWorkflow(t, workflows.SlotWorkflowID(topic, s), 4*time.Minute, &res)
		t.Logf("%s: %s; tailed %d", s.Format("15:04"), res, res.Tailed)
		results = append(results, res)
	}
	sched.Delete(context.Background())
	if results[2].Tailed != 3 {
		t.Errorf("slot %s: %d of 3 batches tailed", s3.Format("15:04"), results[2].Tailed)
	}
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	var events, dead uint64
	for _, r := range results {
		events += r.Events
		dead += r.DeadLetters
	}
	if events != uint64(d.n) || dead != uint64(d.malformed) {
		t.Fatalf("slots counted %d events, %d dead letters; produced %d, %d", events, dead, d.n, d.malformed)
	}
}

// One record stamped far ahead (a producer's clock years fast) does not put
// the live slots after it behind: once it is planned, each later slot's
// plan holds the records appended in its own minute, not the minute's
// before (Guarantees: records stamped ahead of the clock). The windows are
// exact, and every offset is in one plan.
func TestLiveSlotsOnTimeAfterARecordStampedAhead(t *testing.T) {
	e := getEnv(t).alongside(t)
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	sched := e.tailingSchedule(t, topic)
	cfg := kafka.NewConfig("rtbpipe-e2e-ahead")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(e.cfg.KafkaBrokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	d := newDataset()
	logged := map[int64]time.Time{} // offset: the record's timestamp
	send := func(r *rand.Rand, logTime time.Time) {
		d.add(r, 0, logTime, time.Now())
		rec := d.recs[len(d.recs)-1]
		_, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Timestamp: logTime, Value: sarama.ByteEncoder(rec.value)})
		if err != nil {
			t.Fatal(err)
		}
		logged[off] = logTime
	}
	// s1 is the warm-up; the record stamped ahead, sent before it, is
	// planned by s2 at the latest; s3 is the slot after.
	s1 := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	s3 := s1.Add(2 * time.Minute)
	r := rand.New(rand.NewPCG(5, 8))
	send(r, time.Now())
	send(r, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	for time.Now().Before(s3.Add(50 * time.Second)) {
		send(r, time.Now())
		time.Sleep(100 * time.Millisecond)
	}
	for s := s1; !s.After(s3); s = s.Add(time.Minute) {
		var res workflows.SlotResult
		e.waitWorkflow(t, workflows.SlotWorkflowID(topic, s), 4*time.Minute, &res)
	}
	sched.Delete(context.Background())
	e.checkExact(t, topic, d.want)
	e.checkLedger(t, topic, d.hw)
	plans, err := e.store.PlansBetween(context.Background(), topic, s3, s3)
	if err != nil || len(plans) != 1 {
		t.Fatalf("plans of slot %s: %v, %v", s3.Format("15:04"), plans, err)
	}
	b := plans[0]
	for o := b.Start; o < b.End; o++ {
		if at := logged[o]; at.Before(s3.Add(-5*time.Second)) || !at.Before(s3.Add(time.Minute)) {
			t.Fatalf("slot %s planned [%d,%d), which holds offset %d, appended at %s: a slot behind its minute",
				s3.Format("15:04:05"), b.Start, b.End, o, at.Format("15:04:05.000"))
		}
	}
}
