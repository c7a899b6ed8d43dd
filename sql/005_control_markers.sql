-- Transactions (reads are read-committed): a batch counts the transaction
-- markers in its offsets in a column of its own. Every offset is then
-- events + dead letters + control markers + skipped (proven undeliverable:
-- records of aborted transactions, compacted records).
-- (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: the migrator skips an
-- ADD COLUMN whose column exists, so this stays idempotent.)
ALTER TABLE {db}.batches ADD COLUMN control_markers UInt64 DEFAULT 0 AFTER dead_letters;
