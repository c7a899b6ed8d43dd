-- Bad input that is valid JSON (README: Guarantees).
-- A dead letter stores at most the first 64 KiB of its record, with the
-- record's full length and SHA-256 (rows written before: 0 and '').
ALTER TABLE {db}.dead_letters ADD COLUMN payload_bytes UInt64 DEFAULT 0 AFTER payload;
ALTER TABLE {db}.dead_letters ADD COLUMN payload_sha256 String DEFAULT '' AFTER payload_bytes;

-- Revenue in the prototype's views is summed as Float64: ClickHouse's Int64
-- sum wraps silently past its range, a Float64 sum cannot (and is exact up
-- to 2^53 micro-units, $9 billion, per window and key). rtbpipe's own exact
-- reads check the Int64 sum against it (internal/chstore).
DROP TABLE IF EXISTS {db}.ad_events_aggregated;
CREATE VIEW IF NOT EXISTS {db}.ad_events_aggregated AS
SELECT
    window_start,
    window_start + 60 AS window_end,
    event_type,
    country,
    ad_format,
    sum(events) AS event_count,
    sum(toFloat64(revenue_micros)) / sum(events) / 1000000 AS avg_revenue,
    sum(toFloat64(revenue_micros)) / 1000000 AS total_revenue,
    max(written_at) AS created_at
FROM {db}.window_partials FINAL
WHERE events > 0
GROUP BY window_start, event_type, country, ad_format;

DROP TABLE IF EXISTS {db}.ad_events_aggregated_by_topic;
CREATE VIEW IF NOT EXISTS {db}.ad_events_aggregated_by_topic AS
SELECT
    topic,
    window_start,
    window_start + 60 AS window_end,
    event_type,
    country,
    ad_format,
    sum(events) AS event_count,
    sum(toFloat64(revenue_micros)) / sum(events) / 1000000 AS avg_revenue,
    sum(toFloat64(revenue_micros)) / 1000000 AS total_revenue,
    max(written_at) AS created_at
FROM {db}.window_partials FINAL
WHERE events > 0
GROUP BY topic, window_start, event_type, country, ad_format;
