#!/usr/bin/env bash
# A lying peer, end to end in network namespaces with real tunnels: n4 is a member whose
# ledger server is replaced by ci/liar.py. It gives wrong endpoints, then serves an old head, a
# forged update, a quorum-signed fork, a 1 GiB body and a slowloris answer to the victim n2,
# notifying it each time. Nothing but valid updates is committed, fork evidence is recorded,
# the liar is backed off (5 s, then doubling), and the honest path still converges.
#
#   n1: no static endpoints (everyone's first peer)     n2: the victim, static n1 and n4
#   n3: static n1; neither pulls nor looks endpoints up  n4: the liar's host, static n1
#
# Usage: ci/e2e-liar.sh [RN_BINARY]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:-target/debug/rn}")
NS_PREFIX=rnl
# shellcheck source=ci/netns-lib.sh
source ci/netns-lib.sh
need_root_tools || exit 1
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null; }
e2e_begin liar
governance liar
make_underlay
LIAR=100.96.0.4

declare -A KEY AGENT
for i in 1 2 3 4; do
    n=n$i
    add_host "$n" "$i"
    mkdir -m 700 "$W/$n"
    extra=()
    case $n in
        n2) extra=(--endpoint n1=10.99.0.1:51820 --endpoint n4=10.99.0.4:51820 --sync-interval 600) ;;
        n3) extra=(--endpoint n1=10.99.0.1:51820 --fanout 0) ;;
        n4) extra=(--endpoint n1=10.99.0.1:51820 --fanout 0 --serve-port 0) ;;
    esac
    fw=nftables
    [ "$n" = n4 ] && fw=none  # the liar's host admits anyone to its server
    KEY[$n]=$(rn node init --node-id "$n" --genesis "$W/genesis.json" --pin "$ROOT" --interface "rnl$n" \
        --listen-port 51820 --backend userspace --firewall "$fw" --keepalive 5 "${extra[@]}" \
        --config "$W/$n/node.json" --state-dir "$W/$n/state" --key "$W/$n/wg.key" 2>/dev/null)
done
{
    printf '['
    for i in 1 2 3 4; do
        [ "$i" = 1 ] || printf ','
        printf '{"op":"add_node","node":{"id":"n%s","pubkey":"%s","owner":"ops","tags":["tag:mesh"]}}' "$i" "${KEY[n$i]}"
    done
    printf ']'
} >"$W/batch.json"
rn member propose --batch "$W/batch.json" --state-dir "$W/op" --reason "four nodes" -o "$W/add.json" 2>/dev/null && sign2 "$W/add.json"
echo '{"kind":"rn.policy.v1","rules":[{"src":["tag:mesh"],"dst":["tag:mesh"],"proto":"icmp"}]}' >"$W/policy.json"
rn member propose set-policy "$W/policy.json" --state-dir "$W/op" -o "$W/pol.json" 2>/dev/null && sign2 "$W/pol.json"
rn member export --state-dir "$W/op" -o "$W/bundle.json" 2>/dev/null
for i in 1 2 3 4; do rn member apply "$W/bundle.json" --state-dir "$W/n$i/state" >/dev/null; done
op_epoch() { rn member status --state-dir "$W/op" --json | jq -r .epoch; }
op_root() { rn member status --state-dir "$W/op" --json | jq -r .root; }
E=$(op_epoch)

# The liar's files: base/ is the honest layout at epoch E; each mode overrides some of it.
L=$W/liar
mkdir -p "$L"
rn member publish "$L/base" --state-dir "$W/op" >/dev/null
echo endpoints >"$L/mode"
# canon FILE: rewrite a JSON file in place, canonical, from a jq filter
canon() { local f=$1; shift; jq -cS "$@" "$f" >"$f.new" && mv "$f.new" "$f"; }
mkdir -p "$L/endpoints/rn/v1"
printf '{"kind":"rn.endpoints.v1","peers":[{"endpoint":"10.99.0.99:51820","pubkey":"%s","seen_at":%s}]}\n' \
    "${KEY[n3]}" $(( $(date +%s) + 100000 )) >"$L/endpoints/rn/v1/endpoints"

start_agent() {
    ip netns exec "rnl-$1" "$RN" node run --config "$W/$1/node.json" >>"$W/$1/agent.log" 2>&1 &
    PIDS+=($!)
    AGENT[$1]=$!
}
status() { "$RN" node status --config "$W/$1/node.json" --json 2>/dev/null; }
epoch() { status "$1" | jq -r .epoch; }
pings() { inns "$1" ping -c1 -W2 "$2" >/dev/null 2>&1; }
for n in n1 n3 n4; do start_agent "$n"; done
has_addr() { ip -n "rnl-$1" -o address show dev "rnl$1" 2>/dev/null | grep -qF " $2/"; }
check "the liar's host has its overlay address" wait_for 20 has_addr n4 "$LIAR"
inns n4 python3 ci/liar.py "$L" "$LIAR" 51821 >"$W/liar.log" 2>&1 &
PIDS+=($!)
check "n1 and n3 connect through n1" wait_for 30 pings n3 100.96.0.1
start_agent n2

# --- wrong endpoints: the liar's answer (claimed fresher than any) is tried, gives no
# handshake, and is written off for the honest one ---
learned() { grep -q "endpoint for n3: $1 (from the peer at $2)" "$W/n2/agent.log"; }
check "n2 takes the liar's endpoint for n3 first (it claims to be the freshest)" wait_for 30 learned 10.99.0.99:51820 "$LIAR"
check "n2 writes it off and takes n1's answer" wait_for 60 learned 10.99.0.3:51820 100.96.0.1
check "n2 reaches n3 through the honest endpoint" wait_for 15 pings n2 100.96.0.3

# notify EPOCH: the liar tells n2 it is at EPOCH (its own head's other fields)
notify() {
    local body
    body=$(jq -cS ".epoch = $1" "$L/base/rn/v1/head")
    inns n4 python3 -c '
import sys, urllib.request
r = urllib.request.Request("http://100.96.0.2:51821/rn/v1/notify", data=sys.argv[1].encode(), method="POST")
print(urllib.request.urlopen(r, timeout=5).status)' "$body" 2>/dev/null
}
last_pull() { status n2 | jq -r '.distribution.last_pull // ""'; }
pulled() { last_pull | grep -Eq "n4 \\($LIAR\\) \\(notified\\): $1"; }
backed_off() { status n2 | jq -e ".distribution.backed_off | index(\"$LIAR\")" >/dev/null; }
not_backed_off() { ! backed_off; }
audit() { rn member log --audit --state-dir "$W/n2/state"; }

# --- an old head after notifying a newer one: nothing taken, the liar backed off ---
mkdir -p "$L/old/rn/v1"
jq -cS '.epoch = 1' "$L/base/rn/v1/head" >"$L/old/rn/v1/head"
echo old >"$L/mode"
check "n2 answers the liar's notification 202 (it claims epoch $((E + 1)))" [ "$(notify $((E + 1)))" = 202 ]
check "n2 pulls from the liar at once and finds an old head (epoch 1)" wait_for 10 pulled "failed: notified epoch $((E + 1)), but serves a head at epoch 1"
check "n2 is still at epoch $E" [ "$(epoch n2)" = "$E" ]
check "n2 leaves the liar alone for 5 s" grep -q "peer n4 ($LIAR) (notified): notified epoch .*not asked again for 5 s" "$W/n2/agent.log"

# --- a forged update: refused, audited with the liar as source, the liar backed off ---
rn member propose set-node n1 --tag tag:mesh --tag tag:u --state-dir "$W/op" --reason "honest" -o "$W/u.json" 2>/dev/null && sign2 "$W/u.json"
rn member publish "$W/next" --state-dir "$W/op" >/dev/null
mkdir -p "$L/forged/rn/v1/log"
cp "$W/next/rn/v1/head" "$L/forged/rn/v1/head"
cp "$W/next/rn/v1/log/$((E + 1))" "$L/forged/rn/v1/log/"
canon "$L/forged/rn/v1/log/$((E + 1))" '.signatures[0].sig |= (if startswith("A") then "B" else "A" end) + .[1:]'
echo forged >"$L/mode"
check "the liar is no longer backed off" wait_for 15 not_backed_off
notify $((E + 1)) >/dev/null
check "n2 refuses the forged update" wait_for 10 pulled "failed: .*rejected"
check "n2 commits nothing from the liar (epoch $E)" [ "$(epoch n2)" = "$E" ]
check "n2's audit log records BadSignature from the liar" bash -c "rn() { '$RN' \"\$@\"; }; rn member log --audit --state-dir '$W/n2/state' | grep -Eq 'rejected +\\[BadSignature\\] .*from http://$LIAR:51821'"
check "n2 backs the liar off" backed_off
check "n2's log says for how long (10 s: its second failure)" grep -q "peer n4 ($LIAR) (notified): .*rejected.*not asked again for 10 s" "$W/n2/agent.log"
notify $((E + 1)) >/dev/null
sleep 1
check "a notification while backed off starts no pull" bash -c "[ \$(grep -c 'peer n4 ($LIAR) (notified)' '$W/n2/agent.log') = 2 ]"

# --- the honest path: the real update, applied on n1, reaches n2 ---
deliver "$W/u.json" n1
check "the honest update reaches n2 through n1 (epoch $((E + 1)))" wait_for 15 bash -c "[ \"\$('$RN' node status --config '$W/n2/node.json' --json | jq -r .epoch)\" = $((E + 1)) ]"

# --- a quorum-signed fork: two updates for one epoch, both signed by alice and bob; n2 holds
# the one the mesh committed and records the liar's as fork evidence ---
cp -a "$W/op" "$W/fork-op"
rm -f "$W/fork-op.watermark"
rn member propose set-node n1 --tag tag:mesh --tag tag:x --state-dir "$W/fork-op" --reason "the other branch" -o "$W/x.json" 2>/dev/null
# Signed elsewhere (another signing journal): the keys' own journals refuse a second update for
# one epoch, so a quorum fork takes approvers that signed on two machines.
XDG_STATE_HOME=$W/.state-elsewhere rn member sign "$W/x.json" --key "$W/keys/alice" --yes 2>/dev/null &&
    XDG_STATE_HOME=$W/.state-elsewhere rn member sign "$W/x.json" --key "$W/keys/bob" --yes 2>/dev/null
rn member apply "$W/x.json" --state-dir "$W/fork-op" >/dev/null
rn member publish "$W/fork" --state-dir "$W/fork-op" >/dev/null
rn member propose set-node n1 --tag tag:mesh --tag tag:y --state-dir "$W/op" --reason "the mesh's branch" -o "$W/y.json" 2>/dev/null && sign2 "$W/y.json"
deliver "$W/y.json" n1
check "the mesh's update reaches n2 (epoch $((E + 2)))" wait_for 15 bash -c "[ \"\$('$RN' node status --config '$W/n2/node.json' --json | jq -r .epoch)\" = $((E + 2)) ]"
mkdir -p "$L/fork/rn/v1/log"
jq -cS ".epoch = $((E + 3))" "$W/fork/rn/v1/head" >"$L/fork/rn/v1/head"
cp "$W/fork/rn/v1/log/$((E + 2))" "$L/fork/rn/v1/log/"
echo fork >"$L/mode"
check "the liar is no longer backed off" wait_for 30 not_backed_off
notify $((E + 3)) >/dev/null
check "n2 refuses the other branch" wait_for 10 pulled "failed: .*rejected"
check "n2 keeps the mesh's root at epoch $((E + 2))" [ "$(status n2 | jq -r .root)" = "$(op_root)" ]
check "n2 keeps the fork as evidence" bash -c "ls '$W/n2/state/evidence/' | grep -q ."
check "n2's audit log records the fork evidence" bash -c "rn() { '$RN' \"\$@\"; }; rn member log --audit --state-dir '$W/n2/state' | grep -q fork_evidence"
check "n2's log says the liar is left alone for 20 s this time" grep -q "peer n4 ($LIAR) (notified): .*not asked again for 20 s" "$W/n2/agent.log"

# --- a 1 GiB body: cut at the cap ---
mkdir -p "$L/huge/rn/v1"
cp "$L/fork/rn/v1/head" "$L/huge/rn/v1/head"
echo huge >"$L/mode"
check "the liar is no longer backed off" wait_for 30 not_backed_off
t=$(date +%s%N)
notify $((E + 3)) >/dev/null
check "n2 stops reading the 1 GiB update at the cap" wait_for 15 pulled "failed: .*(limit|large|size)"
echo "  the 1 GiB answer was refused in $(( ($(date +%s%N) - t) / 1000000 )) ms"
check "n2's agent stays small (RSS $(awk '/VmRSS/ {print $2}' "/proc/${AGENT[n2]}/status") kB < 200 MB)" \
    [ "$(awk '/VmRSS/ {print $2}' "/proc/${AGENT[n2]}/status")" -lt 200000 ]

# --- slowloris: cut at the request's time limit ---
echo slow >"$L/mode"
check "the liar is no longer backed off" wait_for 60 not_backed_off
t=$(date +%s%N)
notify $((E + 3)) >/dev/null
check "n2 gives up on the slow answer at its time limit" wait_for 20 pulled "failed: .*timeout"
echo "  the slow answer was cut after $(( ($(date +%s%N) - t) / 1000000 )) ms"

check "n2 is at the mesh's epoch $((E + 2)) with its root" bash -c "[ \"\$('$RN' node status --config '$W/n2/node.json' --json | jq -r '.epoch, .root' | paste -sd' ')\" = '$((E + 2)) $(op_root)' ]"
check "n2's ledger verifies" "$RN" member log --verify --state-dir "$W/n2/state"
check "n2 still pings n1 and n3" bash -c "ip netns exec rnl-n2 ping -c1 -W2 100.96.0.1 >/dev/null && ip netns exec rnl-n2 ping -c1 -W2 100.96.0.3 >/dev/null"
[ "$FAIL" = 0 ] || for n in n1 n2; do echo "$n's agent log:"; tail -30 "$W/$n/agent.log"; done
summary e2e-liar
