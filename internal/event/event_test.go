package event

import (
	"strings"
	"testing"
	"time"
)

const good = `{"event_id":"e1","timestamp":"2026-11-24T21:15:03.123456Z","user_id":"u1","campaign_id":"c1",` +
	`"ad_format":"banner","country":"US","device":"ios","event_type":"click","revenue":0.061234,"bid_price":1.5}`

func TestParseGood(t *testing.T) {
	var p Parser
	ev, err := p.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{EventID: "e1", Time: time.Date(2026, 11, 24, 21, 15, 3, 123456000, time.UTC), UserID: "u1",
		CampaignID: "c1", AdFormat: "banner", Country: "US", Device: "ios", EventType: "click",
		RevenueMicros: 61234, BidMicros: 1500000}
	if ev != want {
		t.Fatalf("got %+v\nwant %+v", ev, want)
	}
	if w := ev.Window(); w != time.Date(2026, 11, 24, 21, 15, 0, 0, time.UTC).Unix() {
		t.Fatalf("window %d", w)
	}
}

func TestParseTimestamps(t *testing.T) {
	cases := map[string]time.Time{
		"2026-11-24T21:15:03Z":             time.Date(2026, 11, 24, 21, 15, 3, 0, time.UTC),
		"2026-11-24T21:15:03.5":            time.Date(2026, 11, 24, 21, 15, 3, 5e8, time.UTC), // no zone: UTC
		"2026-11-24T23:15:03+02:00":        time.Date(2026, 11, 24, 21, 15, 3, 0, time.UTC),
		"2026-11-24 21:15:03":              time.Date(2026, 11, 24, 21, 15, 3, 0, time.UTC),
		"2026-11-24T21:15:03.999999999Z":   time.Date(2026, 11, 24, 21, 15, 3, 999999999, time.UTC),
		"2026-11-25T06:15:03.123456+09:00": time.Date(2026, 11, 24, 21, 15, 3, 123456000, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseTime([]byte(in))
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "1700000000"} {
		if _, err := ParseTime([]byte(bad)); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestWindowBeforeEpochBoundary(t *testing.T) {
	if w := WindowOf(time.Date(2026, 1, 1, 0, 0, 59, 999, time.UTC)); w != time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix() {
		t.Fatal(w)
	}
}

func TestDecimalToMicros(t *testing.T) {
	cases := map[string]int64{"0": 0, "0.0": 0, "-0": 0, "1": 1e6, "0.000001": 1, "0.0000015": 2, "0.0000014": 1,
		"12.5": 12500000, "1e-3": 1000, "2.5E2": 250e6, "0.061234": 61234, "999999.999999": 999999999999}
	for in, want := range cases {
		got, err := DecimalToMicros([]byte(in))
		if err != nil || got != want {
			t.Errorf("DecimalToMicros(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "-0.01", "1000001", "1e7", "", "abc"} {
		if _, err := DecimalToMicros([]byte(bad)); err == nil {
			t.Errorf("DecimalToMicros(%q) accepted", bad)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	cases := map[string]string{
		`{"event_id":`: "malformed JSON",
		`[1,2]`:        "not a JSON object",
		``:             "malformed JSON",
		`null`:         "not a JSON object",
		strings.Replace(good, `"revenue":0.061234`, `"revenue":-1`, 1):                              "revenue: negative",
		strings.Replace(good, `"revenue":0.061234`, `"revenue":"0.06"`, 1):                          "revenue: not a number",
		strings.Replace(good, `,"revenue":0.061234`, ``, 1):                                         "missing field revenue",
		strings.Replace(good, `"ad_format":"banner"`, `"ad_format":"popup"`, 1):                     `ad_format "popup"`,
		strings.Replace(good, `"country":"US"`, `"country":""`, 1):                                  "country: empty",
		strings.Replace(good, `"country":"US"`, `"country":"U S"`, 1):                               `country "U S"`,
		strings.Replace(good, `"event_id":"e1"`, `"event_id":""`, 1):                                "event_id: empty",
		strings.Replace(good, `"event_id":"e1"`, `"event_id":7`, 1):                                 "event_id: not a string",
		strings.Replace(good, `"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"soon"`, 1): "not RFC 3339",
		strings.Replace(good, `"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":1}`, 1):     "malformed JSON",
		strings.Replace(good, `"event_type":"click"`, `"event_type":null`, 1):                       "event_type: not a string",
		// A valid event of megabytes would hold the worker's memory (its
		// strings live on in aggregates, archive rows and the device cache).
		strings.Replace(good, `"device":"ios"`, `"device":"`+strings.Repeat("d", 1<<20)+`"`, 1):        "device: longer than 256 bytes",
		strings.Replace(good, `"event_id":"e1"`, `"event_id":"`+strings.Repeat("e", 513)+`"`, 1):       "event_id: longer than 512 bytes",
		strings.Replace(good, `"user_id":"u1"`, `"user_id":"`+strings.Repeat("u", 513)+`"`, 1):         "user_id: longer than 512 bytes",
		strings.Replace(good, `"campaign_id":"c1"`, `"campaign_id":"`+strings.Repeat("c", 513)+`"`, 1): "campaign_id: longer than 512 bytes",
		// The last day ClickHouse 18.16 reads as a string is 2105-12-31:
		// a window there would end past it, and its bounds read as 0.
		strings.Replace(good, `"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2105-12-31T23:30:00Z"`, 1): "outside",
		strings.Replace(good, `"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2105-12-31T00:00:00Z"`, 1): "outside",
		// RFC 3339's offsets are hours 00-23 and minutes 00-59 (time.Parse
		// takes 24:60, and +24:00 moved the event a day).
		strings.Replace(good, `"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2026-11-24T21:15:03+24:00"`, 1): "offset",
		strings.Replace(good, `"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2026-11-24T21:15:03-10:60"`, 1): "offset",
	}
	var p Parser
	for in, want := range cases {
		_, err := p.Parse([]byte(in))
		reason, ok := IsInvalid(err)
		if !ok || !strings.Contains(reason, want) {
			t.Errorf("Parse(%q): reason %q (err %v), want it to contain %q", in, reason, err, want)
		}
	}
}

func TestParseIgnoresUnknownAndNullBid(t *testing.T) {
	var p Parser
	in := strings.Replace(good, `"bid_price":1.5`, `"bid_price":null,"extra":{"a":[1,2]}`, 1)
	ev, err := p.Parse([]byte(in))
	if err != nil || ev.BidMicros != 0 {
		t.Fatalf("%+v %v", ev, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"event_id":"x","timestamp":"2026-01-01T00:00:00","ad_format":"banner","country":"KR","event_type":"impression","revenue":0}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"revenue":1e400}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parser
		ev, err := p.Parse(b)
		if err != nil {
			if _, ok := IsInvalid(err); !ok {
				t.Fatalf("error is not *Invalid: %v", err)
			}
			return
		}
		// Whatever is accepted is a valid event.
		if ev.EventID == "" || ev.Country == "" || ev.EventType == "" || adFormats[ev.AdFormat] == "" {
			t.Fatalf("accepted an incomplete event %+v", ev)
		}
		if ev.RevenueMicros < 0 || ev.RevenueMicros > MaxRevenueMicros || ev.Time.Before(minTime) || !ev.Time.Before(EndTime) ||
			len(ev.EventID) > MaxIDBytes || len(ev.UserID) > MaxIDBytes || len(ev.CampaignID) > MaxIDBytes || len(ev.Device) > MaxDeviceBytes {
			t.Fatalf("accepted out-of-range values %+v", ev)
		}
		if ev.Window()%60 != 0 || ev.Window() > ev.Time.Unix() || ev.Time.Unix()-ev.Window() >= 60 {
			t.Fatalf("bad window %d for %v", ev.Window(), ev.Time)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.Run("ids", func(b *testing.B) { benchmarkParse(b, Parser{}) })
	b.Run("skip-ids", func(b *testing.B) { benchmarkParse(b, Parser{SkipIDs: true}) })
}

// SkipIDs parses the same event without its three IDs, and still
// validates them.
func TestParseSkipIDs(t *testing.T) {
	var full Parser
	skip := Parser{SkipIDs: true}
	want, err := full.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	got, err := skip.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != "" || got.UserID != "" || got.CampaignID != "" {
		t.Fatalf("IDs kept: %+v", got)
	}
	want.EventID, want.UserID, want.CampaignID = "", "", ""
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	bad := strings.Replace(good, `"event_id":"`, `"event_id":"",  "x":"`, 1)
	if _, err := skip.Parse([]byte(bad)); err == nil {
		t.Fatalf("an empty event_id passed with SkipIDs: %s", bad)
	}
}

func benchmarkParse(b *testing.B, p Parser) {
	rec := []byte(good)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := p.Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}
