#!/usr/bin/env bash
# Mirrors, end to end: the operator publishes its ledger (rn member publish) into a directory
# that Debian's nginx serves on loopback, over http and over https with a test CA; agents
# configured with only that mirror catch up by themselves, and one pointed at a mirror that
# serves a forged update commits nothing, says why and backs off.
#
# Usage: ci/e2e-mirror.sh RN_BINARY   (root: installs nginx-light, agents use /run/rn)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:?usage: ci/e2e-mirror.sh RN_BINARY}")
NS_PREFIX=rnm
# shellcheck source=ci/netns-lib.sh
source ci/netns-lib.sh
[ "$(id -u)" = 0 ] || { echo "needs root (installs nginx, agents use /run/rn)"; exit 1; }
for tool in nginx:nginx-light jq:jq openssl:openssl; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null
        # Only this test's own nginx, on loopback: not a system-wide one.
        [ "${tool%%:*}" = nginx ] && { systemctl disable --now nginx || service nginx stop; } >/dev/null 2>&1
    }
done
e2e_begin mirror
cd "$W" || exit 1
HTTP=127.0.0.1:18081 LIAR=127.0.0.1:18082 HTTPS=18443

# --- a network; the operator's ledger published into www/, served by nginx ---
governance acme
mkdir -m 700 tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls/ca.key -out tls/ca.pem \
    -days 2 -subj /CN=rn-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls/server.key -out tls/server.csr \
    -subj /CN=localhost 2>/dev/null
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "extendedKeyUsage=serverAuth" >tls/ext
openssl x509 -req -in tls/server.csr -CA tls/ca.pem -CAkey tls/ca.key -CAcreateserial -out tls/server.pem \
    -days 2 -extfile tls/ext 2>/dev/null
cat >nginx.conf <<EOF
user root;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
daemon off;
events {}
http {
    access_log off;
    default_type application/octet-stream;
    server { listen $HTTP; root $W/www; }
    server { listen $LIAR; root $W/liar; }
    server { listen 127.0.0.1:$HTTPS ssl; ssl_certificate $W/tls/server.pem;
             ssl_certificate_key $W/tls/server.key; root $W/www; }
}
EOF
/usr/sbin/nginx -c "$W/nginx.conf" -p "$W" -e "$W/nginx-error.log" &
PIDS+=($!)
served() { bash -c "exec 3<>/dev/tcp/${HTTP%:*}/${HTTP#*:}" 2>/dev/null; }
check "nginx serves on loopback" wait_for 10 served

# node NAME INDEX MIRROR [EXTRA INIT FLAGS...]: a node on the memory backend whose only way to
# hear of changes is MIRROR; admitted into op's ledger.
node() {
    local n=$1 i=$2 m=$3; shift 3
    mkdir -m 700 "$W/$n"
    KEY[$n]=$(rn node init --node-id "$n" --genesis genesis.json --pin "$ROOT" --interface "rnm$n" \
        --listen-port "5190$i" --backend memory --firewall none --mirror "$m" --sync-interval 5 \
        --config "$W/$n/node.json" --state-dir "$W/$n/state" "$@" 2>/dev/null)
    rn member propose add-node --id "$n" --pubkey "${KEY[$n]}" --owner ops@example.com \
        --state-dir "$W/op" -o "add-$n.json" 2>/dev/null && sign2 "add-$n.json"
}
start() { "$RN" node run --config "$W/$1/node.json" >>"$W/$1/agent.log" 2>&1 & PIDS+=($!); }
epoch() { rn member status --state-dir "$1" --json 2>/dev/null | jq -r .epoch; }
at_epoch() { [ "$(epoch "$W/$1/state")" = "$(epoch "$W/op")" ]; }
status() { "$RN" node status --config "$W/$1/node.json" "${@:2}" 2>/dev/null; }
declare -A KEY
node n1 1 "http://$HTTP"
node n2 2 "https://localhost:$HTTPS" --ca-file "$W/tls/ca.pem"
node n3 3 "https://localhost:$HTTPS"   # the system's CAs: the test CA is not among them
node n4 4 "http://$LIAR"
rn member publish www --state-dir "$W/op" >/dev/null
check "the operator's ledger is at epoch 4 and published" [ "$(jq -r .epoch www/rn/v1/head)" = 4 ]
# The liar serves the same ledger with the last update's signature changed.
cp -r www liar
python3 - liar/rn/v1/log/4 <<'PY'
import json, sys
p = sys.argv[1]
su = json.loads(open(p).read())
sig = su["signatures"][0]["sig"]
su["signatures"][0]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
open(p, "w").write(json.dumps(su, separators=(",", ":"), sort_keys=True) + "\n")
PY
for n in n1 n2 n3 n4; do start "$n"; done

# --- each agent catches up from its mirror alone ---
check "n1 catches up over http (epoch 4)" wait_for 15 at_epoch n1
check "n2 catches up over https with the test CA (epoch 4)" wait_for 15 at_epoch n2
check "n1 is trusted and enforcing epoch 4" wait_for 5 bash -c "'$RN' node status --config '$W/n1/node.json' --json | jq -e '.mode == \"trusted\" and .epoch == 4' >/dev/null"
check "n1's status names the mirror and what it applied" \
    bash -c "'$RN' node status --config '$W/n1/node.json' | grep -Eq '^mirror +http://$HTTP \\(every 5 s\\): (applied|up to date)'"
check "n3 (https, CA not trusted) commits nothing" [ "$(epoch "$W/n3/state")" = 0 ]
check "n3's status says the certificate failed" wait_for 10 bash -c "'$RN' node status --config '$W/n3/node.json' --json | jq -e '.mirrors[0].last_result | test(\"^failed: .*(certificate|issuer)\"; \"i\")' >/dev/null"
# What a source serves is judged as one chain, all or nothing: the forged fourth update stops
# the whole catch-up from that source.
check "n4's status names the refusal and backs the mirror off" \
    wait_for 15 bash -c "'$RN' node status --config '$W/n4/node.json' --json | jq -e '(.mirrors[0].last_result | test(\"update 4 of 4 .*rejected\")) and .mirrors[0].backoff_until != null' >/dev/null"
check "n4 commits nothing from the lying mirror" [ "$(epoch "$W/n4/state")" = 0 ]
check "n4's audit log records the rejection as BadSignature, naming the mirror" \
    bash -c "'$RN' member log --audit --state-dir '$W/n4/state' | grep -Eq 'rejected +\[BadSignature\] .*from http://$LIAR'"

# --- a change published later reaches the agents with no push: within two sync intervals ---
rn member propose revoke-node n3 --state-dir "$W/op" --reason "retire n3" -o revoke-n3.json 2>/dev/null
sign2 revoke-n3.json
t0=$(date +%s%N)
rn member publish www --state-dir "$W/op" >/dev/null
check "n1 takes the revocation from the mirror (epoch 5) within 15 s" wait_for 15 at_epoch n1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "  n1 had epoch 5 ${ms} ms after the publish (sync interval 5 s)"
check "n2 takes it over https too" wait_for 15 at_epoch n2
check "every agent's ledger still verifies" bash -c "for n in n1 n2 n3 n4; do '$RN' member log --verify --state-dir '$W/'\$n/state >/dev/null || exit 1; done"

summary e2e-mirror
