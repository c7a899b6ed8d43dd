// Package manifest records exactly what the generator produced, so that the
// pipeline's output can be checked against it (starter verify).
package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/agg"
)

// Manifest is what a generator run produced to one topic: only records that
// Kafka acknowledged are counted.
type Manifest struct {
	Topic      string    `json:"topic"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Produced   int64     `json:"produced"`          // records acknowledged, valid or not
	Valid      int64     `json:"valid"`             // valid events among them
	Malformed  int64     `json:"malformed"`         // records that must become dead letters
	Late       int64     `json:"late"`              // events whose event time precedes their log minute
	Failed     int64     `json:"failed"`            // records Kafka did not acknowledge (not counted above)
	Aborted    int64     `json:"aborted,omitempty"` // records of aborted transactions: in the log, never counted
	Partitions int32     `json:"partitions"`
	Rows       []agg.Row `json:"rows"` // per window and key
}

// Table returns the manifest's rows as an aggregate table.
func (m *Manifest) Table() agg.Table { return agg.FromRows(m.Rows) }

// Write stores m as JSON at path.
func Write(path string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Read loads a manifest from path.
func Read(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: not a generator manifest (a JSON object with topic, counts and rows, as generator --manifest writes): %w", path, err)
	}
	if m.Topic == "" {
		return nil, fmt.Errorf("manifest %s: no topic", path)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return &m, nil
}

// check refuses negative counts, which no run produces.
func (m *Manifest) check() error {
	for name, n := range map[string]int64{"produced": m.Produced, "valid": m.Valid, "malformed": m.Malformed, "late": m.Late,
		"failed": m.Failed, "aborted": m.Aborted} {
		if n < 0 {
			return fmt.Errorf("%s is negative (%d)", name, n)
		}
	}
	for _, r := range m.Rows {
		if r.Count < 0 || r.RevenueMicros < 0 {
			return fmt.Errorf("the row of %s %s/%s/%s has a negative count or revenue (%d, %d)", r.WindowStart.UTC().Format(time.RFC3339),
				r.EventType, r.Country, r.AdFormat, r.Count, r.RevenueMicros)
		}
	}
	return nil
}

// Merge adds up the manifests of several generator runs to one topic (a
// history produced first, then a live run).
func Merge(ms ...*Manifest) (*Manifest, error) {
	if len(ms) == 0 {
		return nil, fmt.Errorf("merge: no manifest")
	}
	out := &Manifest{Topic: ms[0].Topic, Started: ms[0].Started, Finished: ms[0].Finished}
	t := agg.Table{}
	for i, m := range ms {
		if m.Topic != out.Topic {
			return nil, fmt.Errorf("merge: manifests of topics %s and %s", out.Topic, m.Topic)
		}
		for _, o := range ms[:i] {
			if o.Started.Equal(m.Started) && o.Finished.Equal(m.Finished) && o.Produced == m.Produced {
				return nil, fmt.Errorf("merge: the run of %s started %s is given twice: each run's manifest once",
					m.Topic, m.Started.UTC().Format(time.RFC3339Nano))
			}
		}
		if m.Started.Before(out.Started) {
			out.Started = m.Started
		}
		if m.Finished.After(out.Finished) {
			out.Finished = m.Finished
		}
		out.Produced += m.Produced
		out.Valid += m.Valid
		out.Malformed += m.Malformed
		out.Late += m.Late
		out.Failed += m.Failed
		out.Aborted += m.Aborted
		out.Partitions = max(out.Partitions, m.Partitions)
		if err := t.Merge(m.Table()); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
	}
	out.Rows = t.Rows()
	return out, nil
}
