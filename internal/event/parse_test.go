package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// refParse is Parse's specification on top of encoding/json: the record must
// be valid JSON (nested at most maxDepth deep), an object; its members are
// visited in order, a later duplicate replaces an earlier one, and the first
// member of the wrong type is the error. It returns the event and the reason
// ("" if valid; only "malformed JSON" for syntax errors).
func refParse(b []byte) (Event, string) {
	var ev Event
	if !json.Valid(b) || jsonDepth(b) > maxDepth {
		return ev, "malformed JSON"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ev, "not a JSON object"
	}
	var ts string
	var fieldErr string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(err)
		}
		k := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		if fieldErr != "" {
			continue
		}
		str := func() string {
			s, ok := v.(string)
			if !ok {
				fieldErr = k + ": not a string"
			}
			return s
		}
		num := func() int64 {
			n, ok := v.(json.Number)
			if !ok {
				fieldErr = k + ": not a number"
				return 0
			}
			m, err := DecimalToMicros([]byte(n.String()))
			if err != nil {
				fieldErr = k + ": " + err.Error()
			}
			return m
		}
		seen[k] = true
		switch k {
		case "event_id":
			ev.EventID = str()
		case "timestamp":
			ts = str()
		case "user_id":
			ev.UserID = str()
		case "campaign_id":
			ev.CampaignID = str()
		case "ad_format":
			ev.AdFormat = str()
		case "country":
			ev.Country = str()
		case "device":
			ev.Device = str()
		case "event_type":
			ev.EventType = str()
		case "revenue":
			ev.RevenueMicros = num()
		case "bid_price":
			if v != nil {
				ev.BidMicros = num()
			}
		}
	}
	if fieldErr != "" {
		return Event{}, fieldErr
	}
	for _, name := range []string{"event_id", "timestamp", "ad_format", "country", "event_type", "revenue"} {
		if !seen[name] {
			return Event{}, "missing field " + name
		}
	}
	if ev.EventID == "" {
		return Event{}, "event_id: empty"
	}
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{{"event_id", ev.EventID, MaxIDBytes}, {"user_id", ev.UserID, MaxIDBytes}, {"campaign_id", ev.CampaignID, MaxIDBytes}, {"device", ev.Device, MaxDeviceBytes}} {
		if len(f.v) > f.max {
			return Event{}, fmt.Sprintf("%s: longer than %d bytes", f.name, f.max)
		}
	}
	var err error
	if ev.Time, err = parseTimeLayouts([]byte(ts)); err != nil {
		return Event{}, err.(*Invalid).Reason
	}
	f, ok := adFormats[ev.AdFormat]
	if !ok {
		return Event{}, fmt.Sprintf("ad_format %q: want banner, interstitial or rewarded_video", truncate(ev.AdFormat))
	}
	ev.AdFormat = f
	if err := checkToken("country", ev.Country, 16); err != nil {
		return Event{}, err.(*Invalid).Reason
	}
	if err := checkToken("event_type", ev.EventType, 64); err != nil {
		return Event{}, err.(*Invalid).Reason
	}
	return ev, ""
}

// jsonDepth returns the nesting depth of valid JSON: 1 for a scalar or an
// empty container, 2 for [1], and so on (as fastjson counts).
func jsonDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	open, depth := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			open--
			continue
		}
		depth = max(depth, open+1)
		if tok == json.Delim('{') || tok == json.Delim('[') {
			open++
		}
	}
}

var (
	surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)
	quoted          = regexp.MustCompile(`"(\\.|[^"\\])*"`)
)

// checkParse compares Parse with refParse. Where encoding/json decodes
// strings differently from Parser (invalid UTF-8 becomes U+FFFD; lone
// surrogate escapes, which Parser keeps as fastjson did), strings are
// compared after replacing invalid UTF-8, or not at all.
func checkParse(t *testing.T, p *Parser, b []byte) {
	t.Helper()
	got, err := p.Parse(b)
	want, wantReason := refParse(b)
	reason, ok := IsInvalid(err)
	if err != nil && !ok {
		t.Fatalf("Parse(%q): error is not *Invalid: %v", b, err)
	}
	switch {
	case wantReason == "malformed JSON":
		if !strings.HasPrefix(reason, "malformed JSON: ") {
			t.Fatalf("Parse(%q) = %+v, %q; want malformed JSON", b, got, reason)
		}
		return
	case strings.HasPrefix(reason, "malformed JSON"):
		t.Fatalf("Parse(%q): %q; want %q", b, reason, wantReason)
	}
	sur := surrogateEscape.Match(b)
	if utf8.Valid(b) && !sur {
		if reason != wantReason || got != want {
			t.Fatalf("Parse(%q):\n got %+v, %q\nwant %+v, %q", b, got, reason, want, wantReason)
		}
		return
	}
	if mask(reason) != mask(wantReason) {
		t.Fatalf("Parse(%q): %q; want %q", b, reason, wantReason)
	}
	if !sur {
		for _, s := range []*string{&got.EventID, &got.UserID, &got.CampaignID, &got.Device} {
			*s = string([]rune(*s)) // what encoding/json does to invalid UTF-8
		}
	} else {
		got.EventID, got.UserID, got.CampaignID, got.Device = "", "", "", ""
		want.EventID, want.UserID, want.CampaignID, want.Device = "", "", "", ""
	}
	if got != want {
		t.Fatalf("Parse(%q):\n got %+v\nwant %+v", b, got, want)
	}
}

// mask hides the quoted strings of a reason.
func mask(reason string) string { return quoted.ReplaceAllString(reason, `"…"`) }

func fuzzSeeds() []string {
	r := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	return []string{
		good,
		`{"event_id":"x","timestamp":"2026-01-01T00:00:00","ad_format":"banner","country":"KR","event_type":"impression","revenue":0}`,
		`{}`, ` { } `, `[]`, `"x"`, `1`, `null`, `true`, ``, ` `, `{`, `}`,
		`{"revenue":1e400}`,
		r(`"revenue":0.061234`, `"revenue":1.5e-3`),
		r(`"revenue":0.061234`, `"revenue":01`),
		r(`"revenue":0.061234`, `"revenue":-0.0`),
		r(`"revenue":0.061234`, `"revenue":NaN`),
		r(`"bid_price":1.5`, `"bid_price":null`),
		r(`"bid_price":1.5`, `"bid_price":true`),
		r(`"event_id":"e1"`, `"event_id":"e\"1\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`),
		r(`"event_id":"e1"`, `"event_id":"\ud800"`),
		r(`"event_id":"e1"`, `"event_id":"\ud800\u0041x"`),
		r(`"event_id":"e1"`, "\"event_id\":\"e\xff1\""),
		r(`"event_id":"e1"`, `"\u0065vent_id":"e2"`),
		r(`"event_id":"e1"`, `"event_id":"e1","event_id":"e2"`),
		r(`"event_id":"e1"`, `"event_id":7,"event_id":"e2"`),
		r(`"country":"US"`, `"country":"\u0055S"`),
		r(`"ad_format":"banner"`, `"ad_format":"b\u0061nner"`),
		r(`"bid_price":1.5`, `"bid_price":1.5,"extra":{"a":[1,2.5e-3,{"b":null}],"c":"\\"},"x":[]`),
		r(`"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2026-11-24 21:15:03,5+24:00"`),
		r(`"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2026-11-24T1:15:03Z"`),
		r(`"timestamp":"2026-11-24T21:15:03.123456Z"`, `"timestamp":"2105-12-31T23:59:00.0000000001Z"`),
		strings.ReplaceAll(good, `,`, " ,\n\t"),
		good + ` x`,
		good + `}`,
		strings.Repeat(`[`, 301) + strings.Repeat(`]`, 301),
		`{"a":` + strings.Repeat(`[`, 298) + `1` + strings.Repeat(`]`, 298) + `}`,
		`{"a":` + strings.Repeat(`[`, 299) + `1` + strings.Repeat(`]`, 299) + `}`,
	}
}

func TestParseVsEncodingJSON(t *testing.T) {
	var p Parser
	for _, s := range fuzzSeeds() {
		checkParse(t, &p, []byte(s))
	}
	for _, s := range malformed {
		checkParse(t, &p, []byte(s))
	}
}

// FuzzParseJSON checks Parse against encoding/json (refParse): whatever
// encoding/json refuses, Parse refuses as malformed JSON; otherwise both
// give the same event or reason.
func FuzzParseJSON(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	var p Parser // shared, as in production: its buffers and intern cache carry over
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, &p, b)
	})
}

// malformed are records with one syntax error each.
var malformed = func() []string {
	var out []string
	for _, v := range []string{`01`, `-01`, `1.`, `.5`, `+1`, `-`, `1e`, `1e+`, `1E-`, `1.e5`, `NaN`, `nan`, `Infinity`,
		`-inf`, `0x10`, `1_000`, `tru`, `nul`, `nulll`, `True`, `"a`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\U0041"`, "\"a\nb\"",
		"\"a\tb\"", "\"\x00\"", "\"\x1f\"", `'a'`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":}`,
		`{,}`, `{"a":1}}`, `[`, `]`, `{"a":[}`, `{"a":{]}`, `1 2`} {
		for _, name := range []string{"revenue", "event_id", "extra"} {
			out = append(out, strings.Replace(good, `"bid_price":1.5`, `"bid_price":1.5,"`+name+`":`+v, 1))
		}
	}
	for _, s := range []string{`,`, ` x`, `{}`, `}`, `]`, "\x00", `"`} {
		out = append(out, good+s)
	}
	for n := 1; n < len(good); n += 7 {
		out = append(out, good[:n])
	}
	out = append(out, "\xef\xbb\xbf"+good, strings.Replace(good, `{"event_id"`, `{"event_id`, 1),
		strings.Replace(good, `"ad_format":"banner"`, `"ad_format":"banner`, 1), `{"a":`+strings.Repeat(`[`, 299)+`1`+strings.Repeat(`]`, 299)+`}`)
	return out
}()

func TestParseMalformed(t *testing.T) {
	var p Parser
	for _, s := range malformed {
		_, err := p.Parse([]byte(s))
		if reason, _ := IsInvalid(err); !strings.HasPrefix(reason, "malformed JSON: ") {
			t.Errorf("Parse(%q): reason %q, want malformed JSON", s, reason)
		}
	}
}

func TestParseNesting(t *testing.T) {
	var p Parser
	for _, c := range []struct {
		n  int
		ok bool
	}{{298, true}, {299, false}, {5000, false}} {
		// The record is at depth 1, "extra"'s value at 2, the 1 at n+2.
		in := strings.Replace(good, `"bid_price":1.5`, `"bid_price":1.5,"extra":`+strings.Repeat(`[`, c.n)+`1`+strings.Repeat(`]`, c.n), 1)
		if _, err := p.Parse([]byte(in)); (err == nil) != c.ok {
			t.Errorf("%d nested arrays: %v", c.n, err)
		}
		in = strings.Replace(good, `"bid_price":1.5`, `"bid_price":1.5,"extra":`+strings.Repeat(`{"a":`, c.n)+`1`+strings.Repeat(`}`, c.n), 1)
		if _, err := p.Parse([]byte(in)); (err == nil) != c.ok {
			t.Errorf("%d nested objects: %v", c.n, err)
		}
	}
	if _, err := p.Parse([]byte(strings.Repeat(`[`, 299) + strings.Repeat(`]`, 299))); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("299 nested arrays: %v", err)
	}
}

func TestParseStrings(t *testing.T) {
	var p Parser
	for in, want := range map[string]string{
		`e\"1\\\/\b\f\n\r\t`:   "e\"1\\/\b\f\n\r\t",
		`\u00e9\u20AC\u0000`:   "é€\x00",
		`\ud83d\ude00x`:        "😀x",
		"\xff\xfe":             "\xff\xfe", // bytes kept, as fastjson did
		`\ud800`:               `\ud800`,   // the fastjson ways with bad surrogates
		`\udc00x`:              `\udc00x`,
		`\ud800\u0041x`:        "\uFFFDx",
		`\ud800\\u0041`:        `\ud800\u0041`,
		`a\ud800\ud800\udc00b`: "a\uFFFD" + `\udc00b`,
	} {
		rec := strings.Replace(good, `"e1"`, `"`+in+`"`, 1)
		ev, err := p.Parse([]byte(rec))
		if err != nil || ev.EventID != want {
			t.Errorf("event_id %s: got %q, %v; want %q", in, ev.EventID, err, want)
		}
	}
	// Keys are unescaped too.
	rec := strings.Replace(good, `"event_id":"e1"`, `"\u0065vent_id":"e2"`, 1)
	if ev, err := p.Parse([]byte(rec)); err != nil || ev.EventID != "e2" {
		t.Errorf("escaped key: %+v, %v", ev, err)
	}
}

func TestParseDuplicates(t *testing.T) {
	var p Parser
	add := func(s string) []byte {
		return []byte(strings.Replace(good, `"bid_price":1.5`, `"bid_price":1.5,`+s, 1))
	}
	ev, err := p.Parse(add(`"event_id":"e2","country":"KR","revenue":2,"bid_price":null`))
	if err != nil || ev.EventID != "e2" || ev.Country != "KR" || ev.RevenueMicros != 2e6 || ev.BidMicros != 1.5e6 {
		t.Errorf("later members win (but null leaves bid_price): %+v, %v", ev, err)
	}
	_, err = p.Parse(add(`"revenue":"x","event_id":3`))
	if reason, _ := IsInvalid(err); reason != "revenue: not a number" {
		t.Errorf("first error wins: %q", reason)
	}
	_, err = p.Parse(add(`"revenue":"x","event_id":3,"x":[}`))
	if reason, _ := IsInvalid(err); !strings.HasPrefix(reason, "malformed JSON") {
		t.Errorf("syntax errors win: %q", reason)
	}
}

func TestKnownKey(t *testing.T) {
	for m, name := range memberNames {
		if m == mUnknown {
			continue
		}
		if got := member([]byte(name)); got != m {
			t.Errorf("member(%q) = %d, want %d", name, got, m)
		}
		for _, tail := range []string{``, `:1}`, `:"abcdefgh"}`} {
			b := []byte(`x"` + name + `"` + tail)
			got, j := knownKey(b, 2)
			want := m
			if len(b)-2 < 8 {
				want = mUnknown // too near the end: member decides
			}
			if got != want || want != mUnknown && j != len(name)+3 {
				t.Errorf("knownKey(%q) = %d, %d; want %d", b, got, j, want)
			}
			for _, near := range []string{name[:len(name)-1], name + "x", name[:len(name)-1] + "X", "X" + name[1:]} {
				if got, _ := knownKey([]byte(`"`+near+`"`+tail), 1); got != mUnknown {
					t.Errorf("knownKey(%q) = %d", near, got)
				}
			}
		}
	}
	for f := range adFormats {
		if s, ok := adFormatOf([]byte(f)); !ok || s != adFormats[f] {
			t.Errorf("adFormatOf(%q) = %q, %v", f, s, ok)
		}
	}
}

func TestParseInterns(t *testing.T) {
	var p Parser
	a, _ := p.Parse([]byte(good))
	b, _ := p.Parse([]byte(good))
	if unsafe.StringData(a.Country) != unsafe.StringData(b.Country) || unsafe.StringData(a.Device) != unsafe.StringData(b.Device) ||
		unsafe.StringData(a.EventType) != unsafe.StringData(b.EventType) {
		t.Error("dimension strings are not shared")
	}
	// Many values: the cache and the map stay right.
	for i := range 10000 {
		c := fmt.Sprintf("C%d", i%5000)
		ev, err := p.Parse([]byte(strings.Replace(good, `"US"`, `"`+c+`"`, 1)))
		if err != nil || ev.Country != c {
			t.Fatalf("%q: %+v, %v", c, ev, err)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	var p Parser
	rec := []byte(good)
	if n := testing.AllocsPerRun(100, func() { p.Parse(rec) }); n > 1 {
		t.Errorf("%v allocations per Parse, want 1", n)
	}
}

// timestampParts makes timestamps around the edges of what ParseTime takes.
var timestampParts = [][]string{
	{"1969", "1970", "2000", "2024", "2100", "2105", "2106", "0000", "9999", "20x6", "202"},
	{"-"},
	{"01", "02", "12", "00", "13", "1", "1x"},
	{"-"},
	{"01", "28", "29", "30", "31", "00", "32", "1", "x1"},
	{"T", " ", "t", "  ", "_"},
	{"00", "09", "23", "24", "7", "99", "0x"},
	{":"},
	{"00", "59", "60", "5"},
	{":"},
	{"00", "59", "60", "5", "x0"},
	{"", ".5", ",5", ".", ".123456789", ".1234567890123", ".000000001", ".x", "..5"},
	{"", "Z", "z", "+00:00", "-00:00", "+23:59", "+24:00", "+24:60", "-24:60", "+25:00", "+00:61", "+0100", "+01:0",
		" Z", "Z ", "+01:00:00", "UTC", "+1:00", "*01:00", "+01-00"},
}

func checkParseTime(t *testing.T, s string) {
	t.Helper()
	want, wantErr := parseTimeLayouts([]byte(s))
	got, err := ParseTime([]byte(s))
	if got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("ParseTime(%q) = %v, %v; time.Parse says %v, %v", s, got, err, want, wantErr)
	}
	if fast, ok := parseTimeFast([]byte(s)); ok && (fast != want || wantErr != nil) {
		t.Fatalf("parseTimeFast(%q) = %v; time.Parse says %v, %v", s, fast, want, wantErr)
	}
}

func TestParseTimeFast(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200_000
	if testing.Short() || raceBuild {
		n = 10_000
	}
	for range n {
		var sb strings.Builder
		for _, parts := range timestampParts {
			sb.WriteString(parts[rng.IntN(len(parts))])
		}
		checkParseTime(t, sb.String())
	}
	// Every day of some years, and the ends of the range.
	for _, year := range []int{1970, 2000, 2023, 2024, 2100, 2105} {
		for d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			checkParseTime(t, d.Format("2006-01-02T15:04:05Z"))
		}
		for m := 1; m <= 12; m++ {
			for day := 28; day <= 32; day++ {
				checkParseTime(t, fmt.Sprintf("%04d-%02d-%02d 23:59:59.999999999", year, m, day))
			}
		}
	}
	for _, s := range []string{"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z", "1970-01-01T01:00:00+01:00",
		"1970-01-01T00:59:59+01:00", "1969-12-31T23:00:00-01:00", "2105-12-31T23:59:00Z", "2105-12-31T23:59:00.000000001Z",
		"2105-12-31T23:59:00.0000000001Z", "2105-12-31T23:58:59.999999999Z", "2106-01-01T00:59:00+01:00",
		"2106-01-01T00:59:00.1+01:00", "2105-12-31T22:59:00-01:00", "2026-11-24T21:15:03.123456Z"} {
		checkParseTime(t, s)
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-24T21:15:03.123456Z", "2026-11-24 21:15:03", "2024-02-29T23:59:59.5+24:00",
		"2105-12-31T23:59:00Z", "1970-01-01T00:00:00-00:00", "2026-11-24T1:15:03,5Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParseTime(t, s)
	})
}

// randRecord makes a record, valid JSON most of the time, from pieces of
// events: known and unknown members in any order, duplicates, values of
// every type, escapes and whitespace.
func randRecord(rng *rand.Rand) []byte {
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	ws := func() string {
		if rng.IntN(8) == 0 {
			return pick(" ", "\n", "\t\r ", "  ")
		}
		return ""
	}
	str := func() string {
		return pick(`"e1"`, `""`, `"banner"`, `"interstitial"`, `"rewarded_video"`, `"popup"`, `"b\u0061nner"`, `"US"`, `"KR"`,
			`"U S"`, `"click"`, `"impression"`, `"ios"`, `"\u0055S"`, `"a\"b"`, `"\ud83d\ude00"`, `"\ud800"`, "\"\xff\"",
			`"`+strings.Repeat("x", 17)+`"`, `"`+strings.Repeat("y", 65)+`"`, `"US\n"`, `"\\"`)
	}
	num := func() string {
		return pick("0", "0.061234", "1.5", "-0", "-0.0", "-1", "1e-3", "2.5E2", "1000000", "1000001", "999999.9999995",
			"0.0000005", "0.00000049", "1e400", "12345678901234567890", "1E+2")
	}
	value := func(name string) string {
		switch rng.IntN(10) {
		case 0:
			return pick("null", "true", "false", "[]", "{}", `[1,"a",{"b":[null]}]`, `{"x":{"y":"z"}}`)
		case 1:
			return num()
		}
		switch name {
		case "timestamp":
			var sb strings.Builder
			sb.WriteByte('"')
			for _, parts := range timestampParts {
				sb.WriteString(parts[rng.IntN(len(parts))])
			}
			sb.WriteByte('"')
			return sb.String()
		case "revenue", "bid_price":
			return num()
		}
		return str()
	}
	names := []string{"event_id", "timestamp", "user_id", "campaign_id", "ad_format", "country", "device", "event_type",
		"revenue", "bid_price", "extra", `event\u005fid`, "Event_id", "x"}
	var sb strings.Builder
	sb.WriteString(ws() + "{")
	n := 0
	if rng.IntN(2) == 0 { // a complete record, and more
		sb.WriteString(good[1 : len(good)-1])
		n++
	}
	for range rng.IntN(8) {
		if n++; n > 1 {
			sb.WriteString(ws() + "," + ws())
		}
		name := names[rng.IntN(len(names))]
		sb.WriteString(`"` + name + `"` + ws() + ":" + ws() + value(name))
	}
	sb.WriteString(ws() + "}" + ws())
	return []byte(sb.String())
}

func TestParseGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 100_000
	if testing.Short() || raceBuild {
		n = 5_000
	}
	var p Parser
	reasons := map[string]int{}
	for range n {
		b := randRecord(rng)
		checkParse(t, &p, b)
		_, err := p.Parse(b)
		reason, _ := IsInvalid(err)
		reason, _, _ = strings.Cut(mask(reason), ":")
		reasons[reason]++
	}
	t.Log(reasons)
}

func BenchmarkParseTime(b *testing.B) {
	ts := []byte("2026-11-24T21:15:03.123456Z")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTime(ts); err != nil {
			b.Fatal(err)
		}
	}
}
