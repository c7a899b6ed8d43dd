package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

// topicContents is what a topic holds, read back and parsed with the
// pipeline's parser.
type topicContents struct {
	records, valid, malformed, late int64
	partitions                      int32
	table                           agg.Table
	minTime, maxTime                time.Time // Kafka timestamps
}

// readTopic reads every record of topic and aggregates it as the pipeline
// would: valid events by window and key, late = window before the minute of
// the record's timestamp. It also checks that the record timestamps never
// go back within a partition and that the high watermarks match the records.
func readTopic(t *testing.T, brokers []string, topic string) topicContents {
	t.Helper()
	cl, err := kafka.NewClient(context.Background(), brokers, kafka.NewConfig("generator-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts, err := kafka.Partitions(cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	c := topicContents{partitions: int32(len(parts)), table: agg.Table{}}
	var p event.Parser
	for _, part := range parts {
		b, err := kafka.PartitionBounds(cl, topic, part)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var last time.Time
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = kafka.ReadRange(ctx, kafka.Conn{Brokers: brokers}, topic, part, b.Start, b.End, func(m *kafka.Record) error {
			n++
			if m.Timestamp.Before(last) {
				t.Errorf("partition %d offset %d: timestamp %v before the previous %v", part, m.Offset, m.Timestamp, last)
			}
			last = m.Timestamp
			if c.minTime.IsZero() || m.Timestamp.Before(c.minTime) {
				c.minTime = m.Timestamp
			}
			if m.Timestamp.After(c.maxTime) {
				c.maxTime = m.Timestamp
			}
			ev, err := p.Parse(m.Value)
			if err != nil {
				c.malformed++
				return nil
			}
			c.valid++
			if ev.Window() < event.WindowOf(m.Timestamp) {
				c.late++
			}
			c.table.Add(&ev)
			return nil
		}, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if n != b.End-b.Start {
			t.Errorf("partition %d: read %d records, offsets [%d, %d)", part, n, b.Start, b.End)
		}
		c.records += n
	}
	return c
}

// checkManifest compares a topic's contents with the manifest of the only
// generator run that produced to it.
func checkManifest(t *testing.T, m *manifest.Manifest, c topicContents) {
	t.Helper()
	if c.records != m.Produced || c.valid != m.Valid || c.malformed != m.Malformed || c.late != m.Late {
		t.Errorf("topic holds %d records (%d valid, %d malformed, %d late); manifest says %d (%d valid, %d malformed, %d late)",
			c.records, c.valid, c.malformed, c.late, m.Produced, m.Valid, m.Malformed, m.Late)
	}
	if c.partitions != m.Partitions {
		t.Errorf("topic has %d partitions, manifest says %d", c.partitions, m.Partitions)
	}
	diffs := agg.Diff(m.Table(), c.table)
	for i, d := range diffs {
		if i == 10 {
			t.Errorf("... %d differences in all", len(diffs))
			break
		}
		t.Errorf("manifest vs topic: %v", d)
	}
}

// TestVerifyExternalTopic checks a generator run against an external broker:
//
//	RTB_VERIFY_BROKERS=127.0.0.1:19092 RTB_VERIFY_TOPIC=t1 RTB_VERIFY_MANIFEST=/tmp/m.json go test ./generator -run TestVerifyExternalTopic -v
//
// The topic must hold only that run's records.
func TestVerifyExternalTopic(t *testing.T) {
	brokers := config.Env("RTB_VERIFY_BROKERS", "")
	if brokers == "" {
		t.Skip("RTB_VERIFY_BROKERS is not set")
	}
	m, err := manifest.Read(config.Env("RTB_VERIFY_MANIFEST", ""))
	if err != nil {
		t.Fatal(err)
	}
	topic := config.Env("RTB_VERIFY_TOPIC", m.Topic)
	start := time.Now()
	c := readTopic(t, strings.Split(brokers, ","), topic)
	t.Logf("read %d records in %v: %d valid, %d malformed, %d late, %d partitions, %d rows, timestamps %v .. %v",
		c.records, time.Since(start).Round(time.Millisecond), c.valid, c.malformed, c.late, c.partitions, len(m.Rows),
		c.minTime.UTC(), c.maxTime.UTC())
	checkManifest(t, m, c)
}
