package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// BatchInput asks for one batch to be processed.
type BatchInput struct {
	Plan       chstore.Batch
	Source     string // SourceKafka (default) or SourceRaw
	WorkflowID string
	RunID      string
}

// BatchResult is the batch's ledger row once done, and the windows it touched.
type BatchResult struct {
	Batch   chstore.Batch
	Windows []time.Time
	Resumed int64 // offset a retry resumed from (0 when it started at the plan's start)
}

// progress is what a batch heartbeats: everything before Next is counted in
// it and its dead letters are stored, so a retry resumes at Next.
type progress struct {
	Next                               int64
	Rows                               []agg.Row
	Events, Late, Early, Dead, Skipped uint64
	MinEventTime, MaxEventTime         time.Time
	Windows                            int
}

const (
	heartbeatEvery = 2 * time.Second
	// maxResumeRows bounds the aggregate carried in heartbeats (Temporal
	// limits their size); past it a retry starts the batch again instead.
	maxResumeRows   = 20000
	deadLetterFlush = 1000
	rawFlush        = 10_000
)

// ProcessBatch reads the plan's offsets [Start, End) of one partition,
// parses and validates every record, aggregates the events by event-time
// window, and writes partials, dead letters and the ledger's outcome.
// Its output depends on the offsets only, so any retry or rerun writes the
// same rows again (replacing, never adding).
func (a *Activities) ProcessBatch(ctx context.Context, in BatchInput) (BatchResult, error) {
	switch in.Source {
	case "", SourceKafka:
		return a.processFromKafka(ctx, in)
	case SourceRaw:
		return a.processFromRaw(ctx, in)
	}
	return BatchResult{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("source %q: want kafka or raw", in.Source), ErrTypeBadInput, nil)
}

func (a *Activities) processFromKafka(ctx context.Context, in BatchInput) (BatchResult, error) {
	began := time.Now()
	p := in.Plan
	id := chstore.BatchID{Topic: p.Topic, Partition: p.Partition, Slot: p.Slot}
	slot, slotEnd := p.Slot.UTC(), p.Slot.UTC().Add(time.Minute)

	st := progress{Next: p.Start}
	table := agg.Table{}
	var resumed int64
	if activity.HasHeartbeatDetails(ctx) {
		var saved progress
		if err := activity.GetHeartbeatDetails(ctx, &saved); err == nil && saved.Next > p.Start && saved.Next <= p.End {
			st, table, resumed = saved, agg.FromRows(saved.Rows), saved.Next
			activity.GetLogger(ctx).Info("resuming batch", "topic", p.Topic, "partition", p.Partition, "offset", saved.Next)
		}
	}

	var dead []chstore.DeadLetter
	var raw chstore.RawBuffer
	flush := func() error {
		if err := a.Store.WriteDeadLetters(ctx, dead); err != nil {
			return err
		}
		dead = dead[:0]
		return a.Store.WriteRaw(ctx, &raw)
	}
	beat := func() error {
		if err := flush(); err != nil {
			return err
		}
		st.Rows = nil
		if len(table) <= maxResumeRows {
			st.Rows = table.Rows()
			activity.RecordHeartbeat(ctx, st)
		} else {
			activity.RecordHeartbeat(ctx, progress{Next: p.Start})
		}
		return nil
	}

	consumer, err := sarama.NewConsumerFromClient(a.Kafka)
	if err != nil {
		return BatchResult{}, fmt.Errorf("kafka consumer: %w", err)
	}
	defer consumer.Close()

	var parser event.Parser
	lastBeat := time.Now()
	n := 0
	err = kafka.ReadRange(ctx, consumer, p.Topic, p.Partition, st.Next, p.End, func(m *sarama.ConsumerMessage) error {
		if m.Offset > st.Next {
			st.Skipped += uint64(m.Offset - st.Next)
		}
		st.Next = m.Offset + 1
		ev, err := parser.Parse(m.Value)
		if err != nil {
			reason, _ := event.IsInvalid(err)
			dead = append(dead, chstore.DeadLetter{Topic: p.Topic, Partition: p.Partition, Offset: m.Offset, Slot: slot,
				LogTime: m.Timestamp, Reason: reason, Payload: bytes.Clone(m.Value)})
			st.Dead++
			if len(dead) >= deadLetterFlush {
				return flush()
			}
		} else {
			table.Add(&ev)
			if a.Archive {
				raw.Add(id, m.Offset, m.Timestamp, &ev)
				if raw.Len() >= rawFlush {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			st.Events++
			switch {
			case ev.Time.Before(slot):
				st.Late++
			case !ev.Time.Before(slotEnd):
				st.Early++
			}
			if st.MinEventTime.IsZero() || ev.Time.Before(st.MinEventTime) {
				st.MinEventTime = ev.Time
			}
			if ev.Time.After(st.MaxEventTime) {
				st.MaxEventTime = ev.Time
			}
		}
		if n++; n%64 == 0 && time.Since(lastBeat) >= heartbeatEvery {
			lastBeat = time.Now()
			return beat()
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, kafka.ErrOffsetsGone) {
			return BatchResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%v (plan [%d,%d) of slot %s): recompute from the raw archive", err, p.Start, p.End,
					slot.Format(time.RFC3339)), ErrTypeOffsetsGone, err)
		}
		return BatchResult{}, err
	}
	if st.Next < p.End { // the range ended in offsets Kafka does not deliver
		st.Skipped += uint64(p.End - st.Next)
		st.Next = p.End
	}
	if err := flush(); err != nil {
		return BatchResult{}, err
	}
	done := p
	done.Events, done.LateEvents, done.EarlyEvents = st.Events, st.Late, st.Early
	done.DeadLetters, done.Skipped = st.Dead, st.Skipped
	done.MinEventTime, done.MaxEventTime = st.MinEventTime, st.MaxEventTime
	done.Archived = a.Archive
	res, err := a.finish(ctx, in, done, table, began)
	res.Resumed = resumed
	return res, err
}

// finish writes a batch's partials, then its outcome to the ledger: the
// ledger says done only once everything else is stored.
func (a *Activities) finish(ctx context.Context, in BatchInput, done chstore.Batch, table agg.Table, began time.Time) (BatchResult, error) {
	id := chstore.BatchID{Topic: done.Topic, Partition: done.Partition, Slot: done.Slot}
	if err := a.Store.WritePartials(ctx, id, table, chstore.Version()); err != nil {
		return BatchResult{}, err
	}
	info := activity.GetInfo(ctx)
	done.State = chstore.StateDone
	windows := table.Windows()
	done.Windows = uint32(len(windows))
	done.FinishedAt = time.Now().UTC()
	done.DurationMs = uint64(time.Since(began).Milliseconds())
	done.WorkflowID, done.RunID, done.Attempt = in.WorkflowID, in.RunID, uint32(info.Attempt)
	done.Version = chstore.Version()
	if err := a.Store.WriteBatches(ctx, []chstore.Batch{done}); err != nil {
		return BatchResult{}, err
	}
	res := BatchResult{Batch: done}
	for _, w := range windows {
		res.Windows = append(res.Windows, time.Unix(w, 0).UTC())
	}
	return res, nil
}

// processFromRaw recomputes a batch from the raw archive, for offsets that
// Kafka no longer holds. Only a batch whose events were archived can be.
func (a *Activities) processFromRaw(ctx context.Context, in BatchInput) (BatchResult, error) {
	began := time.Now()
	p := in.Plan
	prev, err := a.Store.SlotBatches(ctx, p.Topic, p.Slot)
	if err != nil {
		return BatchResult{}, err
	}
	if b, ok := prev[p.Partition]; p.End > p.Start && (!ok || b.State != chstore.StateDone || !b.Archived) {
		return BatchResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"%s/%d slot %s: offsets [%d,%d) were never archived (the batch ran with the raw archive off, or never ran): "+
				"it can only be computed from Kafka", p.Topic, p.Partition, p.Slot.Format(time.RFC3339), p.Start, p.End),
			ErrTypeNotArchived, nil)
	}
	id := chstore.BatchID{Topic: p.Topic, Partition: p.Partition, Slot: p.Slot}
	table, ro, err := a.Store.AggregateRaw(ctx, id, p.Start, p.End)
	if err != nil {
		return BatchResult{}, err
	}
	done := p
	done.Events, done.LateEvents, done.EarlyEvents, done.DeadLetters = ro.Events, ro.Late, ro.Early, ro.DeadLetters
	done.MinEventTime, done.MaxEventTime = ro.MinEventTime, ro.MaxEventTime
	if ro.Events+ro.DeadLetters > uint64(p.End-p.Start) {
		return BatchResult{}, fmt.Errorf("%s/%d slot %s: the archive holds %d events and %d dead letters for %d offsets",
			p.Topic, p.Partition, p.Slot.Format(time.RFC3339), ro.Events, ro.DeadLetters, p.End-p.Start)
	}
	done.Skipped = uint64(p.End-p.Start) - ro.Events - ro.DeadLetters
	done.Archived = true
	return a.finish(ctx, in, done, table, began)
}
