// Command analysis measures the analysis reads at months of history: it
// writes synthetic partials (by default 30 days at 20,000 events/s) into a
// database of its own, builds the window totals from them, and times the
// prototype's three queries, the same first query as rtbpipe ran it before
// the totals, and one-hour and one-day dashboard panels. Run it with
// `make bench-analysis` (which starts the local stack). Medians and p99 of
// repeated runs; absolute times, since there is no baseline to divide by:
// read them against the targets (prototype's queries < 0.5 s, one-hour
// panel < 50 ms) and the before/after line of the same run.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
)

type options struct {
	days        int
	rate        float64
	countries   int
	partitions  int
	runs        int
	database    string
	reuse       bool
	keep        bool
	apiRequests int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	cmd := &cobra.Command{
		Use:           "analysis",
		Short:         "Time the analysis reads (prototype's queries, dashboard panels) over months of synthetic history",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.days < 1 || o.days > 400 || o.rate <= 0 || o.countries < 1 || o.partitions < 1 || o.runs < 1 {
				return fmt.Errorf("--days in [1, 400]; --rate, --countries, --partitions and --runs positive")
			}
			return run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.days, "days", 30, "days of history")
	f.Float64Var(&o.rate, "rate", 20_000, "events per second the history holds")
	f.IntVar(&o.countries, "countries", 12, "countries (keys: 3 event types × countries × 3 ad formats)")
	f.IntVar(&o.partitions, "partitions", 2, "partitions of the topic (partial rows per minute and key)")
	f.IntVar(&o.runs, "runs", 20, "runs of each query (one-hour panels: a random hour each run)")
	f.StringVar(&o.database, "database", "rtb_bench_analysis", "the bench's database (dropped first unless --reuse)")
	f.BoolVar(&o.reuse, "reuse", false, "reuse the history a --keep run left in --database")
	f.BoolVar(&o.keep, "keep", false, "keep the database afterwards")
	f.IntVar(&o.apiRequests, "api-requests", 1000, "requests per dashboard API measurement (0: skip it)")
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

const topic = "ad-events-history"

func run(ctx context.Context, o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := config.FromEnv()
	cfg.ClickHouseDatabase = o.database
	if err := cfg.Validate(); err != nil {
		return err
	}
	store, err := connect.ClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if !o.keep {
		defer func() {
			if err := store.DropDatabase(context.WithoutCancel(ctx)); err != nil {
				log.Warn("drop the bench database", "err", err)
			}
		}()
	}
	to := time.Now().UTC().Truncate(24 * time.Hour)
	from := to.Add(-time.Duration(o.days) * 24 * time.Hour)
	if !o.reuse {
		if err := store.DropDatabase(ctx); err != nil {
			return err
		}
		if _, err := store.Migrate(ctx); err != nil {
			return err
		}
		start := time.Now()
		n, err := store.SynthesizeHistory(ctx, chstore.History{Topic: topic, From: from, Minutes: o.days * 1440,
			Partitions: o.partitions, Countries: o.countries, Rate: o.rate})
		if err != nil {
			return err
		}
		log.Info("history written", "partial_rows", n, "took", time.Since(start).Round(time.Millisecond))
		start = time.Now()
		hours, err := store.RefreshAllTotals(ctx)
		if err != nil {
			return err
		}
		log.Info("window totals built", "hours", hours, "took", time.Since(start).Round(time.Millisecond))
	}
	r := rand.New(rand.NewPCG(1, 2))
	randomHour := func() time.Time { return from.Add(time.Duration(r.IntN(o.days*24)) * time.Hour) }
	type line struct {
		name, target string
		runs         int
		fn           func() error
	}
	lines := []line{
		{"revenue by country (prototype's query 1)", "< 0.5 s", o.runs, func() error {
			_, err := store.RevenueByCountry(ctx, "")
			return err
		}},
		{"performance by format (prototype's query 2)", "< 0.5 s", o.runs, func() error {
			_, err := store.FormatPerformance(ctx, "")
			return err
		}},
		{"integrity check (prototype's query 3)", "< 0.5 s", o.runs, func() error {
			_, err := store.IntegrityCheck(ctx, "")
			return err
		}},
		{"query 1 before the totals (partials FINAL)", "-", 3, func() error {
			_, err := store.RevenueByCountryFromPartials(ctx)
			return err
		}},
		{"one hour: the prototype's rows (API /api/windows)", "< 50 ms", o.runs, func() error {
			h := randomHour()
			_, err := store.WindowRows(ctx, topic, h, h.Add(time.Hour))
			return err
		}},
		{"one hour: CTR and eCPM per minute by format", "< 50 ms", o.runs, func() error {
			h := randomHour()
			_, err := store.Rates(ctx, topic, h, h.Add(time.Hour), time.Minute, chstore.ByFormat)
			return err
		}},
		{"one hour: CTR and eCPM per minute by country", "< 50 ms", o.runs, func() error {
			h := randomHour()
			_, err := store.Rates(ctx, topic, h, h.Add(time.Hour), time.Minute, chstore.ByCountry)
			return err
		}},
		{"one day: CTR and eCPM per hour by format", "-", o.runs, func() error {
			h := randomHour()
			_, err := store.Rates(ctx, topic, h, h.Add(24*time.Hour), time.Hour, chstore.ByFormat)
			return err
		}},
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "%d days at %.0f events/s (%s)\n", o.days, o.rate, o.database)
	fmt.Fprintln(tw, "query\ttarget\truns\tmedian\tp99\tmax\t")
	for _, l := range lines {
		var d []time.Duration
		for range l.runs {
			start := time.Now()
			if err := l.fn(); err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t\n", l.name, l.target, l.runs, ms(d[len(d)/2]), ms(d[(len(d)*99)/100]), ms(d[len(d)-1]))
	}
	if o.apiRequests > 0 {
		if err := apiLatency(ctx, tw, store, to, o.apiRequests); err != nil {
			return err
		}
	}
	return tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
