#!/usr/bin/env bash
# One bulk update of 1,000 add_node ops, timed phase by phase with the given rn binary:
# propose (against a ledger), two approvers sign, verify, commit. Prints one line per phase and
# the total in seconds as its last line. Usage: bench/bulk.sh RN_BINARY
set -euo pipefail
RN=$(realpath "$1")
W=$(mktemp -d /tmp/rn-bulk.XXXXXX)
chmod 700 "$W"
trap 'rm -rf "$W"' EXIT
cd "$W"
for who in alice bob; do "$RN" key gen --out "$who.key" >/dev/null 2>&1; done
PIN=$("$RN" member init --network-id bulk --threshold 2 --approver "alice:owner:$("$RN" key pub alice.key)" \
    --approver "bob:owner:$("$RN" key pub bob.key)" -o genesis.json 2>/dev/null)
for who in alice bob; do "$RN" member sign genesis.json --key "$who.key" --yes 2>/dev/null; done
"$RN" member bootstrap --genesis genesis.json --pin "$PIN" --state-dir op >/dev/null
python3 - >batch.json <<'PY'
import base64, json, os
ops = []
for i in range(1000):
    key = bytearray(os.urandom(32)); key[0] |= 1
    ops.append({"op": "add_node", "node": {"id": f"node-{i:04d}", "pubkey": base64.b64encode(bytes(key)).decode(),
                "owner": "ops", "tags": ["tag:fleet"]}})
print(json.dumps(ops))
PY
ms() { echo $(( $(date +%s%N) / 1000000 )); }
phase() { # NAME CMD...
    local name=$1 t0; shift
    t0=$(ms)
    "$@" >/dev/null 2>"$W/err" || { echo "bulk: $name failed: $(tail -1 "$W/err")" >&2; exit 1; }
    local d=$(( $(ms) - t0 ))
    printf '  %-28s %6d ms\n' "$name" "$d"
    TOTAL=$((TOTAL + d))
}
TOTAL=0
phase "propose (1,000 add_node)" "$RN" member propose --batch batch.json --state-dir op -o add.json
phase "sign (alice)" "$RN" member sign add.json --key alice.key --yes
phase "sign (bob)" "$RN" member sign add.json --key bob.key --yes
phase "verify" "$RN" member verify add.json --state-dir op
phase "commit (apply)" "$RN" member apply add.json --state-dir op
[ "$("$RN" member status --state-dir op --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))')" = 1000 ] ||
    { echo "bulk: the ledger does not hold 1,000 nodes" >&2; exit 1; }
printf '  %-28s %6d ms\n' "total" "$TOTAL"
echo "$TOTAL"
