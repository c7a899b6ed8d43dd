package batch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// A plan made for one incarnation of a topic must not be read from the
// next: a topic deleted and created again holds other records at the same
// offsets. The batch checks Kafka's topic ID against its plan's.
func TestBatchOfARecreatedTopicStops(t *testing.T) {
	f := newFixture(t)
	f.produce(span(slot, 20, 0)...)
	id, err := kafka.TopicID(f.kafka, topic)
	if err != nil || id == "" {
		t.Fatalf("topic ID %q: %v", id, err)
	}
	pl := plan(0, 20)
	pl.TopicID = id

	admin, err := sarama.NewClusterAdminFromClient(f.kafka)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	f.produce(span(slot.Add(time.Minute), 30, 0)...) // the new log passes the plan's end

	res, err := f.processor().Process(testCtx(t), Input{Plan: pl}, &memBeat{})
	if err == nil {
		t.Fatalf("a plan of the deleted topic was read from the new one: %d events, %d dead letters",
			res.Batch.Events, res.Batch.DeadLetters)
	}
	if !errors.Is(err, ErrTopicChanged) || !strings.Contains(err.Error(), id) {
		t.Fatalf("got %v, want ErrTopicChanged naming topic ID %s", err, id)
	}
	if len(f.ledger.rows) != 0 || len(f.sink.partials) != 0 {
		t.Errorf("wrote %d ledger rows and %d partial keys for a plan it must not read", len(f.ledger.rows), len(f.sink.partials))
	}
}
