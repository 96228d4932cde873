#!/usr/bin/env bash
# The mesh carries its own ledger (spec §5a), end to end in network namespaces with real
# tunnels (embedded userspace WireGuard) and nftables. N nodes (default 12), every one
# configured with ONE peer endpoint (n1's; n1 with none): endpoints are learned from peers,
# every allowed pair connects; a revocation applied on one node spreads by notifications
# (time to the last node, RUNS runs); a node stopped for 50 updates catches up on start; a node
# whose state directory is rolled back (watermark mirror deleted) catches up from its peers.
#
# Usage: ci/e2e-mesh.sh [RN_BINARY] [NODES] [RUNS]
#   MESH_SPREAD_ONLY=1: bring the mesh up and measure the spread only (make bench).
#   MESH_SPREAD_OUT=FILE: the spread samples as JSON.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:-target/debug/rn}")
N=${2:-12}
RUNS=${3:-5}
NS_PREFIX=rnd
# shellcheck source=ci/netns-lib.sh
source ci/netns-lib.sh
need_root_tools || exit 1
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null; }
e2e_begin mesh
governance mesh
make_underlay

declare -A KEY AGENT
for i in $(seq "$N"); do
    n=n$i
    add_host "$n" "$i"
    mkdir -m 700 "$W/$n"
    eps=()
    [ "$i" = 1 ] || eps=(--endpoint n1=10.99.0.1:51820)
    KEY[$n]=$(rn node init --node-id "$n" --genesis "$W/genesis.json" --pin "$ROOT" --interface "rnd$n" \
        --listen-port 51820 --backend userspace --firewall nftables "${eps[@]}" --keepalive 5 \
        --config "$W/$n/node.json" --state-dir "$W/$n/state" --key "$W/$n/wg.key" 2>/dev/null)
done
{
    printf '['
    sep=""
    for i in $(seq "$N"); do
        printf '%s{"op":"add_node","node":{"id":"n%s","pubkey":"%s","owner":"ops","tags":["tag:mesh"]}}' "$sep" "$i" "${KEY[n$i]}"
        sep=","
    done
    printf ']'
} >"$W/batch.json"
rn member propose --batch "$W/batch.json" --state-dir "$W/op" --reason "the mesh" -o "$W/add.json" 2>/dev/null && sign2 "$W/add.json"
echo '{"kind":"rn.policy.v1","rules":[{"src":["tag:mesh"],"dst":["tag:mesh"],"proto":"icmp"}]}' >"$W/policy.json"
rn member propose set-policy "$W/policy.json" --state-dir "$W/op" -o "$W/pol.json" 2>/dev/null && sign2 "$W/pol.json"
rn member export --state-dir "$W/op" -o "$W/bundle.json" 2>/dev/null
# Each node holds the ledger that admits it (handed over with its genesis); nothing else.
for i in $(seq "$N"); do rn member apply "$W/bundle.json" --state-dir "$W/n$i/state" >/dev/null; done

start_agent() {
    ip netns exec "rnd-$1" "$RN" node run --config "$W/$1/node.json" >>"$W/$1/agent.log" 2>&1 &
    PIDS+=($!)
    AGENT[$1]=$!
}
stop_agent() {
    kill "${AGENT[$1]}" 2>/dev/null
    wait_for 8 bash -c "! kill -0 ${AGENT[$1]} 2>/dev/null" || kill -9 "${AGENT[$1]}" 2>/dev/null
    wait "${AGENT[$1]}" 2>/dev/null
}
status() { "$RN" node status --config "$W/$1/node.json" --json 2>/dev/null; }
epoch() { status "$1" | jq -r .epoch 2>/dev/null; }
op_epoch() { rn member status --state-dir "$W/op" --json | jq -r .epoch; }
# handshakes NODE: peers of NODE with a completed handshake
handshakes() { inns "$1" timeout 5 wg show "rnd$1" latest-handshakes 2>/dev/null | awk '$2 > 0' | wc -l; }
all_handshakes() { local i; for i in $(seq "$N"); do [ "$(handshakes "n$i")" = $((N - 1)) ] || return 1; done; }
ov() { echo "100.96.0.$1"; }
pings() { inns "$1" ping -c1 -W2 "$2" >/dev/null 2>&1; }

t0=$(date +%s)
for i in $(seq "$N"); do start_agent "n$i"; done
check "all $N agents trusted" wait_for 30 bash -c "for i in \$(seq $N); do '$RN' node status --config '$W/n'\$i/node.json --json 2>/dev/null | grep -q '\"mode\":\"trusted\"' || exit 1; done"
check "every node has a handshake with all $((N - 1)) peers, from one configured endpoint each" wait_for 90 all_handshakes
echo "mesh of $N up (every pair with a handshake) in $(( $(date +%s) - t0 )) s"
failed=0
for i in $(seq "$N"); do
    for j in $(seq "$N"); do
        [ "$i" = "$j" ] && continue
        pings "n$i" "$(ov "$j")" || pings "n$i" "$(ov "$j")" || { failed=$((failed + 1)); echo "  n$i cannot ping n$j"; }
    done
done
check "every allowed pair pings ($((N * (N - 1))) pairs, $failed failed)" [ "$failed" = 0 ]
learned=0
for i in $(seq 2 "$N"); do learned=$((learned + $(status "n$i" | jq '.distribution.learned_endpoints | length'))); done
echo "endpoints learned from peers across the mesh: $learned"
check "nodes learned endpoints from peers" [ "$learned" -gt 0 ]
check "n1 serves the ledger on its overlay address" bash -c "'$RN' node status --config '$W/n1/node.json' --json | jq -e '.distribution.serving == [\"$(ov 1):51821\"]' >/dev/null"
check "n1's firewall admits the distribution port from members only" bash -c \
    "ip netns exec rnd-n1 nft list table inet rn | grep -q 'tcp dport 51821 accept comment \"rn ledger distribution: active members\"'"
check "rn node status says what n2 serves and how it syncs" bash -c "'$RN' node status --config '$W/n2/node.json' >'$W/n2.status' &&
    grep -qx 'serves     $(ov 2):51821 (active members only)' '$W/n2.status' && grep -q '^sync       3 peer(s) every 30 s and on notifications' '$W/n2.status'"

# --- a revocation applied on ONE node reaches every other (the revoked node is restored by
# the operator's push to it and to n2 between runs) ---
VICTIM=n$N
SPREAD=()
for r in $(seq "$RUNS"); do
    rn member propose revoke-node "$VICTIM" --state-dir "$W/op" --reason "spread $r" -o "$W/rev$r.json" 2>/dev/null && sign2 "$W/rev$r.json" || { ko "revoke $r signed"; break; }
    want=$(op_epoch)
    start=$(date +%s%N)
    deliver "$W/rev$r.json" n2
    declare -A AT=()
    deadline=$(( $(date +%s) + 30 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        for i in $(seq $((N - 1))); do
            [ -n "${AT[n$i]:-}" ] && continue
            [ "$(epoch "n$i")" = "$want" ] && AT[n$i]=$(( ($(date +%s%N) - start) / 1000000 ))
        done
        [ "${#AT[@]}" = $((N - 1)) ] && break
        sleep 0.05
    done
    if [ "${#AT[@]}" = $((N - 1)) ]; then
        last=$(printf '%s\n' "${AT[@]}" | sort -n | tail -1)
        SPREAD+=("$last")
        echo "run $r: revocation applied on n2 reached all $((N - 1)) other nodes in $last ms"
    else
        ko "run $r: the revocation reached ${#AT[@]} of $((N - 1)) nodes within 30 s"
        for i in $(seq $((N - 1))); do [ -n "${AT[n$i]:-}" ] || echo "  n$i at epoch $(epoch "n$i")"; done
    fi
    unset AT
    [ "$r" = 1 ] && check "no node keeps a peer for the revoked node" wait_for 10 bash -c \
        "for i in \$(seq $((N - 1))); do ip netns exec rnd-n\$i wg show rndn\$i peers | grep -qF '${KEY[$VICTIM]}' && exit 1; done; exit 0"
    rn member propose restore-node "$VICTIM" --state-dir "$W/op" --reason "spread $r restore" -o "$W/res$r.json" 2>/dev/null && sign2 "$W/res$r.json"
    # The operator tells the revoked node itself (the mesh cannot): it is restricted and
    # serves nothing, then restored.
    deliver "$W/rev$r.json" "$VICTIM"
    [ "$r" = 1 ] && check "the revoked node is restricted and serves nothing" wait_for 10 bash -c \
        "'$RN' node status --config '$W/$VICTIM/node.json' --json | jq -e '.mode == \"restricted\" and .distribution.serving == []' >/dev/null"
    deliver "$W/res$r.json" n2 "$VICTIM"
    want=$(op_epoch)
    wait_for 30 bash -c "for i in \$(seq $N); do [ \"\$('$RN' node status --config '$W/n'\$i/node.json --json | jq -r .epoch)\" = $want ] || exit 1; done" ||
        ko "run $r: the restore did not reach every node"
    wait_for 30 bash -c "[ \"\$(ip netns exec rnd-$VICTIM wg show rnd$VICTIM latest-handshakes | awk '\$2 > 0' | wc -l)\" = $((N - 1)) ]" ||
        ko "run $r: the restored node did not reconnect to every peer"
done
if [ ${#SPREAD[@]} -gt 0 ]; then
    mapfile -t SORTED < <(printf '%s\n' "${SPREAD[@]}" | sort -n)
    k=${#SORTED[@]}
    P50=${SORTED[$(( (k - 1) / 2 ))]}
    P95=${SORTED[$(( (k * 95 + 99) / 100 - 1 ))]}
    echo "revocation spread over $N nodes (applied on one -> the last node), $k runs: p50 ${P50} ms, p95 ${P95} ms; target p95 <= 5000 ms"
    echo "{\"nodes\":$N,\"runs\":$k,\"p50_ms\":$P50,\"p95_ms\":$P95,\"samples_ms\":[$(IFS=,; echo "${SPREAD[*]}")]}" >"${MESH_SPREAD_OUT:-/dev/null}"
    check "revocation spread p95 <= 5 s over $N nodes" [ "$P95" -le 5000 ]
fi
if [ -n "${MESH_SPREAD_ONLY:-}" ]; then
    summary "e2e-mesh ($N nodes, spread only)"
    exit
fi

# --- a node stopped for 50 updates catches up on start; a rolled-back one from its peers ---
ROLL=n$((N - 2)) LATE=n$((N - 3))
stop_agent "$ROLL"
cp -a "$W/$ROLL/state" "$W/$ROLL/state.old"
start_agent "$ROLL"
stop_agent "$LATE"
from=$(op_epoch)
for k in $(seq 50); do
    rn member propose set-node n1 --tag tag:mesh --tag "tag:v$((k % 2))" --state-dir "$W/op" --reason "update $k" -o "$W/u$k.json" 2>/dev/null && sign2 "$W/u$k.json" ||
        { ko "update $k signed"; break; }
done
want=$(op_epoch)
check "the operator made 50 updates (epoch $from -> $want)" [ $((want - from)) = 50 ]
rn member export --since "$from" --state-dir "$W/op" -o "$W/fifty.json" 2>/dev/null
deliver "$W/fifty.json" n2
others() { local i; for i in $(seq "$N"); do [ "n$i" = "$LATE" ] && continue; [ "$(epoch "n$i")" = "$want" ] || return 1; done; }
check "the 50 updates applied on n2 reach every running node (within 60 s: two sync intervals)" wait_for 60 others ||
    for i in $(seq "$N"); do echo "  n$i at epoch $(epoch "n$i") (want $want)"; done
t=$(date +%s%N)
start_agent "$LATE"
check "$LATE, stopped during the 50 updates, catches up on start" wait_for 30 bash -c "[ \"\$('$RN' node status --config '$W/$LATE/node.json' --json 2>/dev/null | jq -r .epoch)\" = $want ]"
echo "$LATE caught up 50 updates in $(( ($(date +%s%N) - t) / 1000000 )) ms from its start"
stop_agent "$ROLL"
rm -rf "$W/$ROLL/state"
mv "$W/$ROLL/state.old" "$W/$ROLL/state"
rm -f "$W/$ROLL/state.watermark"
start_agent "$ROLL"
check "$ROLL, rolled back to epoch $from with its watermark mirror deleted, catches up from peers" \
    wait_for 30 bash -c "[ \"\$('$RN' node status --config '$W/$ROLL/node.json' --json 2>/dev/null | jq -r .epoch)\" = $want ]"
check "$ROLL's log names a peer as the source" grep -q "peer n.* applied 50 update(s)" "$W/$ROLL/agent.log"
check "$ROLL still pings n1 after catching up" wait_for 10 pings "$ROLL" "$(ov 1)"

summary "e2e-mesh ($N nodes)"
