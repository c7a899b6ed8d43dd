package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/plan"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// parseSlot reads an RFC 3339 time that must be the start of a minute.
func parseSlot(s string) (time.Time, error) {
	t, err := parseTimeFlag("--slot", s)
	if err != nil {
		return time.Time{}, err
	}
	if !t.Equal(t.Truncate(time.Minute)) {
		return time.Time{}, fmt.Errorf("--slot %q: a slot is a whole minute; seconds must be zero", s)
	}
	if err := plan.CheckSlot(t); err != nil {
		return time.Time{}, fmt.Errorf("--slot: %w", err)
	}
	return t.UTC(), nil
}

func (a *app) runSlotCmd() *cobra.Command {
	var slotFlag string
	var wait bool
	var idleWait time.Duration
	cmd := &cobra.Command{
		Use:   "run-slot --slot <RFC3339 minute> [--wait]",
		Short: "Run or re-run one slot (one minute of log time) of a topic",
		Long: "Starts the slot's workflow (ID slot-<topic>-<minute>). A rerun reads the same offsets as the\n" +
			"first run (the ledger's plan) and replaces its rows, so it never counts twice. If the slot is\n" +
			"already running, --wait attaches to that run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if slotFlag == "" {
				return fmt.Errorf("--slot is required")
			}
			slot, err := parseSlot(slotFlag)
			if err != nil {
				return err
			}
			if end := slot.Add(time.Minute); end.After(time.Now()) {
				return fmt.Errorf("slot %s has not ended yet (it ends at %s)", slot.Format(time.RFC3339), end.Format(time.RFC3339))
			}
			if idleWait < 0 {
				return fmt.Errorf("--idle-wait must not be negative")
			}
			if err := a.requireTopic(cmd.Context()); err != nil {
				return err
			}
			tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := workflows.SlotWorkflowID(a.cfg.Topic, slot)
			run, err := a.startOperation(cmd, tc, id, workflows.SlotSummary(a.cfg.Topic, slot, "run-slot"),
				wait, workflows.SlotWorkflow, workflows.SlotInput{Topic: a.cfg.Topic, Slot: slot, IdleWait: idleWait})
			if err != nil {
				return err
			}
			if !wait {
				return nil
			}
			var res workflows.SlotResult
			if err := a.await(cmd, run, "slot "+slot.Format(time.RFC3339), &res); err != nil {
				return err
			}
			printSlotResult(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().StringVar(&slotFlag, "slot", "", "the slot's minute, RFC 3339 (e.g. 2026-11-24T21:14:00Z)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to finish; exit status 1 if it failed")
	cmd.Flags().DurationVar(&idleWait, "idle-wait", 0, "how long to wait for partitions with no record past the slot's end (default 10s)")
	return cmd
}

func printSlotResult(w io.Writer, r workflows.SlotResult) {
	fmt.Fprintln(w, r.String())
	if r.Note != "" {
		fmt.Fprintln(w, "  note:", r.Note)
	}
	for _, b := range r.Batches {
		fmt.Fprintf(w, "  partition %d: offsets [%d,%d) %d events (%d late, %d early), %d dead letters, %d markers, %d skipped, %d ms%s\n",
			b.Partition, b.Start, b.End, b.Events, b.LateEvents, b.EarlyEvents, b.DeadLetters, b.Markers, b.Skipped, b.DurationMs,
			map[bool]string{true: " (idle: planned to the high watermark)"}[b.Idle])
	}
}
