-- The raw archive: every valid event with its Kafka coordinates, so that a
-- backfill can recompute slots after Kafka's retention has dropped them.
-- The prototype's columns first, then rtbpipe's. Keyed by
-- (topic, partition, slot, offset): a rerun replaces, never adds; and a
-- recreated topic's new records (new slots) never mix with the old ones.
CREATE TABLE IF NOT EXISTS {db}.ad_events_raw (
    timestamp DateTime,
    event_type String,
    user_id String,
    country String,
    ad_format String,
    campaign_id String,
    bid_price Float64,
    revenue Float64,
    created_at DateTime DEFAULT now(),
    event_id String,
    device String,
    revenue_micros Int64,
    bid_micros Int64,
    topic String,
    kafka_partition Int32,
    kafka_offset Int64,
    slot DateTime,
    log_time DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(slot)
ORDER BY (topic, kafka_partition, slot, kafka_offset);
