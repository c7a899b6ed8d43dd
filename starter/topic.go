package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

func (a *app) topicCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "The topic's identity: describe it, or adopt a topic that was deleted and created again",
	}
	describe := &cobra.Command{
		Use:   "describe",
		Short: "Show Kafka's topic ID and offsets beside the topic ID and end of each partition's last plan",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.topicState(cmd, func(*chstore.Store, string, bool) error { return nil })
		},
	}
	adopt := &cobra.Command{
		Use:   "adopt",
		Short: "Plan the topic's new incarnation (deleted and created again) from its first offset",
		Long: "A topic deleted and created again under the same name has a new Kafka topic ID, and its offsets\n" +
			"start again: planning stops (TopicChanged) rather than read the new log as the old one's continuation.\n" +
			"adopt records Kafka's current topic ID as the topic's: the next plan of each partition starts at the\n" +
			"new log's start offset. Windows written from the old topic stay; recompute its slots with --source raw.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.topicState(cmd, func(store *chstore.Store, id string, changed bool) error {
				out := cmd.OutOrStdout()
				switch {
				case id == "":
					return fmt.Errorf("the Kafka broker gives topic %s no topic ID (Kafka before 2.8): there is nothing to adopt", a.cfg.Topic)
				case !changed:
					fmt.Fprintf(out, "nothing to adopt: the last plans were made for topic ID %s, or it is adopted already\n", id)
					return nil
				}
				host, _ := os.Hostname()
				if err := store.AdoptTopicID(cmd.Context(), ledger.Incarnation{Topic: a.cfg.Topic, TopicID: id,
					AdoptedAt: time.Now().UTC(), AdoptedBy: "starter@" + host}); err != nil {
					return err
				}
				fmt.Fprintf(out, "adopted topic ID %s: the next slot plans each partition from its log start offset\n", id)
				return nil
			})
		},
	}
	cmd.AddCommand(describe, adopt)
	return cmd
}

// topicState prints Kafka's topic ID and offsets beside each partition's
// last plan, then calls fn with the store, Kafka's topic ID and whether any
// last plan was made for another one.
func (a *app) topicState(cmd *cobra.Command, fn func(store *chstore.Store, id string, changed bool) error) error {
	kc, err := connect.Kafka(cmd.Context(), a.cfg, "rtbpipe-starter")
	if err != nil {
		return err
	}
	defer kc.Close()
	id, err := kafka.TopicID(kc, a.cfg.Topic)
	if err != nil {
		return err
	}
	parts, err := kafka.Partitions(kc, a.cfg.Topic)
	if err != nil {
		return err
	}
	starts, err := kafka.ListOffsets(kc, a.cfg.Topic, parts, sarama.OffsetOldest)
	if err != nil {
		return err
	}
	highs, err := kafka.ListOffsets(kc, a.cfg.Topic, parts, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	return a.withStore(cmd, func(store *chstore.Store) error {
		latest, err := store.LatestPlans(cmd.Context(), a.cfg.Topic)
		if err != nil {
			return err
		}
		adopted, err := store.AdoptedTopicIDs(cmd.Context(), a.cfg.Topic)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		say := id
		if adopted[id] {
			say += " (adopted)"
		}
		fmt.Fprintf(out, "topic %s: Kafka's topic ID %s\n", a.cfg.Topic, say)
		fmt.Fprintf(out, "%-9s %12s %14s  %-22s %12s  %s\n", "partition", "log start", "high watermark", "last plan (slot)", "plan end", "planned for topic ID")
		slices.Sort(parts)
		var other []string
		for _, p := range parts {
			b, ok := latest[p]
			if !ok {
				fmt.Fprintf(out, "%-9d %12d %14d  %-22s\n", p, starts[p], highs[p], "none")
				continue
			}
			note := b.TopicID
			if b.OtherTopic(id) && !adopted[id] {
				note += "  ← another topic: deleted and created again"
				other = append(other, fmt.Sprint(p))
			}
			fmt.Fprintf(out, "%-9d %12d %14d  %-22s %12d  %s\n", p, starts[p], highs[p], b.Slot.Format("2006-01-02T15:04Z"), b.End, note)
		}
		changed := len(other) > 0
		if changed {
			fmt.Fprintf(out, "partitions %s were last planned on another incarnation of the topic: planning stops until `starter topic adopt`\n",
				strings.Join(other, ", "))
		}
		return fn(store, id, changed)
	})
}
