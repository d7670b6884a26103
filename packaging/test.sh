#!/usr/bin/env bash
# End-to-end test of issue 6: static cross builds, packages, signing, verification.
# Makes a throwaway key, builds and signs every artifact once (release builds are the
# slow part: one per target, reused), verifies, tampers with each artifact, inspects
# the packages, installs the deb into a scratch root (upgrade, remove, purge), and runs
# the aarch64 and armv7 binaries under qemu (-v, -h, the integration tests, and for armv7
# the unit tests too). Needs root (for scratch-root ownership) and the tools from
# packaging/install-deps.sh. Prints PASS/FAIL/SKIP lines and ends with
# "N passed, M failed[, K skipped]"; exits non-zero on any failure.
#   packaging/test.sh
# Env: XRAY_MAX_BYTES_aarch64 / _x86_64 / _armv7 (size goals; 2.2 / 2.7 / 1.8 MB),
#      KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
root_dir=$PWD

tmp=$(mktemp -d)
log=$tmp/test.log
pass=0 fail=0 skip=0
ok()     { echo "PASS: $1"; pass=$((pass + 1)); }
bad()    { echo "FAIL: $1"; fail=$((fail + 1)); }
skipped() { echo "SKIP: $1"; skip=$((skip + 1)); }
# check DESC CMD...: PASS if CMD succeeds; its output goes to the log.
check() {
    local d=$1; shift
    echo "== $d: $*" >>"$log"
    if "$@" >>"$log" 2>&1; then ok "$d"; else bad "$d (see log)"; fi
}
finish() {
    local summary="$pass passed, $fail failed"
    ((skip)) && summary+=", $skip skipped"
    if ((fail)); then
        echo "--- last 60 log lines ($log) ---"; tail -n 60 "$log" || true
    fi
    if [[ -n ${KEEP:-} ]]; then echo "work directory kept: $tmp"
    else
        for h in "$tmp/gnupg" "$tmp/gnupg2"; do gpgconf --homedir "$h" --kill all >/dev/null 2>&1 || true; done
        rm -rf "$tmp"
    fi
    echo "$summary"
    ((fail == 0))
}
trap 'rc=$?; if ((rc)) && [[ -z ${finished:-} ]]; then bad "test.sh stopped early (exit $rc)"; finish; fi' EXIT
abort() { bad "$1"; finished=1; finish; exit 1; }

for t in cargo rustup gpg rpm rpmbuild rpmkeys rpmsign rpm2cpio cpio debsigs debsig-verify \
         dpkg dpkg-deb zip unzip qemu-aarch64-static qemu-arm-static file readelf python3 systemd-analyze; do
    command -v "$t" >/dev/null || abort "tool $t missing: run packaging/install-deps.sh"
done
[[ $(id -u) == 0 ]] || abort "run as root (the scratch-root install sets owners)"

meta=$(cargo metadata --locked --offline --no-deps --format-version 1 2>/dev/null \
       || cargo metadata --locked --no-deps --format-version 1)
version=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])' <<<"$meta")
target_dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta")
version2=$version+test2   # the "upgrade" build: same binaries, newer package version

# --- a throwaway signing key (RSA: what Amazon Linux 2's rpm can check) -------------
export GNUPGHOME=$tmp/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "xray-relay test <test@example.invalid>" \
    rsa3072 sign 1d >>"$log" 2>&1 || abort "cannot make a test key"
fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1=="fpr"{print $10; exit}')
gpg --batch --armor --export "$fpr" >"$tmp/pub.asc"

# --- build everything once: signed release, and an unsigned newer version -----------
dist=$tmp/dist unsigned=$tmp/unsigned
echo "building $version (signed) and $version2 (unsigned); release builds take minutes..."
start=$SECONDS
check "build.sh $version $fpr: builds and signs every artifact" \
    env DIST_DIR="$dist" packaging/build.sh "$version" "$fpr"
[[ -f $dist/SHA256SUMS.asc ]] || abort "no signed release to test"
echo "  (build took $((SECONDS - start)) s)"
check "build.sh $version2 without a key: unsigned packages" \
    env DIST_DIR="$unsigned" packaging/build.sh "$version2"
pkgver2=${version2//-/\~}

declare -A debarch=([x86_64]=amd64 [aarch64]=arm64 [armv7]=armhf)
declare -A rpmarch=([x86_64]=x86_64 [aarch64]=aarch64 [armv7]=armv7hl)
declare -A triple=([x86_64]=x86_64-unknown-linux-musl [aarch64]=aarch64-unknown-linux-musl
                   [armv7]=armv7-unknown-linux-musleabihf)
declare -A maxb=([x86_64]=${XRAY_MAX_BYTES_x86_64:-2700000}
                 [aarch64]=${XRAY_MAX_BYTES_aarch64:-2200000}
                 [armv7]=${XRAY_MAX_BYTES_armv7:-1800000})
arches=()
for a in x86_64 aarch64 armv7; do
    [[ -f $dist/xray-relay-$version-linux-$a.zip ]] && arches+=("$a")
done
check "artifacts for x86_64, aarch64 and armv7 (got: ${arches[*]:-none})" \
    test "${arches[*]:-}" == "x86_64 aarch64 armv7"

# --- the binaries: static, small, and the ARM ones run under qemu -------------------
declare -A size=()
for a in "${arches[@]}"; do
    b=$target_dir/${triple[$a]}/release/xray
    size[$a]=$(stat -c %s "$b")
    check "$a: binary is static (file, readelf)" cross/check-static.sh "$b"
    check "$a: size ${size[$a]} bytes <= ${maxb[$a]}" test "${size[$a]}" -le "${maxb[$a]}"
done
xb=$target_dir/x86_64-unknown-linux-musl/release/xray
ab=$target_dir/aarch64-unknown-linux-musl/release/xray
check "x86_64: ldd has nothing to load" bash -c "ldd '$xb' 2>&1 | grep -qE 'statically linked|not a dynamic executable'"
check "aarch64 under qemu: xray -h exits 0" qemu-aarch64-static "$ab" -h
check "aarch64 under qemu: xray -v exits 0" qemu-aarch64-static "$ab" -v
check "cross/xray-aarch64 (the harness's XRAY_BIN) runs it" \
    env CARGO_TARGET_DIR="$target_dir" cross/xray-aarch64 -h
nat_v=$("$xb" -v 2>&1 || true) arm_v=$(qemu-aarch64-static "$ab" -v 2>&1 || true)
nat_h=$("$xb" -h 2>&1 || true) arm_h=$(qemu-aarch64-static "$ab" -h 2>&1 || true)
check "aarch64 under qemu: -v and -h print what x86_64 prints" \
    test "$nat_v$nat_h" == "$arm_v$arm_h"
if [[ -z $arm_v ]]; then
    skipped "aarch64: -v names version $version (the binary prints nothing yet)"
else
    check "aarch64: -v names version $version" grep -qF "$version" <<<"$arm_v"
fi
# The integration tests, run natively, drive the aarch64 relay through qemu-user (their
# harness takes XRAY_BIN and XRAY_RUNNER; there is no binfmt_misc to rely on). The upload path,
# the faults and the security checks; the proxy's timing-bound hostile-client tests (10,000
# connections, slowloris deadlines) measure the native build, not an emulator's speed.
if compgen -G 'tests/*.rs' >/dev/null; then
    check "integration tests (relay, faults, security) pass against the aarch64 binary under qemu" \
        env XRAY_BIN="$ab" XRAY_RUNNER=qemu-aarch64-static nice -n 10 cargo test --locked \
        --test relay --test faults --test security
else
    skipped "integration tests against the aarch64 binary (no tests/*.rs yet)"
fi
# armv7, the same way. Its unit tests too (the armv7 standard library is our own build of
# the nightly's rust-src, with its own unwinder, and 32-bit usize and atomics are new
# ground), built for the test profile: they unwind, so without the release's size flags.
# The library's tests only: the binaries' are the bench tool's, which does not ship.
vb=$target_dir/armv7-unknown-linux-musleabihf/release/xray
vm_v=$(qemu-arm-static "$vb" -v 2>&1 || true) vm_h=$(qemu-arm-static "$vb" -h 2>&1 || true)
check "armv7 under qemu: xray -h exits 0" qemu-arm-static "$vb" -h
check "armv7 under qemu: -v and -h print what x86_64 prints" test "$nat_v$nat_h" == "$vm_v$vm_h"
check "cross/xray-armv7 (an XRAY_BIN for the harness) runs it" \
    env CARGO_TARGET_DIR="$target_dir" cross/xray-armv7 -h
check "armv7: ARMv7-A, Thumb-2, VFPv3-D16 hard float, no NEON (ELF attributes)" bash -c "
    a=\$(readelf -A '$vb'); echo \"\$a\"
    grep -q 'Tag_CPU_arch: v7\$' <<<\"\$a\" && grep -q 'Tag_THUMB_ISA_use: Thumb-2' <<<\"\$a\" &&
    grep -q 'Tag_FP_arch: VFPv3-D16' <<<\"\$a\" && grep -q 'Tag_ABI_VFP_args: VFP registers' <<<\"\$a\" &&
    ! grep -q 'Tag_Advanced_SIMD_arch' <<<\"\$a\""
# Skipped there: the three credential_process tests that fork and exec `sh`. qemu-user can
# deadlock a child forked from a multi-threaded guest before it execs (seen here once in a
# few runs: the child stuck on a futex, the test waiting on it for good); that code has
# nothing architecture-specific and its tests run natively. Also skipped: the kernel-drops
# test (qemu-user does not pass SO_RXQ_OVFL on: ENOPROTOOPT, which the relay logs and
# carries on from) and the spool-queue test, whose 8 MB must reach the disk within the
# spool's 5 s stop bound: a debug build under emulation writes more slowly than that. The timeout turns any other
# emulator hang into a failure instead of a stalled CI (the run takes about a minute).
start=$SECONDS
check "armv7 unit tests build (cross/cargo-armv7 test --no-run)" \
    env CARGO_TARGET_DIR="$target_dir" nice -n 10 cross/cargo-armv7 test --locked --lib --no-run
sh_tests=aws::credentials::process::tests
check "armv7 unit tests pass under qemu-arm-static (all but the 5 skipped below)" \
    env CARGO_TARGET_DIR="$target_dir" timeout 600 cross/cargo-armv7 test --locked --lib -- \
    --skip $sh_tests::runs_the_command_through_the_shell --skip $sh_tests::a_failing_command_is_named_with_its_status \
    --skip $sh_tests::a_command_that_hangs_is_killed \
    --skip reader::tests::the_kernels_drops_on_a_full_socket_are_reported \
    --skip spool::tests::the_receiver_never_waits_and_counts_what_does_not_fit_the_queue
echo "  (armv7 unit tests took $((SECONDS - start)) s)"
start=$SECONDS
check "integration tests (relay, faults, security) pass against the armv7 binary under qemu" \
    env XRAY_BIN="$vb" XRAY_RUNNER=qemu-arm-static nice -n 10 cargo test --locked \
    --test relay --test faults --test security
echo "  (armv7 integration tests took $((SECONDS - start)) s)"

# --- verification: the signed release passes, as a user would check it -------------
packaging/verify.sh "$dist" "$tmp/pub.asc" >"$tmp/verify.out" 2>&1 && vrc=0 || vrc=$?
cat "$tmp/verify.out" >>"$log"
check "verify.sh passes the signed release" test "$vrc" -eq 0
nart=$(cd "$dist" && ls -- *.zip *.deb *.rpm | wc -l)
check "verify.sh checked all $nart artifacts and SHA256SUMS" \
    test "$(grep -c '^OK   \(gpg\|rpmkeys\|debsig\) ' "$tmp/verify.out")" -eq $((nart + 1))

# verify_fails_with DIR FILE CHECK: verify.sh exits 1 and reports CHECK bad for FILE.
verify_fails_with() {
    local out rc=0
    out=$(packaging/verify.sh "$1" "$tmp/pub.asc" 2>&1) || rc=$?
    echo "$out"
    ((rc == 1)) && grep -qF "$(printf 'BAD  %-9s %s:' "$3" "$2")" <<<"$out"
}
# Tamper: flip one byte in the middle of a copy of each artifact.
flip() { python3 -c 'import sys
p=sys.argv[1]; b=bytearray(open(p,"rb").read()); i=len(b)//2; b[i]^=0x01; open(p,"wb").write(b)' "$1"; }
declare -A kind=()
for f in "$dist"/*.zip; do kind[$(basename "$f")]=gpg; done
for f in "$dist"/*.rpm; do kind[$(basename "$f")]=rpmkeys; done
for f in "$dist"/*.deb; do kind[$(basename "$f")]=debsig; done
kind[SHA256SUMS]=gpg
for f in "${!kind[@]}"; do
    rm -rf "$tmp/t" && cp -a "$dist" "$tmp/t" && flip "$tmp/t/$f"
    check "tampered $f fails verification (${kind[$f]})" verify_fails_with "$tmp/t" "$f" "${kind[$f]}"
done
# Unsigned: verify.sh must reject each package, not just a missing SHA256SUMS.asc.
for f in "$unsigned"/*.zip "$unsigned"/*.rpm "$unsigned"/*.deb; do
    n=$(basename "$f")
    case $n in *.zip) k=gpg ;; *.rpm) k=rpmkeys ;; *.deb) k=debsig ;; esac
    check "unsigned $n fails verification ($k)" verify_fails_with "$unsigned" "$n" "$k"
done
# A signature by another key is no signature.
rm -rf "$tmp/t" && cp -a "$dist" "$tmp/t"
GNUPGHOME=$tmp/gnupg2 bash -c 'mkdir -m 0700 "$GNUPGHOME" && gpg --batch --quiet --passphrase "" \
    --quick-gen-key "other <other@example.invalid>" rsa3072 sign 1d && gpg --batch --armor --export' \
    >"$tmp/other.asc" 2>>"$log"
check "a release checked against another key fails" \
    bash -c "! packaging/verify.sh '$tmp/t' '$tmp/other.asc'"

# --- package contents and scripts ---------------------------------------------------
for a in "${arches[@]}"; do
    b=$target_dir/${triple[$a]}/release/xray
    deb=$dist/xray-relay_${version//-/\~}-1_${debarch[$a]}.deb
    rpmf=$dist/xray-relay-${version//-/\~}-1.${rpmarch[$a]}.rpm
    zipf=$dist/xray-relay-$version-linux-$a.zip

    info=$(dpkg-deb -I "$deb" 2>&1) || true
    contents=$(dpkg-deb -c "$deb" 2>&1) || true
    echo "$info"$'\n'"$contents" >>"$log"
    check "deb $a: Package xray-relay, Architecture ${debarch[$a]}" \
        bash -c "grep -qx ' Package: xray-relay' <<<\"\$1\" && grep -qx ' Architecture: ${debarch[$a]}' <<<\"\$1\"" _ "$info"
    check "deb $a: Provides/Conflicts/Replaces xray" \
        bash -c 'for f in Provides Conflicts Replaces; do grep -qx " $f: xray" <<<"$1" || exit 1; done' _ "$info"
    check "deb $a: conffile /etc/amazon/xray/cfg.yaml" \
        bash -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/amazon/xray/cfg.yaml"
    check "deb $a: files, modes and owners" bash -c '
        for want in "-rwxr-xr-x root/root .* ./usr/bin/xray$" \
                    "-rw-r--r-- root/root .* ./etc/amazon/xray/cfg.yaml$" \
                    "-rw-r--r-- root/root .* ./lib/systemd/system/xray.service$" \
                    "-rwxr-xr-x root/root .* ./lib/systemd/system-generators/xray-memory-generator$" \
                    "-rw-r--r-- root/root .* ./usr/share/doc/xray-relay/copyright$" \
                    "-rw-r--r-- root/root .* ./usr/share/doc/xray-relay/THIRD-PARTY-LICENSES.txt$"; do
            grep -qE -- "^$want" <<<"$1" || { echo "missing: $want"; exit 1; }
        done' _ "$contents"
    check "deb $a: maintainer scripts present and valid sh" bash -c "
        d=\$(mktemp -d) && dpkg-deb -e '$deb' \"\$d\" &&
        for s in postinst prerm postrm; do test -x \"\$d/\$s\" && sh -n \"\$d/\$s\" || exit 1; done &&
        grep -q useradd \"\$d/postinst\" && grep -q 'systemctl.*enable' \"\$d/postinst\" &&
        grep -q 'systemctl stop' \"\$d/prerm\"; rc=\$?; rm -rf \"\$d\"; exit \$rc"
    check "deb $a: /usr/bin/xray is the built binary" \
        bash -c "dpkg-deb --fsys-tarfile '$deb' | tar -xO ./usr/bin/xray | cmp - '$b'"

    rinfo=$(rpm -qp --qf '%{NAME} %{ARCH} %{PAYLOADCOMPRESSOR}\n' "$rpmf" 2>/dev/null) || true
    check "rpm $a: name, arch ${rpmarch[$a]}, xz payload (Amazon Linux 2 reads it)" \
        test "$rinfo" == "xray-relay ${rpmarch[$a]} xz"
    check "rpm $a: files, modes and owners (rpm -qlvp)" bash -c "
        l=\$(rpm -qlvp '$rpmf' 2>/dev/null); echo \"\$l\"
        grep -qE '^-rwxr-xr-x .* root +root .* /usr/bin/xray$' <<<\"\$l\" &&
        grep -qE '^-rw-r--r-- .* root +root .* /etc/amazon/xray/cfg.yaml$' <<<\"\$l\" &&
        grep -qE '^-rw-r--r-- .* /usr/lib/systemd/system/xray.service$' <<<\"\$l\" &&
        grep -qE '^-rwxr-xr-x .* /usr/lib/systemd/system-generators/xray-memory-generator$' <<<\"\$l\" &&
        grep -qE '/usr/share/licenses/xray-relay/THIRD-PARTY-LICENSES.txt$' <<<\"\$l\""
    check "rpm $a: cfg.yaml is %config(noreplace)" \
        bash -c "rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$rpmf' 2>/dev/null | grep -qx '/etc/amazon/xray/cfg.yaml cn'"
    check "rpm $a: provides, obsoletes and conflicts xray" bash -c "
        rpm -qp --provides '$rpmf' 2>/dev/null | grep -q '^xray = ' &&
        rpm -qp --obsoletes '$rpmf' 2>/dev/null | grep -qx xray &&
        rpm -qp --conflicts '$rpmf' 2>/dev/null | grep -qx xray"
    check "rpm $a: no library requirements (static)" \
        bash -c "! rpm -qp --requires '$rpmf' 2>/dev/null | grep -E '\\.so|^lib'"
    check "rpm $a: scriptlets create the user, manage the service, and are valid sh" bash -c "
        s=\$(rpm -qp --scripts '$rpmf' 2>/dev/null); echo \"\$s\"
        grep -q useradd <<<\"\$s\" && grep -q 'systemctl --no-reload enable' <<<\"\$s\" &&
        grep -q 'posttrans scriptlet' <<<\"\$s\" && grep -q 'systemctl restart' <<<\"\$s\" &&
        for tag in PREIN POSTIN PREUN POSTUN POSTTRANS; do
            rpm -qp --qf \"%{\$tag}\" '$rpmf' 2>/dev/null | sh -n || exit 1
        done"
    check "rpm $a: /usr/bin/xray is the built binary" \
        bash -c "rpm2cpio '$rpmf' | cpio -i --quiet --to-stdout ./usr/bin/xray | cmp - '$b'"

    check "zip $a: exactly xray, cfg.yaml, LICENSE, THIRD-PARTY-LICENSES.txt" \
        test "$(unzip -Z1 "$zipf" | sort | tr '\n' ' ')" == "LICENSE THIRD-PARTY-LICENSES.txt cfg.yaml xray "
    check "zip $a: xray is the built binary, mode 0755" bash -c "
        unzip -p '$zipf' xray | cmp - '$b' && zipinfo '$zipf' xray | grep -q '^-rwxr-xr-x'"
done
# rpm must not see a conflict between the package and its own "Provides: xray".
mkdir -p "$tmp/rpmroot"
rpm --root "$tmp/rpmroot" --initdb 2>>"$log"
rpm_test=$(rpm --root "$tmp/rpmroot" -i --test "$dist/xray-relay-${version//-/\~}-1.x86_64.rpm" 2>&1 || true)
echo "$rpm_test" >>"$log"
check "rpm: no conflict with its own Provides: xray" bash -c "! grep -qi conflict <<<\"\$1\"" _ "$rpm_test"

# THIRD-PARTY-LICENSES.txt: every linked crate, and the licence texts.
unzip -p "$dist/xray-relay-$version-linux-aarch64.zip" THIRD-PARTY-LICENSES.txt >"$tmp/tpl.txt"
crates=$(cargo tree --locked --offline --target aarch64-unknown-linux-musl -e normal,no-proc-macro \
         --prefix none -f '{p}' 2>>"$log" | grep -v '(/' | sed 's/ (\*)//; s/ v/ /' | sort -u)
check "THIRD-PARTY-LICENSES.txt lists all $(wc -l <<<"$crates") linked crates" bash -c '
    while read -r c; do grep -q "^  $c  (" "$2" || { echo "missing $c"; exit 1; }; done <<<"$1"' _ "$crates" "$tmp/tpl.txt"
check "THIRD-PARTY-LICENSES.txt carries the license texts" bash -c "
    grep -q 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' '$tmp/tpl.txt' &&
    grep -q 'Permission is hereby granted, free of charge' '$tmp/tpl.txt' &&
    grep -q 'ring 0.17' '$tmp/tpl.txt' && grep -q 'musl libc' '$tmp/tpl.txt'"
check "THIRD-PARTY-LICENSES.txt leaves out build-only crates (cc, proc-macros)" \
    bash -c "! grep -qE '^  (cc|syn|serde_derive|proc-macro2) ' '$tmp/tpl.txt'"

# --- the deb in a scratch root: install, re-run, upgrade, remove, purge -------------
# dpkg --force-script-chrootless runs the maintainer scripts on this host with
# DPKG_ROOT set; they then only touch the scratch root (checked below).
R=$tmp/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers" "$R/etc" "$R/var/log"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
for f in passwd group shadow gshadow; do grep -E '^(root|daemon|nogroup|nobody):' "/etc/$f" >"$R/etc/$f" || true; done
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
host_ids=$(cat /etc/passwd /etc/group | sha256sum)
deb1=$dist/xray-relay_${version//-/\~}-1_amd64.deb
deb2=$unsigned/xray-relay_${pkgver2}-1_amd64.deb
dpkgr=(dpkg --root="$R" --force-script-chrootless --force-depends)
check "deb installs into a scratch root" "${dpkgr[@]}" -i "$deb1"
mode() { stat -c '%a %U %G' "$R$1" 2>/dev/null; }
check "installed /usr/bin/xray 755 root root" test "$(mode /usr/bin/xray)" == "755 root root"
check "installed /etc/amazon/xray/cfg.yaml 644 root root" test "$(mode /etc/amazon/xray/cfg.yaml)" == "644 root root"
check "installed /lib/systemd/system/xray.service 644 root root" test "$(mode /lib/systemd/system/xray.service)" == "644 root root"
check "installed the memory generator 755" test "$(mode /lib/systemd/system-generators/xray-memory-generator)" == "755 root root"
check "dpkg records cfg.yaml as a conffile" bash -c \
    "dpkg-query --admindir='$R/var/lib/dpkg' -W -f='\${Conffiles}' xray-relay | grep -q '/etc/amazon/xray/cfg.yaml '"
xuser=$(grep '^xray:' "$R/etc/passwd" || true)
check "postinst made system user xray (uid < 1000, no login shell)" bash -c "
    IFS=: read -r n _ uid gid _ home sh <<<'$xuser'; test \"\$n\" = xray && test \"\$uid\" -lt 1000 &&
    test \"\$sh\" = /usr/sbin/nologin && grep -q \"^xray:x:\$gid:\" '$R/etc/group'"
uid=$(cut -d: -f3 <<<"$xuser") gid=$(cut -d: -f4 <<<"$xuser")
check "postinst made /var/log/xray 750 owned by xray" test "$(stat -c '%a %u %g' "$R/var/log/xray" 2>/dev/null)" == "750 $uid $gid"
check "postinst enabled xray.service at boot" \
    test "$(readlink "$R/etc/systemd/system/multi-user.target.wants/xray.service")" == /lib/systemd/system/xray.service
check "the host's users and groups are untouched" test "$(cat /etc/passwd /etc/group | sha256sum)" == "$host_ids"
check "postinst is idempotent (run again)" env DPKG_ROOT="$R" sh "$R/var/lib/dpkg/info/xray-relay.postinst" configure "${version//-/\~}-1"
check "still one xray user" test "$(grep -c '^xray:' "$R/etc/passwd")" -eq 1

echo "# local change" >>"$R/etc/amazon/xray/cfg.yaml"
check "upgrade to $version2 installs" "${dpkgr[@]}" -i "$deb2"
check "upgrade: version is $pkgver2-1" \
    test "$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Version}' xray-relay)" == "$pkgver2-1"
check "upgrade keeps the edited cfg.yaml (conffile)" grep -qx '# local change' "$R/etc/amazon/xray/cfg.yaml"
check "upgrade keeps one xray user and the log directory" \
    bash -c "test \$(grep -c '^xray:' '$R/etc/passwd') -eq 1 && test -d '$R/var/log/xray'"
rm -f "$R/etc/systemd/system/multi-user.target.wants/xray.service"   # the admin disables it
check "reinstall over a disabled service" "${dpkgr[@]}" -i "$deb2"
check "an upgrade does not re-enable a service the admin disabled" \
    test ! -e "$R/etc/systemd/system/multi-user.target.wants/xray.service"
"${dpkgr[@]}" --force-downgrade -i "$deb1" >>"$log" 2>&1 || true   # back to a clean, enabled state
systemctl --root="$R" enable xray.service >>"$log" 2>&1 || true
check "remove succeeds" "${dpkgr[@]}" -r xray-relay
check "remove deletes the binary and unit, keeps cfg.yaml and logs" bash -c "
    test ! -e '$R/usr/bin/xray' && test ! -e '$R/lib/systemd/system/xray.service' &&
    test -f '$R/etc/amazon/xray/cfg.yaml' && test -d '$R/var/log/xray'"
check "purge succeeds" "${dpkgr[@]}" -P xray-relay
check "purge deletes cfg.yaml, logs and the boot link; keeps the user" bash -c "
    test ! -e '$R/etc/amazon/xray/cfg.yaml' && test ! -e '$R/var/log/xray' &&
    test ! -L '$R/etc/systemd/system/multi-user.target.wants/xray.service' &&
    grep -q '^xray:' '$R/etc/passwd'"

# --- the systemd unit and its memory ceiling ---------------------------------------
unit=packaging/xray.service
check "unit is hardened (NoNewPrivileges, ProtectSystem=strict, ProtectHome, PrivateTmp, no capabilities)" bash -c "
    for l in 'User=xray' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
             'CapabilityBoundingSet=' 'AmbientCapabilities=' 'LogsDirectory=xray'; do
        grep -qx \"\$l\" '$unit' || { echo \"missing \$l\"; exit 1; }; done"
mkdir -p "$tmp/unit"
sed "s#/usr/bin/xray#$xb#" "$unit" >"$tmp/unit/xray.service"
check "systemd-analyze verify: unit has no errors or unknown keys" \
    bash -c "out=\$(systemd-analyze verify '$tmp/unit/xray.service' 2>&1); echo \"\$out\"; test -z \"\$out\""
gen() {  # gen CFG_TEXT MEMTOTAL_KB -> the MemoryMax the generator writes
    local d; d=$(mktemp -d -p "$tmp")
    printf '%s\n' "$1" >"$d/cfg.yaml"; printf 'MemTotal:       %s kB\n' "$2" >"$d/meminfo"
    XRAY_CFG=$d/cfg.yaml XRAY_MEMINFO=$d/meminfo packaging/xray-memory-generator "$d/out" &&
        sed -n 's/^MemoryMax=//p' "$d/out/xray.service.d/50-memory.conf"
}
check "memory ceiling: 64 MB buffer -> MemoryMax=160M" test "$(gen 'TotalBufferSizeMB: 64' 1048576)" == 160M
check "memory ceiling: buffer 0 on 1 GiB (1% = 10 MB) -> 52M" test "$(gen 'TotalBufferSizeMB: 0' 1048576)" == 52M
check "memory ceiling: buffer 0 on 128 MiB (minimum 3 MB) -> 38M" test "$(gen 'TotalBufferSizeMB: 0' 131072)" == 38M
check "memory ceiling: the default cfg.yaml means 1% of memory" \
    test "$(gen "$(cat packaging/cfg.yaml)" 4194304)" == 112M

# --- container image context and the DaemonSet -------------------------------------
check "container context: every arch unpacked from the release zips (arm = linux/arm/v7)" bash -c "
    packaging/container/context.sh '$dist' '$tmp/ctx' && cmp '$tmp/ctx/arm64/xray' '$ab' &&
    cmp '$tmp/ctx/amd64/xray' '$xb' && cmp '$tmp/ctx/arm/xray' '$vb' &&
    test -f '$tmp/ctx/Dockerfile' && test -f '$tmp/ctx/passwd' &&
    grep -qx '  SamplingOnly: true' '$tmp/ctx/cfg.yaml'"
check "Containerfile and DaemonSet name the linux/arm/v7 platform" \
    bash -c "grep -q linux/arm/v7 packaging/container/Containerfile && grep -q linux/arm/v7 packaging/daemonset.yaml"
check "Containerfile: FROM scratch, non-root, listens on 0.0.0.0:2000" bash -c "
    f=packaging/container/Containerfile; grep -qx 'FROM scratch' \$f && grep -qE '^USER [1-9][0-9]*:' \$f &&
    grep -qF '\"-b\", \"0.0.0.0:2000\", \"-t\", \"0.0.0.0:2000\"' \$f && ! grep -qE '^USER (0|root)' \$f"
check "DaemonSet: valid YAML, non-root, no privilege escalation, host port 2000 udp+tcp, sampling-only proxy" python3 - <<'PY'
import yaml
docs = list(yaml.safe_load_all(open("packaging/daemonset.yaml")))
ds = next(d for d in docs if d["kind"] == "DaemonSet")
spec = ds["spec"]["template"]["spec"]
c = spec["containers"][0]
assert spec["securityContext"]["runAsNonRoot"] is True
assert c["securityContext"]["allowPrivilegeEscalation"] is False
assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
ports = {(p["hostPort"], p["protocol"]) for p in c["ports"]}
assert ports == {(2000, "UDP"), (2000, "TCP")}, ports
assert c["resources"]["limits"]["memory"]
config = next(d for d in docs if d["kind"] == "ConfigMap")
assert yaml.safe_load(config["data"]["cfg.yaml"])["Proxy"]["SamplingOnly"] is True
mounts = {m["mountPath"] for m in c["volumeMounts"]}
assert "/etc/amazon/xray" in mounts, mounts
PY

# --- summary ------------------------------------------------------------------------
echo
echo "binary sizes (bytes):"
for a in "${arches[@]}"; do printf '  %-8s %9s\n' "$a" "${size[$a]}"; done
echo "artifacts:"
(cd "$dist" && ls -l -- * | awk '{printf "  %9s  %s\n", $5, $9}')
echo "verify.sh on the signed release:"
sed 's/^/  /' "$tmp/verify.out"
finished=1
finish
