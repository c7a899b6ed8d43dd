// Package kafkatest starts an in-process Kafka-protocol broker (franz-go's
// kfake) for unit tests, with a sarama client on it; both close when the
// test ends.
package kafkatest

import (
	"context"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// Cluster starts a one-broker cluster holding topic (with partitions) and
// returns its addresses and a client of rtbpipe's configuration on it.
func Cluster(t testing.TB, topic string, partitions int32) ([]string, sarama.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kafka.NewClient(context.Background(), c.ListenAddrs(), kafka.NewConfig("rtbpipe-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c.ListenAddrs(), cl
}
