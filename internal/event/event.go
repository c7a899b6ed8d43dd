// Package event parses and validates ad events: one JSON object per Kafka
// record, as DESIGN.md describes them.
package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// AdFormats are the ad formats an event may carry (Parser uses adFormatOf,
// which must agree).
var adFormats = map[string]string{"banner": "banner", "interstitial": "interstitial", "rewarded_video": "rewarded_video"}

// MaxRevenueMicros bounds one event's revenue (one million currency units).
// It does not make sums safe: an Int64 holds 9,223,372 events at the cap, so
// internal/agg checks every sum and reports an overflow instead of wrapping.
const MaxRevenueMicros = 1_000_000 * 1_000_000

// Event times are in [minTime, EndTime): those that ClickHouse's DateTime
// holds, and whose windows, hours and days end where ClickHouse 18.16 still
// reads a time given as a string (a query's bounds): '2106-01-01 00:00:00'
// reads as 0 there.
var (
	minTime = time.Unix(0, 0).UTC()
	// EndTime is the first time past every event time, and past every time
	// the pipeline stores (sink.ClampTime).
	EndTime = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)
)

// The longest identifiers and device an event may carry: a valid event's
// strings live on in the batch's aggregates, its archive rows and the
// parser's cache, so their size must be bounded as a dead letter's is.
const (
	MaxIDBytes     = 512
	MaxDeviceBytes = 256
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
	// SkipIDs leaves EventID, UserID and CampaignID empty (they are still
	// validated): aggregation does not need them, and copying them out of
	// the record is the parser's one allocation per event.
	SkipIDs bool

	intern map[string]string
	recent [256]string // interned strings, by internHash
	buf    []byte      // unescaped strings (and keys) of the record being parsed
}

// The members Parser reads.
const (
	mUnknown = iota
	mEventID
	mTimestamp
	mUserID
	mCampaignID
	mAdFormat
	mCountry
	mDevice
	mEventType // the last string member
	mRevenue
	mBidPrice
)

var memberNames = [...]string{mEventID: "event_id", mTimestamp: "timestamp", mUserID: "user_id",
	mCampaignID: "campaign_id", mAdFormat: "ad_format", mCountry: "country", mDevice: "device",
	mEventType: "event_type", mRevenue: "revenue", mBidPrice: "bid_price"}

// required lists the required members, in the order of "missing field" checks.
var required = [...]int{mEventID, mTimestamp, mAdFormat, mCountry, mEventType, mRevenue}

const requiredMask = 1<<mEventID | 1<<mTimestamp | 1<<mAdFormat | 1<<mCountry | 1<<mEventType | 1<<mRevenue

// member returns the member of a key (mUnknown if none).
func member(key []byte) int {
	switch string(key) {
	case "event_id":
		return mEventID
	case "timestamp":
		return mTimestamp
	case "user_id":
		return mUserID
	case "campaign_id":
		return mCampaignID
	case "ad_format":
		return mAdFormat
	case "country":
		return mCountry
	case "device":
		return mDevice
	case "event_type":
		return mEventType
	case "revenue":
		return mRevenue
	case "bid_price":
		return mBidPrice
	}
	return mUnknown
}

// knownKey recognises the key of a known member, without escapes, and its
// closing quote at b[i:] (after the opening quote); it returns the member and
// the index after the quote, or mUnknown and i. The cases are the keys'
// first 8 bytes, little-endian.
func knownKey(b []byte, i int) (int, int) {
	if len(b)-i < 8 {
		return mUnknown, i
	}
	w := binary.LittleEndian.Uint64(b[i:])
	r := b[i+8:]
	switch w {
	case 0x64695f746e657665: // event_id
		if len(r) >= 1 && r[0] == '"' {
			return mEventID, i + len(`event_id"`)
		}
	case 0x79745f746e657665: // event_ty
		if len(r) >= 3 && string(r[:3]) == `pe"` {
			return mEventType, i + len(`event_type"`)
		}
	case 0x6d617473656d6974: // timestam
		if len(r) >= 2 && string(r[:2]) == `p"` {
			return mTimestamp, i + len(`timestamp"`)
		}
	case 0x2264695f72657375: // user_id"
		return mUserID, i + len(`user_id"`)
	case 0x227972746e756f63: // country"
		return mCountry, i + len(`country"`)
	case 0x6e676961706d6163: // campaign
		if len(r) >= 4 && string(r[:4]) == `_id"` {
			return mCampaignID, i + len(`campaign_id"`)
		}
	case 0x616d726f665f6461: // ad_forma
		if len(r) >= 2 && string(r[:2]) == `t"` {
			return mAdFormat, i + len(`ad_format"`)
		}
	case 0x2265756e65766572: // revenue"
		return mRevenue, i + len(`revenue"`)
	case 0x636972705f646962: // bid_pric
		if len(r) >= 2 && string(r[:2]) == `e"` {
			return mBidPrice, i + len(`bid_price"`)
		}
	default:
		if w&(1<<56-1) == 0x22656369766564 { // device"
			return mDevice, i + len(`device"`)
		}
	}
	return mUnknown, i
}

// Kinds of JSON values, as far as the known members care.
const (
	kindString = iota
	kindNumber
	kindNull
	kindOther // true, false, an object or an array
)

// Parse parses and validates one record's value. Errors are *Invalid; on an
// error the Event is the zero value.
//
// The record must be one JSON object: RFC 8259 syntax as encoding/json checks
// it (strings keep their bytes, even invalid UTF-8), nested at most 300 levels
// deep as fastjson allowed. Members are visited in order: a later duplicate of a
// member replaces the earlier one, the first member of the wrong type is the
// error, and unknown members are skipped whatever their values.
func (ps *Parser) Parse(b []byte) (Event, error) {
	var (
		strs     [mEventType + 1][]byte // the string members' values
		rev, bid int64
		seen     uint // bit m: member m was present
		fieldErr error
	)
	ps.buf = ps.buf[:0]
	i := skipWS(b, 0)
	if i == len(b) || b[i] != '{' {
		return Event{}, notObject(b, i)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return Event{}, syntaxError(b, i, "a string key")
			}
			m, j := knownKey(b, i+1)
			if m == mUnknown {
				key, k, err := ps.key(b, i+1)
				if err != nil {
					return Event{}, err
				}
				m, j = member(key), k
			}
			if i = skipWS(b, j); i >= len(b) || b[i] != ':' {
				return Event{}, syntaxError(b, i, "':'")
			}
			if i = skipWS(b, i+1); i >= len(b) {
				return Event{}, syntaxError(b, i, "a value")
			}
			kind, esc := kindOther, false
			var err error
			switch c := b[i]; {
			case c == '"':
				kind = kindString
				if j = plainRun(b, i+1); j < len(b) && b[j] == '"' {
					j++
				} else {
					j, esc, err = scanString(b, j)
				}
			case c == '-' || c >= '0' && c <= '9':
				kind = kindNumber
				j, err = scanNumber(b, i)
			case c == 'n':
				kind = kindNull
				j, err = literal(b, i, "null")
			default:
				j, err = skipValue(b, i, 2)
			}
			if err != nil {
				return Event{}, err
			}
			raw := b[i:j] // the number's text, or the string's without quotes
			if kind == kindString {
				raw = b[i+1 : j-1]
			}
			if fieldErr == nil {
				seen |= 1 << m
				switch { // as fastjson's Visit did: in order, the first error wins
				case m == mUnknown:
				case m <= mEventType:
					strs[m], fieldErr = ps.str(kind, raw, esc, memberNames[m])
				case m == mRevenue:
					rev, fieldErr = micros(kind, raw, "revenue")
				case m == mBidPrice && kind != kindNull:
					bid, fieldErr = micros(kind, raw, "bid_price")
				}
			}
			if i = skipWS(b, j); i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return Event{}, syntaxError(b, i, "',' or '}'")
		}
	}
	if i = skipWS(b, i); i != len(b) {
		return Event{}, syntaxError(b, i, "the end after the object")
	}
	if fieldErr != nil {
		return Event{}, fieldErr
	}
	if seen&requiredMask != requiredMask {
		for _, m := range required {
			if seen&(1<<m) == 0 {
				return Event{}, invalid("missing field %s", memberNames[m])
			}
		}
	}
	eventID, userID, campaignID := strs[mEventID], strs[mUserID], strs[mCampaignID]
	country, device, eventType := strs[mCountry], strs[mDevice], strs[mEventType]
	if len(eventID) == 0 {
		return Event{}, invalid("event_id: empty")
	}
	switch {
	case len(eventID) > MaxIDBytes:
		return Event{}, invalid("event_id: longer than %d bytes", MaxIDBytes)
	case len(userID) > MaxIDBytes:
		return Event{}, invalid("user_id: longer than %d bytes", MaxIDBytes)
	case len(campaignID) > MaxIDBytes:
		return Event{}, invalid("campaign_id: longer than %d bytes", MaxIDBytes)
	case len(device) > MaxDeviceBytes:
		return Event{}, invalid("device: longer than %d bytes", MaxDeviceBytes)
	}
	t, err := ParseTime(strs[mTimestamp])
	if err != nil {
		return Event{}, err
	}
	format, ok := adFormatOf(strs[mAdFormat])
	if !ok {
		return Event{}, invalid("ad_format %q: want banner, interstitial or rewarded_video", truncate(string(strs[mAdFormat])))
	}
	if err := checkToken("country", country, 16); err != nil {
		return Event{}, err
	}
	if err := checkToken("event_type", eventType, 64); err != nil {
		return Event{}, err
	}
	ev := Event{Time: t, AdFormat: format, Country: ps.interned(country), EventType: ps.interned(eventType),
		RevenueMicros: rev, BidMicros: bid}
	if len(device) > 0 {
		ev.Device = ps.interned(device)
	}
	if ps.SkipIDs {
		return ev, nil
	}
	// One allocation for the three high-cardinality strings.
	var sb strings.Builder
	sb.Grow(len(eventID) + len(userID) + len(campaignID))
	sb.Write(eventID)
	sb.Write(userID)
	sb.Write(campaignID)
	s := sb.String()
	ev.EventID, s = s[:len(eventID)], s[len(eventID):]
	ev.UserID, ev.CampaignID = s[:len(userID)], s[len(userID):]
	return ev, nil
}

// adFormatOf returns the canonical string of an ad format (see adFormats).
func adFormatOf(b []byte) (string, bool) {
	switch string(b) {
	case "banner":
		return "banner", true
	case "interstitial":
		return "interstitial", true
	case "rewarded_video":
		return "rewarded_video", true
	}
	return "", false
}

// str returns a string member's value, unescaped (into ps.buf) if needed.
func (ps *Parser) str(kind int, raw []byte, esc bool, name string) ([]byte, error) {
	if kind != kindString {
		return nil, invalid("%s: not a string", name)
	}
	if !esc {
		return raw, nil
	}
	n := len(ps.buf)
	ps.buf = appendUnescaped(ps.buf, raw)
	return ps.buf[n:len(ps.buf):len(ps.buf)], nil
}

// key scans an object key whose opening quote precedes b[i]; it returns the
// key, unescaped, and the index after the closing quote.
func (ps *Parser) key(b []byte, i int) ([]byte, int, error) {
	if j := plainRun(b, i); j < len(b) && b[j] == '"' {
		return b[i:j], j + 1, nil
	}
	j, esc, err := scanString(b, i)
	if err != nil {
		return nil, 0, err
	}
	k, _ := ps.str(kindString, b[i:j-1], esc, "")
	return k, j, nil
}

// interned returns b as a string shared with earlier records: dimension
// strings (low cardinality) then do not allocate per event. A small cache
// answers before the map.
func (ps *Parser) interned(b []byte) string {
	h := internHash(b)
	if s := ps.recent[h]; s == string(b) {
		return s
	}
	s, ok := ps.intern[string(b)]
	if !ok {
		if ps.intern == nil {
			ps.intern = make(map[string]string)
		}
		if len(ps.intern) > 4096 { // bound memory against hostile input
			clear(ps.intern)
		}
		s = string(b)
		ps.intern[s] = s
	}
	ps.recent[h] = s
	return s
}

// internHash hashes b (a short string, usually) to an index of Parser.recent.
func internHash(b []byte) uint8 {
	var x uint64
	switch n := len(b); {
	case n >= 8:
		x = binary.LittleEndian.Uint64(b) ^ binary.LittleEndian.Uint64(b[n-8:])<<7
	case n >= 4:
		x = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	default:
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
	}
	x ^= uint64(len(b)) << 59
	return uint8((x * 0x9e3779b97f4a7c15) >> 56)
}

func checkToken[T string | []byte](name string, s T, max int) error {
	if len(s) == 0 {
		return invalid("%s: empty", name)
	}
	if len(s) > max {
		return invalid("%s: longer than %d bytes", name, max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return invalid("%s %q: only letters, digits, '_' and '-' are allowed", name, truncate(string(s)))
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

// micros converts a member's value, a non-negative JSON number, to exact
// micro-units (rounding half up past the sixth decimal).
func micros(kind int, raw []byte, name string) (int64, error) {
	if kind != kindNumber {
		return 0, invalid("%s: not a number", name)
	}
	m, err := DecimalToMicros(raw)
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
	if t, ok := parseTimeFast(b); ok {
		return t, nil
	}
	return parseTimeLayouts(b)
}

// parseTimeLayouts is ParseTime through time.Parse, the reference for
// parseTimeFast.
func parseTimeLayouts(b []byte) (time.Time, error) {
	s := string(b)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':' && (s[n-5:n-3] > "23" || s[n-2:] > "59") {
				return time.Time{}, invalid("timestamp %q: offset %s: want hours 00-23 and minutes 00-59", truncate(s), s[n-6:])
			}
			t = t.UTC()
			if t.Before(minTime) || !t.Before(EndTime) {
				return time.Time{}, invalid("timestamp %q: outside 1970-01-01..2105-12-30", truncate(s))
			}
			return t, nil
		}
	}
	return time.Time{}, invalid("timestamp %q: not RFC 3339", truncate(s))
}

var endUnix = EndTime.Unix()

// parseTimeFast parses the usual shape of timestamp,
// YYYY-MM-DD(T| )hh:mm:ss[.fraction][Z|(+|-)hh:mm], within 1970..2105, exactly
// as parseTimeLayouts does. When it returns false, parseTimeLayouts decides
// (rarer shapes time.Parse takes, such as a one-digit hour or a ',' before the
// fraction, and all errors).
func parseTimeFast(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05") || b[4] != '-' || b[7] != '-' || b[10] != 'T' && b[10] != ' ' ||
		b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	century, year := num2(b[0], b[1]), num2(b[2], b[3])
	if century < 0 || year < 0 {
		return time.Time{}, false
	}
	year += century * 100
	month, day := num2(b[5], b[6]), num2(b[8], b[9])
	hour, minute, sec := num2(b[11], b[12]), num2(b[14], b[15]), num2(b[17], b[18])
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if i < len(b) && b[i] == '.' {
		i++
		n := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if n < 9 { // time.Parse ignores digits past the ninth
				nsec = nsec*10 + int(b[i]-'0')
				n++
			}
		}
		if n == 0 {
			return time.Time{}, false
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	offset := 0
	switch len(b) - i {
	case 0:
	case 1:
		if b[i] != 'Z' {
			return time.Time{}, false
		}
	case 6:
		hh, mm := num2(b[i+1], b[i+2]), num2(b[i+4], b[i+5])
		// RFC 3339's offsets: hours 00-23, minutes 00-59 (parseTimeLayouts
		// says so when time.Parse takes more).
		if b[i+3] != ':' || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return time.Time{}, false
		}
		switch offset = (hh*60 + mm) * 60; b[i] {
		case '+':
		case '-':
			offset = -offset
		default:
			return time.Time{}, false
		}
	default:
		return time.Time{}, false
	}
	unix := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	if unix < 0 || unix >= endUnix {
		return time.Time{}, false // parseTimeLayouts says which error
	}
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// num2 returns the value of two decimal digits, or -1.
func num2(a, b byte) int {
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return -1
	}
	return int(a-'0')*10 + int(b-'0')
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch returns the number of days from 1970-01-01 to a date of the
// proleptic Gregorian calendar (year >= 0).
func daysSinceEpoch(year, month, day int) int64 {
	if month <= 2 { // years start in March, so that the leap day is last
		year--
	}
	era := year / 400
	if year < 0 {
		era = (year - 399) / 400
	}
	yoe := year - era*400                     // [0, 399]
	doy := (153*((month+9)%12)+2)/5 + day - 1 // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy    // [0, 146096]
	return int64(era)*146097 + int64(doe) - 719468
}
