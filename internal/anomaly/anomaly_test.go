package anomaly

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// normal is n minutes of a steady scope: about perMin events, 10% clicks
// per impression, with Poisson-like noise.
func normal(seed uint64, n int, perMin float64) (Series, []time.Time) {
	r := rand.New(rand.NewPCG(seed, 1))
	s := Series{}
	var ms []time.Time
	noisy := func(mean float64) uint64 { return uint64(math.Max(0, mean+r.NormFloat64()*math.Sqrt(mean))) }
	for i := range n {
		t := t0.Add(time.Duration(i) * time.Minute)
		imp := noisy(perMin * 0.85)
		clk := noisy(float64(imp) * 0.10)
		s[t] = Minute{Events: imp + clk, Impressions: imp, Clicks: clk, Revenue: float64(imp)*0.002 + float64(clk)*0.4 + r.Float64()}
		ms = append(ms, t)
	}
	return s, ms
}

// Steady data of several sizes raises no flag.
func TestNoFlagOnNormalData(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, per := range []float64{300, 3000, 30000} {
			s, ms := normal(seed, 240, per)
			if f := Score(Params{}, "overall", s, ms); len(f) > 0 {
				t.Fatalf("seed %d, %v events/min: %d false flags, first %v", seed, per, len(f), f[0])
			}
		}
	}
}

// A country's clicks dropping, a format's CTR spiking, a silent minute: each
// is flagged at its minute, with its value, baseline and score.
func TestFlagsWhatChanged(t *testing.T) {
	s, ms := normal(7, 180, 3000)
	drop, spike, silent := t0.Add(100*time.Minute), t0.Add(130*time.Minute), t0.Add(160*time.Minute)
	m := s[drop]
	m.Events -= m.Clicks * 9 / 10
	m.Clicks /= 10
	s[drop] = m
	m = s[spike]
	m.Clicks *= 3
	m.Events = m.Impressions + m.Clicks
	s[spike] = m
	s[silent] = Minute{Events: 3}
	flags := Score(Params{}, "country=US", s, ms)
	got := map[time.Time][]string{}
	for _, f := range flags {
		got[f.Minute] = append(got[f.Minute], f.Metric)
		if f.Scope != "country=US" || f.Threshold != 6 || math.Abs(f.Score) < 6 || f.Samples < 30 {
			t.Errorf("flag %v", f)
		}
	}
	if len(got) != 3 || !contains(got[drop], CTR) || !contains(got[spike], CTR) || !contains(got[silent], Volume) {
		t.Fatalf("flags %v, want CTR at %s and %s, volume at %s", flags, drop, spike, silent)
	}
}

// Below the minimum volume nothing is scored; without enough baseline
// minutes nothing is either.
func TestSmallAndYoungScopesAreNotScored(t *testing.T) {
	s, ms := normal(3, 120, 30) // ~25 impressions a minute
	m := s[t0.Add(100*time.Minute)]
	m.Clicks = m.Impressions
	s[t0.Add(100*time.Minute)] = m
	if f := Score(Params{}, "country=IS", s, ms); len(f) > 0 {
		t.Fatalf("a small scope flagged %v", f)
	}
	s, ms = normal(3, 20, 3000) // 20 minutes of history
	s[ms[19]] = Minute{Events: 1}
	if f := Score(Params{}, "overall", s, ms); len(f) > 0 {
		t.Fatalf("a young scope flagged %v", f)
	}
}

func contains(v []string, s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}
