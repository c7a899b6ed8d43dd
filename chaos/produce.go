package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtbpipe/rtbpipe/generator/gen"
	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

// tally is the manifest of what Kafka acknowledged (committed, for
// transactions), built as the acknowledgements arrive.
type tally struct {
	mu                                  sync.Mutex
	table                               agg.Table
	produced, valid, malformed, late    int64
	aborted, committedTxns, abortedTxns int64
	firstErr                            error
}

func (t *tally) ack(r *gen.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.produced++
	if !r.Valid {
		t.malformed++
		return
	}
	t.valid++
	if r.Late {
		t.late++
	}
	if err := t.table.Add(&r.Event); err != nil && t.firstErr == nil {
		t.firstErr = err
	}
}

func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// producer writes the soak's events straight to the brokers: faults are
// meant for the pipeline, and a record whose acknowledgement a fault lost
// could not be counted either way. It dials the brokers' own ports instead
// of the proxies they announce. Its producer is idempotent (franz-go's
// default), and retries until Kafka acknowledges, through broker kills and
// stalls: the manifest counts exactly what the log holds.
type producer struct {
	s     *soak
	cl    *kgo.Client
	txn   *kgo.Client
	gen   *gen.Generator
	tally *tally
}

func (s *soak) newProducer() (*producer, error) {
	listen, advertised := s.brokerAddrs()
	direct := map[string]string{}
	for i := range advertised {
		direct[advertised[i]] = listen[i]
	}
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		if d, ok := direct[host]; ok {
			host = d
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(listen[0]), kgo.Dialer(dial), kgo.DefaultProduceTopic(s.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5 * time.Millisecond)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	txn, err := kgo.NewClient(append(opts, kgo.TransactionalID("chaos-"+s.topic), kgo.TransactionTimeout(time.Minute))...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("transactional producer: %w", err)
	}
	return &producer{s: s, cl: cl, txn: txn, tally: &tally{table: agg.Table{}},
		gen: gen.New(gen.Config{Seed: s.o.seed, LateFraction: 0.05, MaxLateness: 5 * time.Minute, MalformedFraction: 0.01})}, nil
}

func (p *producer) close() {
	p.cl.Close()
	p.txn.Close()
}

// run produces at the soak's rate until its duration has passed, with a
// transaction every 10 s (committed and aborted in turn), then waits for
// every acknowledgement (bounded).
func (p *producer) run(ctx context.Context, start time.Time) error {
	end := start.Add(p.s.o.duration)
	tick := 20 * time.Millisecond
	perTick := float64(p.s.o.rate) * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	nextTxn := start.Add(5 * time.Second)
	txns := 0
	var due float64
	var mu sync.Mutex // the generator is not safe for concurrent use
	for n := 0; time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		due += perTick
		mu.Lock()
		for ; due >= 1; due-- {
			r := p.gen.Next(time.Now())
			p.produce(ctx, &r, int32(n%int(p.s.o.partitions)))
			n++
		}
		mu.Unlock()
		if time.Now().After(nextTxn) {
			nextTxn = nextTxn.Add(10 * time.Second)
			mu.Lock()
			recs := make([]gen.Record, 20)
			for i := range recs {
				recs[i] = p.gen.Next(time.Now())
			}
			mu.Unlock()
			txns++
			if err := p.transaction(ctx, recs, int32(txns%int(p.s.o.partitions)), txns%2 == 1); err != nil {
				return err
			}
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := p.cl.Flush(fctx); err != nil {
		return fmt.Errorf("producer: records still unacknowledged after 5 minutes: %w", err)
	}
	p.tally.mu.Lock()
	defer p.tally.mu.Unlock()
	return p.tally.firstErr
}

func (p *producer) produce(ctx context.Context, r *gen.Record, partition int32) {
	rec := &kgo.Record{Value: r.Value, Timestamp: r.LogTime, Partition: partition}
	p.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			p.tally.fail(fmt.Errorf("produce: %w", err))
			return
		}
		p.tally.ack(r)
	})
}

// transaction writes recs in one transaction to partition, committed or
// aborted. A commit or abort that fails leaves its outcome unknown: then
// the manifest cannot say whether the records count, and the soak fails.
func (p *producer) transaction(ctx context.Context, recs []gen.Record, partition int32, commit bool) error {
	if err := p.txn.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var produceErr error
	for i := range recs {
		r := &kgo.Record{Value: recs[i].Value, Timestamp: recs[i].LogTime, Partition: partition}
		if err := p.txn.ProduceSync(ctx, r).FirstErr(); err != nil {
			produceErr = err
			break
		}
	}
	if produceErr != nil {
		commit = false
	}
	ectx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := p.txn.EndTransaction(ectx, kgo.TransactionEndTry(commit)); err != nil {
		return fmt.Errorf("end transaction (commit %v): its outcome is unknown, so is the manifest's: %w", commit, errors.Join(err, produceErr))
	}
	if !commit {
		p.tally.mu.Lock()
		defer p.tally.mu.Unlock()
		p.tally.abortedTxns++
		p.tally.aborted += int64(len(recs))
		return nil
	}
	for i := range recs {
		p.tally.ack(&recs[i])
	}
	p.tally.mu.Lock()
	defer p.tally.mu.Unlock()
	p.tally.committedTxns++
	return nil
}

// manifest is what Kafka acknowledged (committed), as starter verify reads it.
func (p *producer) manifest(start, end time.Time) *manifest.Manifest {
	t := p.tally
	t.mu.Lock()
	defer t.mu.Unlock()
	return &manifest.Manifest{Topic: p.s.topic, Started: start, Finished: end, Produced: t.produced, Valid: t.valid,
		Malformed: t.malformed, Late: t.late, Aborted: t.aborted, Partitions: p.s.o.partitions, Rows: t.table.Rows()}
}
