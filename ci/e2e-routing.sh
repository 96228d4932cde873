#!/usr/bin/env bash
# Exit nodes and subnet routers end to end in network namespaces (needs root).
#   laptop: chooses exit "exit" (no --allow-lan); granted tcp/80 to the internet via the exit and
#           tcp/22 to 10.20.0.0/16 via the router. It has its own default route, through an
#           uplink 203.0.113.2 -> 203.0.113.1 on the "internet" host: a fallback would work.
#   ops:    chooses "exit" with --allow-lan; granted tcp/80 via the exit and tcp/22 via the router.
#   router: ledger routes 10.20.0.0/16, serves them (masquerade); LAN host 10.20.0.2 behind it;
#           listens on tcp/8080 on its underlay address 10.99.0.3 (a host on the clients' LAN).
#   exit:   ledger exit:true, serves it (masquerade); "internet" host 198.51.100.10 behind it,
#           which also has a private address 192.168.77.10 (the exit's LAN side).
# The internet host counts, with nft, every IPv4 packet from the laptop's uplink address and from
# the exit's address: with the exit revoked, or the laptop restricted, not one packet may come
# from the laptop's own address for 30 s (the kill switch).
# Usage: ci/e2e-routing.sh [RN_BINARY] [BACKEND]   (BACKEND: userspace, the default, or uapi)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:-target/debug/rn}")
BACKEND=${2:-userspace}
source ci/netns-lib.sh
NS_PREFIX=rnr
need_root_tools || exit 1
e2e_begin e2er

mkdir -m 700 "$W/keys"
for who in alice bob carol; do rn key gen --out "$W/keys/$who" >/dev/null 2>&1; done
ROOT=$(rn member init --network-id routing --threshold 2 \
    --approver "alice:owner:$(rn key pub "$W/keys/alice")" --approver "bob:owner:$(rn key pub "$W/keys/bob")" \
    --approver "carol:guardian:$(rn key pub "$W/keys/carol")" -o "$W/genesis.json" 2>/dev/null)
for who in alice bob carol; do rn member sign "$W/genesis.json" --key "$W/keys/$who" --yes 2>/dev/null; done
rn member bootstrap --genesis "$W/genesis.json" --pin "$ROOT" --state-dir "$W/op" >/dev/null
sign2() {
    rn member sign "$1" --key "$W/keys/alice" --yes 2>/dev/null && rn member sign "$1" --key "$W/keys/bob" --yes 2>/dev/null &&
    rn member apply "$1" --state-dir "$W/op" >/dev/null
}
deliver() { local f=$1; shift; for n in "$@"; do cp "$f" "$W/$n/state/inbox/.t" && mv "$W/$n/state/inbox/.t" "$W/$n/state/inbox/$(basename "$f")"; done; }

make_underlay
declare -A IDX=([laptop]=1 [ops]=2 [router]=3 [exit]=4) KEY
for n in laptop ops router exit; do
    add_host "$n" "${IDX[$n]}"
    mkdir -m 700 "$W/$n"
    eps=(); for m in laptop ops router exit; do [ "$m" = "$n" ] || eps+=(--endpoint "$m=10.99.0.${IDX[$m]}:5184${IDX[$m]}"); done
    extra=()
    case $n in
        laptop) extra=(--exit exit) ;;
        ops) extra=(--exit exit --allow-lan) ;;
        router) extra=(--serve-routes --masquerade) ;;
        exit) extra=(--serve-exit --masquerade) ;;
    esac
    KEY[$n]=$(rn node init --node-id "$n" --genesis "$W/genesis.json" --pin "$ROOT" --interface "rnr$n" --listen-port "5184${IDX[$n]}" \
        --backend "$BACKEND" --firewall nftables "${eps[@]}" "${extra[@]}" --keepalive 5 \
        --config "$W/$n/node.json" --state-dir "$W/$n/state" --key "$W/$n/wg.key" 2>/dev/null)
done
# The LAN behind the router and the "internet" behind the exit: plain veth pairs.
ip netns add rnr-lan; ip netns add rnr-inet
ip link add vlan0 type veth peer name vlan1
ip link set vlan0 netns rnr-router; ip link set vlan1 netns rnr-lan
inns router ip addr add 10.20.0.1/16 dev vlan0; inns router ip link set vlan0 up
inns lan ip addr add 10.20.0.2/16 dev vlan1; inns lan ip link set vlan1 up; inns lan ip link set lo up
ip link add vinet0 type veth peer name vinet1
ip link set vinet0 netns rnr-exit; ip link set vinet1 netns rnr-inet
inns exit ip addr add 198.51.100.1/24 dev vinet0; inns exit ip addr add 192.168.77.1/24 dev vinet0; inns exit ip link set vinet0 up
inns inet ip addr add 198.51.100.10/24 dev vinet1; inns inet ip addr add 192.168.77.10/24 dev vinet1
inns inet ip link set vinet1 up; inns inet ip link set lo up
# The laptop's own uplink to the internet host, and its default route: IPv4 only, so the counter
# below sees nothing but what the laptop sends.
ip link add vup0 type veth peer name vup1
ip link set vup0 netns rnr-laptop; ip link set vup1 netns rnr-inet
for end in "laptop vup0 203.0.113.2" "inet vup1 203.0.113.1"; do
    read -r n dev addr <<<"$end"
    inns "$n" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    inns "$n" ip addr add "$addr/24" dev "$dev"; inns "$n" ip link set "$dev" up
done
inns laptop ip route add default via 203.0.113.1
inns inet nft -f - <<'EOF'
table inet count {
  chain input {
    type filter hook input priority filter; policy accept;
    ip saddr 203.0.113.2 counter comment "from the laptop's own address"
    ip saddr 198.51.100.1 counter comment "from the exit"
  }
}
EOF
# from_laptop / from_exit: IPv4 packets the internet host received from that address so far
counted() { inns inet nft list chain inet count input | grep -F "$1" | grep -o 'packets [0-9]*' | cut -d' ' -f2; }
from_laptop() { counted "laptop's own"; }
from_exit() { counted "from the exit"; }

cat >"$W/batch.json" <<EOF
[{"op":"add_node","node":{"id":"laptop","pubkey":"${KEY[laptop]}","owner":"alice","tags":["tag:laptop"]}},
 {"op":"add_node","node":{"id":"ops","pubkey":"${KEY[ops]}","owner":"bob","tags":["tag:ops"]}},
 {"op":"add_node","node":{"id":"router","pubkey":"${KEY[router]}","owner":"ops","tags":["tag:router"],"routes":["10.20.0.0/16"]}},
 {"op":"add_node","node":{"id":"exit","pubkey":"${KEY[exit]}","owner":"ops","tags":["tag:exit"],"exit":true}}]
EOF
rn member propose --batch "$W/batch.json" --state-dir "$W/op" -o "$W/add.json" 2>/dev/null && sign2 "$W/add.json"
cat >"$W/policy.json" <<'EOF'
{"kind":"rn.policy.v1","rules":[
 {"src":["tag:laptop","tag:ops"],"dst":["internet"],"via":"exit","proto":"tcp","ports":["80"]},
 {"src":["tag:laptop","tag:ops"],"dst":["10.20.0.0/16"],"via":"router","proto":"tcp","ports":["22"]}]}
EOF
rn member propose set-policy "$W/policy.json" --state-dir "$W/op" -o "$W/pol.json" 2>/dev/null && sign2 "$W/pol.json"
rn member export --state-dir "$W/op" -o "$W/bundle.json" 2>/dev/null
for n in laptop ops router exit; do rn member apply "$W/bundle.json" --state-dir "$W/$n/state" >/dev/null; done
declare -A AGENT=()
if [ "$BACKEND" = uapi ]; then
    for n in laptop ops router exit; do
        ip netns exec "rnr-$n" wireguard-go -f "rnr$n" >"$W/$n/wggo.log" 2>&1 &
        PIDS+=($!)
    done
    for n in laptop ops router exit; do wait_for 5 test -S "/var/run/wireguard/rnr$n.sock" || ko "wireguard-go started for $n"; done
fi
for n in laptop ops router exit; do
    ip netns exec "rnr-$n" "$RN" node run --config "$W/$n/node.json" >>"$W/$n/agent.log" 2>&1 &
    PIDS+=($!)
    AGENT[$n]=$!
done
has_peer() { inns "$1" wg show "rnr$1" peers 2>/dev/null | grep -qF "${KEY[$2]}"; }
wait_for 20 has_peer laptop exit && wait_for 20 has_peer laptop router && wait_for 20 has_peer exit laptop

# listeners
inns inet bash -c "timeout 240 nc -l -k 80 >/dev/null 2>&1 &"
inns inet bash -c "timeout 240 nc -u -l 53 >'$W/udp53.txt' 2>/dev/null &"
inns lan bash -c "timeout 240 nc -l -k 22 >/dev/null 2>&1 & timeout 240 nc -l -k 80 >/dev/null 2>&1 &"
inns router bash -c "timeout 240 nc -l -k 8080 >/dev/null 2>&1 &"
sleep 0.3

via_mesh() { inns "$1" ip route get "$2" 2>/dev/null | grep -q "dev rnr$1"; }
tcp() { inns "$1" nc -z -w2 "$2" "$3"; }
no_tcp() { ! inns "$1" nc -z -w2 "$2" "$3"; }
status_of() { "$RN" node status --config "$W/$1/node.json" 2>/dev/null; }
status_says() { status_of "$1" | grep -qF "$2"; }
# through_exit NODE: table 51820 holds the default route through the interface
through_exit() { inns "$1" ip route show table 51820 | grep -q "^default dev rnr$1 "; }
# blackholed NODE: the policy routing stays, table 51820 holds the blackhole only
blackholed() {
    inns "$1" ip rule | grep -q 'not from all fwmark 0xca6c lookup 51820' &&
        inns "$1" ip route show table 51820 | grep -q '^blackhole default' && ! through_exit "$1"
}
no_exit_routing() { ! inns "$1" ip rule | grep -q 'fwmark 0xca6c' && [ -z "$(inns "$1" ip route show table 51820 2>/dev/null)" ]; }
# kill_switch_holds SECONDS: every second, the laptop tries tcp/80 and a ping to the internet
# host; none may succeed, and the internet host may have seen no packet from the laptop's own
# address since the test began (so the changeover before the watch counts too).
kill_switch_holds() {
    local got=0 i
    for ((i = 0; i < $1; i++)); do
        inns laptop nc -z -w1 198.51.100.10 80 && got=$((got + 1))
        inns laptop ping -c1 -W1 198.51.100.10 >/dev/null 2>&1 && got=$((got + 1))
    done
    echo "  $1 s, $(($1 * 2)) attempts: $got answered; packets from 203.0.113.2 at the internet host since the start: $(from_laptop)"
    [ "$got" = 0 ] && [ "$(from_laptop)" = 0 ]
}

check "laptop: default traffic goes through the exit" wait_for 10 via_mesh laptop 198.51.100.10
check "laptop: tcp/80 via the exit reaches the internet host" wait_for 10 tcp laptop 198.51.100.10 80
check "the internet host saw the laptop's tcp/80 from the exit's address, nothing from the laptop's own" \
    bash -c "[ $(from_exit) -gt 0 ] && [ $(from_laptop) = 0 ]"
echo probe | inns laptop nc -u -w1 198.51.100.10 53 >/dev/null 2>&1; sleep 0.5
check "laptop: udp/53 via the same exit is dropped at the exit" bash -c "[ ! -s '$W/udp53.txt' ]"
check "laptop: the exit's LAN side (192.168.77.10) is not reachable through the exit" no_tcp laptop 192.168.77.10 80
check "laptop (no --allow-lan): a host on its own LAN (10.99.0.3:8080) is not reachable" no_tcp laptop 10.99.0.3 8080
check "ops (--allow-lan): a host on its own LAN (10.99.0.3:8080) is reachable" wait_for 10 tcp ops 10.99.0.3 8080 ||
    { inns ops ip rule; inns ops ip route show table 51820; inns ops ip route get 10.99.0.3; tail -4 "$W/ops/agent.log"; }
check "laptop: tcp/22 via the router reaches the LAN host" wait_for 10 tcp laptop 10.20.0.2 22
check "laptop: tcp/80 to the LAN host is dropped at the router" no_tcp laptop 10.20.0.2 80
check "ops: tcp/22 via the router reaches the LAN host" wait_for 10 tcp ops 10.20.0.2 22 ||
    { inns ops ip rule; inns ops ip route get 10.20.0.2; inns ops wg show rnrops; tail -4 "$W/ops/agent.log"; }
status_of laptop | tee "$W/laptop-status.txt"
check "laptop: status shows the exit in use and the route used, with their rules" bash -c "grep -q 'exit       exit (granted by rule 0)' '$W/laptop-status.txt' && grep -q '10.20.0.0/16 via router (granted by rule 1)' '$W/laptop-status.txt'"

# The interface deleted by hand while the exit is in use: the blackhole holds until it is back.
# (Not with uapi: the interface is wireguard-go's, which exits with it; rn cannot re-create it.)
if [ "$BACKEND" != uapi ]; then
    inns laptop ip link del rnrlaptop
    check "interface deleted by hand: re-created, and tcp/80 through the exit again within 15 s" wait_for 15 tcp laptop 198.51.100.10 80
    check "interface deleted by hand: not one packet left by the laptop's own default route meanwhile" bash -c "[ $(from_laptop) = 0 ]"
fi

# The laptop goes restricted (its own log tampered while the agent runs): internet traffic stops.
cp "$W/laptop/state/ledger.log" "$W/ledger.log.bak"
flip_bit "$W/laptop/state/ledger.log" '"exit":true' 3
"$RN" node reload --config "$W/laptop/node.json" >/dev/null
check "tampered log: the laptop is restricted" wait_for 10 status_says laptop "mode       restricted"
check "restricted: the exit's policy routing stays, table 51820 a blackhole" wait_for 5 blackholed laptop
check "restricted: for 30 s nothing reaches the internet host, and nothing leaves by the laptop's own default route" kill_switch_holds 30
check "restricted: status says internet traffic is blocked, and how to lift it" \
    status_says laptop "exit       blocked: this node is restricted, so exit exit is not used: internet traffic blocked; rn node exit off to use the local network"
cp "$W/ledger.log.bak" "$W/laptop/state/ledger.log"
"$RN" node reload --config "$W/laptop/node.json" >/dev/null
check "restored log: the laptop uses the exit again" wait_for 15 tcp laptop 198.51.100.10 80

# Revoke the exit: from that moment internet traffic goes nowhere (no fallback), until exit off.
rn member propose revoke-node exit --state-dir "$W/op" --reason "exit compromised" -o "$W/revoke.json" 2>/dev/null && sign2 "$W/revoke.json"
EPOCH=$(rn member status --state-dir "$W/op" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
t0=$(date +%s%N)
deliver "$W/revoke.json" laptop ops router exit
if wait_for 5 blackholed laptop; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "exit revoked: laptop's route through the exit replaced by the blackhole ${ms} ms after the file landed"
    check "exit revoked: the blackhole takes the exit's place within a second" [ "$ms" -le 1000 ]
else
    ko "exit revoked: the blackhole takes the exit's place within a second"
fi
check "exit revoked: for 30 s nothing reaches the internet host, and nothing leaves by the laptop's own default route" kill_switch_holds 30
check "exit revoked: status says why, and how to lift it" \
    status_says laptop "exit       blocked: exit exit revoked at epoch $EPOCH: internet traffic blocked; rn node exit off to use the local network"
check "ops (--allow-lan): its LAN host is still reachable" tcp ops 10.99.0.3 8080
check "the LAN through the router still works" tcp laptop 10.20.0.2 22
"$RN" node exit off --config "$W/laptop/node.json" >/dev/null
check "rn node exit off: the policy routing goes" wait_for 5 no_exit_routing laptop
check "rn node exit off: the direct path to the internet host works" wait_for 5 tcp laptop 198.51.100.10 80
check "rn node exit off: the internet host now sees the laptop's own address" bash -c "[ \$(ip netns exec rnr-inet nft list chain inet count input | grep -F \"laptop's own\" | grep -o 'packets [0-9]*' | cut -d' ' -f2) -gt 0 ]"
check "rn node exit off: status says exit none" status_says laptop "exit       none"

rn member propose revoke-node laptop --state-dir "$W/op" --reason "laptop stolen" -o "$W/revoke2.json" 2>/dev/null && sign2 "$W/revoke2.json"
deliver "$W/revoke2.json" laptop ops router exit
check "revoking the client removes its routes" wait_for 5 bash -c "! ip netns exec rnr-laptop ip route | grep -q '10.20.0.0/16 dev rnrlaptop'"
check "a revoked client reaches nothing" no_tcp laptop 10.20.0.2 22
# rn node exit off / set on a running agent (ops: its chosen exit is revoked).
"$RN" node exit off --config "$W/ops/node.json" >/dev/null
check "rn node exit off on ops: the running agent drops the blocked exit" wait_for 5 status_says ops "exit       none"
"$RN" node exit set exit --config "$W/ops/node.json" >/dev/null
check "rn node exit set on ops: the running agent takes the new choice, blocked" wait_for 5 status_says ops "exit       blocked: exit exit revoked at epoch"
# The router chooses an exit too (never granted to it): what it serves keeps working.
"$RN" node exit set exit --config "$W/router/node.json" >/dev/null
check "router: an exit chosen but not granted is blocked, and says so" wait_for 5 status_says router "exit       blocked: exit exit revoked at epoch"
check "router: forwarding to the prefix it serves still works (ops -> 10.20.0.2:22)" wait_for 5 tcp ops 10.20.0.2 22
# Stopping the agent is the operator's explicit act: it removes everything, the block included.
kill "${AGENT[ops]}"
check "ops's agent stopped (SIGTERM) within 8 s" wait_for 8 bash -c "! kill -0 ${AGENT[ops]} 2>/dev/null"
check "after the stop: ops's policy routing and table 51820 are gone" no_exit_routing ops
summary e2e-routing
