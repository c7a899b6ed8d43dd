package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/generator/gen"
	"github.com/rtbpipe/rtbpipe/internal/anomaly"
)

// Anomaly detection end to end: 70 minutes of the generator's events (in
// windows of the past, all logged in one slot) with US clicks dropped to a
// tenth in two of them. The slot's run flags US's CTR in those two minutes
// and nothing anywhere else; late clicks that bring one minute back make
// the next run clear its flag, which is kept as disappeared.
func TestAnomalyDetectedAndClearedByLateEvents(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(5)
	first := base.Add(-70 * time.Minute)
	drop := first.Add(60 * time.Minute)
	g := gen.New(gen.Config{Seed: 9, Anomaly: &gen.Anomaly{Country: "US", Clicks: 0.1, From: drop, To: drop.Add(2 * time.Minute)}})
	const perMinute = 4000 // US: ~720 events a minute, enough clicks for a drop to stand out
	var recs []record
	for m := range 70 {
		for i := range perMinute {
			evTime := first.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Minute/perMinute)
			r := g.Next(evTime)
			recs = append(recs, record{partition: int32(i % 2), logTime: base.Add(time.Duration(len(recs)/5) * time.Microsecond), value: r.Value})
		}
	}
	for p := range int32(2) {
		recs = append(recs, record{partition: p, logTime: base.Add(time.Minute), value: []byte(`{}`)})
	}
	e.produce(t, topic, recs)
	res := e.runSlot(t, topic, base)
	if res.Anomalies.Scored == 0 {
		t.Fatalf("the slot scored nothing: %+v", res.Anomalies)
	}
	flags, err := e.store.Anomalies(ctx, topic, first, base.Add(time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[time.Time]bool{}
	for _, f := range flags {
		if f.Minute.Before(drop) || !f.Minute.Before(drop.Add(2*time.Minute)) {
			t.Errorf("false flag outside the anomaly: %v", f.Flag)
		}
		if f.Scope == "country=US" && f.Metric == anomaly.CTR {
			got[f.Minute] = true
			if f.Value > f.Baseline/4 || f.Score > -6 || f.Threshold != 6 || f.Samples < 30 {
				t.Errorf("the flag does not explain itself: %v", f.Flag)
			}
		}
	}
	if !got[drop] || !got[drop.Add(time.Minute)] {
		t.Fatalf("US CTR not flagged in both minutes of the drop; flags: %v", flags)
	}

	// Late clicks of the first minute's US events: its CTR is normal again.
	var late []record
	for i := range 90 {
		late = append(late, record{partition: int32(i % 2), logTime: base.Add(time.Minute + time.Duration(i)*time.Millisecond),
			value: fmt.Appendf(nil, `{"event_id":"late-%d","timestamp":"%s","user_id":"u1","campaign_id":"c1","ad_format":"%s",`+
				`"country":"US","device":"ios","event_type":"click","revenue":0.05}`, i, drop.Add(time.Duration(i)*500*time.Millisecond).Format(time.RFC3339Nano),
				gen.Formats[i%3].Name)})
	}
	for p := range int32(2) {
		late = append(late, record{partition: p, logTime: base.Add(2 * time.Minute), value: []byte(`{}`)})
	}
	e.produce(t, topic, late)
	e.runSlot(t, topic, base.Add(time.Minute))
	all, err := e.store.Anomalies(ctx, topic, drop, drop.Add(2*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	state := map[time.Time]anomaly.Record{}
	for _, r := range all {
		if r.Scope == "country=US" && r.Metric == anomaly.CTR {
			state[r.Minute] = r
		}
	}
	if r := state[drop]; r.Flagged || r.ChangedAt.Before(r.FirstFlagged) || r.FirstFlagged.IsZero() {
		t.Errorf("the flag of %s, whose CTR late clicks restored, is %+v; want it kept as disappeared", drop, r)
	}
	if r := state[drop.Add(time.Minute)]; !r.Flagged {
		t.Errorf("the flag of the second minute disappeared: %+v", r)
	}
}
