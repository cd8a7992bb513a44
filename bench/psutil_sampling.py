#!/usr/bin/env python3
"""The psutil side of sampling_bench: reads what one ResourceSampler cycle reads, cycle after cycle.

usage: psutil_sampling.py --cycles N --pids-file FILE

FILE holds one pid per line (the benchmark's "supervised services"). Prints one line per cycle,
"<wall ms> <cpu ms>", the CPU time being this interpreter's own. Exits 2 when psutil is missing.
"""
import argparse
import sys
import time

try:
    import psutil
except ImportError:
    print("psutil_sampling.py: python3-psutil is not installed", file=sys.stderr)
    sys.exit(2)


def real_mounts():
    # all=False leaves out the pseudo filesystems, as the sampler does.
    return [partition.mountpoint for partition in psutil.disk_partitions(all=False)]


def one_cycle(processes):
    psutil.cpu_times()
    psutil.cpu_times(percpu=True)
    psutil.virtual_memory()
    psutil.swap_memory()
    for mountpoint in real_mounts():
        try:
            psutil.disk_usage(mountpoint)
        except OSError:
            pass
    psutil.disk_io_counters(perdisk=True)
    psutil.net_io_counters(pernic=True)
    if hasattr(psutil, "sensors_temperatures"):
        psutil.sensors_temperatures()
    psutil.getloadavg()
    for process in processes:
        try:
            # oneshot() reads /proc/<pid>/stat and status once for all the calls below: psutil at its best.
            with process.oneshot():
                process.cpu_times()
                process.memory_info()
                process.num_threads()
                process.num_fds()
                process.io_counters()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, required=True)
    parser.add_argument("--pids-file", required=True)
    arguments = parser.parse_args()
    with open(arguments.pids_file) as pids:
        processes = [psutil.Process(int(line)) for line in pids if line.strip()]
    # A monitor keeps its Process objects; the first cycle also warms psutil's own caches.
    one_cycle(processes)
    for _ in range(arguments.cycles):
        wall_start = time.perf_counter()
        cpu_start = time.process_time()
        one_cycle(processes)
        wall_ms = (time.perf_counter() - wall_start) * 1000.0
        cpu_ms = (time.process_time() - cpu_start) * 1000.0
        print(f"{wall_ms:.3f} {cpu_ms:.3f}", flush=True)


if __name__ == "__main__":
    main()
