package agg

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
)

// addEv and mergeT call Add and Merge and return their error. (Before
// sums were checked, Add and Merge returned nothing, and these returned nil:
// the tests failed on the wrapped sums.)
func addEv(t Table, e *event.Event) error { return t.Add(e) }
func mergeT(t, o Table) error             { return t.Merge(o) }

// capEvents is how many events at the per-event revenue cap one key can
// sum within an Int64: one more overflows.
const capEvents = math.MaxInt64 / event.MaxRevenueMicros // 9,223,372

// One key fed events at the per-event cap reports an overflow at the first
// event whose revenue would pass an Int64, and keeps the exact sum of the
// events before it: never a wrapped (negative) sum.
func TestAddReportsRevenueOverflow(t *testing.T) {
	m := time.Date(2026, 11, 24, 21, 14, 0, 0, time.UTC)
	e := ev(m, "click", "US", "banner", event.MaxRevenueMicros)
	k := Key{m.Unix(), "click", "US", "banner"}
	tb := Table{}
	var err error
	n := int64(0)
	for ; n <= capEvents; n++ { // capEvents+1 events: the last one overflows
		if err = addEv(tb, e); err != nil {
			break
		}
	}
	got := tb[k]
	if err == nil {
		t.Fatalf("%d events of %d micro-units in one key: no error, and the sum is %d micro-units (%s)",
			n, e.RevenueMicros, got.RevenueMicros, FormatMicros(got.RevenueMicros))
	}
	if n != capEvents {
		t.Fatalf("overflow reported at event %d, want at event %d", n+1, capEvents+1)
	}
	if want := (Totals{Count: capEvents, RevenueMicros: capEvents * event.MaxRevenueMicros}); got != want {
		t.Fatalf("after the overflow the key holds %+v, want the sum before it %+v", got, want)
	}
	checkOverflowError(t, err, k, "2026-11-24T21:14Z click/US/banner")
	// Other keys are not affected.
	if err := addEv(tb, ev(m, "click", "JP", "banner", 5)); err != nil {
		t.Fatal(err)
	}
}

func checkOverflowError(t *testing.T, err error, k Key, names string) {
	t.Helper()
	var oe *OverflowError
	if !errors.Is(err, ErrOverflow) || !errors.As(err, &oe) || oe.Key != k {
		t.Fatalf("error %v (%T): want an *OverflowError of key %+v", err, err, k)
	}
	if !strings.Contains(err.Error(), names) {
		t.Fatalf("error %q does not name %q", err, names)
	}
}

// Merging tables whose sums pass an Int64 (either way) fails, naming the
// key, and leaves the table as it was: no key is half merged.
func TestMergeReportsRevenueOverflow(t *testing.T) {
	k1, k2 := Key{60, "click", "US", "banner"}, Key{120, "click", "KR", "banner"}
	for _, c := range []struct {
		name      string
		have, add int64
	}{
		{"up", math.MaxInt64 - 5, 6},
		{"down", math.MinInt64 + 5, -6},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := Table{k2: {Count: 1, RevenueMicros: c.have}}
			before := Table{k2: tb[k2]}
			err := mergeT(tb, Table{k1: {Count: 1, RevenueMicros: 1}, k2: {Count: 1, RevenueMicros: c.add}})
			if err == nil {
				t.Fatalf("merged %d + %d without error: %+v", c.have, c.add, tb[k2])
			}
			checkOverflowError(t, err, k2, "1970-01-01T00:02Z click/KR/banner")
			if d := Diff(before, tb); len(d) > 0 {
				t.Fatalf("a failed merge changed the table: %v", d)
			}
		})
	}
	// Counts too.
	tb := Table{k1: {Count: math.MaxInt64}}
	if err := mergeT(tb, Table{k1: {Count: 1}}); err == nil {
		t.Fatalf("merged counts to %d without error", tb[k1].Count)
	}
}

// Rows with duplicate keys are summed without ever wrapping: SumRows
// reports the overflow, FromRows saturates.
func TestRowsNeverWrap(t *testing.T) {
	r := Row{WindowStart: time.Unix(60, 0).UTC(), EventType: "click", Country: "US", AdFormat: "banner", Count: 1, RevenueMicros: math.MaxInt64}
	if _, err := SumRows([]Row{r, r}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("SumRows of two rows of MaxInt64: %v, want ErrOverflow", err)
	}
	if got := FromRows([]Row{r, r})[r.Key()]; got.RevenueMicros != math.MaxInt64 || got.Count != 2 {
		t.Fatalf("FromRows of two rows of MaxInt64: %+v, want the revenue saturated at MaxInt64", got)
	}
	if tb, err := SumRows([]Row{r}); err != nil || tb[r.Key()].RevenueMicros != math.MaxInt64 {
		t.Fatalf("SumRows of one row: %v, %v", tb, err)
	}
}

// A compact table that names a key twice (corrupt: MarshalBinary never
// does) is refused rather than decoded with one of its totals dropped.
func TestBinaryRefusesDuplicateKeys(t *testing.T) {
	raw := []byte{plainForm}
	raw = binary.AppendUvarint(raw, binaryVersion)
	raw = binary.AppendUvarint(raw, 1) // dictionary: one word
	raw = binary.AppendUvarint(raw, 1)
	raw = append(raw, 'x')
	raw = binary.AppendUvarint(raw, 2) // two keys, the same
	for range 2 {
		raw = binary.AppendVarint(raw, 0) // window delta
		raw = binary.AppendUvarint(raw, 0)
		raw = binary.AppendUvarint(raw, 0)
		raw = binary.AppendUvarint(raw, 0)
		raw = binary.AppendVarint(raw, 1)
		raw = binary.AppendVarint(raw, 7)
	}
	got := Table{}
	if err := got.UnmarshalBinary(raw); err == nil {
		t.Fatalf("a table with a key twice decoded without error: %v", got)
	}
}
