#!/usr/bin/env bash
# Assembles the image build context from a release directory: the Containerfile, the
# non-root user, the image's cfg.yaml, and each linux-ARCH zip unpacked under Docker's arch name (amd64,
# arm64, arm), so `docker buildx --platform ...` picks the right binary via TARGETARCH.
#   packaging/container/context.sh DIST OUT
set -euo pipefail
(($# == 2)) || { echo "usage: $0 DIST OUT" >&2; exit 2; }
dist=$1 out=$2 here=$(dirname "$0")
declare -A docker=([x86_64]=amd64 [aarch64]=arm64 [armv7]=arm)
mkdir -p "$out"
cp "$here/Containerfile" "$out/Dockerfile"
cp "$here/passwd" "$here/group" "$here/cfg.yaml" "$out/"
shopt -s nullglob
n=0
for z in "$dist"/xray-relay-*-linux-*.zip; do
    a=${z##*-linux-}; a=${a%.zip}
    [[ -n ${docker[$a]:-} ]] || { echo "context.sh: unknown arch in $z" >&2; exit 1; }
    rm -rf "${out:?}/${docker[$a]}"
    unzip -q -o "$z" -d "$out/${docker[$a]}"
    n=$((n + 1))
done
((n)) || { echo "context.sh: no xray-relay-*-linux-*.zip in $dist" >&2; exit 1; }
echo "context.sh: $out holds $n architectures"
