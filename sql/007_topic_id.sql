-- Topic identity. A topic deleted and created again under the same name has
-- a new Kafka topic ID, and its offsets start again. Each plan records the
-- topic ID it was made for; the planner stops (TopicChanged) when the topic
-- now has another one, until an operator adopts the new incarnation
-- (`starter topic adopt`), which is recorded here. '' on older rows: no check.
ALTER TABLE {db}.batches ADD COLUMN topic_id String DEFAULT '' AFTER topic;

CREATE TABLE IF NOT EXISTS {db}.topic_incarnations (
    topic String,
    topic_id String,
    adopted_at DateTime,
    adopted_by String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (topic, topic_id);
