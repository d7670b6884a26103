#!/usr/bin/env bash
# Builds the static `xray` binary for one or more musl targets and proves it is static.
#   cross/build.sh TARGET...     e.g. aarch64-unknown-linux-musl
#   cross/build.sh all           x86_64, aarch64 and armv7 (armv7-unknown-linux-musleabihf)
# Prints one line per target: "TARGET PATH SIZE". Linkers, runners and C compilers
# come from .cargo/config.toml; the release profile from Cargo.toml. armv7 goes through
# cross/cargo-armv7 (pinned nightly, standard library built from source).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 TARGET... | all" >&2; exit 2; }
(($#)) || usage

installed=$(rustup target list --installed)
targets=()
for a in "$@"; do
    case $a in
        all) targets+=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
                       armv7-unknown-linux-musleabihf) ;;
        *-linux-musl*) targets+=("$a") ;;
        *) usage ;;
    esac
done

target_dir=${CARGO_TARGET_DIR:-target}
for t in "${targets[@]}"; do
    # nice: the build machine is shared, and LTO with one codegen unit is long.
    if [[ $t == armv7-unknown-linux-musleabihf ]]; then
        nice -n 10 cross/cargo-armv7 build --release --locked >&2
    else
        grep -qx "$t" <<<"$installed" \
            || { echo "cross/build.sh: target $t is not installed; run packaging/install-deps.sh" >&2; exit 1; }
        nice -n 10 cargo build --release --locked --target "$t" >&2
    fi
    bin=$target_dir/$t/release/xray
    cross/check-static.sh "$bin" >&2
    echo "$t $bin $(stat -c %s "$bin")"
done
