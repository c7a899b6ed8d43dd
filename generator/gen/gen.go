// Package gen generates the ad events of rtbpipe's load generator: the Go
// version of the prototype's ad_log_generator (country weights, a click
// rate per ad format of ~25% rewarded_video, ~12% interstitial and ~5%
// banner, the highest revenue per click in the US), plus optional late
// events and malformed records for testing the pipeline.
//
// A Generator is deterministic: the same Config (seed included) and the same
// sequence of log times give the same records, byte for byte. It holds no
// global state and is not safe for concurrent use.
package gen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
)

// Format is an ad format with its share of the events and its click rate
// (the probability that an event of this format is a click).
type Format struct {
	Name   string
	Weight float64
	CTR    float64
}

// Country is a country with its share of the events, its mean revenue per
// click and its mean bid price (CPM), both in micro-units.
type Country struct {
	Code          string
	Weight        float64
	RevenueMicros int64 // mean revenue of a click
	BidMicros     int64 // mean bid price
}

// Device is a device type with its share of the events.
type Device struct {
	Name   string
	Weight float64
}

// Formats are the ad formats and their click rates. The shares are equal,
// as in the prototype's outputs.
var Formats = []Format{
	{"banner", 1.0 / 3, 0.05},
	{"interstitial", 1.0 / 3, 0.12},
	{"rewarded_video", 1.0 / 3, 0.25},
}

// Countries are the countries, their weights and their money. Revenue per
// click follows the prototype's outputs (US ~0.062 ... FR ~0.028).
var Countries = []Country{
	{"US", 0.18, 62_000, 2_400_000},
	{"JP", 0.16, 49_000, 2_000_000},
	{"CA", 0.15, 41_000, 1_700_000},
	{"UK", 0.14, 45_000, 1_800_000},
	{"KR", 0.13, 31_000, 1_300_000},
	{"DE", 0.12, 33_000, 1_500_000},
	{"FR", 0.12, 28_000, 1_200_000},
}

// Devices are the device types.
var Devices = []Device{
	{"ios", 0.42},
	{"android", 0.46},
	{"web", 0.12},
}

// Dimension sizes of the ids.
const (
	Users     = 100_000
	Campaigns = 200
)

// Config configures a Generator.
type Config struct {
	Seed uint64
	// LateFraction of the valid events get an event time earlier than their
	// log time by a uniform random amount in (0, MaxLateness].
	LateFraction float64
	MaxLateness  time.Duration
	// MalformedFraction of the records are bad (see Defects).
	MalformedFraction float64
	// Anomaly, if set, changes a country's or an ad format's clicks for a
	// span of event time: what anomaly detection should see.
	Anomaly *Anomaly
}

// Anomaly multiplies the click probability of the events of one country or
// one ad format whose event time is in [From, To).
type Anomaly struct {
	Country  string  // the country's code, or
	AdFormat string  // the ad format's name
	Clicks   float64 // factor of the click probability: 0.1 drops 90% of the clicks, 3 triples the CTR (at most 1)
	From, To time.Time
}

func (a *Anomaly) validate() error {
	if (a.Country == "") == (a.AdFormat == "") {
		return fmt.Errorf("anomaly: give a country or an ad format (one of them)")
	}
	if a.Country != "" && !slices.ContainsFunc(Countries, func(c Country) bool { return c.Code == a.Country }) {
		return fmt.Errorf("anomaly: unknown country %q", a.Country)
	}
	if a.AdFormat != "" && !slices.ContainsFunc(Formats, func(f Format) bool { return f.Name == a.AdFormat }) {
		return fmt.Errorf("anomaly: unknown ad format %q", a.AdFormat)
	}
	if !(a.Clicks >= 0) || a.Clicks == 1 {
		return fmt.Errorf("anomaly: clicks factor %v: must be positive or 0, and not 1", a.Clicks)
	}
	if !a.From.Before(a.To) {
		return fmt.Errorf("anomaly: its span [%s, %s) is empty", a.From.Format(time.RFC3339), a.To.Format(time.RFC3339))
	}
	return nil
}

// applies says whether the anomaly changes an event of format and country
// at event time t.
func (a *Anomaly) applies(t time.Time, format, country string) bool {
	return a != nil && !t.Before(a.From) && t.Before(a.To) && (format == a.AdFormat || country == a.Country)
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if !(c.LateFraction >= 0 && c.LateFraction <= 1) {
		return fmt.Errorf("late fraction %v: must be in [0, 1]", c.LateFraction)
	}
	if !(c.MalformedFraction >= 0 && c.MalformedFraction <= 1) {
		return fmt.Errorf("malformed fraction %v: must be in [0, 1]", c.MalformedFraction)
	}
	if c.MaxLateness < 0 {
		return fmt.Errorf("max lateness %v: must not be negative", c.MaxLateness)
	}
	if c.LateFraction > 0 && c.MaxLateness < time.Microsecond {
		return fmt.Errorf("late fraction %v needs a max lateness of at least 1µs (got %v)", c.LateFraction, c.MaxLateness)
	}
	if c.Anomaly != nil {
		return c.Anomaly.validate()
	}
	return nil
}

// Record is one generated Kafka record.
type Record struct {
	Value []byte // the record's value; a new slice per record
	// LogTime is the record's Kafka timestamp (µs precision; Kafka keeps ms).
	LogTime time.Time
	// Valid records parse with event.Parser into exactly Event.
	Valid bool
	Event event.Event
	// Delayed: the event time was set before the log time (LateFraction).
	Delayed bool
	// Late: a valid event whose window precedes its log minute (its slot):
	// what the manifest and the pipeline count as late.
	Late bool
	// Defect says what is wrong with a malformed record ("" when valid).
	Defect string
}

// Generator generates records. Not safe for concurrent use.
type Generator struct {
	cfg         Config
	rng         *rand.Rand
	formatCum   []float64
	countryCum  []float64
	deviceCum   []float64
	maxLateUsec int64
}

// New returns a generator; it panics on a Config that fails Validate.
func New(cfg Config) *Generator {
	if err := cfg.Validate(); err != nil {
		panic("gen.New: " + err.Error())
	}
	g := &Generator{
		cfg: cfg,
		// The second PCG word is derived from the seed so that nearby seeds
		// give unrelated streams.
		rng:         rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		maxLateUsec: int64(cfg.MaxLateness / time.Microsecond),
	}
	for _, f := range Formats {
		g.formatCum = appendCum(g.formatCum, f.Weight)
	}
	for _, c := range Countries {
		g.countryCum = appendCum(g.countryCum, c.Weight)
	}
	for _, d := range Devices {
		g.deviceCum = appendCum(g.deviceCum, d.Weight)
	}
	return g
}

func appendCum(cum []float64, w float64) []float64 {
	s := w
	if len(cum) > 0 {
		s += cum[len(cum)-1]
	}
	return append(cum, s)
}

// pick draws an index from cumulative weights.
func (g *Generator) pick(cum []float64) int {
	x := g.rng.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

// draft is an event before encoding.
type draft struct {
	id         [36]byte
	t          time.Time
	user       int
	campaign   int
	format     int
	country    int
	device     int
	click      bool
	revenue    int64
	bid        int64
	delayed    bool
	malformed  bool
	defectDraw float64
}

// Next generates the record logged at logTime (UTC; truncated to µs).
func (g *Generator) Next(logTime time.Time) Record {
	logTime = logTime.UTC().Truncate(time.Microsecond)
	var d draft
	d.malformed = g.cfg.MalformedFraction > 0 && g.rng.Float64() < g.cfg.MalformedFraction
	g.uuid(&d.id)
	d.t = logTime
	if g.cfg.LateFraction > 0 && g.rng.Float64() < g.cfg.LateFraction {
		lateness := 1 + g.rng.Int64N(g.maxLateUsec)
		d.t = logTime.Add(-time.Duration(lateness) * time.Microsecond)
		d.delayed = true
	}
	d.user = 1 + g.rng.IntN(Users)
	d.campaign = 1 + g.rng.IntN(Campaigns)
	d.format = g.pick(g.formatCum)
	d.click = g.rng.Float64() < Formats[d.format].CTR
	d.country = g.pick(g.countryCum)
	d.device = g.pick(g.deviceCum)
	c := &Countries[d.country]
	if f := Formats[d.format]; g.cfg.Anomaly.applies(d.t, f.Name, c.Code) { // draws only inside the anomaly
		switch target := min(1, f.CTR*g.cfg.Anomaly.Clicks); {
		case target < f.CTR && d.click:
			d.click = g.rng.Float64() < target/f.CTR
		case target > f.CTR && !d.click:
			d.click = g.rng.Float64() < (target-f.CTR)/(1-f.CTR)
		}
	}
	if d.click {
		d.revenue = jitter(g.rng, c.RevenueMicros, 0.2)
	}
	d.bid = jitter(g.rng, c.BidMicros, 0.5)

	rec := Record{LogTime: logTime}
	if d.malformed {
		rec.Value, rec.Defect = g.malformed(&d)
		return rec
	}
	rec.Value = appendEvent(make([]byte, 0, 320), &d)
	rec.Valid = true
	rec.Delayed = d.delayed
	// One allocation for the three ids: substrings of one string.
	var ids [64]byte
	b := append(ids[:0], d.id[:]...)
	b = appendID(b, "user_", d.user, 6)
	nUser := len(b)
	b = appendID(b, "campaign_", d.campaign, 3)
	s := string(b)
	rec.Event = event.Event{
		EventID:       s[:len(d.id)],
		Time:          d.t,
		UserID:        s[len(d.id):nUser],
		CampaignID:    s[nUser:],
		AdFormat:      Formats[d.format].Name,
		Country:       c.Code,
		Device:        Devices[d.device].Name,
		EventType:     eventType(d.click),
		RevenueMicros: d.revenue,
		BidMicros:     d.bid,
	}
	rec.Late = event.WindowOf(d.t) < event.WindowOf(logTime)
	return rec
}

// jitter returns mean * U(1-spread, 1+spread), at least 1.
func jitter(rng *rand.Rand, mean int64, spread float64) int64 {
	v := int64(math.Round(float64(mean) * (1 - spread + 2*spread*rng.Float64())))
	return max(v, 1)
}

const hexDigits = "0123456789abcdef"

// uuid writes a random (version 4 shaped) UUID drawn from the generator.
func (g *Generator) uuid(out *[36]byte) {
	var b [16]byte
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	j := 0
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[v>>4], hexDigits[v&0x0f]
		j += 2
	}
}

func eventType(click bool) string {
	if click {
		return "click"
	}
	return "impression"
}

func userID(n int) string     { return string(appendID(nil, "user_", n, 6)) }
func campaignID(n int) string { return string(appendID(nil, "campaign_", n, 3)) }

// appendID appends prefix and n zero-padded to width digits.
func appendID(b []byte, prefix string, n, width int) []byte {
	b = append(b, prefix...)
	var d [20]byte
	s := strconv.AppendInt(d[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// TimeLayout is how event timestamps are written: RFC 3339, µs, UTC ("Z").
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// AppendMicros appends micro-units as a JSON decimal number with at most six
// decimals ("0.0", "0.061234", "1.5").
func AppendMicros(b []byte, m int64) []byte {
	if m < 0 {
		b = append(b, '-')
		m = -m
	}
	b = strconv.AppendInt(b, m/1_000_000, 10)
	b = append(b, '.')
	frac := m % 1_000_000
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for n > 1 && d[n-1] == '0' {
		n--
	}
	return append(b, d[:n]...)
}

// appendEvent encodes a valid event (the fast path: no maps, no reflection).
func appendEvent(b []byte, d *draft) []byte {
	b = append(b, `{"event_id":"`...)
	b = append(b, d.id[:]...)
	b = append(b, `","timestamp":"`...)
	b = d.t.AppendFormat(b, TimeLayout)
	b = append(b, `","user_id":"`...)
	b = appendID(b, "user_", d.user, 6)
	b = append(b, `","campaign_id":"`...)
	b = appendID(b, "campaign_", d.campaign, 3)
	b = append(b, `","ad_format":"`...)
	b = append(b, Formats[d.format].Name...)
	b = append(b, `","country":"`...)
	b = append(b, Countries[d.country].Code...)
	b = append(b, `","device":"`...)
	b = append(b, Devices[d.device].Name...)
	b = append(b, `","event_type":"`...)
	b = append(b, eventType(d.click)...)
	b = append(b, `","revenue":`...)
	b = AppendMicros(b, d.revenue)
	b = append(b, `,"bid_price":`...)
	b = AppendMicros(b, d.bid)
	return append(b, '}')
}

// Defects are the kinds of malformed records, each of which event.Parser
// rejects.
var Defects = []string{
	"truncated JSON",
	"missing field",
	"bad ad_format",
	"negative revenue",
	"bad timestamp",
	"revenue not a number",
	"empty event_id",
	"bad country",
	"not a JSON object",
}

// field is one JSON member of a malformed record, its value already encoded.
type field struct {
	name string
	raw  string
}

// malformed encodes d with one defect. Rare: clarity over speed.
func (g *Generator) malformed(d *draft) ([]byte, string) {
	fields := []field{
		{"event_id", strconv.Quote(string(d.id[:]))},
		{"timestamp", strconv.Quote(d.t.Format(TimeLayout))},
		{"user_id", strconv.Quote(userID(d.user))},
		{"campaign_id", strconv.Quote(campaignID(d.campaign))},
		{"ad_format", strconv.Quote(Formats[d.format].Name)},
		{"country", strconv.Quote(Countries[d.country].Code)},
		{"device", strconv.Quote(Devices[d.device].Name)},
		{"event_type", strconv.Quote(eventType(d.click))},
		{"revenue", string(AppendMicros(nil, d.revenue))},
		{"bid_price", string(AppendMicros(nil, d.bid))},
	}
	set := func(name, raw string) {
		for i := range fields {
			if fields[i].name == name {
				fields[i].raw = raw
			}
		}
	}
	kind := Defects[g.rng.IntN(len(Defects))]
	defect := kind
	switch kind {
	case "truncated JSON":
		b := encodeFields(fields)
		n := len(b)/4 + g.rng.IntN(len(b)*3/4) // cut somewhere before the closing brace
		return b[:n], fmt.Sprintf("%s (%d of %d bytes)", kind, n, len(b))
	case "missing field":
		required := []string{"event_id", "timestamp", "ad_format", "country", "event_type", "revenue"}
		name := required[g.rng.IntN(len(required))]
		for i := range fields {
			if fields[i].name == name {
				fields = append(fields[:i], fields[i+1:]...)
				break
			}
		}
		defect = kind + " " + name
	case "bad ad_format":
		bad := []string{"video", "Banner", "native", "", "rewarded-video", "popup"}
		v := bad[g.rng.IntN(len(bad))]
		set("ad_format", strconv.Quote(v))
		defect = fmt.Sprintf("%s %q", kind, v)
	case "negative revenue":
		set("revenue", string(AppendMicros(nil, -(1+g.rng.Int64N(100_000)))))
	case "bad timestamp":
		ts := d.t.Format(TimeLayout)
		bad := []string{
			strconv.Quote(ts[:5] + "13" + ts[7:]),                              // month 13
			strconv.Quote(d.t.Format("02/01/2006 15:04:05")),                   // not RFC 3339
			strconv.FormatInt(d.t.Unix(), 10),                                  // a number, not a string
			strconv.Quote(d.t.Format("2006-01-02T15:04:05.000000") + "+25:00"), // zone out of range
			strconv.Quote(d.t.AddDate(200, 0, 0).Format(TimeLayout)),           // past 2105
			`"yesterday"`,
			`""`,
		}
		v := bad[g.rng.IntN(len(bad))]
		set("timestamp", v)
		defect = kind + " " + v
	case "revenue not a number":
		set("revenue", strconv.Quote(string(AppendMicros(nil, d.revenue))))
	case "empty event_id":
		set("event_id", `""`)
	case "bad country":
		bad := []string{`""`, `"U S"`, `"Korea, Republic of"`, `null`}
		v := bad[g.rng.IntN(len(bad))]
		set("country", v)
		defect = kind + " " + v
	case "not a JSON object":
		return append(append([]byte{'['}, encodeFields(fields)...), ']'), kind
	}
	return encodeFields(fields), defect
}

func encodeFields(fields []field) []byte {
	b := make([]byte, 0, 320)
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(f.name)
		b = append(b, name...)
		b = append(b, ':')
		b = append(b, f.raw...)
	}
	return append(b, '}')
}
