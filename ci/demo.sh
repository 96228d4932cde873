#!/usr/bin/env bash
# The rn demo, narrated.
#  Part 1 (governance, offline): three approvers found a network; a node is proposed, signed on
#  two separate "laptops", combined and verified; a signer refuses to equivocate.
#  Part 2 (as root): three nodes in network namespaces run the agent with embedded userspace
#  WireGuard and nftables; the policy allows what it allows; a 2-of-3 signed revocation cuts a
#  node off. Without root, part 2 runs on the memory backend and says what it skipped.
# Usage: ci/demo.sh PATH/TO/rn
set -euo pipefail
RN=$(realpath "${1:-target/release/rn}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/rn-demo.XXXXXX)
chmod 700 "$WORK"
# The approvers' signing journals (spec §11) stay in the demo's directory.
export XDG_STATE_HOME="$WORK/.state"
source "$HERE/netns-lib.sh"
NS_PREFIX=rnd  # read by netns-lib.sh
export NS_PREFIX
trap 'set +e; cleanup_netns 2>/dev/null; rm -rf "$WORK" /run/rn/rnd*.sock' EXIT
cleanup_netns 2>/dev/null || true
cd "$WORK"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

for who in alice bob carol; do mkdir -m 700 "$who"; done

step "Three approvers make their keys, each on their own laptop (bob uses ssh-keygen)"
run "$RN" key gen --out alice/key
command -v ssh-keygen >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-client; }
run ssh-keygen -q -t ed25519 -N '' -C bob -f bob/key
run "$RN" key gen --out carol/key
A=$("$RN" key pub alice/key); B=$("$RN" key pub bob/key.pub); C=$("$RN" key pub carol/key)

step "Found network 'acme': alice and bob are owners, carol a guardian; 2 signatures per change"
ROOT=$(run "$RN" member init --network-id acme --approver "alice:owner:$A" --approver "bob:owner:$B" \
    --approver "carol:guardian:$C" --threshold 2 -o genesis.json)
echo "$ROOT"
for who in alice bob carol; do
    step "$who signs the genesis"
    run "$RN" member sign genesis.json --key "$who/key" --yes
done

step "An operator proposes a node (the key would come from 'rn key gen-node' on the node)"
NODE=$("$RN" key gen-node --out web-1.key)
run "$RN" member propose add-node --id web-1 --pubkey "$NODE" --owner alice --tag tag:web \
    --base genesis.json --reason "onboard web-1" -o proposal.json

step "The proposal travels to two air-gapped laptops; each approver reviews and signs"
cp proposal.json alice/proposal.json; cp proposal.json bob/proposal.json
run "$RN" member sign alice/proposal.json --key alice/key --yes
run "$RN" member sign bob/proposal.json --key bob/key --yes

step "One signature is not enough (exit 78, naming what is missing)"
set +e; run "$RN" member verify alice/proposal.json; echo "exit $?"; set -e

step "Combine both signed copies and verify: accepted"
run "$RN" member combine alice/proposal.json bob/proposal.json -o signed.json
run "$RN" member verify signed.json

step "alice is asked to sign a conflicting change on the same base: refused by her journal"
OTHER=$("$RN" key gen-node --out web-2.key)
run "$RN" member propose add-node --id web-2 --pubkey "$OTHER" --owner bob --base genesis.json -o conflict.json
set +e; run "$RN" member sign conflict.json --key alice/key --yes; echo "exit $?"; set -e

step "Part 1 done: all of it offline — no daemon, no network, no ledger copy on the laptops."

# sign2 FILE: alice and bob sign; the operator ledger commits it.
sign2() {
    "$RN" member sign "$1" --key alice/key --yes 2>/dev/null
    "$RN" member sign "$1" --key bob/key --yes 2>/dev/null
    "$RN" member apply "$1" --state-dir op
}
AS_ROOT=0
if [ "$(id -u)" = 0 ] && need_root_tools >/dev/null; then AS_ROOT=1; fi
BACKEND=memory; FIREWALL=none
if [ "$AS_ROOT" = 1 ]; then BACKEND=userspace; FIREWALL=nftables; fi

step "Part 2: three nodes (tunnel backend: $BACKEND, firewall: $FIREWALL). First an operator's ledger copy."
run "$RN" member bootstrap --genesis genesis.json --pin "$ROOT" --state-dir op
run "$RN" member apply signed.json --state-dir op
declare -A IDX=([web]=1 [laptop]=2 [db]=3) KEY
if [ "$AS_ROOT" = 1 ]; then make_underlay; fi
for n in web laptop db; do
    if [ "$AS_ROOT" = 1 ]; then add_host "$n" "${IDX[$n]}"; fi
    mkdir -m 700 "$n"
    eps=()
    for m in web laptop db; do [ "$m" = "$n" ] || eps+=(--endpoint "$m=10.99.0.${IDX[$m]}:5183${IDX[$m]}"); done
    step "On node $n: rn node init (checks the genesis against the pin, bootstraps its ledger, makes its WireGuard key)"
    KEY[$n]=$(run "$RN" node init --node-id "$n" --genesis genesis.json --pin "$ROOT" --interface "rnd$n" \
        --listen-port "5183${IDX[$n]}" --backend "$BACKEND" --firewall "$FIREWALL" "${eps[@]}" --keepalive 5 \
        --config "$n/node.json" --state-dir "$n/state" --key "$n/wg.key" 2>/dev/null)
    echo "${KEY[$n]}"
done

step "Approvers admit the three nodes in one update (one signature round)"
printf '[{"op":"add_node","node":{"id":"web","pubkey":"%s","owner":"ops","tags":["tag:web"]}},{"op":"add_node","node":{"id":"laptop","pubkey":"%s","owner":"alice","tags":["tag:laptop"]}},{"op":"add_node","node":{"id":"db","pubkey":"%s","owner":"ops","tags":["tag:db"]}}]' \
    "${KEY[web]}" "${KEY[laptop]}" "${KEY[db]}" >batch.json
run "$RN" member propose --batch batch.json --state-dir op --reason "three nodes" -o add.json
sign2 add.json

step "A policy, pinned by a 2-of-3 signed update: laptop may ping web and reach it on tcp/443; nothing else"
printf '%s\n' '{"kind":"rn.policy.v1","rules":[' \
    ' {"src":["tag:laptop"],"dst":["tag:web"],"proto":"icmp"},' \
    ' {"src":["tag:laptop"],"dst":["tag:web"],"proto":"tcp","ports":["443"]}]}' >policy.json
cat policy.json
run "$RN" member propose set-policy policy.json --state-dir op -o policy-proposal.json
sign2 policy-proposal.json
run "$RN" policy check --from laptop --to web --proto tcp --port 443 --state-dir op || true
run "$RN" policy check --from laptop --to web --proto tcp --port 22 --state-dir op || true
run "$RN" policy check --from laptop --to db --proto icmp --state-dir op || true
addr() { "$RN" member status --state-dir op --json | python3 -c "import json,sys; print([n for n in json.load(sys.stdin)['nodes'] if n['id']=='$1'][0]['addresses'][0].split('/')[0])"; }
WEB=$(addr web); DB=$(addr db)
"$RN" member export --state-dir op -o bundle.json 2>/dev/null
for n in web laptop db; do "$RN" member apply bundle.json --state-dir "$n/state" >/dev/null; done

if [ "$AS_ROOT" = 1 ]; then
    step "Start the three agents, each in its own network namespace"
    for n in web laptop db; do
        ip netns exec "rnd-$n" "$RN" node run --config "$n/node.json" 2>"$n/agent.log" &
        PIDS+=($!)
    done
    wait_for 20 bash -c "ip netns exec rnd-laptop wg show rndlaptop peers | grep -qF '${KEY[web]}'" || echo "(peers not up yet)"
    run "$RN" node status --config laptop/node.json
    step "laptop pings web (allowed: icmp)"
    wait_for 15 ip netns exec rnd-laptop ping -c1 -W1 $WEB || true
    run ip netns exec rnd-laptop ping -c2 -W1 $WEB || true
    step "laptop -> web tcp/443 connects; tcp/22 is dropped by web's nftables"
    ip netns exec rnd-web bash -c "timeout 15 nc -l -k 443 >/dev/null 2>&1 & timeout 15 nc -l -k 22 >/dev/null 2>&1 &"
    sleep 0.3
    run ip netns exec rnd-laptop nc -z -v -w2 $WEB 443 || true
    run ip netns exec rnd-laptop nc -z -v -w2 $WEB 22 || echo "   -> tcp/22: no answer (dropped by policy)"
    step "laptop cannot reach db: no rule, so db is not even a peer"
    run ip netns exec rnd-laptop ping -c1 -W1 $DB || echo "   -> no path to db"
    step "laptop is stolen: alice and bob sign its revocation (2 of 3); it lands in every node's inbox"
    run "$RN" member propose revoke-node laptop --state-dir op --reason "stolen laptop" -o revoke.json
    sign2 revoke.json
    t0=$(date +%s%N)
    for n in web laptop db; do cp revoke.json "$n/state/inbox/.r" && mv "$n/state/inbox/.r" "$n/state/inbox/revoke.json"; done
    if wait_for 10 bash -c "! ip netns exec rnd-web wg show rndweb peers | grep -qF '${KEY[laptop]}'"; then
        echo "   -> web dropped laptop's peer $(( ($(date +%s%N) - t0) / 1000000 )) ms after the file landed"
    fi
    run ip netns exec rnd-laptop ping -c2 -W1 $WEB || echo "   -> laptop's traffic is cut"
    wait_for 5 bash -c "'$RN' node status --config laptop/node.json | grep -q restricted" || true
    run "$RN" node status --config laptop/node.json
else
    step "Not root: network namespaces, WireGuard and nftables are skipped; each agent runs once on the memory backend"
    for n in web laptop db; do
        run "$RN" node run --config "$n/node.json" --once >/dev/null || true
        echo "   $n's interface would hold $(python3 -c "import json; print(len(json.load(open('$n/rnd$n.memory.json'))['peers']))") peer(s)"
    done
    run "$RN" member propose revoke-node laptop --state-dir op --reason "stolen laptop" -o revoke.json
    sign2 revoke.json
    "$RN" member apply revoke.json --state-dir web/state >/dev/null
    run "$RN" node run --config web/node.json --once >/dev/null || true
    echo "   web's interface after the revocation holds $(python3 -c "import json; print(len(json.load(open('web/rndweb.memory.json'))['peers']))") peer(s)"
fi
step "Done; namespaces, processes and files are cleaned up."
