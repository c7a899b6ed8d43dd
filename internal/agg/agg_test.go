package agg

import (
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
)

func ev(t time.Time, typ, country, format string, micros int64) *event.Event {
	return &event.Event{Time: t, EventType: typ, Country: country, AdFormat: format, RevenueMicros: micros}
}

func TestAddAndRows(t *testing.T) {
	m := time.Date(2026, 11, 24, 21, 14, 0, 0, time.UTC)
	tb := Table{}
	tb.Add(ev(m.Add(59*time.Second), "click", "US", "banner", 60000))
	tb.Add(ev(m, "click", "US", "banner", 1))
	tb.Add(ev(m.Add(60*time.Second), "click", "US", "banner", 5)) // next window
	tb.Add(ev(m.Add(-time.Hour), "impression", "KR", "interstitial", 0))
	rows := tb.Rows()
	if len(rows) != 3 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	if rows[0].WindowStart != m.Add(-time.Hour) || rows[1].Count != 2 || rows[1].RevenueMicros != 60001 || rows[2].Count != 1 {
		t.Fatalf("rows %+v", rows)
	}
	if ws := tb.Windows(); len(ws) != 3 || ws[1] != m.Unix() {
		t.Fatalf("windows %v", ws)
	}
	if back := FromRows(rows); len(Diff(tb, back)) != 0 {
		t.Fatal("round trip through rows changed the table")
	}
}

func TestMergeIsOrderIndependent(t *testing.T) {
	m := time.Date(2026, 11, 24, 21, 14, 0, 0, time.UTC)
	a, b := Table{}, Table{}
	a.Add(ev(m, "click", "US", "banner", 3))
	b.Add(ev(m, "click", "US", "banner", 4))
	b.Add(ev(m, "click", "JP", "banner", 4))
	ab, ba := Table{}, Table{}
	ab.Merge(a)
	ab.Merge(b)
	ba.Merge(b)
	ba.Merge(a)
	if d := Diff(ab, ba); len(d) != 0 {
		t.Fatal(d)
	}
	if ab[Key{m.Unix(), "click", "US", "banner"}] != (Totals{2, 7}) {
		t.Fatal(ab)
	}
}

func TestDiff(t *testing.T) {
	k1, k2, k3 := Key{60, "click", "US", "banner"}, Key{60, "click", "JP", "banner"}, Key{120, "click", "US", "banner"}
	want := Table{k1: {1, 10}, k2: {2, 0}}
	got := Table{k1: {1, 11}, k3: {1, 1}, Key{180, "x", "y", "z"}: {}}
	d := Diff(want, got)
	if len(d) != 3 || d[0].Key != k2 || d[1].Key != k1 || d[2].Key != k3 || d[2].Want != (Totals{}) {
		t.Fatalf("%v", d)
	}
	if s := d[1].String(); s != "1970-01-01T00:01Z click/US/banner: want 1 events 0.000010, got 1 events 0.000011" {
		t.Fatal(s)
	}
}

func BenchmarkAdd(b *testing.B) {
	m := time.Date(2026, 11, 24, 21, 14, 0, 0, time.UTC)
	evs := []*event.Event{ev(m, "click", "US", "banner", 3), ev(m.Add(time.Minute), "impression", "KR", "rewarded_video", 0)}
	tb := Table{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Add(evs[i&1])
		i++
	}
}
