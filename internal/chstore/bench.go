package chstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/rtbpipe/rtbpipe/internal/agg"
)

// What the bench needs besides the pipeline's own tables: each of its runs
// has a database of its own (a Store from In), and its peer is ClickHouse's
// own Kafka engine.

// StopMerges stops (and cancels) the merges of the MergeTree tables of the
// store's database.
func (s *Store) StopMerges(ctx context.Context) error {
	tables, err := s.mergeTreeTables(ctx)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if err := s.conn.Exec(ctx, "SYSTEM STOP MERGES "+s.Table(t)); err != nil {
			return fmt.Errorf("stop the merges of %s: %w", s.Table(t), err)
		}
	}
	return nil
}

// mergeTreeTables lists the tables of the store's database whose engine is
// of the MergeTree family.
func (s *Store) mergeTreeTables(ctx context.Context) ([]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree'", s.db)
	if err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", s.db, err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list the tables of %s: %w", s.db, err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", s.db, err)
	}
	return tables, nil
}

// DropDatabase drops the store's database and everything in it.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.db)
}

// KafkaPeer is ClickHouse's own Kafka engine reading a topic (table
// peer_kafka), with a materialized view (peer_mv) doing the pipeline's
// 1-minute aggregation into a SummingMergeTree (peer_windows), in the
// store's database.
type KafkaPeer struct {
	Broker     string
	Topic      string
	Group      string // the Kafka consumer group
	Partitions int32  // consumers
}

// CreateKafkaPeer drops what an earlier peer left and creates the peer's
// tables: from then on, it consumes the topic.
func (s *Store) CreateKafkaPeer(ctx context.Context, p KafkaPeer) error {
	stmts := []string{
		"DROP TABLE IF EXISTS " + s.Table("peer_mv"),
		"DROP TABLE IF EXISTS " + s.Table("peer_kafka"),
		"DROP TABLE IF EXISTS " + s.Table("peer_windows"),
		"CREATE TABLE " + s.Table("peer_windows") + " (window_start DateTime, event_type String, country String, ad_format String," +
			" events UInt64, revenue_micros Int64) ENGINE = SummingMergeTree ORDER BY (window_start, event_type, country, ad_format)",
		fmt.Sprintf("CREATE TABLE %s (event_id String, timestamp String, user_id String, campaign_id String, ad_format String,"+
			" country String, device String, event_type String, revenue Float64, bid_price Float64)"+
			" ENGINE = Kafka('%s', '%s', '%s', 'JSONEachRow', '\\n', '', %d)", s.Table("peer_kafka"), p.Broker, p.Topic, p.Group, p.Partitions),
		"CREATE MATERIALIZED VIEW " + s.Table("peer_mv") + " TO " + s.Table("peer_windows") + " AS SELECT" +
			" toStartOfMinute(parseDateTimeBestEffort(timestamp)) AS window_start, event_type, country, ad_format," +
			" count() AS events, sum(toInt64(round(revenue * 1000000))) AS revenue_micros FROM " + s.Table("peer_kafka") +
			" GROUP BY window_start, event_type, country, ad_format",
	}
	for _, st := range stmts {
		if err := s.conn.Exec(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

// StopKafkaPeer drops the peer's Kafka table and view, so that it stops
// consuming; its windows stay.
func (s *Store) StopKafkaPeer(ctx context.Context) error {
	return errors.Join(
		s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+s.Table("peer_kafka")),
		s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+s.Table("peer_mv")))
}

// KafkaPeerEvents counts the events the peer has aggregated so far.
func (s *Store) KafkaPeerEvents(ctx context.Context) (uint64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT sum(events) FROM "+s.Table("peer_windows")).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// KafkaPeerWindows returns the peer's windows.
func (s *Store) KafkaPeerWindows(ctx context.Context) (agg.Table, error) {
	return s.queryTable(ctx, "SELECT window_start, event_type, country, ad_format, "+totalsColumns+" FROM "+
		s.Table("peer_windows")+" GROUP BY window_start, event_type, country, ad_format")
}
