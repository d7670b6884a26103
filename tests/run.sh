#!/usr/bin/env bash
# The project's one test command: unit tests, then the end-to-end suite (tests/e2e) against moto.
# Needs Rust, python3 (with venv and pip) and, for the Node.js SDK test, node and npm.
# Extra arguments go to pytest, e.g. tests/run.sh -k garbage -x
# XRAY_BIN / XRAY_RUNNER select another relay binary / a runner such as qemu-aarch64-static.
set -euo pipefail
cd "$(dirname "$0")/.."

E2E=tests/e2e
VENV=$E2E/.venv

step() { printf '\n== %s\n' "$*"; }

step "cargo test"
cargo test

step "python environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || {
        echo "python3 -m venv failed: on Debian, install python3-venv" >&2
        exit 1
    }
fi
wanted=$(sha256sum "$E2E/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$E2E/requirements.txt"
    echo "$wanted" > "$VENV/.requirements.sha256"
fi
echo "installed from $E2E/requirements.txt"

step "node environment ($E2E/node)"
if command -v npm >/dev/null && command -v node >/dev/null; then
    (cd "$E2E/node" && npm ci --no-audit --no-fund --loglevel=error)
else
    echo "node/npm not found: the Node.js SDK test will be skipped"
fi

if [ -z "${XRAY_BIN:-}" ]; then
    step "cargo build (the relay binary for the end-to-end suite)"
    cargo build --bin xray
fi

step "end-to-end suite"
exec "$VENV/bin/python" -m pytest "$E2E" -q "$@"
