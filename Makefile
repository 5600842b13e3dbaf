# Parley: two commands on a fresh machine.
#   make run    build the wasm client and the server, serve on $(ADDR)
#   make test   vet, native tests, wasm tests under Node, browser tests,
#               the Workers relay under wrangler (make test-workers)
SHELL := /bin/bash
.DEFAULT_GOAL := run

GO      ?= go
ADDR    ?= 127.0.0.1:8080
DATA    ?= data
# Go 1.24+ keeps the js/wasm support files in lib/wasm.
WASMDIR := $(shell $(GO) env GOROOT)/lib/wasm
DIST    := web/dist
SERVER  := bin/parley-server
# Packages that must also pass compiled to wasm (pure Go, no syscall/js).
WASM_TEST_PKGS ?= ./crypto/... ./client/... ./bench/cryptobench
FUZZTIME ?= 20000x

.PHONY: run build wasm server test tidy vet test-native test-wasm test-fuzz fuzz bench-browser \
        chromium bench bench-relay bench-relay-hostile clean workers workers-dev test-workers

run: build
	$(SERVER) -addr '$(ADDR)' -data '$(DATA)'

build: wasm server

# The client: Go compiled to wasm, Go's loader, and brotli/gzip copies made
# once at build time so the server never compresses on the request path.
# WASM_GCFLAGS turns inlining off in Parley's own packages (engine, binding,
# protocol glue), but not in the per-message crypto (crypto/ratchet with its
# X25519 ladder, crypto/senderkey, crypto/wire) nor in the standard library
# or x/crypto: inlined copies cost about 100 KB of the brotli'd client
# (issue 6's 1.2 MB budget), and the per-message path keeps its speed.
# wasmseg then joins the ~70,000 data segments Go's linker writes (one per
# stretch between runs of zeros) into a few: the raw module grows by the
# zeros, the brotli'd one shrinks by about 80 KB (wasm/wasmseg).
# e2e/testbuild.go builds the parleytest client the same way.
WASM_GCFLAGS := -gcflags='github.com/parley-im/parley/...=-l' \
                -gcflags='github.com/parley-im/parley/crypto/ratchet/...=' \
                -gcflags='github.com/parley-im/parley/crypto/senderkey=' \
                -gcflags='github.com/parley-im/parley/crypto/wire='
# The build is reproducible: the same commit built with the same Go release
# gives the same parley.wasm bytes in any directory (-trimpath; no VCS
# stamp or time goes into it), so the hash printed last can be published
# with a release and compared with the one a browser shows (README,
# "Checking the client"; TestReproducibleClientBuild builds two clones).
SHA256 := $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo 'shasum -a 256')
wasm:
	@mkdir -p $(DIST)
	GOOS=js GOARCH=wasm $(GO) build -trimpath $(WASM_GCFLAGS) -ldflags='-s -w' -o $(DIST)/parley.wasm ./wasm
	$(GO) run ./wasm/cmd/wasmseg $(DIST)/parley.wasm
	cp $(WASMDIR)/wasm_exec.js $(DIST)/wasm_exec.js
	$(GO) run ./server/cmd/precompress $(DIST)
	@echo "client SHA-256 $$($(SHA256) $(DIST)/parley.wasm | cut -d' ' -f1) ($$($(GO) env GOVERSION)): publish it with a release; Settings shows the hash of the client a browser runs"

# The server embeds index.html and web/ (including web/dist), so it is built
# after the wasm.
server: wasm
	@mkdir -p bin
	$(GO) build -trimpath -o $(SERVER) ./server/cmd/parley-server

test: tidy vet build chromium test-native test-wasm test-fuzz test-workers
	@echo "make test: all passed"

# go.mod and go.sum say exactly what the code imports, here and in the
# worker's module: direct requirements unmarked, nothing unused.
tidy:
	$(GO) mod tidy -diff
	cd workers && $(GO) mod tidy -diff

vet:
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./wasm/... $(WASM_TEST_PKGS)

# Native tests include e2e/, which drives Debian's chromium against the
# embedded assets built above, and injects axe-core (pinned in
# e2e/package-lock.json, installed by e2e-deps) into the pages it checks.
# go test's -timeout is per package binary and only catches hangs: the whole
# make test took 7.5 min on a quiet 2-core machine, but e2e's browser tests
# alone took 21 min at a load average of 20, so the deadline leaves room
# for a busy machine and still ends a hang.
test-native: e2e-deps
	$(GO) test -count=1 -timeout 25m ./...

# What the browser tests inject into pages under test, never served to
# users: axe-core at the exact version of e2e/package-lock.json.
.PHONY: e2e-deps
e2e-deps: e2e/node_modules/.package-lock.json
e2e/node_modules/.package-lock.json: e2e/package-lock.json
	@command -v npm >/dev/null || { echo "make e2e-deps: npm is needed for the browser tests' axe-core; install Node.js with npm and retry"; exit 1; }
	cd e2e && npm ci --no-audit --no-fund

test-wasm:
	PATH="$(WASMDIR):$$PATH" GOOS=js GOARCH=wasm $(GO) test -count=1 -timeout 10m $(WASM_TEST_PKGS)

# Every fuzz target runs briefly in make test (a count of executions: no
# wall-clock deadline to race, see scripts/fuzz.sh) and for 60 s in make fuzz.
test-fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	./scripts/fuzz.sh 60s

chromium:
	@./scripts/ensure-chromium.sh

bench:
	./bench/crypto.sh

bench-relay:
	./bench/relay.sh

# Issue 14's combined flood (items 1-4 from 100 loopback addresses) against
# the real server binary: RSS, /healthz and a legitimate pair throughout.
bench-relay-hostile: server
	./bench/relay.sh hostile

# Issue 6's targets in headless Chromium (the release wasm): receive time
# with a browser and with a native sender, navigation to ready and to the
# chat list with 1,000 messages, and the start-up milestones; 5 runs each.
bench-browser: wasm chromium
	$(GO) test -run '^$$' -bench 'BrowserClient|BrowserReceiveNative|BootPhases' -benchtime 5x -timeout 30m ./e2e

# Lighthouse accessibility and best-practices scores (each must be >= 95)
# against a local server; installs lighthouse@12.2.3 into ~/.cache once.
.PHONY: lighthouse
lighthouse: server
	./scripts/lighthouse.sh

# The relay on Cloudflare Workers (workers/, README "Deploying on Cloudflare
# Workers"): the client's static assets with their _headers, the Go worker
# (wasm, via syumai/workers), and wrangler from workers/package-lock.json.
WRANGLER      := cd workers && WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false ./node_modules/.bin/wrangler
# workers/ is its own module (syumai/workers stays out of go.mod) that uses
# this checkout through a replace; -mod=mod lets a dependency added here
# reach it without a manual tidy there.
WORKERS_GO    := cd workers && GOFLAGS=-mod=mod
WORKERS_PORT  ?= 8787
WORKERS_STATE ?= .wrangler/state

workers: wasm workers/node_modules/.package-lock.json
	$(WORKERS_GO) $(GO) run ./cmd/assets -out public
	$(WORKERS_GO) $(GO) run github.com/syumai/workers/cmd/workers-assets-gen -mode=go -o build
	$(WORKERS_GO) GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o build/app.wasm .
	@echo "worker: $$(wc -c < workers/build/app.wasm) bytes wasm, $$(gzip -9c workers/build/app.wasm | wc -c) gzipped"

workers/node_modules/.package-lock.json: workers/package-lock.json
	@command -v npm >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=3)?0:1)' || \
		{ echo "make workers: Node.js >= 20.3 with npm is needed for wrangler (found: $$(node --version 2>/dev/null || echo none)); install it and retry"; exit 1; }
	cd workers && npm ci --no-audit --no-fund

# Runs the worker locally (workerd, offline) on 127.0.0.1:$(WORKERS_PORT),
# with D1, R2 and the Durable Objects kept in workers/$(WORKERS_STATE).
workers-dev: workers
	$(WRANGLER) d1 migrations apply DB --local --persist-to $(WORKERS_STATE)
	$(WRANGLER) dev --local --ip 127.0.0.1 --port $(WORKERS_PORT) --persist-to $(WORKERS_STATE) \
		--var ORIGIN:http://127.0.0.1:$(WORKERS_PORT)

# The same tests against the Go relay and the worker under wrangler dev
# --local (about a minute): relay conformance with its error codes, the
# engine's headline scenario, and the worker's local figures.
test-workers: workers
	$(WORKERS_GO) $(GO) vet ./wranglertest ./cmd/...
	$(WORKERS_GO) GOOS=js GOARCH=wasm $(GO) vet .
	$(WORKERS_GO) $(GO) test -count=1 -timeout 5m -v ./wranglertest

clean:
	rm -rf $(DIST) bin workers/build workers/public
