package sink

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/event"
)

// A dead letter stores at most MaxDeadLetterPayload bytes of its payload
// (its start), with the full payload's length and SHA-256, so that a
// record cut short can still be identified.
func TestDeadLetterPayloadTruncated(t *testing.T) {
	for _, n := range []int{0, 1, 100, MaxDeadLetterPayload - 1, MaxDeadLetterPayload, MaxDeadLetterPayload + 1, 5 << 20} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i*7 + i/251)
		}
		sum := sha256.Sum256(payload)
		d := DeadLetter{Topic: "ads", Partition: 3, Offset: 42, Slot: time.Unix(60, 0), Reason: "malformed JSON"}
		d.SetPayload(payload)
		keep := min(n, MaxDeadLetterPayload)
		switch {
		case !bytes.Equal(d.Payload, payload[:keep]):
			t.Fatalf("%d bytes: stored %d bytes, want the first %d", n, len(d.Payload), keep)
		case d.PayloadBytes != uint64(n):
			t.Fatalf("%d bytes: PayloadBytes %d", n, d.PayloadBytes)
		case d.PayloadSHA256 != hex.EncodeToString(sum[:]):
			t.Fatalf("%d bytes: PayloadSHA256 %q, want %x", n, d.PayloadSHA256, sum)
		case d.Truncated() != (n > MaxDeadLetterPayload):
			t.Fatalf("%d bytes: Truncated() = %v", n, d.Truncated())
		case d.Topic != "ads" || d.Offset != 42 || d.Reason != "malformed JSON":
			t.Fatalf("SetPayload changed other fields: %+v", d)
		}
		if n > 0 {
			payload[0]++ // the record's buffer is reused by the reader
			if d.Payload[0] == payload[0] {
				t.Fatalf("%d bytes: the stored payload shares the record's memory", n)
			}
		}
	}
}

// The hash of an empty payload is SHA-256's of nothing, not empty: the
// empty string is the column's default for rows written before it existed.
func TestDeadLetterEmptyPayloadHash(t *testing.T) {
	var d DeadLetter
	d.SetPayload(nil)
	if d.PayloadSHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" || d.PayloadBytes != 0 || len(d.Payload) != 0 {
		t.Fatalf("%+v", d)
	}
}

// A record's Kafka timestamp is stored as a DateTime: one before 1970 or
// past what DateTime holds (microseconds sent as milliseconds: the year
// 58,000) is stored at the nearest end of its range, never wrapped.
func TestClampTime(t *testing.T) {
	for _, c := range []struct{ in, want time.Time }{
		{time.Time{}, time.Unix(0, 0).UTC()},
		{time.UnixMilli(-5), time.Unix(0, 0).UTC()},
		{time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)},
		{time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.UnixMilli(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC).UnixMicro()), event.EndTime.Add(-time.Second)},
		{event.EndTime, event.EndTime.Add(-time.Second)},
	} {
		if got := ClampTime(c.in); !got.Equal(c.want) {
			t.Errorf("ClampTime(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
