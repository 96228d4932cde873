#!/usr/bin/env bash
# Exit nodes and subnet routers end to end in network namespaces (needs root).
#   laptop: chooses exit "exit"; granted tcp/80 to the internet via the exit and tcp/22 to
#           10.20.0.0/16 via the router.
#   ops:    granted tcp/22 to 10.20.0.0/16 via the router only; also chooses "exit".
#   router: ledger routes 10.20.0.0/16, serves them (masquerade); LAN host 10.20.0.2 behind it.
#   exit:   ledger exit:true, serves it (masquerade); "internet" host 198.51.100.10 behind it,
#           which also has a private address 192.168.77.10 (the exit's LAN side).
# Usage: ci/e2e-routing.sh [RN_BINARY]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:-target/debug/rn}")
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
        laptop|ops) extra=(--exit exit) ;;
        router) extra=(--serve-routes --masquerade) ;;
        exit) extra=(--serve-exit --masquerade) ;;
    esac
    KEY[$n]=$(rn node init --node-id "$n" --genesis "$W/genesis.json" --pin "$ROOT" --interface "rnr$n" --listen-port "5184${IDX[$n]}" \
        --backend userspace --firewall nftables "${eps[@]}" "${extra[@]}" --keepalive 5 \
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

cat >"$W/batch.json" <<EOF
[{"op":"add_node","node":{"id":"laptop","pubkey":"${KEY[laptop]}","owner":"alice","tags":["tag:laptop"]}},
 {"op":"add_node","node":{"id":"ops","pubkey":"${KEY[ops]}","owner":"bob","tags":["tag:ops"]}},
 {"op":"add_node","node":{"id":"router","pubkey":"${KEY[router]}","owner":"ops","tags":["tag:router"],"routes":["10.20.0.0/16"]}},
 {"op":"add_node","node":{"id":"exit","pubkey":"${KEY[exit]}","owner":"ops","tags":["tag:exit"],"exit":true}}]
EOF
rn member propose --batch "$W/batch.json" --state-dir "$W/op" -o "$W/add.json" 2>/dev/null && sign2 "$W/add.json"
cat >"$W/policy.json" <<'EOF'
{"kind":"rn.policy.v1","rules":[
 {"src":["tag:laptop"],"dst":["internet"],"via":"exit","proto":"tcp","ports":["80"]},
 {"src":["tag:laptop","tag:ops"],"dst":["10.20.0.0/16"],"via":"router","proto":"tcp","ports":["22"]}]}
EOF
rn member propose set-policy "$W/policy.json" --state-dir "$W/op" -o "$W/pol.json" 2>/dev/null && sign2 "$W/pol.json"
rn member export --state-dir "$W/op" -o "$W/bundle.json" 2>/dev/null
for n in laptop ops router exit; do rn member apply "$W/bundle.json" --state-dir "$W/$n/state" >/dev/null; done
for n in laptop ops router exit; do
    ip netns exec "rnr-$n" "$RN" node run --config "$W/$n/node.json" >>"$W/$n/agent.log" 2>&1 &
    PIDS+=($!)
done
has_peer() { inns "$1" wg show "rnr$1" peers 2>/dev/null | grep -qF "${KEY[$2]}"; }
wait_for 20 has_peer laptop exit && wait_for 20 has_peer laptop router && wait_for 20 has_peer exit laptop

# listeners
inns inet bash -c "timeout 60 nc -l -k 80 >/dev/null 2>&1 &"
inns inet bash -c "timeout 60 nc -u -l 53 >'$W/udp53.txt' 2>/dev/null &"
inns lan bash -c "timeout 60 nc -l -k 22 >/dev/null 2>&1 & timeout 60 nc -l -k 80 >/dev/null 2>&1 &"
sleep 0.3

via_mesh() { inns "$1" ip route get "$2" 2>/dev/null | grep -q "dev rnr$1"; }
check "laptop: default traffic goes through the exit" wait_for 10 via_mesh laptop 198.51.100.10
check "laptop: tcp/80 via the exit reaches the internet host" wait_for 10 inns laptop nc -z -w2 198.51.100.10 80
echo probe | inns laptop nc -u -w1 198.51.100.10 53 >/dev/null 2>&1; sleep 0.5
check "laptop: udp/53 via the same exit is dropped at the exit" bash -c "[ ! -s '$W/udp53.txt' ]"
check "laptop: the exit's LAN side (192.168.77.10) is not reachable through the exit" bash -c "! ip netns exec rnr-laptop nc -z -w2 192.168.77.10 80"
check "laptop: the exit's own underlay endpoint stays reachable" inns laptop ping -c1 -W1 10.99.0.4
check "laptop: tcp/22 via the router reaches the LAN host" wait_for 10 inns laptop nc -z -w2 10.20.0.2 22
check "laptop: tcp/80 to the LAN host is dropped at the router" bash -c "! ip netns exec rnr-laptop nc -z -w2 10.20.0.2 80"
check "ops: tcp/22 via the router reaches the LAN host" wait_for 10 inns ops nc -z -w2 10.20.0.2 22
check "ops: a router grant gives no exit (no default route through the mesh)" bash -c "! ip netns exec rnr-ops ip route get 198.51.100.10 2>/dev/null | grep -q 'dev rnrops'"
check "ops: status says the chosen exit is not granted" bash -c "'$RN' node status --config '$W/ops/node.json' | grep -q 'not granted'"
"$RN" node status --config "$W/laptop/node.json" | tee "$W/laptop-status.txt"
check "laptop: status shows the exit in use and the route used, with their rules" bash -c "grep -q 'exit       exit (granted by rule 0)' '$W/laptop-status.txt' && grep -q '10.20.0.0/16 via router (granted by rule 1)' '$W/laptop-status.txt'"

# Revoke the exit: the default route goes within a second and traffic stops (no fallback).
rn member propose revoke-node exit --state-dir "$W/op" --reason "exit compromised" -o "$W/revoke.json" 2>/dev/null && sign2 "$W/revoke.json"
t0=$(date +%s%N)
deliver "$W/revoke.json" laptop ops router exit
if wait_for 5 bash -c "! ip netns exec rnr-laptop ip rule | grep -q 'not from all fwmark'"; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "exit revoked: laptop's policy routing removed ${ms} ms after the file landed"
    check "exit routes removed within a second" [ "$ms" -le 1000 ]
else
    ko "exit routes removed within a second"
fi
check "after the revocation tcp/80 to the internet host fails (no fallback to the underlay)" bash -c "! ip netns exec rnr-laptop nc -z -w2 198.51.100.10 80"
check "the LAN through the router still works" inns laptop nc -z -w2 10.20.0.2 22
rn member propose revoke-node laptop --state-dir "$W/op" --reason "laptop stolen" -o "$W/revoke2.json" 2>/dev/null && sign2 "$W/revoke2.json"
deliver "$W/revoke2.json" laptop ops router exit
check "revoking the client removes its routes" wait_for 5 bash -c "! ip netns exec rnr-laptop ip route | grep -q '10.20.0.0/16 dev rnrlaptop'"
check "a revoked client reaches nothing" bash -c "! ip netns exec rnr-laptop nc -z -w2 10.20.0.2 22"
# rn node exit off / set on a running agent (ops: its chosen exit was never granted).
"$RN" node exit off --config "$W/ops/node.json" >/dev/null
check "rn node exit off: the running agent drops the 'not granted' note" wait_for 5 bash -c "! '$RN' node status --config '$W/ops/node.json' | grep -q 'not granted'"
"$RN" node exit set exit --config "$W/ops/node.json" >/dev/null
check "rn node exit set: the running agent takes the new choice" wait_for 5 bash -c "'$RN' node status --config '$W/ops/node.json' | grep -q 'chosen exit exit is not granted'"
summary e2e-routing
