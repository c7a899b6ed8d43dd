# rtbpipe developer targets. The local stack (ClickHouse, Temporal dev server,
# localkafka, optional worker) runs without Docker: see scripts/stack.sh.
SHELL := /bin/bash
GO    ?= go

.PHONY: help demo test test-cluster bench bench-analysis chaos up up-no-worker down wipe status stack-install build vet fmt-check

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

demo: ## the main job, bounded: stack + worker + schedule, generator for 3 minutes, analysis tables, verify
	scripts/demo.sh

test: ## gofmt, vet, unit tests, then end-to-end tests on real servers (installs and starts the stack)
	scripts/test.sh

test-cluster: ## the ClickHouse cluster's end-to-end tests alone (two shards + ZooKeeper, started by scripts/stack.sh up cluster)
	scripts/stack.sh up --no-worker
	scripts/stack.sh up cluster
	RTB_E2E=1 RTB_E2E_CLUSTER=rtbpipe RTB_E2E_CLUSTER_ADDRS="$${RTB_CLUSTER_ADDRS:-127.0.0.1:9101,127.0.0.1:9102}" \
		$(GO) test -count=1 -timeout 20m -v -run 'Cluster' ./e2e/

bench: ## benchmark vs a bare Kafka read and ClickHouse's Kafka engine, and live latency (BENCH_ARGS="--events 5000000 ...")
	scripts/stack.sh up --no-worker
	$(GO) run ./bench $(BENCH_ARGS)

bench-analysis: ## time the analysis reads over 30 days of synthetic history at 20,000 events/s (ANALYSIS_ARGS="--days 7 ...")
	scripts/stack.sh up --no-worker
	$(GO) run ./bench/analysis $(ANALYSIS_ARGS)

chaos: ## chaos soak: the live pipeline under worker kills, server restarts, broker stalls, leader moves, network faults; exact? (CHAOS_ARGS="--duration 6m --rate 3000 ...")
	scripts/stack.sh up --no-worker
	$(GO) run ./chaos $(CHAOS_ARGS)

up: ## start the local stack (installs what is missing; starts ./worker if it builds)
	scripts/stack.sh up

up-no-worker: ## start ClickHouse, Temporal and Kafka only
	scripts/stack.sh up --no-worker

down: ## stop the local stack (data kept in .local/)
	scripts/stack.sh down

wipe: ## stop the local stack and delete its ClickHouse, Kafka and Temporal data
	scripts/stack.sh down --wipe

status: ## show each component of the local stack
	scripts/stack.sh status

stack-install: ## install/build the stack's binaries only (ClickHouse via apt, Temporal CLI, localkafka)
	scripts/stack.sh install

build: ## compile every package
	$(GO) build ./...

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if any Go file is not gofmt-ed
	@out="$$(find . \( -name .git -o -name .local -o -name vendor \) -prune -o -name '*.go' -print | xargs -r gofmt -l)"; \
	if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

