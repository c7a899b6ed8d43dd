package manifest

import (
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
)

// Two runs to one topic add up, key by key; runs to two topics do not.
func TestMerge(t *testing.T) {
	w := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := &Manifest{Topic: "t", Produced: 10, Valid: 9, Malformed: 1, Rows: []agg.Row{
		{WindowStart: w, EventType: "click", Country: "US", AdFormat: "banner", Count: 2, RevenueMicros: 5}}}
	b := &Manifest{Topic: "t", Produced: 5, Valid: 5, Rows: []agg.Row{
		{WindowStart: w, EventType: "click", Country: "US", AdFormat: "banner", Count: 1, RevenueMicros: 7},
		{WindowStart: w, EventType: "impression", Country: "US", AdFormat: "banner", Count: 4}}}
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Produced != 15 || m.Valid != 14 || m.Malformed != 1 || len(m.Rows) != 2 {
		t.Fatalf("merged %+v", m)
	}
	tab := m.Table()
	if got := tab[agg.Key{Window: w.Unix(), EventType: "click", Country: "US", AdFormat: "banner"}]; got.Count != 3 || got.RevenueMicros != 12 {
		t.Errorf("click/US/banner %+v, want 3 events, 12 micro-units", got)
	}
	if _, err := Merge(a, &Manifest{Topic: "u"}); err == nil {
		t.Error("manifests of two topics merged")
	}
}
