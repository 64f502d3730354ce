# sipwarden: the commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/sipwarden
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build run test test-unit interop bench bench-cluster bench-scale bench-scale-redis fuzz vet fmt clean deps web

all: build

deps:
	$(GO) mod download

build: deps
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sipwarden

# Starts the server on its embedded defaults: no config file, data in ./data.
run: build
	./$(BIN) serve

# The whole suite: vet, unit and socket tests with the race detector (the
# browser tests drive Debian's chromium, the systemd unit is checked with
# systemd-analyze), then the interop tests against real peers (sipp,
# baresip, linphonec); scripts/install-peers.sh installs every one of them
# from Debian's packages when missing. Every benchmark also runs once, so
# that a broken one fails here rather than in `make bench`.
test: vet test-unit interop

test-unit: deps
	bash scripts/install-peers.sh
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 5m ./...

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet: deps
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

interop: deps
	bash scripts/install-peers.sh
	$(GO) test -tags interop -count=1 -timeout 20m ./interop/

# sipwarden against Kamailio, every scenario, 10 s steps, then the tail and
# overload rows: about 45 minutes. Quick checks:
# BENCHFLAGS='-servers sipwarden -scenarios calls -transports udp -reps 1';
# see docs/bench.md. Then the WebSocket REGISTER row (sipp has no
# WebSocket: a Go client, bench/cmd/wsbench, sipwarden only).
bench: deps
	bash scripts/install-peers.sh --bench
	$(GO) run ./bench/cmd/bench $(BENCHFLAGS)
	$(GO) run ./bench/cmd/wsbench $(WSBENCHFLAGS)

# The cluster's rows (issue 14), about 6 minutes: REGISTER over UDP, one
# node on bbolt vs one node on Redis vs two nodes on one Redis, alternated,
# medians of three searches; redis-server (Debian's) started per step on
# loopback. See docs/bench.md.
bench-cluster: deps
	bash scripts/install-peers.sh
	$(GO) run ./bench/cmd/bench -cluster $(BENCHFLAGS)

# The location table at a million bindings (RSS, restore time, lookup
# latency, sweeper CPU); see docs/bench.md.
bench-scale: deps
	$(GO) run ./bench/cmd/scale $(SCALEFLAGS)

# The same million bindings in a cluster's Redis: Redis memory, a node's
# start-up, lookups (about 1.5 minutes).
bench-scale-redis: deps
	bash scripts/install-peers.sh
	$(GO) run ./bench/cmd/scale -redis $(SCALEFLAGS)

# Each fuzz target for FUZZTIME; see scripts/fuzz.sh.
FUZZTARGETS := digest:FuzzParseCredentials digest:FuzzChallenge registrar:FuzzRegister \
	store:FuzzDecode api:FuzzCredentialCreate api:FuzzConnectionBody \
	stateless:FuzzStreamFraming stateless:FuzzSuspect sipparse:FuzzRequest
fuzz: deps
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME) $(FUZZTARGETS)

# Rebuilds web/phone/jssip.min.js (JsSIP from npm, bundled by esbuild)
# from web/package.json and web/package-lock.json; needs node and npm.
# The bundle is committed: building and running the server need no npm.
web:
	cd web && npm ci --no-audit --no-fund && npm run build

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
