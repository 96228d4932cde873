#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz, nightly toolchain; optimised, with debug assertions
# and overflow checks) for SECS seconds each (default 60); an input that runs over 10 s fails.
# New inputs go to artifacts/fuzz/corpus/TARGET, each run's output to artifacts/fuzz/TARGET.log,
# a crashing input to fuzz/artifacts/TARGET/. Exit 1 if any target crashed.
# Usage: ci/fuzz.sh [SECS]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SECS=${1:-60}
TARGETS=(signed_genesis proposal signed_update bundle log_line snapshot watermark policy gate)
ART=artifacts/fuzz
rustup toolchain list | grep -q '^nightly' || { echo "fuzz: no nightly toolchain (rustup toolchain install nightly)"; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2 || exit 1
(cd fuzz && cargo +nightly fuzz build -O -a) || exit 1
failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$ART/corpus/$t"
    # The committed seeds in fuzz/corpus/ are read, never written.
    if (cd fuzz && cargo +nightly fuzz run -O -a "$t" "../$ART/corpus/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -timeout=10 -print_final_stats=1) >"$ART/$t.log" 2>&1; then
        printf 'fuzz %-15s ok: %s\n' "$t" "$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$ART/$t.log" | tail -1)"
    else
        printf 'fuzz %-15s CRASH: see %s and fuzz/artifacts/%s/\n' "$t" "$ART/$t.log" "$t"
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$ART/$t.log" | head -5
        failed=1
    fi
done
exit "$failed"
