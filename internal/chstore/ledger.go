package chstore

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/sink"
)

const batchColumns = `topic, topic_id, kafka_partition, slot, sub, start_offset, end_offset, idle, high_water, state, events, late_events,
 early_events, dead_letters, control_markers, skipped_offsets, archived, windows, min_event_time, max_event_time, planned_at, finished_at,
 duration_ms, workflow_id, run_id, attempt, version`

type scanner interface{ Scan(dest ...any) error }

func scanBatch(r scanner) (ledger.Batch, error) {
	var b ledger.Batch
	var idle, archived uint8
	err := r.Scan(&b.Topic, &b.TopicID, &b.Partition, &b.Slot, &b.Sub, &b.Start, &b.End, &idle, &b.HighWater, &b.State, &b.Events, &b.LateEvents,
		&b.EarlyEvents, &b.DeadLetters, &b.Markers, &b.Skipped, &archived, &b.Windows, &b.MinEventTime, &b.MaxEventTime, &b.PlannedAt,
		&b.FinishedAt, &b.DurationMs, &b.WorkflowID, &b.RunID, &b.Attempt, &b.Version)
	b.Idle, b.Archived = idle == 1, archived == 1
	for _, t := range []*time.Time{&b.Slot, &b.MinEventTime, &b.MaxEventTime, &b.PlannedAt, &b.FinishedAt} {
		*t = t.UTC()
	}
	return b, err
}

// queryBatches returns the ledger rows (latest version) matching where, a
// condition on the columns above with ? placeholders for args.
func (s *Store) queryBatches(ctx context.Context, where, orderLimit string, args ...any) ([]ledger.Batch, error) {
	q := "SELECT " + batchColumns + " FROM " + s.Table("batches") + " FINAL WHERE " + where + " " + orderLimit
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer rows.Close()
	var out []ledger.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return out, nil
}

// SlotBatches returns the plans of one slot, by partition and sub-batch.
func (s *Store) SlotBatches(ctx context.Context, topic string, slot time.Time) ([]ledger.Batch, error) {
	return s.queryBatches(ctx, "topic = ? AND slot = ?", "ORDER BY kafka_partition, sub", topic, slot.UTC())
}

// byPartition returns the ledger rows matching where, one per partition:
// of a plan split into sub-batches, the last one if last, else the first.
func (s *Store) byPartition(ctx context.Context, last bool, where string, args ...any) (map[int32]ledger.Batch, error) {
	bs, err := s.queryBatches(ctx, where, "ORDER BY kafka_partition, slot, sub", args...)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]ledger.Batch, len(bs))
	for _, b := range bs {
		if _, seen := out[b.Partition]; !seen || last {
			out[b.Partition] = b
		}
	}
	return out, nil
}

// PartitionPlans returns the plans of the topic's partition p for the
// slots from first to last, both included (batch.Ledger).
func (s *Store) PartitionPlans(ctx context.Context, topic string, p int32, first, last time.Time) ([]ledger.Batch, error) {
	return s.queryBatches(ctx, "topic = ? AND kafka_partition = ? AND slot >= ? AND slot <= ?", "ORDER BY slot, sub",
		topic, p, first.UTC(), last.UTC())
}

// TopicPlans returns the plans of every partition of the topic for the
// slots from first to last, both included, by slot, partition and sub-batch.
func (s *Store) TopicPlans(ctx context.Context, topic string, first, last time.Time) ([]ledger.Batch, error) {
	return s.queryBatches(ctx, "topic = ? AND slot >= ? AND slot <= ?", "ORDER BY slot, kafka_partition, sub",
		topic, first.UTC(), last.UTC())
}

// PlansBetween returns the plans of every partition of the topic for the
// slots from first to last (both included; a zero last: every slot from
// first on), by slot, partition and sub-batch.
func (s *Store) PlansBetween(ctx context.Context, topic string, first, last time.Time) ([]ledger.Batch, error) {
	if last.IsZero() {
		return s.queryBatches(ctx, "topic = ? AND slot >= ?", "ORDER BY slot, kafka_partition, sub", topic, first.UTC())
	}
	return s.TopicPlans(ctx, topic, first, last)
}

// TopicBatches returns every ledger row of a topic, by slot and partition.
func (s *Store) TopicBatches(ctx context.Context, topic string) ([]ledger.Batch, error) {
	return s.queryBatches(ctx, "topic = ?", "ORDER BY slot, kafka_partition, sub", topic)
}

// neighbourLookback bounds the second read of a slot's previous plans. A
// topic's ledger grows by a plan per partition and minute (92,000 rows a
// day at 64 partitions), too many to read at every slot.
const neighbourLookback = time.Hour

// Neighbours returns, per partition, the latest plan before slot (its last
// sub-batch) and the earliest plan after it (its first): those of each of
// partitions, and of any other partition planned in the minute before the
// slot; with partitions nil, those of every partition the ledger holds.
//
// The previous plans are read in steps, each only for the partitions of
// partitions the steps before did not find: the minute before the slot (a
// topic planned every minute: one step, whose read skips every part of the
// table without that minute), the hour before it, then all before. At
// every slot, a read that does not grow with the topic's history; only a
// partition not planned in the last hour (new, or a pipeline stopped for
// longer) is looked up further back. The next plans' read does not grow
// either where the planner runs every minute: nothing lies after a live
// slot. Previous and next plans are read at once: a live slot's planner
// makes these reads at its minute's end, when ClickHouse is busiest.
func (s *Store) Neighbours(ctx context.Context, topic string, slot time.Time, partitions []int32) (prev, next map[int32]ledger.Batch, err error) {
	slot = slot.UTC()
	var g errgroup.Group
	g.Go(func() (err error) {
		next, err = s.edgePlans(ctx, false, topic, "slot > ?", slot)
		return err
	})
	g.Go(func() (err error) {
		if partitions == nil {
			prev, err = s.edgePlans(ctx, true, topic, "slot < ?", slot)
			return err
		}
		minute, hour := slot.Add(-time.Minute), slot.Add(-neighbourLookback)
		if prev, err = s.byPartition(ctx, true, "topic = ? AND slot = ?", topic, minute); err != nil {
			return err
		}
		for _, cond := range []struct {
			where string
			args  []any
		}{{"slot >= ? AND slot < ?", []any{hour, minute}}, {"slot < ?", []any{hour}}} {
			var missing []string
			for _, p := range partitions {
				if _, ok := prev[p]; !ok {
					missing = append(missing, strconv.Itoa(int(p)))
				}
			}
			if len(missing) == 0 {
				return nil
			}
			more, err := s.edgePlans(ctx, true, topic, cond.where+" AND kafka_partition IN ("+strings.Join(missing, ", ")+")", cond.args...)
			if err != nil {
				return err
			}
			maps.Copy(prev, more)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return prev, next, nil
}

// edgePlans returns, per partition, the plan of its latest slot (last) or
// its earliest that matches cond, a condition on slot and partition with ?
// for args ("" for none): of a plan split into sub-batches, the last one if
// last, else the first. cond bounds the outer read as well as the
// subquery's: ClickHouse 18.16 does not narrow a read by a set of
// (partition, slot) pairs, and would read every plan of the topic.
func (s *Store) edgePlans(ctx context.Context, last bool, topic, cond string, args ...any) (map[int32]ledger.Batch, error) {
	agg := "min"
	if last {
		agg = "max"
	}
	if cond != "" {
		cond = " AND " + cond
	}
	where := fmt.Sprintf("topic = ?%[1]s AND (kafka_partition, slot) %[2]s (SELECT kafka_partition, %[3]s(slot) FROM %[4]s FINAL WHERE topic = ?%[1]s GROUP BY kafka_partition)",
		cond, s.globalIn(), agg, s.Table("batches"))
	bound := append([]any{topic}, args...)
	return s.byPartition(ctx, last, where, append(bound, bound...)...)
}

// WriteBatches inserts ledger rows (a newer version replaces an older one).
func (s *Store) WriteBatches(ctx context.Context, bs []ledger.Batch) error {
	if len(bs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("batches")+" ("+batchColumns+")")
	if err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	defer batch.Abort()
	for _, b := range bs {
		if err := batch.Append(b.Topic, b.TopicID, b.Partition, b.Slot.UTC(), b.Sub, b.Start, b.End, flag(b.Idle), b.HighWater, b.State, b.Events, b.LateEvents,
			b.EarlyEvents, b.DeadLetters, b.Markers, b.Skipped, flag(b.Archived), b.Windows, sink.ClampTime(b.MinEventTime), sink.ClampTime(b.MaxEventTime),
			sink.ClampTime(b.PlannedAt), sink.ClampTime(b.FinishedAt), b.DurationMs, b.WorkflowID, b.RunID, b.Attempt, b.Version); err != nil {
			return fmt.Errorf("write ledger: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	return nil
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// AdoptTopicID records that the topic's incarnation with this topic ID is
// the one to plan from now on (ledger.Incarnation).
func (s *Store) AdoptTopicID(ctx context.Context, in ledger.Incarnation) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Table("topic_incarnations")+" (topic, topic_id, adopted_at, adopted_by, version)")
	if err == nil {
		defer b.Abort()
		if err = b.Append(in.Topic, in.TopicID, in.AdoptedAt.UTC(), in.AdoptedBy, ledger.Version()); err == nil {
			err = b.Send()
		}
	}
	if err != nil {
		return fmt.Errorf("adopt topic ID %s of %s: %w", in.TopicID, in.Topic, err)
	}
	return nil
}

// AdoptedTopicIDs returns the topic IDs adopted for the topic.
func (s *Store) AdoptedTopicIDs(ctx context.Context, topic string) (map[string]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT topic_id FROM "+s.Table("topic_incarnations")+" WHERE topic = ?", topic)
	if err != nil {
		return nil, fmt.Errorf("read adopted topic IDs of %s: %w", topic, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read adopted topic IDs of %s: %w", topic, err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read adopted topic IDs of %s: %w", topic, err)
	}
	return out, nil
}
