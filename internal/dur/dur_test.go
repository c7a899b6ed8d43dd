package dur

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	type r struct{ Wait Duration }
	b, err := json.Marshal(r{Duration(90 * time.Second)})
	if err != nil || string(b) != `{"Wait":"1m30s"}` {
		t.Fatalf("encoded %s, %v", b, err)
	}
	for in, want := range map[string]time.Duration{
		`{"Wait":"1m30s"}`:    90 * time.Second,
		`{"Wait":1500000000}`: 1500 * time.Millisecond, // results written before Duration
		`{"Wait":"0s"}`:       0,
		`{"Wait":"250ms"}`:    250 * time.Millisecond,
	} {
		var got r
		if err := json.Unmarshal([]byte(in), &got); err != nil || got.Wait.D() != want {
			t.Errorf("%s decoded to %v, %v; want %v", in, got.Wait, err, want)
		}
	}
	for _, in := range []string{`{"Wait":"soon"}`, `{"Wait":true}`} {
		var got r
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("%s decoded without error to %v", in, got.Wait)
		}
	}
}
