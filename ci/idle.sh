#!/usr/bin/env bash
# Agent footprint when idle with a 1,000-node ledger: RSS and CPU over a window.
# Runs the agent on the memory backend (no root needed); every node may ping every other, so
# the agent holds 999 peers. Usage: ci/idle.sh [RN_BINARY] [SECONDS]
set -euo pipefail
RN=$(realpath "${1:-target/release/rn}")
SECS=${2:-60}
W=$(mktemp -d /tmp/rn-idle.XXXXXX)
chmod 700 "$W"
export XDG_STATE_HOME="$W/.state"
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
mkdir -m 700 keys
for who in alice bob; do "$RN" key gen --out "keys/$who" >/dev/null 2>&1; done
ROOT=$("$RN" member init --network-id idle --threshold 2 --approver "alice:owner:$("$RN" key pub keys/alice)" \
    --approver "bob:owner:$("$RN" key pub keys/bob)" -o genesis.json 2>/dev/null)
for who in alice bob; do "$RN" member sign genesis.json --key "keys/$who" --yes 2>/dev/null; done
mkdir -m 700 me
ME=$("$RN" node init --node-id node-0000 --genesis genesis.json --pin "$ROOT" --interface rnidle --backend memory \
    --firewall none --config me/node.json --state-dir me/state --key me/wg.key 2>/dev/null)
python3 - "$ME" >batch.json <<'EOF'
import base64, json, os, sys
ops = [{"op": "add_node", "node": {"id": "node-0000", "pubkey": sys.argv[1], "owner": "ops", "tags": ["tag:fleet"]}}]
for i in range(1, 1000):
    key = bytearray(os.urandom(32)); key[0] |= 1
    ops.append({"op": "add_node", "node": {"id": f"node-{i:04d}", "pubkey": base64.b64encode(bytes(key)).decode(), "owner": "ops", "tags": ["tag:fleet"]}})
print(json.dumps(ops))
EOF
"$RN" member propose --batch batch.json --state-dir me/state -o add.json 2>/dev/null
for who in alice bob; do "$RN" member sign add.json --key "keys/$who" --yes 2>/dev/null; done
"$RN" member apply add.json --state-dir me/state >/dev/null
printf '%s' '{"kind":"rn.policy.v1","rules":[{"src":["tag:fleet"],"dst":["tag:fleet"],"proto":"icmp"}]}' >policy.json
"$RN" member propose set-policy policy.json --state-dir me/state -o pol.json 2>/dev/null
for who in alice bob; do "$RN" member sign pol.json --key "keys/$who" --yes 2>/dev/null; done
"$RN" member apply pol.json --state-dir me/state >/dev/null
sed -i "s#/run/rn/rnidle.sock#$W/ctl.sock#" me/node.json
"$RN" node run --config me/node.json 2>agent.log &
PID=$!
for _ in $(seq 100); do [ -S "$W/ctl.sock" ] && break; sleep 0.1; done
sleep 3
PEERS=$("$RN" node status --config me/node.json --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))')
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
T0=$(ticks); sleep "$SECS"; T1=$(ticks)
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
CPU=$(python3 -c "print(f'{($T1 - $T0) / $HZ / $SECS * 100:.3f}')")
echo "agent idle, 1,000-node ledger, $PEERS peers, ${SECS}s: RSS $((RSS_KB / 1024)) MiB ($RSS_KB KiB), CPU ${CPU}% of one core"
echo "{\"rss_kib\":$RSS_KB,\"cpu_percent\":$CPU,\"peers\":$PEERS,\"seconds\":$SECS}" >"${IDLE_OUT:-/dev/null}"
