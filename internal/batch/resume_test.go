package batch

import "testing"

func TestResumable(t *testing.T) {
	for _, c := range []struct {
		name       string
		saved      progress
		start, end int64
		want       bool
	}{
		{"same plan, part read", progress{Start: 100, Next: 150}, 100, 200, true},
		{"same plan, all read", progress{Start: 100, Next: 200}, 100, 200, true},
		{"nothing read", progress{Start: 100, Next: 100}, 100, 200, false},
		{"another start", progress{Start: 90, Next: 150}, 100, 200, false},
		{"held run (no progress)", progress{Start: -1}, 100, 200, false},
		{"a tail that read past the plan's end", progress{Start: 100, Next: 230}, 100, 200, false},
		{"tailing, end not known yet", progress{Start: 100, Next: 230}, 100, 0, true},
	} {
		if got := resumable(c.saved, c.start, c.end); got != c.want {
			t.Errorf("%s: resumable(%+v, %d, %d) = %v, want %v", c.name, c.saved, c.start, c.end, got, c.want)
		}
	}
}
