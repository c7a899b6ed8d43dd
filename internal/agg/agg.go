// Package agg aggregates events into 1-minute windows by
// (event_type, country, ad_format): counts and exact revenue in micro-units.
package agg

import (
	"cmp"
	"errors"
	"fmt"
	"math"
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
//
// Sums never wrap. One event's revenue is at most event.MaxRevenueMicros
// (10^12 micro-units), so a key passes an Int64 only after some 9.2 million
// events at that cap in one minute: input no real traffic produces, but
// valid JSON that a broken or hostile producer can send. Add, Merge and
// SumRows therefore check every sum (one addition and one comparison: Add
// is no slower) and report an overflow as an *OverflowError naming the key,
// never as a wrapped total; only FromRows, which has no error to return,
// saturates. A batch that meets an overflow fails, since no retry can fix
// it: it writes no partials and is never recorded done, so nothing wrong is
// stored and its records stay in Kafka to be looked at. Saturating, or
// dropping the events that do not fit, would store a wrong total as exact.
type Totals struct {
	Count         int64
	RevenueMicros int64
}

// Table maps keys to their totals.
type Table map[Key]Totals

// ErrOverflow says that a sum would pass the range of an Int64. Errors
// that wrap it are *OverflowError.
var ErrOverflow = errors.New("sum overflows Int64")

// OverflowError is a sum that would pass the range of an Int64: the key's
// totals so far and what adding to them failed.
type OverflowError struct {
	Key  Key
	Have Totals // the key's totals, unchanged
	Add  Totals // what could not be added
}

func (e *OverflowError) Error() string {
	what := fmt.Sprintf("revenue %d + %d micro-units", e.Have.RevenueMicros, e.Add.RevenueMicros)
	if _, ok := addInt64(e.Have.Count, e.Add.Count); !ok {
		what = fmt.Sprintf("count %d + %d", e.Have.Count, e.Add.Count)
	}
	return fmt.Sprintf("window %s %s/%s/%s: %s (%d events so far): %v",
		time.Unix(e.Key.Window, 0).UTC().Format("2006-01-02T15:04Z"), e.Key.EventType, e.Key.Country, e.Key.AdFormat,
		what, e.Have.Count, ErrOverflow)
}

func (e *OverflowError) Unwrap() error { return ErrOverflow }

// addInt64 returns a+b and whether it did not overflow: it does exactly
// when a and b have the same sign and the sum has the other.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (a^s)&(b^s) >= 0
}

// plus returns v+o, or false when either sum would overflow.
func (v Totals) plus(o Totals) (Totals, bool) {
	c, okc := addInt64(v.Count, o.Count)
	r, okr := addInt64(v.RevenueMicros, o.RevenueMicros)
	return Totals{Count: c, RevenueMicros: r}, okc && okr
}

// Add counts one event. When its revenue would make the key's sum pass an
// Int64 it returns an *OverflowError and leaves t unchanged.
func (t Table) Add(ev *event.Event) error {
	k := Key{Window: ev.Window(), EventType: ev.EventType, Country: ev.Country, AdFormat: ev.AdFormat}
	v := t[k]
	rev, ok := addInt64(v.RevenueMicros, ev.RevenueMicros)
	if !ok || v.Count == math.MaxInt64 {
		return &OverflowError{Key: k, Have: v, Add: Totals{Count: 1, RevenueMicros: ev.RevenueMicros}}
	}
	t[k] = Totals{Count: v.Count + 1, RevenueMicros: rev}
	return nil
}

// Merge adds other's totals into t. When a key's sum would overflow it
// returns an *OverflowError and leaves t unchanged: every key is checked
// before any is added.
func (t Table) Merge(other Table) error {
	for k, o := range other {
		if _, ok := t[k].plus(o); !ok {
			return &OverflowError{Key: k, Have: t[k], Add: o}
		}
	}
	for k, o := range other {
		t[k], _ = t[k].plus(o)
	}
	return nil
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

// SumRows builds a table from rows, summing duplicates; a sum that would
// overflow is an *OverflowError.
func SumRows(rows []Row) (Table, error) {
	t := make(Table, len(rows))
	for _, r := range rows {
		v, ok := t[r.Key()].plus(Totals{Count: r.Count, RevenueMicros: r.RevenueMicros})
		if !ok {
			return nil, &OverflowError{Key: r.Key(), Have: t[r.Key()], Add: Totals{Count: r.Count, RevenueMicros: r.RevenueMicros}}
		}
		t[r.Key()] = v
	}
	return t, nil
}

// FromRows builds a table from rows, summing duplicates. Rows from Rows
// have none; a sum of duplicates that would overflow an Int64 saturates at
// its bound instead of wrapping (SumRows reports it instead).
func FromRows(rows []Row) Table {
	t := make(Table, len(rows))
	for _, r := range rows {
		v := t[r.Key()]
		v.Count = addSaturated(v.Count, r.Count)
		v.RevenueMicros = addSaturated(v.RevenueMicros, r.RevenueMicros)
		t[r.Key()] = v
	}
	return t
}

// addSaturated returns a+b, or the bound it would pass.
func addSaturated(a, b int64) int64 {
	s, ok := addInt64(a, b)
	switch {
	case ok:
		return s
	case b > 0:
		return math.MaxInt64
	default:
		return math.MinInt64
	}
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
