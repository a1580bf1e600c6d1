# hookd: build, test and benchmark.
#
#   make test    every test, with the real components they need (Node
#                packages, versitygw for S3, Chromium, PostgreSQL) installed and started
#                on loopback by the recipes below, and stopped afterwards.
#   make fuzz    every fuzz target for FUZZTIME (60s) each; `make test`
#                runs each for FUZZTIME_SHORT (3s) through fuzz-short.
#   make bench   the benchmark harness (see bench/README.md).

GO      ?= go
# Built test components (versitygw) are kept here between runs; set
# HOOKD_CACHE to a directory the machine keeps to share it between clones.
CACHE   := $(or $(HOOKD_CACHE),$(CURDIR)/.cache)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# RSA signing dominates delivery; Go's BoringCrypto backend signs RS256
# about 2.4 times faster than pure Go on amd64 and arm64 (needs cgo and gcc).
# CRYPTO=go builds with the pure Go implementation instead.
CRYPTO  ?= boringcrypto
ifeq ($(CRYPTO),boringcrypto)
RELEASE_ENV := GOEXPERIMENT=boringcrypto CGO_ENABLED=1
endif
export GOFLAGS := -buildvcs=false

.PHONY: build test test-go test-deps node-deps versitygw chromium postgres fuzz fuzz-short bench vet fmt clean

build:
	$(RELEASE_ENV) $(GO) build -ldflags "-X main.version=$(VERSION)" -o hookd .

## test: the whole suite. HOOKD_REQUIRE_EXTERNAL=1 turns a missing external
## component into a failure instead of a skip. The end-to-end tests then
## run again with every hookd on PostgreSQL (HOOKD_E2E_STORE=postgres), and
## the packages that run goroutines of their own (RACE_PKGS) under the
## race detector.
RACE_PKGS := ./blobsink/ ./delivery/ ./httpapi/ ./jobs/ ./store/bolt/ ./store/postgres/
test: test-deps fuzz-short
	HOOKD_REQUIRE_EXTERNAL=1 HOOKD_CACHE=$(CACHE) bash .ci/with-versitygw.sh \
		$(GO) test -count=1 -timeout 14m ./...
	HOOKD_REQUIRE_EXTERNAL=1 HOOKD_E2E_STORE=postgres HOOKD_CACHE=$(CACHE) bash .ci/with-versitygw.sh \
		$(GO) test -count=1 -timeout 10m ./e2e/
	HOOKD_REQUIRE_EXTERNAL=1 HOOKD_CACHE=$(CACHE) bash .ci/with-versitygw.sh \
		$(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)

test-deps: node-deps versitygw chromium postgres

# Each prints one line per component: what it installed or built, or that
# it was already there, and how long that took.
node-deps:
	@bash .ci/node-deps.sh

versitygw:
	@bash .ci/versitygw-install.sh "$(CACHE)"

chromium:
	@bash .ci/chromium.sh

postgres:
	@bash .ci/postgres.sh

## fuzz: each fuzz target (package:name) in turn, from its seed corpus in
## the package's testdata/fuzz/<name>/, where a failing input is written.
## Each package's instrumented test binary is built once, then run per
## target (what `go test -fuzz` does, without a link per target).
FUZZ_TARGETS := \
	./httpapi:FuzzIntakeJSON ./httpapi:FuzzIntakeNDJSON \
	./httpapi:FuzzSubscriptionCreate ./httpapi:FuzzSubscriptionPatch ./httpapi:FuzzFilter \
	./httpapi:FuzzListQuery ./httpapi:FuzzDownloadHeaders ./httpapi:FuzzTokenForm \
	./cli:FuzzPublishRead ./store/bolt:FuzzEventRecord
FUZZTIME       ?= 60s
FUZZTIME_SHORT ?= 3s

fuzz:
	@set -e; bin=$$(mktemp -d); trap 'rm -rf "$$bin"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; exe="$$bin/$$(echo "$$pkg" | tr -c 'a-z0-9' _).test"; \
		[ -x "$$exe" ] || $(GO) test -c -fuzz=. -o "$$exe" "$$pkg"; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		cache="$$($(GO) env GOCACHE)/fuzz/$$($(GO) list "$$pkg")"; \
		(cd "$$pkg" && "$$exe" -test.run='^$$' -test.fuzz="^$$name\$$" -test.fuzztime=$(FUZZTIME) -test.fuzzcachedir="$$cache"); \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

bench:
	$(RELEASE_ENV) $(GO) run ./bench $(BENCHFLAGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf hookd bench/out e2e/testdata/artifacts
