package activities

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/rtbpipe/rtbpipe/internal/batch"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
)

// BatchInput asks for one batch to be processed (see internal/batch).
type BatchInput = batch.Input

// BatchResult is a processed batch's ledger row and the windows it touched.
type BatchResult = batch.Result

// ProcessBatch processes one batch (internal/batch: read, aggregate, write,
// record done), with Temporal's heartbeats as its progress. Errors that no
// retry can fix are non-retryable, of the types the workflows know.
func (a *Activities) ProcessBatch(ctx context.Context, in BatchInput) (BatchResult, error) {
	in.Attempt = uint32(activity.GetInfo(ctx).Attempt)
	res, err := a.Batches.Process(ctx, in, heartbeat{})
	if err == nil {
		recordBatch(ctx, res.Batch)
	}
	for _, e := range []struct {
		err  error
		kind string
	}{{batch.ErrOffsetsGone, ErrTypeOffsetsGone}, {batch.ErrNotArchived, ErrTypeNotArchived}, {batch.ErrBadInput, ErrTypeBadInput},
		{batch.ErrTopicChanged, ErrTypeTopicChanged}} {
		if errors.Is(err, e.err) {
			return res, temporal.NewNonRetryableApplicationError(err.Error(), e.kind, err)
		}
	}
	return res, err
}

// TailsInput asks for the tails of several partitions of one slot, run
// together (see batch.ProcessGroup).
type TailsInput struct {
	Batches []BatchInput
}

// TailOutcome is one tail of a group: its result, or why it failed (the
// slot then runs that partition's plan as an ordinary batch).
type TailOutcome = batch.Outcome

// ProcessTails processes the tails of several partitions in one activity:
// a slot with many partitions has one activity per group of them instead
// of one per partition (workflows/slot.go, tailGroup). It fails only when
// it is cancelled or times out; the outcome of each tail says whether it
// is done.
func (a *Activities) ProcessTails(ctx context.Context, in TailsInput) ([]TailOutcome, error) {
	attempt := uint32(activity.GetInfo(ctx).Attempt)
	for i := range in.Batches {
		in.Batches[i].Attempt = attempt
	}
	out, err := a.Batches.ProcessGroup(ctx, in.Batches, heartbeat{})
	for _, o := range out {
		if o.Err == "" {
			recordBatch(ctx, o.Result.Batch)
		}
	}
	return out, err
}

// heartbeat is batch.Heartbeat on Temporal's activity heartbeats.
type heartbeat struct{}

func (heartbeat) Record(ctx context.Context, details any) { activity.RecordHeartbeat(ctx, details) }

func (heartbeat) Last(ctx context.Context, out any) bool {
	return activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, out) == nil
}

// recordBatch adds a done batch to the worker's metrics.
func recordBatch(ctx context.Context, b ledger.Batch) {
	h := activity.GetMetricsHandler(ctx).WithTags(map[string]string{"topic": b.Topic, "partition": strconv.Itoa(int(b.Partition))})
	h.Counter(metrics.Events).Inc(int64(b.Events))
	h.Counter(metrics.DeadLetters).Inc(int64(b.DeadLetters))
	h.Counter(metrics.Skipped).Inc(int64(b.Skipped))
	h.Counter(metrics.Markers).Inc(int64(b.Markers))
	activity.GetMetricsHandler(ctx).WithTags(map[string]string{"topic": b.Topic}).
		Timer(metrics.BatchDuration).Record(time.Duration(b.DurationMs) * time.Millisecond)
}
