package workflows

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// What the Temporal UI shows of a run: a one-line summary in the workflow
// list, fixed when the run starts (StaticSummary), and a one-line current
// details that tells the outcome once known.

// minuteFormat is how summaries write a slot's minute.
const minuteFormat = "2006-01-02 15:04Z"

// SlotSummary is the workflow list's line of a slot run: which minute of
// which topic, and who started it ("scheduled", "backfill", ...).
func SlotSummary(topic string, slot time.Time, why string) string {
	return fmt.Sprintf("slot %s · %s · %s", slot.UTC().Format(minuteFormat), topic, why)
}

// printer writes counts with thousands separators (12,345).
var printer = message.NewPrinter(language.English)

// count writes n things, "1 dead letter" or "12,345 events".
func count(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return printer.Sprintf("%d %s", n, many)
}

// Line is the slot run's outcome in one line: "done · slot 2026-11-24
// 10:05Z · 4 partitions · 12,345 events · 3 dead letters", with what went
// wrong when it failed.
func (r SlotResult) Line(outcome string, err error) string {
	parts := map[int32]bool{}
	for _, b := range r.Batches {
		parts[b.Partition] = true
	}
	f := []string{outcome, "slot " + r.Slot.UTC().Format(minuteFormat), count(uint64(len(parts)), "partition", "partitions"),
		count(r.Events, "event", "events"), count(r.DeadLetters, "dead letter", "dead letters")}
	if r.LateEvents > 0 {
		f = append(f, count(r.LateEvents, "late event", "late events"))
	}
	if r.Skipped > 0 {
		f = append(f, count(r.Skipped, "skipped offset", "skipped offsets"))
	}
	if r.PlanWait > 0 {
		f = append(f, "waited "+r.PlanWait.D().Round(time.Millisecond).String()+" for idle partitions")
	}
	if r.Note != "" {
		f = append(f, r.Note)
	}
	if err != nil {
		f = append(f, oneLine(err.Error()))
	}
	return strings.Join(f, " · ")
}

// oneLine keeps the first line of s, at most 300 bytes of it.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
