package activities

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/rtbpipe/rtbpipe/internal/kafka"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
	"github.com/rtbpipe/rtbpipe/internal/plan"
)

// PlanLedger is the ledger as the planner reads and writes it.
type PlanLedger interface {
	// SlotBatches returns the plans of one slot, by partition and sub-batch.
	SlotBatches(ctx context.Context, topic string, slot time.Time) ([]ledger.Batch, error)
	// Neighbours returns, per partition, the latest plan before slot (its
	// last sub-batch) and the earliest plan after it (its first): of each
	// of partitions at least (of every partition with partitions nil).
	Neighbours(ctx context.Context, topic string, slot time.Time, partitions []int32) (prev, next map[int32]ledger.Batch, err error)
	// PlansBetween returns the plans of the slots from first to last (both
	// included; a zero last: every slot from first on), by slot, partition
	// and sub-batch.
	PlansBetween(ctx context.Context, topic string, first, last time.Time) ([]ledger.Batch, error)
	WriteBatches(ctx context.Context, bs []ledger.Batch) error
	// AdoptedTopicIDs returns the topic IDs an operator adopted for the
	// topic (starter topic adopt).
	AdoptedTopicIDs(ctx context.Context, topic string) (map[string]bool, error)
}

// PlanInput asks for the plans of one slot.
type PlanInput struct {
	Topic      string
	Slot       time.Time
	IdleWait   time.Duration // a partition with no record past the slot's end by then (after the end) is idle
	WorkflowID string        // the slot workflow that asks, recorded in the ledger
	// ExistingOnly returns the plans already in the ledger and writes none,
	// without asking Kafka (which may have lost the topic): for recomputing
	// from the raw archive.
	ExistingOnly bool
	// NotBefore: plan no earlier than this (zero: the slot's end). A live
	// slot starts its planner a little ahead of it (planLead in
	// workflows/slot.go), and the planning waits here, up to maxPlanWait.
	NotBefore time.Time
}

// maxPlanWait bounds how long PlanSlot waits for the slot's end (or
// NotBefore); a call further ahead is refused.
const maxPlanWait = 5 * time.Second

// PlanResult is one plan per partition, in partition order.
type PlanResult struct {
	Batches  []ledger.Batch
	New      int           // plans written by this call (the others existed)
	Waited   time.Duration // time spent waiting for idle partitions
	Complete bool          // every partition has a plan
}

// How often planning asks Kafka again about partitions that have no record
// past the slot's end yet: every firstPoll for the first fastPolls after
// the slot's end (right at the end, the next records are milliseconds
// away, and every poll missed is latency), then twice as long each time,
// up to pollEvery.
const (
	firstPoll = 10 * time.Millisecond
	fastPolls = time.Second
	pollEvery = 200 * time.Millisecond
)

// PlanSlot returns the slot's plans, writing to the ledger those that do not
// exist yet. Existing plans are never changed: a rerun reads the same
// offsets. It must not run concurrently for one topic (the planner workflow
// serialises it).
func (a *Activities) PlanSlot(ctx context.Context, in PlanInput) (PlanResult, error) {
	slot := in.Slot.UTC()
	slotEnd := slot.Add(time.Minute)
	if err := plan.CheckSlot(slot); err != nil {
		return PlanResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, nil)
	}
	at := slotEnd
	if in.NotBefore.After(at) {
		at = in.NotBefore
	}
	if d := at.Sub(a.now()); d >= maxPlanWait {
		return PlanResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("slot %s is not to be planned before %s", slot.Format(time.RFC3339), at.Format(time.RFC3339Nano)), ErrTypeBadInput, nil)
	}
	if a.Batches != nil { // this worker's tails of the slot wait for its plans, not poll the ledger for them
		defer a.Batches.Planning(in.Topic, slot)()
	}
	// What the ledger and Kafka's metadata hold is read at once, before the
	// slot's end when the planner started ahead of it: only the end
	// offsets must be read after it. A plan written after this read is
	// found by the check before the write (stillFree).
	began := time.Now()
	st, err := a.readLedger(ctx, in, slot, true)
	if err != nil || len(st.missing) == 0 {
		return st.result(), err
	}
	read := time.Now()
	if d := at.Sub(a.now()); d > 0 {
		// A live slot's planner, started ahead of its time; or a slot
		// planned right at its end, by a clock a little behind.
		select {
		case <-ctx.Done():
			return PlanResult{}, ctx.Err()
		case <-time.After(d):
		}
	}
	ends := time.Now()
	newPlans, waited, err := a.planPartitions(ctx, in, slot, st)
	if err != nil {
		return PlanResult{}, err
	}
	planned := time.Now()
	if err := a.stillFree(ctx, in.Topic, slot, newPlans, st); err != nil {
		return PlanResult{}, err
	}
	checked := time.Now()
	if err := a.Plans.WriteBatches(ctx, newPlans); err != nil {
		return PlanResult{}, err
	}
	if a.Batches != nil {
		a.Batches.Planned(newPlans) // this worker's tails need not read them back
	}
	slog.InfoContext(ctx, "slot planned", "topic", in.Topic, "slot", slot.Format(time.RFC3339), "plans", len(newPlans),
		"read", read.Sub(began).Round(time.Millisecond), "late", ends.Sub(at).Round(time.Millisecond),
		"plan", planned.Sub(ends).Round(time.Millisecond), "waited", waited.Round(time.Millisecond),
		"check", checked.Sub(planned).Round(time.Millisecond), "write", time.Since(checked).Round(time.Millisecond))
	for _, b := range newPlans { // the last sub-batch of each partition holds its end
		activity.GetMetricsHandler(ctx).WithTags(map[string]string{"topic": b.Topic, "partition": strconv.Itoa(int(b.Partition))}).
			Gauge(metrics.Lag).Update(float64(b.HighWater - b.End))
	}
	return sortedPlans(PlanResult{New: len(newPlans), Waited: waited, Complete: true}, append(st.existing, newPlans...)), nil
}

// TopicPartitions lists the topic's partitions.
func (a *Activities) TopicPartitions(ctx context.Context, topic string) ([]int32, error) {
	return kafka.Partitions(a.Kafka, topic)
}

// SlotPlans returns the plans the ledger already has for the slot, and
// whether every partition has one; it writes nothing, so it needs no lock.
func (a *Activities) SlotPlans(ctx context.Context, in PlanInput) (PlanResult, error) {
	st, err := a.readLedger(ctx, in, in.Slot.UTC(), false)
	return st.result(), err
}

// ledgerState is what the planner reads before a slot's end offsets.
type ledgerState struct {
	existing   []ledger.Batch // the slot's plans that exist, as read
	complete   bool           // every partition has a plan (or in.ExistingOnly)
	missing    []int32        // partitions with no plan (none when in.ExistingOnly)
	prev, next map[int32]ledger.Batch
	topicID    string
}

// result is the slot's plans that exist, sorted.
func (st ledgerState) result() PlanResult {
	return sortedPlans(PlanResult{Complete: st.complete}, st.existing)
}

// readSlot adds to g the reads of the slot's plans and, with partitions
// (a function, since they may be read at once with the plans), of the
// plans around the slot of those partitions at least, into st.
func (a *Activities) readSlot(ctx context.Context, g *errgroup.Group, topic string, slot time.Time, partitions func() ([]int32, error), st *ledgerState) {
	g.Go(func() (err error) {
		st.existing, err = a.Plans.SlotBatches(ctx, topic, slot)
		return err
	})
	if partitions != nil {
		g.Go(func() error {
			parts, err := partitions()
			if err != nil {
				return err
			}
			st.prev, st.next, err = a.Plans.Neighbours(ctx, topic, slot, parts)
			return err
		})
	}
}

// readLedger reads the slot's plans and, unless in.ExistingOnly, lists the
// partitions that have none; with neighbours (and not in.ExistingOnly),
// also the plans around the slot (of the topic's partitions, read first)
// and the topic's ID. All at once.
func (a *Activities) readLedger(ctx context.Context, in PlanInput, slot time.Time, neighbours bool) (ledgerState, error) {
	var st ledgerState
	var parts []int32
	var g errgroup.Group // the ledger and Kafka at once
	readParts := func() (err error) {
		parts, err = kafka.Partitions(a.Kafka, in.Topic)
		return err
	}
	switch {
	case in.ExistingOnly:
		a.readSlot(ctx, &g, in.Topic, slot, nil, &st)
	case neighbours:
		a.readSlot(ctx, &g, in.Topic, slot, func() ([]int32, error) {
			err := readParts()
			return parts, err
		}, &st)
		g.Go(func() (err error) {
			st.topicID, err = kafka.TopicID(a.Kafka, in.Topic)
			return err
		})
	default:
		a.readSlot(ctx, &g, in.Topic, slot, nil, &st)
		g.Go(readParts)
	}
	if err := g.Wait(); err != nil {
		return ledgerState{}, err
	}
	for _, p := range parts {
		if !slices.ContainsFunc(st.existing, func(b ledger.Batch) bool { return b.Partition == p }) {
			st.missing = append(st.missing, p)
		}
	}
	st.complete = in.ExistingOnly || len(st.missing) == 0
	return st, nil
}

func sortedPlans(res PlanResult, plans []ledger.Batch) PlanResult {
	res.Batches = slices.Clone(plans)
	slices.SortFunc(res.Batches, func(x, y ledger.Batch) int {
		if x.Partition != y.Partition {
			return int(x.Partition - y.Partition)
		}
		return int(x.Sub) - int(y.Sub)
	})
	return res
}

// planPartitions makes the plans of the partitions st lists as missing,
// from their end offsets read now and the ledger as st holds it.
func (a *Activities) planPartitions(ctx context.Context, in PlanInput, slot time.Time, st ledgerState) ([]ledger.Batch, time.Duration, error) {
	parts, prev, next, topicID := st.missing, st.prev, st.next, st.topicID
	type end struct {
		off   int64
		found bool
	}
	ends := make(map[int32]end, len(parts))
	began := a.now()
	// A partition is idle when nothing past the slot's end has arrived by
	// the slot's end + IdleWait: a slot that ended long ago (a backfill, a
	// catch-up) does not wait at all.
	deadline := slot.Add(time.Minute).Add(in.IdleWait)
	poll := firstPoll
	scan := a.EndScan
	if scan.Budget == 0 {
		scan = defaultEndScan()
	}
	defer scan.close()
	for {
		var ask []int32
		for _, p := range parts {
			if !ends[p].found {
				ask = append(ask, p)
			}
		}
		offs, err := kafka.ListOffsets(a.Kafka, in.Topic, ask, slot.Add(time.Minute).UnixMilli())
		if err != nil {
			return nil, 0, err
		}
		for _, p := range ask {
			if offs[p], err = a.endPastPlanned(ctx, in.Topic, topicID, p, slot, offs[p], prev, next, &scan); err != nil {
				return nil, 0, err
			}
		}
		waiting := 0
		for _, p := range ask {
			found := offs[p] >= 0
			ends[p] = end{offs[p], found}
			if _, planned := next[p]; !found && !planned {
				waiting++ // not ready: no record past the slot's end yet
			}
		}
		if waiting == 0 || a.now().After(deadline) {
			break
		}
		activity.RecordHeartbeat(ctx, waiting)
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(poll):
		}
		if a.now().Sub(slot.Add(time.Minute)) > fastPolls {
			poll = min(2*poll, pollEvery)
		}
	}
	waited := a.now().Sub(began)
	// Bounds are read after the offsets above, so every end found is below
	// the high watermark read here.
	var starts, highs map[int32]int64
	var id string
	var g errgroup.Group
	g.Go(func() (err error) {
		starts, err = kafka.ListOffsets(a.Kafka, in.Topic, parts, sarama.OffsetOldest)
		return err
	})
	g.Go(func() (err error) {
		highs, err = kafka.ListOffsets(a.Kafka, in.Topic, parts, sarama.OffsetNewest)
		return err
	})
	// The offsets above are of the topic ID read before them only if it
	// is still the topic's ID after them: read it too, after the ends.
	g.Go(func() (err error) {
		id, err = kafka.TopicID(a.Kafka, in.Topic)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	if id != topicID {
		return nil, 0, fmt.Errorf("topic %s changed while it was planned (topic ID %s, then %s)", in.Topic, topicID, id)
	}
	adopted, err := a.adopted(ctx, in.Topic, topicID, prev, next)
	if err != nil {
		return nil, 0, err
	}
	now := a.now().UTC()
	var out []ledger.Batch
	for _, p := range parts {
		pin := plan.Input{Topic: in.Topic, Partition: p, Slot: slot, LogStart: starts[p], HighWater: highs[p],
			EndOffset: ends[p].off, EndFound: ends[p].found, Now: now, TopicID: topicID, Adopted: adopted}
		if b, ok := prev[p]; ok {
			pin.Prev = &b
		}
		if b, ok := next[p]; ok {
			pin.Next = &b
		}
		b, err := plan.Partition(pin)
		if err != nil {
			return nil, 0, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeTopicChanged, err)
		}
		if ends[p].found && b.End > ends[p].off {
			slog.WarnContext(ctx, "plan: records appended before the slot ended are stamped at or after its end "+
				"(a producer's clock ahead?): the plan takes them", "topic", in.Topic, "partition", p,
				"slot", slot.Format(time.RFC3339), "stamped_end", ends[p].off, "end", b.End)
		}
		b.WorkflowID, b.Version = in.WorkflowID, ledger.Version()
		out = append(out, plan.Split(b, a.maxBatchOffsets())...)
	}
	return out, waited, nil
}

// EndScan bounds the reading endPastPlanned does for one plan: within
// Budget of reading (all partitions together) and Offsets offsets of each
// partition. Past either, or for a slot whose previous plan is not from the
// minute before it (a catch-up, a paused schedule: the floor is old, and
// reading from it would read the whole backlog), the plan ends where
// ListOffsets and the floor put it, as before it looked: that slot counts
// the minute before its own, late. Which end is chosen never matters to
// exactness (any end between the start and the high watermark partitions
// the log), only to when a record is counted.
type EndScan struct {
	Budget  time.Duration
	Offsets int64
	ctx     context.Context // the budget, from the first read on
	cancel  context.CancelFunc
	scanned map[int32]int64 // per partition, where a read found nothing, for the next poll
}

// defaultEndScan: a minute of a partition at 20,000 events/s over 4
// partitions is 300,000 offsets, read in about half a second here.
func defaultEndScan() EndScan { return EndScan{Budget: 5 * time.Second, Offsets: 2_000_000} }

func (e *EndScan) close() {
	if e.cancel != nil {
		e.cancel()
	}
}

// endPastPlanned returns the first offset of topic/p stamped at or after
// slot's end (-1: none yet) among those its plan may end at, given off,
// Kafka's ListOffsets answer. That answer is the first such offset from the
// log's start: once a record stamped far ahead (a producer's clock years
// fast, microseconds sent as milliseconds) has been planned, it is that
// record for every later slot, for as long as the log holds it. Then the
// offsets past those the plan takes anyway (its start, and the floor of
// records appended before the slot ended: plan.Partition) are read for
// their timestamps, from the previous plan's end as the slot's tail reads
// them, within the bounds of e (EndScan); past them it returns off. A slot
// planned between two plans (a backfill) ends at the next plan's start
// anyway, and a plan of another topic ID (a topic created again) says
// nothing of the new log's offsets.
func (a *Activities) endPastPlanned(ctx context.Context, topic, topicID string, p int32, slot time.Time, off int64,
	prev, next map[int32]ledger.Batch, e *EndScan) (int64, error) {
	b, ok := prev[p]
	if _, planned := next[p]; off < 0 || !ok || planned || b.OtherTopic(topicID) {
		return off, nil
	}
	start := max(b.End, plan.Floor(&b, slot)) // the plan takes these offsets anyway
	if off >= start || b.PlannedAt.Before(slot.Add(-time.Minute)) {
		return off, nil
	}
	if e.ctx == nil {
		e.ctx, e.cancel = context.WithTimeout(ctx, e.Budget)
		e.scanned = map[int32]int64{}
	}
	if e.ctx.Err() != nil {
		return off, ctx.Err()
	}
	highs, err := kafka.ListOffsets(a.Kafka, topic, []int32{p}, sarama.OffsetNewest)
	if err != nil {
		return 0, err
	}
	from := max(start, e.scanned[p])
	to := min(highs[p], start+e.Offsets)
	end, found, err := kafka.FirstStamped(e.ctx, a.Conn, topic, p, from, to, slot.Add(time.Minute))
	switch {
	case err != nil && ctx.Err() == nil && e.ctx.Err() != nil: // the budget is spent
		slog.WarnContext(ctx, "plan: no time left to look past a record stamped ahead; the plan ends at the floor",
			"topic", topic, "partition", p, "slot", slot.Format(time.RFC3339), "from", from)
		return off, nil
	case err != nil:
		return 0, err
	case found:
		return end, nil
	case to < highs[p]:
		slog.WarnContext(ctx, "plan: too many offsets to look past a record stamped ahead; the plan ends at the floor",
			"topic", topic, "partition", p, "slot", slot.Format(time.RFC3339), "from", from, "high_water", highs[p])
		return off, nil
	}
	e.scanned[p] = max(from, to)
	return -1, nil
}

// plansAround reads the slot's plans and their neighbours again. Plans are
// only ever added, so every plan that can be a new plan's neighbour now is
// of a slot from the previous plan read first (early) to the next one: one
// read of those slots, not of the topic's whole history, answers (up to
// the latest slot when a partition had no next plan: the live case, where
// nothing lies after the slot), unless a partition of the new plans had no
// previous plan (or it is gone): then both reads of all slots.
func (a *Activities) plansAround(ctx context.Context, topic string, slot time.Time, plans []ledger.Batch,
	early ledgerState) (now []ledger.Batch, prev, next map[int32]ledger.Batch, err error) {
	from, to, narrow, bounded := slot, slot, true, true
	for _, b := range plans {
		p, ok := early.prev[b.Partition]
		narrow = narrow && ok
		if ok && p.Slot.Before(from) {
			from = p.Slot
		}
		n, ok := early.next[b.Partition]
		bounded = bounded && ok
		if ok && n.Slot.After(to) {
			to = n.Slot
		}
	}
	if !bounded {
		to = time.Time{}
	}
	if narrow {
		var rows []ledger.Batch
		if rows, err = a.Plans.PlansBetween(ctx, topic, from, to); err != nil {
			return nil, nil, nil, err
		}
		prev, next = map[int32]ledger.Batch{}, map[int32]ledger.Batch{}
		for _, b := range rows { // by slot, partition and sub-batch
			switch {
			case b.Slot.Equal(slot):
				now = append(now, b)
			case b.Slot.Before(slot):
				prev[b.Partition] = b // the latest slot's last sub-batch
			default:
				if _, ok := next[b.Partition]; !ok {
					next[b.Partition] = b // the earliest slot's first
				}
			}
		}
		for _, b := range plans {
			_, hasPrev := prev[b.Partition]
			_, hasNext := next[b.Partition]
			if _, had := early.next[b.Partition]; !hasPrev || had && !hasNext {
				narrow = false // a neighbour read first is gone
			}
		}
		if narrow {
			return now, prev, next, nil
		}
	}
	var g errgroup.Group
	var st ledgerState
	a.readSlot(ctx, &g, topic, slot, func() ([]int32, error) { return partitionsOf(plans), nil }, &st)
	err = g.Wait()
	return st.existing, st.prev, st.next, err
}

// partitionsOf lists the partitions of plans, once each.
func partitionsOf(plans []ledger.Batch) []int32 {
	out := make([]int32, 0, len(plans))
	for _, b := range plans {
		if !slices.Contains(out, b.Partition) {
			out = append(out, b.Partition)
		}
	}
	return out
}

// adopted says whether topicID was adopted by an operator; it asks the
// ledger only when a neighbouring plan was made for another topic ID.
func (a *Activities) adopted(ctx context.Context, topic, topicID string, prev, next map[int32]ledger.Batch) (bool, error) {
	other := false
	for _, m := range []map[int32]ledger.Batch{prev, next} {
		for _, b := range m {
			other = other || b.OtherTopic(topicID)
		}
	}
	if !other {
		return false, nil
	}
	ids, err := a.Plans.AdoptedTopicIDs(ctx, topic)
	return ids[topicID], err
}

// stillFree reads the ledger again right before new plans are written: the
// planner workflow is the lock on a topic's plans, but an activity can
// outlive its workflow (a timed-out attempt, a planner terminated by hand)
// while another planner writes. A plan of the slot written meanwhile, or a
// neighbour the new plans would not continue exactly or would overlap, is
// an error; the retry plans from what the ledger holds then. early is the
// ledger as the planner read it first (plansAround).
func (a *Activities) stillFree(ctx context.Context, topic string, slot time.Time, plans []ledger.Batch, early ledgerState) error {
	now, prev, next, err := a.plansAround(ctx, topic, slot, plans, early)
	if err != nil {
		return err
	}
	for _, b := range plans {
		where := fmt.Sprintf("%s/%d slot %s", topic, b.Partition, slot.Format(time.RFC3339))
		if i := slices.IndexFunc(now, func(o ledger.Batch) bool { return o.Partition == b.Partition }); i >= 0 {
			o := now[i]
			return fmt.Errorf("%s: planned meanwhile by %s as [%d,%d): not writing an overlapping plan [%d,%d)",
				where, o.WorkflowID, o.Start, o.End, b.Start, b.End)
		}
		// Sub-batches of one plan are contiguous (plan.Split): only the
		// first meets the previous plan.
		if p, ok := prev[b.Partition]; ok && b.Sub == 0 && !p.OtherTopic(b.TopicID) && p.End != b.Start {
			return fmt.Errorf("%s: the plan of slot %s, written meanwhile by %s, ends at %d, not at %d where this plan starts: "+
				"not writing a plan that would overlap it or leave a gap", where, p.Slot.Format(time.RFC3339), p.WorkflowID, p.End, b.Start)
		}
		if n, ok := next[b.Partition]; ok && n.Start < b.End {
			return fmt.Errorf("%s: the plan of slot %s, written meanwhile by %s, starts at %d: not writing [%d,%d), which would overlap it",
				where, n.Slot.Format(time.RFC3339), n.WorkflowID, n.Start, b.Start, b.End)
		}
	}
	return nil
}
