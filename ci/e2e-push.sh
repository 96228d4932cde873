#!/usr/bin/env bash
# rn member push, end to end: six hosts in their own network namespaces, five running sshd and
# one down; the operator pushes its ledger to all of them at once over real SSH.
#
# Usage: ci/e2e-push.sh RN_BINARY   (root: network namespaces)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RN=$(realpath "${1:?usage: ci/e2e-push.sh RN_BINARY}")
NS_PREFIX=rnp
# shellcheck source=ci/netns-lib.sh
source ci/netns-lib.sh
need_root_tools >/dev/null || exit 1
if ! [ -x /usr/sbin/sshd ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
    # Only this test's own sshd processes, in its namespaces: not a system-wide one.
    { systemctl disable --now ssh || service ssh stop; } >/dev/null 2>&1
fi
command -v ssh >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-client >/dev/null; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends jq >/dev/null; }
e2e_begin push
cd "$W" || exit 1

# --- a network, and six hosts each holding a ledger bootstrapped from its genesis ---
governance acme
make_underlay
mkdir -m 700 ssh
ssh-keygen -q -t ed25519 -N '' -f ssh/host_key
ssh-keygen -q -t ed25519 -N '' -C operator -f ssh/operator
cp ssh/operator.pub ssh/authorized_keys
mkdir -p /run/sshd
for i in 1 2 3 4 5 6; do
    n=h$i
    add_host "$n" "$i"
    rn member bootstrap --genesis genesis.json --pin "$ROOT" --state-dir "$W/$n" >/dev/null
    echo "10.99.0.$i $W/$n" >>hosts.txt
    [ "$n" = h6 ] && continue   # h6 is down: its address answers, nothing listens on 22
    printf '%s\n' "ListenAddress 10.99.0.$i" "HostKey $W/ssh/host_key" "PidFile $W/ssh/$n.pid" \
        "AuthorizedKeysFile $W/ssh/authorized_keys" "PermitRootLogin prohibit-password" \
        "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UsePAM no" "StrictModes no" >"ssh/$n.conf"
    ip netns exec "rnp-$n" /usr/sbin/sshd -D -e -f "$W/ssh/$n.conf" >>"ssh/$n.log" 2>&1 &
    PIDS+=($!)
done
add_host op 9
printf '%s\n' "Host 10.99.0.*" "  User root" "  IdentityFile $W/ssh/operator" "  UserKnownHostsFile $W/ssh/known_hosts" \
    "  StrictHostKeyChecking accept-new" >ssh/config
sshd_up() { inns op bash -c "exec 3<>/dev/tcp/10.99.0.$1/22" 2>/dev/null; }
for i in 1 2 3 4 5; do check "sshd on h$i answers" wait_for 10 sshd_up "$i"; done

# --- two changes on the operator's ledger ---
for n in web db; do
    rn member propose add-node --id "$n" --pubkey "$(rn key gen-node --out "$W/$n.key" 2>/dev/null)" \
        --owner ops@example.com --state-dir "$W/op" -o "add-$n.json" 2>/dev/null
    sign2 "add-$n.json"
done
check "the operator's ledger is at epoch 2" [ "$(rn member status --state-dir "$W/op" --json | jq .epoch)" = 2 ]

push() { inns op "$RN" member push --hosts hosts.txt --state-dir "$W/op" --ssh-config ssh/config \
    --remote-rn "$RN" --parallel 3 --timeout 8 "$@"; }

# --- the push: five hosts updated, the one that is down named, a non-zero exit ---
t0=$(date +%s%N)
push --json >push.json 2>push.err
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "push exits 75 (temporary) when a host is unreachable" [ "$rc" = 75 ]
check "the JSON names six hosts, one failed" [ "$(jq '.hosts | length' push.json) $(jq .failed push.json)" = "6 1" ]
for i in 1 2 3 4 5; do
    check "h$i went 0 -> 2" [ "$(jq -r ".hosts[$((i - 1))] | \"\(.ok) \(.from_epoch) \(.to_epoch) \(.committed)\"" push.json)" = "true 0 2 2" ]
    check "h$i's ledger is at epoch 2" [ "$(rn member status --state-dir "$W/h$i" --json | jq .epoch)" = 2 ]
done
check "h6 is named unreachable" [ "$(jq -r '.hosts[5] | "\(.ok) \(.failure)"' push.json)" = "false unreachable" ]
check "h6's ledger is untouched (epoch 0)" [ "$(rn member status --state-dir "$W/h6" --json | jq .epoch)" = 0 ]
check "stderr says how many hosts failed" grep -q "1 of 6 host(s) did not take the push" push.err
check "the dead host did not hold up the rest (${ms} ms, 8 s timeout per host)" [ "$ms" -lt 12000 ]

# --- the table, and a second push that finds everyone up to date ---
push >table.txt 2>/dev/null
check "the table has a header and one line per host" [ "$(grep -c . table.txt)" = 8 ]
check "the table: h1 already up to date at 2 -> 2" grep -Eq '^10\.99\.0\.1 +2 -> 2 +already up to date' table.txt
check "the table: h6 FAILED (unreachable)" grep -Eq '^10\.99\.0\.6 +- +FAILED \(unreachable\)' table.txt
check "the summary line counts 5 of 6" grep -q "to 5 of 6 host(s)" table.txt

# --- a host that never answers (an address nobody holds) is cut off at its deadline, while
# the other worker serves every other host ---
{ echo "10.99.0.77 /var/lib/rn"; head -n 5 hosts.txt; } >slow.txt
t0=$(date +%s%N)
inns op "$RN" member push --hosts slow.txt --state-dir "$W/op" --ssh-config ssh/config --remote-rn "$RN" \
    --parallel 2 --timeout 3 --json >slow.json 2>/dev/null
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "a silent host fails the push (exit 75)" [ "$rc" = 75 ]
check "the silent host is cut off (timeout or unreachable)" \
    bash -c "jq -r '.hosts[0].failure' slow.json | grep -Eqx 'timeout|unreachable'"
check "the five others took it meanwhile" [ "$(jq '[.hosts[1:][] | select(.ok)] | length' slow.json)" = 5 ]
check "the whole push took about one deadline (${ms} ms, 3 s deadline)" [ "$ms" -lt 6000 ]

# --- with h6 up, everyone takes it; a host with no ledger at the given directory fails ---
printf '%s\n' "ListenAddress 10.99.0.6" "HostKey $W/ssh/host_key" "PidFile $W/ssh/h6.pid" \
    "AuthorizedKeysFile $W/ssh/authorized_keys" "PermitRootLogin prohibit-password" \
    "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UsePAM no" "StrictModes no" >ssh/h6.conf
ip netns exec rnp-h6 /usr/sbin/sshd -D -e -f "$W/ssh/h6.conf" >>ssh/h6.log 2>&1 &
PIDS+=($!)
check "sshd on h6 answers" wait_for 10 sshd_up 6
push --json >push2.json 2>/dev/null
check "with every host up, push exits 0" [ $? = 0 ]
check "h6 went 0 -> 2" [ "$(jq -r '.hosts[5] | "\(.ok) \(.from_epoch) \(.to_epoch)"' push2.json)" = "true 0 2" ]
echo "10.99.0.1 $W/nowhere" >>hosts.txt
push --json >push3.json 2>/dev/null
rc=$?
check "a host without a ledger there fails the push (exit 75, an error there)" \
    [ "$rc $(jq -r '.hosts[6] | "\(.failure) \(.error)"' push3.json)" = "75 error Error" ]
check "a bad hosts file is refused before anything is sent (exit 64)" \
    bash -c "echo '-oProxyCommand=x' >bad.txt; ip netns exec rnp-op $RN member push --hosts bad.txt --state-dir $W/op; [ \$? = 64 ]"

summary e2e-push
