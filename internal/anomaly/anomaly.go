// Package anomaly scores the exact windows for anomalies: per minute, per
// scope (overall, each ad format, each country, each format and country)
// and metric (volume, CTR, eCPM), a robust z-score of the minute's value
// against the median and MAD of the same scope's trailing hour. It does no
// I/O: the activity loads the minutes (the window totals) and stores what
// Score returns, so that a window changed by late events is scored again.
package anomaly

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Metrics scored.
const (
	Volume = "volume" // events of every type in the minute
	CTR    = "ctr"    // clicks / impressions
	ECPM   = "ecpm"   // 1000 × revenue / impressions
)

// Params tune the scoring.
type Params struct {
	Trailing      time.Duration // the baseline's window before the minute (default 1 h)
	MinBaseline   int           // minutes with data the baseline needs (default 30)
	Threshold     float64       // |robust z| at or past which a minute is flagged (default 6)
	MinEvents     uint64        // a scope's minute with fewer events is not scored for volume (default 100)
	MinImpression uint64        // ... with fewer impressions is not scored for CTR and eCPM (default 200)
	// RelFloor keeps the spread (1.4826 × MAD) at least this fraction of
	// the median, so that a very steady series does not flag noise
	// (default 0.05).
	RelFloor float64
}

// Defaults fills the zero fields of p.
func (p Params) Defaults() Params {
	if p.Trailing <= 0 {
		p.Trailing = time.Hour
	}
	if p.MinBaseline <= 0 {
		p.MinBaseline = 30
	}
	if p.Threshold <= 0 {
		p.Threshold = 6
	}
	if p.MinEvents == 0 {
		p.MinEvents = 100
	}
	if p.MinImpression == 0 {
		p.MinImpression = 200
	}
	if p.RelFloor <= 0 {
		p.RelFloor = 0.05
	}
	return p
}

// Minute is one scope's counts in one minute.
type Minute struct {
	Events      uint64
	Impressions uint64
	Clicks      uint64
	Revenue     float64
}

// Add adds o to m.
func (m *Minute) Add(o Minute) {
	m.Events += o.Events
	m.Impressions += o.Impressions
	m.Clicks += o.Clicks
	m.Revenue += o.Revenue
}

// Series is one scope's minutes, by minute start.
type Series map[time.Time]Minute

// Flag is a minute whose metric is past the threshold: it explains itself
// with its value, the baseline's median and spread, the score and the
// threshold.
type Flag struct {
	Minute    time.Time `json:"minute"`
	Scope     string    `json:"scope"` // "overall", "ad_format=banner", "country=US", "ad_format=banner,country=US"
	Metric    string    `json:"metric"`
	Value     float64   `json:"value"`
	Baseline  float64   `json:"baseline"` // median of the trailing minutes
	Spread    float64   `json:"spread"`   // 1.4826 × MAD, floored (Params.RelFloor)
	Score     float64   `json:"score"`    // (Value - Baseline) / Spread
	Threshold float64   `json:"threshold"`
	Samples   int       `json:"baseline_minutes"` // trailing minutes the baseline had
}

func (f Flag) String() string {
	return fmt.Sprintf("%s %s %s: %.4g vs baseline %.4g ± %.3g (score %.1f, threshold %.0f, %d minutes)",
		f.Minute.UTC().Format("2006-01-02T15:04Z"), f.Scope, f.Metric, f.Value, f.Baseline, f.Spread, f.Score, f.Threshold, f.Samples)
}

// Score scores the minutes of series (a scope) and returns the flags, in
// minute and metric order. series must hold the Trailing period before
// each minute scored.
func Score(p Params, scope string, series Series, minutes []time.Time) []Flag {
	p = p.Defaults()
	var flags []Flag
	for _, at := range minutes {
		m, ok := series[at]
		if !ok {
			continue
		}
		var vol, ctr, ecpm []float64
		for t := at.Add(-p.Trailing); t.Before(at); t = t.Add(time.Minute) {
			b, ok := series[t]
			if !ok {
				continue
			}
			if b.Events >= p.MinEvents {
				vol = append(vol, float64(b.Events))
			}
			if b.Impressions >= p.MinImpression {
				ctr = append(ctr, float64(b.Clicks)/float64(b.Impressions))
				ecpm = append(ecpm, 1000*b.Revenue/float64(b.Impressions))
			}
		}
		check := func(metric string, value float64, base []float64) {
			if len(base) < p.MinBaseline {
				return
			}
			med, mad := medianMAD(base)
			spread := math.Max(1.4826*mad, p.RelFloor*math.Abs(med))
			if spread == 0 {
				return
			}
			if z := (value - med) / spread; math.Abs(z) >= p.Threshold {
				flags = append(flags, Flag{Minute: at, Scope: scope, Metric: metric, Value: value, Baseline: med, Spread: spread,
					Score: z, Threshold: p.Threshold, Samples: len(base)})
			}
		}
		// A minute's volume is scored when it or its baseline is large
		// enough: a drop to nothing is the anomaly to see.
		check(Volume, float64(m.Events), vol)
		if m.Impressions >= p.MinImpression {
			check(CTR, float64(m.Clicks)/float64(m.Impressions), ctr)
			check(ECPM, 1000*m.Revenue/float64(m.Impressions), ecpm)
		}
	}
	return flags
}

// medianMAD returns the median of v and the median absolute deviation.
func medianMAD(v []float64) (float64, float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	med := median(s)
	dev := make([]float64, len(s))
	for i, x := range s {
		dev[i] = math.Abs(x - med)
	}
	slices.Sort(dev)
	return med, median(dev)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Record is a flag as stored: its latest score, and whether it still
// stands (a window changed by late events may no longer be anomalous).
type Record struct {
	Flag
	Topic        string    `json:"-"`
	Flagged      bool      `json:"flagged"`       // false: the flag disappeared when the minute was scored again
	FirstFlagged time.Time `json:"first_flagged"` // when the flag appeared
	ChangedAt    time.Time `json:"changed_at"`    // when this state was recorded
}

// Changes compares the flags of a new scoring of some minutes with the
// records stored for those minutes, and returns what to store: new flags
// (appeared at now), standing flags with their new scores (first flagged
// kept), and standing records that are no longer flagged (cleared at now).
func Changes(topic string, stored []Record, flags []Flag, now time.Time) []Record {
	type key struct {
		minute        int64
		scope, metric string
	}
	old := map[key]Record{}
	for _, r := range stored {
		old[key{r.Minute.Unix(), r.Scope, r.Metric}] = r
	}
	var out []Record
	seen := map[key]bool{}
	for _, f := range flags {
		k := key{f.Minute.Unix(), f.Scope, f.Metric}
		seen[k] = true
		r := Record{Flag: f, Topic: topic, Flagged: true, FirstFlagged: now, ChangedAt: now}
		if o, ok := old[k]; ok && o.Flagged {
			r.FirstFlagged, r.ChangedAt = o.FirstFlagged, o.ChangedAt
		}
		out = append(out, r)
	}
	for k, o := range old {
		if !seen[k] && o.Flagged {
			o.Flagged, o.ChangedAt = false, now
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(a.Minute.Compare(b.Minute), cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Metric, b.Metric))
	})
	return out
}

// Overall is the scope of every format and country.
const Overall = "overall"

// Cell is one format and country's counts in one minute.
type Cell struct {
	Minute   time.Time
	AdFormat string
	Country  string
	Counts   Minute
}

// Scopes sums cells into the series of every scope: overall, each format,
// each country, and each format and country.
func Scopes(cells []Cell) map[string]Series {
	out := map[string]Series{}
	add := func(scope string, at time.Time, m Minute) {
		s := out[scope]
		if s == nil {
			s = Series{}
			out[scope] = s
		}
		x := s[at]
		x.Add(m)
		s[at] = x
	}
	for _, c := range cells {
		add(Overall, c.Minute, c.Counts)
		add("ad_format="+c.AdFormat, c.Minute, c.Counts)
		add("country="+c.Country, c.Minute, c.Counts)
		add("ad_format="+c.AdFormat+",country="+c.Country, c.Minute, c.Counts)
	}
	return out
}
