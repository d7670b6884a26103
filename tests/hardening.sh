#!/usr/bin/env bash
# Issue 8 in CI time: the fuzz regressions, fault and security tests, a short soak against the
# release binary, the dependency policy and the RustSec advisories, offline against the snapshot
# in .ci/advisory-db/ (cargo-deny; building it the first time takes ~8 minutes). About 5 minutes after that.
#   tests/hardening.sh                       # CI: 150 s soak at 5,000 segments/s
#   XRAY_SOAK_SECONDS=1800 tests/hardening.sh # the long soak
# Fuzzing itself (nightly, cargo-fuzz) is tests/fuzz/run.sh, not run here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "fuzz regressions, faults, security"
cargo test --test fuzz_regressions --test faults --test security

step "soak: ${XRAY_SOAK_SECONDS:=150} s at ${XRAY_SOAK_RATE:=5000} segments/s (release build)"
export XRAY_SOAK_SECONDS XRAY_SOAK_RATE
cargo build --release --bin xray
XRAY_BIN=target/release/xray cargo test --release --test soak -- --ignored --nocapture

step "dependencies: cargo deny check licenses bans sources advisories (crates.io + the committed RustSec snapshot)"
# Pinned: the advisory database's directory name below is the one this version derives.
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]; then
    cargo install --locked "cargo-deny@$cargo_deny_version"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# .ci/deny.toml takes the advisory database's location from this variable, which cargo-deny
# expands whichever checks run; the database is built there below.
export XRAY_ADVISORY_DBS="$tmp/snapshot"
cargo deny --locked --config .ci/deny.toml check licenses bans sources

# Advisories. CI cannot reach GitHub, so the database is the subset of rustsec/advisory-db committed
# in .ci/advisory-db/ (the advisories for the crates in Cargo.lock, copied by refresh.sh there).
# Anything published after the snapshot is not seen here: print its date, and warn once it is
# older than 90 days, the age at which cargo-deny itself calls a database stale (.ci/deny.toml
# stops cargo-deny refusing it, so that a stale snapshot is a warning, not a failure).
snapshot() { sed -n "s/^$1=//p" .ci/advisory-db/SNAPSHOT; }
snapshot_date=$(snapshot date)
snapshot_days=$(( ($(date +%s) - $(date -d "$snapshot_date" +%s)) / 86400 ))
echo "RustSec advisory database: rustsec/advisory-db $(snapshot commit | cut -c1-12) of $snapshot_date" \
    "($snapshot_days days old), $(snapshot advisories) advisories for crates in Cargo.lock; later ones are not checked"
if [ "$snapshot_days" -gt 90 ]; then
    echo "WARNING: the RustSec snapshot is $snapshot_days days old: refresh it with" \
        ".ci/advisory-db/refresh.sh where GitHub is reachable (SECURITY.md)"
fi
# Crates that joined Cargo.lock after the snapshot were never looked up in the database: an
# advisory against them would be missing from the subset, not absent upstream.
unchecked=$(LC_ALL=C comm -13 .ci/advisory-db/checked-crates.txt \
    <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | LC_ALL=C sort -u) | paste -sd ' ')
if [ -n "$unchecked" ]; then
    echo "WARNING: not looked up in the RustSec snapshot (new in Cargo.lock since it was taken):" \
        "$unchecked; refresh it with .ci/advisory-db/refresh.sh (SECURITY.md)"
fi

# cargo-deny opens a database only as a git repository, at <db-path>/<name>-<hash of its URL>; this
# is the name for its default URL (https://github.com/RustSec/advisory-db). It dates the database
# by the HEAD commit or .git/HEAD's mtime, whichever is newer: both are set to the snapshot's date.
db_name=advisory-db-3157b0e258782691
# copy_db DB: the snapshot's advisories (crates/) into directory DB.
copy_db() {
    mkdir -p "$1"
    cp -R .ci/advisory-db/crates "$1/"
}
# commit_db DB: make DB one commit, whatever the machine's git config (identity, signing, hooks).
commit_db() {
    git -C "$1" -c init.defaultBranch=main init -q
    git -C "$1" add -A
    GIT_AUTHOR_DATE="$snapshot_date" GIT_COMMITTER_DATE="$snapshot_date" \
        git -C "$1" -c user.name=hardening.sh -c user.email=hardening@localhost -c commit.gpgsign=false \
        commit -q --no-verify -m "rustsec/advisory-db $(snapshot commit), crates in Cargo.lock"
    touch -d "$snapshot_date" "$1/.git/HEAD"
}
copy_db "$XRAY_ADVISORY_DBS/$db_name"
commit_db "$XRAY_ADVISORY_DBS/$db_name"
# Yanked versions are read from cargo's local copy of the crates.io index, which a build does not
# refresh for crates it already has; a dry-run update does, and writes no file.
cargo update --dry-run --quiet
cargo deny --locked --offline --config .ci/deny.toml check advisories

# The check must not be a no-op (a database that did not load, a version match that never or always
# fires): the same database plus two fabricated advisories against ring must fail it on the one
# whose affected versions include the locked version, and only on that one.
# (Not RUSTSEC-0000-0000: cargo-deny skips that placeholder id.)
ring_version=$(awk '$0 == "name = \"ring\"" { getline; sub(/^version = "/, ""); sub(/"$/, ""); print; exit }' Cargo.lock)
if [ -z "$ring_version" ]; then
    echo "FAIL: ring is not in Cargo.lock; pick another crate for the fabricated advisories"
    exit 1
fi
fabricated="$tmp/fabricated/$db_name"
copy_db "$fabricated"
mkdir -p "$fabricated/crates/ring"
# fabricate ID PATCHED: an advisory against ring, fixed in versions PATCHED.
fabricate() {
    cat >"$fabricated/crates/ring/$1.md" <<ADVISORY
\`\`\`toml
[advisory]
id = "$1"
package = "ring"
date = "2000-01-01"

[versions]
patched = ["$2"]
\`\`\`

# Fabricated by tests/hardening.sh to check the advisory check
ADVISORY
}
fabricate RUSTSEC-9999-0001 "> $ring_version"   # the locked version is affected
fabricate RUSTSEC-9999-0002 ">= $ring_version"  # the locked version is fixed
commit_db "$fabricated"
if XRAY_ADVISORY_DBS="$tmp/fabricated" cargo deny --locked --offline --color never --config .ci/deny.toml \
    check advisories >"$tmp/fabricated.log" 2>&1; then
    cat "$tmp/fabricated.log"
    echo "FAIL: cargo deny check advisories passed with an advisory against ring $ring_version"
    exit 1
fi
# The ID lines, not just the IDs: an error about a file would name it, and the file bears the ID.
if ! grep -q 'ID: RUSTSEC-9999-0001' "$tmp/fabricated.log" || grep -q 'ID: RUSTSEC-9999-0002' "$tmp/fabricated.log"; then
    cat "$tmp/fabricated.log"
    echo "FAIL: cargo deny check advisories should fail on RUSTSEC-9999-0001 (ring <= $ring_version), and only on it"
    exit 1
fi
echo "advisories: a fabricated advisory against ring $ring_version fails the check, one for ring < $ring_version does not, as they must"
