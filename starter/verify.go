package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

func (a *app) verifyCmd() *cobra.Command {
	var paths []string
	var show int
	cmd := &cobra.Command{
		Use:   "verify --manifest FILE [--manifest FILE...]",
		Short: "Compare ClickHouse with a generator manifest and say exactly what differs",
		Long: "Compares every window and key of the manifest's topic (events and revenue, exact to the\n" +
			"micro-unit), the dead letters against the malformed records, and checks that every offset\n" +
			"of every processed batch is accounted for (events + dead letters + transaction markers +\n" +
			"skipped = offsets; skipped are offsets Kafka proved it will not deliver: aborted, compacted).\n" +
			"Exit status 1 if anything differs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(paths) == 0 {
				return fmt.Errorf("--manifest is required")
			}
			var ms []*manifest.Manifest
			for _, p := range paths {
				m, err := manifest.Read(p)
				if err != nil {
					return err
				}
				ms = append(ms, m)
			}
			m, err := manifest.Merge(ms...)
			if err != nil {
				return err
			}
			if cmd.Flag("topic").Changed && a.cfg.Topic != m.Topic {
				return fmt.Errorf("--topic %s: the manifest is of topic %s, which verify compares; leave --topic out", a.cfg.Topic, m.Topic)
			}
			return a.withStore(cmd, func(store *chstore.Store) error {
				n, err := verify(cmd.Context(), cmd.OutOrStdout(), store, m, show)
				if err != nil {
					return err
				}
				if n > 0 {
					return fmt.Errorf("verify: %d differences", n)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "verify: 0 differences")
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&paths, "manifest", nil, "manifest written by the generator (--manifest); several runs to the topic: repeat it")
	cmd.Flags().IntVar(&show, "show", 20, "how many differing keys to list")
	return cmd
}

// verify prints the comparison and returns the number of differences.
func verify(ctx context.Context, out io.Writer, store *chstore.Store, m *manifest.Manifest, show int) (int, error) {
	got, err := store.TopicWindows(ctx, m.Topic)
	if err != nil {
		return 0, err
	}
	want := m.Table()
	if len(got) == 0 && len(want) > 0 {
		return 0, fmt.Errorf("ClickHouse database %s holds no windows of topic %s: have its slots run (starter status), "+
			"and is RTB_CLICKHOUSE_DATABASE the worker's?", store.Database(), m.Topic)
	}
	diffs := agg.Diff(want, got)
	fmt.Fprintf(out, "topic %s: manifest has %d keys in %d windows, ClickHouse has %d keys in %d windows\n",
		m.Topic, len(want), len(want.Windows()), len(got), len(got.Windows()))
	for i, d := range diffs {
		if i == show {
			fmt.Fprintf(out, "  ... and %d more\n", len(diffs)-show)
			break
		}
		fmt.Fprintln(out, "  differs:", d)
	}
	n := len(diffs)
	var wantEv, gotEv int64
	for _, v := range want {
		wantEv += v.Count
	}
	for _, v := range got {
		gotEv += v.Count
	}
	dead, err := store.TopicDeadLetters(ctx, m.Topic)
	if err != nil {
		return 0, err
	}
	lt, err := store.LedgerTotals(ctx, m.Topic)
	if err != nil {
		return 0, err
	}
	check := func(name string, want, got uint64) {
		mark := "ok"
		if want != got {
			mark = "DIFFERS"
			n++
		}
		fmt.Fprintf(out, "  %-34s want %-10d got %-10d %s\n", name, want, got, mark)
	}
	check("events (sum over windows)", uint64(wantEv), uint64(gotEv))
	check("valid events produced / in ledger", uint64(m.Valid), lt.Events)
	check("dead letters (malformed records)", uint64(m.Malformed), dead)
	// Records delivered read-committed: the log's offsets less transaction
	// markers and records of aborted transactions (skipped).
	check("records acknowledged / counted", uint64(m.Produced), lt.Events+lt.Dead)
	if m.Aborted > 0 {
		check("aborted records / skipped offsets", uint64(m.Aborted), lt.Skipped)
	}
	check("batches not accounted for", 0, lt.Unbalanced)
	fmt.Fprintf(out, "  accounting: %d offsets = %d events + %d dead letters + %d transaction markers + %d skipped (aborted or compacted)\n",
		lt.Offsets, lt.Events, lt.Dead, lt.Markers, lt.Skipped)
	check("batches planned but not done", 0, lt.Pending)
	// What analysts read: the window totals (the prototype's table and the
	// dashboard), which must equal the partials checked above.
	if len(want) > 0 {
		ws := want.Windows()
		from, to := time.Unix(ws[0], 0), time.Unix(ws[len(ws)-1], 0).Add(time.Minute)
		totals, err := store.ReadTotals(ctx, m.Topic, from, to)
		if err != nil {
			return 0, err
		}
		td := agg.Diff(want, totals)
		for i, d := range td {
			if i == show {
				fmt.Fprintf(out, "  ... and %d more\n", len(td)-show)
				break
			}
			fmt.Fprintln(out, "  window totals differ:", d)
		}
		check("keys differing in the window totals", 0, uint64(len(td)))
	}
	return n, nil
}
