package agg

import (
	"fmt"
	"testing"
)

func TestBinaryRoundTrip(t *testing.T) {
	want := Table{}
	for i := range 5000 {
		want[Key{Window: 1_700_000_000 + int64(i%97)*60, EventType: []string{"impression", "click"}[i%2],
			Country: fmt.Sprintf("C%d", i%300), AdFormat: "banner"}] = Totals{Count: int64(i), RevenueMicros: int64(i) * -7}
	}
	small := Table{Key{Window: 60, EventType: "click", Country: "KR", AdFormat: "banner"}: {Count: 3, RevenueMicros: 9}}
	for _, tab := range []Table{{}, small, want} {
		b, err := tab.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got := Table{}
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if d := Diff(tab, got); len(d) > 0 || len(got) != len(tab) {
			t.Fatalf("round trip of %d keys: %d keys back, differences %v", len(tab), len(got), d)
		}
	}
	for _, tab := range []Table{small, want} {
		b, _ := tab.MarshalBinary()
		for _, cut := range []int{0, 1, len(b) / 2, len(b) - 1} {
			if err := (Table{}).UnmarshalBinary(b[:cut]); err == nil {
				t.Errorf("a table cut at %d of %d bytes (form %q) decoded without error", cut, len(b), b[0])
			}
		}
	}
}
