package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/reconcile"
)

// A topic deleted and created again under the same name starts its offsets
// again. Planning stops with an error that says so (Kafka's topic ID), and
// reconciliation reports it, until the new topic is adopted; then it is
// planned from its first offset and every window is exact: the old topic's
// events and the new one's.
func TestRecreatedTopicStopsUntilAdopted(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 1)
	base := pastBase(40)
	old := standard(31, 1, base, 2, 300) // 601 offsets, the last one in slot base+2
	e.produce(t, topic, old.recs)
	e.runSlots(t, topic, base, 3)
	e.checkExact(t, topic, old.want)
	oldID, err := kafka.TopicID(e.kafka, topic)
	if err != nil || oldID == "" {
		t.Fatalf("topic ID %q: %v", oldID, err)
	}

	admin, err := sarama.NewClusterAdminFromClient(e.kafka)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
	if n, err := kafka.EnsureTopic(e.kafka, topic, 1); err != nil || n != 1 {
		t.Fatalf("create %s again: %d partitions, %v", topic, n, err)
	}
	next := base.Add(3 * time.Minute)
	fresh := standard(32, 1, next, 2, 400) // 801 offsets: past the old plans' end
	e.produce(t, topic, fresh.recs)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = e.startSlot(t, topic, next).Get(ctx, nil)
	if err == nil {
		t.Fatalf("the slot after the topic was created again ran: its plan would continue the old topic's offsets")
	}
	for _, want := range []string{"deleted and created again", oldID, "starter topic adopt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the slot's error does not say %q: %v", want, err)
		}
	}
	r := e.reconcile(t, topic, base, next.Add(3*time.Minute), false)
	if findings(r, reconcile.Recreated) != 1 || findings(r, reconcile.Behind)+findings(r, reconcile.Trailing) != 0 {
		t.Fatalf("reconciliation before adoption: %+v", r.Found)
	}

	newID, err := kafka.TopicID(e.kafka, topic)
	if err != nil || newID == "" || newID == oldID {
		t.Fatalf("new topic ID %q (old %q): %v", newID, oldID, err)
	}
	if err := e.store.AdoptTopicID(context.Background(), ledger.Incarnation{Topic: topic, TopicID: newID,
		AdoptedAt: time.Now(), AdoptedBy: "e2e"}); err != nil {
		t.Fatal(err)
	}
	e.runSlots(t, topic, next, 3)
	want := old.want
	want.Merge(fresh.want)
	e.checkExact(t, topic, want)
	var first ledger.Batch
	for _, b := range e.ledger(t, topic) {
		if b.Slot.Equal(next) {
			first = b
		}
	}
	if first.Start != 0 || first.TopicID != newID {
		t.Errorf("the adopted topic's first plan is [%d,%d) for topic ID %q, want it to start at 0 for %s",
			first.Start, first.End, first.TopicID, newID)
	}
	if r := e.reconcile(t, topic, base, next.Add(3*time.Minute), false); len(r.Found) != 0 {
		t.Fatalf("reconciliation after adoption: %+v", r.Found)
	}
}
