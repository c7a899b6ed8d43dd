// Package workflows holds rtbpipe's Temporal workflows. They are
// deterministic: every read of Kafka or ClickHouse is an activity.
package workflows

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Workflow IDs are deterministic and readable, so that the Temporal UI
// tells what a run was for and one slot never runs twice at once. They are
// all built here.

// idMinute is how a minute is written in IDs.
const idMinute = "2006-01-02T15:04Z"

// SlotWorkflowID names the run of one slot of a topic.
func SlotWorkflowID(topic string, slot time.Time) string {
	return fmt.Sprintf("slot-%s-%s", topic, slot.UTC().Format(idMinute))
}

// PlannerWorkflowID names the planner of a topic: at most one runs at a
// time, which serialises the writing of new plans.
func PlannerWorkflowID(topic string) string { return "planner-" + topic }

// BackfillID names the backfill of a range: a second backfill of the same
// range cannot start while one runs.
func BackfillID(topic string, from, to time.Time) string {
	return fmt.Sprintf("backfill-%s-%s-%s", topic, from.UTC().Format(idMinute), to.UTC().Format(idMinute))
}

// ReconcileID names an on-demand reconciliation of a range.
func ReconcileID(topic string, from, to time.Time) string {
	return fmt.Sprintf("reconcile-%s-%s-%s", topic, from.UTC().Format(idMinute), to.UTC().Format(idMinute))
}

// ScheduleID names the every-minute schedule of a topic.
func ScheduleID(topic string) string { return "slots-" + topic }

// ScheduleTopic is the topic of a slot schedule's ID (ScheduleID), if it is one.
func ScheduleTopic(id string) (string, bool) {
	topic, ok := strings.CutPrefix(id, "slots-")
	return topic, ok && topic != ""
}

// ReconcileScheduleID names a topic's reconciliation schedule.
func ReconcileScheduleID(topic string) string { return "reconcile-" + topic }

// ScheduledWorkflowID is the prefix of the workflows the schedule starts
// (Temporal appends the scheduled time).
func ScheduledWorkflowID(topic string) string { return "scheduled-slot-" + topic }

// ScheduledReconcileWorkflowID is the prefix of the workflows the
// reconciliation schedule starts (Temporal appends the scheduled time).
func ScheduledReconcileWorkflowID(topic string) string {
	return "scheduled-" + ReconcileScheduleID(topic)
}

// UIURL links to a workflow's runs in the Temporal UI at base (its address,
// e.g. http://127.0.0.1:8233) in namespace; "" when there is no UI.
func UIURL(base, namespace, id string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/" + url.PathEscape(id)
}
