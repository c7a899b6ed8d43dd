package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/workflows"
)

func (a *app) setupCmd() *cobra.Command {
	var partitions int32
	var set scheduleSettings
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Everything a new installation needs: migrate, create the topic, create the schedule",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partitions < 1 {
				return fmt.Errorf("--partitions must be at least 1")
			}
			if err := set.validate(); err != nil { // before anything is created
				return err
			}
			if err := a.migrateCmd().RunE(cmd, nil); err != nil {
				return err
			}
			kc, err := connect.Kafka(cmd.Context(), a.cfg, "rtbpipe-starter")
			if err != nil {
				return err
			}
			n, err := kafka.EnsureTopic(kc, a.cfg.Topic, partitions)
			kc.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "topic %s has %d partitions\n", a.cfg.Topic, n)
			if err := a.searchAttributes(cmd); err != nil {
				return err
			}
			return a.createSchedules(cmd, set)
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 4, "partitions of the topic, if setup creates it")
	set.bind(cmd.Flags())
	return cmd
}

// searchAttributes registers rtbpipe's search attributes where the
// namespace lacks them. A server that refuses (Temporal Cloud registers
// them in its own console) is no error: slot runs go on without them.
func (a *app) searchAttributes(cmd *cobra.Command) error {
	tc, err := connect.Temporal(cmd.Context(), a.cfg, a.logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	added, err := connect.EnsureSearchAttributes(cmd.Context(), tc, a.cfg.TemporalNamespace, workflows.SearchAttributes)
	switch {
	case err != nil:
		fmt.Fprintf(cmd.OutOrStdout(), "search attributes: %v\n  slot runs go on without them; the UI's filters by topic and outcome need them\n", err)
	case len(added) > 0:
		fmt.Fprintf(cmd.OutOrStdout(), "search attributes registered: %s\n", strings.Join(added, ", "))
	}
	return nil
}
