#!/usr/bin/env bash
# The advisories gate: `cargo deny check advisories` against the RustSec database.
#
# It prefers a fresh fetch of the database. Where that cannot be fetched (the build machines
# reach package registries only), it uses the dated snapshot beside the repository
# (../shared/advisory-db, described by ../shared/advisory-db.SNAPSHOT), made into the git
# repository cargo-deny reads. Either way the database lives in a private directory,
# target/advisory-dbs (cargo-deny runs with a copy of deny.toml whose db-path names it), never
# in the user's own CARGO_HOME. A snapshot more than 180 days old fails the gate.
#
# Prints one last line, the verdict: "pass (advisory database of YYYY-MM-DD, N days old)" or
# "FAIL: …"; exits 0 only on pass.
# Usage: ci/advisories.sh     RN_ADVISORY_SNAPSHOT=DIR overrides ../shared/advisory-db
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
MAX_AGE_DAYS=180
# The folder name cargo-deny 0.20 derives from the default database URL.
DB_NAME=advisory-db-3157b0e258782691
DBS=$PWD/target/advisory-dbs
SNAPSHOT=${RN_ADVISORY_SNAPSHOT:-$(cd .. && pwd)/shared/advisory-db}
SNAPSHOT_INFO=$SNAPSHOT.SNAPSHOT

fail() { echo "FAIL: $*"; exit 1; }
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny@0.20.2 >/dev/null 2>&1 ||
    fail "cargo-deny is not installed and could not be (cargo install --locked cargo-deny@0.20.2)"
mkdir -p "$DBS"
# deny.toml with db-path set to the private directory.
CONFIG=$DBS/deny.toml
awk -v path="$DBS" '{ print } /^\[advisories\]$/ { printf "db-path = \"%s\"\n", path }' deny.toml >"$CONFIG"
grep -q '^db-path = ' "$CONFIG" || fail "deny.toml has no [advisories] section"

# found OUTPUT: the advisory ids cargo-deny reported, one line.
found() { grep -oE 'RUSTSEC-[0-9]{4}-[0-9]{4}' <<<"$1" | sort -u | tr '\n' ' '; }
# verdict RC OUTPUT DATE: pass or FAIL for one cargo-deny run against a database of DATE.
verdict() {
    local rc=$1 out=$2 date=$3 age
    age=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))
    if [ "$rc" = 0 ]; then
        echo "pass (advisory database of ${date:0:10}, $age days old)"
        exit 0
    fi
    local ids
    ids=$(found "$out")
    [ -n "$ids" ] || fail "cargo deny check advisories exited $rc without naming an advisory: $(tail -1 <<<"$out")"
    fail "advisories found: ${ids% } (advisory database of ${date:0:10}, $age days old)"
}

# 1. A fresh fetch, where the database's host is reachable.
out=$(cargo deny --config "$CONFIG" check advisories 2>&1)
rc=$?
if ! grep -q 'failed to fetch advisory database' <<<"$out"; then
    printf '%s\n' "$out" | tail -20
    date=$(git -C "$DBS/$DB_NAME" log -1 --format=%cI 2>/dev/null) ||
        fail "the fetched advisory database has no commit date"
    verdict "$rc" "$out" "$date"
fi
echo "the advisory database cannot be fetched from this machine: using the snapshot $SNAPSHOT"

# 2. The snapshot, made into the git repository cargo-deny reads (again when it changed).
[ -d "$SNAPSHOT/crates" ] && [ -f "$SNAPSHOT_INFO" ] ||
    fail "no advisory database snapshot at $SNAPSHOT (with $SNAPSHOT_INFO): put a copy of the RustSec advisory-db there, or run where it can be fetched"
commit=$(sed -n 's/^commit: *//p' "$SNAPSHOT_INFO")
date=$(sed -n 's/^commit date: *//p' "$SNAPSHOT_INFO")
[ -n "$commit" ] && date -d "$date" +%s >/dev/null 2>&1 ||
    fail "$SNAPSHOT_INFO names no commit and commit date"
age=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))
[ "$age" -le "$MAX_AGE_DAYS" ] ||
    fail "the advisory database snapshot is $age days old (of ${date:0:10}; at most $MAX_AGE_DAYS): refresh $SNAPSHOT from the RustSec advisory-db"
db=$DBS/$DB_NAME
marker=$DBS/.snapshot-commit
if [ "$(cat "$marker" 2>/dev/null)" != "$commit" ] || [ ! -d "$db/.git" ]; then
    rm -rf "$db"
    mkdir -p "$db"
    cp -a "$SNAPSHOT/." "$db/"
    (
        cd "$db" &&
        git init -q &&
        git add -A &&
        GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
            git -c user.name=rn -c user.email=rn@localhost commit -q -m "RustSec advisory-db $commit"
    ) || fail "could not make $db a git repository"
    echo "$commit" >"$marker"
fi
out=$(cargo deny --offline --config "$CONFIG" check advisories 2>&1)
rc=$?
printf '%s\n' "$out" | tail -20
verdict "$rc" "$out" "$date"
