#!/usr/bin/env bash
# Benchmarks of tau-monitor: crash-to-restart latency against bench/baseline_restarter; with
# --services N, tau-monitor supervising N services; with --state, session state round trips; with
# --sampling, one resource sampling cycle over many services against psutil.
#
# usage: bench/run.sh [crash_restart_bench options...]
#        bench/run.sh --services N [many_services_bench options...]
#        bench/run.sh --state [state_store_bench options...]
#        bench/run.sh --sampling [sampling_bench options...]
#
#   Builds tau-monitor, tau-monitor-cli and the benchmark programs in the build directory (build/, or
#   $TAU_BUILD_DIR; configured and fully built first with scripts/build.sh when it does not exist yet),
#   then runs crash_restart_bench with them and prints its results. Extra arguments go to
#   crash_restart_bench, e.g.:
#
#     bench/run.sh --kills 400 --blocks 8 --json /tmp/latencies.json
#
#   With --services N among the arguments it runs many_services_bench instead (start-up, latency with N
#   services against 1, idle CPU and memory of the root), and every argument goes to it, e.g.:
#
#     bench/run.sh --services 1000
#     bench/run.sh --services 200 --startup-runs 1 --idle-window-s 20
#
#   With --state it runs state_store_bench: SaveState + LoadState of 4 KiB and 256 KiB through the whole
#   suite, with the state database in the build directory (a real disk, so that durable writes cost what
#   they cost), e.g.:
#
#     bench/run.sh --state --rounds 1000
#
#   With --sampling it runs sampling_bench: 1000 sleeping children sampled as services by the resource
#   sampler, cycle after cycle, and the same numbers read by bench/psutil_sampling.py (python3-psutil), e.g.:
#
#     bench/run.sh --sampling --cycles 50 --services 1000
#
#   --help also prints the options of the drivers.
#
#   Exit status: 0 when tau-monitor meets the targets, 1 when it misses them, 2 on any other error.
#   See bench/README.md for what is measured and how to read the output.
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "$script")/.."

build_dir=${TAU_BUILD_DIR:-build}
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$script"
    # The drivers' own options; they build in moments and need nothing of tau-monitor.
    if [[ -f "$build_dir/CMakeCache.txt" ]] &&
        cmake --build "$build_dir" --target crash_restart_bench many_services_bench state_store_bench \
            sampling_bench >/dev/null 2>&1; then
        for driver in crash_restart_bench many_services_bench state_store_bench sampling_bench; do
            echo
            "$build_dir/bench/$driver" --help
        done
    else
        echo
        echo "(the options of the drivers: build them in $build_dir first)"
    fi
    exit 0
fi

driver=crash_restart_bench
for argument in "$@"; do
    if [[ "$argument" == "--services" ]]; then
        driver=many_services_bench
    elif [[ "$argument" == "--state" ]]; then
        driver=state_store_bench
    elif [[ "$argument" == "--sampling" ]]; then
        driver=sampling_bench
    fi
done

if [[ "$driver" == sampling_bench ]]; then
    # It needs nothing of tau-monitor but the sampling library.
    if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
        cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    if ! build_log=$(cmake --build "$build_dir" -j"$(nproc)" --target sampling_bench 2>&1); then
        printf '%s\n' "$build_log" >&2
        echo "bench/run.sh: the build failed" >&2
        exit 2
    fi
    # Debian's python3-psutil belongs to the system interpreter, which need not be the first python3.
    python=python3
    for candidate in python3 /usr/bin/python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import psutil' 2>/dev/null; then
            python=$candidate
            break
        fi
    done
    arguments=()
    for argument in "$@"; do
        [[ "$argument" == "--sampling" ]] || arguments+=("$argument")
    done
    exec "$build_dir/bench/sampling_bench" --python "$python" --script bench/psutil_sampling.py \
        "${arguments[@]}"
fi

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    TAU_BUILD_DIR="$build_dir" scripts/build.sh
fi
if ! build_log=$(cmake --build "$build_dir" -j"$(nproc)" \
    --target tau-monitor tau-monitor-cli "$driver" stamp_child baseline_restarter 2>&1); then
    printf '%s\n' "$build_log" >&2
    echo "bench/run.sh: the build failed" >&2
    exit 2
fi

bench_dir="$build_dir/bench"
if [[ "$driver" == state_store_bench ]]; then
    cmake --build "$build_dir" --target state_client >/dev/null
    arguments=()
    for argument in "$@"; do
        [[ "$argument" == "--state" ]] || arguments+=("$argument")
    done
    exec "$bench_dir/state_store_bench" --tau-monitor "$build_dir/services/tau-monitor" \
        --client "$bench_dir/state_client" --directory "$build_dir" "${arguments[@]}"
fi
"$bench_dir/$driver" \
    --tau-monitor "$build_dir/services/tau-monitor" \
    --tau-cli "$build_dir/cli/tau-monitor-cli" \
    --baseline "$bench_dir/baseline_restarter" \
    --stamp-child "$bench_dir/stamp_child" \
    "$@"
