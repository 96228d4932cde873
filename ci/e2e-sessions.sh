#!/usr/bin/env bash
# A ledger change touches only what changed (needs root): while a pings b every 50 ms over the
# mesh, unrelated changes land one after another, and the a<->b WireGuard session must survive.
#   a, b, c: three agents on BACKEND. Policy: a<->b icmp, a<->c icmp (tag:c).
#   Per run, four changes, each signed 2 of 3, committed to the operator ledger and dropped into
#   every running node's inbox; after each one a and b must enforce the new epoch:
#     1. add node cI (tag:c, so it becomes a peer of a; never running)
#     2. a policy-only change (toggles a harmless a->b tcp/7 rule)
#     3. rotate cI's key
#     4. revoke cI
#   Around each change, on a (peer b) and on b (peer a), `wg show IF latest-handshakes` and
#   `wg show IF transfer` are read: the handshake must not be renewed, the counters must never go
#   down, and at most one ping may be lost per change. a must keep its overlay address and MTU.
# Usage: ci/e2e-sessions.sh RN_BINARY BACKEND [RUNS]
#   BACKEND: userspace (embedded), uapi (Debian's wireguard-go, started here), kernel (module).
#   RUNS: default 10. E2E_SESSIONS_OUT=FILE also writes the figures as JSON;
#   E2E_SESSIONS_VERBOSE=1 prints every change's samples.
# Pings: a->b every 50 ms, at most 800 (ping's own -w bounds it), stopped with SIGINT 0.5 s after
# the last change; lost = transmitted - received from ping's summary, less the last request if
# it was still unanswered when stopped. The per-reply lines (seq=N) place each loss in the
# window of the change it follows. Handshake times have whole seconds: before each change the
# script waits (at most about 1 s) until the clock is past the last handshake, so a renewal
# cannot hide in the same second.
# Tools: bash (>= 5 for EPOCHREALTIME; timing falls back to whole seconds), ip (iproute2, for
# netns), nft, wg, ping (iputils or busybox: -c, -i 0.05, -w, -W; summary on SIGINT), and
# coreutils or busybox (timeout, seq, sleep with fractions, cp, mv, mktemp, realpath, awk, grep,
# sed). With the kernel backend and no apt-get (a minimal VM guest), nothing is installed and
# neither wireguard-go nor nc is needed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
usage() { echo "usage: $0 RN_BINARY userspace|uapi|kernel [RUNS]" >&2; exit 64; }
[ $# -ge 2 ] || usage
RN=$(realpath "$1") || usage
BACKEND=$2
RUNS=${3:-10}
case $BACKEND in userspace | uapi | kernel) ;; *) usage ;; esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage
[ -x "$RN" ] || { echo "not an executable: $RN" >&2; exit 66; }
# shellcheck source=ci/netns-lib.sh
source ci/netns-lib.sh
NS_PREFIX=rns
if [ "$BACKEND" = kernel ] && ! command -v apt-get >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, WireGuard, nftables)"; exit 1; }
    for t in ip nft wg ping timeout; do command -v "$t" >/dev/null || { echo "missing: $t"; exit 1; }; done
else
    need_root_tools || exit 1
fi
e2e_begin sessions
export WG_COLOR_MODE=never
mkdir -p /run/rn # where the agents' control sockets go (a minimal guest may not have it)

finish() {
    summary "e2e-sessions ($BACKEND)"
    exit
}

# Time from bash itself (busybox date may not know %N): NOW in milliseconds.
now_ms() {
    local t=${EPOCHREALTIME:-}
    if [ -n "$t" ]; then t=${t/[.,]/}; NOW=$((t / 1000)); else NOW=$(($(date +%s) * 1000)); fi
}
# until_ok SECONDS CMD...: retry CMD every 50 ms until it succeeds or time runs out
until_ok() {
    local end
    now_ms; end=$((NOW + $1 * 1000)); shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        now_ms; [ "$NOW" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# --- governance: three approvers, threshold 2 (ci/netns-lib.sh) ---
governance sessions || { ko "operator ledger bootstrapped"; finish; }

make_underlay
if [ "$BACKEND" = kernel ]; then
    if ip -n rns-hub link add rnsprobe type wireguard 2>/dev/null; then
        ip -n rns-hub link del rnsprobe
    else
        ko "kernel WireGuard available (ip link add … type wireguard)"; finish
    fi
fi
declare -A IDX=([a]=1 [b]=2 [c]=3) KEY OV
for n in a b c; do
    OV[$n]=100.96.0.${IDX[$n]}
    add_host "$n" "${IDX[$n]}"
    mkdir -m 700 "$W/$n"
    eps=()
    for m in a b c; do [ "$m" = "$n" ] || eps+=(--endpoint "$m=10.99.0.${IDX[$m]}:5183${IDX[$m]}"); done
    KEY[$n]=$(rn node init --node-id "$n" --genesis "$W/genesis.json" --pin "$ROOT" --interface "rns$n" \
        --listen-port "5183${IDX[$n]}" --backend "$BACKEND" --firewall nftables "${eps[@]}" --keepalive 5 \
        --config "$W/$n/node.json" --state-dir "$W/$n/state" --key "$W/$n/wg.key" 2>/dev/null)
done
printf '[' >"$W/batch.json"
sep=""
for n in a b c; do
    printf '%s{"op":"add_node","node":{"id":"%s","pubkey":"%s","owner":"ops","tags":["tag:%s"],"addresses":["%s/32"]}}' \
        "$sep" "$n" "${KEY[$n]}" "$n" "${OV[$n]}" >>"$W/batch.json"
    sep=","
done
printf ']' >>"$W/batch.json"
if ! { rn member propose --batch "$W/batch.json" --state-dir "$W/op" --reason "three nodes" -o "$W/add.json" 2>/dev/null &&
    sign2 "$W/add.json"; }; then ko "nodes a, b, c admitted"; finish; fi
# Two policies that differ only by a rule nothing uses (a->b tcp/7); change 2 toggles between them.
RULES='{"src":["tag:a"],"dst":["tag:b"],"proto":"icmp"},
 {"src":["tag:b"],"dst":["tag:a"],"proto":"icmp"},
 {"src":["tag:a"],"dst":["tag:c"],"proto":"icmp"},
 {"src":["tag:c"],"dst":["tag:a"],"proto":"icmp"}'
printf '{"kind":"rn.policy.v1","rules":[\n %s]}\n' "$RULES" >"$W/policy-0.json"
printf '{"kind":"rn.policy.v1","rules":[\n %s,\n {"src":["tag:a"],"dst":["tag:b"],"proto":"tcp","ports":["7"]}]}\n' "$RULES" >"$W/policy-1.json"
if ! { rn member propose set-policy "$W/policy-0.json" --state-dir "$W/op" -o "$W/pol.json" 2>/dev/null &&
    sign2 "$W/pol.json"; }; then ko "policy pinned"; finish; fi
rn member export --state-dir "$W/op" -o "$W/bundle.json" 2>/dev/null
for n in a b c; do rn member apply "$W/bundle.json" --state-dir "$W/$n/state" >/dev/null; done

# --- start: wireguard-go for uapi, then the three agents (by PID: ip netns exec execs) ---
[ "$BACKEND" = kernel ] || mkdir -p /var/run/wireguard
if [ "$BACKEND" = uapi ]; then
    for n in a b c; do
        ip netns exec "rns-$n" wireguard-go -f "rns$n" >"$W/$n/wggo.log" 2>&1 &
        PIDS+=($!)
    done
    for n in a b c; do until_ok 5 test -S "/var/run/wireguard/rns$n.sock" || ko "wireguard-go started for $n"; done
fi
for n in a b c; do
    ip netns exec "rns-$n" "$RN" node run --config "$W/$n/node.json" >>"$W/$n/agent.log" 2>&1 &
    PIDS+=($!)
done

# wg_line NODE WHAT KEY: the fields after KEY in `wg show rnsNODE WHAT` (fails if KEY is absent)
wg_line() {
    local out k rest
    out=$(inns "$1" timeout 5 wg show "rns$1" "$2" 2>/dev/null) || return 1
    while IFS=$'\t' read -r k rest; do
        [ "$k" = "$3" ] && { printf '%s\n' "$rest"; return 0; }
    done <<<"$out"
    return 1
}
has_peer() { wg_line "$1" latest-handshakes "$2" >/dev/null; }
status_json() { "$RN" node status --config "$W/$1/node.json" --json 2>/dev/null; }
# enforces NODE EPOCH: trusted, with that epoch in force
# shellcheck disable=SC2317 # called through until_ok
enforces() { local s; s=$(status_json "$1") && [[ $s == *'"mode":"trusted"'* && $s == *"\"epoch\":$2,"* ]]; }
# shellcheck disable=SC2317 # called through until_ok
pings() { inns "$1" ping -c1 -W1 "$2" >/dev/null 2>&1; }
until_ok 20 has_peer a "${KEY[b]}" && until_ok 20 has_peer b "${KEY[a]}"
if ! check "a pings b" until_ok 20 pings a "${OV[b]}"; then
    for n in a b c; do echo "agent $n, last log lines:"; tail -5 "$W/$n/agent.log"; done
    finish
fi
check "b pings a" until_ok 5 pings b "${OV[a]}"
# A pings b once its interface holds the peer, which can be before its status is published:
# the epoch is read once a says it is trusted.
# shellcheck disable=SC2317 # called through until_ok
trusted() { [[ $(status_json "$1") == *'"mode":"trusted"'* ]]; }
until_ok 20 trusted a
EPOCH=$(status_json a | sed -n 's/.*"epoch":\([0-9]*\),.*/\1/p')
check "a and b trusted at the same epoch ($EPOCH)" until_ok 10 enforces b "$EPOCH" || finish

# sample: one line "hsA rxA txA hsB rxB txB" (a's view of b, b's view of a; "-" when absent)
sample() {
    local n peer hs tr out=""
    for n in a b; do
        peer=b; [ "$n" = b ] && peer=a
        hs=$(wg_line "$n" latest-handshakes "${KEY[$peer]}") || hs=-
        tr=$(wg_line "$n" transfer "${KEY[$peer]}") || tr=$'-\t-'
        out+="$hs ${tr//$'\t'/ } "
    done
    SAMPLE=${out% }
}
# settled_sample: a sample taken in a later second than both handshakes it shows (waiting up to
# about 2 s), so that a handshake the next change sets off cannot hide in the same second.
settled_sample() {
    local hsa hsb ms _x
    for _x in 1 2 3; do
        sample
        read -r hsa _ _ hsb _ <<<"$SAMPLE"
        [[ $hsa =~ ^[0-9]+$ ]] || hsa=0
        [[ $hsb =~ ^[0-9]+$ ]] || hsb=0
        [ "$hsb" -gt "$hsa" ] && hsa=$hsb
        now_ms
        [ $((NOW / 1000)) -gt "$hsa" ] && return 0
        ms=$((1000 - NOW % 1000 + 20))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    done
}
# compare OLD NEW: sets RENEWED, RESET, NATURAL (1 when seen). A handshake at least 115 s after
# the previous one is WireGuard's own rekey (every 120 s), not the change's doing.
compare() {
    local -a o n
    local j
    read -r -a o <<<"$1"
    read -r -a n <<<"$2"
    for j in 0 3; do
        [ "${o[j]}" = "${n[j]}" ] && continue
        if [[ ${o[j]} =~ ^[1-9][0-9]*$ && ${n[j]} =~ ^[0-9]+$ ]] && [ "${n[j]}" -ge $((o[j] + 115)) ]; then
            NATURAL=1
        else
            RENEWED=1
        fi
    done
    for j in 1 2 4 5; do
        if [[ ! ${o[j]} =~ ^[0-9]+$ || ! ${n[j]} =~ ^[0-9]+$ ]] || [ "${n[j]}" -lt "${o[j]}" ]; then RESET=1; fi
    done
}
# a_iface_ok: a's interface holds its overlay address and has MTU 1420 (sets ADDR_OK, MTU_OK to 0
# if not; MTU_SEEN to the MTU read)
a_iface_ok() {
    local s
    s=$(ip -n rns-a addr show rnsa 2>/dev/null)
    [[ $s == *"inet ${OV[a]}/"* ]] || ADDR_OK=0
    [[ $s == *" mtu 1420 "* ]] || MTU_OK=0
    [[ $s =~ \ mtu\ ([0-9]+) ]] && MTU_SEEN=${BASH_REMATCH[1]}
}
# shellcheck disable=SC2317 # called through until_ok
# hs_moved TS: a's latest handshake with b is no longer TS
hs_moved() { local v; v=$(wg_line a latest-handshakes "${KEY[b]}") && [ "$v" != "$1" ]; }
# peer_state NODE KEY present|absent: NODE's interface has (or lacks) KEY as a peer
peer_state() { if has_peer "$1" "$2"; then [ "$3" = present ]; else [ "$3" = absent ] && lacks_peer "rns-$1" "rns$1" "$2"; fi; }

# --- the runs ---
CAP=800 # pings at most per run (40 s); ping is stopped once the changes are done
T_RENEWED=0 T_RESETS=0 T_SENT=0 T_RECV=0 T_LOST=0 T_CHANGES=0 T_NATURAL=0 MAX_LOST_CHANGE=0
T_ENFORCED=0 T_APPLIED=0 T_ADDR=0 T_MTU=0 RUNS_LOSS_OK=0 RUNS_COVERED=0 RUNS_DONE=0 POLICY_NOW=0
NAMES=(x add-node set-policy rotate-node-key revoke-node)
for i in $(seq "$RUNS"); do
    # Prepare the four signed changes (they chain on the operator ledger), then measure.
    c="c$i"
    K1=$(wg genkey | wg pubkey)
    K2=$(wg genkey | wg pubkey)
    pnext=$((1 - POLICY_NOW))
    F=()
    for k in 1 2 3 4; do F[k]=$W/$(printf 'r%03d-%d' "$i" "$k")-${NAMES[k]}.json; done
    if ! { rn member propose add-node --id "$c" --pubkey "$K1" --owner ops --tag tag:c --state-dir "$W/op" \
        --reason "run $i: add $c" -o "${F[1]}" 2>/dev/null && sign2 "${F[1]}" &&
        rn member propose set-policy "$W/policy-$pnext.json" --state-dir "$W/op" --reason "run $i: policy $pnext" \
            -o "${F[2]}" 2>/dev/null && sign2 "${F[2]}" &&
        rn member propose rotate-node-key "$c" --pubkey "$K2" --state-dir "$W/op" --reason "run $i: re-key $c" \
            -o "${F[3]}" 2>/dev/null && sign2 "${F[3]}" &&
        rn member propose revoke-node "$c" --state-dir "$W/op" --reason "run $i: revoke $c" \
            -o "${F[4]}" 2>/dev/null && sign2 "${F[4]}"; }; then
        ko "run $i: changes proposed, signed 2 of 3 and committed"
        break
    fi
    POLICY_NOW=$pnext
    EXPECT=(x "$K1 present" "$K1 present" "$K2 present" "$K2 absent")

    # Keep WireGuard's own 120 s rekey out of the run: if a's session with b is older than 90 s,
    # wait (bounded) for that rekey first.
    sample; read -r hs0 _ <<<"$SAMPLE"
    now_ms
    if [[ $hs0 =~ ^[1-9][0-9]*$ ]] && [ $((NOW / 1000 - hs0)) -gt 90 ]; then
        until_ok 40 hs_moved "$hs0" || echo "run $i: a's session with b is $((NOW / 1000 - hs0)) s old and was not renewed within 40 s"
    fi

    now_ms; T_PING=$NOW
    ip netns exec rns-a ping -i 0.05 -c "$CAP" -w $((CAP / 20 + 5)) "${OV[b]}" >"$W/ping$i.txt" 2>&1 &
    PING_PID=$!
    PIDS+=("$PING_PID")
    sleep 0.5
    run_renewed=0 run_resets=0 run_enforced=0 run_applied=0 run_addr=0 run_mtu=0 MTU_SEEN=none
    DELIVERED=()
    settled_sample; prev=$SAMPLE
    for k in 1 2 3 4; do
        RENEWED=0 RESET=0 NATURAL=0 ADDR_OK=1 MTU_OK=1
        now_ms; DELIVERED[k]=$NOW
        EPOCH=$((EPOCH + 1))
        deliver "${F[k]}" a b c
        if until_ok 10 enforces a "$EPOCH" && until_ok 10 enforces b "$EPOCH"; then
            run_enforced=$((run_enforced + 1))
        fi
        now_ms; took=$((NOW - DELIVERED[k]))
        sample; post=$SAMPLE
        a_iface_ok
        read -r key want <<<"${EXPECT[k]}"
        peer_state a "$key" "$want" && run_applied=$((run_applied + 1))
        compare "$prev" "$post"
        sleep 0.3 # then sample again: what the change set off later counts against it too
        settled_sample; after=$SAMPLE
        a_iface_ok
        compare "$post" "$after"
        run_renewed=$((run_renewed + RENEWED))
        run_resets=$((run_resets + RESET))
        T_NATURAL=$((T_NATURAL + NATURAL))
        run_addr=$((run_addr + ADDR_OK))
        run_mtu=$((run_mtu + MTU_OK))
        if [ "${E2E_SESSIONS_VERBOSE:-0}" = 1 ]; then
            echo "  run $i change $k (${NAMES[k]}): epoch $EPOCH in ${took} ms; [hsA rxA txA hsB rxB txB] $prev -> $post -> $after;" \
                "renewed $RENEWED, reset $RESET, natural rekey $NATURAL, address $ADDR_OK, mtu $MTU_OK"
        fi
        prev=$after
    done
    sleep 0.5
    if kill -0 "$PING_PID" 2>/dev/null; then
        covered=1
        kill -INT "$PING_PID" 2>/dev/null
    else
        covered=0
    fi
    until_ok 5 bash -c "! kill -0 $PING_PID" || kill -9 "$PING_PID" 2>/dev/null
    wait "$PING_PID" 2>/dev/null

    # The summary gives sent and received; the per-reply lines say which were lost, and when.
    sent=0 recv=0 base=0
    declare -A GOT=()
    re_sum='([0-9]+) packets transmitted, ([0-9]+) (packets )?received'
    re_seq='seq=([0-9]+)'
    while IFS= read -r line; do
        if [[ $line == *"bytes from"* && $line != *DUP* && $line =~ $re_seq ]]; then
            GOT[${BASH_REMATCH[1]}]=1
            [[ $line == *icmp_seq=* ]] && base=1 # iputils counts from 1, busybox from 0
        elif [[ $line =~ $re_sum ]]; then
            sent=${BASH_REMATCH[1]} recv=${BASH_REMATCH[2]}
        fi
    done <"$W/ping$i.txt"
    last=$((base + sent - 1))
    # Stopped by us: the last request may still have been on its way back; not a loss.
    if [ "$covered" = 1 ] && [ "$sent" -gt 0 ] && [ -z "${GOT[$last]:-}" ]; then sent=$((sent - 1)); fi
    lost=$((sent - recv))
    [ "$lost" -lt 0 ] && lost=0
    BUCKET=(0 0 0 0 0)
    for ((s = base; s < base + sent; s++)); do
        [ -n "${GOT[$s]:-}" ] && continue
        t=$((T_PING + (s - base) * 50))
        b=0
        for k in 1 2 3 4; do [ "$t" -ge "${DELIVERED[k]}" ] && b=$k; done
        BUCKET[b]=$((BUCKET[b] + 1))
    done
    unset GOT
    run_max=0
    for k in 1 2 3 4; do [ "${BUCKET[k]}" -gt "$run_max" ] && run_max=${BUCKET[k]}; done
    [ "$run_max" -gt "$MAX_LOST_CHANGE" ] && MAX_LOST_CHANGE=$run_max

    echo "run $i: 4 changes, handshakes renewed $run_renewed, counters reset $run_resets, pings $sent sent $recv received (lost $lost);" \
        "lost per change ${BUCKET[1]}/${BUCKET[2]}/${BUCKET[3]}/${BUCKET[4]} (before ${BUCKET[0]}), enforced $run_enforced/4," \
        "address kept $run_addr/4, mtu 1420 $run_mtu/4 (last read: $MTU_SEEN)"
    RUNS_DONE=$((RUNS_DONE + 1))
    T_CHANGES=$((T_CHANGES + 4))
    T_RENEWED=$((T_RENEWED + run_renewed))
    T_RESETS=$((T_RESETS + run_resets))
    T_SENT=$((T_SENT + sent))
    T_RECV=$((T_RECV + recv))
    T_LOST=$((T_LOST + lost))
    T_ENFORCED=$((T_ENFORCED + run_enforced))
    T_APPLIED=$((T_APPLIED + run_applied))
    T_ADDR=$((T_ADDR + run_addr))
    T_MTU=$((T_MTU + run_mtu))
    RUNS_COVERED=$((RUNS_COVERED + covered))
    [ "$lost" -le 4 ] && [ "$sent" -gt 0 ] && RUNS_LOSS_OK=$((RUNS_LOSS_OK + 1)) # 1 per change
done

echo "summary ($BACKEND): $RUNS_DONE runs, $T_CHANGES changes, handshakes renewed $T_RENEWED, counters reset $T_RESETS," \
    "pings $T_SENT sent $T_RECV received (lost $T_LOST), max lost per change $MAX_LOST_CHANGE, natural rekeys $T_NATURAL"
printf '{"backend":"%s","runs":%d,"changes":%d,"renewed_handshakes":%d,"counter_resets":%d,"pings_sent":%d,"pings_lost":%d,"max_lost_per_change":%d}\n' \
    "$BACKEND" "$RUNS_DONE" "$T_CHANGES" "$T_RENEWED" "$T_RESETS" "$T_SENT" "$T_LOST" "$MAX_LOST_CHANGE" >"${E2E_SESSIONS_OUT:-/dev/null}"
check "all $RUNS runs measured ($RUNS_DONE)" [ "$RUNS_DONE" = "$RUNS" ]
check "every change enforced by a and b within 10 s ($T_ENFORCED of $T_CHANGES)" [ "$T_ENFORCED" = "$T_CHANGES" ]
check "every change reached a's interface: cI's key added, re-keyed, removed ($T_APPLIED of $T_CHANGES)" [ "$T_APPLIED" = "$T_CHANGES" ]
check "pings ran through every change ($RUNS_COVERED of $RUNS_DONE runs)" [ "$RUNS_COVERED" = "$RUNS_DONE" ]
check "no a<->b handshake renewed by a change ($T_RENEWED of $T_CHANGES changes renewed it)" [ "$T_RENEWED" = 0 ]
check "no a<->b transfer counter reset ($T_RESETS of $T_CHANGES changes reset one)" [ "$T_RESETS" = 0 ]
check "pings lost <= 1 per change ($T_LOST lost over $T_CHANGES changes; $RUNS_LOSS_OK of $RUNS_DONE runs within 4)" \
    [ "$RUNS_LOSS_OK" = "$RUNS_DONE" ]
check "a keeps its overlay address ${OV[a]} after every change ($T_ADDR of $T_CHANGES)" [ "$T_ADDR" = "$T_CHANGES" ]
check "a's interface MTU is 1420 after every change ($T_MTU of $T_CHANGES)" [ "$T_MTU" = "$T_CHANGES" ]
finish
