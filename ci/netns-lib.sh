# shellcheck shell=bash
# Shared helpers for the network-namespace end-to-end test and demo (sourced, not run).
# Every host is a namespace this script creates, joined by veth pairs to a bridge that lives
# in its own namespace: nothing touches the machine's real interfaces. Every wait is bounded.

NS_PREFIX=${NS_PREFIX:-rnt}
PIDS=()

need_root_tools() {
    [ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, TUN, nftables)"; return 1; }
    local missing=()
    command -v nft >/dev/null || missing+=(nftables)
    command -v wg >/dev/null || missing+=(wireguard-tools)
    command -v wireguard-go >/dev/null || missing+=(wireguard-go)
    command -v ping >/dev/null || missing+=(iputils-ping)
    command -v nc >/dev/null || missing+=(netcat-openbsd)
    command -v ip >/dev/null || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    [ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }
}

# hub namespace with a bridge; one namespace per host with underlay 10.99.0.N/24
make_underlay() {
    ip netns add "${NS_PREFIX}-hub"
    ip -n "${NS_PREFIX}-hub" link add br0 type bridge
    ip -n "${NS_PREFIX}-hub" link set br0 up
    ip -n "${NS_PREFIX}-hub" link set lo up
}

add_host() { # name index
    local ns="${NS_PREFIX}-$1" i=$2
    ip netns add "$ns"
    ip link add "v${NS_PREFIX}$i" type veth peer name "h${NS_PREFIX}$i"
    ip link set "v${NS_PREFIX}$i" netns "$ns"
    ip link set "h${NS_PREFIX}$i" netns "${NS_PREFIX}-hub"
    ip -n "${NS_PREFIX}-hub" link set "h${NS_PREFIX}$i" master br0 up
    ip -n "$ns" link set "v${NS_PREFIX}$i" name eth0
    ip -n "$ns" addr add "10.99.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

cleanup_netns() {
    # Every process still inside one of our namespaces goes too (by PID, namespace by namespace).
    for ns in $(ip netns list | awk '{print $1}' | grep "^${NS_PREFIX}-"); do
        mapfile -t -O "${#PIDS[@]}" PIDS < <(ip netns pids "$ns" 2>/dev/null)
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^${NS_PREFIX}-"); do ip netns del "$ns"; done
    rm -f /var/run/wireguard/"${NS_PREFIX}"*.sock
}

# lacks_peer NS IF KEY: the interface reads back, and KEY is not among its peers.
# no_peers NS IF: the interface reads back, with no peers. (A failed read is never "no peer".)
lacks_peer() { local p; p=$(ip netns exec "$1" timeout 5 wg show "$2" peers) || return 1; ! grep -qF "$3" <<<"$p"; }
no_peers() { local p; p=$(ip netns exec "$1" timeout 5 wg show "$2" peers) || return 1; [ -z "$p" ]; }

# --- the assertions (ci/assert-lib.sh): the end-to-end scripts print and count passes and
# failures and go on; a script that defined its own ok/ko first (a drill) keeps them ---
PASS=0
FAIL=0
declare -F ok >/dev/null || ok() { echo "PASS $*"; PASS=$((PASS + 1)); }
declare -F ko >/dev/null || ko() { echo "FAIL $*"; FAIL=$((FAIL + 1)); }
# summary NAME: the counts; success only when nothing failed and something was checked.
summary() { echo "$1: $PASS passed, $FAIL failed"; [ "$FAIL" = 0 ] && [ "$PASS" -gt 0 ]; }
# shellcheck source=ci/assert-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/assert-lib.sh" || { echo "FAIL ci/assert-lib.sh cannot be read"; exit 1; }
rn() { "$RN" "$@"; }
# flip_bit FILE NEEDLE OFFSET: flips the low bit of the byte OFFSET bytes into the first NEEDLE
# in FILE (a tampered ledger: the line no longer verifies).
flip_bit() {
    python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, needle, offset = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
b = bytearray(open(path, 'rb').read())
b[b.index(needle) + offset] ^= 1
open(path, 'wb').write(bytes(b))
EOF
}
inns() { local n=$1; shift; ip netns exec "${NS_PREFIX}-$n" "$@"; }

# http_get PORT PATH: the body of a 200 answer to GET PATH from 127.0.0.1:PORT, over bash's
# /dev/tcp (no HTTP client needed).
http_get() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    IFS= read -r line <&3 || { echo "no answer" >&2; return 1; }
    [[ $line == "HTTP/1."?" 200"* ]] || { echo "${line%$'\r'}" >&2; return 1; }
    while IFS= read -r line <&3 && [ -n "${line%$'\r'}" ]; do :; done
    cat <&3
}
# fetch_metrics NODE: NODE's Prometheus text from its agent's --metrics-listen 127.0.0.1:9851,
# inside its namespace: with curl when there is one, else with http_get (the VM guest has no
# curl, and its static busybox wget cannot resolve a URL there).
fetch_metrics() {
    if command -v curl >/dev/null; then
        inns "$1" curl -sSf --max-time 5 http://127.0.0.1:9851/metrics
    else
        inns "$1" timeout 5 bash -c "$(declare -f http_get); http_get 9851 /metrics"
    fi
}
# peer_metric NODE METRIC PEER: that metric's value for PEER in NODE's metrics text ($METRICS).
peer_metric() { printf '%s\n' "$METRICS" | sed -n "s/^$2{node=\"$1\",peer=\"$3\"} //p"; }
# metrics_agree NODE IFACE PEER PEERKEY: NODE's metrics give PEER a handshake of at most 180 s
# ago and a receive count above 0 and not above what `wg show IFACE transfer` reads after it
# (counters only grow). Sets
# METRICS_NOTE to the figures.
metrics_agree() {
    local rx age wgrx
    # shellcheck disable=SC2034 # read by the scripts that source this file
    METRICS_NOTE="$1's metrics: nothing fetched from http://127.0.0.1:9851/metrics"
    METRICS=$(fetch_metrics "$1" 2>&1) || { METRICS_NOTE+=" (${METRICS:0:200})"; return 1; }
    rx=$(peer_metric "$1" rn_peer_receive_bytes_total "$3")
    age=$(peer_metric "$1" rn_peer_last_handshake_age_seconds "$3")
    wgrx=$(inns "$1" wg show "$2" transfer 2>/dev/null | awk -v k="$4" '$1 == k {print $2}')
    METRICS_NOTE="$1's metrics for $3: rx $rx bytes (wg show: $wgrx), handshake ${age}s ago"
    [ -n "$rx" ] && [ -n "$age" ] && [ -n "$wgrx" ] && [ "$rx" -gt 0 ] && [ "$rx" -le "$wgrx" ] && [ "$age" -le 180 ]
}

# governance NETWORK_ID: three approvers (alice, bob owners; carol guardian), threshold 2; the
# signed genesis in $W/genesis.json, its root in $ROOT, the operator's ledger in $W/op.
governance() {
    mkdir -m 700 "$W/keys"
    local who
    for who in alice bob carol; do rn key gen --out "$W/keys/$who" >/dev/null 2>&1; done
    rn member init --network-id "$1" --threshold 2 \
        --approver "alice:owner:$(rn key pub "$W/keys/alice")" \
        --approver "bob:owner:$(rn key pub "$W/keys/bob")" \
        --approver "carol:guardian:$(rn key pub "$W/keys/carol")" -o "$W/genesis.json" >"$W/root" 2>/dev/null
    ROOT=$(cat "$W/root")
    for who in alice bob carol; do rn member sign "$W/genesis.json" --key "$W/keys/$who" --yes 2>/dev/null; done
    rn member bootstrap --genesis "$W/genesis.json" --pin "$ROOT" --state-dir "$W/op" >/dev/null
}
# sign2 FILE: alice and bob sign; the operator ledger commits it
sign2() {
    rn member sign "$1" --key "$W/keys/alice" --yes 2>/dev/null &&
        rn member sign "$1" --key "$W/keys/bob" --yes 2>/dev/null &&
        rn member apply "$1" --state-dir "$W/op" >/dev/null
}
# deliver FILE NODE...: drop a signed file into each node's inbox (atomic rename)
deliver() {
    local f=$1 n; shift
    for n in "$@"; do cp "$f" "$W/$n/state/inbox/.in.tmp" && mv "$W/$n/state/inbox/.in.tmp" "$W/$n/state/inbox/$(basename "$f")"; done
}

# e2e_begin NAME: a private work directory $W; on exit, every namespace, process and file of
# this run goes (leftovers of an interrupted earlier run are cleared first).
e2e_begin() {
    W=$(mktemp -d "/tmp/rn-$1.XXXXXX")
    chmod 700 "$W"
    # Signing journals (one per key, spec §11) of this run's approvers stay in the run.
    export XDG_STATE_HOME="$W/.state"
    trap 'cleanup_netns; for _ in 1 2 3; do rm -rf "$W" 2>/dev/null && break; sleep 0.5; done; rm -f /run/rn/${NS_PREFIX}*.sock' EXIT
    cleanup_netns
}
