// Package workflows holds rtbpipe's Temporal workflows. They are
// deterministic: every read of Kafka or ClickHouse is an activity.
package workflows

import (
	"fmt"
	"time"
)

// Workflow IDs are deterministic and readable, so that the Temporal UI
// tells what a run was for and one slot never runs twice at once.

// SlotWorkflowID names the run of one slot of a topic.
func SlotWorkflowID(topic string, slot time.Time) string {
	return fmt.Sprintf("slot-%s-%s", topic, slot.UTC().Format("2006-01-02T15:04Z"))
}

// PlannerWorkflowID names the planner of a topic: at most one runs at a
// time, which serialises the writing of new plans.
func PlannerWorkflowID(topic string) string { return "planner-" + topic }

// ScheduleID names the every-minute schedule of a topic.
func ScheduleID(topic string) string { return "slots-" + topic }

// ScheduledWorkflowID is the prefix of the workflows the schedule starts
// (Temporal appends the scheduled time).
func ScheduledWorkflowID(topic string) string { return "scheduled-slot-" + topic }
