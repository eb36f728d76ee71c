# NERV: `make demo` and `make test` are the two commands a newcomer needs (see README.md).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO      ?= go
MODULE  := github.com/nerv-platform/nerv
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# A semver (krew requires one): the nearest v* tag, or v0.0.0-<commit> before the first tag.
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo v0.0.0-$(COMMIT))
# The commit's date, not the build's: the same commit builds byte-identical archives.
DATE    ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo 1970-01-01T00:00:00Z)
LDFLAGS := -s -w -X $(MODULE)/internal/version.Version=$(VERSION) \
           -X $(MODULE)/internal/version.Commit=$(COMMIT) \
           -X $(MODULE)/internal/version.Date=$(DATE)
PROGRAMS := kubectl-nerv argocd-sops-plugin nerv-webhook

# The ArgoCD test module needs Go 1.27 (argo-cd v3.6); the go command fetches this approved
# toolchain from the Go module proxy. The main module stays on the machine's Go.
ARGOCD_GOTOOLCHAIN := go1.27.3

# Fuzz targets `make test` runs briefly, found in the tests: ./<package dir>:<FuzzName>.
FUZZ_TARGETS ?= $(shell git grep -h -o -E '^func Fuzz[A-Za-z0-9_]+' -- '*_test.go' >/dev/null 2>&1 && \
  git grep -n -E '^func Fuzz[A-Za-z0-9_]+' -- '*_test.go' ':!test/' | \
  sed -E 's@^(.*)/[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]+).*@./\1:\2@')
# An execution count, not a duration: with a duration Go 1.26's fuzz coordinator can report
# a spurious "context deadline exceeded" at the deadline on a busy machine (go.dev/issue/75804,
# fixed in Go 1.27). A count also gives every CI run the same amount of fuzzing.
FUZZ_TIME    ?= 10000x

.PHONY: build assets test fmt-check vet unit fuzz test-nested test-argocd demo demo-down bench clean release

build: $(addprefix bin/,$(PROGRAMS))

bin/%: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

bin/nerv-demo: FORCE
	$(GO) build -o $@ ./hack/demo

FORCE:

## assets: build (once, cached under ~/.cache/nerv) the binaries and packages tests need.
assets:
	hack/test-assets.sh

## test: everything CI runs.
test: assets build fmt-check vet unit fuzz test-nested test-argocd

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Tests that run NERV's own programs use these binaries (internal/testenv.ProgramBinary).
export NERV_BIN_DIR := $(CURDIR)/bin

unit:
	$(GO) test -race -count=1 ./...
	@# Page fault counts mean nothing under -race (the detector touches shadow memory).
	$(GO) test -count=1 ./internal/hugeheap

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($$pkg) for $(FUZZ_TIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZ_TIME) $$pkg; \
	done

# Nested modules with their own go.mod (skipped by ./... above); test/argocd needs its own
# toolchain and runs as test-argocd.
test-nested:
	@for d in $(filter-out test/argocd/go.mod,$(wildcard test/*/go.mod)); do \
	  dir=$$(dirname $$d); \
	  echo "go test ./... in $$dir"; \
	  (cd $$dir && $(GO) test -count=1 ./...); \
	done

## test-argocd: argocd-sops-plugin under ArgoCD's own cmp-server and repo-server (Go 1.27).
## The first run downloads the toolchain and compiles argo-cd: about 11 minutes on 2 cores.
test-argocd: assets build
	cd test/argocd && GOTOOLCHAIN=$(ARGOCD_GOTOOLCHAIN) $(GO) test -count=1 ./...

demo: assets build bin/nerv-demo
	hack/demo.sh

demo-down: bin/nerv-demo
	bin/nerv-demo down --dir .nerv/demo

bench: assets build
	$(GO) test -run='^$$' -bench=. -benchmem ./...

## release: archives for linux/darwin × amd64/arm64 with SHA256SUMS in dist/, and krew/nerv.yaml
## checked by krew's own validator.
release: assets
	$(GO) run ./hack/release --version $(VERSION) --commit $(COMMIT) --date $(DATE) --out dist --krew krew/nerv.yaml
	$$(hack/test-assets.sh --print-path validate-krew-manifest) -manifest krew/nerv.yaml -skip-install

clean:
	rm -rf bin dist
