package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/reconcile"
)

// The window totals analysts read stay equal to the partials: after slots
// with late and early events, after a rerun, in the prototype's table
// (every topic summed), and when they go stale (a run that stopped between
// its partials and its refresh) reconciliation finds the hour and a repair
// refreshes it.
func TestWindowTotalsStayExact(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(130)
	d := standard(141, 2, base, 3, 400)
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 4)
	e.checkExact(t, topic, d.want)             // partials and totals
	e.runSlot(t, topic, base.Add(time.Minute)) // a rerun rewrites the same totals
	e.checkExact(t, topic, d.want)

	// The prototype's table (topic '') sums every topic's windows.
	hour := base.Truncate(time.Hour)
	all, err := e.store.ReadTotals(ctx, chstore.AllTopics, hour, hour.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var partials agg.Table
	if partials, err = e.store.AllWindows(ctx, hour, hour.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if diff := agg.Diff(partials, all); len(diff) > 0 {
		t.Fatalf("the totals of every topic differ from the partials of every topic: %v", diff[0])
	}
	var viewEvents uint64
	if err := e.db.QueryRow(ctx, "SELECT sum(event_count) FROM "+e.table("ad_events_aggregated")+
		" WHERE window_start >= ? AND window_start < ?", hour, hour.Add(time.Hour)).Scan(&viewEvents); err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, v := range all {
		want += uint64(v.Count)
	}
	if viewEvents != want {
		t.Fatalf("ad_events_aggregated holds %d events in hour %s, the totals %d", viewEvents, hour, want)
	}

	// Stale: the hour of the first slot loses its totals.
	slotHour := base.Truncate(time.Hour)
	if err := e.db.Exec(ctx, "ALTER TABLE "+e.table("window_totals")+" DROP PARTITION ('"+topic+"', toDateTime(?))", slotHour); err != nil {
		t.Fatal(err)
	}
	r := e.reconcile(t, topic, base, base.Add(3*time.Minute), false)
	if findings(r, reconcile.Totals) != 1 {
		t.Fatalf("reconciliation of stale totals found %v", r.Found)
	}
	r = e.reconcile(t, topic, base, base.Add(3*time.Minute), true)
	if len(r.RepairedHours) != 1 || !r.RepairedHours[0].Equal(slotHour) || len(r.Remaining) != 0 || len(r.RepairedSlots) != 0 {
		t.Fatalf("repair: %+v", r)
	}
	e.checkExact(t, topic, d.want)
}
