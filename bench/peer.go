package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

// kafkaEngine is the peer: ClickHouse's own Kafka table engine on the same
// topic, with a materialized view doing the same 1-minute aggregation into a
// SummingMergeTree. Measured from the view's creation until every event is
// aggregated.
func (b *bench) kafkaEngine(ctx context.Context, topic string, m *manifest.Manifest) (Result, error) {
	db := b.cfg.ClickHouseDatabase
	conn := b.store.Conn()
	group := fmt.Sprintf("bench-peer-%d", time.Now().UnixNano())
	stmts := []string{
		"DROP TABLE IF EXISTS " + db + ".peer_mv",
		"DROP TABLE IF EXISTS " + db + ".peer_kafka",
		"DROP TABLE IF EXISTS " + db + ".peer_windows",
		"CREATE TABLE " + db + ".peer_windows (window_start DateTime, event_type String, country String, ad_format String," +
			" events UInt64, revenue_micros Int64) ENGINE = SummingMergeTree ORDER BY (window_start, event_type, country, ad_format)",
		fmt.Sprintf("CREATE TABLE %s.peer_kafka (event_id String, timestamp String, user_id String, campaign_id String, ad_format String,"+
			" country String, device String, event_type String, revenue Float64, bid_price Float64)"+
			" ENGINE = Kafka('%s', '%s', '%s', 'JSONEachRow', '\\n', '', %d)", db, b.cfg.KafkaBrokers[0], topic, group, b.o.partitions),
		"CREATE MATERIALIZED VIEW " + db + ".peer_mv TO " + db + ".peer_windows AS SELECT" +
			" toStartOfMinute(parseDateTimeBestEffort(timestamp)) AS window_start, event_type, country, ad_format," +
			" count() AS events, sum(toInt64(round(revenue * 1000000))) AS revenue_micros FROM " + db + ".peer_kafka" +
			" GROUP BY window_start, event_type, country, ad_format",
	}
	b.log.Info("running", "what", "ClickHouse Kafka engine")
	began := time.Now()
	for _, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			return Result{}, fmt.Errorf("peer: %s: %w", s, err)
		}
	}
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+db+".peer_mv")
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+db+".peer_kafka")
	want := uint64(m.Valid)
	var got uint64
	var done time.Time
	for deadline := time.Now().Add(30 * time.Minute); ; {
		if err := conn.QueryRow(ctx, "SELECT sum(events) FROM "+db+".peer_windows").Scan(&got); err != nil {
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
	t, err := b.store.QueryTable(ctx, "SELECT window_start, event_type, country, ad_format, sum(events), sum(revenue_micros) FROM "+
		db+".peer_windows GROUP BY window_start, event_type, country, ad_format")
	if err != nil {
		return Result{}, fmt.Errorf("peer: %w", err)
	}
	exact := len(agg.Diff(m.Table(), t)) == 0
	return Result{Name: "ClickHouse Kafka engine + MV (peer)", Events: int64(got), Seconds: secs, EventsPerSec: float64(got) / secs,
		Exact: &exact, Note: "at-least-once; no late-event or dead-letter handling"}, nil
}
