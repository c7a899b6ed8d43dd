#!/usr/bin/env bash
# rtbpipe's demo (make demo): the main job, bounded. Brings up the local stack
# with a worker, applies the schema, creates a fresh topic and its schedule,
# runs the generator at the prototype's rate for a few minutes, waits for the
# last minute to be processed, prints the prototype's analysis tables,
# verifies ClickHouse against the generator's manifest, and shows the run's
# throughput and lag from the stack's Prometheus.
#
# Before the live run, an hour of history with an injected anomaly (ANOMALY,
# the generator's --anomaly) shows anomaly detection on the dashboard.
#
# Settings (environment): RATE (events/s, default 80), DURATION (default 3m),
# PARTITIONS (4), LATE (fraction of late events, 0.05), MAX_LATENESS (5m),
# MALFORMED (fraction of malformed records, 0.005), TOPIC (default: a fresh
# ad-events-demo-<time> topic, so that verify compares one run exactly), KEEP_SCHEDULE=1
# to leave the topic's schedule running afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RATE="${RATE:-80}"
DURATION="${DURATION:-3m}"
PARTITIONS="${PARTITIONS:-4}"
LATE="${LATE:-0.05}"
MAX_LATENESS="${MAX_LATENESS:-5m}"
MALFORMED="${MALFORMED:-0.005}"
TOPIC="${TOPIC:-ad-events-demo-$(date -u +%Y%m%d-%H%M%S)}"
export RTB_KAFKA_TOPIC="$TOPIC"
BIN="$ROOT/.local/bin"
MANIFEST="$ROOT/.local/demo/$TOPIC.manifest.json"
HISTORY_MANIFEST="$ROOT/.local/demo/$TOPIC.history.manifest.json"

step() { printf '\n== %s\n' "$*"; }

step "local stack and worker"
scripts/stack.sh up
mkdir -p "$BIN" "$(dirname "$MANIFEST")"
go build -o "$BIN/starter" ./starter
go build -o "$BIN/generator" ./generator

step "schema, topic $TOPIC ($PARTITIONS partitions), schedule"
"$BIN/starter" setup --partitions "$PARTITIONS"
if [[ "${KEEP_SCHEDULE:-0}" != 1 ]]; then
	trap '"$BIN/starter" schedule delete >/dev/null 2>&1 || true' EXIT
fi

# The live run starts at the next whole minute; before it, an hour of history
# at the same rate (synthetic log times, produced in seconds), with an anomaly
# 45 minutes in: US clicks drop to a tenth for 2 minutes. Anomaly scoring
# needs half an hour of baseline; the first slot processes the history.
live="$(date -u -d "@$(( ($(date +%s) / 60 + 1) * 60 ))" +%Y-%m-%dT%H:%M:%SZ)"
history="$(date -u -d "$live - 60 minutes" +%Y-%m-%dT%H:%M:%SZ)"
step "generator: an hour of history from $history at $RATE events/s, with US clicks dropping to 10% at +45m for 2m"
"$BIN/generator" --start "$history" --rate "$RATE" --duration 60m --partitions "$PARTITIONS" \
	--late-fraction "$LATE" --max-lateness "$MAX_LATENESS" --malformed-fraction "$MALFORMED" \
	--anomaly "${ANOMALY:-country=US,clicks=0.1,after=45m,for=2m}" --manifest "$HISTORY_MANIFEST" --progress 30s

# Whole minutes: from $live until $DURATION later (a partial last minute
# would be a true drop of volume, which anomaly detection flags).
seconds() { # 90s, 3m, 1h -> seconds
	case "$1" in
	*s) echo "${1%s}" ;;
	*m) echo $((${1%m} * 60)) ;;
	*h) echo $((${1%h} * 3600)) ;;
	*) echo "DURATION $1: want e.g. 90s, 3m or 1h" >&2 && exit 2 ;;
	esac
}
until="$(date -u -d "@$(($(date -d "$live" +%s) + $(seconds "$DURATION")))" +%Y-%m-%dT%H:%M:%SZ)"
step "generator: $RATE events/s live from $live until $until ($LATE late up to $MAX_LATENESS, $MALFORMED malformed)"
sleep "$(( $(date -d "$live" +%s) - $(date +%s) ))" 2>/dev/null || true
"$BIN/generator" --rate "$RATE" --until "$until" --partitions "$PARTITIONS" \
	--late-fraction "$LATE" --max-lateness "$MAX_LATENESS" --malformed-fraction "$MALFORMED" \
	--manifest "$MANIFEST" --progress 30s

step "waiting for the schedule to process the last minute"
"$BIN/starter" wait --timeout 4m

step "slots (starter status)"
"$BIN/starter" status --limit 6

step "analysis (the prototype's queries, this run's topic)"
"$BIN/starter" report --topic-only

step "verify against the generator's manifest"
"$BIN/starter" verify --manifest "$HISTORY_MANIFEST" --manifest "$MANIFEST"

step "anomalies (scored by every slot; the injected one, and no other)"
"$BIN/starter" anomalies --from "$history" --to "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

step "throughput and lag during the run (Prometheus, scraping the worker)"
"$BIN/starter" metrics --window 10m || echo "(Prometheus not reachable: scripts/stack.sh status)"

step "done"
echo "Dashboard: http://${RTB_DASHBOARD_ADDR:-127.0.0.1:8080}/?topic=$TOPIC&range=21600 (the anomaly is the red band 15 minutes before the live run)"
echo "Temporal UI: ${RTB_TEMPORAL_UI:-http://127.0.0.1:8233}/namespaces/default/workflows?query=WorkflowId+STARTS_WITH+%22slot-$TOPIC%22"
echo "The slot runs are the workflows slot-$TOPIC-<minute>; the schedule was slots-$TOPIC."
echo "Prometheus: ${RTB_PROMETHEUS_URL:-http://127.0.0.1:9090}/graph?g0.range_input=30m&g0.expr=sum(rate(rtb_events_total%7Btopic%3D%22$TOPIC%22%7D%5B1m%5D))"
echo "  (it scrapes the worker's http://${RTB_METRICS_ADDR:-127.0.0.1:9464}/metrics; 'starter metrics' prints throughput, lag and latency)"
echo "Stop the stack with: make down"
