#!/usr/bin/env bash
# Refresh the RustSec advisory subset that tests/hardening.sh checks Cargo.lock against.
#
# CI reaches crates.io but not GitHub, where the RustSec database (rustsec/advisory-db) lives, and
# no registry CI can reach ships it. So the part of it that concerns us is committed here: the
# advisories filed under crates/<name>/ for every crate named in Cargo.lock (the whole lock:
# normal, build and dev dependencies, every target), the database's licence texts, and SNAPSHOT
# (the source commit and its date, which hardening.sh prints so the age of the data is visible).
# Advisories published after that commit are not seen by CI until this is run again.
#
# Run it where GitHub is reachable, then review and commit .ci/advisory-db/:
#   git clone --bare https://github.com/rustsec/advisory-db /tmp/advisory-db
#   .ci/advisory-db/refresh.sh /tmp/advisory-db
# Also run it after a Cargo.lock change that adds a crate, or the new crate goes unchecked
# (hardening.sh warns about crates missing from checked-crates.txt).
#
# Usage: refresh.sh ADVISORY_DB [REV]
#   ADVISORY_DB  a clone of rustsec/advisory-db: a bare git dir or a checkout
#   REV          the commit to copy from (default HEAD)
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 ADVISORY_DB [REV]  (a clone of rustsec/advisory-db, bare or checked out; REV defaults to HEAD)" >&2
    exit 2
fi
src=$1
rev=${2:-HEAD}
here="$(cd "$(dirname "$0")" && pwd)"
lock="$here/../../Cargo.lock"

# Everything is read through git (ls-tree, archive), so a bare clone works as well as a checkout,
# uncommitted edits in a checkout are not picked up, and the recorded commit is exactly what was copied.
commit=$(git -C "$src" rev-parse --verify --quiet "$rev^{commit}") || {
    echo "refresh.sh: $src is not a git clone of rustsec/advisory-db with a commit '$rev'" >&2
    exit 1
}
git -C "$src" cat-file -e "$commit:crates" 2>/dev/null && git -C "$src" cat-file -e "$commit:LICENSE.txt" 2>/dev/null || {
    echo "refresh.sh: $commit in $src has no crates/ or LICENSE.txt: not rustsec/advisory-db?" >&2
    exit 1
}
# The committer date: when the commit landed on the database's main branch.
date=$(git -C "$src" show -s --format=%cI "$commit")

# Crate names in Cargo.lock: one `name = "..."` line per [[package]]. The relay's own name is
# included; it has no advisories, and if a crates.io crate of that name ever had one it would not
# apply (cargo-deny matches advisories to crates.io packages only).
mapfile -t names < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$lock" | LC_ALL=C sort -u)
[ ${#names[@]} -gt 0 ] || { echo "refresh.sh: no package names found in $lock" >&2; exit 1; }

# The crate directories that exist in the database for those names.
dirs=()
while IFS= read -r dir; do
    dirs+=("$dir")
done < <(git -C "$src" ls-tree --name-only "$commit" crates/ \
    | awk -F/ 'NR == FNR { want[$0] = 1; next } ($2 in want)' <(printf '%s\n' "${names[@]}") -)

# Replace the old subset wholesale, so advisories of crates that left Cargo.lock, or that upstream
# deleted or moved, disappear too. LICENSES/ holds the texts LICENSE.txt refers to: CC0 for the
# database, CC-BY-4.0 for advisories imported from GitHub's database (they say so in their
# `license` field).
rm -rf "$here/crates" "$here/LICENSES" "$here/LICENSE.txt" "$here/SNAPSHOT" "$here/checked-crates.txt"
git -C "$src" archive --format=tar "$commit" LICENSE.txt LICENSES "${dirs[@]}" | tar -x -C "$here"

# The names looked up, with or without advisories: hardening.sh warns about crates that joined
# Cargo.lock after this list was written, since nothing was looked up for them.
printf '%s\n' "${names[@]}" >"$here/checked-crates.txt"

count=$(find "$here/crates" -type f -name '*.md' 2>/dev/null | wc -l)
cat >"$here/SNAPSHOT" <<EOF
# Written by .ci/advisory-db/refresh.sh; read by tests/hardening.sh. Do not edit by hand.
source=https://github.com/rustsec/advisory-db
commit=$commit
date=$date
advisories=$count
EOF

echo "rustsec/advisory-db $commit ($date): $count advisories for ${#dirs[@]} of the ${#names[@]} crates in Cargo.lock copied to $here"
