-- CTR and eCPM, from the window totals (README: Analysis):
--   CTR  = clicks / impressions
--   eCPM = 1000 × revenue / impressions   (revenue of every event type, in
--          the currency unit; the revenue the impressions brought)
-- both 0 where there are no impressions. To roll up (all countries, a day),
-- sum impressions, clicks and revenue first, then divide: ratios do not add.
-- The views group by window: a query's WHERE on topic and time must reach
-- them (enable_optimize_predicate_expression, set by rtbpipe's connections
-- and the local stack's profile; on by default in current ClickHouse).

-- Per topic, minute, ad format and country.
CREATE VIEW IF NOT EXISTS {db}.rates_by_window AS
SELECT
    topic,
    window_start,
    ad_format,
    country,
    sum(if(event_type = 'impression', events, 0)) AS impressions,
    sum(if(event_type = 'click', events, 0)) AS clicks,
    sum(revenue_float) / 1000000 AS revenue,
    if(impressions = 0, 0, clicks / impressions) AS ctr,
    if(impressions = 0, 0, revenue * 1000 / impressions) AS ecpm
FROM {db}.window_totals
GROUP BY topic, window_start, ad_format, country;

-- Per topic, hour, ad format and country.
CREATE VIEW IF NOT EXISTS {db}.rates_by_hour AS
SELECT
    topic,
    toStartOfHour(window_start) AS hour,
    ad_format,
    country,
    sum(if(event_type = 'impression', events, 0)) AS impressions,
    sum(if(event_type = 'click', events, 0)) AS clicks,
    sum(revenue_float) / 1000000 AS revenue,
    if(impressions = 0, 0, clicks / impressions) AS ctr,
    if(impressions = 0, 0, revenue * 1000 / impressions) AS ecpm
FROM {db}.window_totals
GROUP BY topic, hour, ad_format, country;
