#!/usr/bin/env bash
# Incident drills: every runbook in docs/operations/incidents/ executed for real with the rn
# binary, on a throw-away network in a temporary directory, asserting each expected outcome.
#
# Usage: ci/drill.sh SCENARIO|all|list [RN_BINARY]
#
# Each drill writes artifacts/drills/SCENARIO.log (the transcript: every command as typed, what
# it printed and its exit code), SCENARIO.json (its steps and their outcomes) and
# SCENARIO.audit (`rn member log --verify` and `--audit` of every ledger it leaves behind).
# `all` also writes artifacts/recovery.json and artifacts/audit-integrity.log. A step that fails
# ends its drill with a non-zero exit and names the step. Drills about traffic (fleet-revocation,
# node-key-rotation) run in network namespaces and need root; the others use the memory backend.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
SCENARIOS=(approver-key-compromise lost-approver-key lost-owner-key node-compromise
    fleet-revocation quorum-reconstitution fork-evidence restricted-node backup-restore
    node-key-rotation)
WHAT=${1:-}
RN=$(realpath "${2:-target/debug/rn}")
ART=${ARTIFACTS:-$REPO/artifacts}
mkdir -p "$ART/drills"

usage() { echo "usage: ci/drill.sh SCENARIO|all|list [RN_BINARY]; scenarios: ${SCENARIOS[*]}" >&2; exit 64; }
[ -n "$WHAT" ] || usage
[ -x "$RN" ] || { echo "drill: no rn binary at $RN (run cargo build first)" >&2; exit 66; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends jq >/dev/null; } ||
    { echo "drill: jq is needed (apt-get install jq)" >&2; exit 66; }

# --- the drill harness -----------------------------------------------------------------------

# step NAME: the commands that follow belong to step NAME.
step() {
    close_step
    STEP=$1
    NCMD=0
    printf '\n## %s\n' "$STEP" >>"$T"
}
close_step() {
    [ -n "${STEP:-}" ] || return 0
    jq -cn --arg s "$STEP" --argjson n "$NCMD" '{step: $s, commands: $n, outcome: "pass"}' >>"$STEPS"
    STEP=
}
# die WHY: the current step failed; the drill ends here.
die() {
    printf 'FAILED: %s\n' "$1" >>"$T"
    jq -cn --arg s "$STEP" --argjson n "$NCMD" --arg w "$1" '{step: $s, commands: $n, outcome: "fail", detail: $w}' >>"$STEPS"
    STEP=
    echo "drill $SCEN: step \"$(tail -1 "$STEPS" | jq -r .step)\" failed: $1" >&2
    exit 1
}
# x WANT CMD...: run one command of the step as an operator would type it; its exit code must
# be WANT. Its standard output is kept in $OUT, both streams in $ALL.
x() {
    local want=$1; shift
    NCMD=$((NCMD + 1))
    printf '$ %s\n' "${XLINE:-$*}" >>"$T"
    XLINE=
    "$@" >"$W/.out" 2>"$W/.err" </dev/null
    RC=$?
    OUT=$(cat "$W/.out"); ALL=$(cat "$W/.out" "$W/.err")
    [ -z "$ALL" ] || printf '%s\n' "$ALL" >>"$T"
    [ "$RC" = 0 ] || printf '(exit %s)\n' "$RC" >>"$T"
    [ "$RC" = "$want" ] || die "\`$*\` exited $RC, expected $want: $(tail -1 "$W/.err")"
}
# xs WANT 'PIPELINE': like x, for a command line with pipes or redirections.
xs() { XLINE=$2; x "$1" bash -o pipefail -c "$2"; }
# The assertions are the end-to-end scripts' too (ci/assert-lib.sh: check, wait_for, is, want,
# wantnot); in a drill a pass is noted in the transcript and a failure ends the drill.
ok() { printf '  ok: %s\n' "$*" >>"$T"; }
ko() { die "$*"; }
# shellcheck source=ci/assert-lib.sh
source "$REPO/ci/assert-lib.sh" || { echo "drill: ci/assert-lib.sh cannot be read" >&2; exit 1; }

# --- building blocks shared by the drills ----------------------------------------------------

# found ID THRESHOLD WHO:ROLE...: approvers make keys on their own laptops, found network ID,
# every approver signs the genesis, and the operator's ledger `op` is bootstrapped. Sets $PIN.
found() {
    local net=$1 t=$2; shift 2
    local args=() who role
    for a in "$@"; do
        who=${a%%:*}; role=${a#*:}
        mkdir -m 700 "$who"
        x 0 rn key gen --out "$who/key"
        args+=(--approver "$who:$role:$(rn key pub "$who/key")")
    done
    x 0 rn member init --network-id "$net" "${args[@]}" --threshold "$t" -o genesis.json
    PIN=$OUT
    for a in "$@"; do x 0 rn member sign genesis.json --key "${a%%:*}/key" --yes; done
    x 0 rn member bootstrap --genesis genesis.json --pin "$PIN" --state-dir op
}
# node NAME: a node on the memory backend, with its own ledger NAME/state. Sets KEY[NAME].
declare -A KEY
node() {
    mkdir -m 700 "$1"
    printf '# stand-in: %s/state for /var/lib/rn\n' "$1" >>"$T"
    x 0 rn node init --node-id "$1" --genesis genesis.json --pin "$PIN" --backend memory --firewall none \
        --interface "dr$1" --config "$1/node.json" --state-dir "$1/state"
    KEY[$1]=$OUT
}
# admit NAME...: one update adds the nodes (tag:mesh) and a policy lets the mesh talk; every
# ledger catches up.
admit() {
    local ops=() n
    for n in "$@"; do ops+=("{\"op\":\"add_node\",\"node\":{\"id\":\"$n\",\"pubkey\":\"${KEY[$n]}\",\"owner\":\"ops\",\"tags\":[\"tag:mesh\"]}}"); done
    (IFS=,; echo "[${ops[*]}]") >nodes.json
    x 0 rn member propose --batch nodes.json --state-dir op --reason "admit $*" -o admit.json
    signed admit.json alice bob
    x 0 rn member apply admit.json --state-dir op
    echo '{"kind":"rn.policy.v1","rules":[{"src":["tag:mesh"],"dst":["tag:mesh"],"proto":"any"}]}' >policy.json
    x 0 rn member propose set-policy policy.json --state-dir op --reason "mesh may talk" -o policy-proposal.json
    signed policy-proposal.json alice bob
    x 0 rn member apply policy-proposal.json --state-dir op
    for n in "$@"; do catch_up "$n/state"; done
}
# shows WANT 'PIPELINE': a runbook's check, with the drill's stand-ins for what runs on a host
# (`--state-dir HOST/state` for `ssh HOST rn member …`, `rn node run --once --config
# HOST/node.json` for `ssh HOST rn node status --json` where no agent runs); what it prints must
# be WANT.
shows() {
    xs 0 "$2"
    if [ "$OUT" = "$1" ]; then ok "as the runbook shows"; else ko "\`$2\` printed \"$OUT\", expected \"$1\""; fi
}
# signed FILE WHO...: each approver signs FILE on their own laptop.
signed() { local f=$1 w; shift; for w in "$@"; do x 0 rn member sign "$f" --key "$w/key" --yes; done; }
# catch_up DIR: the ledger in DIR takes what op has and it lacks.
catch_up() {
    xs 0 "rn member export --state-dir op --since \$(rn member status --state-dir $1 --json | jq .epoch) | rn member apply - --state-dir $1"
}
# peers NAME: one reconcile of the node's agent; the ids of its peers, sorted, on one line.
peers() {
    x "${2:-0}" rn node run --once --config "$1/node.json"
    PEERS=$(jq -r '[.peers[].id] | sort | join(" ")' <<<"$OUT") && MODE=$(jq -r .mode <<<"$OUT") ||
        die "rn node run --once printed no status object"
}
field() { rn member status --state-dir "$1" --json | jq -r "$2"; }
# same_root DIR...: every ledger holds op's root and is trusted.
same_root() {
    local d r
    r=$(field op .root)
    for d in "$@"; do
        is "$d root" "$(field "$d" .root)" "$r"
        is "$d mode" "$(field "$d" .mode)" trusted
    done
}
# audit_proof DIR...: the verified chains of the ledgers a drill leaves behind.
audit_proof() {
    local d
    for d in "$@"; do
        {
            printf '### %s: %s\n' "$SCEN" "$d"
            rn member log --verify --state-dir "$d" 2>&1 || echo "(exit $?)"
            rn member log --audit --state-dir "$d" 2>&1
        } >>"$AUDIT"
        rn member log --verify --state-dir "$d" >/dev/null 2>&1 || die "$d: rn member log --verify fails at the end of the drill"
    done
}

# --- the drills ------------------------------------------------------------------------------
# Each follows its runbook in docs/operations/incidents/ step by step.

drill_approver-key-compromise() {
    step "precondition: network acme (alice, bob owners; carol guardian; 2 of 3), nodes web and db"
    found acme 2 alice:owner bob:owner carol:guardian
    node web; node db
    admit web db

    step "the incident: a copy of alice's key is in a thief's hands"
    mkdir -m 700 thief
    x 0 cp alice/key thief/alice.key

    step "contain: revoke alice as an approver (bob, an owner, and carol sign; short ttl)"
    x 0 rn member propose revoke-approver alice --state-dir op --ttl 10s --reason "alice's key leaked" -o revoke-alice.json
    signed revoke-alice.json bob carol
    x 0 rn member verify revoke-alice.json --state-dir op
    want "accepted"
    x 0 rn member apply revoke-alice.json --state-dir op
    want "revoke approver alice"

    step "a ledger offline past the ttl still takes the revocation (it only restricts)"
    sleep 11
    x 0 rn member verify revoke-alice.json --state-dir web/state
    want "accepted"
    catch_up web/state
    catch_up db/state
    same_root web/state db/state

    step "the stolen key signs nothing that counts"
    x 0 rn key gen-node --out evil.key
    x 0 rn member propose add-node --id evil --pubkey "$OUT" --owner thief --state-dir op -o evil.json
    x 64 rn member sign evil.json --key thief/alice.key --yes
    want "alice is revoked"
    x 78 rn member apply evil.json --state-dir op
    want "0 of 2 signatures"
    is "nodes on op" "$(field op '[.nodes[].id] | join(" ")')" "db web"

    step "rotate: alice makes a new key; bob, carol and the new key sign her return"
    x 0 rn key gen --out alice/key-2
    x 0 rn member propose add-approver --id alice-2 --role owner --pubkey "$(rn key pub alice/key-2)" \
        --state-dir op --reason "alice's new key" -o add-alice-2.json
    signed add-alice-2.json bob carol
    x 0 rn member sign add-alice-2.json --key alice/key-2 --yes
    want "proof of possession"
    x 0 rn member apply add-alice-2.json --state-dir op
    catch_up web/state; catch_up db/state

    step "only now, with the leaked key out, the threshold may change: raise it to 3 of 3"
    x 0 rn member propose set-threshold 3 --state-dir op --reason "three active approvers again" -o threshold.json
    x 0 rn member sign threshold.json --key alice/key-2 --yes
    signed threshold.json bob carol
    x 0 rn member apply threshold.json --state-dir op
    catch_up web/state; catch_up db/state

    step "closure: approvers as intended on every ledger, nodes unaffected"
    shows "alice:revoked alice-2:active bob:active carol:active" \
        "rn member status --state-dir op --json | jq -r '[.approvers[] | \"\\(.id):\\(.status)\"] | join(\" \")'"
    shows 3 "rn member status --state-dir op --json | jq -r .threshold"
    same_root web/state db/state
    shows db "rn node run --once --config web/node.json 2>/dev/null | jq -r '[.peers[].id] | sort | join(\" \")'"
    audit_proof op web/state db/state
}

drill_lost-approver-key() {
    step "precondition: network acme (alice, bob owners; carol guardian; 2 of 3), node web"
    found acme 2 alice:owner bob:owner carol:guardian
    node web
    admit web

    step "the incident: carol's laptop is wiped; her key is gone, not leaked"
    x 0 rm carol/key carol/key.pub

    step "carol makes a new key; alice and bob sign its rotation; the new key proves possession"
    x 0 rn key gen --out carol/key
    x 0 rn member propose rotate-approver-key carol --pubkey "$(rn key pub carol/key)" --state-dir op \
        --reason "carol's key lost" -o rotate-carol.json
    signed rotate-carol.json alice
    x 78 rn member verify rotate-carol.json --state-dir op
    want "rejected \(BelowThreshold\): 1 of 2 signatures"
    signed rotate-carol.json bob carol
    x 0 rn member verify rotate-carol.json --state-dir op
    x 0 rn member apply rotate-carol.json --state-dir op
    catch_up web/state

    step "closure: carol's new key counts toward the quorum"
    x 0 rn member propose set-node web --tag tag:mesh --tag tag:web --state-dir op -o tag-web.json
    signed tag-web.json alice carol
    x 0 rn member apply tag-web.json --state-dir op
    catch_up web/state
    is "carol's key on op" "$(field op '.approvers[] | select(.id == "carol") | .pubkey')" "$(rn key pub carol/key)"
    same_root web/state
    audit_proof op web/state
}

drill_lost-owner-key() {
    step "precondition: network acme (alice, bob owners; carol guardian; 2 of 3), nodes web and db"
    found acme 2 alice:owner bob:owner carol:guardian
    node web; node db
    admit web db

    step "case 1: alice loses her owner key; bob, the second owner, signs her new key in"
    x 0 rm alice/key alice/key.pub
    x 0 rn key gen --out alice/key
    x 0 rn member propose rotate-approver-key alice --pubkey "$(rn key pub alice/key)" --state-dir op \
        --reason "alice's owner key lost" -o rotate-alice.json
    signed rotate-alice.json carol alice
    x 78 rn member verify rotate-alice.json --state-dir op
    want "rejected \(BelowThreshold\): 1 of 2 signatures"
    want "an owner must sign \(alice, bob\)"
    signed rotate-alice.json bob
    x 0 rn member apply rotate-alice.json --state-dir op
    catch_up web/state; catch_up db/state
    same_root web/state db/state

    step "case 2: both owners' keys are lost: no governance op can be signed any more"
    x 0 rm alice/key bob/key
    x 0 rn key gen --out carol/dave.key
    x 0 rn member propose add-approver --id dave --role owner --pubkey "$(rn key pub carol/dave.key)" --state-dir op -o add-dave.json
    signed add-dave.json carol
    x 0 rn member sign add-dave.json --key carol/dave.key --yes
    x 78 rn member verify add-dave.json --state-dir op
    want "rejected \(BelowThreshold\): 1 of 2 signatures"
    want "an owner must sign"

    step "re-found: keep the node list from a trusted ledger"
    xs 0 "rn member status --state-dir op --json | jq '[.nodes[] | select(.status == \"active\") | {op: \"add_node\", node: {id, pubkey, owner, tags, addresses, routes, exit}}]' >nodes-kept.json"
    x 0 jq -r 'map(.node.id) | join(" ")' nodes-kept.json
    is "nodes kept" "$OUT" "db web"
    x 0 cp op/policy/"$(field op .policy | tr : -)".json policy-kept.json

    step "re-found: new approvers and a new genesis (new network id, new pin handed out of band)"
    for who in erin frank; do mkdir -m 700 "$who"; x 0 rn key gen --out "$who/key"; done
    x 0 rn member init --network-id acme-2 --approver "erin:owner:$(rn key pub erin/key)" \
        --approver "frank:owner:$(rn key pub frank/key)" --approver "carol:guardian:$(rn key pub carol/key)" \
        --threshold 2 -o genesis-2.json
    PIN2=$OUT
    signed genesis-2.json erin frank carol
    x 0 rn member bootstrap --genesis genesis-2.json --pin "$PIN2" --state-dir op-2
    x 0 rn member propose --batch nodes-kept.json --state-dir op-2 --reason "re-found: the nodes of acme" -o refound.json
    signed refound.json erin frank
    x 0 rn member apply refound.json --state-dir op-2
    x 0 rn member propose set-policy policy-kept.json --state-dir op-2 --reason "re-found: the policy of acme" -o refound-policy.json
    signed refound-policy.json erin frank
    x 0 rn member apply refound-policy.json --state-dir op-2

    step "every node moves over with its own WireGuard key and overlay address"
    for n in web db; do
        x 0 mv "$n/state" "$n/state.acme"
        x 0 rn member bootstrap --genesis genesis-2.json --pin "$PIN2" --state-dir "$n/state"
        xs 0 "rn member export --state-dir op-2 | rn member apply - --state-dir $n/state"
        xs 0 "jq --arg pin $PIN2 '.genesis_root = \$pin' $n/node.json >$n/node.json.new && chmod 600 $n/node.json.new && mv $n/node.json.new $n/node.json"
    done

    step "closure: same nodes, keys and addresses under the new genesis; the old chain is refused"
    xs 0 "rn member status --state-dir op-2 --json | jq -r '[.nodes[] | \"\\(.id)=\\(.pubkey)=\\(.addresses[0])\"] | join(\" \")'"
    shows "$OUT" "rn member status --state-dir op --json | jq -r '[.nodes[] | \"\\(.id)=\\(.pubkey)=\\(.addresses[0])\"] | join(\" \")'"
    x 78 rn member apply admit.json --state-dir op-2
    want 'update is for network "acme", this ledger is "acme-2"'
    shows "$(field op-2 .root)" "rn member status --state-dir web/state --json | jq -r .root"
    shows db "rn node run --once --config web/node.json 2>/dev/null | jq -r '[.peers[].id] | sort | join(\" \")'"
    for n in web db; do is "$n root" "$(field "$n/state" .root)" "$(field op-2 .root)"; done
    audit_proof op-2 web/state db/state
}

drill_node-compromise() {
    step "precondition: network acme, nodes web, db and laptop peered"
    found acme 2 alice:owner bob:owner carol:guardian
    node web; node db; node laptop
    admit web db laptop
    peers web
    is "web's peers" "$PEERS" "db laptop"

    step "the incident: the laptop is stolen; revoke it (alice and bob sign)"
    x 0 rn member propose revoke-node laptop --state-dir op --reason "laptop stolen" -o revoke-laptop.json
    signed revoke-laptop.json alice bob
    x 0 rn member apply revoke-laptop.json --state-dir op
    want "revoke node laptop"

    step "push it to every node and confirm each one dropped the laptop"
    for n in web db; do
        catch_up "$n/state"
        peers "$n"
        is "$n mode" "$MODE" trusted
        is "$n peers" "$PEERS" "$([ "$n" = web ] && echo db || echo web)"
    done

    step "the stolen laptop, if it comes online, finds itself revoked and carries nothing"
    catch_up laptop/state
    peers laptop 78
    is "laptop mode" "$MODE" restricted
    is "laptop peers" "$PEERS" ""
    want "revoked"

    step "the laptop is recovered: wipe it, new WireGuard key, rotate and restore in one update"
    x 0 rn key gen-node --out laptop/drlaptop.key --force
    NEWKEY=$OUT
    echo '[{"op":"restore_node","id":"laptop"}]' >restore.json
    x 0 rn member propose rotate-node-key laptop --pubkey "$NEWKEY" --batch restore.json --state-dir op \
        --reason "laptop recovered and re-keyed" -o rekey-laptop.json
    signed rekey-laptop.json alice bob
    x 0 rn member apply rekey-laptop.json --state-dir op
    for n in web db laptop; do catch_up "$n/state"; done

    step "closure: the laptop is back with its new key only"
    shows "$NEWKEY" "rn node run --once --config web/node.json 2>/dev/null | jq -r '.peers[] | select(.id == \"laptop\") | .pubkey'"
    shows trusted "rn node run --once --config laptop/node.json 2>/dev/null | jq -r .mode"
    shows "$(field op .root)
trusted" "rn member status --state-dir web/state --json | jq -r '.root, .mode'"
    same_root web/state db/state laptop/state
    audit_proof op web/state db/state laptop/state
}

drill_fleet-revocation() {
    [ "$(id -u)" = 0 ] || die "needs root: network namespaces, TUN, nftables and sshd"
    source "$REPO/ci/netns-lib.sh"
    NS_PREFIX=rnf
    need_root_tools >/dev/null || die "root tools missing"
    if ! [ -x /usr/sbin/sshd ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
        # Only the drill's own sshd processes, in its namespaces: not a system-wide one.
        { systemctl disable --now ssh || service ssh stop; } >/dev/null 2>&1
    fi
    command -v ssh >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-client >/dev/null; }
    trap 'cleanup_netns; rm -f /run/rn/rnf*.sock' EXIT
    cleanup_netns 2>/dev/null

    step "precondition: network acme; web, db and laptop in their own network namespaces, each running the agent (userspace WireGuard, nftables) and sshd"
    found acme 2 alice:owner bob:owner carol:guardian
    make_underlay
    declare -A IDX=([web]=1 [db]=2 [laptop]=3)
    mkdir -m 700 ssh
    x 0 ssh-keygen -q -t ed25519 -N '' -f ssh/host_key
    x 0 ssh-keygen -q -t ed25519 -N '' -C operator -f ssh/operator
    cp ssh/operator.pub ssh/authorized_keys
    mkdir -p /run/sshd
    for n in web db laptop; do
        # Control sockets are per interface name, and /run/rn is shared by the namespaces: each
        # host's interface has a name of its own where the runbook says rn0.
        printf '# stand-in: rnf%s for rn0\n' "$n" >>"$T"
        add_host "$n" "${IDX[$n]}"
        mkdir -m 700 "$n"
        local eps=()
        for m in web db laptop; do [ "$m" = "$n" ] || eps+=(--endpoint "$m=10.99.0.${IDX[$m]}:5183${IDX[$m]}"); done
        x 0 rn node init --node-id "$n" --genesis genesis.json --pin "$PIN" --interface "rnf$n" \
            --listen-port "5183${IDX[$n]}" --backend userspace --firewall nftables "${eps[@]}" --keepalive 5 \
            --config "$n/node.json" --state-dir "$n/state"
        KEY[$n]=$OUT
        printf '%s\n' "ListenAddress 10.99.0.${IDX[$n]}" "HostKey $W/ssh/host_key" "PidFile $W/ssh/$n.pid" \
            "AuthorizedKeysFile $W/ssh/authorized_keys" "PermitRootLogin prohibit-password" \
            "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UsePAM no" "StrictModes no" \
            "SetEnv PATH=$W/bin:/usr/sbin:/usr/bin:/sbin:/bin" >"ssh/$n.conf"
        ip netns exec "rnf-$n" /usr/sbin/sshd -D -e -f "$W/ssh/$n.conf" >>"ssh/$n.log" 2>&1 &
        PIDS+=($!)
    done
    add_host op 9
    admit web db laptop
    for n in web db laptop; do
        ip netns exec "rnf-$n" "$RN" node run --config "$W/$n/node.json" >>"$W/$n/agent.log" 2>&1 &
        PIDS+=($!)
    done
    # fleet.txt: the operator's inventory, host and state directory, one per line
    for n in web db laptop; do echo "10.99.0.${IDX[$n]} $W/$n/state"; done >fleet.txt
    printf '%s\n' "Host 10.99.0.*" "  User root" "  IdentityFile $W/ssh/operator" "  UserKnownHostsFile $W/ssh/known_hosts" \
        "  StrictHostKeyChecking accept-new" "  BatchMode yes" "  ConnectTimeout 5" >ssh/config
    pings() { ip netns exec "rnf-$1" ping -c1 -W1 "$2" >/dev/null 2>&1; }
    check "laptop reaches web before the drill" wait_for 20 pings laptop 100.96.0.1
    x 0 ip netns exec rnf-laptop ping -c1 -W2 100.96.0.1
    want "1 received"

    step "the incident: the laptop is compromised; alice and bob sign its revocation"
    x 0 rn member propose revoke-node laptop --state-dir op --reason "laptop compromised" -o revoke-laptop.json
    signed revoke-laptop.json alice bob
    x 0 rn member apply revoke-laptop.json --state-dir op

    step "apply the signed revocation on one host, web, over SSH"
    local t0=$SECONDS
    xs 0 "ip netns exec rnf-op ssh -F ssh/config 10.99.0.1 rn member apply - --state-dir $W/web/state <revoke-laptop.json"
    want "applied 1 update"

    step "watch it spread: db takes it from web by itself, and web and db drop the laptop"
    at_epoch() { [ "$(rn member status --state-dir "$1" --json | jq .epoch)" = 3 ]; }
    check "db is at epoch 3 within 5 s of the apply on web" wait_for 5 at_epoch db/state
    for n in web db; do
        check "$n dropped the laptop as a peer within 10 s of the apply" \
            wait_for 10 lacks_peer "rnf-$n" "rnf$n" "${KEY[laptop]}"
        x 0 ip netns exec rnf-op ssh -F ssh/config "10.99.0.${IDX[$n]}" rn node status --config "$W/$n/node.json"
        wantnot "^  laptop "  # no peer line for it (a past pull from it may still be named)
    done
    x 0 ip netns exec rnf-op ssh -F ssh/config 10.99.0.2 rn member log --audit --state-dir "$W/db/state"
    want "commit +epoch 2 -> 3: .*\(from http://100\.96\.0\.1:51821\)"
    printf '  web and db revoked the laptop %s s after the apply on web\n' "$((SECONDS - t0))" >>"$T"

    step "push as the fallback, to every host at once, 20 s per host: the mesh already carried it to web and db; the laptop, cut off from the mesh, takes it now"
    x 0 ip netns exec rnf-op rn member push --hosts fleet.txt --state-dir op --timeout 20 --ssh-config ssh/config
    wantnot FAILED
    for n in web db; do want "^10\.99\.0\.${IDX[$n]} +3 -> 3 +already up to date"; done
    want "^10\.99\.0\.3 +2 -> 3 +applied 1 update"
    want "to 3 of 3 host\(s\)"
    local ep
    xs 0 "rn member status --state-dir op --json | jq .epoch"
    ep=$OUT
    while read -r host dir; do
        x 0 ip netns exec rnf-op ssh -F ssh/config "$host" rn member status --state-dir "$dir" --json
        is "$host epoch" "$(jq .epoch <<<"$OUT")" "$ep"
    done <fleet.txt

    step "closure: the laptop's traffic is cut; the rest of the mesh still talks"
    laptop_restricted() { rn node status --config laptop/node.json 2>/dev/null | grep -q '^mode *restricted'; }
    check "the laptop's agent is restricted within 10 s of the push" wait_for 10 laptop_restricted
    xs 0 "! ip netns exec rnf-laptop ping -c2 -W1 100.96.0.1"
    check "web still reaches db after the revocation" wait_for 10 pings web 100.96.0.2
    x 0 ip netns exec rnf-web ping -c1 -W2 100.96.0.2
    x 0 rn node status --config laptop/node.json
    want "restricted"
    want "^serves +nothing now"
    audit_proof op web/state db/state laptop/state
    close_step
    cleanup_netns
    trap - EXIT
}

drill_node-key-rotation() {
    [ "$(id -u)" = 0 ] || die "needs root: network namespaces, TUN and nftables"
    source "$REPO/ci/netns-lib.sh"
    NS_PREFIX=rnk
    need_root_tools >/dev/null || die "root tools missing"
    trap 'cleanup_netns; rm -f /run/rn/rnk*.sock /run/rn/rnk*.lock' EXIT
    cleanup_netns 2>/dev/null

    step "precondition: network acme; web and db in their own network namespaces, each running the agent (userspace WireGuard, nftables); db pings web"
    found acme 2 alice:owner bob:owner carol:guardian
    make_underlay
    declare -A IDX=([web]=1 [db]=2)
    # As in fleet-revocation: an interface name and key file per host where the runbook says rn0.
    printf '# stand-in: %s for %s\n' "$W/web/rnkweb.key" /etc/rn/rn0.key rnkweb rn0 rnkdb rn0 >>"$T"
    for n in web db; do
        add_host "$n" "${IDX[$n]}"
        mkdir -m 700 "$n"
        local eps=()
        for m in web db; do [ "$m" = "$n" ] || eps+=(--endpoint "$m=10.99.0.${IDX[$m]}:5184${IDX[$m]}"); done
        x 0 rn node init --node-id "$n" --genesis genesis.json --pin "$PIN" --interface "rnk$n" \
            --listen-port "5184${IDX[$n]}" --backend userspace --firewall nftables "${eps[@]}" --keepalive 5 \
            --config "$n/node.json" --state-dir "$n/state"
        KEY[$n]=$OUT
    done
    admit web db
    for n in web db; do
        ip netns exec "rnk-$n" "$RN" node run --config "$W/$n/node.json" >>"$W/$n/agent.log" 2>&1 &
        PIDS+=($!)
    done
    pings() { ip netns exec "rnk-$1" ping -c1 -W1 "$2" >/dev/null 2>&1; }
    check "db reaches web before the rotation" wait_for 20 pings db 100.96.0.1
    x 0 rn node status --config web/node.json --json
    is "web's key before" "$(jq -r .key <<<"$OUT")" "${KEY[web]}"

    step "on web: stage the next key beside the current one"
    x 0 rn node rekey --config web/node.json
    local next=$OUT
    want "rn member propose rotate-node-key web --pubkey"
    x 0 test -f web/rnkweb.key.next

    step "approvers sign the rotation; it reaches both ledgers while db pings web every 50 ms"
    ip netns exec rnk-db ping -i 0.05 -c 120 -W 1 100.96.0.1 >ping.txt 2>&1 &
    local ping=$!
    x 0 rn member propose rotate-node-key web --pubkey "$next" --state-dir op --reason "routine rotation" -o rekey-web.json
    signed rekey-web.json alice bob
    x 0 rn member apply rekey-web.json --state-dir op
    x 0 rn member apply rekey-web.json --state-dir web/state
    x 0 rn member apply rekey-web.json --state-dir db/state
    wait "$ping"
    x 0 cat ping.txt
    local sent got
    sent=$(awk '/packets transmitted/ {print $1}' ping.txt); got=$(awk '/packets transmitted/ {print $4}' ping.txt)
    printf '  pings db -> web during the rotation: %s sent, %s received\n' "$sent" "$got" >>"$T"
    check "at most 2 of $sent pings lost during the rotation (lost: $((sent - got)))" [ $((sent - got)) -le 2 ]

    step "confirm: web runs on the new key, db holds it, the staged file became the key file"
    shows "trusted
$next" "rn node status --config web/node.json --json | jq -r '.mode, .key'"
    shows "$next" "ip netns exec rnk-web wg show rnkweb public-key"
    shows "$next" "rn node status --config db/node.json --json | jq -r '.peers[] | select(.id == \"web\") | .pubkey'"
    x 0 ip netns exec rnk-db wg show rnkdb peers
    is "db's one peer" "$OUT" "$next"
    x 1 test -e web/rnkweb.key.next
    xs 0 "wg pubkey <web/rnkweb.key"
    is "web's key file" "$OUT" "$next"
    x 0 ip netns exec rnk-db ping -c1 -W2 100.96.0.1
    want "1 received"
    audit_proof op web/state db/state
    close_step
    cleanup_netns
    trap - EXIT
}

drill_quorum-reconstitution() {
    step "precondition: network acme, 3 of 5 (alice, bob owners; carol, dave, erin guardians), node web"
    found acme 3 alice:owner bob:owner carol:guardian dave:guardian erin:guardian
    node web
    local ops=("{\"op\":\"add_node\",\"node\":{\"id\":\"web\",\"pubkey\":\"${KEY[web]}\",\"owner\":\"ops\",\"tags\":[\"tag:mesh\"]}}")
    echo "[${ops[0]}]" >nodes.json
    x 0 rn member propose --batch nodes.json --state-dir op -o admit.json
    signed admit.json alice bob carol
    x 0 rn member apply admit.json --state-dir op
    catch_up web/state

    step "the incident: dave and erin lose their keys; 3 of the 5 remain, exactly the threshold"
    x 0 rm dave/key erin/key

    step "one update: revoke dave and erin, add frank and grace; the three remaining sign, the new keys prove possession"
    for who in frank grace; do mkdir -m 700 "$who"; x 0 rn key gen --out "$who/key"; done
    jq -n --arg f "$(rn key pub frank/key)" --arg g "$(rn key pub grace/key)" '[
        {op: "revoke_approver", id: "erin"},
        {op: "add_approver", approver: {id: "frank", pubkey: $f, role: "guardian", status: "active"}},
        {op: "add_approver", approver: {id: "grace", pubkey: $g, role: "guardian", status: "active"}}]' >reconstitute.json
    x 0 rn member propose revoke-approver dave --batch reconstitute.json --state-dir op \
        --reason "dave and erin lost their keys" -o reconstitute-proposal.json
    signed reconstitute-proposal.json alice bob carol
    x 78 rn member verify reconstitute-proposal.json --state-dir op
    want "rejected \(MissingProofOfPossession\): missing proof of possession: the new key of approver frank"
    signed reconstitute-proposal.json frank grace
    x 0 rn member verify reconstitute-proposal.json --state-dir op
    x 0 rn member apply reconstitute-proposal.json --state-dir op
    catch_up web/state

    step "closure: five active approvers, 3 of 5 again; the new approvers count"
    shows "alice bob carol frank grace" \
        "rn member status --state-dir op --json | jq -r '[.approvers[] | select(.status == \"active\") | .id] | join(\" \")'"
    shows 3 "rn member status --state-dir op --json | jq -r .threshold"
    x 0 rn member propose set-node web --tag tag:mesh --tag tag:web --state-dir op -o tag-web.json
    signed tag-web.json frank grace bob
    x 0 rn member apply tag-web.json --state-dir op
    catch_up web/state
    same_root web/state
    audit_proof op web/state
}

drill_fork-evidence() {
    step "precondition: network acme, 2 of 4 (alice, bob owners; carol, dave guardians), nodes web and db"
    found acme 2 alice:owner bob:owner carol:guardian dave:guardian
    node web; node db
    admit web db

    step "the incident: a thief holds copies of alice's and carol's keys"
    mkdir -m 700 thief
    x 0 cp alice/key thief/alice.key
    x 0 cp carol/key thief/carol.key

    step "bob and dave sign an honest change; op and web commit it, db is offline"
    x 0 cp -a db/state db-offline.state
    x 0 rn member propose set-node web --tag tag:mesh --tag tag:web --state-dir op --reason "honest change" -o honest.json
    signed honest.json bob dave
    x 0 rn member apply honest.json --state-dir op
    catch_up web/state

    step "the thief signs a conflicting update for the same epoch and feeds it to db"
    x 0 rn key gen-node --out evil.key
    x 0 rn member propose add-node --id evil --pubkey "$OUT" --owner thief --tag tag:mesh --base db-offline.state/ledger.snapshot -o forged.json
    x 0 rn member sign forged.json --key thief/alice.key --yes
    x 0 rn member sign forged.json --key thief/carol.key --yes
    x 0 rn member apply forged.json --state-dir db/state
    want "add node evil"

    step "detect: the forged update reaches op and web: Fork, kept as evidence, shown in status"
    x 78 rn member apply forged.json --state-dir op
    want "FORK: a quorum-signed update has another history"
    xs 0 "rn member export --state-dir db/state --since 2 | rn member apply - --state-dir web/state; test \$? = 78"
    x 0 rn member status --state-dir op
    want "FORK EVIDENCE"
    x 0 ls op/evidence
    EVIDENCE=op/evidence/$(ls op/evidence | head -1)

    step "read the evidence: who signed each side"
    x 0 jq -r '[.signatures[].approver] | join(" ")' honest.json
    is "honest signers" "$OUT" "bob dave"
    x 0 jq -r '[.signatures[].approver] | join(" ")' "$EVIDENCE"
    is "forged signers" "$OUT" "alice carol"
    x 0 rn member status --state-dir db/state
    want "evil"

    step "contain: bob and dave revoke alice and carol"
    echo '[{"op":"revoke_approver","id":"carol"}]' >revoke-carol.json
    x 0 rn member propose revoke-approver alice --batch revoke-carol.json --state-dir op --reason "keys used to sign a fork" -o revoke-signers.json
    signed revoke-signers.json bob dave
    x 0 rn member apply revoke-signers.json --state-dir op
    catch_up web/state

    step "rebuild db: set its forked ledger aside as evidence, bootstrap, catch up from op"
    x 0 mv db/state db/state.forked
    x 0 rn member bootstrap --genesis genesis.json --pin "$PIN" --state-dir db/state
    xs 0 "rn member export --state-dir op | rn member apply - --state-dir db/state"

    step "closure: every ledger on the honest chain, no evil node, the thief's keys revoked"
    same_root web/state
    shows "$(field op .root)
trusted" "rn member status --state-dir db/state --json | jq -r '.root, .mode'"
    shows "db web" "rn member status --state-dir db/state --json | jq -r '[.nodes[].id] | join(\" \")'"
    shows web "rn node run --once --config db/node.json 2>/dev/null | jq -r '[.peers[].id] | sort | join(\" \")'"
    x 78 rn member apply forged.json --state-dir db/state
    audit_proof op web/state db/state
}

drill_restricted-node() {
    step "precondition: network acme, nodes web and db peered"
    found acme 2 alice:owner bob:owner carol:guardian
    node web; node db
    admit web db
    peers web
    is "web's peers" "$PEERS" db

    step "reason MissingWatermark: the watermark vanished; web fails closed"
    x 0 rm web/state/ledger.watermark
    peers web 78
    is "web peers while restricted" "$PEERS" ""
    x 0 rn member status --state-dir web/state
    want "restricted: ledger.watermark is missing"

    step "investigate: web's log head matches a healthy ledger; accept it"
    is "web's log root" "$(field web/state .root)" "$(field op .root)"
    x 0 rn member recover --state-dir web/state --danger-accept-current
    want "trusted again"
    peers web
    is "web's peers" "$PEERS" db

    step "reason LogTampered: a byte of a log line changed; recovery refuses it"
    x 0 sed -i 's/"reason":"admit web db"/"reason":"admit web dB"/' web/state/ledger.log
    peers web 78
    x 0 rn member status --state-dir web/state
    want "restricted: ledger.log line 1 does not verify"
    x 78 rn member recover --state-dir web/state --danger-accept-current
    want "Restore the state directory"

    step "rebuild web's ledger from a healthy one under its running agent; keep the tampered copy as evidence"
    "$RN" node run --config "$W/web/node.json" >>"$W/web/agent.log" 2>&1 &
    local agent=$!
    wait_status() { # WHAT JQ WANT: the running agent's status reaches WANT within 10 s
        local i
        for i in $(seq 50); do
            [ "$(rn node status --config web/node.json --json 2>/dev/null | jq -r "$2")" = "$3" ] && return 0
            sleep 0.2
        done
        die "$1: web's agent did not reach $3 within 10 s"
    }
    wait_status "tampered ledger" .mode restricted
    x 0 mv web/state web/state.tampered
    x 0 rn member bootstrap --genesis genesis.json --pin "$PIN" --state-dir web/state
    xs 0 "rn member export --state-dir op | rn member apply - --state-dir web/state"
    wait_status "rebuilt directory" '"\(.mode) \(.epoch)"' "trusted $(field op .epoch)"
    x 0 rn node status --config web/node.json
    want "trusted"

    step "the running agent enforces later epochs from the rebuilt directory's inbox, no restart"
    x 0 test -d web/state/inbox
    x 0 rn member propose quarantine-node db --state-dir op --reason "maintenance" -o q-db.json
    signed q-db.json alice bob
    x 0 rn member apply q-db.json --state-dir op
    x 0 rn member propose restore-node db --state-dir op --reason "maintenance done" -o r-db.json
    signed r-db.json alice bob
    x 0 rn member apply r-db.json --state-dir op
    xs 0 "rn member export --state-dir op --since \$(rn member status --state-dir web/state --json | jq .epoch) >web/state/inbox/.later && mv web/state/inbox/.later web/state/inbox/later.json"
    wait_status "two later epochs" '"\(.mode) \(.epoch)"' "trusted $(field op .epoch)"
    x 0 rn node status --config web/node.json --json
    is "web's peers (running agent)" "$(jq -r '[.peers[].id] | join(" ")' <<<"$OUT")" db
    kill "$agent"; wait "$agent"
    is "web's agent exit on SIGTERM" "$?" 0
    catch_up db/state
    peers web
    is "web's peers" "$PEERS" db

    step "reason revoked: db is revoked by quorum; only a quorum brings it back"
    x 0 rn member propose revoke-node db --state-dir op -o revoke-db.json
    signed revoke-db.json alice bob
    x 0 rn member apply revoke-db.json --state-dir op
    catch_up db/state
    # As `rn node status --json` shows it (exit 0 whatever the mode); a pass that ends
    # restricted exits 78.
    xs 0 "rn node run --once --config db/node.json 2>/dev/null || [ \$? = 78 ]"
    want '"mode":"restricted","reason":"this node \(db\) is revoked in the ledger"'
    is "db's peers" "$(jq -c .peers <<<"$OUT")" "[]"
    x 78 rn member recover --state-dir db/state --danger-accept-current
    want "not restricted"
    x 0 rn member propose restore-node db --state-dir op -o restore-db.json
    signed restore-db.json alice bob
    x 0 rn member apply restore-db.json --state-dir op
    catch_up db/state; catch_up web/state

    step "closure: both nodes trusted and peered, on op's root"
    shows web "rn node run --once --config db/node.json 2>/dev/null | jq -r '[.peers[].id] | sort | join(\" \")'"
    shows db "rn node run --once --config web/node.json 2>/dev/null | jq -r '[.peers[].id] | sort | join(\" \")'"
    for n in web db; do
        shows "$(field op .root)
trusted" "rn member status --state-dir $n/state --json | jq -r '.root, .mode'"
    done
    audit_proof op web/state db/state
}

drill_backup-restore() {
    step "precondition: network acme, node web; op is the ledger backed up"
    found acme 2 alice:owner bob:owner carol:guardian
    node web
    admit web

    step "back up: directory and mirror under the ledger's lock, with a manifest and its proof"
    xs 0 "flock -w 10 op/lock tar -cpf op-backup.tar op op.watermark"
    xs 0 "rn member log --verify --state-dir op --json >op-backup.proof"
    xs 0 "sha256sum op-backup.tar op-backup.proof >op-backup.sha256"
    BACKUP_ROOT=$(jq -r .ledger.root op-backup.proof)
    BACKUP_EPOCH=$(jq -r .ledger.epoch op-backup.proof)

    step "the ledger moves on after the backup: web gets a tag"
    x 0 rn member propose set-node web --tag tag:mesh --tag tag:web --state-dir op -o tag-web.json
    signed tag-web.json alice bob
    x 0 rn member apply tag-web.json --state-dir op
    catch_up web/state

    step "the incident: op's directory is destroyed"
    x 0 rm -rf op
    x 66 rn member status --state-dir op

    step "restore: check the archive, extract only the directory, keep the newer mirror"
    x 0 sha256sum -c op-backup.sha256
    x 0 tar -xpf op-backup.tar op
    x 0 rn member status --state-dir op
    want "restricted: rollback"
    is "restored log root" "$(field op .root)" "$BACKUP_ROOT"
    is "restored genesis" "$(field op .genesis_root)" "$PIN"

    step "integrity proof: the restored chains verify to the root in the manifest"
    x 78 rn member log --verify --state-dir op
    x 0 rn member recover --state-dir op --danger-accept-current
    x 0 rn member log --verify --state-dir op --json
    is "verified root" "$(jq -r .ledger.root <<<"$OUT")" "$BACKUP_ROOT"
    is "verified epoch" "$(jq -r .ledger.epoch <<<"$OUT")" "$BACKUP_EPOCH"
    is "audit chain" "$(jq -r .audit.ok <<<"$OUT")" true
    shows "$BACKUP_EPOCH" "jq -r .ledger.epoch op-backup.proof"

    step "catch up at once from a healthy ledger (web's)"
    xs 0 "rn member export --state-dir web/state --since \$(rn member status --state-dir op --json | jq .epoch) | rn member apply - --state-dir op"

    step "closure: op is back at the newest root, trusted"
    is "op root" "$(field op .root)" "$(field web/state .root)"
    is "op mode" "$(field op .mode)" trusted
    audit_proof op web/state
}

# --- running them ----------------------------------------------------------------------------

run_one() {
    SCEN=$1
    T=$ART/drills/$SCEN.log
    STEPS=$ART/drills/$SCEN.steps
    AUDIT=$ART/drills/$SCEN.audit
    : >"$T"; : >"$STEPS"; : >"$AUDIT"
    W=$(mktemp -d "/tmp/rn-drill-$SCEN.XXXXXX")
    chmod 700 "$W"
    # Every approver's laptop is this one account: their keys' journals (spec §11) live here.
    export XDG_STATE_HOME="$W/.state"
    mkdir "$W/bin"; ln -s "$RN" "$W/bin/rn"
    export PATH="$W/bin:$PATH"
    printf '# drill %s (runbook docs/operations/incidents/%s.md)\n# rn %s; %s\n' \
        "$SCEN" "$SCEN" "$(rn --version 2>/dev/null)" "$(date -u '+%F %T UTC')" >"$T"
    local start=$SECONDS rc
    (cd "$W" && set +e && "drill_$SCEN" && close_step)
    rc=$?
    rm -rf "$W"
    jq -s --arg s "$SCEN" --argjson rc "$rc" --argjson secs "$((SECONDS - start))" --arg commit "$COMMIT" '{
        scenario: $s, runbook: "docs/operations/incidents/\($s).md", transcript: "artifacts/drills/\($s).log",
        commit: $commit, seconds: $secs, steps: .,
        outcome: (if $rc == 0 and all(.[]; .outcome == "pass") and length > 0 then "pass" else "fail" end)}' \
        "$STEPS" >"$ART/drills/$SCEN.json"
    printf 'drill %-24s %s (%d steps, %d s)\n' "$SCEN" "$(jq -r .outcome "$ART/drills/$SCEN.json")" \
        "$(jq '.steps | length' "$ART/drills/$SCEN.json")" "$((SECONDS - start))"
    return "$rc"
}

# The commit the artifacts are for ("-dirty" when the work tree differs); ci/gates.sh passes its own.
COMMIT=${RN_COMMIT:-$(git -C "$REPO" rev-parse HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || echo -dirty)}
case "$WHAT" in
    list) printf '%s\n' "${SCENARIOS[@]}" ;;
    all)
        FAILED=0
        for s in "${SCENARIOS[@]}"; do run_one "$s" || FAILED=$((FAILED + 1)); done
        REPORTS=()
        for s in "${SCENARIOS[@]}"; do REPORTS+=("$ART/drills/$s.json"); done
        jq -s --arg commit "$COMMIT" '{commit: $commit, drills: ., all_pass: all(.[]; .outcome == "pass")}' \
            "${REPORTS[@]}" >"$ART/recovery.json"
        { echo "# audit and ledger chains of the drill networks, verified by rn member log --verify (commit $COMMIT)"
          for s in "${SCENARIOS[@]}"; do cat "$ART/drills/$s.audit"; done; } >"$ART/audit-integrity.log"
        echo "drills: $(( ${#SCENARIOS[@]} - FAILED )) passed, $FAILED failed; artifacts/recovery.json, artifacts/audit-integrity.log"
        [ "$FAILED" = 0 ]
        ;;
    *)
        [[ " ${SCENARIOS[*]} " == *" $WHAT "* ]] || usage
        run_one "$WHAT"
        ;;
esac
