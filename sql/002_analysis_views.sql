-- The prototype's analysis, as views over the exact windows.

-- Revenue by country, clicks only.
CREATE VIEW IF NOT EXISTS {db}.revenue_by_country AS
SELECT
    country,
    sum(total_revenue) AS total_revenue,
    sum(event_count) AS total_events
FROM {db}.ad_events_aggregated
WHERE event_type = 'click'
GROUP BY country
ORDER BY total_revenue DESC;

-- Format performance: impressions, clicks, CTR, revenue and eCPM.
CREATE VIEW IF NOT EXISTS {db}.format_performance AS
SELECT
    ad_format,
    impressions,
    clicks,
    if(impressions = 0, 0, clicks / impressions) AS ctr,
    revenue,
    if(impressions = 0, 0, revenue * 1000 / impressions) AS ecpm
FROM
(
    SELECT
        ad_format,
        sum(if(event_type = 'impression', event_count, 0)) AS impressions,
        sum(if(event_type = 'click', event_count, 0)) AS clicks,
        round(sum(total_revenue), 2) AS revenue
    FROM {db}.ad_events_aggregated
    GROUP BY ad_format
)
ORDER BY revenue DESC;

-- The prototype's integrity check.
CREATE VIEW IF NOT EXISTS {db}.integrity_check AS
SELECT
    count(*) AS total_records,
    count(DISTINCT window_start) AS unique_windows,
    min(window_start) AS first_window,
    max(window_start) AS last_window
FROM {db}.ad_events_aggregated;
