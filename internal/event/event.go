// Package event parses and validates ad events: one JSON object per Kafka
// record, as DESIGN.md describes them.
package event

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// AdFormats are the ad formats an event may carry.
var adFormats = map[string]string{"banner": "banner", "interstitial": "interstitial", "rewarded_video": "rewarded_video"}

// MaxRevenueMicros bounds one event's revenue (one million currency units),
// so that sums of billions of events cannot overflow an Int64.
const MaxRevenueMicros = 1_000_000 * 1_000_000

// Earliest and latest event times that ClickHouse's DateTime can hold.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2105, 12, 31, 23, 59, 0, 0, time.UTC)
)

// Event is one parsed ad event. Money is in micro-units, exact.
type Event struct {
	EventID       string
	Time          time.Time // event time, UTC
	UserID        string
	CampaignID    string
	AdFormat      string
	Country       string
	Device        string
	EventType     string
	RevenueMicros int64
	BidMicros     int64 // 0 when absent
}

// Window returns the start of the event's 1-minute window, in Unix seconds.
func (e *Event) Window() int64 { return WindowOf(e.Time) }

// WindowOf returns the start of the minute holding t, in Unix seconds.
func WindowOf(t time.Time) int64 {
	s := t.Unix()
	return s - mod(s, 60)
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Invalid is the error for a record that cannot be parsed or fails
// validation; Reason is what goes to the dead-letter table.
type Invalid struct{ Reason string }

func (e *Invalid) Error() string { return "invalid event: " + e.Reason }

func invalid(format string, args ...any) error {
	return &Invalid{Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err says the record itself is bad (as opposed to
// an I/O problem) and returns the reason.
func IsInvalid(err error) (string, bool) {
	var inv *Invalid
	if errors.As(err, &inv) {
		return inv.Reason, true
	}
	return "", false
}

// Parser parses events. It reuses its buffers: not safe for concurrent use;
// the zero value is ready.
type Parser struct {
	p      fastjson.Parser
	intern map[string]string
}

// Parse parses and validates one record's value. Errors are *Invalid.
func (ps *Parser) Parse(b []byte) (Event, error) {
	var ev Event
	v, err := ps.p.ParseBytes(b)
	if err != nil {
		return ev, invalid("malformed JSON: %v", err)
	}
	o, err := v.Object()
	if err != nil {
		return ev, invalid("not a JSON object")
	}
	var ts []byte
	var seen uint16
	var fieldErr error
	o.Visit(func(k []byte, fv *fastjson.Value) {
		if fieldErr != nil {
			return
		}
		switch string(k) {
		case "event_id":
			ev.EventID, fieldErr = ps.str(fv, "event_id", false)
			seen |= 1
		case "timestamp":
			if fv.Type() != fastjson.TypeString {
				fieldErr = invalid("timestamp: not a string")
				return
			}
			ts = fv.GetStringBytes()
			seen |= 2
		case "user_id":
			ev.UserID, fieldErr = ps.str(fv, "user_id", false)
		case "campaign_id":
			ev.CampaignID, fieldErr = ps.str(fv, "campaign_id", false)
		case "ad_format":
			ev.AdFormat, fieldErr = ps.str(fv, "ad_format", true)
			seen |= 4
		case "country":
			ev.Country, fieldErr = ps.str(fv, "country", true)
			seen |= 8
		case "device":
			ev.Device, fieldErr = ps.str(fv, "device", true)
		case "event_type":
			ev.EventType, fieldErr = ps.str(fv, "event_type", true)
			seen |= 16
		case "revenue":
			ev.RevenueMicros, fieldErr = micros(fv, "revenue")
			seen |= 32
		case "bid_price":
			if fv.Type() != fastjson.TypeNull {
				ev.BidMicros, fieldErr = micros(fv, "bid_price")
			}
		}
	})
	if fieldErr != nil {
		return ev, fieldErr
	}
	for i, name := range []string{"event_id", "timestamp", "ad_format", "country", "event_type", "revenue"} {
		if seen&(1<<i) == 0 {
			return ev, invalid("missing field %s", name)
		}
	}
	if ev.EventID == "" {
		return ev, invalid("event_id: empty")
	}
	if ev.Time, err = ParseTime(ts); err != nil {
		return ev, err
	}
	f, ok := adFormats[ev.AdFormat]
	if !ok {
		return ev, invalid("ad_format %q: want banner, interstitial or rewarded_video", truncate(ev.AdFormat))
	}
	ev.AdFormat = f
	if err := checkToken("country", ev.Country, 16); err != nil {
		return ev, err
	}
	if err := checkToken("event_type", ev.EventType, 64); err != nil {
		return ev, err
	}
	return ev, nil
}

// str reads a string field; interned fields (low-cardinality dimensions) are
// shared so that aggregation keys do not allocate per event.
func (ps *Parser) str(v *fastjson.Value, name string, intern bool) (string, error) {
	if v.Type() != fastjson.TypeString {
		return "", invalid("%s: not a string", name)
	}
	b := v.GetStringBytes()
	if !intern {
		return string(b), nil
	}
	if s, ok := ps.intern[string(b)]; ok {
		return s, nil
	}
	if ps.intern == nil {
		ps.intern = make(map[string]string)
	}
	if len(ps.intern) > 4096 { // bound memory against hostile input
		clear(ps.intern)
	}
	s := string(b)
	ps.intern[s] = s
	return s, nil
}

func checkToken(name, s string, max int) error {
	if s == "" {
		return invalid("%s: empty", name)
	}
	if len(s) > max {
		return invalid("%s: longer than %d bytes", name, max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return invalid("%s %q: only letters, digits, '_' and '-' are allowed", name, truncate(s))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// micros converts a non-negative JSON number to exact micro-units (rounding
// half up past the sixth decimal).
func micros(v *fastjson.Value, name string) (int64, error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, invalid("%s: not a number", name)
	}
	m, err := DecimalToMicros(v.MarshalTo(nil))
	if err != nil {
		return 0, invalid("%s: %v", name, err)
	}
	return m, nil
}

// DecimalToMicros converts a decimal number's text (JSON syntax) to micro-units.
func DecimalToMicros(b []byte) (int64, error) {
	if len(b) > 0 && b[0] == '-' {
		if allZero(b[1:]) {
			return 0, nil
		}
		return 0, errors.New("negative")
	}
	var intPart, frac int64
	var fracDigits int
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		intPart = intPart*10 + int64(b[i]-'0')
		if intPart > MaxRevenueMicros/1_000_000 {
			return 0, errors.New("too large")
		}
	}
	if i == 0 {
		return 0, errors.New("not a decimal number")
	}
	roundUp := false
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			switch {
			case fracDigits < 6:
				frac = frac*10 + int64(b[i]-'0')
				fracDigits++
			case fracDigits == 6:
				roundUp = b[i] >= '5'
				fracDigits++
			}
		}
	}
	if i < len(b) { // exponent form: exact enough through float64 for money
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errors.New("not a decimal number")
		}
		if f > MaxRevenueMicros/1_000_000 {
			return 0, errors.New("too large")
		}
		return int64(math.Round(f * 1e6)), nil
	}
	for d := min(fracDigits, 6); d < 6; d++ {
		frac *= 10
	}
	m := intPart*1_000_000 + frac
	if roundUp {
		m++
	}
	if m > MaxRevenueMicros {
		return 0, errors.New("too large")
	}
	return m, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// ParseTime parses an RFC 3339 timestamp; the fraction and the zone are
// optional (no zone means UTC), and a space may stand for the 'T'.
func ParseTime(b []byte) (time.Time, error) {
	s := string(b)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			t = t.UTC()
			if t.Before(minTime) || t.After(maxTime) {
				return time.Time{}, invalid("timestamp %q: outside 1970..2105", truncate(s))
			}
			return t, nil
		}
	}
	return time.Time{}, invalid("timestamp %q: not RFC 3339", truncate(s))
}
