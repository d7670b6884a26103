#!/usr/bin/env bash
# Installs everything the cross builds, the packaging and packaging/test.sh need,
# from rustup targets and Debian packages only. Idempotent and quiet: CI calls it
# on every run, and a machine that already has everything pays only for the checks.
set -euo pipefail

# Debian packages, by the step that needs them:
#   musl-tools          musl-gcc: the C compiler for x86_64 musl (ring has C/asm)
#   clang llvm          the C compiler and llvm-ar for aarch64/armv7 musl (one clang
#                       cross-compiles to all; cross/armv7-libunwind.sh uses both too)
#   qemu-user-static    runs the aarch64 and armv7 binaries on this x86_64 machine (cargo runner, tests)
#   file binutils       `file` and `readelf` show a binary is static
#   dpkg-dev fakeroot   dpkg-deb builds the .deb with root-owned files
#   rpm                 rpmbuild, rpmsign, rpmkeys
#   debsigs debsig-verify  sign the .deb and verify it against a policy
#   gnupg zip unzip cpio  detached signatures, the zip archive, unpacking an rpm in tests
#   python3             packaging/third-party-licenses.py
#   musl-dev:armhf      armv7: musl's crt1.o, crti.o, crtn.o, libc.a and headers (needs the
#                       armhf architecture added to dpkg; nothing else comes from it)
#   libgcc-12-dev-armhf-cross  armv7: crtbegin.o and crtend.o
apt_pkgs=(musl-tools clang llvm qemu-user-static file binutils dpkg-dev fakeroot rpm
          debsigs debsig-verify gnupg zip unzip cpio python3
          musl-dev:armhf libgcc-12-dev-armhf-cross)

missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    dpkg --print-foreign-architectures | grep -qx armhf || dpkg --add-architecture armhf
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    # apt is chatty even with -qq; keep its output for the error case only.
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2; echo "install-deps: apt-get failed" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
fi

# Rust targets: the prebuilt standard libraries for x86_64 and aarch64.
installed=$(rustup target list --installed)
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t" >/dev/null 2>&1 \
        || { echo "install-deps: 'rustup target add $t' failed" >&2; exit 1; }
done
# armv7 (32-bit Raspberry Pi OS): rustup does not serve its rust-std everywhere, so
# cross/cargo-armv7 builds std from the pinned nightly's rust-src instead.
nightly=$(grep -v '^#' "$(dirname "$0")/../cross/armv7-toolchain")
rustup component list --toolchain "$nightly" --installed 2>/dev/null | grep -q '^rust-src' \
    || rustup toolchain install "$nightly" --profile minimal --component rust-src >/dev/null 2>&1 \
    || { echo "install-deps: 'rustup toolchain install $nightly --component rust-src' failed" >&2; exit 1; }
exit 0
