-- Anomaly flags (README: Analysis): per topic, minute, scope ("overall",
-- "ad_format=banner", "country=US", "ad_format=banner,country=US") and
-- metric (volume, ctr, ecpm), the latest scoring of the minute. A flag
-- explains itself: its value, the baseline (median of the trailing hour),
-- the spread (1.4826 × MAD, floored), the score and the threshold. When
-- late events change a window, the runs that touched it score it again: a
-- flag that no longer stands is kept with flagged = 0, and changed_at says
-- when it disappeared (first_flagged, when it appeared).
CREATE TABLE IF NOT EXISTS {db}.anomalies (
    topic String,
    minute DateTime,
    scope String,
    metric String,
    flagged UInt8,
    value Float64,
    baseline Float64,
    spread Float64,
    score Float64,
    threshold Float64,
    samples UInt32,
    first_flagged DateTime,
    changed_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (topic, minute, scope, metric);
