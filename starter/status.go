package main

import (
	"fmt"
	"text/tabwriter"

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
			if limit < 1 || limit > chstore.MaxRecentMinutes {
				return fmt.Errorf("--limit must be from 1 to %d (%d days of minutes), got %d", chstore.MaxRecentMinutes, chstore.MaxRecentMinutes/(24*60), limit)
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
				for _, s := range ledger.Summarise(bs) {
					finished := ""
					if !s.Finished.IsZero() {
						finished = s.Finished.UTC().Format("15:04:05")
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", s.Slot.Format("2006-01-02 15:04"), s.Partitions, s.Offsets,
						s.State, s.Events, s.Late, s.Early, s.Dead, s.Markers, s.Skipped, s.MaxMs, finished)
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
