#!/usr/bin/env bash
# Fails unless every given ELF file is fully static: no program interpreter and no
# shared-library dependency, so it runs on any Linux of its architecture.
set -euo pipefail
(($#)) || { echo "usage: $0 ELF..." >&2; exit 2; }
rc=0
for f in "$@"; do
    desc=$(file -b "$f")
    # `file` prints "statically linked" or, for a static PIE, "static-pie linked".
    if ! grep -qE 'statically linked|static-pie linked' <<<"$desc"; then
        echo "check-static: $f is not static: $desc" >&2; rc=1; continue
    fi
    # Belt and braces: readelf is architecture-independent, unlike ldd.
    if readelf -lW "$f" | grep -q 'INTERP' || readelf -dW "$f" 2>/dev/null | grep -q '(NEEDED)'; then
        echo "check-static: $f has an interpreter or NEEDED libraries" >&2; rc=1; continue
    fi
    echo "check-static: $f: static ($desc)"
done
exit $rc
