// Package sink holds the rows a batch writes besides its partials: dead
// letters (records that could not be parsed or failed validation) and the
// raw archive's events, buffered column by column. Where they go is
// internal/chstore's; the batch protocol (internal/batch) sees it through an
// interface.
package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
	"github.com/rtbpipe/rtbpipe/internal/ledger"
)

// DeadLetter is a record that could not be parsed or failed validation.
//
// Its payload is stored cut to MaxDeadLetterPayload bytes: an invalid
// record may be megabytes, and a batch buffers its dead letters before it
// writes them. PayloadBytes and PayloadSHA256 (the full payload's length
// and SHA-256) still identify the record; Kafka keeps it whole at Offset
// until its retention. SetPayload is the one place that applies the rule.
type DeadLetter struct {
	Topic     string
	Partition int32
	Offset    int64
	Slot      time.Time
	LogTime   time.Time
	Reason    string
	Payload   []byte // the payload's first MaxDeadLetterPayload bytes at most
	// PayloadBytes is the full payload's length, PayloadSHA256 its
	// SHA-256, lower-case hex.
	PayloadBytes  uint64
	PayloadSHA256 string
}

// MaxDeadLetterPayload bounds the payload bytes a dead letter stores.
const MaxDeadLetterPayload = 64 << 10

// SetPayload stores a copy of payload's first MaxDeadLetterPayload bytes in
// d, with the full payload's length and SHA-256. It keeps no reference to
// payload (a reader's buffer, reused).
func (d *DeadLetter) SetPayload(payload []byte) {
	sum := sha256.Sum256(payload)
	d.Payload = append([]byte(nil), payload[:min(len(payload), MaxDeadLetterPayload)]...)
	d.PayloadBytes = uint64(len(payload))
	d.PayloadSHA256 = hex.EncodeToString(sum[:])
}

// Truncated says whether the stored payload is shorter than the record's.
func (d *DeadLetter) Truncated() bool { return uint64(len(d.Payload)) < d.PayloadBytes }

// RawBuffer collects events for the raw archive column by column, so that
// a flush is one columnar insert with no per-row reflection.
type RawBuffer struct {
	ts, logTime, slot                   []time.Time
	evType, user, country, format, camp []string
	eventID, device, topic              []string
	bid, rev                            []float64
	revMicros, bidMicros, offset        []int64
	partition                           []int32
	version                             []uint64
}

// RawColumns are the archive's columns, in the order of Columns.
const RawColumns = "timestamp, event_type, user_id, country, ad_format, campaign_id, bid_price, revenue, event_id, device," +
	" revenue_micros, bid_micros, topic, kafka_partition, kafka_offset, slot, log_time, version"

// Len is the number of buffered events.
func (r *RawBuffer) Len() int { return len(r.offset) }

// Offsets are the buffered events' offsets, in the order added.
func (r *RawBuffer) Offsets() []int64 { return r.offset }

// Add buffers one event with its Kafka coordinates.
func (r *RawBuffer) Add(id ledger.BatchID, offset int64, logTime time.Time, ev *event.Event) {
	r.ts = append(r.ts, ev.Time)
	r.evType = append(r.evType, ev.EventType)
	r.user = append(r.user, ev.UserID)
	r.country = append(r.country, ev.Country)
	r.format = append(r.format, ev.AdFormat)
	r.camp = append(r.camp, ev.CampaignID)
	r.bid = append(r.bid, float64(ev.BidMicros)/1e6)
	r.rev = append(r.rev, float64(ev.RevenueMicros)/1e6)
	r.eventID = append(r.eventID, ev.EventID)
	r.device = append(r.device, ev.Device)
	r.revMicros = append(r.revMicros, ev.RevenueMicros)
	r.bidMicros = append(r.bidMicros, ev.BidMicros)
	r.topic = append(r.topic, id.Topic)
	r.partition = append(r.partition, id.Partition)
	r.offset = append(r.offset, offset)
	r.slot = append(r.slot, id.Slot)
	r.logTime = append(r.logTime, ClampTime(logTime))
}

// Columns returns the buffered columns in the order of RawColumns, every
// row stamped with version.
func (r *RawBuffer) Columns(version uint64) []any {
	r.version = r.version[:0]
	for range r.offset {
		r.version = append(r.version, version)
	}
	return []any{r.ts, r.evType, r.user, r.country, r.format, r.camp, r.bid, r.rev, r.eventID, r.device,
		r.revMicros, r.bidMicros, r.topic, r.partition, r.offset, r.slot, r.logTime, r.version}
}

// Reset empties the buffer, keeping its memory.
func (r *RawBuffer) Reset() {
	*r = RawBuffer{ts: r.ts[:0], logTime: r.logTime[:0], slot: r.slot[:0], evType: r.evType[:0],
		user: r.user[:0], country: r.country[:0], format: r.format[:0], camp: r.camp[:0], eventID: r.eventID[:0],
		device: r.device[:0], topic: r.topic[:0], bid: r.bid[:0], rev: r.rev[:0], revMicros: r.revMicros[:0],
		bidMicros: r.bidMicros[:0], offset: r.offset[:0], partition: r.partition[:0], version: r.version[:0]}
}

// ClampTime maps a time ClickHouse's DateTime cannot hold to the nearest
// end of its range: the zero time (unknown) and any before 1970 to the Unix
// epoch, DateTime's zero; any past event.EndTime (a record stamped in
// microseconds taken for milliseconds) to the second before it, where
// DateTime would wrap it to some date in the past.
func ClampTime(t time.Time) time.Time {
	switch {
	case t.Before(time.Unix(0, 0)):
		return time.Unix(0, 0).UTC()
	case !t.Before(event.EndTime):
		return event.EndTime.Add(-time.Second)
	}
	return t.UTC()
}

// RawOffsets is what a batch's offsets hold in the raw archive.
type RawOffsets struct {
	Events                     uint64
	DeadLetters                uint64
	MinEventTime, MaxEventTime time.Time
	Late, Early                uint64
}
