package main

import (
	"strings"
	"testing"
)

// A topic of 16 partitions or more fills the default 32 slots with its
// tails: the worker sizes itself from the partitions, or refuses a set
// number that is too small, saying why.
func TestActivitySlots(t *testing.T) {
	if n, err := activitySlots(false, 32, map[string]int{"ad-events": 4}); err != nil || n != 32 {
		t.Errorf("4 partitions: %d, %v; want the default 32", n, err)
	}
	if n, err := activitySlots(false, 32, map[string]int{"ad-events": 16, "other": 8}); err != nil || n != 52 {
		t.Errorf("24 partitions: %d, %v; want 52", n, err)
	}
	if n, err := activitySlots(true, 64, map[string]int{"ad-events": 16}); err != nil || n != 64 {
		t.Errorf("set to 64 for 16 partitions: %d, %v", n, err)
	}
	_, err := activitySlots(true, 32, map[string]int{"ad-events": 16})
	if err == nil || !strings.Contains(err.Error(), "36") || !strings.Contains(err.Error(), "ad-events: 16") {
		t.Errorf("set to 32 for 16 partitions: %v; want a refusal naming the 36 needed and the topic", err)
	}
}

// A worker that tails many partitions gets the room their tails hold, so
// that its GC does not run without pause under the limit.
func TestMemoryLimit(t *testing.T) {
	if got := memoryLimit(nil); got != baseMemory {
		t.Errorf("no schedule: %d MiB, want %d", got>>20, baseMemory>>20)
	}
	if got := memoryLimit(map[string]int{"ad-events": 48, "other": 16}); got != 448<<20 {
		t.Errorf("64 partitions: %d MiB, want 448", got>>20)
	}
}
