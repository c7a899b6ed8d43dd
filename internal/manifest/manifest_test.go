package manifest

import (
	"os"
	"path/filepath"
	"strings"
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

// The same run given twice would double every expected count: refused,
// naming both. (Runs of one topic differ in their start.)
func TestMergeRefusesARunTwice(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := &Manifest{Topic: "t", Started: at, Finished: at.Add(time.Minute), Produced: 10, Valid: 10}
	b := &Manifest{Topic: "t", Started: at.Add(time.Hour), Finished: at.Add(2 * time.Hour), Produced: 3, Valid: 3}
	if _, err := Merge(a, b); err != nil {
		t.Fatalf("two runs: %v", err)
	}
	a2 := *a
	if _, err := Merge(a, b, &a2); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a run given twice: %v, want an error saying so", err)
	}
}

// A file that is not a generator's manifest, or one with negative counts,
// is refused with a message that says what a manifest is.
func TestReadRefusesWhatIsNoManifest(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ body, want string }{
		"array":    {`[1,2]`, "not a generator manifest"},
		"negative": {`{"topic":"t","produced":-1}`, "negative"},
		"row":      {`{"topic":"t","rows":[{"window_start":"2026-11-24T10:00:00Z","event_type":"click","country":"US","ad_format":"banner","count":-2}]}`, "negative"},
		"revenue":  {`{"topic":"t","rows":[{"window_start":"2026-11-24T10:00:00Z","event_type":"click","country":"US","ad_format":"banner","count":2,"revenue_micros":-5}]}`, "negative"},
	} {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
}
