#!/usr/bin/env bash
# Checks a release directory the way a user would, against the release public key:
#   SHA256SUMS.asc   gpg --verify, then sha256sum --check; every artifact must be listed
#   *.zip            gpg --verify X.zip.sig X.zip
#   *.rpm            rpmkeys --checksig, with _pkgverify_level=signature (unsigned = bad)
#   *.deb            debsig-verify with an "origin" policy for the key
# Prints "OK|BAD  CHECK  FILE" per check and exits 1 if anything is unsigned, tampered
# or missing. Nothing outside a temporary directory is touched (no system keyrings).
#   packaging/verify.sh DIST PUBLIC_KEY      (PUBLIC_KEY: armored or binary export)
set -euo pipefail
die() { echo "packaging/verify.sh: $*" >&2; exit 2; }
(($# == 2)) || die "usage: packaging/verify.sh DIST PUBLIC_KEY"
[[ -d $1 ]] || die "no directory $1"
[[ -f $2 ]] || die "no key file $2"
dist=$(cd "$1" && pwd) key=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
for tool in gpg rpmkeys debsig-verify sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing: run packaging/install-deps.sh"
done

tmp=$(mktemp -d)
trap 'gpgconf --homedir "$tmp/gnupg" --kill all >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
export GNUPGHOME=$tmp/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import "$key" 2>/dev/null || die "cannot import $key"
ids=$(gpg --batch --with-colons --list-keys | awk -F: '$1=="pub"||$1=="sub"{print $5}')
[[ -n $ids ]] || die "$key holds no public key"
gpg --batch --armor --export >"$tmp/key.asc"

bad=0
ok()   { printf 'OK   %-9s %s\n' "$1" "$2"; }
fail() { printf 'BAD  %-9s %s: %s\n' "$1" "$2" "$3"; bad=1; }
# gpg exits 0 for a good signature by a key in the (temporary, one-key) keyring.
gpgverify() { gpg --batch --status-fd 1 --verify "$1" "$2" 2>/dev/null | grep -q '^\[GNUPG:\] VALIDSIG '; }

cd "$dist"
shopt -s nullglob
artifacts=(*.zip *.deb *.rpm)
((${#artifacts[@]})) || fail files "$dist" "no .zip, .deb or .rpm to verify"

# SHA256SUMS: signed, matching, and complete.
if [[ ! -f SHA256SUMS || ! -f SHA256SUMS.asc ]]; then
    fail sums SHA256SUMS "SHA256SUMS or SHA256SUMS.asc is missing"
elif ! gpgverify SHA256SUMS.asc SHA256SUMS; then
    fail gpg SHA256SUMS "bad or missing signature in SHA256SUMS.asc"
else
    ok gpg SHA256SUMS
    if grep -qvE '^[0-9a-f]{64}  [A-Za-z0-9._~+-]+$' SHA256SUMS; then
        fail sums SHA256SUMS "lines other than 'HASH  NAME'"
    else
        for f in "${artifacts[@]}" *.sig; do
            grep -q "  $f\$" SHA256SUMS || fail sums "$f" "not listed in SHA256SUMS"
        done
        while read -r line; do
            f=${line%: *}
            [[ $line == *": OK" ]] && ok sha256 "$f" || fail sha256 "$f" "${line##*: }"
        done < <(sha256sum --check SHA256SUMS 2>/dev/null || true)
    fi
fi

for f in *.zip; do
    if [[ ! -f $f.sig ]]; then fail gpg "$f" "no detached signature $f.sig"
    elif gpgverify "$f.sig" "$f"; then ok gpg "$f"
    else fail gpg "$f" "bad signature in $f.sig"; fi
done

if compgen -G '*.rpm' >/dev/null; then
    rpmkeys --dbpath "$tmp/rpmdb" --import "$tmp/key.asc" || die "rpmkeys cannot import the key"
    for f in *.rpm; do
        # signature level: a package without a signature is an error, not a warning.
        if out=$(rpmkeys --dbpath "$tmp/rpmdb" --define '_pkgverify_level signature' \
                 --checksig "$f" 2>&1) && [[ $out == *"signatures OK"* ]]; then
            ok rpmkeys "$f"
        else fail rpmkeys "$f" "$(tr '\n' ' ' <<<"${out#"$f": }")"; fi
    done
fi

if compgen -G '*.deb' >/dev/null; then
    # debsig-verify picks the policy directory by the signing key's long id, which is
    # the primary key or a signing subkey: one policy and keyring for each.
    for id in $ids; do
        mkdir -p "$tmp/policies/$id" "$tmp/keyrings/$id"
        gpg --batch --export >"$tmp/keyrings/$id/debsig.gpg"
        cat >"$tmp/policies/$id/xray-relay.pol" <<POL
<?xml version="1.0"?>
<!DOCTYPE Policy SYSTEM "https://www.debian.org/debsig/1.0/policy.dtd">
<Policy xmlns="https://www.debian.org/debsig/1.0/">
  <Origin Name="xray-relay" id="$id" Description="xray-relay release key"/>
  <Selection>
    <Required Type="origin" File="debsig.gpg" id="$id"/>
  </Selection>
  <Verification MinOptional="0">
    <Required Type="origin" File="debsig.gpg" id="$id"/>
  </Verification>
</Policy>
POL
    done
    for f in *.deb; do
        if out=$(debsig-verify --policies-dir "$tmp/policies" --keyrings-dir "$tmp/keyrings" \
                 "$f" 2>&1); then
            ok debsig "$f"
        else fail debsig "$f" "$(tail -n 1 <<<"$out")"; fi
    done
fi

if ((bad)); then echo "verify: FAILED ($dist)"; exit 1; fi
echo "verify: all ${#artifacts[@]} artifacts and SHA256SUMS are signed and intact"
