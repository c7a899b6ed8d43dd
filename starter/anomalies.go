package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
)

func (a *app) anomaliesCmd() *cobra.Command {
	var from, to string
	var all bool
	cmd := &cobra.Command{
		Use:   "anomalies --from <RFC3339> --to <RFC3339> [--all]",
		Short: "List the topic's anomaly flags of minutes [from, to): value, baseline, score, threshold",
		Long: "Each flag is a minute whose volume, CTR or eCPM, in one scope (overall, an ad format, a country,\n" +
			"or both), is past the threshold of a robust z-score against the median and MAD of the scope's\n" +
			"trailing hour. Slot runs score the windows they touched again, so a flag can disappear when late\n" +
			"events change its minute: --all lists those too (flagged = no, with when it disappeared).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, t, err := parseRange(from, to)
			if err != nil {
				return err
			}
			return a.withStore(cmd, func(store *chstore.Store) error {
				rs, err := store.Anomalies(cmd.Context(), a.cfg.Topic, f, t, all)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if len(rs) == 0 {
					fmt.Fprintf(out, "no anomaly flag for topic %s in [%s, %s)\n", a.cfg.Topic, f.Format(time.RFC3339), t.Format(time.RFC3339))
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
				fmt.Fprintln(tw, "minute\tscope\tmetric\tvalue\tbaseline\tspread\tscore\tthreshold\tflagged\tfirst flagged\tchanged")
				for _, r := range rs {
					state := "yes"
					if !r.Flagged {
						state = "no (disappeared)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.4g\t%.4g\t%.3g\t%.1f\t%.0f\t%s\t%s\t%s\n", r.Minute.Format("2006-01-02 15:04Z"), r.Scope,
						r.Metric, r.Value, r.Baseline, r.Spread, r.Score, r.Threshold, state, r.FirstFlagged.Format(time.TimeOnly), r.ChangedAt.Format(time.TimeOnly))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first minute (RFC 3339)")
	cmd.Flags().StringVar(&to, "to", "", "end (RFC 3339, exclusive)")
	cmd.Flags().BoolVar(&all, "all", false, "also the flags that disappeared")
	return cmd
}
