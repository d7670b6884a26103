#!/usr/bin/env bash
# Builds the static `xray` binary for one or more musl targets and proves it is static.
#   cross/build.sh TARGET...     e.g. aarch64-unknown-linux-musl
#   cross/build.sh all           x86_64 + aarch64 (+ armv7 when its rust-std is installed)
# Prints one line per target: "TARGET PATH SIZE". Linkers, runners and C compilers
# come from .cargo/config.toml; the release profile from Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 TARGET... | all" >&2; exit 2; }
(($#)) || usage

installed=$(rustup target list --installed)
targets=()
for a in "$@"; do
    case $a in
        all)
            targets+=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
            # armv7 is a bonus target: its rust-std may not be installable here.
            grep -qx armv7-unknown-linux-musleabihf <<<"$installed" \
                && targets+=(armv7-unknown-linux-musleabihf) \
                || echo "cross/build.sh: skipping armv7-unknown-linux-musleabihf (rust-std not installed)" >&2
            ;;
        *-linux-musl*) targets+=("$a") ;;
        *) usage ;;
    esac
done

target_dir=${CARGO_TARGET_DIR:-target}
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" \
        || { echo "cross/build.sh: target $t is not installed; run packaging/install-deps.sh" >&2; exit 1; }
    # nice: the build machine is shared, and LTO with one codegen unit is long.
    nice -n 10 cargo build --release --locked --target "$t" >&2
    bin=$target_dir/$t/release/xray
    cross/check-static.sh "$bin" >&2
    echo "$t $bin $(stat -c %s "$bin")"
done
