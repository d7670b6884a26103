#!/usr/bin/env bash
# Builds every release artifact into dist/ (or $DIST_DIR), per architecture:
#   xray-relay-VERSION-linux-ARCH.zip   xray, cfg.yaml, LICENSE, THIRD-PARTY-LICENSES.txt
#   xray-relay_VERSION-1_DEBARCH.deb    and  xray-relay-VERSION-1.RPMARCH.rpm
# plus SHA256SUMS. With KEYID (a key in $GNUPGHOME), packaging/sign.sh then signs them all.
#
#   packaging/build.sh VERSION [KEYID]
#
# The binaries come from cross/build.sh (a no-op when they are up to date). To package
# binaries built elsewhere, set XRAY_BIN_<arch>=PATH (e.g. XRAY_BIN_aarch64) and the
# build of that target is skipped. XRAY_TARGETS narrows the targets ("all" by default).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "packaging/build.sh: $*" >&2; exit 1; }
(($# == 1 || $# == 2)) || die "usage: packaging/build.sh VERSION [KEYID]"
version=$1 keyid=${2:-}
[[ $version =~ ^[0-9]+(\.[0-9]+)*([~+-][0-9A-Za-z.~+]+)?$ ]] \
    || die "VERSION must look like 1.2.3 or 1.2.3-rc1, not '$version'"
# rpm forbids '-' in Version; '~' sorts a pre-release before the release in rpm and dpkg.
pkgver=${version//-/\~}
dist=${DIST_DIR:-dist}
for tool in dpkg-deb rpmbuild zip python3 sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing: run packaging/install-deps.sh"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
# Only our own earlier artifacts go: DIST_DIR may be a directory with other files.
rm -f "$dist"/xray-relay[-_]* "$dist"/SHA256SUMS "$dist"/SHA256SUMS.asc

# rust target -> short arch, Debian arch, rpm arch
declare -A short=([x86_64-unknown-linux-musl]=x86_64 [aarch64-unknown-linux-musl]=aarch64
                  [armv7-unknown-linux-musleabihf]=armv7)
declare -A debarch=([x86_64]=amd64 [aarch64]=arm64 [armv7]=armhf)
declare -A rpmarch=([x86_64]=x86_64 [aarch64]=aarch64 [armv7]=armv7hl)

# Which targets, and their binaries: prebuilt ones from XRAY_BIN_<arch>, the rest built now.
read -ra want <<<"${XRAY_TARGETS:-all}"
[[ ${want[*]} == all ]] \
    && want=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)
declare -A bin=()
to_build=()
for t in "${want[@]}"; do
    [[ -n ${short[$t]:-} ]] || die "unknown target $t"
    var=XRAY_BIN_${short[$t]}
    if [[ -n ${!var:-} ]]; then bin[$t]=${!var}; else to_build+=("$t"); fi
done
if ((${#to_build[@]})); then
    while read -r t path _; do bin[$t]=$path; done < <(cross/build.sh "${to_build[@]}")
fi

# Reproducible archives: every timestamp is the last commit's (or now, outside git).
# Set only now: ring's build script watches SOURCE_DATE_EPOCH, so cargo would rebuild.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export TZ=UTC

stamp() { find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

for t in "${want[@]}"; do
    a=${short[$t]}
    b=${bin[$t]:-}
    [[ -f $b ]] || die "no binary for $t"
    cross/check-static.sh "$b" >/dev/null || die "$b is not static"
    w=$work/$a
    mkdir -p "$w"
    python3 packaging/third-party-licenses.py "$t" "$w/THIRD-PARTY-LICENSES.txt" >/dev/null

    # --- zip: flat, like the AWS daemon's zip --------------------------------------
    z=$w/zip
    mkdir -p "$z"
    install -m 0755 "$b" "$z/xray"
    install -m 0644 packaging/cfg.yaml LICENSE "$w/THIRD-PARTY-LICENSES.txt" "$z/"
    stamp "$z"
    (cd "$z" && zip -q -X -9 "$dist/xray-relay-$version-linux-$a.zip" \
        xray cfg.yaml LICENSE THIRD-PARTY-LICENSES.txt)

    # --- the installed tree, shared by deb and rpm (they differ in a few paths) -----
    for kind in deb rpm; do
        r=$w/$kind
        if [[ $kind == deb ]]; then sd=$r/lib/systemd doc=$r/usr/share/doc/xray-relay
        else sd=$r/usr/lib/systemd doc=$r/usr/share/licenses/xray-relay; fi
        install -D -m 0755 "$b" "$r/usr/bin/xray"
        install -D -m 0644 packaging/cfg.yaml "$r/etc/amazon/xray/cfg.yaml"
        install -D -m 0644 packaging/xray.service "$sd/system/xray.service"
        install -D -m 0755 packaging/xray-memory-generator "$sd/system-generators/xray-memory-generator"
        install -D -m 0644 "$w/THIRD-PARTY-LICENSES.txt" "$doc/THIRD-PARTY-LICENSES.txt"
        if [[ $kind == deb ]]; then
            { echo "xray-relay is licensed under the Apache License, Version 2.0:"
              echo; cat LICENSE; echo
              echo "Third-party components: /usr/share/doc/xray-relay/THIRD-PARTY-LICENSES.txt"
            } >"$doc/copyright"
        else
            install -m 0644 LICENSE "$doc/LICENSE"
        fi
    done

    # --- deb ---------------------------------------------------------------------
    r=$w/deb
    install -d -m 0755 "$r/DEBIAN"
    install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$r/DEBIAN/"
    install -m 0644 packaging/deb/conffiles "$r/DEBIAN/"
    size=$(du -sk --exclude=DEBIAN "$r" | cut -f1)
    sed -e "s/@VERSION@/$pkgver-1/" -e "s/@ARCH@/${debarch[$a]}/" -e "s/@SIZE@/$size/" \
        packaging/deb/control.in >"$r/DEBIAN/control"
    find "$r" -type d -exec chmod 0755 {} +
    stamp "$r"
    # --root-owner-group: root-owned files without fakeroot; xz: readable by every dpkg.
    dpkg-deb --root-owner-group -Zxz --build "$r" \
        "$dist/xray-relay_${pkgver}-1_${debarch[$a]}.deb" >/dev/null

    # --- rpm ---------------------------------------------------------------------
    r=$w/rpm
    stamp "$r"
    rpmbuild -bb --quiet --target "${rpmarch[$a]}-linux" \
        --define "_topdir $w/rpmbuild" --define "_rpmdir $dist" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "pkg_version $pkgver" --define "stage $r" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_date_epoch 1" \
        packaging/rpm/xray-relay.spec >"$w/rpmbuild.log" 2>&1 \
        || { cat "$w/rpmbuild.log" >&2; die "rpmbuild failed for $a"; }
done

if [[ -n $keyid ]]; then
    packaging/sign.sh "$dist" "$keyid"
else
    (cd "$dist" && sha256sum -- *.zip *.deb *.rpm >SHA256SUMS)
fi
ls -l "$dist" >&2
