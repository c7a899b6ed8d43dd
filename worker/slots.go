package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DefaultActivities is the activity slots of a worker whose topics need
// fewer.
const DefaultActivities = 32

// neededActivities is the activity slots the tailing schedules of topics
// (partitions per topic) need on one worker: a tailing batch per partition
// of the minute that runs and of the one that ends (they overlap by about a
// second), and room for the planner, the totals refresh and the anomaly
// scoring, which must never wait behind the tails.
func neededActivities(partitions map[string]int) int {
	return 2*partitionCount(partitions) + 4
}

// partitionCount is the partitions of all the topics.
func partitionCount(partitions map[string]int) int {
	n := 0
	for _, p := range partitions {
		n += p
	}
	return n
}

// activitySlots decides the worker's activity slots: configured when it was
// set (RTB_WORKER_ACTIVITIES or --activities), refused with a message when
// it is too few for the partitions; else DefaultActivities, or what the
// partitions need if that is more.
func activitySlots(set bool, configured int, partitions map[string]int) (int, error) {
	need := neededActivities(partitions)
	if !set {
		return max(DefaultActivities, need), nil
	}
	if configured < need {
		topics := slices.Sorted(maps.Keys(partitions))
		parts := make([]string, len(topics))
		for i, t := range topics {
			parts[i] = fmt.Sprintf("%s: %d", t, partitions[t])
		}
		return 0, fmt.Errorf("RTB_WORKER_ACTIVITIES (--activities) %d is below the %d that the tailing slots of %d partitions need "+
			"(2 per partition + 4; topics %s): planning would wait behind the tails; raise it, or leave it unset to size it from the partitions",
			configured, need, partitionCount(partitions), strings.Join(parts, ", "))
	}
	return configured, nil
}

// The worker's soft memory limit (GOMEMLIMIT overrides it): baseMemory,
// which bounds a backlog however large its slots (README, Performance),
// and tailMemory more for each partition a tailing schedule has it tail.
// A tail holds its fetches, its pending raw rows and an open insert's
// buffers the whole minute: at 64 partitions the worker's live heap was
// 220 MiB, and under a limit of 192 MiB the GC ran without pause and took
// most of the machine's CPU (minute end to windows written: 6.5 s, against
// under 2 s with room).
const (
	baseMemory = 192 << 20
	tailMemory = 4 << 20
)

// memoryLimit is the soft memory limit for a worker that tails the
// partitions of topics.
func memoryLimit(partitions map[string]int) int64 {
	return baseMemory + int64(partitionCount(partitions))*tailMemory
}
