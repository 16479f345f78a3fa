# regate — build, test and measure. `make test` is what CI runs.
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 20s
BENCHTIME ?= 2s

.PHONY: build test unit opa-test bench fuzz lint

build:
	$(GO) build -o bin/regate ./cmd/regate

## test: everything CI runs — lint, unit and end-to-end tests with -race, genuine `opa test`.
test: lint unit opa-test

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

opa-test:
	./.opa-test.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./engine/ ./proxy/
	$(GO) run ./test/load $(LOADFLAGS)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzNormalizeHost -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz FuzzParseTarget -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzSOCKS5Handshake -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzClientHelloSNI -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzFraming -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzCleanPath -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzCandidatesMatchRego -fuzztime $(FUZZTIME) ./engine/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
