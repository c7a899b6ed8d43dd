// Package dur holds Duration, a time.Duration that JSON shows as people
// read it ("1m30s"), for the results the Temporal UI displays.
package dur

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration encoded in JSON as its String ("1.5s"). It
// decodes that form and the plain nanoseconds older results hold.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON decodes "1m30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ns int64
	if err := json.Unmarshal(b, &ns); err != nil {
		return fmt.Errorf("duration %s: neither a string such as \"1.5s\" nor nanoseconds", b)
	}
	*d = Duration(ns)
	return nil
}
