package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

func slot(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

// done is a processed, balanced plan of partition p for slot i.
func done(p int32, i int, start, end int64) ledger.Batch {
	return ledger.Batch{Topic: "t", Partition: p, Slot: slot(i), Start: start, End: end, State: ledger.StateDone,
		Events: uint64(end - start), PlannedAt: slot(i + 1), FinishedAt: slot(i + 1).Add(time.Second), HighWater: end}
}

// world builds an Input from the plans each partition has, as the activity
// loads it: Batches are those of [From, To), Prev and Next their neighbours,
// Partials agree with the ledger, Latest is the last plan, and by default
// nothing is behind (AtCutoff is where the last plan ends, or the log start).
type world struct {
	from, to int
	now      time.Time
	grace    time.Duration
	plans    map[int32][]ledger.Batch // in slot order
	logStart map[int32]int64
	atCutoff map[int32]int64 // overrides
	high     map[int32]int64 // overrides of the high watermark (default: AtCutoff)
	topicID  string          // Kafka's topic ID now
	adopted  map[string]bool
}

func (w world) input() Input {
	in := Input{From: slot(w.from), To: slot(w.to), Now: w.now, Grace: w.grace,
		Prev: map[int32]ledger.Batch{}, Next: map[int32]ledger.Batch{}, Partials: map[int32]map[time.Time]uint64{},
		Latest: map[int32]ledger.Batch{}, LogStart: map[int32]int64{}, AtCutoff: map[int32]int64{}, Seen: map[int32]ledger.Batch{}}
	if in.Now.IsZero() {
		in.Now = slot(w.to).Add(w.grace).Add(30 * time.Second)
	}
	seenBefore := SeenBefore(in.Now, in.Grace)
	for p, bs := range w.plans {
		in.Partitions = append(in.Partitions, p)
		in.LogStart[p] = w.logStart[p]
		in.AtCutoff[p] = w.logStart[p]
		for _, b := range bs {
			switch {
			case b.Slot.Before(in.From):
				in.Prev[p] = b
			case b.Slot.Before(in.To):
				in.Batches = append(in.Batches, b)
				if in.Partials[p] == nil {
					in.Partials[p] = map[time.Time]uint64{}
				}
				if b.Done() {
					in.Partials[p][b.Slot] += b.Events
				}
			}
			if b.Slot.After(in.From) {
				if _, ok := in.Next[p]; !ok {
					in.Next[p] = b
				}
			}
			in.Latest[p], in.AtCutoff[p] = b, b.End
			if b.Slot.Before(seenBefore) {
				in.Seen[p] = b
			}
		}
	}
	for p, off := range w.atCutoff {
		in.AtCutoff[p] = off
	}
	in.TopicID, in.Adopted, in.HighWater = w.topicID, w.adopted, map[int32]int64{}
	for p, off := range in.AtCutoff {
		in.HighWater[p] = off
	}
	for p, off := range w.high {
		in.HighWater[p] = off
	}
	slices.Sort(in.Partitions)
	return in
}

// contiguous returns plans of slots [first, last) every step minutes, each
// of n offsets, the first starting at start.
func contiguous(p int32, first, last, step int, start, n int64) []ledger.Batch {
	var out []ledger.Batch
	for i := first; i < last; i += step {
		out = append(out, done(p, i, start, start+n))
		start += n
	}
	return out
}

// kinds summarises findings as "kind p<partition>@<slot index> repairable".
func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		r := ""
		if f.Repairable {
			r = " repairable"
		}
		out = append(out, fmt.Sprintf("%s p%d@%d%s", f.Kind, f.Partition, int(f.Slot.Sub(t0)/time.Minute), r))
	}
	slices.Sort(out)
	return out
}

func TestCheck(t *testing.T) {
	grace := 2 * time.Minute
	twoParts := func(mod func(p int32, bs []ledger.Batch) []ledger.Batch) map[int32][]ledger.Batch {
		m := map[int32][]ledger.Batch{}
		for p := int32(0); p < 2; p++ {
			bs := contiguous(p, -2, 5, 1, 100, 10) // slots -2..4: one before the range [0,5)
			if mod != nil {
				bs = mod(p, bs)
			}
			m[p] = bs
		}
		return m
	}
	at := func(bs []ledger.Batch, i int) *ledger.Batch { return &bs[i+2] } // the plan of slot i
	tests := []struct {
		name  string
		w     world
		want  []string
		check func(t *testing.T, rep Report)
	}{
		{
			name: "clean: contiguous, balanced, partials agree, nothing behind",
			w:    world{from: 0, to: 5, grace: grace, plans: twoParts(nil)},
			check: func(t *testing.T, rep Report) {
				if rep.SlotsChecked != 5 || rep.BatchesChecked != 10 {
					t.Errorf("checked %d slots, %d batches; want 5, 10", rep.SlotsChecked, rep.BatchesChecked)
				}
			},
		},
		{
			name: "a slot that never ran, its offsets taken by the next slot, is no finding",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				b := at(bs, 3)
				b.Start = at(bs, 2).Start // slot 3 took slot 2's offsets
				b.Events = uint64(b.Offsets())
				return slices.Delete(bs, 4, 5) // slot 2
			})},
		},
		{
			name: "missing: offsets before the first plan that no plan covers",
			w: world{from: 0, to: 5, grace: grace, logStart: map[int32]int64{0: 100, 1: 100},
				plans: map[int32][]ledger.Batch{
					0: contiguous(0, 2, 5, 1, 100, 10), // starts at the log start: minutes 0, 1 hold nothing
					1: contiguous(1, 2, 5, 1, 130, 10), // starts above it: [100,130) in no plan
				}},
			want: []string{"missing p1@0", "missing p1@1"},
		},
		{
			name: "missing: the partition's first plan lies past the range",
			w: world{from: 0, to: 5, grace: grace, logStart: map[int32]int64{0: 100, 1: 100},
				plans: map[int32][]ledger.Batch{
					0: contiguous(0, 7, 8, 1, 100, 10),
					1: contiguous(1, 7, 8, 1, 130, 10),
				}, now: slot(9).Add(grace)},
			want: []string{"missing p1@0", "missing p1@1", "missing p1@2", "missing p1@3", "missing p1@4"},
		},
		{
			name: "not-done: planned long ago, never finished",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				if p == 1 {
					b := at(bs, 1)
					b.State, b.Events, b.FinishedAt = ledger.StatePlanned, 0, time.Time{}
				}
				return bs
			})},
			want: []string{"not-done p1@1 repairable"},
		},
		{
			name: "a batch planned within the grace is not yet not-done",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				b := at(bs, 4)
				b.State, b.Events = ledger.StatePlanned, 0
				b.PlannedAt = slot(5).Add(grace) // now is 30 s later
				return bs
			})},
		},
		{
			name: "unaccounted: events + dead letters + skipped != offsets",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				if p == 0 {
					at(bs, 2).DeadLetters = 1
				}
				return bs
			})},
			// the partials hold the events the ledger says, so only the balance is wrong
			want: []string{"unaccounted p0@2 repairable"},
		},
		{
			name: "gap: a plan starts past where the previous one ends",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				if p == 1 {
					b := at(bs, 0)
					b.Start += 3
					b.Events -= 3
				}
				return bs
			})},
			want: []string{"gap p1@0"},
		},
		{
			name: "gap, not missing: a slot that never ran between plans that are not contiguous",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				if p == 0 {
					bs = slices.Delete(bs, 4, 5) // slot 2: its offsets are in no plan
				}
				return bs
			})},
			want: []string{"gap p0@3"},
		},
		{
			name: "overlap: a plan starts before the previous one ends",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				if p == 0 {
					b := at(bs, 3)
					b.Start -= 2
					b.Events += 2
				}
				return bs
			})},
			want: []string{"overlap p0@3"},
		},
		{
			name: "behind: records stamped before the cutoff past the last plan",
			w:    world{from: 0, to: 5, grace: grace, plans: twoParts(nil), atCutoff: map[int32]int64{1: 100 + 7*10 + 25}},
			want: []string{"behind p1@4 repairable"}, // the slot just before the cutoff, slot(5)
		},
		{
			name: "behind, not missing: the schedule stopped after slot 1",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				return bs[:4] // plans of slots -2..1
			}), atCutoff: map[int32]int64{0: 100 + 7*10, 1: 100 + 7*10}},
			want: []string{"behind p0@4 repairable", "behind p1@4 repairable"},
		},
		{
			name: "trailing: plans stuck below what Kafka held minutes ago (a record stamped ahead)",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				if p == 1 {
					for i := 1; i < 5; i++ { // empty plans, ending at a record stamped in 2099
						b := at(bs, i)
						b.Start, b.End, b.Events, b.HighWater = 130, 130, 0, int64(150+10*i)
					}
				}
				return bs
			})},
			// the stamped offsets of the cutoff are where the plans end: only
			// the high watermark the plan of slot 2 saw shows the stall
			want: []string{"trailing p1@4 repairable"},
		},
		{
			name: "not trailing: what a plan saw in the last minutes is the next slot's",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				at(bs, 3).HighWater += 7 // records the plan of slot 4 took
				at(bs, 4).HighWater += 9 // records the next slot will take
				return bs
			})},
		},
		{
			name: "recreated: Kafka's topic has another topic ID than the last plans",
			w: world{from: 0, to: 5, grace: grace, topicID: "new", plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				for i := range bs {
					bs[i].TopicID = "old"
				}
				return bs
			}), atCutoff: map[int32]int64{0: 3, 1: 500}},
			// offsets of the new log are not compared with the old plans
			want: []string{"recreated p0@4", "recreated p1@4"},
		},
		{
			name: "an adopted incarnation: its first plans start again, no gap, overlap or finding",
			w: world{from: 0, to: 5, grace: grace, topicID: "new", adopted: map[string]bool{"new": true},
				plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
					for i := range bs {
						bs[i].TopicID = "old"
					}
					for i := 3; i < 5; i++ { // slots 3, 4 on the new topic, from offset 0
						b := at(bs, i)
						b.TopicID, b.Start, b.End = "new", int64(10*(i-3)), int64(10*(i-2))
						b.HighWater = b.End
					}
					return bs
				})},
		},
		{
			name: "truncated: Kafka's high watermark below the last plan's end",
			w:    world{from: 0, to: 5, grace: grace, plans: twoParts(nil), high: map[int32]int64{1: 100 + 7*10 - 4}},
			want: []string{"truncated p1@4"},
		},
		{
			name: "sub-batches: a plan split in two, contiguous, partials per slot agree with their sum",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				b := *at(bs, 2)
				first, second := b, b
				first.End, first.Events = b.Start+4, 4
				second.Sub, second.Start, second.Events = 1, b.Start+4, uint64(b.End-b.Start-4)
				out := append(slices.Clone(bs[:4]), first, second)
				return append(out, bs[5:]...)
			})},
		},
		{
			name: "sub-batches: one of two not done yet is no partials finding",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				b := *at(bs, 4)
				first, second := b, b
				first.End, first.Events = b.Start+4, 4
				second.Sub, second.Start, second.Events = 1, b.Start+4, 0
				second.State, second.PlannedAt = ledger.StatePlanned, slot(5).Add(grace)
				return append(slices.Clone(bs[:6]), first, second)
			})},
		},
		{
			name: "an idle topic after its last plan: nothing",
			w: world{from: 0, to: 5, grace: grace, plans: twoParts(func(p int32, bs []ledger.Batch) []ledger.Batch {
				return bs[:4]
			})},
		},
		{
			name: "behind: records in a partition that has no plan at all",
			w: world{from: 0, to: 5, grace: grace, logStart: map[int32]int64{1: 40},
				plans:    map[int32][]ledger.Batch{0: contiguous(0, -2, 5, 1, 100, 10), 1: nil},
				atCutoff: map[int32]int64{1: 55}},
			want: []string{"behind p1@4 repairable"},
		},
		{
			name: "a partition with no plan and no record: nothing",
			w: world{from: 0, to: 5, grace: grace, logStart: map[int32]int64{1: 40},
				plans: map[int32][]ledger.Batch{0: contiguous(0, -2, 5, 1, 100, 10), 1: nil}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.w.input())
			if got := kinds(rep.Findings); !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n got  %q\n want %q\n%s", got, tc.want, details(rep.Findings))
			}
			if tc.check != nil {
				tc.check(t, rep)
			}
		})
	}
}

func TestCheckPartials(t *testing.T) {
	w := world{from: 0, to: 3, grace: time.Minute, plans: map[int32][]ledger.Batch{0: contiguous(0, 0, 3, 1, 0, 10)}}
	in := w.input()
	in.Partials[0][slot(1)] = 7     // rows deleted by hand
	delete(in.Partials[0], slot(2)) // all of them
	rep := Check(in)
	want := []string{"partials p0@1 repairable", "partials p0@2 repairable"}
	if got := kinds(rep.Findings); !slices.Equal(got, want) {
		t.Fatalf("findings:\n got  %q\n want %q\n%s", got, want, details(rep.Findings))
	}
	if d := rep.Findings[0].Detail; !strings.Contains(d, "7 events") {
		t.Errorf("detail %q does not say what the partials hold", d)
	}
	// Partial sums keyed by slot times in another location still match.
	in.Partials[0] = map[time.Time]uint64{}
	for i := 0; i < 3; i++ {
		in.Partials[0][slot(i).In(time.FixedZone("x", 3600))] = 10
	}
	if rep := Check(in); len(rep.Findings) != 0 {
		t.Fatalf("findings %q", kinds(rep.Findings))
	}
}

// Issue 11, item 10: on a new topic the 3-hour look-back of the schedule
// must not call the minutes before the topic's first plan, nor the minutes
// between contiguous plans, missing (their repair runs empty slots).
func TestCheckNewTopicHasNoMissingSlots(t *testing.T) {
	plans := map[int32][]ledger.Batch{}
	for p := int32(0); p < 3; p++ {
		// The first plan starts at the log start, 30 minutes into the
		// range; from there a plan every other minute, each taking the
		// offsets of the minute before it too.
		plans[p] = contiguous(p, 30, 180, 2, 0, 50)
	}
	w := world{from: 0, to: 180, grace: 2 * time.Minute, plans: plans}
	in := w.input()
	if len(in.Prev) != 0 || len(in.Batches) != 3*75 {
		t.Fatalf("setup: %d prev, %d batches", len(in.Prev), len(in.Batches))
	}
	rep := Check(in)
	n := 0
	for _, f := range rep.Findings {
		if f.Kind == Missing {
			n++
		}
	}
	if n != 0 || len(rep.Findings) != 0 {
		t.Fatalf("a new topic: want no findings, got %d (%d missing): %q", len(rep.Findings), n, first(kinds(rep.Findings), 5))
	}
	if rep.SlotsChecked != 180 || rep.BatchesChecked != 3*75 {
		t.Errorf("checked %d slots, %d batches", rep.SlotsChecked, rep.BatchesChecked)
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func details(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s p%d %s: %s\n", f.Slot.Format("15:04"), f.Partition, f.Kind, f.Detail)
	}
	return b.String()
}

func TestClip(t *testing.T) {
	now := t0.Add(10*time.Minute + 30*time.Second)
	from, to := Clip(t0.Add(20*time.Second), t0.Add(time.Hour), now, 2*time.Minute)
	if !from.Equal(t0) || !to.Equal(t0.Add(8*time.Minute)) {
		t.Errorf("clip: [%s, %s), want [%s, %s)", from, to, t0, t0.Add(8*time.Minute))
	}
	if c := Cutoff(now, 2*time.Minute); !c.Equal(t0.Add(8 * time.Minute)) {
		t.Errorf("cutoff %s", c)
	}
	if _, to := Clip(t0, t0.Add(5*time.Minute), now, 2*time.Minute); !to.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("a range that has ended is not clipped: to %s", to)
	}
}

func TestRecordDetails(t *testing.T) {
	r := Record{Found: []Finding{{Slot: t0, Partition: 1, Kind: Gap, Detail: "d"}}, RepairedSlots: []time.Time{t0}}
	d, err := r.Details()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"found":[{"Slot":"2024-05-01T10:00:00Z","Partition":1,"Kind":"gap","Detail":"d","Repairable":false}],"remaining":null,"repaired_slots":["2024-05-01T10:00:00Z"]}`
	if d != want {
		t.Errorf("details\n got  %s\n want %s", d, want)
	}
}

// An hour whose window totals differ from its partials is a finding that a
// refresh of the hour repairs.
func TestCheckReportsStaleTotals(t *testing.T) {
	h := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	rep := Check(Input{From: h, To: h.Add(time.Hour), Now: h.Add(2 * time.Hour), StaleTotals: []time.Time{h}})
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != Totals || !rep.Findings[0].Slot.Equal(h) || !rep.Findings[0].Repairable {
		t.Fatalf("findings %v, want one totals finding for %s", rep.Findings, h)
	}
}
