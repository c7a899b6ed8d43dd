package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/generator/gen"
	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

// producerConfig is the sarama configuration of the generator's producer.
func producerConfig(o options) *sarama.Config {
	c := o.conn.Config("rtbpipe-generator")
	c.Producer.Return.Successes = true // the manifest counts acknowledged records only
	c.Producer.Return.Errors = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	// Idempotent on request (--idempotent): a retry after a lost
	// acknowledgement would otherwise write the record twice, and the log
	// would hold a record the manifest counts once.
	c.Producer.Idempotent = o.idempotent
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Compression = o.codec
	c.Producer.Flush.Messages = o.batch
	c.Producer.Flush.Frequency = o.linger
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	// One request in flight per broker: retries cannot reorder records, so
	// record timestamps stay in order within a partition (the pipeline plans
	// slots by timestamp).
	c.Net.MaxOpenRequests = 1
	c.ChannelBufferSize = 4096
	return c
}

// recordMeta travels with a record through the producer
// (ProducerMessage.Metadata) back to the Successes channel.
type recordMeta struct {
	key     agg.Key
	revenue int64
	valid   bool
}

// newMessage wraps a generated record for the producer.
func newMessage(topic string, partition int32, r *gen.Record, malformed *recordMeta) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{
		Topic:     topic,
		Partition: partition,
		Value:     sarama.ByteEncoder(r.Value),
		Timestamp: r.LogTime,
		Metadata:  malformed,
	}
	if r.Valid {
		e := &r.Event
		m.Metadata = &recordMeta{
			key:     agg.Key{Window: e.Window(), EventType: e.EventType, Country: e.Country, AdFormat: e.AdFormat},
			revenue: e.RevenueMicros,
			valid:   true,
		}
	}
	return m
}

// tally aggregates the acknowledged records. The collector goroutine
// writes it; the mutex lets run take a manifest while the collector may
// still be running (drain timeout).
type tally struct {
	mu                                       sync.Mutex
	table                                    agg.Table
	produced, valid, malformed, late, failed int64
	firstErr                                 error
	lastLogTime                              time.Time
}

func newTally() *tally { return &tally{table: agg.Table{}} }

// ack counts a record Kafka acknowledged.
func (t *tally) ack(m *sarama.ProducerMessage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.produced++
	t.lastLogTime = m.Timestamp
	md := m.Metadata.(*recordMeta)
	if !md.valid {
		t.malformed++
		return
	}
	t.valid++
	// Late as the pipeline sees it: the event's window precedes the minute
	// of the record's timestamp. That is the timestamp Kafka acknowledged:
	// ours (CreateTime), or the broker's on a LogAppendTime topic.
	if md.key.Window < event.WindowOf(m.Timestamp) {
		t.late++
	}
	v := t.table[md.key]
	v.Count++
	v.RevenueMicros += md.revenue
	t.table[md.key] = v
}

// fail counts a record Kafka did not acknowledge.
func (t *tally) fail(e *sarama.ProducerError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed++
	if t.firstErr == nil {
		t.firstErr = e
	}
}

func (t *tally) firstError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.firstErr
}

// counts returns the acknowledged and failed counts so far.
func (t *tally) counts() (acked, failed int64, lastLogTime time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.produced, t.failed, t.lastLogTime
}

func (t *tally) manifest(topic string, partitions int32, started, finished time.Time) *manifest.Manifest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &manifest.Manifest{
		Topic:      topic,
		Started:    started.UTC(),
		Finished:   finished.UTC(),
		Produced:   t.produced,
		Valid:      t.valid,
		Malformed:  t.malformed,
		Late:       t.late,
		Failed:     t.failed,
		Partitions: partitions,
		Rows:       t.table.Rows(),
	}
}

// collect drains the producer's Successes and Errors until both are closed
// (after AsyncClose), logging progress every interval.
func collect(p sarama.AsyncProducer, t *tally, sent *atomic.Int64, interval time.Duration, synthetic bool, log *slog.Logger) {
	succ, errs := p.Successes(), p.Errors()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last, lastN := time.Now(), int64(0)
	var loggedErrs int64
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			t.ack(m)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t.fail(e)
			if loggedErrs < 5 {
				loggedErrs++
				log.Error("record not acknowledged by Kafka", "partition", e.Msg.Partition, "err", e.Err)
			}
		case now := <-tick.C:
			acked, failed, lt := t.counts()
			rate := float64(acked-lastN) / now.Sub(last).Seconds()
			attrs := []any{"acked", acked, "sent", sent.Load(), "failed", failed,
				"rate", fmt.Sprintf("%.0f/s", rate)}
			if synthetic && !lt.IsZero() {
				attrs = append(attrs, "log_time", lt.UTC().Format(time.RFC3339))
			}
			log.Info("progress", attrs...)
			last, lastN = now, acked
		}
	}
}

// minSleep: a pacer does not sleep for less; events due that soon go out
// at once (the schedule is absolute, so this does not drift).
const minSleep = 200 * time.Microsecond

// maxBacklog bounds the catch-up burst after the producer could not keep
// up: the schedule is moved rather than bursting more than this much.
const maxBacklog = time.Second

// pacer schedules event i at anchor + (i-base)/rate on the wall clock.
type pacer struct {
	interval float64 // ns per event
	anchor   time.Time
	base     int64
	timer    *time.Timer
	behind   int // schedule moves
	lastWarn time.Time
	log      *slog.Logger
}

func newPacer(rate float64, start time.Time, log *slog.Logger) *pacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pacer{interval: 1e9 / rate, anchor: start, timer: t, log: log}
}

// due returns when event i is due.
func (p *pacer) due(i int64) time.Time {
	return p.anchor.Add(time.Duration(float64(i-p.base) * p.interval))
}

// wait blocks until event i (due at due) may go; false when ctx ended.
func (p *pacer) wait(ctx context.Context, i int64, due time.Time) bool {
	d := time.Until(due)
	if d < -maxBacklog {
		now := time.Now()
		p.anchor, p.base = now.Add(-maxBacklog), i
		p.behind++
		if now.Sub(p.lastWarn) > 10*time.Second {
			p.lastWarn = now
			p.log.Warn("cannot keep up with --rate: Kafka is slower; rate is lower than asked", "behind_by", -d.Round(time.Millisecond))
		}
		return true
	}
	if d < minSleep {
		return true
	}
	p.timer.Reset(d)
	select {
	case <-ctx.Done():
		p.timer.Stop()
		return false
	case <-p.timer.C:
		return true
	}
}

// produce generates and sends records until the count or duration is
// reached or ctx ends; it returns why it stopped.
func produce(ctx context.Context, o options, g *gen.Generator, p sarama.AsyncProducer, partitions int32,
	sent *atomic.Int64, log *slog.Logger) string {
	malformed := &recordMeta{}
	synthetic := !o.startTime.IsZero()
	duration := o.duration
	if o.count > 0 {
		duration = 0 // count wins
	}
	start := time.Now()
	var deadline time.Time
	if duration > 0 {
		if synthetic {
			deadline = o.startTime.Add(duration)
		} else {
			deadline = start.Add(duration)
		}
	}
	if !o.untilTime.IsZero() && (deadline.IsZero() || o.untilTime.Before(deadline)) {
		deadline = o.untilTime // no record is logged at or after it
	}
	var pc *pacer
	if !synthetic && o.rate > 0 {
		pc = newPacer(o.rate, start, log)
	}
	ns := 0.0
	if synthetic {
		ns = 1e9 / o.rate
	}
	for i := int64(0); ; i++ {
		if o.count > 0 && i >= o.count {
			return "count reached"
		}
		var lt time.Time
		switch {
		case synthetic:
			lt = o.startTime.Add(time.Duration(float64(i) * ns))
			if !deadline.IsZero() && !lt.Before(deadline) {
				return "duration reached"
			}
		case pc != nil:
			due := pc.due(i)
			if !deadline.IsZero() && !due.Before(deadline) {
				return "duration reached"
			}
			if !pc.wait(ctx, i, due) {
				return "interrupted"
			}
			lt = time.Now()
			if !o.untilTime.IsZero() && !lt.Before(o.untilTime) { // --until: no log time at or past it
				return "duration reached"
			}
		default:
			lt = time.Now()
			if !o.untilTime.IsZero() && !lt.Before(o.untilTime) { // --until: no log time at or past it
				return "duration reached"
			}
		}
		r := g.Next(lt)
		m := newMessage(o.topic, int32(i%int64(partitions)), &r, malformed)
		select {
		case p.Input() <- m:
			sent.Add(1)
		case <-ctx.Done():
			return "interrupted"
		}
	}
}

// run produces as o says and returns the manifest of what Kafka
// acknowledged; the error says why the run is not a success (flags,
// connection, failed records, manifest file).
func run(ctx context.Context, o options, log *slog.Logger) (*manifest.Manifest, error) {
	seed := o.seed
	if !o.seedSet {
		seed = rand.Uint64()
	}
	g := gen.New(gen.Config{Seed: seed, LateFraction: o.late, MaxLateness: o.maxLateness, MalformedFraction: o.malformed, Anomaly: o.anomaly})

	cl, err := kafka.NewClient(ctx, o.brokers, producerConfig(o))
	if err != nil {
		return nil, err
	}
	closeClient := true // not after a drain timeout: the producer may still use it
	defer func() {
		if closeClient {
			cl.Close()
		}
	}()
	parts, err := kafka.EnsureTopic(cl, o.topic, o.partitions)
	if err != nil {
		return nil, fmt.Errorf("Kafka at %v: %w", o.brokers, err)
	}
	if parts != o.partitions {
		log.Info("topic exists with another partition count; using all of its partitions", "topic", o.topic, "partitions", parts)
	}
	prod, err := sarama.NewAsyncProducerFromClient(cl)
	if err != nil {
		return nil, fmt.Errorf("Kafka producer at %v: %w", o.brokers, err)
	}

	mode := "real-time"
	attrs := []any{"topic", o.topic, "brokers", o.brokers, "partitions", parts, "seed", seed, "rate", o.rate}
	if !o.startTime.IsZero() {
		mode = "synthetic"
		attrs = append(attrs, "start", o.startTime.Format(time.RFC3339Nano))
	}
	switch {
	case o.count > 0:
		attrs = append(attrs, "count", o.count)
	case o.duration > 0:
		attrs = append(attrs, "duration", o.duration)
	default:
		attrs = append(attrs, "until", "stopped")
	}
	if o.late > 0 {
		attrs = append(attrs, "late_fraction", o.late, "max_lateness", o.maxLateness)
	}
	if o.malformed > 0 {
		attrs = append(attrs, "malformed_fraction", o.malformed)
	}
	if a := o.anomaly; a != nil {
		attrs = append(attrs, "anomaly", fmt.Sprintf("%s%s clicks ×%g, event time [%s, %s)", a.Country, a.AdFormat, a.Clicks,
			a.From.Format(time.TimeOnly), a.To.Format(time.TimeOnly)))
	}
	log.Info("producing ("+mode+" log times)", attrs...)

	started := time.Now()
	t := newTally()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		collect(prod, t, &sent, o.progress, !o.startTime.IsZero(), log)
	}()
	reason := produce(ctx, o, g, prod, parts, &sent, log)
	log.Info("stopping: "+reason+"; draining the producer", "sent", sent.Load(), "drain_timeout", o.drainTimeout)
	prod.AsyncClose()
	var unknown int64 // records neither acknowledged nor failed when the drain timed out
	drain := time.NewTimer(o.drainTimeout)
	select {
	case <-done:
		drain.Stop()
	case <-drain.C:
		closeClient = false
	}
	finished := time.Now()

	m := t.manifest(o.topic, parts, started, finished)
	if !closeClient {
		unknown = sent.Load() - m.Produced - m.Failed
		m.Failed += unknown
		log.Error("drain timed out: records still unacknowledged are counted as failed", "records", unknown)
	}
	elapsed := finished.Sub(started)
	log.Info("done", "produced", m.Produced, "valid", m.Valid, "malformed", m.Malformed, "late", m.Late,
		"failed", m.Failed, "windows", len(m.Table().Windows()), "elapsed", elapsed.Round(time.Millisecond),
		"rate", fmt.Sprintf("%.0f/s", float64(m.Produced)/elapsed.Seconds()))
	var errs []error
	if o.manifest != "" {
		if err := manifest.Write(o.manifest, m); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("manifest written", "path", o.manifest, "rows", len(m.Rows))
		}
	}
	if unknown > 0 {
		errs = append(errs, fmt.Errorf("%d records were neither acknowledged nor failed by Kafka within --drain-timeout %v: counted as failed, though some may have reached Kafka",
			unknown, o.drainTimeout))
	}
	if m.Failed > unknown {
		errs = append(errs, fmt.Errorf("%d of %d records were not acknowledged by Kafka (counted as failed in the manifest, not in its rows); first error: %w",
			m.Failed-unknown, m.Failed+m.Produced, t.firstError()))
	}
	return m, errors.Join(errs...)
}
