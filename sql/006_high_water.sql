-- A plan records the partition's high watermark (its last stable offset)
-- when it was made. The next slot's plan never ends below it if it was seen
-- before that slot ended: those records were appended before then, whatever
-- their timestamps say, so a record stamped far ahead cannot stall its
-- partition (README: "Guarantees and their limits"). 0 on older rows: no floor.
ALTER TABLE {db}.batches ADD COLUMN high_water Int64 DEFAULT 0 AFTER idle;
