#!/usr/bin/env bash
# Builds libunwind.a for armv7-unknown-linux-musleabihf into OUTDIR, from the LLVM libunwind
# sources that ship in the pinned nightly's rust-src (the unwinder the missing rust-std would
# have brought in lib/self-contained). std links it even with panic = "abort": backtraces and
# the test harness's catch_unwind use it. Debian has no musl build of it.
#   cross/armv7-libunwind.sh OUTDIR        (no-op when OUTDIR/libunwind.a is up to date)
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
toolchain=$(grep -v '^#' cross/armv7-toolchain)
sysroot=$(rustc "+$toolchain" --print sysroot)
src=$sysroot/lib/rustlib/src/rust/src/llvm-project/libunwind
[[ -d $src/src ]] || { echo "$0: no $src; run packaging/install-deps.sh" >&2; exit 1; }
# Rebuilt when the pinned toolchain changes (its rust-src is the input).
stamp=$out/.built-from
[[ -f $out/libunwind.a && $(cat "$stamp" 2>/dev/null) == "$src" ]] && exit 0

# The target's own baseline (ARMv7-A, Thumb-2, VFPv3-D16, no NEON); musl's armhf headers
# from musl-dev:armhf instead of the host's glibc ones, clang's own (arm_acle.h) kept.
# Flags as rustc's bootstrap builds it: no C++ runtime, hidden symbols, native-only.
flags=(--target=armv7-unknown-linux-musleabihf -march=armv7-a -mthumb -mfpu=vfpv3-d16
       -mfloat-abi=hard -Os -ffunction-sections -fdata-sections -funwind-tables
       -fvisibility=hidden -fstrict-aliasing -nostdlibinc -isystem /usr/include/arm-linux-musleabihf
       -I "$src/include" -D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS -D_LIBUNWIND_IS_NATIVE_ONLY
       -DNDEBUG)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in UnwindLevel1.c UnwindLevel1-gcc-ext.c Unwind-sjlj.c; do
    clang "${flags[@]}" -std=c99 -c "$src/src/$f" -o "$tmp/${f%.*}.o"
done
for f in UnwindRegistersRestore.S UnwindRegistersSave.S; do
    clang "${flags[@]}" -c "$src/src/$f" -o "$tmp/${f%.*}.o"
done
for f in libunwind.cpp Unwind-EHABI.cpp; do
    clang "${flags[@]}" -std=c++17 -nostdinc++ -fno-exceptions -fno-rtti -c "$src/src/$f" -o "$tmp/${f%.*}.o"
done
mkdir -p "$out"
rm -f "$out/libunwind.a"
llvm-ar rcs "$out/libunwind.a" "$tmp"/*.o
echo "$src" >"$stamp"
