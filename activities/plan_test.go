package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/kafka/kafkatest"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

const planTopic = "plan-test"

// memPlans is the ledger as the planner sees it, in memory.
type memPlans struct {
	mu      sync.Mutex
	bs      []ledger.Batch
	adopted map[string]bool
	reads   []time.Time // when the ledger was read
	// meanwhile, if set, runs once when the reads number meanwhileAt, as
	// the last of them returns (writeMeanwhile).
	meanwhile   func()
	meanwhileAt int
}

// writeMeanwhile writes b as another planner would while this one plans:
// once the planner's first two reads (the slot's plans and its neighbours,
// made at once) have both returned.
func (m *memPlans) writeMeanwhile(b ledger.Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meanwhileAt = len(m.reads) + 2
	m.meanwhile = func() { m.bs = append(m.bs, b) }
}

// readDone ends a read; the caller holds m.mu.
func (m *memPlans) readDone() {
	if f := m.meanwhile; f != nil && len(m.reads) == m.meanwhileAt {
		m.meanwhile = nil
		f()
	}
}

func (m *memPlans) SlotBatches(_ context.Context, _ string, slot time.Time) ([]ledger.Batch, error) {
	return m.read(func(b ledger.Batch) bool { return b.Slot.Equal(slot) }), nil
}

// read returns the plans that keep says, as the ledger orders them; each
// call counts as a read.
func (m *memPlans) read(keep func(ledger.Batch) bool) []ledger.Batch {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads = append(m.reads, time.Now())
	var out []ledger.Batch
	for _, b := range m.bs {
		if keep(b) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, ledger.Compare)
	m.readDone()
	return out
}

// plan returns partition p's plan of slot (its first sub-batch).
func (m *memPlans) plan(p int32, slot time.Time) (ledger.Batch, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.bs {
		if b.Partition == p && b.Slot.Equal(slot) && b.Sub == 0 {
			return b, true
		}
	}
	return ledger.Batch{}, false
}

// Neighbours answers for the partitions asked only, the least its contract
// allows; the planner must name them (nil asks for every partition the
// ledger holds, a read that grows with the topic's history).
func (m *memPlans) Neighbours(_ context.Context, _ string, slot time.Time, partitions []int32) (prev, next map[int32]ledger.Batch, err error) {
	if partitions == nil {
		return nil, nil, errors.New("memPlans: neighbours of every partition asked for: the planner names the partitions it plans")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads = append(m.reads, time.Now())
	prev, next = map[int32]ledger.Batch{}, map[int32]ledger.Batch{}
	before := func(x, y ledger.Batch) bool { return x.Slot.Before(y.Slot) || x.Slot.Equal(y.Slot) && x.Sub < y.Sub }
	for _, b := range m.bs {
		p := b.Partition
		if !slices.Contains(partitions, p) {
			continue
		}
		if pb, ok := prev[p]; b.Slot.Before(slot) && (!ok || before(pb, b)) {
			prev[p] = b
		}
		if nb, ok := next[p]; b.Slot.After(slot) && (!ok || before(b, nb)) {
			next[p] = b
		}
	}
	m.readDone()
	return prev, next, nil
}

func (m *memPlans) PlansBetween(_ context.Context, _ string, first, last time.Time) ([]ledger.Batch, error) {
	return m.read(func(b ledger.Batch) bool { return !b.Slot.Before(first) && (last.IsZero() || !b.Slot.After(last)) }), nil
}

func (m *memPlans) AdoptedTopicIDs(context.Context, string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.adopted, nil
}

func (m *memPlans) WriteBatches(_ context.Context, bs []ledger.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bs {
		i := slices.IndexFunc(m.bs, func(o ledger.Batch) bool { return o.ID() == b.ID() })
		if i < 0 {
			m.bs = append(m.bs, b)
		} else {
			m.bs[i] = b
		}
	}
	return nil
}

// planFixture is one partition on an in-process broker, a planner over an
// in-memory ledger, and a clock the test sets.
type planFixture struct {
	t       *testing.T
	brokers []string
	a       *Activities
	plans   *memPlans
	clock   time.Time
}

func newPlanFixture(t *testing.T) *planFixture {
	t.Helper()
	brokers, sc := kafkatest.Cluster(t, planTopic, 1)
	f := &planFixture{t: t, brokers: brokers, plans: &memPlans{}}
	f.a = &Activities{Kafka: sc, Conn: kafka.Conn{Brokers: brokers}, Plans: f.plans, Clock: func() time.Time { return f.clock }}
	return f
}

// produce appends one record per timestamp to partition 0, in order.
func (f *planFixture) produce(stamps ...time.Time) {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.DefaultProduceTopic(planTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	for _, ts := range stamps {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("{}"), Timestamp: ts}).FirstErr(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// plan plans slot at the fixture's clock, as the planner activity.
func (f *planFixture) plan(slot time.Time) ledger.Batch {
	f.t.Helper()
	res, err := f.planSlot(slot, time.Time{})
	if err != nil || len(res.Batches) != 1 {
		f.t.Fatalf("plan slot %s: %d plans, %v", slot.Format("15:04"), len(res.Batches), err)
	}
	return res.Batches[0]
}

// planSlot runs the planner activity for slot, not before notBefore (zero:
// the slot's end).
func (f *planFixture) planSlot(slot, notBefore time.Time) (PlanResult, error) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.a)
	v, err := env.ExecuteActivity(f.a.PlanSlot, PlanInput{Topic: planTopic, Slot: slot, IdleWait: time.Second, NotBefore: notBefore})
	if err != nil {
		return PlanResult{}, err
	}
	var res PlanResult
	return res, v.Get(&res)
}

func stamps(n int, at time.Time) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = at
	}
	return out
}

// A record stamped far in the future (a producer's clock years ahead, or
// microseconds sent as milliseconds) is the first offset stamped at or after
// every later slot's end: planned by timestamps alone, every later plan of
// its partition would end at it, for ever. Every record must be planned
// within a bounded time after it was appended, whatever its timestamp.
func TestPlansDoNotStallBehindARecordStampedAhead(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.produce(stamps(10, base.Add(10*time.Second))...)  // offsets 0-9: slot base
	f.produce(time.UnixMilli(base.UnixMicro()))         // offset 10: microseconds as milliseconds
	f.produce(stamps(10, base.Add(70*time.Second))...)  // 11-20: slot base+1
	f.produce(base.Add(-time.Hour))                     // 21: a clock an hour behind
	f.produce(stamps(10, base.Add(130*time.Second))...) // 22-31: slot base+2
	const inLog = 32

	// Live: each slot is planned 5 s after its minute ends. Every offset
	// was in the log when slot base was planned.
	var plans []ledger.Batch
	for i := range 4 {
		slot := base.Add(time.Duration(i) * time.Minute)
		f.clock = slot.Add(time.Minute + 5*time.Second)
		plans = append(plans, f.plan(slot))
	}
	for i := 1; i < len(plans); i++ {
		if plans[i].Start != plans[i-1].End {
			t.Fatalf("plan %d starts at %d, the one before ends at %d", i, plans[i].Start, plans[i-1].End)
		}
	}
	if plans[0].Start != 0 || plans[0].End != 10 {
		t.Errorf("slot %s planned [%d,%d), want [0,10): its records are stamped in its minute",
			base.Format("15:04"), plans[0].Start, plans[0].End)
	}
	// Appended before slot base+1 ended (slot base's plan saw them), so
	// slot base+1 takes them, whatever their timestamps.
	if got := plans[1].End; got != inLog {
		t.Errorf("the plan of slot %s ends at %d, want %d: offsets [%d,%d), in the log since slot %s was planned, "+
			"are in no plan after %d more slots (ends: %d %d %d %d): a record stamped ahead stalls the partition",
			plans[1].Slot.Format("15:04"), got, inLog, got, inLog, base.Format("15:04"), len(plans)-1,
			plans[0].End, plans[1].End, plans[2].End, plans[3].End)
	}
	if plans[1].HighWater != inLog {
		t.Errorf("plan of slot %s records high watermark %d, want %d", plans[1].Slot.Format("15:04"), plans[1].HighWater, inLog)
	}
}

// A catch-up (slots planned long after they ended, by a backfill or a
// schedule that was down) keeps each minute's records in its own slot:
// the high watermark a plan saw bounds only the slot that had not ended
// when it was seen.
func TestCatchUpPlansKeepEachMinute(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	for i := range 4 {
		f.produce(stamps(5, base.Add(time.Duration(i)*time.Minute+time.Second))...)
	}
	f.clock = time.Now().UTC()
	for i := range 3 {
		slot := base.Add(time.Duration(i) * time.Minute)
		b := f.plan(slot)
		if b.Start != int64(5*i) || b.End != int64(5*i+5) {
			t.Errorf("slot %s planned [%d,%d) long after it ended, want [%d,%d)", slot.Format("15:04"), b.Start, b.End, 5*i, 5*i+5)
		}
	}
}

// recreate deletes the topic and creates it again under the same name, as
// an operator (or a script) might: its offsets start again at 0.
func (f *planFixture) recreate() {
	f.t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(f.a.Kafka)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := admin.DeleteTopic(planTopic); err != nil {
		f.t.Fatal(err)
	}
	if err := admin.CreateTopic(planTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		f.t.Fatal(err)
	}
}

// A topic deleted and created again starts its offsets at 0. Once the new
// log grows past the last plan's end, offsets below that end would be in
// no plan, and the next plan would read records of the new log as if they
// followed the old one. The planner must notice (Kafka's topic ID) and stop
// with an error that says what happened and what to do.
func TestPlanningARecreatedTopicStops(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.produce(stamps(10, base.Add(time.Second))...)
	f.produce(base.Add(90 * time.Second)) // ends slot base at 10
	f.clock = base.Add(time.Minute + 5*time.Second)
	first := f.plan(base)
	if first.End != 10 {
		t.Fatalf("slot %s planned [%d,%d), want [0,10)", base.Format("15:04"), first.Start, first.End)
	}

	f.recreate()
	f.produce(stamps(30, base.Add(70*time.Second))...) // the new log passes the old plan's end
	f.produce(base.Add(3 * time.Minute))
	f.clock = base.Add(2*time.Minute + 5*time.Second)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.a)
	v, err := env.ExecuteActivity(f.a.PlanSlot, PlanInput{Topic: planTopic, Slot: base.Add(time.Minute), IdleWait: time.Second})
	if err == nil {
		var res PlanResult
		_ = v.Get(&res)
		t.Fatalf("the slot after the topic was recreated was planned %+v: offsets of the new log planned as the old one's", res.Batches)
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != ErrTypeTopicChanged || !ae.NonRetryable() {
		t.Fatalf("got %v, want a non-retryable %s error", err, ErrTypeTopicChanged)
	}
	for _, want := range []string{"deleted and created again", "topic ID", "starter topic adopt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}

	// Adopted, the new incarnation is planned from its first offset.
	id, err := kafka.TopicID(f.a.Kafka, planTopic)
	if err != nil || id == "" || id == first.TopicID {
		t.Fatalf("topic ID %q (%v), first plan's %q", id, err, first.TopicID)
	}
	f.plans.adopted = map[string]bool{id: true}
	b := f.plan(base.Add(time.Minute))
	if b.Start != 0 || b.End != 30 || b.TopicID != id {
		t.Errorf("after adoption, slot %s planned [%d,%d) for topic ID %s, want [0,30) for %s",
			b.Slot.Format("15:04"), b.Start, b.End, b.TopicID, id)
	}
}

// The planner workflow is the lock on a topic's plans, but an activity can
// outlive its workflow (a terminated parent, a timed-out attempt): another
// planner may then write plans while this one computes. Right before
// writing, the planner reads the neighbouring plans again (only the latest
// slots', from the previous plans it read first) and refuses a plan that
// would overlap them or leave a gap.
func TestPlannerRefusesAPlanWrittenMeanwhile(t *testing.T) {
	for _, c := range []struct {
		name        string
		slot, other time.Duration // the slot planned, and the slot planned meanwhile, after the first
		otherEnd    int64
		next        bool // the slot after the planned one is planned before it (a backfill between plans)
		want        string
	}{
		{"the next slot's, which it would overlap", time.Minute, 2 * time.Minute, 30, false, "overlap"},
		{"the slot's before it, which it would overlap", 2 * time.Minute, time.Minute, 20, false, "ends at 20"},
		{"its own, between two plans", time.Minute, time.Minute, 20, true, "planned meanwhile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newPlanFixture(t)
			base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
			for i := range 3 {
				f.produce(stamps(10, base.Add(time.Duration(i)*time.Minute+time.Second))...)
			}
			f.produce(base.Add(181 * time.Second))
			f.clock = time.Now().UTC()
			first := f.plan(base)
			if c.next {
				f.plan(base.Add(c.slot + time.Minute))
			}

			other := ledger.Batch{Topic: planTopic, Partition: 0, Slot: base.Add(c.other), Start: first.End, End: c.otherEnd,
				State: ledger.StatePlanned, PlannedAt: f.clock, TopicID: first.TopicID}
			f.plans.writeMeanwhile(other)
			reads := len(f.plans.reads)
			_, err := f.planSlot(base.Add(c.slot), time.Time{})
			if b, written := f.plans.plan(0, base.Add(c.slot)); written && b.Version != other.Version {
				t.Fatalf("slot %s planned [%d,%d) although the plan of slot %s, written meanwhile, holds [%d,%d): offsets planned twice",
					b.Slot.Format("15:04"), b.Start, b.End, other.Slot.Format("15:04"), other.Start, other.End)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
			if n := len(f.plans.reads) - reads; n != 3 {
				t.Fatalf("%d ledger reads, want 3: the slot's plans, its neighbours, then the latest slots' plans", n)
			}
		})
	}
}

// A slot that takes a long history (a schedule created on a topic with
// history, the slot after an outage) would be one batch per partition:
// hours of work in one activity. Plans larger than MaxBatchOffsets are split
// into sub-batches that still partition the log.
func TestHugePlanIsSplitIntoSubBatches(t *testing.T) {
	f := newPlanFixture(t)
	f.a.MaxBatchOffsets = 300
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.produce(stamps(1000, base.Add(-time.Hour))...) // an hour of history before the first slot
	f.produce(base.Add(90 * time.Second))            // ends slot base at 1000
	f.clock = time.Now().UTC()

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.a)
	v, err := env.ExecuteActivity(f.a.PlanSlot, PlanInput{Topic: planTopic, Slot: base, IdleWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var res PlanResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	var got []string
	next := int64(0)
	for i, b := range res.Batches {
		got = append(got, fmt.Sprintf("%d:[%d,%d)", b.Sub, b.Start, b.End))
		if b.Start != next || b.Sub != uint32(i) || b.Offsets() > 300 || b.Offsets() == 0 {
			t.Errorf("sub-batch %d is %d:[%d,%d), want sub %d from %d, of 1 to 300 offsets", i, b.Sub, b.Start, b.End, i, next)
		}
		next = b.End
	}
	if next != 1000 || len(res.Batches) != 4 {
		t.Errorf("the plan of 1000 offsets is %v, want 4 sub-batches of at most 300 covering [0,1000)", got)
	}
	// Written so: a second call reads them back.
	v, err = env.ExecuteActivity(f.a.PlanSlot, PlanInput{Topic: planTopic, Slot: base, IdleWait: time.Second})
	var again PlanResult
	if err != nil || v.Get(&again) != nil || len(again.Batches) != len(res.Batches) || again.New != 0 {
		t.Errorf("read back %d plans (%d new), %v; want the same %d", len(again.Batches), again.New, err, len(res.Batches))
	}
}

// newNotBeforeFixture is a planner on the real clock and a slot that ended
// ten minutes ago, of 5 records (offset 5 ends it).
func newNotBeforeFixture(t *testing.T) (*planFixture, time.Time) {
	f := newPlanFixture(t)
	slot := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	f.produce(stamps(5, slot.Add(time.Second))...)
	f.produce(slot.Add(time.Minute))
	f.a.Clock = time.Now
	return f, slot
}

// A live slot's planner starts a little ahead of its time (NotBefore):
// the planning waits for it, and reads Kafka only then; further ahead than
// maxPlanWait, it is refused.
func TestPlanSlotWaitsUntilNotBefore(t *testing.T) {
	f, slot := newNotBeforeFixture(t)
	run := func(notBefore time.Time) (PlanResult, error) { return f.planSlot(slot, notBefore) }
	if _, err := run(time.Now().Add(maxPlanWait + 5*time.Second)); err == nil || !strings.Contains(err.Error(), "not to be planned before") {
		t.Fatalf("planning far ahead of NotBefore: %v, want refused", err)
	}
	if len(f.plans.bs) != 0 {
		t.Fatalf("a refused planning wrote %d plans", len(f.plans.bs))
	}
	notBefore := time.Now().Add(300 * time.Millisecond)
	res, err := run(notBefore)
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(notBefore) || len(res.Batches) != 1 || res.Batches[0].End != 5 {
		t.Fatalf("planned %+v by %s, want [0,5) once %s has passed", res.Batches, time.Now().Format("15:04:05.000"),
			notBefore.Format("15:04:05.000"))
	}
}

// A live slot's planner reads the ledger while it waits for NotBefore, so
// that at the slot's end only Kafka's end offsets and the check before the
// write are left; a plan written after that early read is still refused.
func TestPlanSlotReadsTheLedgerBeforeNotBefore(t *testing.T) {
	f, slot := newNotBeforeFixture(t)
	run := func(slot, notBefore time.Time) error {
		_, err := f.planSlot(slot, notBefore)
		return err
	}
	// The topic's first slot has no previous plan: the check reads the
	// slot's plans and its neighbours again, both.
	notBefore := time.Now().Add(500 * time.Millisecond)
	if err := run(slot, notBefore); err != nil {
		t.Fatal(err)
	}
	checkReads := func(n, want int) {
		t.Helper()
		after := 0
		for _, r := range f.plans.reads {
			if !r.Before(notBefore) {
				after++
			}
		}
		if len(f.plans.reads) != n || after != want {
			t.Fatalf("%d ledger reads, %d of them after NotBefore; want %d, only the check's %d after it", len(f.plans.reads), after, n, want)
		}
		f.plans.reads = nil
	}
	checkReads(4, 2)
	// The next one's: the check reads only the latest slots' plans, once.
	next := slot.Add(time.Minute)
	f.produce(stamps(3, next.Add(time.Second))...)
	f.produce(next.Add(time.Minute)) // offset 9 ends it
	notBefore = time.Now().Add(500 * time.Millisecond)
	if err := run(next, notBefore); err != nil {
		t.Fatal(err)
	}
	checkReads(3, 1)

	// Another planner writes the plan of the slot after while this one waits.
	last := next.Add(time.Minute)
	f.produce(stamps(3, last.Add(time.Second))...)
	f.produce(last.Add(time.Minute))
	other := ledger.Batch{Topic: planTopic, Partition: 0, Slot: last, Start: 9, End: 13, State: ledger.StatePlanned, PlannedAt: time.Now()}
	f.plans.writeMeanwhile(other)
	err := run(last, time.Now().Add(300*time.Millisecond))
	if b, written := f.plans.plan(0, last); written && b.WorkflowID != "" {
		t.Fatalf("a second plan [%d,%d) of slot %s was written over the one written meanwhile", b.Start, b.End, last.Format("15:04"))
	}
	if err == nil || !strings.Contains(err.Error(), "planned meanwhile") {
		t.Fatalf("got %v, want an error about the plan written meanwhile", err)
	}
}

// Once a record stamped far ahead has been planned, it is still the first
// offset Kafka gives for every later slot's end (ListOffsets looks from the
// log's start), for as long as the log holds it: read so, every later plan
// ended at the high watermark the plan before saw, and each slot counted the
// minute before its own, a minute late. The planner must look for its end
// among the offsets not yet planned.
func TestPlansStayOnTimeAfterARecordStampedAhead(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	f.produce(stamps(5, at(10*time.Second))...)            // 0-4: slot base
	f.produce(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) // 5: a clock years ahead
	f.clock = at(time.Minute + time.Second)
	want := func(slot time.Time, start, end int64) {
		t.Helper()
		b := f.plan(slot)
		if b.Start != start || b.End != end {
			t.Errorf("slot %s planned [%d,%d), want [%d,%d)", slot.Format("15:04"), b.Start, b.End, start, end)
		}
	}
	want(base, 0, 5)
	for i := int64(1); i <= 4; i++ { // live: each minute's records, then its plan a second after it ends
		first := 6 + 6*(i-1) // minute i's five records, then the next minute's first
		f.produce(stamps(5, at(time.Duration(i)*time.Minute+10*time.Second))...)
		f.produce(at(time.Duration(i+1)*time.Minute + 500*time.Millisecond))
		f.clock = at(time.Duration(i+1)*time.Minute + time.Second)
		start := first - 1 // minute i's first record, appended before the plan of the minute before
		if i == 1 {
			start = 5 // the record stamped ahead, appended before slot base+1 ended
		}
		want(at(time.Duration(i)*time.Minute), start, first+5)
	}
}

// stampedAhead produces, on the fixture's partition, five records of slot
// base, one stamped in 2099 (offset 5), then plans slot base a second after
// it ends: the start of the tests below.
func (f *planFixture) stampedAhead(base time.Time) {
	f.t.Helper()
	f.produce(stamps(5, base.Add(10*time.Second))...)
	f.produce(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	f.clock = base.Add(time.Minute + time.Second)
	if b := f.plan(base); b.Start != 0 || b.End != 5 {
		f.t.Fatalf("slot %s planned [%d,%d), want [0,5)", base.Format("15:04"), b.Start, b.End)
	}
}

// Looking past a record stamped ahead is bounded: a slot whose previous
// plan is older than the minute before it (a paused schedule: the floor is
// hours back, and the read would be the whole backlog), or whose offsets
// past the floor are more than EndScan.Offsets, or whose read takes longer
// than EndScan.Budget (an open transaction that Kafka cannot yet prove the
// offsets before it complete for), ends at the floor, as before the
// planner looked: late, never wrong.
func TestLookingPastARecordStampedAheadIsBounded(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		f := newPlanFixture(t)
		base := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
		f.stampedAhead(base)
		f.produce(stamps(5, base.Add(2*time.Hour))...) // 6-10, after two hours paused
		f.produce(base.Add(2*time.Hour + 70*time.Second))
		slot := base.Add(2 * time.Hour)
		f.clock = slot.Add(time.Minute + time.Second)
		if b := f.plan(slot); b.Start != 5 || b.End != 6 {
			t.Errorf("slot %s, the first after two hours paused, planned [%d,%d), want [5,6): the floor, without a read of the backlog",
				slot.Format("15:04"), b.Start, b.End)
		}
	})
	t.Run("offsets", func(t *testing.T) {
		f := newPlanFixture(t)
		f.a.EndScan = EndScan{Budget: time.Minute, Offsets: 3}
		base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
		f.stampedAhead(base)
		f.produce(stamps(5, base.Add(70*time.Second))...) // 6-10
		f.produce(base.Add(2*time.Minute + time.Second))  // 11: the end, 5 offsets past the floor
		f.clock = base.Add(2*time.Minute + time.Second)
		if b := f.plan(base.Add(time.Minute)); b.Start != 5 || b.End != 6 {
			t.Errorf("planned [%d,%d), want [5,6): the floor, past 3 offsets", b.Start, b.End)
		}
	})
	t.Run("budget", func(t *testing.T) {
		f := newPlanFixture(t)
		f.a.EndScan = EndScan{Budget: 300 * time.Millisecond, Offsets: 1000}
		base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
		f.stampedAhead(base)
		// Offsets 6-7 of a transaction that aborts after another one,
		// still open, has begun (8): Kafka delivers neither, so a read
		// cannot prove 6-7 done until the open one ends.
		aborts, open := f.txnProducer("aborts"), f.txnProducer("open")
		defer aborts.Close()
		defer open.Close()
		f.produceIn(aborts, stamps(2, base.Add(70*time.Second))...)
		f.produceIn(open, base.Add(80*time.Second))
		if err := aborts.EndTransaction(context.Background(), kgo.TryAbort); err != nil {
			t.Fatal(err)
		}
		f.clock = base.Add(2*time.Minute + time.Second)
		began := time.Now()
		res, err := f.planSlot(base.Add(time.Minute), time.Time{})
		if err != nil || len(res.Batches) != 1 {
			t.Fatalf("plan: %v, %v", res, err)
		}
		if b := res.Batches[0]; b.Start != 5 || b.End != 6 {
			t.Errorf("planned [%d,%d), want [5,6): the floor, once the budget is spent", b.Start, b.End)
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Errorf("planning took %s", took)
		}
	})
}

// txnProducer is a transactional producer to the fixture's partition, its
// transaction begun.
func (f *planFixture) txnProducer(id string) *kgo.Client {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.DefaultProduceTopic(planTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(id))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		f.t.Fatal(err)
	}
	return cl
}

// produceIn appends one record per timestamp through cl.
func (f *planFixture) produceIn(cl *kgo.Client, stamps ...time.Time) {
	f.t.Helper()
	for _, ts := range stamps {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("{}"), Timestamp: ts}).FirstErr(); err != nil {
			f.t.Fatal(err)
		}
	}
}

// The previous plan of an adopted topic (deleted and created again) is of
// the old log: its end and floor say nothing of the new log's offsets, and
// the planner does not read the new log from them past a record stamped
// ahead; the new incarnation's first plan ends where ListOffsets says.
func TestLookingPastARecordStampedAheadNotAcrossTopicIDs(t *testing.T) {
	f := newPlanFixture(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	f.produce(stamps(10, base.Add(time.Second))...)
	f.produce(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) // 10: the old log's end, stamped ahead
	f.clock = base.Add(time.Minute + time.Second)
	if b := f.plan(base); b.End != 10 {
		t.Fatalf("slot %s planned [%d,%d), want [0,10)", base.Format("15:04"), b.Start, b.End)
	}
	f.recreate()
	f.produce(stamps(2, base.Add(70*time.Second))...)         // 0-1: slot base+1
	f.produce(base.Add(2*time.Minute + 500*time.Millisecond)) // 2: the next minute
	id, err := kafka.TopicID(f.a.Kafka, planTopic)
	if err != nil {
		t.Fatal(err)
	}
	f.plans.adopted = map[string]bool{id: true}
	f.clock = base.Add(2*time.Minute + 2*time.Second)
	if b := f.plan(base.Add(time.Minute)); b.Start != 0 || b.End != 2 {
		t.Errorf("the adopted topic's first slot planned [%d,%d), want [0,2)", b.Start, b.End)
	}
}
