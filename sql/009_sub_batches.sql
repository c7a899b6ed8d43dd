-- Sub-batches. A slot's plan of a partition larger than the worker's
-- RTB_MAX_BATCH_OFFSETS is split into sub-batches 0..n-1 of consecutive
-- offsets, each a batch of its own (run in parallel, resumed on its own):
-- the ledger and the partials are keyed by sub as well. 0 for plans not
-- split, and for every row written before. (No DEFAULT: ClickHouse refuses
-- a sorting key on a column added with one; the type's default is 0.)
ALTER TABLE {db}.batches ADD COLUMN sub UInt32, MODIFY ORDER BY (topic, kafka_partition, slot, sub);

ALTER TABLE {db}.window_partials ADD COLUMN sub UInt32,
    MODIFY ORDER BY (window_start, event_type, country, ad_format, topic, kafka_partition, slot, sub);
