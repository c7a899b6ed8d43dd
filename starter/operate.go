package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/activities"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// parseTimeFlag reads flag's RFC 3339 time v.
func parseTimeFlag(flag, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time like 2026-11-24T10:00:00Z (a zone, Z or +01:00, is required)", flag, v)
	}
	return t, nil
}

// parseRange reads --from and --to (RFC 3339) as whole minutes: from rounded
// down, to rounded up.
func parseRange(from, to string) (time.Time, time.Time, error) {
	if from == "" || to == "" {
		return time.Time{}, time.Time{}, fmt.Errorf("--from and --to are required (RFC 3339, e.g. 2026-11-23T10:00:00Z)")
	}
	f, err := parseTimeFlag("--from", from)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	t, err := parseTimeFlag("--to", to)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	f = f.UTC().Truncate(time.Minute)
	if r := t.UTC().Truncate(time.Minute); r.Before(t) {
		t = r.Add(time.Minute)
	} else {
		t = r
	}
	if !f.Before(t) {
		return time.Time{}, time.Time{}, fmt.Errorf("--from %s is not before --to %s", f.Format(time.RFC3339), t.Format(time.RFC3339))
	}
	return f, t, nil
}

// startOperation starts (or with wait, attaches to) a workflow with a fixed
// ID; a second one of the same ID is refused while the first runs.
func (a *app) startOperation(cmd *cobra.Command, tc client.Client, id, summary string, wait bool, wf any, arg any) (client.WorkflowRun, error) {
	conflict := enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL
	if wait {
		conflict = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	}
	run, err := tc.ExecuteWorkflow(cmd.Context(), client.StartWorkflowOptions{
		ID: id, TaskQueue: a.cfg.TaskQueue, StaticSummary: summary,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: conflict,
		// Without this the SDK quietly returns the run already going.
		WorkflowExecutionErrorWhenAlreadyStarted: !wait,
	}, wf, arg)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil, fmt.Errorf("%s is already running (refused: it would do the same work twice); follow it with --wait, or in %s", id, a.workflowURL(id))
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "workflow %s run %s\n  %s\n", run.GetID(), run.GetRunID(), a.workflowURL(run.GetID()))
	return run, nil
}

func (a *app) backfillCmd() *cobra.Command {
	var from, to, source string
	var parallelism int
	var wait bool
	cmd := &cobra.Command{
		Use:   "backfill --from <RFC3339> --to <RFC3339> [--source kafka|raw] [--parallelism N] [--wait]",
		Short: "Recompute every window in [from, to): rerun each slot that holds events of those windows",
		Long: "Starts a BackfillWorkflow (ID backfill-<topic>-<from>-<to>). It reruns every slot that holds\n" +
			"events of the windows in range: the slots of those minutes (never run before included) and any\n" +
			"later slot holding their late events. --source raw recomputes from the raw archive when Kafka no\n" +
			"longer holds the offsets. A second backfill of the same range is refused while one runs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, t, err := parseRange(from, to)
			if err != nil {
				return err
			}
			if t, err = a.endedRange(cmd, "backfill", f, t); err != nil {
				return err
			}
			src, err := activities.ParseSource(source)
			if err != nil {
				return fmt.Errorf("--source: %w", err)
			}
			if parallelism < 1 || parallelism > 64 {
				return fmt.Errorf("--parallelism must be in [1, 64], got %d", parallelism)
			}
			if src == activities.SourceKafka { // the raw archive outlives its topic
				if err := a.requireTopic(cmd.Context()); err != nil {
					return err
				}
			}
			tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := workflows.BackfillID(a.cfg.Topic, f, t)
			run, err := a.startOperation(cmd, tc, id, fmt.Sprintf("backfill %s [%s, %s) from %s", a.cfg.Topic,
				f.Format(time.RFC3339), t.Format(time.RFC3339), source), wait, workflows.BackfillWorkflow,
				workflows.BackfillInput{Topic: a.cfg.Topic, From: f, To: t, Source: src, Parallelism: parallelism})
			if err != nil || !wait {
				return err
			}
			stop := a.followProgress(cmd, tc, id)
			var res workflows.BackfillProgress
			err = a.await(cmd, run, "backfill", &res)
			stop()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first window (RFC 3339; rounded down to the minute)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, exclusive (RFC 3339; rounded up to the minute)")
	cmd.Flags().StringVar(&source, "source", string(activities.SourceKafka), "kafka, or raw: the raw archive, for offsets past Kafka's retention")
	cmd.Flags().IntVar(&parallelism, "parallelism", 4, "slots recomputed at once")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the progress and wait for the end; exit status 1 if it failed")
	return cmd
}

// followProgress prints the backfill's progress query every few seconds
// until the returned stop is called.
func (a *app) followProgress(cmd *cobra.Command, tc client.Client, id string) (stop func()) {
	ctx, cancel := context.WithCancel(cmd.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			v, err := tc.QueryWorkflow(ctx, id, "", workflows.BackfillQuery)
			if err != nil {
				continue
			}
			var p workflows.BackfillProgress
			if v.Get(&p) == nil && p.String() != last {
				last = p.String()
				fmt.Fprintln(cmd.OutOrStdout(), "  "+last)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (a *app) reconcileCmd() *cobra.Command {
	var from, to string
	var repair, wait bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "reconcile --from <RFC3339> --to <RFC3339> [--repair] [--wait]",
		Short: "Check that every offset of the slots in [from, to) was counted once; with --repair, heal what is not",
		Long: "Checks, per slot and partition: plans contiguous (no gap, no overlap); every offset accounted\n" +
			"for (events + dead letters + markers + skipped = offsets); partials agree with the ledger; no slot missing;\n" +
			"no record in Kafka older than the grace past the last plan. --repair reruns the slots concerned\n" +
			"and checks again. Every run is recorded in rtb.reconciliation_runs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, t, err := parseRange(from, to)
			if err != nil {
				return err
			}
			if t, err = a.endedRange(cmd, "reconciliation", f, t); err != nil {
				return err
			}
			if grace < 0 {
				return fmt.Errorf("--grace must not be negative")
			}
			if err := a.requireTopic(cmd.Context()); err != nil {
				return err
			}
			tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := workflows.ReconcileID(a.cfg.Topic, f, t)
			run, err := a.startOperation(cmd, tc, id, fmt.Sprintf("reconcile %s [%s, %s) repair=%v", a.cfg.Topic,
				f.Format(time.RFC3339), t.Format(time.RFC3339), repair), wait, workflows.ReconcileWorkflow,
				workflows.ReconcileInput{Topic: a.cfg.Topic, From: f, To: t, Repair: repair, Grace: grace})
			if err != nil || !wait {
				return err
			}
			var res workflows.ReconcileResult
			if err := a.await(cmd, run, "reconcile", &res); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, res.String())
			for _, x := range res.Found {
				fmt.Fprintf(out, "  found     %s p%d %-12s %s\n", x.Slot.Format("2006-01-02T15:04Z"), x.Partition, x.Kind, x.Detail)
			}
			for _, s := range res.RepairedSlots {
				fmt.Fprintf(out, "  repaired  %s\n", s.Format("2006-01-02T15:04Z"))
			}
			for _, x := range res.Remaining {
				fmt.Fprintf(out, "  REMAINING %s p%d %-12s %s\n", x.Slot.Format("2006-01-02T15:04Z"), x.Partition, x.Kind, x.Detail)
			}
			if len(res.Remaining) > 0 {
				return fmt.Errorf("%d findings remain", len(res.Remaining))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first slot (RFC 3339; rounded down to the minute)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, exclusive (RFC 3339; rounded up to the minute)")
	cmd.Flags().BoolVar(&repair, "repair", false, "rerun the slots whose findings a rerun fixes, then check again")
	cmd.Flags().DurationVar(&grace, "grace", 0, "unprocessed work younger than this is not a finding (default 2m)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait and print the findings; exit status 1 if findings remain")
	return cmd
}

// endedRange checks a range [from, to) a command was given
// (workflows.CheckRange) and cuts it at the current minute (endedAt), saying
// so: what covers it returns.
func (a *app) endedRange(cmd *cobra.Command, what string, from, to time.Time) (time.Time, error) {
	if err := workflows.CheckRange(from, to); err != nil {
		return time.Time{}, err
	}
	end, cut, err := endedAt(from, to, time.Now())
	if err != nil {
		return time.Time{}, err
	}
	if cut {
		fmt.Fprintf(cmd.OutOrStdout(), "--to %s is in the future: the %s covers [%s, %s), the minutes that have ended; the schedule runs the others as they end\n",
			to.Format(time.RFC3339), what, from.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return end, nil
}

// endedAt cuts the end of a range [from, to) of minutes at the current
// one, which has not ended (cut says whether it did): a slot is run once its
// minute has ended, and the schedule runs those after now as they end.
func endedAt(from, to, now time.Time) (end time.Time, cut bool, err error) {
	current := now.UTC().Truncate(time.Minute)
	if !from.Before(current) {
		return time.Time{}, false, fmt.Errorf("--from %s: no minute of the range has ended yet (now %s); the schedule runs each minute as it ends",
			from.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if to.After(current) {
		return current, true, nil
	}
	return to, false, nil
}
