-- The keys of each batch's partials, by batch (README: Exactly once, 3).
-- A run writes its keys here before its partials, so a rerun finds every
-- key an earlier run of the batch may have written (and writes zero rows
-- for those it no longer produces) with a read by the batch, however long
-- the partials' history: window_partials is ordered by window for its
-- readers, and a lookup by batch there reads all of it. A key here without
-- a partial (a run that stopped between the two inserts) only costs a zero
-- row later. Rows repeat when a batch runs again; merges fold them.
CREATE TABLE IF NOT EXISTS {db}.partial_keys (
    topic String,
    kafka_partition Int32,
    slot DateTime,
    sub UInt32,
    window_start DateTime,
    event_type String,
    country String,
    ad_format String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(slot)
ORDER BY (topic, kafka_partition, slot, sub, window_start, event_type, country, ad_format);

-- The keys of the partials written before this table (stop the workers
-- before migrating: a worker of an earlier release writes no keys here).
INSERT INTO {db}.partial_keys (topic, kafka_partition, slot, sub, window_start, event_type, country, ad_format)
SELECT topic, kafka_partition, slot, sub, window_start, event_type, country, ad_format
FROM {db}.window_partials
WHERE events > 0;
