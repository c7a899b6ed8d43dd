// Package agg aggregates events into 1-minute windows by
// (event_type, country, ad_format): counts and exact revenue in micro-units.
package agg

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
)

// Key identifies one window and dimension combination.
type Key struct {
	Window    int64 // window start, Unix seconds
	EventType string
	Country   string
	AdFormat  string
}

// Totals are the sums for one key.
type Totals struct {
	Count         int64
	RevenueMicros int64
}

// Table maps keys to their totals.
type Table map[Key]Totals

// Add counts one event.
func (t Table) Add(ev *event.Event) {
	k := Key{Window: ev.Window(), EventType: ev.EventType, Country: ev.Country, AdFormat: ev.AdFormat}
	v := t[k]
	v.Count++
	v.RevenueMicros += ev.RevenueMicros
	t[k] = v
}

// Merge adds other's totals into t.
func (t Table) Merge(other Table) {
	for k, o := range other {
		v := t[k]
		v.Count += o.Count
		v.RevenueMicros += o.RevenueMicros
		t[k] = v
	}
}

// Windows returns the distinct window starts in t, sorted.
func (t Table) Windows() []int64 {
	seen := map[int64]bool{}
	var out []int64
	for k := range t {
		if !seen[k.Window] {
			seen[k.Window] = true
			out = append(out, k.Window)
		}
	}
	slices.Sort(out)
	return out
}

// Row is one key with its totals, the form in which tables are stored and
// exchanged (Temporal payloads, manifests).
type Row struct {
	WindowStart   time.Time `json:"window_start"`
	EventType     string    `json:"event_type"`
	Country       string    `json:"country"`
	AdFormat      string    `json:"ad_format"`
	Count         int64     `json:"count"`
	RevenueMicros int64     `json:"revenue_micros"`
}

// Key returns the row's key.
func (r Row) Key() Key {
	return Key{Window: r.WindowStart.Unix(), EventType: r.EventType, Country: r.Country, AdFormat: r.AdFormat}
}

// Rows returns t's rows in key order.
func (t Table) Rows() []Row {
	rows := make([]Row, 0, len(t))
	for k, v := range t {
		rows = append(rows, Row{WindowStart: time.Unix(k.Window, 0).UTC(), EventType: k.EventType,
			Country: k.Country, AdFormat: k.AdFormat, Count: v.Count, RevenueMicros: v.RevenueMicros})
	}
	slices.SortFunc(rows, func(a, b Row) int { return CompareKeys(a.Key(), b.Key()) })
	return rows
}

// FromRows builds a table from rows, summing duplicates.
func FromRows(rows []Row) Table {
	t := make(Table, len(rows))
	for _, r := range rows {
		v := t[r.Key()]
		v.Count += r.Count
		v.RevenueMicros += r.RevenueMicros
		t[r.Key()] = v
	}
	return t
}

// CompareKeys orders keys by window, then event type, country and format.
func CompareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Window, b.Window), cmp.Compare(a.EventType, b.EventType),
		cmp.Compare(a.Country, b.Country), cmp.Compare(a.AdFormat, b.AdFormat))
}

// Difference is one key on which two tables disagree.
type Difference struct {
	Key  Key
	Want Totals // zero when the key is missing from want
	Got  Totals // zero when the key is missing from got
}

func (d Difference) String() string {
	return fmt.Sprintf("%s %s/%s/%s: want %d events %s, got %d events %s",
		time.Unix(d.Key.Window, 0).UTC().Format("2006-01-02T15:04Z"), d.Key.EventType, d.Key.Country, d.Key.AdFormat,
		d.Want.Count, FormatMicros(d.Want.RevenueMicros), d.Got.Count, FormatMicros(d.Got.RevenueMicros))
}

// Diff lists the keys whose totals differ between want and got, in key
// order. Keys whose totals are zero on one side and absent on the other agree.
func Diff(want, got Table) []Difference {
	var out []Difference
	for k, w := range want {
		if g := got[k]; g != w {
			out = append(out, Difference{Key: k, Want: w, Got: g})
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && g != (Totals{}) {
			out = append(out, Difference{Key: k, Got: g})
		}
	}
	slices.SortFunc(out, func(a, b Difference) int { return CompareKeys(a.Key, b.Key) })
	return out
}

// FormatMicros prints micro-units as a decimal amount.
func FormatMicros(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%06d", sign, m/1_000_000, m%1_000_000)
}
