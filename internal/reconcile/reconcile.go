// Package reconcile holds reconciliation's rules: the kinds of findings, the
// Finding and Record types, and Check, the pure function that decides what
// is wrong over a range of slots from what the ledger, the partials and
// Kafka hold (DESIGN.md: plans partition the log; every offset is accounted
// for). It does no I/O and reads no clock: the activity that calls it
// (activities.CheckRange) loads its Input, and the workflow that repairs
// (workflows.ReconcileWorkflow) acts on its findings.
package reconcile

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// Finding kinds of a reconciliation.
const (
	Missing     = "missing"     // an ended slot has no plan where the log has offsets no plan covers
	NotDone     = "not-done"    // planned long ago, never finished
	Unaccounted = "unaccounted" // events + dead letters + markers + skipped != offsets
	Partials    = "partials"    // the partials' events disagree with the ledger
	Gap         = "gap"         // plans not contiguous: offsets skipped
	Overlap     = "overlap"     // plans overlap: offsets planned twice
	Behind      = "behind"      // Kafka holds records older than the grace past the last plan
	Trailing    = "trailing"    // plans end below what Kafka held minutes ago (records stamped ahead)
	Recreated   = "recreated"   // Kafka's topic has another topic ID than the plans: deleted and created again
	Truncated   = "truncated"   // Kafka's high watermark is below the last plan's end: records lost
	Totals      = "totals"      // an hour's window totals differ from its partials (repair: refresh the hour)
)

// NotDoneAfter is how long after its planning, beyond the grace, a batch
// that has not finished is a finding.
const NotDoneAfter = 2 * time.Minute

// Finding is one thing a reconciliation found wrong.
type Finding struct {
	Slot       time.Time
	Partition  int32
	Kind       string
	Detail     string
	Repairable bool // re-running the slot fixes it
}

// Cutoff is the end of the last slot a check at now with grace looks at:
// slots that end after it have not ended (with the grace) yet, and records
// stamped at or after it are not yet work left undone.
func Cutoff(now time.Time, grace time.Duration) time.Time {
	return now.UTC().Add(-grace).Truncate(time.Minute)
}

// Clip returns the slots [from, to) that a check at now with grace looks at:
// from rounded down to its minute, to no later than Cutoff.
func Clip(from, to, now time.Time, grace time.Duration) (time.Time, time.Time) {
	from, to = from.UTC().Truncate(time.Minute), to.UTC()
	if c := Cutoff(now, grace); to.After(c) {
		to = c
	}
	return from, to
}

// Input is everything a check of one topic's slots [From, To) looks at,
// already loaded. The maps are keyed by partition.
type Input struct {
	From, To   time.Time     // slots [From, To), already clipped (see Clip)
	Now        time.Time     // when the check runs
	Grace      time.Duration // how old unprocessed work must be to count
	Partitions []int32       // the topic's partitions

	Batches  []ledger.Batch                 // the ledger rows of slots [From, To), in any order
	Prev     map[int32]ledger.Batch         // the latest plan before From, if any
	Next     map[int32]ledger.Batch         // the earliest plan after From, if any (it may lie past To)
	Partials map[int32]map[time.Time]uint64 // events the partials hold per slot of [From, To)

	Latest   map[int32]ledger.Batch // the latest plan overall, if any
	LogStart map[int32]int64        // the log start offset
	// AtCutoff is the first offset stamped at or after Cutoff(Now, Grace),
	// or the high watermark when there is none.
	AtCutoff map[int32]int64
	// Seen is the latest plan of a slot before SeenBefore(Now, Grace): the
	// high watermark it saw when it was made is what Kafka held then.
	Seen map[int32]ledger.Batch

	HighWater map[int32]int64 // the high watermark (last stable offset) now
	TopicID   string          // Kafka's ID of the topic now ("" if the broker gives none)
	Adopted   map[string]bool // topic IDs an operator adopted (starter topic adopt)

	// StaleTotals are the hours of [From, To) whose window totals (the
	// topic's or every topic's) differ from the partials, twice a few
	// seconds apart (a run refreshes them right after its partials).
	StaleTotals []time.Time
}

// SeenBefore is the slot before which Input.Seen's plans lie: two minutes
// before the cutoff, so that a slot planned live (under a minute after it
// ended) was planned over a minute before the cutoff, and every record it
// saw should be in a plan (the floor, internal/plan) by now.
func SeenBefore(now time.Time, grace time.Duration) time.Time {
	return Cutoff(now, grace).Add(-2 * time.Minute)
}

// Report is what a check found.
type Report struct {
	SlotsChecked   int
	BatchesChecked int
	Findings       []Finding
}

// Check decides the findings over in's range:
//
//   - plans are contiguous: each starts where the partition's previous plan
//     ends (gap, overlap; a rerun cannot fix either, since plans never change);
//   - a batch planned long ago has finished (not-done);
//   - every offset of a done batch is accounted for (unaccounted);
//   - the partials hold the events the ledger says (partials);
//   - no offset is left out of every plan. A minute without a plan for a
//     partition is no finding by itself: the partition's next plan took its
//     offsets (a slot run after missed slots takes theirs), or the topic had
//     no plan yet. It is a finding only where the log has offsets that no
//     plan covers:
//     before the partition's first plan, if that plan starts above the log
//     start (missing; not repairable, since a slot planned before a later
//     plan takes only offsets between its neighbours, here none);
//     between two plans, if they are not contiguous (the gap above);
//     after the partition's last plan, if Kafka holds records stamped before
//     the cutoff past its end, or a partition without any plan holds such
//     records (behind; its repair runs the slot just before the cutoff, which
//     takes all those offsets); or, whatever their timestamps, if Kafka held
//     them when a plan made over a minute before the cutoff was made
//     (trailing: the plans do not keep up with the log, because records are
//     stamped ahead of the clock and slots are not planned within a minute
//     of their end, or the schedule stopped; the same repair);
//   - the window totals of each hour equal the sums of its partials (totals;
//     repaired by refreshing the hour, not by a rerun).
func Check(in Input) Report {
	var rep Report
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }
	bs := slices.Clone(in.Batches)
	slices.SortFunc(bs, func(x, y ledger.Batch) int {
		if x.Partition != y.Partition {
			return int(x.Partition - y.Partition)
		}
		if c := x.Slot.Compare(y.Slot); c != 0 {
			return c
		}
		return int(x.Sub) - int(y.Sub)
	})
	type key struct {
		p    int32
		slot int64
	}
	have := map[key]bool{}
	last := map[int32]ledger.Batch{}
	for p, b := range in.Prev {
		last[p] = b
	}
	for i := range bs {
		b := &bs[i]
		rep.BatchesChecked++
		have[key{b.Partition, b.Slot.Unix()}] = true
		if pb, ok := last[b.Partition]; ok {
			switch {
			case pb.OtherTopic(b.TopicID) && !in.Adopted[b.TopicID]:
				add(Finding{b.Slot, b.Partition, Recreated, fmt.Sprintf("planned for topic ID %s after plans for topic ID %s (slot %s), "+
					"which was never adopted", b.TopicID, pb.TopicID, pb.Slot.Format("15:04")), false})
			case pb.OtherTopic(b.TopicID): // the adopted incarnation's first plan starts again
			case b.Start > pb.End:
				add(Finding{b.Slot, b.Partition, Gap, fmt.Sprintf("starts at %d, the plan of %s ends at %d: offsets [%d,%d) in no batch",
					b.Start, pb.Slot.Format("15:04"), pb.End, pb.End, b.Start), false})
			case b.Start < pb.End:
				add(Finding{b.Slot, b.Partition, Overlap, fmt.Sprintf("starts at %d, before the plan of %s ends (%d)",
					b.Start, pb.Slot.Format("15:04"), pb.End), false})
			}
		}
		last[b.Partition] = *b
		switch {
		case !b.Done() && in.Now.Sub(b.PlannedAt) > NotDoneAfter+in.Grace:
			add(Finding{b.Slot, b.Partition, NotDone, fmt.Sprintf("planned at %s, never finished", b.PlannedAt.Format(time.RFC3339)), true})
		case b.Done() && !b.Balanced():
			add(Finding{b.Slot, b.Partition, Unaccounted, fmt.Sprintf("%d events + %d dead letters + %d markers + %d skipped != %d offsets",
				b.Events, b.DeadLetters, b.Markers, b.Skipped, b.Offsets()), true})
		}
	}
	// Offsets before a partition's first plan that no plan covers.
	uncovered := map[int32]ledger.Batch{} // the first plan, where it starts above the log start
	for _, p := range in.Partitions {
		if _, ok := in.Prev[p]; ok {
			continue // the minutes before its first plan of the range are between two plans
		}
		first, ok := in.Next[p]
		if i := slices.IndexFunc(bs, func(b ledger.Batch) bool { return b.Partition == p }); i >= 0 {
			first, ok = bs[i], true
		}
		if ok && first.Start > in.LogStart[p] {
			uncovered[p] = first
		}
	}
	for s := in.From; s.Before(in.To); s = s.Add(time.Minute) {
		rep.SlotsChecked++
		for _, p := range in.Partitions {
			if f, ok := uncovered[p]; ok && s.Before(f.Slot) && !have[key{p, s.Unix()}] {
				add(Finding{s, p, Missing, fmt.Sprintf("no plan, and offsets [%d,%d) before the first plan (slot %s) are in no plan",
					in.LogStart[p], f.Start, f.Slot.Format(time.RFC3339)), false})
			}
		}
	}
	// Partials against the ledger.
	sums := map[key]uint64{}
	for p, m := range in.Partials {
		for s, n := range m {
			sums[key{p, s.Unix()}] += n
		}
	}
	// The partials hold a slot's events per partition, over its sub-batches.
	type counted struct {
		events  uint64
		allDone bool
	}
	ledgerSums := map[key]counted{}
	var keys []key
	for i := range bs {
		b := &bs[i]
		k := key{b.Partition, b.Slot.Unix()}
		c, seen := ledgerSums[k]
		if !seen {
			c.allDone = true
			keys = append(keys, k)
		}
		c.events += b.Events
		c.allDone = c.allDone && b.Done()
		ledgerSums[k] = c
	}
	for _, k := range keys {
		if c := ledgerSums[k]; c.allDone && sums[k] != c.events {
			add(Finding{time.Unix(k.slot, 0).UTC(), k.p, Partials, fmt.Sprintf("partials hold %d events, the ledger %d", sums[k], c.events), true})
		}
	}
	// Work never done: records older than the grace past the last plan.
	cutoff := Cutoff(in.Now, in.Grace)
	for _, p := range in.Partitions {
		off := in.AtCutoff[p]
		b, ok := in.Latest[p]
		seen, saw := in.Seen[p]
		saw = saw && !seen.PlannedAt.After(cutoff.Add(-time.Minute)) && !seen.OtherTopic(b.TopicID)
		if ok && b.OtherTopic(in.TopicID) {
			if !in.Adopted[in.TopicID] {
				add(Finding{cutoff.Add(-time.Minute), p, Recreated, fmt.Sprintf("Kafka's topic has topic ID %s, its last plan "+
					"(slot %s) was made for topic ID %s: the topic was deleted and created again, and no plan is made until "+
					"`starter topic adopt` adopts the new one", in.TopicID, b.Slot.Format(time.RFC3339), b.TopicID), false})
				continue
			}
			ok = false // the adopted incarnation has no plan yet
		}
		switch {
		case ok && in.HighWater[p] < b.End:
			add(Finding{cutoff.Add(-time.Minute), p, Truncated, fmt.Sprintf("Kafka's high watermark %d is below the end of "+
				"the last plan (slot %s, offset %d): records were lost (an unclean leader election, or records deleted), "+
				"or the topic was created again on a broker that gives no topic IDs", in.HighWater[p], b.Slot.Format(time.RFC3339), b.End), false})
		case ok && b.End < off:
			add(Finding{cutoff.Add(-time.Minute), p, Behind, fmt.Sprintf("records [%d,%d) stamped before %s are in no plan (last plan: slot %s)",
				b.End, off, cutoff.Format(time.RFC3339), b.Slot.Format(time.RFC3339)), true})
		case ok && saw && b.End < seen.HighWater:
			add(Finding{cutoff.Add(-time.Minute), p, Trailing, fmt.Sprintf("records [%d,%d), in Kafka when slot %s was planned at %s, "+
				"are in no plan (last plan: slot %s): stamped ahead of the clock, with slots planned a minute or more after they end, "+
				"or the schedule stopped", b.End, seen.HighWater, seen.Slot.Format(time.RFC3339), seen.PlannedAt.Format(time.RFC3339),
				b.Slot.Format(time.RFC3339)), true})
		case !ok && in.LogStart[p] < off:
			add(Finding{cutoff.Add(-time.Minute), p, Behind, fmt.Sprintf("records [%d,%d) stamped before %s are in no plan (the partition has none)",
				in.LogStart[p], off, cutoff.Format(time.RFC3339)), true})
		}
	}
	for _, h := range in.StaleTotals {
		add(Finding{h, -1, Totals, fmt.Sprintf("the window totals of hour %s differ from its partials (a run stopped between "+
			"writing them and refreshing the totals?): refreshing the hour repairs it", h.UTC().Format("2006-01-02T15Z")), true})
	}
	return rep
}

// Record is one reconciliation's outcome: a row of rtb.reconciliation_runs.
type Record struct {
	WorkflowID, RunID, Topic     string
	From, To, Started, Finished  time.Time
	Repair                       bool
	SlotsChecked, BatchesChecked int
	Found                        []Finding
	RepairedSlots                []time.Time
	Remaining                    []Finding
}

// Details is the record's details column: the findings, the repaired slots
// and what remains, as JSON.
func (r Record) Details() (string, error) {
	b, err := json.Marshal(map[string]any{"found": r.Found, "repaired_slots": r.RepairedSlots, "remaining": r.Remaining})
	if err != nil {
		return "", fmt.Errorf("encode reconciliation details: %w", err)
	}
	return string(b), nil
}
