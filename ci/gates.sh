#!/usr/bin/env bash
# Release gates, run by .ci/run after `make test`. Every gate prints its verdict — pass or FAIL —
# and the script exits non-zero if any gate failed. What each gate checks is in docs/gates.md.
#
# Usage: ci/gates.sh            FUZZ_SECS (default 60): time per fuzz target
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export CARGO_TERM_COLOR=never
FUZZ_SECS=${FUZZ_SECS:-60}
START=$(date +%s)
# The commit the artifacts are for; "-dirty" when the work tree differs from it.
COMMIT=$(git rev-parse HEAD)$(git diff --quiet HEAD -- || echo -dirty)
export RN_COMMIT=$COMMIT
ART=artifacts
STATIC=target/x86_64-unknown-linux-gnu/release/rn
STATIC_OK=0
mkdir -p "$ART"
rm -f "$ART"/{conformance,negative,recovery}.json "$ART"/audit-integrity.log "$ART"/tests.log

declare -a VERDICTS
verdict() { VERDICTS+=("$(printf '%-12s %s' "$1" "$2")"); printf '== gate %s: %s\n' "$1" "$2"; }
# gate NAME CMD...: the gate passes if CMD succeeds.
gate() {
    local name=$1; shift
    printf '\n== gate %s\n' "$name"
    local t0=$SECONDS
    if "$@"; then verdict "$name" "pass ($((SECONDS - t0)) s)"; else verdict "$name" "FAIL"; fi
}

# --- tools the gates need, installed when missing ----------------------------------------------
need_cargo_tool() { # BINARY CRATE@VERSION
    command -v "$1" >/dev/null || cargo install --locked "$2" || return 1
}

fmt() {
    cargo fmt --all -- --check && cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
}
clippy() { cargo clippy --all-targets --all-features -- -D warnings; }
tests() {
    # All tests (the root-only ones too when root), the fault-injection crash loop included;
    # the vectors test writes artifacts/negative.json. The log feeds artifacts/conformance.json.
    local extra=()
    [ "$(id -u)" = 0 ] && extra=(--include-ignored)
    RN_ARTIFACTS=$ART cargo test --no-fail-fast --all-features --lib --bins --tests -- "${extra[@]}" 2>&1 | tee "$ART/tests.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] && python3 ci/vectors_check.py
}
deny() {
    need_cargo_tool cargo-deny cargo-deny@0.20.2 && cargo deny check bans licenses sources
}
advisories() {
    # ci/advisories.sh: a fresh database where it can be fetched, else the dated snapshot
    # beside the repository; its last line is the verdict.
    local out rc
    out=$(bash ci/advisories.sh 2>&1)
    rc=$?
    printf '%s\n' "$out"
    if [ "$rc" = 0 ]; then
        verdict advisories "$(tail -1 <<<"$out")"
    else
        verdict advisories "FAIL ($(tail -1 <<<"$out" | sed 's/^FAIL: //'))"
    fi
}
# boundary_check SRC: the layers import one way (cli -> node -> tunnel/firewall -> policy ->
# ledger -> files): each rule is "these paths never match this pattern".
boundary_check() {
    local src=$1 bad=0 hits rc rule paths pattern
    local rules=(
        "ledger/ policy/|wireguard|\bwg\b|defguard|TunnelBackend|BackendKind|FirewallKind|InterfaceIntent|RouteIntent|nftables"
        "ledger/|crate::(policy|sync|node|tunnel|firewall|cli)\b"
        "policy/|crate::(sync|node|tunnel|firewall|cli)\b"
        "sync/|crate::(node|tunnel|firewall|cli)\b"
        "node/|crate::cli\b"
        "tunnel/ firewall/|crate::(node|cli)\b"
        "files.rs fault.rs clock.rs text.rs|crate::(ledger|policy|node|tunnel|firewall|cli|keys|journal)\b"
        "ledger/ policy/ sync/ node/ tunnel/ firewall/ files.rs fault.rs clock.rs text.rs|use crate::\{"
    )
    for rule in "${rules[@]}"; do
        paths=${rule%%|*}; pattern=${rule#*|}
        local args=()
        for p in $paths; do [ -e "$src/$p" ] && args+=("$src/$p"); done
        [ "${#args[@]}" -gt 0 ] || continue
        hits=$(grep -rnEi -- "$pattern" "${args[@]}")
        rc=$?
        [ "$rc" -le 1 ] || { echo "grep failed ($rc)"; return 1; }
        if [ -n "$hits" ]; then echo "$paths must not match /$pattern/:"; echo "$hits"; bad=1; fi
    done
    return "$bad"
}
boundary() {
    # The gate must catch each deliberate inversion before its verdict on the tree counts.
    local scratch plant
    for plant in "ledger/mod.rs|use crate::cli::output::error_name;" \
        "ledger/store/mod.rs|use crate::policy::Policy;" \
        "policy/mod.rs|use crate::node::config::NodeConfig;" \
        "node/mod.rs|use crate::cli::CliError;"; do
        scratch=$(mktemp -d)
        cp -r src/. "$scratch/"
        echo "${plant#*|}" >>"$scratch/${plant%%|*}"
        if boundary_check "$scratch" >/dev/null; then
            rm -rf "$scratch"; echo "the boundary check missed an inversion planted in src/${plant%%|*}: ${plant#*|}"; return 1
        fi
        rm -rf "$scratch"
        echo "planted inversion caught: src/${plant%%|*}: ${plant#*|}"
    done
    boundary_check src || return 1
    echo "src: the layers import one way; the ledger names no policy type; the ledger and the policy engine name no tunnel type"
}
shell() {
    # Every script of ci/, bench/ and .ci/ passes shellcheck with no warning or error.
    command -v shellcheck >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck; } || return 1
    local scripts=(ci/*.sh bench/*.sh .ci/run)
    shellcheck -S warning -x "${scripts[@]}" || return 1
    echo "shellcheck $(shellcheck --version | awk '/^version/ {print $2}'): ${#scripts[@]} scripts, no warnings or errors"
}
markers() {
    local hits rc
    hits=$(grep -rnE 'TODO|FIXME|XXX|unimplemented!|todo!' src/)
    rc=$?
    [ "$rc" -le 1 ] || { echo "grep failed ($rc)"; return 1; }
    [ -z "$hits" ] || { echo "markers left in src/:"; echo "$hits"; return 1; }
    echo "src/: no TODO, FIXME, XXX, unimplemented! or todo!"
}
static() {
    make release >/dev/null || return 1
    local f l size
    f=$(file "$STATIC"); l=$(ldd "$STATIC" 2>&1)
    echo "file: ${f#*: }" | sed 's/, BuildID[^,]*//'
    echo "ldd:  $l"
    size=$(stat -c %s "$STATIC")
    awk -v s="$size" 'BEGIN { printf "size: %d bytes (%.1f MiB); limit 10 MiB\n", s, s / 1048576 }'
    grep -Eq 'static-pie linked|statically linked' <<<"$f" || { echo "not a static binary"; return 1; }
    grep -Eq 'not a dynamic executable|statically linked' <<<"$l" || { echo "ldd finds dynamic dependencies"; return 1; }
    [ "$size" -le $((10 * 1048576)) ] || { echo "binary over 10 MiB"; return 1; }
    STATIC_OK=1
}
drills() {
    # Only with the binary the static gate built: a stale one would be tested under this commit.
    [ "$STATIC_OK" = 1 ] || { echo "no release binary from this run (the static gate failed)"; return 1; }
    ARTIFACTS=$PWD/$ART bash ci/drill.sh all "$STATIC"
}
kernel() {
    # The kernel backend in a QEMU VM booting Debian's cloud kernel, with the binary the static
    # gate built (this machine's kernel may have no WireGuard module).
    [ "$STATIC_OK" = 1 ] || { echo "no release binary from this run (the static gate failed)"; return 1; }
    bash ci/kernel-vm.sh "$STATIC"
}
fuzz() { bash ci/fuzz.sh "$FUZZ_SECS"; }
artifacts() {
    python3 ci/artifacts.py conformance "$COMMIT"
    python3 ci/artifacts.py check "$COMMIT" "$START"
}

gate fmt fmt
gate clippy clippy
gate tests tests
gate deny deny
printf '\n== gate advisories\n'; advisories
gate boundary boundary
gate shell shell
gate markers markers
gate static static
gate drills drills
gate kernel kernel
gate fuzz fuzz
gate artifacts artifacts

printf '\n== gates (commit %s, %d s)\n' "${COMMIT:0:12}" "$((SECONDS))"
printf '%s\n' "${VERDICTS[@]}"
[[ " ${VERDICTS[*]} " != *FAIL* ]]
