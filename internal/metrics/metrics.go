// Package metrics names rtbpipe's Prometheus metrics. They are recorded
// through Temporal's metrics handler: by workflows replay-safely
// (workflow.GetMetricsHandler) and by activities (activity.GetMetricsHandler),
// so that one scrape of the worker (worker/metrics.go, RTB_METRICS_ADDR)
// holds them beside the Temporal SDK's own.
package metrics

// rtbpipe's metrics (tags in brackets; every metric also carries the Temporal
// SDK's: namespace, task_queue, workflow_type, activity_type...). On the
// scrape, counters end in _total and timers are histograms in seconds
// (_seconds_bucket, _sum, _count).
const (
	Events        = "rtb_events"                  // valid events counted by done batches [topic, partition]
	DeadLetters   = "rtb_dead_letters"            // dead letters of done batches [topic, partition]
	Skipped       = "rtb_skipped_offsets"         // offsets Kafka proved it will not deliver: aborted, compacted [topic, partition]
	Markers       = "rtb_control_markers"         // transaction markers [topic, partition]
	BatchDuration = "rtb_batch_duration"          // a done batch's run, seconds [topic]
	Lag           = "rtb_consumer_lag"            // offsets: high watermark minus the end of the latest plan, when planned [topic, partition]
	SlotLatency   = "rtb_slot_close_latency"      // minute end to slot closed, seconds [topic]
	Findings      = "rtb_reconciliation_findings" // findings of reconciliation checks [topic, kind]
	Repairs       = "rtb_reconciliation_repairs"  // slots rerun by reconciliation [topic]
)
