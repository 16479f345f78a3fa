# regate — build, test and measure. `make test` is what CI runs.
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 20s
BENCHTIME ?= 2s
# CROSS are the GOOS/GOARCH targets `make cross` vets (which type-checks
# every package and test); CROSS_BUILD those it also builds the binary for
# (a build costs most of a cold run). linux/amd64 is the native build of
# `make lint` and `make unit`.
CROSS       ?= darwin/arm64 darwin/amd64 windows/amd64 linux/arm64
CROSS_BUILD ?= darwin/arm64 windows/amd64

.PHONY: build test unit opa-test bench fuzz lint cross

build:
	$(GO) build -o bin/regate ./cmd/regate

## test: everything CI runs — lint, cross-compilation, unit and end-to-end tests with -race, genuine `opa test`.
test: lint cross unit opa-test

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

opa-test:
	./.opa-test.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./engine/ ./proxy/ ./internal/secrets/
	$(GO) run ./test/load $(LOADFLAGS)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzNormalizeHost -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz FuzzParseTarget -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzSOCKS5Handshake -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzClientHelloSNI -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzFraming -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzCleanPath -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzClassifyFirst -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzCandidatesMatchRego -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz FuzzSwap -fuzztime $(FUZZTIME) ./internal/secrets/
	$(GO) test -run '^$$' -fuzz FuzzAnswer -fuzztime $(FUZZTIME) ./internal/isolate/fakedns/
	$(GO) test -run '^$$' -fuzz FuzzLeaf -fuzztime $(FUZZTIME) ./internal/tlsca/
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./internal/declogread/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## cross: for each of $(CROSS), vet every package (which type-checks the
## test files too), and build the binary for $(CROSS_BUILD), with cgo off.
## Nothing runs there.
cross:
	@set -e; for t in $(CROSS); do \
		echo "cross $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) vet $(PKGS); \
		case " $(CROSS_BUILD) " in *" $$t "*) \
			GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/regate ;; \
		esac; \
	done
