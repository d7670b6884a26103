#!/usr/bin/env bash
# Issue 8 in CI time: the fuzz regressions, fault and security tests, a short soak against the
# release binary, and the dependency policy (cargo-deny; building it the first time takes ~8 minutes). About 5 minutes after that.
#   tests/hardening.sh                       # CI: 150 s soak at 5,000 segments/s
#   XRAY_SOAK_SECONDS=1800 tests/hardening.sh # the long soak
# Fuzzing itself (nightly, cargo-fuzz) is tests/fuzz/run.sh, not run here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "fuzz regressions, faults, security"
cargo test --test fuzz_regressions --test faults --test security

step "soak: ${XRAY_SOAK_SECONDS:=150} s at ${XRAY_SOAK_RATE:=5000} segments/s (release build)"
export XRAY_SOAK_SECONDS XRAY_SOAK_RATE
cargo build --release --bin xray
XRAY_BIN=target/release/xray cargo test --release --test soak -- --ignored --nocapture

step "dependencies: cargo deny check licenses bans sources (crates.io metadata only)"
if ! command -v cargo-deny >/dev/null; then
    cargo install --locked cargo-deny
fi
cargo deny --locked --config .ci/deny.toml check licenses bans sources
echo "RustSec advisories not checked: the advisory database is only on GitHub, which CI cannot reach (SECURITY.md)"
