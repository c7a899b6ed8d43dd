package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

func (a *app) waitCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until every record now in the topic has been processed by a finished slot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return fmt.Errorf("--timeout must be positive, got %s", timeout)
			}
			ctx := cmd.Context()
			kc, err := connect.Kafka(ctx, a.cfg, "rtbpipe-starter")
			if err != nil {
				return err
			}
			defer kc.Close()
			store, err := connect.ClickHouse(ctx, a.cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			parts, err := kafka.Partitions(kc, a.cfg.Topic)
			if err != nil {
				return err
			}
			target := map[int32]int64{}
			for _, p := range parts {
				b, err := kafka.PartitionBounds(kc, a.cfg.Topic, p)
				if err != nil {
					return err
				}
				target[p] = b.End
			}
			began := time.Now()
			lastSaid := began
			for {
				behind := 0
				for _, p := range parts {
					pp, err := store.PartitionProgress(ctx, a.cfg.Topic, p, target[p])
					if err != nil {
						return err
					}
					if !pp.Caught() {
						behind++
					}
				}
				if behind == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "all %d partitions of %s processed up to their high watermarks (%s)\n",
						len(parts), a.cfg.Topic, time.Since(began).Round(time.Second))
					return nil
				}
				if time.Since(began) > timeout {
					return fmt.Errorf("%d of %d partitions of %s not processed after %s: is the worker running and the schedule active? (starter status, starter schedule describe)",
						behind, len(parts), a.cfg.Topic, timeout)
				}
				if time.Since(lastSaid) > 15*time.Second {
					fmt.Fprintf(cmd.OutOrStdout(), "waiting: %d of %d partitions behind\n", behind, len(parts))
					lastSaid = time.Now()
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}
