package activities

import (
	"context"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/rtbpipe/rtbpipe/internal/anomaly"
)

// AnalysisStore is what anomaly scoring reads and writes; *chstore.Store
// implements it.
type AnalysisStore interface {
	// AnomalyCells returns the counts per minute, ad format and country of
	// windows [from, to).
	AnomalyCells(ctx context.Context, topic string, from, to time.Time) ([]anomaly.Cell, error)
	// Anomalies returns the records of minutes [from, to) (all: cleared too).
	Anomalies(ctx context.Context, topic string, from, to time.Time, all bool) ([]anomaly.Record, error)
	// WriteAnomalies stores records, replacing earlier ones of their keys.
	WriteAnomalies(ctx context.Context, rs []anomaly.Record) error
}

// AnomalyInput names the windows a run touched: they are scored again,
// with the minutes whose baseline holds them.
type AnomalyInput struct {
	Topic   string
	Windows []time.Time
	Params  anomaly.Params // zero: the defaults
}

// AnomalyResult counts what a scoring stored.
type AnomalyResult struct {
	Scored   int // minutes scored
	Flagged  int // flags standing in them
	Appeared int // flags new in this scoring
	Cleared  int // flags that no longer stand
}

// ScoreAnomalies scores again the windows a run touched, and the minutes of
// the trailing period after each (their baseline holds it), from the
// window totals, and stores the flags that appeared, stand or disappeared.
func (a *Activities) ScoreAnomalies(ctx context.Context, in AnomalyInput) (AnomalyResult, error) {
	var res AnomalyResult
	if in.Topic == "" {
		return res, temporal.NewNonRetryableApplicationError("score anomalies: no topic", ErrTypeBadInput, nil)
	}
	p := in.Params.Defaults()
	now := a.now().UTC().Truncate(time.Second)
	for _, r := range affected(in.Windows, p.Trailing) {
		cells, err := a.Analysis.AnomalyCells(ctx, in.Topic, r[0].Add(-p.Trailing), r[1].Add(time.Minute))
		if err != nil {
			return res, err
		}
		var minutes []time.Time
		for t := r[0]; !t.After(r[1]); t = t.Add(time.Minute) {
			minutes = append(minutes, t)
		}
		var flags []anomaly.Flag
		for scope, series := range anomaly.Scopes(cells) {
			flags = append(flags, anomaly.Score(p, scope, series, minutes)...)
		}
		stored, err := a.Analysis.Anomalies(ctx, in.Topic, r[0], r[1].Add(time.Minute), true)
		if err != nil {
			return res, err
		}
		changes := anomaly.Changes(in.Topic, stored, flags, now)
		if err := a.Analysis.WriteAnomalies(ctx, changes); err != nil {
			return res, err
		}
		res.Scored += len(minutes)
		for _, c := range changes {
			switch {
			case !c.Flagged:
				res.Cleared++
			case c.FirstFlagged.Equal(now):
				res.Appeared++
				res.Flagged++
			default:
				res.Flagged++
			}
		}
		activity.RecordHeartbeat(ctx, r[1])
	}
	return res, nil
}

// affected returns the ranges of minutes [first, last] to score: each
// window and the trailing period after it, merged.
func affected(windows []time.Time, trailing time.Duration) [][2]time.Time {
	ws := slices.Clone(windows)
	slices.SortFunc(ws, func(a, b time.Time) int { return a.Compare(b) })
	var out [][2]time.Time
	for _, w := range ws {
		w = w.UTC().Truncate(time.Minute)
		end := w.Add(trailing)
		if n := len(out); n > 0 && !w.After(out[n-1][1].Add(time.Minute)) {
			if end.After(out[n-1][1]) {
				out[n-1][1] = end
			}
			continue
		}
		out = append(out, [2]time.Time{w, end})
	}
	return out
}
