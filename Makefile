# d2d — see README.md. Every target works on a fresh Debian machine with Go.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
TESTFLAGS ?=

.PHONY: all build demo test lint fuzz bench bench-table deps clean

all: build

build:
	$(GO) build -o bin/d2d ./cmd/d2d

## demo: the headline scenario on the embedded simulated domain (no root, no set-up).
demo:
	$(GO) run ./cmd/d2d demo

## test: installs what the tests need when missing, then runs every test
## and lists the tests a missing kernel feature left out.
test: deps lint
	@GO=$(GO) scripts/test.sh -count=1 -timeout 40m $(TESTFLAGS) $(PKGS)

## deps: Debian and npm packages used by the interoperability tests.
deps:
	@scripts/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@scripts/tidy-check.sh

## fuzz: every fuzz target for FUZZTIME each.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: every benchmark (scale ones once, the rest for BENCHTIME each);
## results in bench/results.json, bench/results.md, bench/*.svg (see BENCHMARKS.md).
bench:
	@GO=$(GO) scripts/bench.sh $(BENCHTIME)

## bench-table: the README's performance table, bench/README-table.md, from bench/results.json.
bench-table:
	$(GO) run ./bench/benchreport -table -out bench -readme README.md

clean:
	rm -rf bin
