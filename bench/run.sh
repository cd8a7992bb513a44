#!/usr/bin/env bash
# Crash-to-restart benchmark of tau-monitor against bench/baseline_restarter.
#
# usage: bench/run.sh [crash_restart_bench options...]
#
#   Builds tau-monitor, tau-monitor-cli and the benchmark programs in the build directory (build/, or
#   $TAU_BUILD_DIR; configured and fully built first with scripts/build.sh when it does not exist yet),
#   then runs crash_restart_bench with them and prints its results. Extra arguments go to
#   crash_restart_bench, e.g.:
#
#     bench/run.sh --kills 400 --blocks 8 --json /tmp/latencies.json
#
#   Exit status: 0 when tau-monitor meets the targets, 1 when it misses them, 2 on any other error.
#   See bench/README.md for what is measured and how to read the output.
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "$script")/.."

build_dir=${TAU_BUILD_DIR:-build}
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$script"
    exit 0
fi

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    TAU_BUILD_DIR="$build_dir" scripts/build.sh
fi
if ! build_log=$(cmake --build "$build_dir" -j"$(nproc)" \
    --target tau-monitor tau-monitor-cli crash_restart_bench stamp_child baseline_restarter 2>&1); then
    printf '%s\n' "$build_log" >&2
    echo "bench/run.sh: the build failed" >&2
    exit 2
fi

bench_dir="$build_dir/bench"
"$bench_dir/crash_restart_bench" \
    --tau-monitor "$build_dir/services/tau-monitor" \
    --tau-cli "$build_dir/cli/tau-monitor-cli" \
    --baseline "$bench_dir/baseline_restarter" \
    --stamp-child "$bench_dir/stamp_child" \
    "$@"
