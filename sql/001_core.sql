-- rtbpipe core tables. {db} is replaced by RTB_CLICKHOUSE_DATABASE.
-- Written for ClickHouse 18.16 (Debian 12) and current ClickHouse alike:
-- no TTL, no DateTime64, no LowCardinality, no lightweight DELETE.

CREATE DATABASE IF NOT EXISTS {db};

-- One row per (window, key, topic, partition, slot): the aggregate of one
-- batch for one window and key. A rerun of a batch rewrites the same keys
-- with a higher version, so nothing is ever counted twice.
CREATE TABLE IF NOT EXISTS {db}.window_partials (
    window_start DateTime,
    event_type String,
    country String,
    ad_format String,
    topic String,
    kafka_partition Int32,
    slot DateTime,
    events UInt64,
    revenue_micros Int64,
    version UInt64,
    written_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, event_type, country, ad_format, topic, kafka_partition, slot);

-- The ledger: one plan [start_offset, end_offset) per (topic, partition,
-- slot), never changed once written; later versions only add the outcome.
CREATE TABLE IF NOT EXISTS {db}.batches (
    topic String,
    kafka_partition Int32,
    slot DateTime,
    start_offset Int64,
    end_offset Int64,
    idle UInt8,
    state String,
    events UInt64,
    late_events UInt64,
    early_events UInt64,
    dead_letters UInt64,
    skipped_offsets UInt64,
    archived UInt8,
    windows UInt32,
    min_event_time DateTime,
    max_event_time DateTime,
    planned_at DateTime,
    finished_at DateTime,
    duration_ms UInt64,
    workflow_id String,
    run_id String,
    attempt UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(slot)
ORDER BY (topic, kafka_partition, slot);

-- Records that could not be parsed or failed validation.
CREATE TABLE IF NOT EXISTS {db}.dead_letters (
    topic String,
    kafka_partition Int32,
    kafka_offset Int64,
    slot DateTime,
    log_time DateTime,
    reason String,
    payload String,
    version UInt64,
    written_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
ORDER BY (topic, kafka_partition, kafka_offset);

-- The prototype's table, now a view: exactly one row per window and key,
-- summed over the partials of every topic.
CREATE VIEW IF NOT EXISTS {db}.ad_events_aggregated AS
SELECT
    window_start,
    window_start + 60 AS window_end,
    event_type,
    country,
    ad_format,
    sum(events) AS event_count,
    sum(revenue_micros) / sum(events) / 1000000 AS avg_revenue,
    sum(revenue_micros) / 1000000 AS total_revenue,
    max(written_at) AS created_at
FROM {db}.window_partials FINAL
WHERE events > 0
GROUP BY window_start, event_type, country, ad_format;

-- The same per topic, for installations that feed several topics.
CREATE VIEW IF NOT EXISTS {db}.ad_events_aggregated_by_topic AS
SELECT
    topic,
    window_start,
    window_start + 60 AS window_end,
    event_type,
    country,
    ad_format,
    sum(events) AS event_count,
    sum(revenue_micros) / sum(events) / 1000000 AS avg_revenue,
    sum(revenue_micros) / 1000000 AS total_revenue,
    max(written_at) AS created_at
FROM {db}.window_partials FINAL
WHERE events > 0
GROUP BY topic, window_start, event_type, country, ad_format;
