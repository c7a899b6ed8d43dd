package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// The planner reads a slot's neighbouring plans at every slot. A topic's
// ledger grows by a plan per partition and minute (92,000 rows a day at 64
// partitions), so that read must not grow with it: the plans of the last
// minute and then of the last hour answer for every partition planned in
// them, and only a partition without one (new, or stopped for longer) is
// looked up further back. It must read under a third of the ledger's rows
// (the query log counts them) and find exactly what a scan of all finds.
func TestNeighboursDoNotReadTheWholeLedger(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	store := e.scratchStore(t, "_ledger")

	topic := fmt.Sprintf("ledger-%d", time.Now().UnixNano())
	slot := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	var rows []ledger.Batch
	plan := func(p int32, s time.Time, sub uint32) {
		off := s.Unix()*10 + int64(sub)
		rows = append(rows, ledger.Batch{Topic: topic, TopicID: "id", Partition: p, Slot: s, Sub: sub, Start: off, End: off + 1,
			State: "done", Version: 1})
	}
	const days = 45
	for p := range int32(4) { // planned every minute for 45 days before the slot
		for s := slot.Add(-days * 24 * time.Hour); s.Before(slot); s = s.Add(time.Minute) {
			plan(p, s, 0)
		}
	}
	plan(1, slot.Add(-time.Minute), 1) // split: its neighbour is the last sub-batch
	for s := slot.Add(-11 * 24 * time.Hour); s.Before(slot.Add(-10 * 24 * time.Hour)); s = s.Add(time.Minute) {
		plan(4, s, 0) // stopped 10 days before the slot
	}
	for s := slot.Add(-2 * time.Hour); s.Before(slot.Add(-30 * time.Minute)); s = s.Add(time.Minute) {
		plan(6, s, 0) // stopped half an hour before the slot
	}
	// partition 5: never planned
	plan(0, slot.Add(3*24*time.Hour), 0) // planned later (a backfill's gap)
	plan(0, slot.Add(2*24*time.Hour), 0)
	plan(2, slot.Add(time.Minute), 0)
	plan(2, slot.Add(time.Minute), 1) // split: its neighbour is the first sub-batch
	if err := store.WriteBatches(ctx, rows); err != nil {
		t.Fatal(err)
	}

	wantPrev, wantNext := map[int32]ledger.Batch{}, map[int32]ledger.Batch{}
	before := func(x, y ledger.Batch) bool { return x.Slot.Before(y.Slot) || x.Slot.Equal(y.Slot) && x.Sub < y.Sub }
	for _, b := range rows {
		if pb, ok := wantPrev[b.Partition]; b.Slot.Before(slot) && (!ok || before(pb, b)) {
			wantPrev[b.Partition] = b
		}
		if nb, ok := wantNext[b.Partition]; b.Slot.After(slot) && (!ok || before(b, nb)) {
			wantNext[b.Partition] = b
		}
	}

	since := time.Now()
	prev, next, err := store.Neighbours(logged(ctx), topic, slot, []int32{0, 1, 2, 3, 4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	read := e.rowsRead(t, since, topic)
	if limit := uint64(len(rows) / 3); read == 0 || read > limit {
		t.Errorf("the neighbours of a slot after %d days of plans (%d rows) read %d rows, want 1 to %d", days, len(rows), read, limit)
	}
	for name, c := range map[string]struct{ got, want map[int32]ledger.Batch }{"previous": {prev, wantPrev}, "next": {next, wantNext}} {
		if len(c.got) != len(c.want) {
			t.Errorf("%s plans of %d partitions, want %d: %v", name, len(c.got), len(c.want), c.got)
		}
		for p, w := range c.want {
			if g := c.got[p]; !g.Slot.Equal(w.Slot) || g.Sub != w.Sub || g.Start != w.Start {
				t.Errorf("partition %d: %s plan slot %s sub %d, want slot %s sub %d", p, name, g.Slot, g.Sub, w.Slot, w.Sub)
			}
		}
	}
}
