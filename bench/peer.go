package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

// kafkaEngine is the peer: ClickHouse's own Kafka table engine on the same
// topic, with a materialized view doing the same 1-minute aggregation into a
// SummingMergeTree. Measured from the view's creation until every event is
// aggregated.
func (b *bench) kafkaEngine(ctx context.Context, topic string, m *manifest.Manifest) (Result, error) {
	peer := chstore.KafkaPeer{Broker: b.cfg.KafkaBrokers[0], Topic: topic, Group: fmt.Sprintf("bench-peer-%d", time.Now().UnixNano()),
		Partitions: b.o.partitions}
	b.log.Info("running", "what", "ClickHouse Kafka engine")
	began := time.Now()
	if err := b.store.CreateKafkaPeer(ctx, peer); err != nil {
		return Result{}, fmt.Errorf("peer: %w", err)
	}
	defer b.store.StopKafkaPeer(context.Background())
	want := uint64(m.Valid)
	var got uint64
	var err error
	var done time.Time
	for deadline := time.Now().Add(30 * time.Minute); ; {
		if got, err = b.store.KafkaPeerEvents(ctx); err != nil {
			return Result{}, fmt.Errorf("peer: %w", err)
		}
		if got >= want {
			done = time.Now()
			break
		}
		if time.Now().After(deadline) {
			return Result{}, fmt.Errorf("peer: %d of %d events after 30 minutes", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	secs := done.Sub(began).Seconds()
	t, err := b.store.KafkaPeerWindows(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("peer: %w", err)
	}
	exact := len(agg.Diff(m.Table(), t)) == 0
	return Result{Name: "ClickHouse Kafka engine + MV (peer)", Events: int64(got), Seconds: secs, EventsPerSec: float64(got) / secs,
		Exact: &exact, Note: "at-least-once; no late-event or dead-letter handling"}, nil
}
