package main

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
)

// The prototype's analysis queries, unchanged but for the table's name.
var analysisQueries = []struct{ title, sql string }{
	{"Revenue by country (clicks)", `SELECT
    country,
    sum(total_revenue) as total_revenue,
    sum(event_count) as total_events
FROM {source}
WHERE event_type = 'click'
GROUP BY country
ORDER BY total_revenue DESC`},
	{"Performance by ad format", `SELECT
    ad_format,
    sum(CASE WHEN event_type = 'impression' THEN event_count ELSE 0 END) as impressions,
    sum(CASE WHEN event_type = 'click' THEN event_count ELSE 0 END) as clicks,
    round(sum(total_revenue), 2) as revenue
FROM {source}
GROUP BY ad_format
ORDER BY revenue DESC`},
	{"Integrity check", `SELECT
    count(*) as total_records,
    count(DISTINCT window_start) as unique_windows,
    min(window_start) as first_window,
    max(window_start) as last_window
FROM {source}`},
}

func (a *app) reportCmd() *cobra.Command {
	var topicOnly bool
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Print the prototype's analysis tables (revenue by country, format performance, integrity) from ClickHouse",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd, func(store *chstore.Store) error {
				source := store.Table("ad_events_aggregated")
				if topicOnly {
					if !kafkaTopicName(a.cfg.Topic) {
						return fmt.Errorf("topic %q is not a valid Kafka topic name", a.cfg.Topic)
					}
					source = fmt.Sprintf("(SELECT * FROM %s WHERE topic = '%s')", store.Table("ad_events_aggregated_by_topic"), a.cfg.Topic)
				}
				for _, q := range analysisQueries {
					fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", q.title)
					if err := printQuery(cmd.Context(), cmd.OutOrStdout(), store, strings.ReplaceAll(q.sql, "{source}", source)); err != nil {
						return fmt.Errorf("%s: %w", q.title, err)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&topicOnly, "topic-only", false, "only the windows of --topic (default: all topics, as the prototype's table)")
	return cmd
}

// kafkaTopicName reports whether s uses only the characters Kafka allows in
// topic names (so it can be quoted into SQL as it is).
func kafkaTopicName(s string) bool {
	for _, c := range s {
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != "" && len(s) <= 249
}

// printQuery runs q and prints its result as an aligned table.
func printQuery(ctx context.Context, out io.Writer, store *chstore.Store, q string) error {
	rows, err := store.Conn().Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', tabwriter.AlignRight)
	cols := rows.Columns()
	fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		cells := make([]string, len(dest))
		for i, d := range dest {
			switch v := reflect.ValueOf(d).Elem().Interface().(type) {
			case float64:
				cells[i] = fmt.Sprintf("%.4f", v)
			case time.Time:
				cells[i] = v.UTC().Format("2006-01-02 15:04:05")
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}
