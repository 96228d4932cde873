# rn — build, test and demo. `make test` and `make demo` install what they need.
SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
STATIC := target/$(TARGET)/release/rn

.PHONY: all build release test test-deps demo bench bless clean gates drill fuzz man

all: build

build:
	$(CARGO) build --release

## A static-pie binary: copy it to any x86_64 Linux host.
release:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(TARGET)
	@file $(STATIC) | sed 's/, BuildID[^,]*//'
	@ls -l $(STATIC) | awk '{printf "size: %.1f MiB\n", $$5/1048576}'

## Tools the tests use: ssh-keygen, ssh-agent and ssh-add (interop with OpenSSH keys and
## agents), jq (the documentation's examples) and Python's `cryptography` (the independent
## check of the golden vectors).
test-deps:
	@command -v ssh-keygen >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-client; }
	@command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends jq; }
	@python3 -c 'import cryptography' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-cryptography; } || python3 -m pip install -q cryptography

## Tests marked #[ignore = "needs root …"] run here when root, and are named when skipped.
test: test-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings
	@if [ "$$(id -u)" = 0 ]; then \
	  $(CARGO) test --lib --bins --tests -- --include-ignored; \
	else \
	  echo "not root: the tests marked 'needs root' are skipped:"; \
	  $(CARGO) test --lib --bins --tests -- --list --ignored 2>/dev/null | grep ': test$$' || true; \
	  $(CARGO) test --lib --bins --tests; \
	fi
	$(CARGO) test --features fault-injection --test crash -- --nocapture
	python3 ci/vectors_check.py
	@if [ "$$(id -u)" = 0 ]; then \
	  $(CARGO) build && bash ci/e2e-netns.sh target/debug/rn 10 && bash ci/e2e-routing.sh target/debug/rn && \
	  bash ci/e2e-sessions.sh target/debug/rn userspace 10 && bash ci/e2e-sessions.sh target/debug/rn uapi 10 && \
	  bash ci/e2e-push.sh target/debug/rn && bash ci/e2e-mirror.sh target/debug/rn && \
	  bash ci/e2e-mesh.sh target/debug/rn 12 5 && bash ci/e2e-liar.sh target/debug/rn; \
	else \
	  echo "not root: skipping ci/e2e-netns.sh, ci/e2e-routing.sh, ci/e2e-sessions.sh, ci/e2e-push.sh, ci/e2e-mirror.sh, ci/e2e-mesh.sh and ci/e2e-liar.sh (network namespaces, TUN, nftables, sshd and nginx need root)"; \
	fi

## The manual page, from the parser's own metadata (`rn man`); `man -l target/man/rn.1` reads it.
man:
	$(CARGO) build
	mkdir -p target/man
	target/debug/rn man > target/man/rn.1
	@echo "target/man/rn.1: $$(grep -c '^\.SS' target/man/rn.1) commands"

demo: build
	bash ci/demo.sh target/release/rn

## The release gates (fmt, clippy, tests, cargo deny, boundary, markers, static binary, drills,
## fuzzing, evidence artifacts); see docs/gates.md. FUZZ_SECS sets the time per fuzz target.
gates: test-deps
	bash ci/gates.sh

## The incident drills (docs/operations/incidents/): make drill SCENARIO=all|NAME
SCENARIO ?= all
drill:
	$(CARGO) build
	bash ci/drill.sh $(SCENARIO) target/debug/rn

## Each fuzz target for FUZZ_SECS seconds (default 60) with the nightly toolchain; new inputs
## go to artifacts/fuzz/corpus, crashes to fuzz/artifacts/.
FUZZ_SECS ?= 60
fuzz:
	bash ci/fuzz.sh $(FUZZ_SECS)

## Every benchmark next to its limit or its peer, measured in one run: bench/results.json, a
## table, and the results table of docs/benchmarks.md. Rows that need root say so when not root.
bench:
	bash bench/run.sh

## Rewrite the golden and reject vectors from the generators (review the diff!).
bless:
	RN_BLESS=1 $(CARGO) test --test golden --test vectors
	python3 ci/vectors_check.py

clean:
	$(CARGO) clean
