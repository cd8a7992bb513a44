#include "tau/resources.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

namespace tau {

namespace {

double percentOf(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0)
        return 0.0;
    return 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// Busy share of one CPU between two readings.
double cpuBusyPercent(const CpuTimes& before, const CpuTimes& after) {
    const std::uint64_t totalBefore = before.total();
    const std::uint64_t totalAfter = after.total();
    const std::uint64_t idleBefore = before.idleAll();
    const std::uint64_t idleAfter = after.idleAll();
    // Counters only go backwards when a CPU went offline and came back, or the reader was swapped;
    // the difference would then be meaningless.
    if (totalAfter <= totalBefore || idleAfter < idleBefore)
        return 0.0;
    const std::uint64_t totalDelta = totalAfter - totalBefore;
    const std::uint64_t idleDelta = idleAfter - idleBefore;
    const std::uint64_t busyDelta = idleDelta > totalDelta ? 0 : totalDelta - idleDelta;
    return std::clamp(percentOf(busyDelta, totalDelta), 0.0, 100.0);
}

std::uint64_t saturatingSubtract(std::uint64_t from, std::uint64_t amount) {
    return amount > from ? 0 : from - amount;
}

double ratePerSecond(std::uint64_t before, std::uint64_t after, double elapsedSeconds) {
    // A smaller value means the counter was reset (interface re-created, driver reloaded).
    if (elapsedSeconds <= 0 || after < before)
        return 0.0;
    return static_cast<double>(after - before) / elapsedSeconds;
}

std::vector<DiskSnapshot> sampleDisks(const SystemReader& reader) {
    std::vector<MountEntry> mounts = reader.readMounts();
    // Only the last mount of a point is visible there, so that one alone is measured.
    std::set<std::string> seenMountPoints;
    std::vector<MountEntry> visible;
    for (auto mount = mounts.rbegin(); mount != mounts.rend(); ++mount) {
        if (seenMountPoints.insert(mount->mount_point).second)
            visible.push_back(*mount);
    }
    std::reverse(visible.begin(), visible.end());

    std::vector<DiskSnapshot> disks;
    for (const MountEntry& mount : visible) {
        if (isPseudoFilesystem(mount.fstype))
            continue;
        std::optional<FilesystemUsage> usage = reader.readFilesystemUsage(mount.mount_point);
        if (!usage || usage->total_bytes == 0)
            continue;
        DiskSnapshot disk;
        disk.mount_point = mount.mount_point;
        disk.device = mount.device;
        disk.fstype = mount.fstype;
        disk.total_bytes = usage->total_bytes;
        disk.used_bytes = saturatingSubtract(usage->total_bytes, usage->free_bytes);
        disk.available_bytes = usage->available_bytes;
        // Like df: the blocks reserved for root count as neither used nor available.
        disk.used_percent = percentOf(disk.used_bytes, disk.used_bytes + disk.available_bytes);
        disk.inodes_total = usage->inodes_total;
        disk.inodes_used = saturatingSubtract(usage->inodes_total, usage->inodes_free);
        disks.push_back(std::move(disk));
    }
    return disks;
}

} // namespace

ResourceSampler::ResourceSampler(const SystemReader& reader, const Clock& clock)
    : reader_(reader), clock_(clock) {}

ResourceSnapshot ResourceSampler::sample() {
    const std::chrono::steady_clock::time_point now = clock_.now();
    const bool havePrevious = previous_cpu_.has_value();

    ResourceSnapshot snapshot;
    snapshot.taken_at = clock_.wallNow();

    CpuStat cpu = reader_.readCpuStat();
    // The first sample compares against zero counters, which yields the average since boot.
    const CpuStat baseline = previous_cpu_.value_or(CpuStat{});
    snapshot.cpu_percent = cpuBusyPercent(baseline.total, cpu.total);
    snapshot.cpu_per_core_percent.reserve(cpu.cores.size());
    for (std::size_t core = 0; core < cpu.cores.size(); ++core) {
        // A core that just came online has no earlier reading; its counters are then since boot as well.
        const CpuTimes coreBaseline = core < baseline.cores.size() ? baseline.cores[core] : CpuTimes{};
        snapshot.cpu_per_core_percent.push_back(cpuBusyPercent(coreBaseline, cpu.cores[core]));
    }

    const MemInfo memory = reader_.readMemInfo();
    snapshot.memory.total_bytes = memory.total_bytes;
    snapshot.memory.available_bytes = memory.available_bytes;
    snapshot.memory.used_bytes = saturatingSubtract(memory.total_bytes, memory.available_bytes);
    snapshot.memory.used_percent = percentOf(snapshot.memory.used_bytes, memory.total_bytes);
    snapshot.swap.total_bytes = memory.swap_total_bytes;
    snapshot.swap.used_bytes = saturatingSubtract(memory.swap_total_bytes, memory.swap_free_bytes);
    snapshot.swap.used_percent = percentOf(snapshot.swap.used_bytes, memory.swap_total_bytes);

    snapshot.load = reader_.readLoadAverage();
    snapshot.disks = sampleDisks(reader_);

    std::vector<NetDevCounters> network = reader_.readNetDev();
    const double elapsedSeconds =
        havePrevious ? std::chrono::duration<double>(now - previous_at_).count() : 0.0;
    std::map<std::string, const NetDevCounters*> previousByInterface;
    for (const NetDevCounters& counters : previous_net_)
        previousByInterface[counters.interface] = &counters;
    for (const NetDevCounters& counters : network) {
        if (counters.interface == "lo")
            continue;
        NetworkSnapshot interface;
        interface.interface = counters.interface;
        interface.rx_bytes = counters.rx_bytes;
        interface.tx_bytes = counters.tx_bytes;
        interface.rx_errors = counters.rx_errors;
        interface.tx_errors = counters.tx_errors;
        interface.rx_drops = counters.rx_drops;
        interface.tx_drops = counters.tx_drops;
        auto previous = previousByInterface.find(counters.interface);
        if (havePrevious && previous != previousByInterface.end()) {
            interface.rx_bytes_per_second =
                ratePerSecond(previous->second->rx_bytes, counters.rx_bytes, elapsedSeconds);
            interface.tx_bytes_per_second =
                ratePerSecond(previous->second->tx_bytes, counters.tx_bytes, elapsedSeconds);
        }
        snapshot.networks.push_back(std::move(interface));
    }

    // Committed only now, so a reader that throws halfway leaves the previous baseline intact.
    previous_cpu_ = std::move(cpu);
    previous_net_ = std::move(network);
    previous_at_ = now;
    return snapshot;
}

ThresholdState::ThresholdState(double limit, double hysteresis)
    : limit_(limit), hysteresis_(std::max(0.0, hysteresis)) {}

bool ThresholdState::update(double value) {
    const bool wasExceeded = exceeded_;
    if (!exceeded_ && value >= limit_) {
        exceeded_ = true;
    } else if (exceeded_ && value < limit_ - hysteresis_) {
        exceeded_ = false;
    }
    return exceeded_ != wasExceeded;
}

double processCpuPercent(const ProcessStat& before, const ProcessStat& after,
                         std::chrono::duration<double> elapsed, long ticksPerSecond) {
    if (elapsed.count() <= 0 || ticksPerSecond <= 0)
        return 0.0;
    // A reused pid is a different process: its counters start over and cannot be compared.
    if (before.pid != after.pid || before.start_time_ticks != after.start_time_ticks)
        return 0.0;
    const std::uint64_t ticksBefore = before.utime_ticks + before.stime_ticks;
    const std::uint64_t ticksAfter = after.utime_ticks + after.stime_ticks;
    if (ticksAfter < ticksBefore)
        return 0.0;
    const double cpuSeconds =
        static_cast<double>(ticksAfter - ticksBefore) / static_cast<double>(ticksPerSecond);
    return 100.0 * cpuSeconds / elapsed.count();
}

} // namespace tau
