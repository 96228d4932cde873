# shellcheck shell=bash
# The one vocabulary of assertions the drills (ci/drill.sh) and the end-to-end scripts
# (ci/e2e-*.sh, ci/kernel-vm-guest.sh, through ci/netns-lib.sh) share. Sourced, not run.
#
# What a pass or a failure does belongs to the script: it defines `ok MESSAGE` and
# `ko MESSAGE` before sourcing this file. The end-to-end scripts print and count them and go
# on (ci/netns-lib.sh); a drill records a pass in its transcript and ends at its first failure.

# check NAME CMD...: CMD must succeed.
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else ko "$name"; return 1; fi
}

# wait_for SECONDS CMD...: retry CMD every 50 ms until it succeeds or time runs out (bounded).
wait_for() {
    local limit=$1; shift
    local end=$(( $(date +%s%N) + limit * 1000000000 ))
    while [ "$(date +%s%N)" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# is WHAT GOT EXPECTED: a value read back must be the expected one.
is() {
    if [ "$2" = "$3" ]; then ok "$1 = $2"; else ko "$1: got \"$2\", expected \"$3\""; return 1; fi
}

# want REGEX [TEXT]: TEXT (default: $ALL, what the last drill command printed) matches REGEX,
# case-insensitively.
want() {
    grep -Eiq -- "$1" <<<"${2-$ALL}" || { ko "expected output matching /$1/"; return 1; }
}

# wantnot REGEX [TEXT]: it does not.
wantnot() {
    ! grep -Eiq -- "$1" <<<"${2-$ALL}" || { ko "unexpected output matching /$1/"; return 1; }
}
