# Atoll. `make run` runs one node with the demo site; `make test` passes the tests.
GO      ?= go
BIN     := bin/atoll
COMMIT  ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.commit=$(COMMIT)

.PHONY: build run test lint bench bench-quick bench-scale bench-go fuzz chaos clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/atoll

run: build
	./scripts/run.sh

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -parallel 4 -timeout 9m ./...

lint:
	./scripts/check-tree.sh
	$(GO) vet ./...

# Whole-system benchmarks against nginx (bench/README.md); they install
# nginx and wrk with apt-get if missing. BENCHFLAGS passes more flags, e.g.
# BENCHFLAGS='-only serve'.
bench: build
	$(GO) run ./bench/cmd/atoll-bench $(BENCHFLAGS)

bench-quick: build
	$(GO) run ./bench/cmd/atoll-bench -quick $(BENCHFLAGS)

# Platform scale (bench/README.md, "Platform scale"): 100,000 sites of 100
# files on 3 core + 1 edge, then the metadata figures; then the fan-out to
# 1, 10, 30 and 50 edges fed by the leader, and the same 50 edges fed
# through 3 relays (bench/cmd/atoll-fanout -relays). SCALEFLAGS passes more
# flags to atoll-scale, e.g. SCALEFLAGS=-quick (10,000 sites). Each part
# says how long it took (the whole target must stay under 30 minutes on a
# 2-core machine: bench/RESULTS.md has the times).
bench-scale: build
	@t0=$$(date +%s); $(GO) run ./bench/cmd/atoll-scale $(SCALEFLAGS); rc=$$?; \
	echo "bench-scale: atoll-scale took $$(( $$(date +%s) - t0 )) s"; exit $$rc
	@t0=$$(date +%s); $(GO) run ./bench/cmd/atoll-fanout; rc=$$?; \
	echo "bench-scale: atoll-fanout took $$(( $$(date +%s) - t0 )) s"; exit $$rc
	@t0=$$(date +%s); $(GO) run ./bench/cmd/atoll-fanout -edges 50 -relays -relay-fanout 17 -profile 0; rc=$$?; \
	echo "bench-scale: atoll-fanout through relays took $$(( $$(date +%s) - t0 )) s"; exit $$rc

# Go micro-benchmarks (handler allocations, blob store, FSM).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./serve/ ./blobstore/ ./raft/

# Fault tests (cmd/atoll/chaos_e2e_test.go): 3 core + 2 edge real processes
# under deploys and reads while a seeded loop kills, pauses and partitions
# nodes and floods them (a visitor's idle connections on one edge, a tenant's
# abandoned manifests and stalled tar); prints the figures and checks the
# invariants. `make test` runs the
# same test for 20s. Partitions need root and iproute2 (network namespaces);
# without them it runs on loopback without the partition fault. Replay a
# schedule with ATOLL_CHAOS_SEED=<seed printed by a run>.
CHAOS_DURATION ?= 3m
chaos:
	ATOLL_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -timeout 30m -run '^TestChaos$$' -v ./cmd/atoll/

# Each native fuzz target of each package runs for FUZZTIME (go test takes one
# -fuzz target per run); `make test` already runs their seed corpora.
FUZZTIME ?= 20s
fuzz:
	@set -e; for file in $$(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | sort); do \
		pkg=$$(dirname $$file); \
		for t in $$(grep -oE '^func Fuzz[A-Za-z0-9_]+' $$file | sed 's/^func //'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf bin
