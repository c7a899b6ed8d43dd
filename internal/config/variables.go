package config

import (
	"fmt"
	"slices"
	"strings"
)

// Variables lists every RTB_* environment variable that rtbpipe's programs,
// scripts and tests read (TestVariablesListed keeps it complete): any other
// is a misspelling, which would otherwise leave a setting at its default
// without a word.
func Variables() []string {
	return []string{
		// the connection settings (this package)
		"RTB_KAFKA_BROKERS", "RTB_KAFKA_TOPIC", "RTB_KAFKA_SASL_MECHANISM", "RTB_KAFKA_SASL_USER",
		"RTB_KAFKA_SASL_PASSWORD", "RTB_KAFKA_SASL_PASSWORD_FILE", "RTB_KAFKA_TLS", "RTB_KAFKA_TLS_CA",
		"RTB_KAFKA_TLS_CERT", "RTB_KAFKA_TLS_KEY", "RTB_KAFKA_TLS_SERVER_NAME",
		"RTB_CLICKHOUSE_ADDR", "RTB_CLICKHOUSE_CLUSTER", "RTB_CLICKHOUSE_DATABASE", "RTB_CLICKHOUSE_USER",
		"RTB_CLICKHOUSE_PASSWORD", "RTB_CLICKHOUSE_PASSWORD_FILE", "RTB_CLICKHOUSE_TLS", "RTB_CLICKHOUSE_TLS_CA",
		"RTB_CLICKHOUSE_TLS_CERT", "RTB_CLICKHOUSE_TLS_KEY", "RTB_CLICKHOUSE_TLS_SERVER_NAME",
		"RTB_TEMPORAL_ADDRESS", "RTB_TEMPORAL_NAMESPACE", "RTB_TEMPORAL_API_KEY", "RTB_TEMPORAL_API_KEY_FILE",
		"RTB_TEMPORAL_TLS", "RTB_TEMPORAL_TLS_CA", "RTB_TEMPORAL_TLS_CERT", "RTB_TEMPORAL_TLS_KEY",
		"RTB_TEMPORAL_TLS_SERVER_NAME", "RTB_TASK_QUEUE",
		// the worker
		"RTB_METRICS_ADDR", "RTB_PPROF_ADDR", "RTB_RAW_ARCHIVE", "RTB_MAX_BATCH_OFFSETS", "RTB_WORKER_ACTIVITIES",
		"RTB_WORKER_CONNECT_WAIT", "RTB_WORKER_HEARTBEAT", "RTB_WORKER_READS",
		// the starter
		"RTB_TEMPORAL_UI", "RTB_DASHBOARD_ADDR", "RTB_REDIS_ADDR", "RTB_PROMETHEUS_URL",
		// the local stack (scripts/stack.sh) and docker-compose
		"RTB_CLICKHOUSE_HTTP_PORT", "RTB_CLICKHOUSE_MALLOC_CONF", "RTB_CLUSTER_ADDRS", "RTB_KAFKA_DEFAULT_PARTITIONS",
		"RTB_NO_WORKER", "RTB_PROMETHEUS_ADDR", "RTB_PROMETHEUS_TARGETS", "RTB_STACK_TIMEOUT", "RTB_TEMPORAL_UI_PORT",
		"RTB_ZOOKEEPER_ADDR", "RTB_GRAFANA_CLICKHOUSE_HOST",
		// the tests
		"RTB_E2E", "RTB_E2E_CLUSTER", "RTB_E2E_CLUSTER_ADDRS", "RTB_E2E_DATABASE",
		"RTB_VERIFY_BROKERS", "RTB_VERIFY_MANIFEST", "RTB_VERIFY_TOPIC",
	}
}

// UnknownVariables returns a warning for each RTB_* variable of environ
// (as os.Environ gives it) that rtbpipe does not read, with the nearest name
// it does read.
func UnknownVariables(environ []string) []string {
	known := Variables()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "RTB_") || slices.Contains(known, name) {
			continue
		}
		w := fmt.Sprintf("%s is set, but rtbpipe reads no variable of that name", name)
		best, dist := "", 6 // suggest only a name within a few edits
		for _, k := range known {
			if d := editDistance(name, k); d < dist {
				best, dist = k, d
			}
		}
		if best != "" {
			w += fmt.Sprintf(": did you mean %s?", best)
		}
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
