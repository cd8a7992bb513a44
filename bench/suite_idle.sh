#!/usr/bin/env bash
# The whole suite at rest: tau-monitor supervising N idle services with resources sampled every second
# (and health evaluated at its default interval), on its embedded bus. Measures utime+stime of every process of the suite
# (the root, its four service processes and the bus daemon; not the supervised services) over a window, and
# the resident memory of each.
#
# usage: bench/suite_idle.sh [--services N] [--settle-s S] [--window-s S]
#   defaults: 100 services, 15 s to settle, 60 s window. Target: under 0.5 % of one core in all.
#   Exit status: 0 when the target is met, 1 when it is not, 2 on any other error.
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "$script")/.."

services=100
settle=15
window=60
while [[ $# -gt 0 ]]; do
    case "$1" in
        --services) services=$2; shift 2 ;;
        --settle-s) settle=$2; shift 2 ;;
        --window-s) window=$2; shift 2 ;;
        *) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$script"; exit 2 ;;
    esac
done

build_dir=${TAU_BUILD_DIR:-build}
[[ -x "$build_dir/services/tau-monitor" ]] || { echo "suite_idle: build tau-monitor in $build_dir first" >&2; exit 2; }
daemon=$(realpath "$build_dir/services/tau-monitor")
cli=$(realpath "$build_dir/cli/tau-monitor-cli")

work=$(mktemp -d)
daemon_pid=
cleanup() {
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid"
        wait "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

{
    printf '[resource_monitoring]\ninterval_seconds = 1\nprometheus_listen = "127.0.0.1:0"\n\n'
    printf '[process_management]\nmax_concurrent_processes = %d\n\n' $((services > 100 ? services : 100))
    printf '[crash_recovery]\nsession_state_path = "%s/state"\n\n' "$work"
    printf '[logging]\nlog_file_path = "%s/tau-monitor.log"\nlog_level = "warning"\n' "$work"
    for ((i = 0; i < services; i++)); do
        printf '\n[[service]]\nname = "idle-%03d"\nexec = ["/bin/sleep", "infinity"]\n' "$i"
    done
} > "$work/tau-monitor.toml"

export TAU_MONITOR_RUNTIME_DIR="$work/rt"
mkdir -p "$TAU_MONITOR_RUNTIME_DIR"
"$daemon" --foreground --config "$work/tau-monitor.toml" > "$work/daemon.out" 2>&1 &
daemon_pid=$!

# Ready once every configured service runs.
running=0
for ((attempt = 0; attempt < 120; attempt++)); do
    running=$("$cli" --format json processes 2>/dev/null | grep -o '"state": *"running"' | wc -l || true)
    [[ "$running" -ge $((services + 4)) ]] && break
    sleep 0.5
done
if [[ "$running" -lt $((services + 4)) ]]; then
    echo "suite_idle: only $running of $((services + 4)) services running" >&2
    tail -20 "$work/daemon.out" >&2
    exit 2
fi

# The root, its suite processes (tau-monitor-log, -recovery, -resources, -health) and the bus daemon it started.
suite_pids() {
    echo "$daemon_pid"
    for child in $(cat /proc/"$daemon_pid"/task/*/children); do
        if grep -qaE -- 'tau-monitor-(log|recovery|resources|health)|dbus-daemon' /proc/"$child"/cmdline 2>/dev/null; then
            echo "$child"
        fi
    done
}
ticks() { # utime + stime of a pid
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$1"/stat
}

sleep "$settle"
mapfile -t pids < <(suite_pids)
declare -A before
for pid in "${pids[@]}"; do before[$pid]=$(ticks "$pid"); done
start=$(date +%s.%N)
sleep "$window"
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
hz=$(getconf CLK_TCK)

total=0
printf 'whole suite idle: %d services, resources sampled every 1 s; %.1f s window\n' \
    "$services" "$elapsed"
printf '  %-34s %8s %10s\n' process "cpu %" "rss KiB"
for pid in "${pids[@]}"; do
    used=$(( $(ticks "$pid") - before[$pid] ))
    total=$((total + used))
    name=$(tr '\0' ' ' < /proc/"$pid"/cmdline | awk '{ n = $1; sub(/.*\//, "", n); print n }')
    rss=$(awk '/^VmRSS/ { print $2 }' /proc/"$pid"/status)
    printf '  %-34s %8.3f %10s\n' "$name" "$(awk -v u="$used" -v h="$hz" -v e="$elapsed" 'BEGIN { print 100 * u / h / e }')" "$rss"
done
percent=$(awk -v u="$total" -v h="$hz" -v e="$elapsed" 'BEGIN { print 100 * u / h / e }')
printf '  %-34s %8.3f\n' "all" "$percent"
if awk -v p="$percent" 'BEGIN { exit !(p < 0.5) }'; then
    echo "RESULT: PASS (under 0.5 % of one core)"
else
    echo "RESULT: FAIL (target: under 0.5 % of one core)"
    exit 1
fi
