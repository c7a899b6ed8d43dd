// Command starter is rtbpipe's CLI: it migrates the ClickHouse schema,
// manages the schedules, runs slots, and reports status and correctness.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/workflows"
)

// app is the state the subcommands share: the configuration from env and
// flags, and where to print.
type app struct {
	cfg    config.Config
	uiURL  string
	logger *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", chstore.WithHint(err))
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	a := &app{cfg: config.FromEnv(), uiURL: config.Env("RTB_TEMPORAL_UI", "http://127.0.0.1:8233"),
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "rtbpipe's CLI: schema, schedules, slots, status and verification",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			for _, w := range config.UnknownVariables(os.Environ()) {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return a.cfg.Validate()
		},
	}
	a.cfg.BindFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&a.uiURL, "temporal-ui", a.uiURL, "Temporal UI base URL, for links (env RTB_TEMPORAL_UI)")
	root.AddCommand(a.migrateCmd(), a.setupCmd(), a.scheduleCmd(), a.runSlotCmd(), a.backfillCmd(), a.reconcileCmd(), a.statusCmd(), a.verifyCmd(), a.reportCmd(), a.waitCmd(), a.topicCmd(), a.metricsCmd(), a.dashboardCmd(), a.anomaliesCmd())
	root.InitDefaultCompletionCmd()
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command group below root (schedule,
// topic, completion) fail on a word that is none of its subcommands, as
// root does: cobra prints a group's help and exits 0 then, so a mistyped
// `starter schedule crate` would succeed having done nothing. A group
// alone prints its help.
func refuseUnknownSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(c)
		if !c.HasSubCommands() || c.Runnable() {
			continue
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			err := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				err += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return errors.New(err)
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// withStore connects to ClickHouse and calls fn with the store.
func (a *app) withStore(cmd *cobra.Command, fn func(*chstore.Store) error) error {
	store, err := connect.ClickHouse(cmd.Context(), a.cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

// requireTopic fails, with a line that says so, when the topic does not
// exist on the brokers: a command would otherwise start workflows that
// retry against it.
func (a *app) requireTopic(ctx context.Context) error {
	kc, err := connect.Kafka(ctx, a.cfg, "rtbpipe-starter")
	if err != nil {
		return err
	}
	defer kc.Close()
	_, err = kafka.Partitions(kc, a.cfg.Topic)
	return err
}

// await waits for run's result into res. A wait cut short (Ctrl-C, SIGTERM)
// is said to be one, since the workflow goes on in Temporal without it.
func (a *app) await(cmd *cobra.Command, run client.WorkflowRun, what string, res any) error {
	err := run.Get(cmd.Context(), res)
	switch {
	case err == nil:
		return nil
	case cmd.Context().Err() != nil:
		return fmt.Errorf("stopped waiting for %s, which goes on in Temporal (starter status; %s)", what, a.workflowURL(run.GetID()))
	}
	return fmt.Errorf("%s failed: %w", what, err)
}

// workflowURL links to a workflow in the Temporal UI.
func (a *app) workflowURL(id string) string {
	return workflows.UIURL(a.uiURL, a.cfg.TemporalNamespace, id)
}

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or update the ClickHouse schema (idempotent); --cluster NAME lays it out on a ClickHouse cluster",
		Long: "Create or update the ClickHouse schema (idempotent).\n\nWith --cluster NAME (or RTB_CLICKHOUSE_CLUSTER, which the worker and every\n" +
			"command then need too) the tables are created ON CLUSTER: the sharded tables as\n" +
			"replicated <name>_local tables with Distributed tables over them, the window\n" +
			"totals replicated on every server (README: ClickHouse cluster).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd, func(store *chstore.Store) error {
				done, err := store.Migrate(cmd.Context())
				if err != nil {
					return err
				}
				if len(done) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "schema of %s is up to date\n", a.cfg.ClickHouseDatabase)
				}
				for _, m := range done {
					fmt.Fprintf(cmd.OutOrStdout(), "applied %s\n", m)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&a.cfg.ClickHouseCluster, "cluster", a.cfg.ClickHouseCluster, "ClickHouse cluster to lay the tables out on (same as --clickhouse-cluster; env RTB_CLICKHOUSE_CLUSTER)")
	return cmd
}
