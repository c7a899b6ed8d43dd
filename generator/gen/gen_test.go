package gen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/event"
)

var t0 = time.Date(2026, 11, 24, 21, 15, 3, 123456789, time.UTC)

// logTimes advances like the generator's synthetic mode at rate events/s.
func logTime(i int, rate float64) time.Time {
	return t0.Add(time.Duration(float64(i) * 1e9 / rate))
}

func TestValidParseMalformedFail(t *testing.T) {
	g := New(Config{Seed: 7, LateFraction: 0.2, MaxLateness: 5 * time.Minute, MalformedFraction: 0.1})
	var p event.Parser
	want, got := agg.Table{}, agg.Table{}
	defects := map[string]int{}
	var valid, malformed, size int
	for i := range 50_000 {
		r := g.Next(logTime(i, 500))
		ev, err := p.Parse(r.Value)
		if !r.Valid {
			malformed++
			kind := r.Defect
			for _, d := range Defects {
				if strings.HasPrefix(r.Defect, d) {
					kind = d
				}
			}
			defects[kind]++
			if err == nil {
				t.Fatalf("malformed record (%s) parsed: %s", r.Defect, r.Value)
			}
			if _, ok := event.IsInvalid(err); !ok {
				t.Fatalf("malformed record (%s): error %v is not event.Invalid", r.Defect, err)
			}
			continue
		}
		valid++
		size += len(r.Value)
		if err != nil {
			t.Fatalf("valid record does not parse: %v: %s", err, r.Value)
		}
		if !ev.Time.Equal(r.Event.Time) {
			t.Fatalf("time: parsed %v, generated %v: %s", ev.Time, r.Event.Time, r.Value)
		}
		ev.Time = r.Event.Time
		if ev != r.Event {
			t.Fatalf("parsed %+v\nwant   %+v\nfrom %s", ev, r.Event, r.Value)
		}
		want.Add(&r.Event)
		got.Add(&ev)
	}
	if d := agg.Diff(want, got); len(d) > 0 {
		t.Fatalf("aggregates differ: %v", d[0])
	}
	if frac := float64(malformed) / 50_000; math.Abs(frac-0.1) > 0.01 {
		t.Errorf("malformed fraction %.3f, want ~0.1", frac)
	}
	for _, d := range Defects {
		if defects[d] == 0 {
			t.Errorf("defect %q never generated", d)
		}
	}
	if len(defects) != len(Defects) {
		t.Errorf("unexpected defect kinds: %v", defects)
	}
	if avg := size / valid; avg < 250 || avg > 300 {
		t.Errorf("average record size %d bytes, want 250-300", avg)
	}
	t.Logf("valid %d, malformed %d %v, average size %d bytes", valid, malformed, defects, size/valid)
}

func TestDistributions(t *testing.T) {
	const n = 200_000
	g := New(Config{Seed: 42})
	formatN := map[string]int{}
	clickN := map[string]int{}
	countryN := map[string]int{}
	deviceN := map[string]int{}
	clicksBy := map[string]int64{}
	revenueBy := map[string]int64{}
	ids := make(map[string]struct{}, n)
	for i := range n {
		r := g.Next(logTime(i, 1000))
		if !r.Valid || r.Delayed || r.Late {
			t.Fatalf("record %d: valid %v delayed %v late %v with no malformed or late fraction", i, r.Valid, r.Delayed, r.Late)
		}
		e := r.Event
		if _, dup := ids[e.EventID]; dup {
			t.Fatalf("duplicate event id %s", e.EventID)
		}
		ids[e.EventID] = struct{}{}
		formatN[e.AdFormat]++
		countryN[e.Country]++
		deviceN[e.Device]++
		switch e.EventType {
		case "click":
			clickN[e.AdFormat]++
			clicksBy[e.Country]++
			revenueBy[e.Country] += e.RevenueMicros
			if e.RevenueMicros <= 0 {
				t.Fatalf("click without revenue: %s", r.Value)
			}
		case "impression":
			if e.RevenueMicros != 0 {
				t.Fatalf("impression with revenue: %s", r.Value)
			}
		default:
			t.Fatalf("event type %q", e.EventType)
		}
		if e.BidMicros <= 0 {
			t.Fatalf("no bid price: %s", r.Value)
		}
	}
	for _, f := range Formats {
		share := float64(formatN[f.Name]) / n
		ctr := float64(clickN[f.Name]) / float64(formatN[f.Name])
		t.Logf("%-15s share %.3f CTR %.4f (want %.2f)", f.Name, share, ctr, f.CTR)
		if math.Abs(share-f.Weight) > 0.01 {
			t.Errorf("%s: share %.3f, want ~%.3f", f.Name, share, f.Weight)
		}
		if math.Abs(ctr-f.CTR) > 0.01 {
			t.Errorf("%s: CTR %.4f, want ~%.2f", f.Name, ctr, f.CTR)
		}
	}
	var usRPC float64
	for _, c := range Countries {
		share := float64(countryN[c.Code]) / n
		rpc := float64(revenueBy[c.Code]) / float64(clicksBy[c.Code]) / 1e6
		t.Logf("%s share %.4f (want %.2f), revenue per click %.4f", c.Code, share, c.Weight, rpc)
		if math.Abs(share-c.Weight) > 0.006 {
			t.Errorf("%s: share %.4f, want ~%.2f", c.Code, share, c.Weight)
		}
		if math.Abs(rpc-float64(c.RevenueMicros)/1e6) > 0.002 {
			t.Errorf("%s: revenue per click %.4f, want ~%.3f", c.Code, rpc, float64(c.RevenueMicros)/1e6)
		}
		if c.Code == "US" {
			usRPC = rpc
		} else if rpc >= usRPC {
			t.Errorf("%s: revenue per click %.4f >= US's %.4f", c.Code, rpc, usRPC)
		}
	}
	for _, d := range Devices {
		if share := float64(deviceN[d.Name]) / n; math.Abs(share-d.Weight) > 0.01 {
			t.Errorf("%s: share %.3f, want ~%.2f", d.Name, share, d.Weight)
		}
	}
	if len(countryN) != len(Countries) || len(formatN) != len(Formats) || len(deviceN) != len(Devices) {
		t.Errorf("unexpected values: %v %v %v", countryN, formatN, deviceN)
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 12345, LateFraction: 0.1, MaxLateness: time.Minute, MalformedFraction: 0.05}
	a, b := New(cfg), New(cfg)
	cfg.Seed++
	c := New(cfg)
	same := 0
	for i := range 10_000 {
		lt := logTime(i, 80)
		ra, rb, rc := a.Next(lt), b.Next(lt), c.Next(lt)
		if !bytes.Equal(ra.Value, rb.Value) || ra.Valid != rb.Valid || ra.Defect != rb.Defect {
			t.Fatalf("record %d differs with the same seed:\n%s\n%s", i, ra.Value, rb.Value)
		}
		if bytes.Equal(ra.Value, rc.Value) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d records identical with different seeds", same)
	}
}

func TestLateness(t *testing.T) {
	const n, frac, maxLate = 100_000, 0.3, 5 * time.Minute
	g := New(Config{Seed: 3, LateFraction: frac, MaxLateness: maxLate})
	var delayed, late, crossMinute int
	var maxSeen time.Duration
	for i := range n {
		r := g.Next(logTime(i, 200))
		lag := r.LogTime.Sub(r.Event.Time)
		if r.Delayed {
			delayed++
			if lag <= 0 || lag > maxLate {
				t.Fatalf("delayed event: event time %v, log time %v: lag %v not in (0, %v]", r.Event.Time, r.LogTime, lag, maxLate)
			}
			maxSeen = max(maxSeen, lag)
		} else if lag != 0 {
			t.Fatalf("on-time event: event time %v != log time %v", r.Event.Time, r.LogTime)
		}
		wantLate := event.WindowOf(r.Event.Time) < event.WindowOf(r.LogTime)
		if r.Late != wantLate {
			t.Fatalf("late flag %v, want %v (event %v, log %v)", r.Late, wantLate, r.Event.Time, r.LogTime)
		}
		if r.Late {
			late++
		}
		if r.Delayed && !r.Late {
			crossMinute++
		}
	}
	if got := float64(delayed) / n; math.Abs(got-frac) > 0.01 {
		t.Errorf("delayed fraction %.3f, want ~%.2f", got, frac)
	}
	if maxSeen < maxLate*9/10 {
		t.Errorf("largest lateness %v, want close to %v", maxSeen, maxLate)
	}
	// With lateness uniform in (0, 5m], ~90% of delayed events land in an
	// earlier minute than their log minute.
	if share := float64(late) / float64(delayed); share < 0.85 || share > 0.95 {
		t.Errorf("late (earlier window) share of delayed events %.3f, want ~0.9", share)
	}
	t.Logf("delayed %d, late %d, delayed within the same minute %d, max lateness %v", delayed, late, crossMinute, maxSeen)
}

func TestAppendMicros(t *testing.T) {
	for _, m := range []int64{0, 1, 10, 61_234, 100_000, 999_999, 1_000_000, 1_500_000, 123_456_789, -5, -61_234} {
		s := AppendMicros(nil, m)
		got, err := event.DecimalToMicros(s)
		if m < 0 {
			if err == nil {
				t.Errorf("%s: negative accepted", s)
			}
			continue
		}
		if err != nil || got != m {
			t.Errorf("AppendMicros(%d) = %s -> %d, %v", m, s, got, err)
		}
	}
	if s := string(AppendMicros(nil, 0)); s != "0.0" {
		t.Errorf("zero: %s", s)
	}
	if s := string(AppendMicros(nil, 61_200)); s != "0.0612" {
		t.Errorf("61200: %s", s)
	}
}

func TestRecordShape(t *testing.T) {
	r := New(Config{Seed: 1}).Next(t0)
	s := string(r.Value)
	for _, want := range []string{`"timestamp":"2026-11-24T21:15:03.123456Z"`, `"event_id":"`, `"bid_price":`, `"device":"`} {
		if !strings.Contains(s, want) {
			t.Errorf("record lacks %s: %s", want, s)
		}
	}
	id := r.Event.EventID
	if len(id) != 36 || id[8] != '-' || id[14] != '4' {
		t.Errorf("event id %q is not UUID-shaped", id)
	}
	t.Logf("%d bytes: %s", len(s), s)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{LateFraction: -0.1},
		{LateFraction: 1.5},
		{LateFraction: math.NaN()},
		{MalformedFraction: 2},
		{MaxLateness: -time.Second},
		{LateFraction: 0.1, MaxLateness: 0},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	for _, c := range []Config{{}, {LateFraction: 1, MaxLateness: time.Minute, MalformedFraction: 1}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g := New(Config{Seed: 1, LateFraction: 0.05, MaxLateness: 5 * time.Minute, MalformedFraction: 0.01})
	b.ReportAllocs()
	var bytes int64
	for i := 0; b.Loop(); i++ {
		r := g.Next(t0.Add(time.Duration(i) * 50 * time.Microsecond))
		bytes += int64(len(r.Value))
	}
	b.SetBytes(bytes / int64(b.N))
}

// An anomaly changes the clicks of its country (or format) in its span of
// event time only: a drop to 10%, and a CTR three times as high.
func TestAnomalyChangesClicksInItsSpan(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		a      Anomaly
		in     func(Record) bool
		lo, hi float64 // ratio of the CTR inside to the CTR outside
	}{
		{Anomaly{Country: "US", Clicks: 0.1}, func(r Record) bool { return r.Event.Country == "US" }, 0.05, 0.16},
		{Anomaly{AdFormat: "banner", Clicks: 3}, func(r Record) bool { return r.Event.AdFormat == "banner" }, 2.6, 3.4},
	} {
		a := c.a
		a.From, a.To = t0.Add(10*time.Minute), t0.Add(20*time.Minute)
		g := New(Config{Seed: 5, Anomaly: &a})
		var n, k [2]float64 // [outside, inside]: events and clicks of the anomaly's country or format
		for i := range 600_000 {
			r := g.Next(t0.Add(time.Duration(i) * 3 * time.Millisecond)) // 30 minutes
			if !r.Valid || !c.in(r) {
				continue
			}
			j := 0
			if !r.Event.Time.Before(a.From) && r.Event.Time.Before(a.To) {
				j = 1
			}
			n[j]++
			if r.Event.EventType == "click" {
				k[j]++
			}
		}
		if ratio := (k[1] / n[1]) / (k[0] / n[0]); ratio < c.lo || ratio > c.hi {
			t.Errorf("%+v: CTR inside / outside = %.3f, want in [%v, %v]", c.a, ratio, c.lo, c.hi)
		}
	}
	if err := (Config{Anomaly: &Anomaly{Country: "XX", Clicks: 0.1, From: t0, To: t0.Add(time.Minute)}}).Validate(); err == nil {
		t.Error("an unknown country passed")
	}
}
