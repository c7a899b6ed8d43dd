package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
)

// The prototype's analysis queries (run by the store), in order.
var analysisQueries = []struct {
	title string
	run   func(s *chstore.Store, ctx context.Context, topic string) (chstore.TextTable, error)
}{
	{"Revenue by country (clicks)", (*chstore.Store).RevenueByCountry},
	{"Performance by ad format", (*chstore.Store).FormatPerformance},
	{"Integrity check", (*chstore.Store).IntegrityCheck},
}

func (a *app) reportCmd() *cobra.Command {
	var topicOnly bool
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Print the prototype's analysis tables (revenue by country, format performance, integrity) from ClickHouse",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd, func(store *chstore.Store) error {
				topic := "" // every topic, as the prototype's table, unless one is given
				if topicOnly || cmd.Flag("topic").Changed || os.Getenv("RTB_KAFKA_TOPIC") != "" {
					topic = a.cfg.Topic
				}
				for _, q := range analysisQueries {
					fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", q.title)
					t, err := q.run(store, cmd.Context(), topic)
					if err != nil {
						return fmt.Errorf("%s: %w", q.title, err)
					}
					if err := printTable(cmd.OutOrStdout(), t); err != nil {
						return fmt.Errorf("%s: %w", q.title, err)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&topicOnly, "topic-only", false, "only the windows of the default topic; a topic given with --topic or RTB_KAFKA_TOPIC filters anyway (default: all topics, as the prototype's table)")
	return cmd
}

// printTable prints t as an aligned table.
func printTable(out io.Writer, t chstore.TextTable) error {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(t.Columns, "\t")+"\t")
	for _, row := range t.Rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}
