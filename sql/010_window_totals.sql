-- Window totals: the exact windows, stored compactly so that a query costs
-- what it asks for, not what the history holds (README: Analysis).
--
-- One row per (topic, window, key) with events: the sum of the window's
-- partials, read FINAL. Partitioned by topic and hour, and only ever
-- written a whole partition at a time: a refresh aggregates the partials of
-- an hour into a staging table and swaps it in (ALTER TABLE ... REPLACE
-- PARTITION, atomic), so the table never holds two rows of one key and is
-- read without FINAL or GROUP BY. Every run refreshes the hours of the
-- windows it touched, after its partials are written; topic '' holds the
-- sums over every topic (the prototype's table). Reconciliation compares it
-- with the partials (finding "totals") and refreshes what differs.
CREATE TABLE IF NOT EXISTS {db}.window_totals (
    topic String,
    window_start DateTime,
    event_type String,
    country String,
    ad_format String,
    events UInt64,
    revenue_micros Int64,
    revenue_float Float64,
    refreshed_at DateTime DEFAULT now()
) ENGINE = MergeTree
PARTITION BY (topic, toStartOfHour(window_start))
ORDER BY (topic, window_start, event_type, country, ad_format);

-- The prototype's table, read from the totals of every topic: one row per
-- window and key, no FINAL, no GROUP BY.
DROP TABLE IF EXISTS {db}.ad_events_aggregated;
CREATE VIEW IF NOT EXISTS {db}.ad_events_aggregated AS
SELECT
    window_start,
    window_start + 60 AS window_end,
    event_type,
    country,
    ad_format,
    events AS event_count,
    revenue_float / events / 1000000 AS avg_revenue,
    revenue_float / 1000000 AS total_revenue,
    refreshed_at AS created_at
FROM {db}.window_totals
WHERE topic = '';

-- The same per topic.
DROP TABLE IF EXISTS {db}.ad_events_aggregated_by_topic;
CREATE VIEW IF NOT EXISTS {db}.ad_events_aggregated_by_topic AS
SELECT
    topic,
    window_start,
    window_start + 60 AS window_end,
    event_type,
    country,
    ad_format,
    events AS event_count,
    revenue_float / events / 1000000 AS avg_revenue,
    revenue_float / 1000000 AS total_revenue,
    refreshed_at AS created_at
FROM {db}.window_totals
WHERE topic != '';
