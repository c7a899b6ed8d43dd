package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

// readPlan processes a planned batch from Kafka, resuming from the previous
// attempt's progress when it can.
func (p *Processor) readPlan(ctx context.Context, in Input, hb Heartbeat) (Result, error) {
	r := p.newRun(in.Plan, hb, in.Plan.Start, false)
	defer r.abort()
	resumed := r.resume(ctx, in.Plan.End)
	release, err := r.acquireRead(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	return r.finish(ctx, in, in.Plan, time.Now(), resumed)
}

// acquireRead waits for a place among the worker's backlog reads
// (Processor.Reads), heartbeating meanwhile.
func (r *run) acquireRead(ctx context.Context) (release func(), err error) {
	if r.p.Reads == nil {
		return func() {}, nil
	}
	t := time.NewTicker(r.p.beatEvery())
	defer t.Stop()
	for {
		select {
		case r.p.Reads <- struct{}{}:
			return func() { <-r.p.Reads }, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			if err := r.beat(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// finish reads the rest of the plan into r and writes the outcome.
func (r *run) finish(ctx context.Context, in Input, plan ledger.Batch, began time.Time, resumed int64) (Result, error) {
	if err := r.p.sameTopic(plan); err != nil {
		return Result{}, err
	}
	reads := r.st.Next < plan.End
	if err := r.readTo(ctx, plan.End); err != nil {
		if errors.Is(err, kafka.ErrOffsetsGone) {
			return Result{}, fmt.Errorf("%w (plan [%d,%d) of slot %s): recompute from the raw archive: %w",
				ErrOffsetsGone, plan.Start, plan.End, plan.Slot.UTC().Format(time.RFC3339), err)
		}
		return Result{}, err
	}
	// The records read are the plan's only if the topic is still the one
	// it was planned on (those read before are: the check above).
	if reads {
		if err := r.p.sameTopic(plan); err != nil {
			return Result{}, err
		}
	}
	in.Plan = plan
	res, err := r.p.record(ctx, in, r.outcome(plan), r.table, batchRest{&r.raw, r.ann}, began)
	res.Resumed = resumed
	return res, err
}

// readTo reads the records up to end, then writes what is pending but the
// raw events not yet sent, which go with the batch's outcome (record).
// While the partition sends nothing, it keeps heartbeating: silence is
// waited for.
func (r *run) readTo(ctx context.Context, end int64) error {
	if r.st.Next < end {
		err := kafka.ReadRange(ctx, r.p.Conn, r.id.Topic, r.id.Partition, r.st.Next, end, func(m *kafka.Record) error {
			return r.add(ctx, m)
		}, func() error {
			slog.InfoContext(ctx, "partition silent: waiting for the rest of the plan", "topic", r.id.Topic,
				"partition", r.id.Partition, "next", r.st.Next, "end", end)
			return r.beat(ctx)
		})
		if err != nil {
			return err
		}
	}
	// ReadRange ended only once Kafka delivered an offset at or past end-1:
	// what it did not deliver below it is proven undeliverable (aborted,
	// compacted), and counted as skipped.
	if r.st.Next < end {
		r.st.Skipped += uint64(end - r.st.Next)
		r.st.Next = end
	}
	return r.store(ctx, false)
}

// record writes a batch's partials and its raw events not yet stored
// (rest.raw, nil when none), then its outcome to the ledger: the ledger
// says done only once everything else is stored. The batches of a worker
// that end at once write together (groupCommit; rest.ann is the batch's
// announcement to it, or nil).
//
// The rows' version follows the ledger row the batch was given (its plan,
// or the outcome of the run before), never only the clock: see ledger.After.
func (p *Processor) record(ctx context.Context, in Input, done ledger.Batch, table agg.Table, rest batchRest, began time.Time) (Result, error) {
	version := ledger.After(in.Plan.Version)
	done.State = ledger.StateDone
	windows := table.Windows()
	done.Windows = uint32(len(windows))
	done.FinishedAt = time.Now().UTC()
	done.DurationMs = uint64(time.Since(began).Milliseconds())
	done.WorkflowID, done.RunID, done.Attempt = in.WorkflowID, in.RunID, in.Attempt
	done.Version = version
	if err := p.commits.outcomes.commit(ctx, batchEnd{Partials{ID: done.ID(), Table: table, Version: version}, rest.raw, done}, rest.ann, linger{}, p.writeOutcomes); err != nil {
		return Result{}, err
	}
	res := Result{Batch: done}
	for _, w := range windows {
		res.Windows = append(res.Windows, time.Unix(w, 0).UTC())
	}
	return res, nil
}

// batchRest is what a batch's end writes besides its partials and outcome.
type batchRest struct {
	raw *sink.RawBuffer // raw events not yet stored; nil: none
	ann *announcement   // the batch's announcement to the group commit; nil: none
}

// sameTopic checks that Kafka's topic has the topic ID the plan was made
// for (when both are known): a topic deleted and created again holds other
// records at the plan's offsets.
func (p *Processor) sameTopic(plan ledger.Batch) error {
	if plan.TopicID == "" {
		return nil
	}
	id, err := kafka.TopicID(p.Kafka, plan.Topic)
	if err != nil {
		return err
	}
	if id != "" && id != plan.TopicID {
		return fmt.Errorf("%w: %s/%d slot %s was planned on topic ID %s, and Kafka's topic now has topic ID %s: "+
			"its offsets [%d,%d) now mean other records; recompute the slot from the raw archive (--source raw), "+
			"and see `starter topic adopt` for the new topic", ErrTopicChanged, plan.Topic, plan.Partition,
			plan.Slot.UTC().Format(time.RFC3339), plan.TopicID, id, plan.Start, plan.End)
	}
	return nil
}
