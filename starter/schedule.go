package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
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
	var grace, idleWait time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Create (or update) the schedule that runs each minute's slot a few seconds after it ends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if grace < 0 || grace >= 50*time.Second {
				return fmt.Errorf("--grace must be in [0s, 50s), got %s", grace)
			}
			if idleWait < 0 {
				return fmt.Errorf("--idle-wait must not be negative")
			}
			return a.withSchedule(cmd, func(sc client.ScheduleClient, id string) error {
				spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Minute, Offset: grace}}}
				action := &client.ScheduleWorkflowAction{
					ID:        workflows.ScheduledWorkflowID(a.cfg.Topic),
					Workflow:  workflows.ScheduledSlotWorkflow,
					Args:      []any{workflows.ScheduledInput{Topic: a.cfg.Topic, IdleWait: idleWait}},
					TaskQueue: a.cfg.TaskQueue,
				}
				_, err := sc.Create(cmd.Context(), client.ScheduleOptions{
					ID:            id,
					Spec:          spec,
					Action:        action,
					Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
					CatchupWindow: time.Hour,
					Note:          fmt.Sprintf("rtbpipe: every minute + %s, the slot that just ended of topic %s", grace, a.cfg.Topic),
				})
				if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
					err = sc.GetHandle(cmd.Context(), id).Update(cmd.Context(), client.ScheduleUpdateOptions{
						DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
							s := in.Description.Schedule
							s.Spec, s.Action = &spec, action
							return &client.ScheduleUpdate{Schedule: &s}, nil
						},
					})
					if err == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "schedule %s updated: every minute at +%s, task queue %s\n", id, grace, a.cfg.TaskQueue)
					}
					return err
				}
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "schedule %s created: every minute at +%s, task queue %s\n", id, grace, a.cfg.TaskQueue)
				}
				return err
			})
		},
	}
	create.Flags().DurationVar(&grace, "grace", 5*time.Second, "delay after each minute before its slot runs")
	create.Flags().DurationVar(&idleWait, "idle-wait", 0, "wait for partitions with no record past the slot's end (default 10s)")

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

// withSchedule connects to Temporal and calls fn with the topic's schedule ID.
func (a *app) withSchedule(cmd *cobra.Command, fn func(client.ScheduleClient, string) error) error {
	tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	id := workflows.ScheduleID(a.cfg.Topic)
	if err := fn(tc.ScheduleClient(), id); err != nil {
		return fmt.Errorf("schedule %s: %w", id, err)
	}
	return nil
}
