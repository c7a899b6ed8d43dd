-- What each reconciliation checked, found and repaired.
CREATE TABLE IF NOT EXISTS {db}.reconciliation_runs (
    workflow_id String,
    run_id String,
    topic String,
    range_from DateTime,
    range_to DateTime,
    started_at DateTime,
    finished_at DateTime,
    repair UInt8,
    slots_checked UInt32,
    batches_checked UInt32,
    findings UInt32,
    repaired_slots UInt32,
    remaining UInt32,
    details String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (topic, started_at);
