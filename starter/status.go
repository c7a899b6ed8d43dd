package main

import (
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

func (a *app) statusCmd() *cobra.Command {
	var limit int
	var perPartition bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the most recent slots of a topic from the ledger: offsets, events, late, dead letters, duration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit must be at least 1")
			}
			return a.withStore(cmd, func(store *chstore.Store) error {
				bs, err := store.RecentSlots(cmd.Context(), a.cfg.Topic, limit)
				if err != nil {
					return err
				}
				if len(bs) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no slot of topic %s has run yet\n", a.cfg.Topic)
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', tabwriter.AlignRight)
				if perPartition {
					fmt.Fprintln(tw, "slot\tpartition\tsub\tstart\tend\tstate\tevents\tlate\tearly\tdead\tmarkers\tskipped\twindows\tms\t")
					for _, b := range bs {
						fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", b.Slot.Format("2006-01-02 15:04"), b.Partition,
							b.Sub, b.Start, b.End, stateOf(b), b.Events, b.LateEvents, b.EarlyEvents, b.DeadLetters, b.Markers, b.Skipped, b.Windows, b.DurationMs)
					}
					return tw.Flush()
				}
				fmt.Fprintln(tw, "slot\tpartitions\toffsets\tstate\tevents\tlate\tearly\tdead\tmarkers\tskipped\tduration ms\tfinished\t")
				for _, s := range summarise(bs) {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", s.slot.Format("2006-01-02 15:04"), s.parts, s.offsets,
						s.state, s.events, s.late, s.early, s.dead, s.markers, s.skipped, s.maxMs, s.finished)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 15, "how many recent minutes to show")
	cmd.Flags().BoolVar(&perPartition, "partitions", false, "one line per partition instead of per slot")
	return cmd
}

func stateOf(b ledger.Batch) string {
	if b.Idle {
		return b.State + " (idle)"
	}
	return b.State
}

type slotSummary struct {
	slot                               time.Time
	parts                              int // partitions, whatever their sub-batches
	offsets                            int64
	state                              string
	events, late, early, dead, skipped uint64
	markers                            uint64
	maxMs                              uint64
	finished                           string
}

// summarise folds the ledger's batches into one line per slot, newest first.
func summarise(bs []ledger.Batch) []slotSummary {
	by := map[time.Time]*slotSummary{}
	for _, b := range bs {
		s := by[b.Slot]
		if s == nil {
			s = &slotSummary{slot: b.Slot, state: ledger.StateDone}
			by[b.Slot] = s
		}
		if b.Sub == 0 {
			s.parts++ // a partition's plan split in sub-batches counts once
		}
		s.offsets += b.Offsets()
		if b.State != ledger.StateDone {
			s.state = b.State
		}
		s.events += b.Events
		s.late += b.LateEvents
		s.early += b.EarlyEvents
		s.dead += b.DeadLetters
		s.markers += b.Markers
		s.skipped += b.Skipped
		s.maxMs = max(s.maxMs, b.DurationMs)
		if f := b.FinishedAt.Format("15:04:05"); b.State == ledger.StateDone && f > s.finished {
			s.finished = f
		}
	}
	out := make([]slotSummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y slotSummary) int { return y.slot.Compare(x.slot) })
	return out
}
