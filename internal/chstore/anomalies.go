package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/rtbpipe/rtbpipe/internal/anomaly"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// AnomalyCells returns topic's counts per minute, ad format and country
// for windows [from, to), from the window totals: what anomaly scoring
// reads. On a cluster it reads them once every server holds the same
// (totalsAgreed).
func (s *Store) AnomalyCells(ctx context.Context, topic string, from, to time.Time) ([]anomaly.Cell, error) {
	s, closeConn, err := s.totalsAgreed(ctx, []string{topic}, from, to)
	if err != nil {
		return nil, fmt.Errorf("read minutes to score of %s: %w", topic, err)
	}
	defer closeConn()
	return collect(ctx, s, "read minutes to score of "+topic, "SELECT window_start, ad_format, country, sum(events), sum(if(event_type = 'impression', events, 0)), "+
		"sum(if(event_type = 'click', events, 0)), sum(revenue_float) / 1000000 FROM "+s.Table("window_totals")+
		" WHERE topic = ? AND window_start >= ? AND window_start < ? GROUP BY window_start, ad_format, country", []any{topic, from.UTC(), to.UTC()},
		func(rows driver.Rows, c *anomaly.Cell) error {
			err := rows.Scan(&c.Minute, &c.AdFormat, &c.Country, &c.Counts.Events, &c.Counts.Impressions, &c.Counts.Clicks, &c.Counts.Revenue)
			c.Minute = c.Minute.UTC()
			return err
		})
}

// Anomalies returns topic's anomaly records of minutes [from, to) (only
// those that stand, unless all), in minute order.
func (s *Store) Anomalies(ctx context.Context, topic string, from, to time.Time, all bool) ([]anomaly.Record, error) {
	q := "SELECT topic, minute, scope, metric, flagged, value, baseline, spread, score, threshold, samples, first_flagged, changed_at FROM " +
		s.Table("anomalies") + " FINAL WHERE topic = ? AND minute >= ? AND minute < ?"
	if !all {
		q += " AND flagged = 1"
	}
	return collect(ctx, s, "read anomalies of "+topic, q+" ORDER BY minute, scope, metric", []any{topic, from.UTC(), to.UTC()},
		func(rows driver.Rows, r *anomaly.Record) error {
			var flagged uint8
			var samples uint32
			if err := rows.Scan(&r.Topic, &r.Minute, &r.Scope, &r.Metric, &flagged, &r.Value, &r.Baseline, &r.Spread, &r.Score,
				&r.Threshold, &samples, &r.FirstFlagged, &r.ChangedAt); err != nil {
				return err
			}
			r.Flagged, r.Samples = flagged == 1, int(samples)
			r.Minute, r.FirstFlagged, r.ChangedAt = r.Minute.UTC(), r.FirstFlagged.UTC(), r.ChangedAt.UTC()
			return nil
		})
}

// WriteAnomalies stores records; a record replaces the earlier one of its
// topic, minute, scope and metric.
func (s *Store) WriteAnomalies(ctx context.Context, rs []anomaly.Record) error {
	if len(rs) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("anomalies")+
		" (topic, minute, scope, metric, flagged, value, baseline, spread, score, threshold, samples, first_flagged, changed_at, version)")
	if err != nil {
		return fmt.Errorf("write anomalies: %w", err)
	}
	defer b.Abort()
	v := ledger.Version()
	for _, r := range rs {
		var flagged uint8
		if r.Flagged {
			flagged = 1
		}
		if err := b.Append(r.Topic, r.Minute.UTC(), r.Scope, r.Metric, flagged, r.Value, r.Baseline, r.Spread, r.Score, r.Threshold,
			uint32(r.Samples), r.FirstFlagged.UTC(), r.ChangedAt.UTC(), v); err != nil {
			return fmt.Errorf("write anomalies: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write anomalies: %w", err)
	}
	return nil
}
