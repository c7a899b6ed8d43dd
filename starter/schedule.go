package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/workflows"
)

func (a *app) scheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Manage the every-minute schedule of a topic (create, describe, pause, unpause, delete)",
	}
	var set scheduleSettings
	create := &cobra.Command{
		Use:   "create",
		Short: "Create (or update) the schedules: each minute's slot, and reconciliation",
		Long: "Create (or update) the schedules of the topic.\n\n" +
			"The slot schedule fires as each minute starts: the minute's slot reads its records as they arrive\n" +
			"and is planned --grace after the minute ends, so its windows are complete about a second later.\n" +
			"With --tail=false it fires --grace after each minute and then reads the minute that ended.\n" +
			"A tailing worker holds one activity per partition per running minute: give it\n" +
			"RTB_WORKER_ACTIVITIES of at least 2 × partitions + 2.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := set.validate(); err != nil {
				return err
			}
			if err := a.requireTopic(cmd.Context()); err != nil { // or its slots would fail every minute
				return err
			}
			return a.createSchedules(cmd, set)
		},
	}
	set.bind(create.Flags())

	describe := &cobra.Command{
		Use:   "describe",
		Short: "Show the schedule: state, recent and next runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSchedule(cmd, func(sc client.ScheduleClient, id string) error {
				d, err := sc.GetHandle(cmd.Context(), id).Describe(cmd.Context())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				state := "running"
				if d.Schedule.State.Paused {
					state = "paused"
				}
				fmt.Fprintf(out, "schedule %s: %s", id, state)
				if d.Schedule.State.Note != "" {
					fmt.Fprintf(out, " (%s)", d.Schedule.State.Note)
				}
				fmt.Fprintf(out, "\n  runs so far: %d, missed (catch-up window passed): %d, overlapping skipped: %d\n",
					d.Info.NumActions, d.Info.NumActionsMissedCatchupWindow, d.Info.NumActionsSkippedOverlap)
				for _, r := range d.Info.RecentActions {
					wid := ""
					if r.StartWorkflowResult != nil {
						wid = r.StartWorkflowResult.WorkflowID
					}
					fmt.Fprintf(out, "  ran     %s  %s\n", r.ScheduleTime.UTC().Format(time.RFC3339), wid)
				}
				for _, t := range d.Info.NextActionTimes {
					fmt.Fprintf(out, "  next    %s\n", t.UTC().Format(time.RFC3339))
				}
				fmt.Fprintf(out, "  %s/namespaces/%s/schedules/%s\n", a.uiURL, a.cfg.TemporalNamespace, id)
				return nil
			})
		},
	}
	var note string
	pause := &cobra.Command{
		Use: "pause", Short: "Pause the schedule (missed minutes are caught up within an hour of unpausing)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSchedule(cmd, func(sc client.ScheduleClient, id string) error {
				if err := sc.GetHandle(cmd.Context(), id).Pause(cmd.Context(), client.SchedulePauseOptions{Note: note}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s paused\n", id)
				return nil
			})
		},
	}
	pause.Flags().StringVar(&note, "note", "paused with starter", "why, shown in the Temporal UI")
	unpause := &cobra.Command{
		Use: "unpause", Short: "Resume the schedule", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSchedule(cmd, func(sc client.ScheduleClient, id string) error {
				if err := sc.GetHandle(cmd.Context(), id).Unpause(cmd.Context(), client.ScheduleUnpauseOptions{Note: "unpaused with starter"}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s running\n", id)
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use: "delete", Short: "Delete the schedule (running slots finish; the ledger keeps everything)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSchedule(cmd, func(sc client.ScheduleClient, id string) error {
				if err := sc.GetHandle(cmd.Context(), id).Delete(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s deleted\n", id)
				return nil
			})
		},
	}
	cmd.AddCommand(create, describe, pause, unpause, del)
	return cmd
}

// upsertSchedule creates the schedule, or updates its spec and action if
// it exists.
func (a *app) upsertSchedule(cmd *cobra.Command, sc client.ScheduleClient, opts client.ScheduleOptions, what string) error {
	_, err := sc.Create(cmd.Context(), opts)
	verb := "created"
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		verb = "updated"
		err = sc.GetHandle(cmd.Context(), opts.ID).Update(cmd.Context(), client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				s.Spec, s.Action = &opts.Spec, opts.Action
				s.Policy = &client.SchedulePolicies{Overlap: opts.Overlap, CatchupWindow: opts.CatchupWindow, PauseOnFailure: opts.PauseOnFailure}
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("schedule %s: %w", opts.ID, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "schedule %s %s: %s, task queue %s\n", opts.ID, verb, what, a.cfg.TaskQueue)
	return nil
}

// withSchedule connects to Temporal and calls fn with each of the topic's
// schedules (slots, reconciliation); a schedule that does not exist is
// reported and skipped.
func (a *app) withSchedule(cmd *cobra.Command, fn func(client.ScheduleClient, string) error) error {
	tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	found := 0
	for _, id := range []string{workflows.ScheduleID(a.cfg.Topic), workflows.ReconcileScheduleID(a.cfg.Topic)} {
		err := fn(tc.ScheduleClient(), id)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s: not found\n", id)
			continue
		}
		if err != nil {
			return fmt.Errorf("schedule %s: %w", id, err)
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("topic %s has no schedule: create it with 'starter schedule create --topic %s'", a.cfg.Topic, a.cfg.Topic)
	}
	return nil
}

// scheduleSettings are the flags of schedule create, which setup takes too.
type scheduleSettings struct {
	grace, idleWait, recEvery, recLookback time.Duration
	tail                                   bool
}

func (s *scheduleSettings) bind(fs *pflag.FlagSet) {
	fs.DurationVar(&s.grace, "grace", 0, "delay after each minute's end before its slot is planned")
	fs.BoolVar(&s.tail, "tail", true, "read each minute's records while the minute runs")
	fs.DurationVar(&s.idleWait, "idle-wait", 0, "wait for partitions with no record past the slot's end (default 10s)")
	fs.DurationVar(&s.recEvery, "reconcile-every", 15*time.Minute, "how often to reconcile (0: no reconciliation schedule)")
	fs.DurationVar(&s.recLookback, "reconcile-lookback", 3*time.Hour, "how far back each scheduled reconciliation looks")
}

// validate checks the settings before anything is created.
func (s scheduleSettings) validate() error {
	if s.grace < 0 || s.grace >= 50*time.Second {
		return fmt.Errorf("--grace must be in [0s, 50s), got %s", s.grace)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--idle-wait", s.idleWait}, {"--reconcile-every", s.recEvery}, {"--reconcile-lookback", s.recLookback}} {
		if d.v < 0 {
			return fmt.Errorf("%s must not be negative, got %s", d.flag, d.v)
		}
	}
	w := s.idleWait
	if w == 0 {
		w = workflows.DefaultIdleWait
	}
	if s.grace+w >= time.Minute {
		return fmt.Errorf("--grace (%s) + --idle-wait (%s) must be under 1m: each slot is planned within them "+
			"after its minute, and a plan made before the next minute ends is what bounds how long a record "+
			"stamped ahead of the clock waits (README: Guarantees)", s.grace, w)
	}
	if s.recEvery == 0 {
		return nil
	}
	if s.recEvery < time.Minute {
		return fmt.Errorf("--reconcile-every must be 0 (no reconciliation schedule) or at least 1m, got %s: each run starts 30s into its interval", s.recEvery)
	}
	if s.recLookback < time.Minute || s.recLookback > workflows.MaxRange {
		return fmt.Errorf("--reconcile-lookback must be from 1m to %s (%d days), got %s", workflows.MaxRange, workflows.MaxRange/(24*time.Hour), s.recLookback)
	}
	return nil
}

// createSchedules creates or updates the topic's slot schedule and, unless
// set.recEvery is 0, its reconciliation schedule.
func (a *app) createSchedules(cmd *cobra.Command, set scheduleSettings) error {
	tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	sc := tc.ScheduleClient()
	what := fmt.Sprintf("every minute, tailing, planned %s after the minute", set.grace)
	if !set.tail {
		what = fmt.Sprintf("every minute at +%s", set.grace)
	}
	err = a.upsertSchedule(cmd, sc, workflows.SlotSchedule(workflows.ScheduledInput{Topic: a.cfg.Topic,
		IdleWait: set.idleWait, Tail: set.tail, Grace: set.grace}, a.cfg.TaskQueue), what)
	if err != nil {
		return err
	}
	id := workflows.ReconcileScheduleID(a.cfg.Topic)
	if set.recEvery == 0 { // no reconciliation schedule: one made before goes
		err := sc.GetHandle(cmd.Context(), id).Delete(cmd.Context())
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			return nil
		case err != nil:
			return fmt.Errorf("delete schedule %s (--reconcile-every 0): %w", id, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "schedule %s deleted (--reconcile-every 0)\n", id)
		return nil
	}
	return a.upsertSchedule(cmd, sc, client.ScheduleOptions{
		ID:   id,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: set.recEvery, Offset: 30 * time.Second}}},
		Action: &client.ScheduleWorkflowAction{
			ID:        workflows.ScheduledReconcileWorkflowID(a.cfg.Topic),
			Workflow:  workflows.ScheduledReconcileWorkflow,
			Args:      []any{workflows.ScheduledReconcileInput{Topic: a.cfg.Topic, Lookback: set.recLookback}},
			TaskQueue: a.cfg.TaskQueue,
		},
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: set.recEvery,
		Note:          fmt.Sprintf("rtbpipe: reconcile and repair the last %s of topic %s", set.recLookback, a.cfg.Topic),
	}, fmt.Sprintf("every %s over the last %s, with repair", set.recEvery, set.recLookback))
}
