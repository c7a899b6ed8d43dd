package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// LiveResult is the latency of the live run.
type LiveResult struct {
	Rate      int       `json:"rate"`
	Duration  string    `json:"duration"`
	Grace     string    `json:"grace"`
	Tail      bool      `json:"tail"`
	WarmUp    float64   `json:"warm_up_sec"`   // the first minute, which also takes the minute before it
	Latencies []float64 `json:"latencies_sec"` // per minute after it: minute end -> its slot done
	P50       float64   `json:"p50_sec"`
	P99       float64   `json:"p99_sec"`
	Max       float64   `json:"max_sec"`
	// The same minutes, minute end -> the stages of its slot before that:
	// every batch done (the windows in the partials, which
	// ad_events_aggregated reads), and the window totals refreshed (which
	// the dashboard and the analysis views read).
	Partials Stage `json:"partials"`
	Totals   Stage `json:"totals"`
	Exact    bool  `json:"exact"`
}

// Stage is the latency of one stage of the live minutes' slots.
type Stage struct {
	Latencies []float64 `json:"latencies_sec"`
	P50       float64   `json:"p50_sec"`
	P99       float64   `json:"p99_sec"`
}

// percentiles returns the p50, p99 and max of xs (not empty).
func percentiles(xs []float64) (p50, p99, maxv float64) {
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	pct := func(p float64) float64 { return sorted[int(math.Ceil(p*float64(len(sorted))))-1] }
	return pct(0.5), pct(0.99), sorted[len(sorted)-1]
}

// live runs the generator at a steady rate with the schedule on, and
// measures for every whole minute the delay from its end until its slot
// workflow closed (its windows complete in ClickHouse).
func (b *bench) live(ctx context.Context) (*LiveResult, error) {
	topic := fmt.Sprintf("bench-live-%d", time.Now().Unix())
	if _, err := kafka.EnsureTopic(b.kc, topic, b.o.partitions); err != nil {
		return nil, err
	}
	// The schedule first, as `starter setup` makes it: the worker sizes its
	// activity slots from the scheduled topics' partitions as it starts.
	sched := b.tc.ScheduleClient()
	h, err := sched.Create(ctx, workflows.SlotSchedule(workflows.ScheduledInput{Topic: topic, Tail: !b.o.liveNoTail,
		Grace: b.o.liveGrace}, b.cfg.TaskQueue))
	if err != nil {
		return nil, fmt.Errorf("live schedule: %w", err)
	}
	defer b.endRuns(topic)
	defer h.Delete(context.Background())
	w, err := b.startWorker(true)
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	path := filepath.Join(b.dir, "live.json")
	b.log.Info("live run", "topic", topic, "rate", b.o.liveRate, "duration", b.o.liveDuration)
	if err := b.runGenerator(ctx, "--topic", topic, "--rate", strconv.Itoa(b.o.liveRate), "--duration", b.o.liveDuration.String(),
		"--seed", "2", "--manifest", path, "--progress", "1m"); err != nil {
		return nil, err
	}
	m, err := manifest.Read(path)
	if err != nil {
		return nil, err
	}
	// Whole minutes of the run; wait for the last one's slot. The first
	// one is the warm-up: the schedule was created during the minute
	// before it, which no slot ran, so its slot also takes that minute's
	// records (as any slot after a missed one does), and cannot tail.
	warm := m.Started.UTC().Truncate(time.Minute).Add(time.Minute)
	last := m.Finished.UTC().Truncate(time.Minute).Add(-time.Minute)
	res := &LiveResult{Rate: b.o.liveRate, Duration: b.o.liveDuration.String(), Grace: b.o.liveGrace.String(), Tail: !b.o.liveNoTail}
	for s := warm; !s.After(last); s = s.Add(time.Minute) {
		closed, err := b.closeTime(ctx, workflows.SlotWorkflowID(topic, s), 3*time.Minute)
		if err != nil {
			return nil, err
		}
		lat := closed.Sub(s.Add(time.Minute)).Seconds()
		if s.Equal(warm) {
			res.WarmUp = lat
			continue
		}
		res.Latencies = append(res.Latencies, lat)
		partials, totals, err := b.stages(ctx, workflows.SlotWorkflowID(topic, s))
		if err != nil {
			return nil, err
		}
		res.Partials.Latencies = append(res.Partials.Latencies, partials.Sub(s.Add(time.Minute)).Seconds())
		res.Totals.Latencies = append(res.Totals.Latencies, totals.Sub(s.Add(time.Minute)).Seconds())
	}
	if len(res.Latencies) == 0 {
		return nil, fmt.Errorf("live run too short: no whole minute after the warm-up (use --live-duration of at least 4m)")
	}
	res.P50, res.P99, res.Max = percentiles(res.Latencies)
	for _, st := range []*Stage{&res.Partials, &res.Totals} {
		st.P50, st.P99, _ = percentiles(st.Latencies)
	}
	// Every record of the run processed, then exact.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		last := time.Now().After(deadline)
		res.Exact, err = b.exact(ctx, topic, m, !last)
		if err != nil || res.Exact || last {
			return res, err
		}
		time.Sleep(5 * time.Second)
	}
}

// endRuns terminates the topic's runs that are still open once its schedule
// is gone (the minute after the run's last, started by the schedule before
// it was deleted): left open, they would run on the next worker to poll the
// task queue, in the middle of another measurement.
func (b *bench) endRuns(topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := fmt.Sprintf("ExecutionStatus = 'Running' AND (%s = '%s' OR WorkflowId STARTS_WITH '%s-')",
		workflows.AttrTopic.GetName(), topic, workflows.ScheduledWorkflowID(topic))
	resp, err := b.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q})
	if err != nil {
		b.log.Warn("live run: listing the topic's open runs", "topic", topic, "err", err)
		return
	}
	for _, e := range resp.GetExecutions() {
		id := e.GetExecution().GetWorkflowId()
		if err := b.tc.TerminateWorkflow(ctx, id, "", "the bench's live run is over"); err != nil {
			b.log.Warn("live run: ending an open run", "workflow", id, "err", err)
		}
	}
}

// stages reads from a closed slot workflow's history when its last batch
// was done and when its window totals were refreshed.
func (b *bench) stages(ctx context.Context, id string) (partials, totals time.Time, err error) {
	names := map[int64]string{}
	it := b.tc.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return partials, totals, fmt.Errorf("history of %s: %w", id, err)
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			names[e.GetEventId()] = a.GetActivityType().GetName()
		}
		if c := e.GetActivityTaskCompletedEventAttributes(); c != nil {
			switch names[c.GetScheduledEventId()] {
			case "ProcessBatch", "ProcessTails":
				partials = e.GetEventTime().AsTime()
			case "RefreshTotals":
				totals = e.GetEventTime().AsTime()
			}
		}
	}
	if partials.IsZero() || totals.IsZero() {
		return partials, totals, fmt.Errorf("history of %s: no batch done, or no totals refreshed", id)
	}
	return partials, totals, nil
}

// closeTime waits for a workflow to close and returns when it did.
func (b *bench) closeTime(ctx context.Context, id string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := b.tc.DescribeWorkflowExecution(ctx, id, "")
		if err == nil && d.WorkflowExecutionInfo.GetCloseTime() != nil {
			if st := d.WorkflowExecutionInfo.GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				return time.Time{}, fmt.Errorf("%s: %s", id, st)
			}
			return d.WorkflowExecutionInfo.GetCloseTime().AsTime(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s did not close within %s (%v)", id, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
