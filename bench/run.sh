#!/usr/bin/env bash
# `make bench`: every figure of docs/benchmarks.md from one run, each next to its limit or its
# peer measured in the same run. Writes bench/results.json, prints the table, and rewrites the
# results table in docs/benchmarks.md. The reconcile and revocation rows need root (network
# namespaces, TUN, nftables); without root they are listed as not run.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=bench/tmp
rm -rf "$TMP"; mkdir -p "$TMP"
export RN_BENCH_ROWS=$PWD/$TMP/rows.jsonl
: >"$RN_BENCH_ROWS"
RN=target/x86_64-unknown-linux-gnu/release/rn
ROOT=0; [ "$(id -u)" = 0 ] && ROOT=1

# row NAME UNIT RN REFERENCE|null TARGET: one row, as the Rust benches write them.
row() {
    jq -nc --arg name "$1" --arg unit "$2" --argjson rn "$3" --argjson ref "$4" --argjson target "$5" '
        if ($rn | type) != "number" then error("\($name): no figure measured") else . end
        | ($ref | if . == null then null else $rn / . end) as $ratio
        | {name: $name, unit: $unit, rn: $rn, reference: $ref, ratio: $ratio, target: $target,
           meets: (($ratio // $rn) <= $target)}' >>"$RN_BENCH_ROWS"
}
not_run() { # NAME UNIT TARGET WHY
    jq -nc --arg name "$1" --arg unit "$2" --argjson target "$3" --arg why "$4" '
        {name: $name, unit: $unit, rn: null, reference: null, ratio: null, target: $target,
         meets: null, note: "not run: \($why)"}' >>"$RN_BENCH_ROWS"
}
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends jq >/dev/null; }

echo "== 1. gate, 2. ledger load"
cargo bench --bench ledger
cargo bench --bench load

echo "== the static release binary, for the rest"
make release

echo "== 3. one bulk update of 1,000 add_node (propose, two signatures, verify, commit)"
bash bench/bulk.sh "$RN" | tee "$TMP/bulk.txt"
row "bulk update of 1,000 add_node: propose + 2 signatures + verify + commit" s \
    "$(tail -1 "$TMP/bulk.txt" | awk '{printf "%.3f", $1 / 1000}')" null 1

echo "== 4. policy compile"
cargo bench --bench policy

echo "== 8. revocation latency on a 10,000-update ledger vs a 10-update one (1,000 nodes, memory backend)"
cargo bench --bench revocation 2>/dev/null

echo "== 9b. one commit's spread over a simulated mesh of 1,000 and 10,000 nodes (the agents' spreading rule)"
cargo bench --bench gossip 2>/dev/null

if [ "$ROOT" = 1 ]; then
    source ci/netns-lib.sh
    need_root_tools
    echo "== 5. reconcile 1,000 peers: rn's userspace backend vs wg setconf (own network namespace)"
    cargo bench --bench reconcile --no-run 2>"$TMP/build.txt" || { cat "$TMP/build.txt"; exit 1; }
    EXE=$(grep -o 'target/release/deps/reconcile-[0-9a-f]*' "$TMP/build.txt" | tail -1)
    ip netns del rnbench 2>/dev/null || true
    ip netns add rnbench
    trap 'ip netns del rnbench 2>/dev/null' EXIT
    ip -n rnbench link set lo up
    RN_BENCH_NETNS=rnbench ip netns exec rnbench "$EXE"
    ip netns del rnbench
    trap - EXIT
    echo "== 6. revocation latency, 20 runs (network namespaces, userspace WireGuard, nftables)"
    E2E_LATENCY_OUT=$PWD/$TMP/latency.json bash ci/e2e-netns.sh "$RN" 20 | tail -4
    row "revocation latency p50, file landing -> peer gone (20 runs)" ms "$(jq .p50_ms "$TMP/latency.json")" null 1000
    row "revocation latency p95, file landing -> peer gone (20 runs)" ms "$(jq .p95_ms "$TMP/latency.json")" null 1000
    echo "== 9a. one revocation applied on one node, spread by the mesh to the last of 4, 8 and 16 nodes"
    for n in 4 8 16; do
        MESH_SPREAD_ONLY=1 MESH_SPREAD_OUT=$PWD/$TMP/spread-$n.json bash ci/e2e-mesh.sh "$RN" "$n" 5 | tail -2
        row "revocation spread, applied on one of $n nodes -> the last (p95 of 5 runs)" ms "$(jq .p95_ms "$TMP/spread-$n.json")" null 5000
    done
else
    echo "== 5. and 6. need root: not run"
    not_run "reconcile 1,000 peers into a userspace interface: rn backend (vs wg setconf)" ms 1.2 "needs root"
    not_run "one peer added into a 1,000-peer userspace interface: rn applies the one-peer diff (vs wg set)" ms 1.5 "needs root"
    not_run "one peer added into a 1,000-peer userspace interface: rn read-back + diff + apply (vs wg set)" ms 1.5 "needs root"
    not_run "revocation latency p50, file landing -> peer gone (20 runs)" ms 1000 "needs root"
    not_run "revocation latency p95, file landing -> peer gone (20 runs)" ms 1000 "needs root"
    for n in 4 8 16; do
        not_run "revocation spread, applied on one of $n nodes -> the last (p95 of 5 runs)" ms 5000 "needs root"
    done
fi

echo "== 7. static binary size; agent idle for 60 s with a 1,000-node ledger"
row "static binary size" MiB "$(stat -c %s "$RN" | awk '{printf "%.2f", $1 / 1048576}')" null 10
IDLE_OUT=$PWD/$TMP/idle.json bash ci/idle.sh "$RN" "${IDLE_SECS:-60}"
row "agent idle RSS, 1,000-node ledger, 999 peers" MiB "$(jq '.rss_kib / 1024 * 100 | round / 100' "$TMP/idle.json")" null 20
row "agent idle CPU over $(jq .seconds "$TMP/idle.json") s, 1,000-node ledger" "% of a core" "$(jq .cpu_percent "$TMP/idle.json")" null 0.5

python3 bench/report.py "$RN_BENCH_ROWS" bench/results.json docs/benchmarks.md
