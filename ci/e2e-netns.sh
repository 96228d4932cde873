#!/usr/bin/env bash
# End to end in network namespaces with real WireGuard and nftables (needs root).
#   a, b, c: embedded userspace WireGuard; d: Debian's wireguard-go through its UAPI socket.
#   Policy: a<->b icmp, a->b tcp/22, a<->d icmp; c gets nothing.
# Usage: ci/e2e-netns.sh [RN_BINARY] [RUNS]   (RUNS: revocation latency samples, default 10)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:-target/debug/rn}")
RUNS=${2:-10}
source ci/netns-lib.sh
NS_PREFIX=rnt
need_root_tools || exit 1
e2e_begin e2e

# --- governance: three approvers, threshold 2 (ci/netns-lib.sh) ---
governance e2e

make_underlay
declare -A IDX=([a]=1 [b]=2 [c]=3 [d]=4) KEY
for n in a b c d; do
    add_host "$n" "${IDX[$n]}"
    mkdir -m 700 "$W/$n"
    eps=()
    for m in a b c d; do [ "$m" = "$n" ] || eps+=(--endpoint "$m=10.99.0.${IDX[$m]}:5182${IDX[$m]}"); done
    backend=userspace; [ "$n" = d ] && backend=uapi
    KEY[$n]=$(rn node init --node-id "$n" --genesis "$W/genesis.json" --pin "$ROOT" --interface "rnt$n" \
        --listen-port "5182${IDX[$n]}" --backend "$backend" --firewall nftables "${eps[@]}" --keepalive 5 \
        --config "$W/$n/node.json" --state-dir "$W/$n/state" --key "$W/$n/wg.key" 2>/dev/null)
done

printf '[' >"$W/batch.json"
sep=""
for n in a b c d; do
    printf '%s{"op":"add_node","node":{"id":"%s","pubkey":"%s","owner":"ops","tags":["tag:%s"]}}' "$sep" "$n" "${KEY[$n]}" "$n" >>"$W/batch.json"
    sep=","
done
printf ']' >>"$W/batch.json"
rn member propose --batch "$W/batch.json" --state-dir "$W/op" --reason "four nodes" -o "$W/add.json" 2>/dev/null && sign2 "$W/add.json"
cat >"$W/policy.json" <<'EOF'
{"kind":"rn.policy.v1","rules":[
 {"src":["tag:a"],"dst":["tag:b"],"proto":"icmp"},
 {"src":["tag:b"],"dst":["tag:a"],"proto":"icmp"},
 {"src":["tag:a"],"dst":["tag:b"],"proto":"tcp","ports":["22"]},
 {"src":["tag:a"],"dst":["tag:d"],"proto":"icmp"},
 {"src":["tag:d"],"dst":["tag:a"],"proto":"icmp"}]}
EOF
rn member propose set-policy "$W/policy.json" --state-dir "$W/op" -o "$W/pol.json" 2>/dev/null && sign2 "$W/pol.json"
rn member export --state-dir "$W/op" -o "$W/bundle.json" 2>/dev/null
for n in a b c d; do rn member apply "$W/bundle.json" --state-dir "$W/$n/state" >/dev/null; done

# --- start: wireguard-go for d, then the four agents ---
mkdir -p /var/run/wireguard
ip netns exec rnt-d wireguard-go -f rntd >"$W/wggo.log" 2>&1 &
PIDS+=($!)
wait_for 5 test -S /var/run/wireguard/rntd.sock || ko "wireguard-go started"
declare -A AGENT=()  # node -> the PID of its agent
start_agent() {
    # Not through a shell function: $! must be the agent itself, so it can be stopped by PID.
    # Each agent serves its metrics on its own namespace's loopback too.
    ip netns exec "rnt-$1" "$RN" node run --config "$W/$1/node.json" --metrics-file "$W/$1/metrics.prom" \
        --metrics-listen 127.0.0.1:9851 >>"$W/$1/agent.log" 2>&1 &
    PIDS+=($!)
    AGENT[$1]=$!
}
for n in a b c d; do start_agent "$n"; done
peers_of() { inns "$1" timeout 5 wg show "rnt$1" peers 2>/dev/null; }
has_peer() { peers_of "$1" | grep -qF "${KEY[$2]}"; }
has_peer_key() { peers_of "$1" | grep -qF "$2"; }
trusted() { "$RN" node status --config "$W/$1/node.json" --json 2>/dev/null | grep -q '"mode":"trusted"'; }
restricted() { "$RN" node status --config "$W/$1/node.json" --json 2>/dev/null | grep -q '"mode":"restricted"'; }
wait_for 20 has_peer a b && wait_for 20 has_peer b a && wait_for 20 has_peer d a
check "agents trusted and peered as the policy says" wait_for 5 trusted a

# --- 1. reachability follows the ledger and the policy ---
OV=(x 100.96.0.1 100.96.0.2 100.96.0.3 100.96.0.4)
pings() { inns "$1" ping -c1 -W1 "$2" >/dev/null 2>&1; }
check "a pings b" wait_for 15 pings a "${OV[2]}"
check "b pings a" wait_for 5 pings b "${OV[1]}"
# The metrics endpoint: b as a peer of a (userspace backend) with a handshake age and bytes that
# agree with what the interface reports (read from it when /metrics is asked for; the wait
# covers the first handshake), and build info.
check "a's metrics over HTTP agree with wg show for peer b (userspace backend)" wait_for 12 metrics_agree a rnta b "${KEY[b]}"
echo "  $METRICS_NOTE"
build_info_a() { printf '%s\n' "$METRICS" | grep -q '^rn_build_info{node="a",version="'; }
check "a's metrics carry its build info" build_info_a
check "a has no peer c" lacks_peer rnt-a rnta "${KEY[c]}"
check "c has no peers at all" no_peers rnt-c rntc
check "a cannot reach c" bash -c "! ip netns exec rnt-a ping -c2 -W1 ${OV[3]} >/dev/null 2>&1"
inns b bash -c "timeout 20 nc -l -k 22 >/dev/null 2>&1 & timeout 20 nc -l -k 23 >/dev/null 2>&1 &"
sleep 0.3
check "tcp/22 a->b connects" wait_for 5 inns a nc -z -w2 "${OV[2]}" 22
check "tcp/23 a->b is dropped by nft on b" bash -c "! ip netns exec rnt-a nc -z -w2 ${OV[2]} 23"
check "b's nft ruleset is loaded" bash -c "ip netns exec rnt-b nft list table inet rn | grep -q 'tcp dport 22 accept'"
inns b nft delete table inet rn
check "b's table deleted by hand is loaded again within 12 s" wait_for 12 bash -c "ip netns exec rnt-b nft list table inet rn 2>/dev/null | grep -q 'tcp dport 22 accept'"
check "tcp/23 a->b dropped again" bash -c "! ip netns exec rnt-a nc -z -w2 ${OV[2]} 23"
inns b nft delete table inet rn
"$RN" node reload --config "$W/b/node.json" >/dev/null
check "b's table deleted by hand is loaded again within 2 s of rn node reload" wait_for 2 bash -c "ip netns exec rnt-b nft list table inet rn 2>/dev/null | grep -q 'tcp dport 22 accept'"

# --- 6. interop: d runs wireguard-go behind the uapi backend ---
check "a pings d (wireguard-go)" wait_for 15 pings a "${OV[4]}"
check "d's metrics over HTTP agree with wg show for peer a (uapi backend)" wait_for 12 metrics_agree d rntd a "${KEY[a]}"
echo "  $METRICS_NOTE"
check "d pings a" wait_for 5 pings d "${OV[1]}"

# --- 5. drift: a peer added by hand disappears within the drift interval ---
STRAY=$(wg genkey | wg pubkey)
inns a wg set rnta peer "$STRAY" allowed-ips 10.250.0.1/32
check "hand-added peer removed within 12 s" wait_for 12 lacks_peer rnt-a rnta "$STRAY"
has_addr() { ip -n "rnt-$1" -o address show dev "rnt$1" 2>/dev/null | grep -qF " $2/"; }
mtu_is() { ip -n "rnt-$1" -o link show dev "rnt$1" 2>/dev/null | grep -q " mtu $2 "; }
check "a's interface has MTU 1420" mtu_is a 1420
inns a ip address flush dev rnta
inns a ip link set dev rnta mtu 1500
check "address removed by hand restored within 12 s" wait_for 12 has_addr a "${OV[1]}"
check "MTU changed by hand restored within 12 s" wait_for 2 mtu_is a 1420
check "a pings b again after the address came back" wait_for 5 pings a "${OV[2]}"
inns b ip link del dev rntb
check "interface deleted by hand re-created within 12 s" wait_for 12 has_addr b "${OV[2]}"
check "re-created interface has its peers again" wait_for 5 has_peer b a
check "a pings b through the re-created interface" wait_for 10 pings a "${OV[2]}"
check "b still trusted after the re-creation" trusted b

# --- 2. revocation latency: a signed revoke of b lands in the inboxes; b's peer must go ---
LAT=()
for i in $(seq "$RUNS"); do
    rn member propose revoke-node b --state-dir "$W/op" --reason "drill $i" -o "$W/rev$i.json" 2>/dev/null && sign2 "$W/rev$i.json" || { ko "revoke $i signed"; break; }
    t0=$(date +%s%N)
    deliver "$W/rev$i.json" a c d b
    if wait_for 10 lacks_peer rnt-a rnta "${KEY[b]}"; then
        LAT+=($(( ($(date +%s%N) - t0) / 1000000 )))
    else
        ko "revocation $i: b still a peer of a after 10 s"
    fi
    if [ "$i" = 1 ]; then
        check "traffic a->b stops after the revocation" bash -c "! ip netns exec rnt-a ping -c2 -W1 ${OV[2]} >/dev/null 2>&1"
        check "b is restricted after its own revocation" wait_for 5 restricted b
        # 3. a revoked node cannot come back by hand or by replaying its old add
        inns b wg set rntb peer "${KEY[a]}" allowed-ips "${OV[1]}/32" endpoint 10.99.0.1:51821
        check "b re-adding a by hand gets no traffic through" bash -c "! ip netns exec rnt-b ping -c2 -W1 ${OV[1]} >/dev/null 2>&1"
        epoch() { "$RN" node status --config "$W/$1/node.json" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])'; }
        before=$(epoch a)
        deliver "$W/add.json" a
        check "replayed old add update is a no-op (already applied)" wait_for 5 bash -c "[ ! -e '$W/a/state/inbox/add.json' ] && [ \"\$(ls '$W/a/state/inbox/rejected' 2>/dev/null)\" = '' ]"
        check "epoch unchanged after the replay" bash -c "[ \"$before\" = \"\$('$RN' node status --config '$W/a/node.json' --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"epoch\"])')\" ]"
        check "b still no peer of a after the replay" lacks_peer rnt-a rnta "${KEY[b]}"
    fi
    rn member propose restore-node b --state-dir "$W/op" --reason "drill $i restore" -o "$W/res$i.json" 2>/dev/null && sign2 "$W/res$i.json"
    deliver "$W/res$i.json" a c d b
    wait_for 10 has_peer a b || ko "restore $i: b did not come back"
done
if [ ${#LAT[@]} -gt 0 ]; then
    mapfile -t SORTED < <(printf '%s\n' "${LAT[@]}" | sort -n)
    n=${#SORTED[@]}
    P50=${SORTED[$(( (n - 1) / 2 ))]}
    P95=${SORTED[$(( (n * 95 + 99) / 100 - 1 ))]}
    echo "revocation latency (file landing -> peer gone), $n runs: p50 ${P50} ms, p95 ${P95} ms, max ${SORTED[$((n - 1))]} ms; target p95 <= 1000 ms"
    echo "{\"runs\":$n,\"p50_ms\":$P50,\"p95_ms\":$P95,\"samples_ms\":[$(IFS=,; echo "${LAT[*]}")]}" >"${E2E_LATENCY_OUT:-/dev/null}"
    check "revocation p95 <= 1 s" [ "$P95" -le 1000 ]
fi

# --- 8. routine re-key of a, with b pinging a every 50 ms: the running agent switches ---
status_field() { "$RN" node status --config "$W/$1/node.json" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
op_epoch() { rn member status --state-dir "$W/op" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])'; }
wait_for 10 pings b "${OV[1]}"
NEXT=$(rn node rekey --config "$W/a/node.json" 2>/dev/null)
check "rn node rekey staged a key beside a's" test -f "$W/a/wg.key.next"
inns b ping -i 0.05 -c 120 -W 1 "${OV[1]}" >"$W/rekey-ping.txt" 2>&1 &
PING=$!
sleep 1
rn member propose rotate-node-key a --pubkey "$NEXT" --state-dir "$W/op" --reason "routine re-key" -o "$W/rekey.json" 2>/dev/null &&
    sign2 "$W/rekey.json" && deliver "$W/rekey.json" a b c d
check "a's status shows the new key" wait_for 10 bash -c "[ \"\$('$RN' node status --config '$W/a/node.json' --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"key\"])')\" = '$NEXT' ]"
check "a's interface holds the new key" wait_for 5 bash -c "[ \"\$(ip netns exec rnt-a wg show rnta public-key)\" = '$NEXT' ]"
check "b's peer for a is the new key" wait_for 5 has_peer_key b "$NEXT"
wait "$PING"
sent=$(awk '/packets transmitted/ {print $1}' "$W/rekey-ping.txt"); got=$(awk '/packets transmitted/ {print $4}' "$W/rekey-ping.txt")
echo "routine re-key of a: pings b->a every 50 ms: $sent sent, $got received, $((sent - got)) lost"
check "re-key: at most 2 pings lost ($((sent - got)) of $sent)" [ $((sent - got)) -le 2 ]
check "the staged key became a's key file" bash -c "[ ! -e '$W/a/wg.key.next' ] && [ \"\$(wg pubkey <'$W/a/wg.key')\" = '$NEXT' ]"
check "a still trusted after the re-key" trusted a
KEY[a]=$NEXT

# --- 9. b's state directory rebuilt under the running agent: moved aside, bootstrapped, caught
# up from an export; the agent follows the path, and enforces later epochs with no restart ---
mv "$W/b/state" "$W/b/state.aside"
mv "$W/b/state.watermark" "$W/b/state.watermark.aside"
rn member bootstrap --genesis "$W/genesis.json" --pin "$ROOT" --state-dir "$W/b/state" >/dev/null
rn member export --state-dir "$W/op" -o "$W/rebuild.json" 2>/dev/null
rn member apply "$W/rebuild.json" --state-dir "$W/b/state" >/dev/null
E0=$(op_epoch)
check "rebuilt directory: b trusted at epoch $E0 without a restart" wait_for 10 bash -c "[ \"\$('$RN' node status --config '$W/b/node.json' --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[\"mode\"], s[\"epoch\"])')\" = 'trusted $E0' ]"
check "rebuilt directory has its inbox again" wait_for 5 test -d "$W/b/state/inbox"
for i in 1 2; do
    rn member propose quarantine-node c --state-dir "$W/op" --reason "rebuild check $i" -o "$W/q$i.json" 2>/dev/null && sign2 "$W/q$i.json" && deliver "$W/q$i.json" a b d
    rn member propose restore-node c --state-dir "$W/op" --reason "rebuild check $i" -o "$W/r$i.json" 2>/dev/null && sign2 "$W/r$i.json" && deliver "$W/r$i.json" a b d
done
E1=$(op_epoch)
check "rebuilt directory: b enforces epoch $E1 ($((E1 - E0)) later epochs) from its inbox" wait_for 10 bash -c "[ \"\$('$RN' node status --config '$W/b/node.json' --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"epoch\"])')\" = '$E1' ]"
check "b reaches a after the rebuild" wait_for 10 pings b "${OV[1]}"

# --- 4. tamper a's ledger: restart a -> restricted, no traffic; restore -> trusted ---
wait_for 10 pings a "${OV[2]}"
kill "${AGENT[a]}"
# The agent leaves its loop within about a second and is out within its 5 s stop deadline.
check "agent a stopped within 8 s of SIGTERM" wait_for 8 bash -c "! kill -0 ${AGENT[a]}" ||
    { echo "agent a's last log lines:"; tail -5 "$W/a/agent.log"; ls /proc/"${AGENT[a]}"/task 2>/dev/null | while read -r t; do
        echo "  thread $t: $(cat /proc/"${AGENT[a]}"/task/"$t"/wchan 2>/dev/null) $(cut -d' ' -f1 /proc/"${AGENT[a]}"/task/"$t"/syscall 2>/dev/null)"; done; }
kill -9 "${AGENT[a]}" 2>/dev/null
wait "${AGENT[a]}"; rc=$?
check "agent a exited 0 after SIGTERM (exit $rc)" [ "$rc" = 0 ]
check "agent a logged a clean stop" grep -q 'info  stopped$' "$W/a/agent.log"
check "a stopped cleanly: its interface is gone" wait_for 5 bash -c "! ip -n rnt-a link show rnta >/dev/null 2>&1"
cp "$W/a/state/ledger.log" "$W/ledger.log.bak"
flip_bit "$W/a/state/ledger.log" '"reason":"four nodes"' 12
start_agent a
check "tampered ledger: a restricted" wait_for 10 restricted a
check "restricted a has no peers" wait_for 5 no_peers rnt-a rnta
check "restricted a carries no traffic" bash -c "! ip netns exec rnt-a ping -c2 -W1 ${OV[2]} >/dev/null 2>&1"
check "status names the reason" bash -c "'$RN' node status --config '$W/a/node.json' | grep -q 'does not verify'"
cp "$W/ledger.log.bak" "$W/a/state/ledger.log"
check "restored ledger: a trusted again" wait_for 10 trusted a
rm "$W/a/state/ledger.watermark"
"$RN" node reload --config "$W/a/node.json" >/dev/null
check "lost watermark: a restricted" wait_for 10 restricted a
rn member recover --state-dir "$W/a/state" --danger-accept-current >/dev/null
check "after rn member recover: a trusted again" wait_for 10 trusted a
check "after rn member recover: b reachable from a" wait_for 15 pings a "${OV[2]}"

# --- metrics and logs ---
check "metrics file written" grep -q '^rn_ledger_epoch' "$W/a/metrics.prom"

# --- status reads the interface live ---
live_handshake() {
    local st wg
    st=$("$RN" node status --config "$W/a/node.json" --json | python3 -c 'import json,sys; print([p["last_handshake"] for p in json.load(sys.stdin)["peers"] if p["id"] == "b"][0])')
    wg=$(inns a timeout 5 wg show rnta latest-handshakes | awk -v k="${KEY[b]}" '$1 == k {print $2}')
    [ -n "$wg" ] && [ "$wg" != 0 ] && [ "$st" = "$wg" ]
}
check "status shows b's handshake as wg show does" wait_for 5 live_handshake

# --- one agent per interface: a second one for a's interface is refused, a keeps running ---
out=$(ip netns exec rnt-b timeout 10 "$RN" node run --config "$W/a/node.json" 2>&1); rc=$?
check "a second agent for rnta exits 75 (exit $rc)" [ "$rc" = 75 ]
check "it says another agent runs for rnta" grep -q "another rn agent runs for interface rnta" <<<"$out"
check "a is still trusted and reaches b" wait_for 5 pings a "${OV[2]}"

# --- stops: SIGTERM and SIGINT, 5 of each, on c: exit 0, no warning, within 1 s ---
STOPS=()
for i in $(seq 10); do
    sig=TERM; [ $((i % 2)) = 0 ] && sig=INT
    wait_for 10 trusted c || { ko "stop $i: c not trusted before the stop"; break; }
    lines=$(wc -l <"$W/c/agent.log")
    t0=$(date +%s%N)
    kill -"$sig" "${AGENT[c]}"
    wait "${AGENT[c]}"; rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    STOPS+=("$sig:$rc:${ms}ms")
    warned=$(tail -n +"$((lines + 1))" "$W/c/agent.log" | grep -c ' warn \| error ')
    [ "$rc" = 0 ] && [ "$ms" -le 1000 ] && [ "$warned" = 0 ] ||
        ko "stop $i (SIG$sig): exit $rc after $ms ms, $warned warning(s)"
    start_agent c
done
echo "stops (signal:exit:time): ${STOPS[*]}"

# --- a filter that cannot be loaded again restricts the node: c runs with an nft that fails
# once a flag file exists; its table is deleted; c goes restricted, and comes back after ---
# (the agent is up before it is stopped: a background job killed before it execs would run this
# script's exit trap)
wait_for 10 trusted c
kill "${AGENT[c]}"; wait "${AGENT[c]}"
mkdir -p "$W/fakebin"
printf '#!/bin/sh\n[ -e %s ] && { echo "nft: refused (test)" >&2; exit 1; }\nexec %s "$@"\n' "$W/nft-broken" "$(command -v nft)" >"$W/fakebin/nft"
chmod +x "$W/fakebin/nft"
ip netns exec rnt-c env PATH="$W/fakebin:$PATH" "$RN" node run --config "$W/c/node.json" >>"$W/c/agent.log" 2>&1 &
PIDS+=($!); AGENT[c]=$!
check "c trusted with the wrapped nft" wait_for 10 trusted c
touch "$W/nft-broken"
inns c nft delete table inet rn
check "c cannot load its table again: restricted within 12 s" wait_for 12 restricted c
check "the reason names the firewall" bash -c "'$RN' node status --config '$W/c/node.json' | grep -q 'firewall'"
rm "$W/nft-broken"
check "nft works again: c trusted within 12 s, its table back" wait_for 12 bash -c "'$RN' node status --config '$W/c/node.json' --json | grep -q '\"mode\":\"trusted\"' && ip netns exec rnt-c nft list table inet rn >/dev/null 2>&1"
check "10 stops (5 SIGTERM, 5 SIGINT): each exit 0 within 1 s, no warning" [ "$(printf '%s\n' "${STOPS[@]}" | grep -c ':0:')" = 10 ]

# --- 7. the embedded device stops by itself (its UAPI socket removed): the agent stops, exit 75 ---
rm /var/run/wireguard/rnta.sock
check "device gone: agent a stopped within 10 s" wait_for 10 bash -c "! kill -0 ${AGENT[a]}"
kill -9 "${AGENT[a]}" 2>/dev/null
wait "${AGENT[a]}"; rc=$?
check "device gone: agent a exited 75 (exit $rc)" [ "$rc" = 75 ]
check "device gone: the agent said why" grep -q 'tunnel device stopped by itself' "$W/a/agent.log"
check "device gone: a's interface is gone" wait_for 5 bash -c "! ip -n rnt-a link show rnta >/dev/null 2>&1"
summary e2e
