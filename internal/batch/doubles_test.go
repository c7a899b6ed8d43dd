package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/kafka/kafkatest"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// memLedger is the ledger in memory: the latest row of each batch.
type memLedger struct {
	mu    sync.Mutex
	rows  map[ledger.BatchID]ledger.Batch
	reads int
	fail  int // the next fail WriteBatches calls fail
	// stuck, once set, holds every read begun after it until the read's
	// context ends: a ledger that no longer answers.
	stuck chan struct{}
	hung  int // reads held by stuck
	// slow, once set, holds every read begun after it until it is closed
	// (or the read's context ends), and the read then answers: a slow
	// ledger.
	slow chan struct{}
	held int // reads held by slow
}

// hang makes the reads that begin from now on wait until their context ends.
func (l *memLedger) hang(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stuck = make(chan struct{})
	t.Cleanup(func() { close(l.stuck) })
}

// holdReads makes the reads that begin from now on wait until release
// (or their context's end), and then answer.
func (l *memLedger) holdReads(t *testing.T) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slow := make(chan struct{})
	l.slow = slow
	var once sync.Once
	release = func() { once.Do(func() { close(slow) }) }
	t.Cleanup(release)
	return release
}

// heldReads is how many reads holdReads has held.
func (l *memLedger) heldReads() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

func newLedger() *memLedger { return &memLedger{rows: map[ledger.BatchID]ledger.Batch{}} }

func (l *memLedger) PartitionPlans(_ context.Context, topic string, p int32, first, last time.Time) ([]ledger.Batch, error) {
	return l.plans(topic, func(id ledger.BatchID) bool { return id.Partition == p }, first, last), nil
}

func (l *memLedger) TopicPlans(ctx context.Context, topic string, first, last time.Time) ([]ledger.Batch, error) {
	l.mu.Lock()
	stuck, slow := l.stuck, l.slow
	if slow != nil {
		l.held++
	}
	l.mu.Unlock()
	if slow != nil {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-slow:
		}
	}
	if stuck != nil {
		l.mu.Lock()
		l.hung++
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stuck:
			return nil, errors.New("the test ended")
		}
	}
	return l.plans(topic, func(ledger.BatchID) bool { return true }, first, last), nil
}

// plans returns the rows of topic whose ids match, for the slots from first
// to last, by slot, partition and sub-batch; each call counts as a read.
func (l *memLedger) plans(topic string, match func(ledger.BatchID) bool, first, last time.Time) []ledger.Batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	var out []ledger.Batch
	for id, b := range l.rows {
		if id.Topic == topic && match(id) && !id.Slot.Before(first) && !id.Slot.After(last) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, ledger.Compare)
	return out
}

func (l *memLedger) WriteBatches(_ context.Context, bs []ledger.Batch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail > 0 {
		l.fail--
		return errors.New("injected: ledger write failed")
	}
	for _, b := range bs {
		// As ReplacingMergeTree(version): the highest version wins.
		if old, ok := l.rows[b.ID()]; !ok || b.Version >= old.Version {
			l.rows[b.ID()] = b
		}
	}
	return nil
}

func (l *memLedger) plan(b ledger.Batch) {
	b.State = ledger.StatePlanned
	if err := l.WriteBatches(context.Background(), []ledger.Batch{b}); err != nil {
		panic(err)
	}
}

func (l *memLedger) row(id ledger.BatchID) (ledger.Batch, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.rows[id]
	return b, ok
}

// hungReads is how many reads stuck has held.
func (l *memLedger) hungReads() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hung
}

func (l *memLedger) readCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads
}

// memSink keeps what a batch wrote, keyed as ClickHouse keys it: partials
// per batch (a rewrite replaces them), dead letters and raw rows by offset.
type memSink struct {
	mu            sync.Mutex
	partials      map[ledger.BatchID]agg.Table
	versions      map[ledger.BatchID]uint64
	dead          map[int64]sink.DeadLetter
	raw           map[int64]time.Time // offset -> slot of the row
	failPartials  int                 // the next failPartials writes fail
	partialWrites int                 // WritePartials calls
	rawWrites     int                 // WriteRaw calls
	failRaw       int                 // the next failRaw WriteRaw calls fail
	failDead      int
	// deadCalls counts the WriteDeadLetters calls with dead letters in
	// them; maxDeadBytes is the largest such call's total payload bytes:
	// what the batch held in memory at once.
	deadCalls    int
	maxDeadBytes int
}

func newSink() *memSink {
	return &memSink{partials: map[ledger.BatchID]agg.Table{}, versions: map[ledger.BatchID]uint64{}, dead: map[int64]sink.DeadLetter{}, raw: map[int64]time.Time{}}
}

func (s *memSink) WritePartials(_ context.Context, ps []Partials) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partialWrites++
	if s.failPartials > 0 {
		s.failPartials--
		return errors.New("injected: partials write failed")
	}
	for _, p := range ps {
		if old, ok := s.versions[p.ID]; ok && p.Version < old {
			continue // as ReplacingMergeTree(version): the older write loses
		}
		c := agg.Table{}
		if err := c.Merge(p.Table); err != nil {
			return err
		}
		s.partials[p.ID], s.versions[p.ID] = c, p.Version
	}
	return nil
}

type memArchive struct {
	table agg.Table
	ro    sink.RawOffsets
}

func (a *memArchive) AggregateRaw(context.Context, ledger.BatchID, int64, int64) (agg.Table, sink.RawOffsets, error) {
	return a.table, a.ro, nil
}

func (s *memSink) WriteDeadLetters(_ context.Context, dls []sink.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failDead > 0 && len(dls) > 0 {
		s.failDead--
		return errors.New("injected: dead letter write failed")
	}
	if len(dls) > 0 {
		s.deadCalls++
	}
	size := 0
	for _, d := range dls {
		s.dead[d.Offset] = d
		size += len(d.Payload)
	}
	s.maxDeadBytes = max(s.maxDeadBytes, size)
	return nil
}

// deadWrites returns deadCalls and maxDeadBytes.
func (s *memSink) deadWrites() (calls, maxBytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadCalls, s.maxDeadBytes
}

func (s *memSink) deadOffsets() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for o := range s.dead {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func (s *memSink) WriteRaw(_ context.Context, bufs []*sink.RawBuffer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rawWrites++
	if s.failRaw > 0 {
		s.failRaw--
		return errors.New("injected: raw archive write failed")
	}
	for _, r := range bufs {
		slots := r.Columns(1)[15].([]time.Time)
		for i, o := range r.Offsets() {
			s.raw[o] = slots[i]
		}
	}
	return nil
}

func (s *memSink) NewRawWriter() RawWriter { return &memRaw{s: s} }

// memRaw stores rows on Commit only; an aborted insert stores nothing.
type memRaw struct {
	s       *memSink
	pending []int64
	slots   []time.Time
	open    bool
}

func (w *memRaw) Send(_ context.Context, r *sink.RawBuffer) error {
	cols := r.Columns(1)
	w.pending = append(w.pending, r.Offsets()...)
	w.slots = append(w.slots, cols[15].([]time.Time)...)
	w.open = w.open || r.Len() > 0
	r.Reset()
	return nil
}

func (w *memRaw) Commit(ctx context.Context, r *sink.RawBuffer) error {
	if err := w.Send(ctx, r); err != nil {
		return err
	}
	w.s.mu.Lock()
	for i, o := range w.pending {
		w.s.raw[o] = w.slots[i]
	}
	w.s.mu.Unlock()
	w.Abort()
	return nil
}

func (w *memRaw) Open() bool { return w.open }
func (w *memRaw) Abort()     { w.pending, w.slots, w.open = nil, nil, false }

// memBeat keeps the last heartbeat as Temporal does: encoded.
type memBeat struct {
	mu      sync.Mutex
	last    []byte
	n       int
	maxSize int // the largest heartbeat recorded, encoded
	// tables counts the heartbeats that carried an aggregate not carried
	// before (each one a sort and a compression of the batch's table).
	tables    int
	lastTable []byte
}

func (h *memBeat) Record(_ context.Context, details any) {
	b, err := json.Marshal(details)
	if err != nil {
		panic(err)
	}
	h.mu.Lock()
	h.last, h.n, h.maxSize = b, h.n+1, max(h.maxSize, len(b))
	if p, ok := details.(progress); ok && p.Table != nil && !bytes.Equal(p.Table, h.lastTable) {
		h.tables, h.lastTable = h.tables+1, p.Table
	}
	h.mu.Unlock()
}

func (h *memBeat) Last(_ context.Context, out any) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last != nil && json.Unmarshal(h.last, out) == nil
}

func (h *memBeat) progress() progress {
	var p progress
	h.Last(context.Background(), &p)
	return p
}

// --- Kafka: franz-go's in-process broker --------------------------------

const topic = "ads"

// slot is the minute the tests process; records are stamped around it.
var slot = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

type rec struct {
	at      time.Time // log time
	id      string    // event_id (default: e<offset>)
	bad     bool      // not a valid event: a dead letter
	evTime  time.Time // event time (default: at)
	country string
	marker  bool   // a transaction's marker (added by produceTxn)
	aborted bool   // in a transaction that was aborted
	size    int    // a bad record's payload is padded to about size bytes
	revenue string // the revenue's JSON number (default: 0.<offset mod 1000>)
}

type fixture struct {
	t       *testing.T
	brokers []string
	kafka   sarama.Client
	ledger  *memLedger
	sink    *memSink
	recs    []rec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	brokers, sc := kafkatest.Cluster(t, topic, 1)
	return &fixture{t: t, brokers: brokers, kafka: sc, ledger: newLedger(), sink: newSink()}
}

func (f *fixture) processor() *Processor {
	return &Processor{Ledger: f.ledger, Sink: f.sink, Kafka: f.kafka, Conn: kafka.Conn{Brokers: f.brokers}, Raw: true}
}

func (r rec) value(i int) []byte {
	if r.bad {
		v := fmt.Appendf(nil, `{"event_id": "e%d", "revenue": "lots"`, i)
		if pad := r.size - len(v) - len(`, "pad": ""}`); pad > 0 {
			v = append(v, `, "pad": "`...)
			v = append(v, bytes.Repeat([]byte{byte('a' + i%26)}, pad)...)
			v = append(v, '"')
		}
		return append(v, '}')
	}
	et := r.evTime
	if et.IsZero() {
		et = r.at
	}
	country := r.country
	if country == "" {
		country = []string{"US", "KR", "JP"}[i%3]
	}
	id := r.id
	if id == "" {
		id = fmt.Sprintf("e%d", i)
	}
	revenue := r.revenue
	if revenue == "" {
		revenue = fmt.Sprintf("0.%03d", i%1000)
	}
	return fmt.Appendf(nil, `{"event_id":%q,"timestamp":%q,"user_id":"u","campaign_id":"c","ad_format":"banner",`+
		`"country":%q,"device":"ios","event_type":"impression","revenue":%s}`, id, et.Format(time.RFC3339Nano), country, revenue)
}

// produce appends records to the partition, in order.
func (f *fixture) produce(rs ...rec) {
	f.t.Helper()
	cl := f.producer()
	defer cl.Close()
	f.send(cl, rs)
}

// produceTxn appends records in one transaction, committed or aborted. The
// transaction's marker takes an offset of its own after them.
func (f *fixture) produceTxn(commit bool, rs ...rec) {
	f.t.Helper()
	cl := f.producer(kgo.TransactionalID("batch-test"))
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		f.t.Fatal(err)
	}
	f.send(cl, rs)
	if err := cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
		f.t.Fatal(err)
	}
	f.recs = append(f.recs, rec{marker: true})
}

// produceMinutes produces the records most tail tests read: offsets 0-19
// stamped in the minute before the slot, 20-59 in the slot (a dead letter
// every third: 22, 25, ...), 60-69 in the minute after it.
func (f *fixture) produceMinutes() {
	f.produce(span(slot.Add(-time.Minute), 20, 0)...)
	f.produce(span(slot, 40, 3)...)
	f.produce(span(slot.Add(time.Minute), 10, 0)...)
}

func (f *fixture) producer(opts ...kgo.Opt) *kgo.Client {
	f.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	return cl
}

func (f *fixture) send(cl *kgo.Client, rs []rec) {
	f.t.Helper()
	var mu sync.Mutex
	var failed error
	for _, r := range rs {
		i := len(f.recs)
		f.recs = append(f.recs, r)
		kr := &kgo.Record{Value: r.value(i), Timestamp: r.at, Partition: 0}
		cl.Produce(context.Background(), kr, func(_ *kgo.Record, err error) {
			mu.Lock()
			failed = errors.Join(failed, err)
			mu.Unlock()
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		f.t.Fatal(failed)
	}
}

// span makes n records stamped evenly in [from, from+1m), bad every badEvery (0: none).
func span(from time.Time, n, badEvery int) []rec {
	out := make([]rec, n)
	for i := range out {
		out[i] = rec{at: from.Add(time.Duration(i) * time.Minute / time.Duration(n)), bad: badEvery > 0 && i%badEvery == badEvery-1}
	}
	return out
}

// want is what offsets [start, end) hold: their aggregate and their dead letters.
func (f *fixture) want(start, end int64) (agg.Table, []int64) {
	t, dead := agg.Table{}, []int64(nil)
	var p event.Parser
	for o := start; o < end; o++ {
		if f.recs[o].marker || f.recs[o].aborted {
			continue
		}
		ev, err := p.Parse(f.recs[o].value(int(o)))
		if err != nil {
			dead = append(dead, o)
			continue
		}
		if err := t.Add(&ev); err != nil {
			f.t.Fatal(err)
		}
	}
	return t, dead
}

// checkDone asserts that the batch [start, end) of slot is done and exact:
// ledger row balanced, partials equal to the records' aggregate, dead
// letters stored for exactly the invalid offsets.
func (f *fixture) checkDone(res Result, start, end int64) {
	f.t.Helper()
	f.checkSubDone(res, 0, start, end)
}

// checkSubDone is checkDone for sub-batch sub of slot's plan.
func (f *fixture) checkSubDone(res Result, sub uint32, start, end int64) {
	f.t.Helper()
	wantT, wantDead := f.want(start, end)
	id := ledger.BatchID{Topic: topic, Partition: 0, Slot: slot, Sub: sub}
	b, ok := f.ledger.row(id)
	if !ok || !b.Done() {
		f.t.Fatalf("ledger row %+v (found %v): not done", b, ok)
	}
	if b.Start != start || b.End != end || !b.Balanced() {
		f.t.Fatalf("ledger row [%d,%d) events %d dead %d skipped %d; want plan [%d,%d) balanced", b.Start, b.End,
			b.Events, b.DeadLetters, b.Skipped, start, end)
	}
	if res.Batch.Events != b.Events {
		f.t.Fatalf("result says %d events, the ledger %d", res.Batch.Events, b.Events)
	}
	f.sink.mu.Lock()
	got := f.sink.partials[id]
	f.sink.mu.Unlock()
	if d := agg.Diff(wantT, got); len(d) > 0 {
		f.t.Fatalf("partials differ from the records of [%d,%d): %v", start, end, d)
	}
	var inPlan []int64
	for _, o := range f.sink.deadOffsets() {
		if o >= start && o < end {
			inPlan = append(inPlan, o)
		}
	}
	if !slices.Equal(inPlan, wantDead) || b.DeadLetters != uint64(len(wantDead)) {
		f.t.Fatalf("dead letters %v (ledger %d), want %v", inPlan, b.DeadLetters, wantDead)
	}
}

// eventually waits (bounded) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// holdThenConfirm tails slot with a guessed start at prevEnd, checks that
// the held run writes nothing until the previous plan (ending at prevEnd)
// confirms it, and that it then writes what it held before its own plan
// [prevEnd, end) exists; it returns the tail's result once planned.
func (f *fixture) holdThenConfirm(prevEnd, end int64) Result {
	f.t.Helper()
	p := f.processor()
	p.BeatEvery = time.Millisecond // a run that is not held writes at every heartbeat
	done := startTail(f.t, p, &memBeat{})
	eventually(f.t, "the tail reads the ledger while holding", func() bool { return f.ledger.readCount() >= 3 })
	if got := f.sink.deadOffsets(); len(got) > 0 {
		f.t.Fatalf("held dead letters %v written before confirmation", got)
	}
	f.ledger.plan(prevPlan(0, prevEnd)) // confirms the guess
	eventually(f.t, "the confirmed tail writes what it held", func() bool { return len(f.sink.deadOffsets()) > 0 })
	f.ledger.plan(plan(prevEnd, end))
	return wait(f.t, done)
}
