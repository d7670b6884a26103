#!/usr/bin/env bash
# Signs the artifacts in DIST with KEYID from $GNUPGHOME (default ~/.gnupg):
#   *.zip  -> detached *.zip.sig             (gpg --verify X.zip.sig X.zip)
#   *.rpm  -> signature in the rpm header     (rpmsign; rpmkeys --checksig)
#   *.deb  -> debsigs "origin" signature      (debsig-verify with a policy)
#   SHA256SUMS (rewritten, since signing changes the packages) -> SHA256SUMS.asc
# Use an RSA key: Amazon Linux 2's rpm cannot check EdDSA signatures.
#   packaging/sign.sh DIST KEYID
set -euo pipefail
die() { echo "packaging/sign.sh: $*" >&2; exit 1; }
(($# == 2)) || die "usage: packaging/sign.sh DIST KEYID"
dist=$1 keyid=$2
for tool in gpg rpmsign debsigs sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing: run packaging/install-deps.sh"
done
gpg --batch --list-secret-keys "$keyid" >/dev/null 2>&1 \
    || die "no secret key '$keyid' in ${GNUPGHOME:-~/.gnupg}"
cd "$dist"
shopt -s nullglob
files=(*.zip *.deb *.rpm)
((${#files[@]})) || die "nothing to sign in $dist"

gpgs=(gpg --batch --yes --quiet --local-user "$keyid")
for f in *.zip; do
    "${gpgs[@]}" --detach-sign --output "$f.sig" "$f"
done
for f in *.rpm; do
    # rpmsign runs gpg itself (Debian's rpm looks for a gpg2 that is not there); the
    # key is picked by _gpg_name, the keyring by GNUPGHOME. Quiet unless it fails.
    out=$(rpmsign --addsign --define "__gpg $(command -v gpg)" --define "_gpg_name $keyid" \
        "$f" 2>&1) || die "rpmsign failed for $f: $out"
done
# debsigs runs `gpg --openpgp --detach-sign`, and --openpgp means SHA-1, which
# debsig-verify (rightly) rejects; it passes no options through, so a gpg wrapper
# first in PATH adds a modern digest.
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
printf '#!/bin/sh\nexec %s --digest-algo SHA512 "$@"\n' "$(command -v gpg)" >"$wrap/gpg"
chmod +x "$wrap/gpg"
for f in *.deb; do
    # debsigs appends the signature as an ar member; remove an old one so re-signing works.
    debsigs --delete=origin "$f" >/dev/null 2>&1 || true
    out=$(PATH=$wrap:$PATH debsigs --sign=origin --default-key="$keyid" "$f" 2>&1) \
        || die "debsigs failed for $f: $out"
done
sha256sum -- "${files[@]}" *.sig >SHA256SUMS
"${gpgs[@]}" --armor --detach-sign --output SHA256SUMS.asc SHA256SUMS 2>/dev/null
echo "packaging/sign.sh: signed ${#files[@]} artifacts and SHA256SUMS with $keyid" >&2
