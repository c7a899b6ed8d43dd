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
