#!/usr/bin/env bash
# The rn governance flow, narrated: three approvers found a network, a node is proposed,
# signed on two separate "laptops", combined and verified; a signer refuses to equivocate.
# Usage: ci/demo.sh PATH/TO/rn
set -euo pipefail
RN=$(realpath "${1:-target/release/rn}")
WORK=$(mktemp -d /tmp/rn-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

for who in alice bob carol; do mkdir -m 700 "$who"; done

step "Three approvers make their keys, each on their own laptop (bob uses ssh-keygen)"
run "$RN" key gen --out alice/key
command -v ssh-keygen >/dev/null || { apt-get update -qq && apt-get install -y -qq openssh-client; }
run ssh-keygen -q -t ed25519 -N '' -C bob -f bob/key
run "$RN" key gen --out carol/key
A=$("$RN" key pub alice/key); B=$("$RN" key pub bob/key.pub); C=$("$RN" key pub carol/key)

step "Found network 'acme': alice and bob are owners, carol a guardian; 2 signatures per change"
run "$RN" member init --network-id acme --approver "alice:owner:$A" --approver "bob:owner:$B" \
    --approver "carol:guardian:$C" --threshold 2 -o genesis.json
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

step "Done. Everything ran offline: no daemon, no network, no ledger copy on the laptops."
