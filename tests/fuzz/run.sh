#!/usr/bin/env bash
# Runs the fuzz targets one at a time, niced, each for SECONDS (default 180), starting from the
# committed seeds (tests/fuzz/seeds/TARGET) plus the local corpus (tests/fuzz/corpus/TARGET).
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz`). Crashes land in
# tests/fuzz/artifacts/TARGET; turn each into a regression file (tests/fuzz/regressions/TARGET/)
# that tests/fuzz_regressions.rs replays under plain `cargo test`.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-180}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir tests/fuzz)
fi
status=0
for target in "${targets[@]}"; do
    mkdir -p "tests/fuzz/corpus/$target" "tests/fuzz/artifacts/$target"
    log="tests/fuzz/artifacts/$target/last-run.log"
    printf '== %s (%s s)\n' "$target" "$seconds"
    nice -n 19 cargo +nightly fuzz run "$target" --fuzz-dir tests/fuzz \
        "tests/fuzz/corpus/$target" "tests/fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=70000 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1 || { status=1; echo "   FAILED: see $log"; }
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done|SUMMARY|panicked' "$log" | sed 's/^/   /'
done
exit $status
