#!/usr/bin/env bash
# rtbpipe LOCAL stack, without Docker: for development, tests and the demo only.
#
#   ClickHouse  Debian's clickhouse-server (18.16), own config (deploy/local/clickhouse)
#               and data folder (.local/clickhouse), independent of the system service
#   Temporal    the Temporal CLI's dev server (SQLite in .local/temporal, UI included)
#   Kafka       localkafka (./localkafka, franz-go kfake), data in .local/kafka
#   Prometheus  Debian's prometheus, scraping the workers listed in
#               .local/prometheus/targets/*.json, data in .local/prometheus
#   worker      optional: ./worker built to .local/bin/rtb-worker, started last,
#               metrics on RTB_METRICS_ADDR (127.0.0.1:9464), scraped by Prometheus
#   dashboard   with the worker: `starter dashboard` on RTB_DASHBOARD_ADDR (127.0.0.1:8080)
#   redis       only when RTB_REDIS_ADDR is set: Debian's redis-server there (the
#               dashboard's shared cache), no persistence
#   cluster     only when asked (up cluster): a ClickHouse cluster "rtbpipe" of two shards,
#               clickhouse-1 and clickhouse-2 (Debian's clickhouse-server, one replica each,
#               deploy/local/clickhouse/cluster.xml), and the zookeeper they need (Debian's
#               zookeeper 3.8), data in .local/clickhouse-1, -2, .local/zookeeper
#
# Usage: scripts/stack.sh install
#        scripts/stack.sh up     [--no-worker] [component...]
#        scripts/stack.sh down   [--wipe]      [component...]
#        scripts/stack.sh status
#        scripts/stack.sh env    (prints the RTB_* exports the stack uses)
# Components: clickhouse temporal kafka prometheus worker dashboard redis, and
# cluster = zookeeper clickhouse-1 clickhouse-2. Everything is idempotent; state lives
# under <repo>/.local (bin, run = pidfiles, logs, and one data folder per server).
#
# Environment (same defaults as the Go code):
#   RTB_KAFKA_BROKERS      127.0.0.1:9092   (the first broker is the one started)
#   RTB_CLICKHOUSE_ADDR    127.0.0.1:9000   (native protocol)
#   RTB_TEMPORAL_ADDRESS   127.0.0.1:7233
#   RTB_CLICKHOUSE_HTTP_PORT 8123, RTB_TEMPORAL_UI_PORT 8233, RTB_PROMETHEUS_ADDR 127.0.0.1:9090,
#   RTB_KAFKA_DEFAULT_PARTITIONS 4, RTB_NO_WORKER=1 (same as --no-worker),
#   RTB_STACK_TIMEOUT 60 (seconds to wait for each server to become ready),
#   RTB_ZOOKEEPER_ADDR 127.0.0.1:2181, RTB_CLUSTER_ADDRS 127.0.0.1:9101,127.0.0.1:9102
#   (the cluster's shards; HTTP ports 8124, 8125 and interserver 9011, 9012),
#   RTB_CLICKHOUSE_MALLOC_CONF thp:always,metadata_thp:always (jemalloc's MALLOC_CONF for
#   every ClickHouse server started; empty: jemalloc's defaults).
# Network: only apt (ClickHouse, Prometheus) and the Go module proxy (Temporal CLI build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
BIN="$LOCAL/bin"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"

TEMPORAL_CLI_VERSION="v1.5.1"
TIMEOUT="${RTB_STACK_TIMEOUT:-60}"

KAFKA_ADDR="${RTB_KAFKA_BROKERS:-127.0.0.1:9092}"
KAFKA_ADDR="${KAFKA_ADDR%%,*}"
KAFKA_ADDR="${KAFKA_ADDR// /}"
CH_ADDR="${RTB_CLICKHOUSE_ADDR:-127.0.0.1:9000}"
CH_HTTP_PORT="${RTB_CLICKHOUSE_HTTP_PORT:-8123}"
TEMPORAL_ADDR="${RTB_TEMPORAL_ADDRESS:-127.0.0.1:7233}"
TEMPORAL_UI_PORT="${RTB_TEMPORAL_UI_PORT:-8233}"
KAFKA_PARTITIONS="${RTB_KAFKA_DEFAULT_PARTITIONS:-4}"
PROM_ADDR="${RTB_PROMETHEUS_ADDR:-127.0.0.1:9090}"
METRICS_ADDR="${RTB_METRICS_ADDR:-127.0.0.1:9464}"
DASHBOARD_ADDR="${RTB_DASHBOARD_ADDR:-127.0.0.1:8080}"
# Debian's ClickHouse 18.16 links the system's jemalloc: with transparent
# huge pages (the kernel's "madvise" mode) its inserts take a third less CPU,
# most of it the page faults of fresh column buffers (perf, README).
CH_MALLOC_CONF="${RTB_CLICKHOUSE_MALLOC_CONF-thp:always,metadata_thp:always}"
TARGETS="$LOCAL/prometheus/targets"

COMPONENTS=(clickhouse temporal kafka prometheus worker dashboard)
REDIS_ADDR="${RTB_REDIS_ADDR:-}"
[[ -n "$REDIS_ADDR" ]] && COMPONENTS+=(redis)
ZK_ADDR="${RTB_ZOOKEEPER_ADDR:-127.0.0.1:2181}"
CLUSTER_ADDRS="${RTB_CLUSTER_ADDRS:-127.0.0.1:9101,127.0.0.1:9102}"
CH1_ADDR="${CLUSTER_ADDRS%%,*}"
CH2_ADDR="${CLUSTER_ADDRS##*,}"
CLUSTER=(zookeeper clickhouse-1 clickhouse-2)

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

host_of() { printf '%s' "${1%:*}"; }
port_of() { printf '%s' "${1##*:}"; }

for a in "$KAFKA_ADDR" "$CH_ADDR" "$TEMPORAL_ADDR" "$PROM_ADDR" "$METRICS_ADDR" "$DASHBOARD_ADDR" "$ZK_ADDR" "$CH1_ADDR" "$CH2_ADDR"; do
	[[ "$a" =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "address '$a' is not host:port"
done

addr_of() {
	case "$1" in
	clickhouse) printf '%s' "$CH_ADDR" ;;
	temporal) printf '%s' "$TEMPORAL_ADDR" ;;
	kafka) printf '%s' "$KAFKA_ADDR" ;;
	prometheus) printf '%s' "$PROM_ADDR" ;;
	worker) printf '%s' "$METRICS_ADDR" ;;
	dashboard) printf '%s' "$DASHBOARD_ADDR" ;;
	redis) printf '%s' "$REDIS_ADDR" ;;
	zookeeper) printf '%s' "$ZK_ADDR" ;;
	clickhouse-1) printf '%s' "$CH1_ADDR" ;;
	clickhouse-2) printf '%s' "$CH2_ADDR" ;;
	esac
}

# --- processes ---------------------------------------------------------------

pidfile() { printf '%s/%s.pid' "$RUN" "$1"; }
clear_state() { rm -f "$(pidfile "$1")" "$RUN/$1.addr"; }

# our_pid NAME: prints the pid of the component if its pidfile names a live
# process of ours (its command line mentions this repo's .local folder).
our_pid() {
	local f pid
	f="$(pidfile "$1")"
	[[ -s "$f" ]] || return 1
	pid="$(tr -dc '0-9' <"$f")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$LOCAL" || return 1
	printf '%s' "$pid"
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# port_owner PORT: "name pid N" of the listener on PORT, if ss can tell.
port_owner() {
	command -v ss >/dev/null 2>&1 || return 0
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n1 |
		sed -E 's/users:\(\("([^"]*)",pid=([0-9]*)/\1 pid \2/' || true
}

# require_free NAME HOST PORT: fail clearly when a port we need is taken.
require_free() {
	local name="$1" host="$2" port="$3" owner hint=""
	port_open "$host" "$port" || return 0
	owner="$(port_owner "$port")"
	if [[ "$name" == clickhouse* && "$owner" == clickhouse* ]]; then
		if tr '\0' ' ' <"/proc/${owner##* }/cmdline" 2>/dev/null | grep -q '/etc/clickhouse-server/'; then
			hint=" It is the system ClickHouse service (Debian package, /etc/clickhouse-server, /var/lib/clickhouse),"
		else
			hint=" It is another clickhouse-server, not this stack's,"
		fi
		hint+=" which the local stack does not use:
  stop it (system service: 'systemctl disable --now clickhouse-server' or 'service clickhouse-server stop'),
  or run the stack on other ports, e.g. RTB_CLICKHOUSE_ADDR=127.0.0.1:19000 RTB_CLICKHOUSE_HTTP_PORT=18123."
	fi
	die "$name: $host:$port is already in use${owner:+ by $owner} (not started by this stack).$hint"
}

healthy() {
	local h p
	case "$1" in
	clickhouse | clickhouse-[12])
		h="$(addr_of "$1")"
		clickhouse-client --host "$(host_of "$h")" --port "$(port_of "$h")" \
			--connect_timeout 2 -q 'SELECT 1' >/dev/null 2>&1
		;;
	zookeeper)
		# Serving sessions, not only running: ruok answers imok while the
		# server still loads its data, and a ClickHouse server started then
		# fails its handshake and exits (its replicated tables need one).
		# shellcheck disable=SC2016 # expanded by the inner bash
		[[ "$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"; printf stat >&3; cat <&3' \
			"$(host_of "$ZK_ADDR")" "$(port_of "$ZK_ADDR")" 2>/dev/null)" == *"Mode: "* ]]
		;;
	temporal)
		timeout 10 "$BIN/temporal" workflow list --address "$TEMPORAL_ADDR" --namespace default \
			--limit 1 >/dev/null 2>&1
		;;
	kafka)
		h="$(host_of "$KAFKA_ADDR")" p="$(port_of "$KAFKA_ADDR")"
		port_open "$h" "$p"
		;;
	prometheus)
		curl -sf --max-time 2 "http://$PROM_ADDR/-/ready" >/dev/null 2>&1
		;;
	worker) our_pid worker >/dev/null ;;
	dashboard)
		curl -sf --max-time 2 "http://$DASHBOARD_ADDR/" >/dev/null 2>&1
		;;
	redis)
		redis-cli -h "$(host_of "$REDIS_ADDR")" -p "$(port_of "$REDIS_ADDR")" ping 2>/dev/null | grep -q PONG
		;;
	esac
}

log_tail() {
	local f="$LOGS/$1.log" n
	[[ -f "$f" ]] || return 0
	n="$(grep -n '^=== .* starting ' "$f" | tail -n 1 | cut -d: -f1 || true)"
	printf -- '--- last lines of %s (this start) ---\n' "$f" >&2
	tail -n "+${n:-1}" "$f" | tail -n 25 >&2 || true
	if [[ "$1" == clickhouse* && -s "$LOGS/$1-server.err.log" ]]; then
		printf -- '--- last lines of %s ---\n' "$LOGS/$1-server.err.log" >&2
		tail -n 15 "$LOGS/$1-server.err.log" >&2
	fi
	printf -- '---\n' >&2
}

# spawn NAME CMD...: start CMD detached (own session, immune to hangups),
# output appended to .local/logs/NAME.log, pid in .local/run/NAME.pid.
spawn() {
	local name="$1" pid
	shift
	mkdir -p "$RUN" "$LOGS"
	printf '=== %s starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$LOGS/$name.log"
	(cd "$ROOT" && exec setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null) &
	pid=$!
	printf '%s\n' "$pid" >"$(pidfile "$name")"
	addr_of "$name" >"$RUN/$name.addr"
}

# addr_mismatch NAME: warn when a running component was started on another
# address than the environment now asks for.
addr_mismatch() {
	local rec
	rec="$(cat "$RUN/$1.addr" 2>/dev/null)" || return 0
	[[ "$rec" == "$(addr_of "$1")" ]] && return 0
	warn "$1 was started on $rec, but the environment now says $(addr_of "$1"): 'scripts/stack.sh down $1' first to move it"
}

# wait_ready NAME [exited]: bounded wait until healthy; on failure show the
# log tail. With "exited", a server that exits during startup returns 1
# (its caller may start it again) instead of stopping the script.
wait_ready() {
	local name="$1" deadline=$((SECONDS + TIMEOUT))
	while ! healthy "$name"; do
		# Only "alive" here: until the spawned shell has exec'd the server,
		# its command line is still this script's (our_pid would say no).
		if ! kill -0 "$(tr -dc '0-9' <"$(pidfile "$name")" 2>/dev/null)" 2>/dev/null; then
			clear_state "$name"
			log_tail "$name"
			[[ "${2:-}" == exited ]] && return 1
			die "$name exited during startup (log: $LOGS/$name.log)"
		fi
		if ((SECONDS >= deadline)); then
			log_tail "$name"
			die "$name not ready on $(addr_of "$name") after ${TIMEOUT}s (still running as pid $(our_pid "$name"); log: $LOGS/$name.log)"
		fi
		sleep 0.5
	done
}

# --- install -----------------------------------------------------------------

as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

clickhouse_server_bin() {
	if [[ -x /usr/sbin/clickhouse-server ]]; then
		printf '%s' /usr/sbin/clickhouse-server
	elif command -v clickhouse-server >/dev/null 2>&1; then
		command -v clickhouse-server
	else
		return 1
	fi
}

install_clickhouse() {
	local missing=() p
	for p in clickhouse-server clickhouse-client; do
		pkg_installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
	say "installing ${missing[*]} (apt)..."
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
	# The Debian package enables and starts its own service on /var/lib/clickhouse,
	# ports 9000/8123. Ours is independent; say so if that one now holds our ports.
	if port_open "$(host_of "$CH_ADDR")" "$(port_of "$CH_ADDR")"; then
		warn "the clickhouse-server package started the system service on port $(port_of "$CH_ADDR");" \
			"the local stack needs that port: 'systemctl disable --now clickhouse-server' (or set RTB_CLICKHOUSE_ADDR)"
	fi
}

install_temporal() {
	local gobin
	[[ -x "$BIN/temporal" ]] && return 0
	mkdir -p "$BIN"
	gobin="$(go env GOBIN)"
	[[ -n "$gobin" ]] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
	if [[ -x "$gobin/temporal" ]] && "$gobin/temporal" server start-dev --help >/dev/null 2>&1; then
		say "temporal CLI: copying existing build $gobin/temporal"
		cp "$gobin/temporal" "$BIN/temporal.tmp" && mv "$BIN/temporal.tmp" "$BIN/temporal"
		return 0
	fi
	say "temporal CLI: building github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION (takes ~4 min on 2 cores)..."
	(cd "$ROOT" && GOBIN="$BIN" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION") ||
		die "go install of the Temporal CLI failed"
}

# install_prometheus: Debian's package, without its recommended exporters.
# In a container without systemd its own service does not start; where it
# does, it listens on :9090 and the stack says so (require_free).
install_prometheus() {
	local missing=() p
	for p in prometheus curl; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
	say "installing ${missing[*]} (apt)..."
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

cmd_install() {
	command -v go >/dev/null 2>&1 || die "the Go toolchain is required (see go.mod)"
	mkdir -p "$BIN" "$RUN" "$LOGS"
	install_clickhouse
	install_prometheus
	install_temporal
	(cd "$ROOT" && go build -o "$BIN/localkafka" ./localkafka) || die "building ./localkafka failed"
}

# --- up ----------------------------------------------------------------------

# render_clickhouse_config NAME ADDR HTTP_PORT: the server's config in
# .local/NAME/etc (data in .local/NAME/data, logs .local/logs/NAME-server*.log).
render_clickhouse_config() {
	local name="$1" addr="$2" http="$3" etc="$LOCAL/$1/etc" f
	mkdir -p "$etc" "$LOCAL/$name/data" "$LOGS"
	for f in config.xml users.xml; do
		sed -e "s#@LOGS@#$LOGS#g" -e "s#@NAME@#$name#g" -e "s#@DATA@#$LOCAL/$name#g" \
			-e "s#@LISTEN_HOST@#$(host_of "$addr")#g" \
			-e "s#@TCP_PORT@#$(port_of "$addr")#g" \
			-e "s#@HTTP_PORT@#$http#g" \
			"$ROOT/deploy/local/clickhouse/$f" >"$etc/$f.tmp"
		mv "$etc/$f.tmp" "$etc/$f"
	done
}

start_clickhouse() {
	local bin h
	bin="$(clickhouse_server_bin)" || die "clickhouse-server not found (run: scripts/stack.sh install)"
	h="$(host_of "$CH_ADDR")"
	require_free clickhouse "$h" "$(port_of "$CH_ADDR")"
	require_free clickhouse "$h" "$CH_HTTP_PORT"
	render_clickhouse_config clickhouse "$CH_ADDR" "$CH_HTTP_PORT"
	spawn clickhouse env MALLOC_CONF="$CH_MALLOC_CONF" "$bin" --config-file="$LOCAL/clickhouse/etc/config.xml"
}

install_zookeeper() {
	[[ -f /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null 2>&1 && return 0
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install zookeeper by hand"
	say "installing zookeeper (apt)..."
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q zookeeper >/dev/null ||
		{ as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q zookeeper; }
}

start_zookeeper() {
	install_zookeeper
	require_free zookeeper "$(host_of "$ZK_ADDR")" "$(port_of "$ZK_ADDR")"
	mkdir -p "$LOCAL/zookeeper/data"
	cat >"$LOCAL/zookeeper/zoo.cfg" <<-CFG
		tickTime=2000
		dataDir=$LOCAL/zookeeper/data
		clientPortAddress=$(host_of "$ZK_ADDR")
		clientPort=$(port_of "$ZK_ADDR")
		admin.enableServer=false
		4lw.commands.whitelist=ruok,stat
	CFG
	# zookeeper.jar's manifest names the jars it needs.
	spawn zookeeper java -Xmx256m -cp /usr/share/java/zookeeper.jar \
		org.apache.zookeeper.server.quorum.QuorumPeerMain "$LOCAL/zookeeper/zoo.cfg"
}

# start_shard N: the cluster's server N (shard N, replica chN).
start_shard() {
	local n="$1" name="clickhouse-$1" addr other bin http=$((8123 + $1)) inter=$((9010 + $1))
	addr="$(addr_of "$name")"
	other="$CH1_ADDR"
	[ "$n" = 1 ] && other="$CH2_ADDR"
	bin="$(clickhouse_server_bin)" || die "clickhouse-server not found (run: scripts/stack.sh install)"
	healthy zookeeper || die "$name needs zookeeper, which is not running: scripts/stack.sh up cluster"
	require_free "$name" "$(host_of "$addr")" "$(port_of "$addr")"
	require_free "$name" "$(host_of "$addr")" "$http"
	require_free "$name" "$(host_of "$addr")" "$inter"
	render_clickhouse_config "$name" "$addr" "$http"
	mkdir -p "$LOCAL/$name/etc/config.d"
	sed -e "s#@SHARD@#0$n#g" -e "s#@REPLICA@#ch$n#g" -e "s#@INTERSERVER_PORT@#$inter#g" \
		-e "s#@LISTEN_HOST@#$(host_of "$addr")#g" \
		-e "s#@ZK_HOST@#$(host_of "$ZK_ADDR")#g" -e "s#@ZK_PORT@#$(port_of "$ZK_ADDR")#g" \
		-e "s#@SHARD1_HOST@#$(host_of "$CH1_ADDR")#g" -e "s#@SHARD1_PORT@#$(port_of "$CH1_ADDR")#g" \
		-e "s#@SHARD2_HOST@#$(host_of "$CH2_ADDR")#g" -e "s#@SHARD2_PORT@#$(port_of "$CH2_ADDR")#g" \
		-e "s#@OWN_HOST@#$(host_of "$addr")#g" -e "s#@OWN_PORT@#$(port_of "$addr")#g" \
		-e "s#@OTHER_HOST@#$(host_of "$other")#g" -e "s#@OTHER_PORT@#$(port_of "$other")#g" \
		"$ROOT/deploy/local/clickhouse/cluster.xml" >"$LOCAL/$name/etc/config.d/cluster.xml"
	spawn "$name" env MALLOC_CONF="$CH_MALLOC_CONF" "$bin" --config-file="$LOCAL/$name/etc/config.xml"
}

start_temporal() {
	local h
	h="$(host_of "$TEMPORAL_ADDR")"
	require_free temporal "$h" "$(port_of "$TEMPORAL_ADDR")"
	require_free temporal "$h" "$TEMPORAL_UI_PORT"
	mkdir -p "$LOCAL/temporal"
	# SQLite's default rollback journal creates, fsyncs and deletes a file
	# per transaction: a third of the dev server's CPU in a backlog (perf).
	# WAL appends instead; synchronous=normal survives a crash of the
	# server (not of the machine: fine for a local stack).
	spawn temporal "$BIN/temporal" server start-dev \
		--ip "$h" --port "$(port_of "$TEMPORAL_ADDR")" --ui-port "$TEMPORAL_UI_PORT" \
		--db-filename "$LOCAL/temporal/temporal.db" --namespace default --log-level warn \
		--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
		--search-attribute RtbTopic=Keyword --search-attribute RtbSlot=Datetime \
		--search-attribute RtbOutcome=Keyword --search-attribute RtbEvents=Int
}

start_kafka() {
	require_free kafka "$(host_of "$KAFKA_ADDR")" "$(port_of "$KAFKA_ADDR")"
	spawn kafka "$BIN/localkafka" --addr "$KAFKA_ADDR" --data-dir "$LOCAL/kafka" \
		--default-partitions "$KAFKA_PARTITIONS"
}

start_prometheus() {
	local h
	h="$(host_of "$PROM_ADDR")"
	require_free prometheus "$h" "$(port_of "$PROM_ADDR")"
	mkdir -p "$LOCAL/prometheus/data" "$TARGETS"
	sed -e "s#@LOCAL@#$LOCAL#g" "$ROOT/deploy/local/prometheus/prometheus.yml" >"$LOCAL/prometheus/prometheus.yml.tmp"
	mv "$LOCAL/prometheus/prometheus.yml.tmp" "$LOCAL/prometheus/prometheus.yml"
	spawn prometheus prometheus --config.file="$LOCAL/prometheus/prometheus.yml" \
		--storage.tsdb.path="$LOCAL/prometheus/data" --storage.tsdb.retention.time=7d \
		--web.listen-address="$PROM_ADDR" --log.level=warn
}

# target NAME ADDR: Prometheus scrapes the worker at ADDR (file_sd), as NAME.
target() {
	mkdir -p "$TARGETS"
	printf '[{"targets": ["%s"], "labels": {"instance_name": "%s"}}]\n' "$2" "$1" >"$TARGETS/$1.json.tmp"
	mv "$TARGETS/$1.json.tmp" "$TARGETS/$1.json"
}

# Returns 1 (with a message) when there is no worker to start.
build_worker() {
	local out
	[[ -d "$ROOT/worker" ]] || {
		say "worker skipped: no ./worker directory yet"
		return 1
	}
	if ! out="$(cd "$ROOT" && go build -o "$BIN/rtb-worker" ./worker 2>&1)"; then
		warn "worker skipped: ./worker does not build:"
		printf '%s\n' "$out" | head -n 15 >&2
		return 1
	fi
}

start_worker() {
	local pid
	spawn worker env RTB_KAFKA_BROKERS="${RTB_KAFKA_BROKERS:-$KAFKA_ADDR}" \
		RTB_CLICKHOUSE_ADDR="$CH_ADDR" RTB_TEMPORAL_ADDRESS="$TEMPORAL_ADDR" \
		RTB_METRICS_ADDR="$METRICS_ADDR" \
		"$BIN/rtb-worker"
	sleep 2
	if ! pid="$(our_pid worker)"; then
		clear_state worker
		log_tail worker
		die "worker exited right after start (log: $LOGS/worker.log)"
	fi
	target worker "$METRICS_ADDR"
	say "worker running (pid $pid), log $LOGS/worker.log, metrics http://$METRICS_ADDR/metrics"
}

start_redis() {
	command -v redis-server >/dev/null 2>&1 || {
		say "installing redis-server (apt)..."
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server
	}
	require_free redis "$(host_of "$REDIS_ADDR")" "$(port_of "$REDIS_ADDR")"
	mkdir -p "$LOCAL/redis"
	# A config file under .local, named in the process title (redis-server
	# rewrites its command line), so that the stack knows its own.
	cat >"$LOCAL/redis/redis.conf" <<-CONF
		bind $(host_of "$REDIS_ADDR")
		port $(port_of "$REDIS_ADDR")
		dir $LOCAL/redis
		save ""
		appendonly no
		protected-mode yes
		proc-title-template "{title} {listen-addr} {config-file}"
	CONF
	spawn redis redis-server "$LOCAL/redis/redis.conf"
}

start_dashboard() {
	require_free dashboard "$(host_of "$DASHBOARD_ADDR")" "$(port_of "$DASHBOARD_ADDR")"
	(cd "$ROOT" && go build -o "$BIN/starter" ./starter) || die "dashboard: ./starter does not build"
	spawn dashboard env RTB_KAFKA_BROKERS="${RTB_KAFKA_BROKERS:-$KAFKA_ADDR}" \
		RTB_CLICKHOUSE_ADDR="$CH_ADDR" RTB_TEMPORAL_UI="http://$(host_of "$TEMPORAL_ADDR"):$TEMPORAL_UI_PORT" \
		RTB_REDIS_ADDR="$REDIS_ADDR" "$BIN/starter" dashboard --addr "$DASHBOARD_ADDR"
}

start_component() {
	case "$1" in
	clickhouse-[12]) start_shard "${1#clickhouse-}" ;;
	*) "start_$1" ;;
	esac
}

up_one() {
	local name="$1" pid
	if pid="$(our_pid "$name")"; then
		if [[ "$name" == worker ]]; then
			say "worker already running (pid $pid)"
			return 0
		fi
		addr_mismatch "$name"
		if healthy "$name"; then
			say "$name already running (pid $pid) on $(addr_of "$name")"
			return 0
		fi
		say "$name running (pid $pid) but not ready yet; waiting..."
	else
		clear_state "$name"
		if [[ "$name" == worker ]]; then
			build_worker || return 0
			start_worker
			return 0
		fi
		start_component "$name"
		# ClickHouse 18.16 sometimes aborts as it starts (a glibc assertion,
		# pthread_mutex_lock: seen once in some dozens of starts here): one
		# more try, said so; a second exit stops the script.
		if [[ "$name" == clickhouse* ]] && ! wait_ready "$name" exited; then
			warn "$name exited during startup; starting it once more"
			start_component "$name"
		fi
	fi
	wait_ready "$name"
	say "$name ready on $(addr_of "$name") (pid $(our_pid "$name"))"
}

cmd_up() {
	local no_worker="${RTB_NO_WORKER:-0}" want=() c
	while (($#)); do
		case "$1" in
		--no-worker) no_worker=1 ;;
		clickhouse | temporal | kafka | prometheus | worker | dashboard | redis | zookeeper | clickhouse-1 | clickhouse-2) want+=("$1") ;;
		cluster) want+=("${CLUSTER[@]}") ;;
		*) die "up: unknown argument '$1'" ;;
		esac
		shift
	done
	case "${no_worker,,}" in
	"" | 0 | false | no) no_worker=0 ;;
	*) no_worker=1 ;;
	esac
	if ((${#want[@]} == 0)); then
		want=(clickhouse temporal kafka prometheus)
		[[ -n "$REDIS_ADDR" ]] && want+=(redis)
		want+=(worker dashboard)
	fi
	cmd_install
	for c in "${want[@]}"; do
		if [[ "$c" == worker || "$c" == dashboard ]]; then
			if ((no_worker)); then
				say "$c skipped (--no-worker)"
				continue
			fi
			local s
			for s in clickhouse temporal kafka; do
				healthy "$s" || die "$c needs $s, which is not running: scripts/stack.sh up"
			done
		fi
		up_one "$c"
	done
	[[ " ${want[*]} " == *" temporal "* ]] && say "Temporal UI: http://$(host_of "$TEMPORAL_ADDR"):$TEMPORAL_UI_PORT"
	[[ " ${want[*]} " == *" prometheus "* ]] && say "Prometheus: http://$PROM_ADDR (scrapes the workers in $TARGETS)"
	if [[ " ${want[*]} " == *" dashboard "* ]] && ((!no_worker)); then say "dashboard: http://$DASHBOARD_ADDR"; fi
	return 0
}

# --- down --------------------------------------------------------------------

stop_one() {
	local name="$1" pid i
	if ! pid="$(our_pid "$name")"; then
		clear_state "$name"
		say "$name not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do # up to 30 s
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name (pid $pid) did not stop within 30s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	clear_state "$name"
	say "$name stopped (pid $pid)"
}

cmd_down() {
	local wipe=0 want=() c
	while (($#)); do
		case "$1" in
		--wipe) wipe=1 ;;
		clickhouse | temporal | kafka | prometheus | worker | dashboard | redis | zookeeper | clickhouse-1 | clickhouse-2) want+=("$1") ;;
		cluster) want+=(clickhouse-2 clickhouse-1 zookeeper) ;;
		*) die "down: unknown argument '$1'" ;;
		esac
		shift
	done
	if ((${#want[@]} == 0)); then
		want=(dashboard worker redis prometheus kafka temporal clickhouse)
		for c in clickhouse-2 clickhouse-1 zookeeper; do
			[[ -e "$(pidfile "$c")" || -d "$LOCAL/$c" ]] && want+=("$c")
		done
	fi
	for c in "${want[@]}"; do
		stop_one "$c"
		if [[ "$c" == worker ]]; then rm -f "$TARGETS/worker.json"; fi
	done
	if ((wipe)); then
		for c in "${want[@]}"; do
			case "$c" in
			clickhouse | temporal | kafka | prometheus | zookeeper | clickhouse-1 | clickhouse-2)
				rm -rf "${LOCAL:?}/$c"
				say "$c data wiped ($LOCAL/$c)"
				;;
			esac
		done
	fi
}

# --- status ------------------------------------------------------------------

cmd_status() {
	local c pid state health addr rc=0 owner
	printf '%-12s %-8s %-8s %-16s %s\n' COMPONENT STATE PID ADDRESS HEALTH
	local all=("${COMPONENTS[@]}")
	for c in "${CLUSTER[@]}"; do
		[[ -e "$(pidfile "$c")" ]] && all+=("$c")
	done
	for c in "${all[@]}"; do
		addr="$(addr_of "$c")"
		if pid="$(our_pid "$c")"; then
			state=running
			addr_mismatch "$c"
			if healthy "$c"; then health=healthy; else
				health=unhealthy
				[[ "$c" == worker || "$c" == dashboard ]] || rc=1
			fi
		else
			state=stopped pid=- health=-
			[[ "$c" == worker || "$c" == dashboard ]] || rc=1
			if [[ "$c" != worker ]] && port_open "$(host_of "$addr")" "$(port_of "$addr")"; then
				owner="$(port_owner "$(port_of "$addr")")"
				health="port in use by another process${owner:+ ($owner)}"
			fi
		fi
		printf '%-12s %-8s %-8s %-16s %s\n' "$c" "$state" "$pid" "$addr" "$health"
	done
	if our_pid temporal >/dev/null; then
		say "Temporal UI: http://$(host_of "$TEMPORAL_ADDR"):$TEMPORAL_UI_PORT"
	fi
	if our_pid prometheus >/dev/null; then
		say "Prometheus: http://$PROM_ADDR"
	fi
	say "logs: $LOGS"
	return "$rc"
}

cmd_env() {
	printf 'export RTB_KAFKA_BROKERS=%q\n' "${RTB_KAFKA_BROKERS:-$KAFKA_ADDR}"
	printf 'export RTB_CLICKHOUSE_ADDR=%q\n' "$CH_ADDR"
	printf 'export RTB_TEMPORAL_ADDRESS=%q\n' "$TEMPORAL_ADDR"
	printf 'export RTB_PROMETHEUS_URL=%q\n' "http://$PROM_ADDR"
	printf 'export RTB_PROMETHEUS_TARGETS=%q\n' "$TARGETS"
}

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

main() {
	local cmd="${1:-}"
	(($#)) && shift
	case "$cmd" in
	install) cmd_install "$@" ;;
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	env) cmd_env ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
