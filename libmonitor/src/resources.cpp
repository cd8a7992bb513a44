#include "tau/resources.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <unordered_map>
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

CpuModesPercent cpuModesPercent(const CpuTimes& before, const CpuTimes& after) {
    if (after.total() <= before.total())
        return {};
    const double totalDelta = static_cast<double>(after.total() - before.total());
    auto share = [&](std::uint64_t from, std::uint64_t to) {
        return to < from ? 0.0 : std::clamp(100.0 * static_cast<double>(to - from) / totalDelta, 0.0, 100.0);
    };
    CpuModesPercent modes;
    modes.user = share(before.user, after.user);
    modes.nice = share(before.nice, after.nice);
    modes.system = share(before.system, after.system);
    modes.idle = share(before.idle, after.idle);
    modes.iowait = share(before.iowait, after.iowait);
    modes.irq = share(before.irq, after.irq);
    modes.softirq = share(before.softirq, after.softirq);
    modes.steal = share(before.steal, after.steal);
    return modes;
}

std::uint64_t pageSize() {
    static const long size = ::sysconf(_SC_PAGESIZE);
    return size > 0 ? static_cast<std::uint64_t>(size) : 4096;
}

std::string joined(const std::vector<std::string>& parts, std::string_view separator) {
    std::string text;
    for (const std::string& part : parts) {
        if (!text.empty())
            text += separator;
        text += part;
    }
    return text;
}

// Devices that exist on every machine whether used or not; without any I/O they are noise.
bool isIdleVirtualDisk(const DiskStatCounters& disk) {
    const bool virtualDisk =
        disk.device.starts_with("loop") || disk.device.starts_with("ram") || disk.device.starts_with("zram");
    return virtualDisk && disk.reads_completed == 0 && disk.writes_completed == 0;
}

template <typename Collect>
void runCollector(ResourceSnapshot& snapshot, std::string name, Collect&& collect) {
    const auto started = std::chrono::steady_clock::now();
    CollectorStatus status;
    status.name = std::move(name);
    try {
        collect(status);
    } catch (const std::exception& error) {
        status.state = CollectorState::failed;
        status.message = error.what();
    } catch (...) {
        status.state = CollectorState::failed;
        status.message = "unknown error";
    }
    status.duration =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    snapshot.collectors.push_back(std::move(status));
}

} // namespace

std::optional<double> CounterRate::update(std::uint64_t value, std::chrono::steady_clock::time_point at) {
    if (!last_value_ || value < *last_value_) {
        last_value_ = value;
        last_at_ = at;
        return std::nullopt;
    }
    const double elapsedSeconds = std::chrono::duration<double>(at - last_at_).count();
    // Without elapsed time there is no rate; the older baseline stays, so the next rate spans both intervals.
    if (elapsedSeconds <= 0)
        return std::nullopt;
    const double rate = static_cast<double>(value - *last_value_) / elapsedSeconds;
    last_value_ = value;
    last_at_ = at;
    return rate;
}

double DiskSnapshot::inodesUsedPercent() const {
    return percentOf(inodes_used, inodes_total);
}

std::string_view toString(CollectorState state) {
    switch (state) {
    case CollectorState::ok:
        return "ok";
    case CollectorState::stale:
        return "stale";
    case CollectorState::failed:
        return "failed";
    }
    return "unknown";
}

const CollectorStatus* ResourceSnapshot::collector(std::string_view name) const {
    for (const CollectorStatus& status : collectors) {
        if (status.name == name)
            return &status;
    }
    return nullptr;
}

// statvfs() of every mount on a thread of its own, so that a hung network filesystem costs one stale mount
// rather than the whole cycle. A probe that has not answered stays in flight and is never started twice.
class FilesystemProber {
  public:
    enum class Outcome { answered, stale, failed };
    struct Result {
        Outcome outcome = Outcome::answered;
        std::optional<FilesystemUsage> usage;
        std::string error;
    };

    FilesystemProber(const SystemReader& reader, std::chrono::milliseconds deadline)
        : reader_(reader), deadline_(deadline) {}

    ~FilesystemProber() {
        // Give the probes still running a last chance to finish; one that hangs is left to itself.
        const auto until = std::chrono::steady_clock::now() + deadline_;
        for (auto& [mountPoint, probe] : in_flight_) {
            std::unique_lock lock(probe->mutex);
            probe->finished.wait_until(lock, until, [&] { return probe->done; });
        }
    }

    FilesystemProber(const FilesystemProber&) = delete;
    FilesystemProber& operator=(const FilesystemProber&) = delete;

    std::map<std::string, Result> probe(const std::vector<std::string>& mountPoints) {
        std::map<std::string, Result> results;
        std::vector<std::pair<std::string, std::shared_ptr<Probe>>> started;
        for (const std::string& mountPoint : mountPoints) {
            auto inFlight = in_flight_.find(mountPoint);
            if (inFlight != in_flight_.end()) {
                bool stillRunning = false;
                {
                    std::lock_guard lock(inFlight->second->mutex);
                    stillRunning = !inFlight->second->done;
                }
                if (stillRunning) {
                    results[mountPoint].outcome = Outcome::stale;
                    continue;
                }
                // It answered after its deadline; that answer is old by now, so ask again.
                in_flight_.erase(inFlight);
            }
            auto probe = std::make_shared<Probe>();
            try {
                std::thread([probe, mountPoint, reader = &reader_] {
                    std::optional<FilesystemUsage> usage;
                    std::string error;
                    try {
                        usage = reader->readFilesystemUsage(mountPoint);
                    } catch (const std::exception& failure) {
                        error = failure.what();
                    }
                    std::lock_guard lock(probe->mutex);
                    probe->usage = usage;
                    probe->error = std::move(error);
                    probe->done = true;
                    probe->finished.notify_all();
                }).detach();
            } catch (const std::system_error& failure) {
                results[mountPoint] = Result{Outcome::failed, std::nullopt, failure.what()};
                continue;
            }
            started.emplace_back(mountPoint, std::move(probe));
        }

        const auto until = std::chrono::steady_clock::now() + deadline_;
        for (auto& [mountPoint, probe] : started) {
            std::unique_lock lock(probe->mutex);
            if (!probe->finished.wait_until(lock, until, [&] { return probe->done; })) {
                results[mountPoint].outcome = Outcome::stale;
                in_flight_[mountPoint] = probe;
                continue;
            }
            Result& result = results[mountPoint];
            result.outcome = probe->error.empty() ? Outcome::answered : Outcome::failed;
            result.usage = probe->usage;
            result.error = probe->error;
        }
        return results;
    }

  private:
    struct Probe {
        std::mutex mutex;
        std::condition_variable finished;
        bool done = false;
        std::optional<FilesystemUsage> usage;
        std::string error;
    };

    const SystemReader& reader_;
    std::chrono::milliseconds deadline_;
    std::map<std::string, std::shared_ptr<Probe>> in_flight_;
};

ResourceSampler::ResourceSampler(const SystemReader& reader, const Clock& clock, SamplerOptions options)
    : reader_(reader), clock_(clock), options_(options),
      filesystems_(std::make_unique<FilesystemProber>(reader, options.filesystem_deadline)) {}

ResourceSampler::~ResourceSampler() = default;

ResourceSnapshot ResourceSampler::sample(const std::vector<ServiceSampleTarget>& services) {
    const Instant now = clock_.now();
    ResourceSnapshot snapshot;
    snapshot.taken_at = clock_.wallNow();

    runCollector(snapshot, "cgroup", [&](CollectorStatus&) {
        cgroup_limits_.reset();
        cgroup_limits_ = reader_.readOwnCgroupLimits();
    });
    runCollector(snapshot, "cpu", [&](CollectorStatus&) { sampleCpu(snapshot, now); });
    runCollector(snapshot, "memory", [&](CollectorStatus&) { sampleMemory(snapshot); });
    runCollector(snapshot, "swap", [&](CollectorStatus&) { sampleSwap(snapshot, now); });
    runCollector(snapshot, "load", [&](CollectorStatus&) { snapshot.load = reader_.readLoadAverage(); });
    runCollector(snapshot, "filesystems", [&](CollectorStatus& status) {
        sampleDisks(snapshot);
        std::vector<std::string> stale;
        for (const auto& [mountPoint, disk] : last_disks_) {
            if (disk.stale)
                stale.push_back(mountPoint);
        }
        if (!stale.empty()) {
            status.state = CollectorState::stale;
            status.message = "statvfs did not answer within " +
                             std::to_string(options_.filesystem_deadline.count()) +
                             " ms: " + joined(stale, ", ");
        }
    });
    runCollector(snapshot, "disk_io", [&](CollectorStatus&) { sampleDiskIo(snapshot, now); });
    runCollector(snapshot, "network", [&](CollectorStatus&) { sampleNetwork(snapshot, now); });
    runCollector(snapshot, "temperature", [&](CollectorStatus&) { sampleTemperatures(snapshot); });
    runCollector(snapshot, "pressure", [&](CollectorStatus&) { samplePressure(snapshot); });
    runCollector(snapshot, "services", [&](CollectorStatus& status) {
        sampleServices(snapshot, services, now);
        std::vector<std::string> problems;
        for (const ServiceSnapshot& service : snapshot.services) {
            if (!service.error.empty())
                problems.push_back(service.name + ": " + service.error);
        }
        status.message = joined(problems, "; ");
    });
    return snapshot;
}

void ResourceSampler::sampleCpu(ResourceSnapshot& snapshot, Instant now) {
    CpuStat cpu = reader_.readCpuStat();
    // The first sample compares against zero counters, which yields the average since boot.
    const CpuStat baseline = previous_cpu_.value_or(CpuStat{});
    snapshot.cpu_percent = cpuBusyPercent(baseline.total, cpu.total);
    snapshot.cpu_modes = cpuModesPercent(baseline.total, cpu.total);
    snapshot.cpu_core_times = cpu.cores;
    snapshot.clock_ticks_per_second = reader_.clockTicksPerSecond();
    snapshot.cpu_per_core_percent.reserve(cpu.cores.size());
    snapshot.cpu_per_core_modes.reserve(cpu.cores.size());
    for (std::size_t core = 0; core < cpu.cores.size(); ++core) {
        // A core that just came online has no earlier reading; its counters are then since boot as well.
        const CpuTimes coreBaseline = core < baseline.cores.size() ? baseline.cores[core] : CpuTimes{};
        snapshot.cpu_per_core_percent.push_back(cpuBusyPercent(coreBaseline, cpu.cores[core]));
        snapshot.cpu_per_core_modes.push_back(cpuModesPercent(coreBaseline, cpu.cores[core]));
    }
    snapshot.cpu_capacity_cores = static_cast<double>(cpu.cores.size());

    // In a container with a CPU quota the machine's counters say nothing about what the container may use;
    // its own usage against the quota does.
    if (cgroup_limits_ && cgroup_limits_->cpu_limit_cores && cgroup_limits_->cpu_limit_directory &&
        *cgroup_limits_->cpu_limit_cores > 0 &&
        *cgroup_limits_->cpu_limit_cores < snapshot.cpu_capacity_cores) {
        snapshot.cpu_capacity_cores = *cgroup_limits_->cpu_limit_cores;
        const CgroupUsage usage = reader_.readCgroupUsage(*cgroup_limits_->cpu_limit_directory);
        std::optional<double> usecPerSecond;
        if (usage.cpu_usage_usec)
            usecPerSecond = container_cpu_usec_.update(*usage.cpu_usage_usec, now);
        // Until there are two readings of the cgroup, there is no share of the quota to tell.
        constexpr double kMicrosecondsPerSecond = 1e6;
        snapshot.cpu_percent =
            usecPerSecond
                ? std::clamp(100.0 * *usecPerSecond / kMicrosecondsPerSecond / snapshot.cpu_capacity_cores,
                             0.0, 100.0)
                : 0.0;
    }
    previous_cpu_ = std::move(cpu);
}

void ResourceSampler::sampleMemory(ResourceSnapshot& snapshot) {
    const MemInfo memory = reader_.readMemInfo();
    snapshot.memory.total_bytes = memory.total_bytes;
    snapshot.memory.available_bytes = memory.available_bytes;
    snapshot.memory.used_bytes = saturatingSubtract(memory.total_bytes, memory.available_bytes);
    if (cgroup_limits_ && cgroup_limits_->memory_max_bytes &&
        *cgroup_limits_->memory_max_bytes < memory.total_bytes) {
        // Like the kernel's own estimate, page cache that could be dropped does not count as used.
        const std::uint64_t total = *cgroup_limits_->memory_max_bytes;
        const std::uint64_t used =
            std::min(total, saturatingSubtract(cgroup_limits_->memory_current_bytes,
                                               cgroup_limits_->memory_inactive_file_bytes));
        snapshot.memory.total_bytes = total;
        snapshot.memory.used_bytes = used;
        snapshot.memory.available_bytes = total - used;
        snapshot.memory_from_cgroup = true;
    }
    snapshot.memory.used_percent = percentOf(snapshot.memory.used_bytes, snapshot.memory.total_bytes);
    snapshot.swap.total_bytes = memory.swap_total_bytes;
    snapshot.swap.used_bytes = saturatingSubtract(memory.swap_total_bytes, memory.swap_free_bytes);
    snapshot.swap.used_percent = percentOf(snapshot.swap.used_bytes, memory.swap_total_bytes);
}

void ResourceSampler::sampleSwap(ResourceSnapshot& snapshot, Instant now) {
    const VmStat vmstat = reader_.readVmStat();
    auto bytesPerSecond = [&](std::optional<double> pagesPerSecond) -> std::optional<double> {
        if (!pagesPerSecond)
            return std::nullopt;
        return *pagesPerSecond * static_cast<double>(pageSize());
    };
    snapshot.swap_in_bytes_per_second = bytesPerSecond(swap_rates_.update("in", vmstat.swap_in_pages, now));
    snapshot.swap_out_bytes_per_second =
        bytesPerSecond(swap_rates_.update("out", vmstat.swap_out_pages, now));
}

void ResourceSampler::sampleDisks(ResourceSnapshot& snapshot) {
    std::vector<MountEntry> mounts = reader_.readMounts();
    // Only the last mount of a point is visible there, so that one alone is measured; a pseudo filesystem
    // mounted over a real one hides it.
    std::set<std::string> seenMountPoints;
    std::vector<MountEntry> visible;
    for (auto mount = mounts.rbegin(); mount != mounts.rend(); ++mount) {
        if (seenMountPoints.insert(mount->mount_point).second && !isPseudoFilesystem(mount->fstype))
            visible.push_back(*mount);
    }
    std::reverse(visible.begin(), visible.end());

    std::vector<std::string> mountPoints;
    mountPoints.reserve(visible.size());
    for (const MountEntry& mount : visible)
        mountPoints.push_back(mount.mount_point);
    std::map<std::string, FilesystemProber::Result> results = filesystems_->probe(mountPoints);

    std::map<std::string, DiskSnapshot> current;
    std::vector<std::string> failures;
    for (const MountEntry& mount : visible) {
        const FilesystemProber::Result& result = results[mount.mount_point];
        if (result.outcome == FilesystemProber::Outcome::stale) {
            auto last = last_disks_.find(mount.mount_point);
            DiskSnapshot stale = last != last_disks_.end() ? last->second : DiskSnapshot{};
            stale.mount_point = mount.mount_point;
            stale.device = mount.device;
            stale.fstype = mount.fstype;
            stale.stale = true;
            // Without any earlier answer there are no numbers to show, only the name in the status.
            if (last != last_disks_.end() && last->second.total_bytes > 0)
                snapshot.disks.push_back(stale);
            current[mount.mount_point] = std::move(stale);
            continue;
        }
        if (result.outcome == FilesystemProber::Outcome::failed)
            failures.push_back(mount.mount_point + ": " + result.error);
        const std::optional<FilesystemUsage>& usage = result.usage;
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
        current[mount.mount_point] = disk;
        snapshot.disks.push_back(std::move(disk));
    }
    last_disks_ = std::move(current);
    if (!failures.empty())
        throw ProcReadError("statvfs failed: " + joined(failures, "; "));
}

void ResourceSampler::sampleDiskIo(ResourceSnapshot& snapshot, Instant now) {
    const std::vector<DiskStatCounters> disks = reader_.readDiskStats();
    enum Counter { kSectorsRead, kSectorsWritten, kReads, kWrites, kIoTicks };
    for (const DiskStatCounters& disk : disks) {
        if (isIdleVirtualDisk(disk) || !reader_.isWholeDiskDevice(disk.device))
            continue;
        DiskIoSnapshot io;
        io.device = disk.device;
        auto rate = [&](Counter counter, std::uint64_t value) {
            return disk_rates_.update({disk.device, counter}, value, now);
        };
        const std::optional<double> sectorsRead = rate(kSectorsRead, disk.sectors_read);
        const std::optional<double> sectorsWritten = rate(kSectorsWritten, disk.sectors_written);
        const std::optional<double> reads = rate(kReads, disk.reads_completed);
        const std::optional<double> writes = rate(kWrites, disk.writes_completed);
        const std::optional<double> busyMsPerSecond = rate(kIoTicks, disk.io_ticks_ms);
        io.has_rates = sectorsRead && sectorsWritten && reads && writes && busyMsPerSecond;
        constexpr double kSectorBytes = static_cast<double>(kDiskStatSectorBytes);
        io.read_bytes_per_second = sectorsRead.value_or(0) * kSectorBytes;
        io.write_bytes_per_second = sectorsWritten.value_or(0) * kSectorBytes;
        io.reads_per_second = reads.value_or(0);
        io.writes_per_second = writes.value_or(0);
        // Busy milliseconds per second: a tenth of that is the busy share in percent.
        io.utilization_percent = std::clamp(busyMsPerSecond.value_or(0) / 10.0, 0.0, 100.0);
        io.counters = disk;
        snapshot.disk_io.push_back(std::move(io));
    }
    disk_rates_.dropUnseen();
}

void ResourceSampler::sampleNetwork(ResourceSnapshot& snapshot, Instant now) {
    const std::vector<NetDevCounters> network = reader_.readNetDev();
    enum Counter { kRxBytes, kTxBytes, kRxPackets, kTxPackets, kRxErrors, kTxErrors, kRxDrops, kTxDrops };
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
        bool allRates = true;
        auto rate = [&](Counter counter, std::uint64_t value) {
            std::optional<double> perSecond =
                network_rates_.update({counters.interface, counter}, value, now);
            allRates = allRates && perSecond.has_value();
            return perSecond.value_or(0.0);
        };
        interface.rx_bytes_per_second = rate(kRxBytes, counters.rx_bytes);
        interface.tx_bytes_per_second = rate(kTxBytes, counters.tx_bytes);
        interface.rx_packets_per_second = rate(kRxPackets, counters.rx_packets);
        interface.tx_packets_per_second = rate(kTxPackets, counters.tx_packets);
        const double rxErrors = rate(kRxErrors, counters.rx_errors);
        interface.errors_per_second = rxErrors + rate(kTxErrors, counters.tx_errors);
        const double rxDrops = rate(kRxDrops, counters.rx_drops);
        interface.drops_per_second = rxDrops + rate(kTxDrops, counters.tx_drops);
        interface.has_rates = allRates;
        interface.oper_state = reader_.interfaceOperState(counters.interface);
        snapshot.networks.push_back(std::move(interface));
    }
    network_rates_.dropUnseen();
}

void ResourceSampler::sampleTemperatures(ResourceSnapshot& snapshot) {
    snapshot.temperatures = reader_.readTemperatures();
    for (const TemperatureReading& reading : snapshot.temperatures) {
        if (!snapshot.hottest_celsius || reading.celsius > *snapshot.hottest_celsius)
            snapshot.hottest_celsius = reading.celsius;
    }
}

void ResourceSampler::samplePressure(ResourceSnapshot& snapshot) {
    std::vector<std::string> failures;
    auto read = [&](PressureResource resource, std::optional<PressureInfo>& into) {
        try {
            into = reader_.readPressure(resource);
        } catch (const std::exception& error) {
            failures.push_back(error.what());
        }
    };
    read(PressureResource::cpu, snapshot.pressure.cpu);
    read(PressureResource::memory, snapshot.pressure.memory);
    read(PressureResource::io, snapshot.pressure.io);
    if (!failures.empty())
        throw ProcReadError(joined(failures, "; "));
}

void ResourceSampler::sampleServices(ResourceSnapshot& snapshot,
                                     const std::vector<ServiceSampleTarget>& services, Instant now) {
    // Only the pss entries touched below survive the cycle.
    for (auto& [key, entry] : pss_cache_)
        entry.seen = false;
    auto forgetUnseen = [&] {
        process_rates_.dropUnseen();
        cgroup_rates_.dropUnseen();
        std::erase_if(pss_cache_, [](const auto& entry) { return !entry.second.seen; });
    };
    if (services.empty()) {
        forgetUnseen();
        return;
    }

    const unsigned workers = options_.workers > 0 ? options_.workers : defaultSamplingWorkers();
    // Between full scans only the processes already known are read: a child started meanwhile joins its
    // service's figures at the next scan, a service started again (a pid not known) brings that scan now.
    std::vector<pid_t> roots;
    for (const ServiceSampleTarget& target : services)
        if (!target.cgroup_dir)
            roots.push_back(target.pid);
    std::sort(roots.begin(), roots.end());
    const bool full_scan = !last_full_scan_ || now - *last_full_scan_ >= options_.process_rescan ||
                           !std::includes(tree_roots_.begin(), tree_roots_.end(), roots.begin(), roots.end());
    const ProcessTable table = full_scan ? ProcessTable::scan(reader_, workers)
                                         : ProcessTable::scanOf(reader_, tree_members_, workers);
    if (full_scan) {
        last_full_scan_ = now;
        tree_roots_ = std::move(roots);
    }
    const long ticksPerSecond = reader_.clockTicksPerSecond();
    enum ProcessCounter { kCpuTicks, kReadBytes, kWriteBytes };
    enum CgroupCounter { kCgroupCpuUsec, kCgroupReadBytes, kCgroupWriteBytes };

    // Which processes make up each service: its cgroup's, or its process tree.
    struct Membership {
        std::optional<CgroupUsage> usage;
        std::vector<pid_t> members;
        bool from_cgroup = false;
        std::string error;
    };
    std::vector<Membership> memberships(services.size());
    for (std::size_t index = 0; index < services.size(); ++index) {
        const ServiceSampleTarget& target = services[index];
        Membership& membership = memberships[index];
        try {
            if (target.cgroup_dir) {
                membership.usage = reader_.readCgroupUsage(*target.cgroup_dir);
                membership.from_cgroup = membership.usage->processes.has_value();
                if (!membership.from_cgroup)
                    membership.error = "cannot read " + (*target.cgroup_dir / "cgroup.procs").string();
            }
            membership.members =
                membership.from_cgroup ? std::move(*membership.usage->processes) : table.treeOf(target.pid);
        } catch (const std::exception& error) {
            membership = Membership{};
            membership.error = error.what();
        }
    }

    tree_members_.clear();
    for (const Membership& membership : memberships)
        if (!membership.from_cgroup)
            tree_members_.insert(tree_members_.end(), membership.members.begin(), membership.members.end());
    std::sort(tree_members_.begin(), tree_members_.end());
    tree_members_.erase(std::unique(tree_members_.begin(), tree_members_.end()), tree_members_.end());

    // Every process once, even if two services claim it. A member started after the scan, or gone before it,
    // shows up in the next cycle, if at all.
    std::vector<const ProcessStat*> processes;
    std::unordered_map<pid_t, std::size_t> indexOfProcess;
    for (const Membership& membership : memberships) {
        for (pid_t pid : membership.members) {
            const ProcessStat* process = table.find(pid);
            if (process != nullptr && indexOfProcess.try_emplace(pid, processes.size()).second)
                processes.push_back(process);
        }
    }
    std::vector<PssEntry*> pssEntries(processes.size());
    std::vector<char> pssDue(processes.size(), 0);
    for (std::size_t index = 0; index < processes.size(); ++index) {
        const ProcessStat& process = *processes[index];
        auto [found, inserted] = pss_cache_.try_emplace(ProcessKey{process.pid, process.start_time_ticks});
        PssEntry& entry = found->second;
        entry.seen = true;
        pssDue[index] = inserted || now - entry.read_at >= options_.pss_max_age || now < entry.read_at;
        pssEntries[index] = &entry;
    }

    // The reads are what costs; they run on the workers, the bookkeeping stays on this thread.
    struct ProcessReads {
        std::optional<std::uint64_t> open_fds;
        std::optional<ProcessIo> io;
        std::optional<std::uint64_t> pss_bytes;
    };
    std::vector<ProcessReads> reads(processes.size());
    forEachInParallel(processes.size(), workers, [&](std::size_t index) {
        const pid_t pid = processes[index]->pid;
        reads[index].open_fds = reader_.countOpenFds(pid);
        reads[index].io = reader_.readProcessIo(pid);
        if (pssDue[index])
            reads[index].pss_bytes = reader_.readProcessPss(pid);
    });

    struct ProcessSample {
        std::optional<double> ticks_per_second;
        std::optional<std::uint64_t> open_fds;
        bool io_readable = false;
        std::optional<double> read_bytes_per_second, write_bytes_per_second;
        std::optional<std::uint64_t> pss_bytes;
    };
    std::vector<ProcessSample> measured(processes.size());
    for (std::size_t index = 0; index < processes.size(); ++index) {
        const ProcessStat& process = *processes[index];
        ProcessSample& sample = measured[index];
        const ProcessKey key{process.pid, process.start_time_ticks};
        sample.ticks_per_second =
            process_rates_.update({key, kCpuTicks}, process.utime_ticks + process.stime_ticks, now);
        sample.open_fds = reads[index].open_fds;
        if (const std::optional<ProcessIo>& io = reads[index].io) {
            sample.io_readable = true;
            sample.read_bytes_per_second = process_rates_.update({key, kReadBytes}, io->read_bytes, now);
            sample.write_bytes_per_second = process_rates_.update({key, kWriteBytes}, io->write_bytes, now);
        }
        if (pssDue[index]) {
            pssEntries[index]->bytes = reads[index].pss_bytes;
            pssEntries[index]->read_at = now;
        }
        sample.pss_bytes = pssEntries[index]->bytes;
    }

    snapshot.services.reserve(services.size());
    for (std::size_t serviceIndex = 0; serviceIndex < services.size(); ++serviceIndex) {
        const ServiceSampleTarget& target = services[serviceIndex];
        Membership& membership = memberships[serviceIndex];
        ServiceSnapshot service;
        service.name = target.name;
        service.pid = target.pid;
        service.from_cgroup = membership.from_cgroup;
        service.error = std::move(membership.error);

        double ticksPerSecondSum = 0;
        bool haveCpu = false;
        double readSum = 0, writeSum = 0;
        bool haveIo = true, ioBaseline = false;
        std::uint64_t fds = 0, pss = 0;
        bool haveFds = true, havePss = true;
        for (pid_t pid : membership.members) {
            auto found = indexOfProcess.find(pid);
            if (found == indexOfProcess.end())
                continue;
            const ProcessStat& process = *processes[found->second];
            const ProcessSample& sample = measured[found->second];
            ++service.processes;
            service.rss_bytes += process.rss_bytes;
            service.threads += process.num_threads;
            // A child without a baseline yet adds nothing this once; the main process without one means
            // this is the service's first sample (or its main process was replaced).
            if (sample.ticks_per_second) {
                ticksPerSecondSum += *sample.ticks_per_second;
                haveCpu = haveCpu || service.from_cgroup || pid == target.pid;
            }
            if (sample.open_fds)
                fds += *sample.open_fds;
            else
                haveFds = false;
            if (!sample.io_readable) {
                haveIo = false;
            } else if (sample.read_bytes_per_second && sample.write_bytes_per_second) {
                readSum += *sample.read_bytes_per_second;
                writeSum += *sample.write_bytes_per_second;
                ioBaseline = ioBaseline || service.from_cgroup || pid == target.pid;
            }
            if (sample.pss_bytes)
                pss += *sample.pss_bytes;
            else
                havePss = false;
        }
        service.running = service.processes > 0;
        service.memory_bytes = service.rss_bytes;
        if (service.running) {
            if (haveCpu && ticksPerSecond > 0)
                service.cpu_percent = 100.0 * ticksPerSecondSum / static_cast<double>(ticksPerSecond);
            if (haveFds)
                service.open_fds = fds;
            if (havePss)
                service.pss_bytes = pss;
            if (haveIo && ioBaseline) {
                service.io_read_bytes_per_second = readSum;
                service.io_write_bytes_per_second = writeSum;
            }
        }
        if (const std::optional<CgroupUsage>& usage = membership.usage) {
            // The cgroup counts what its processes did, even those that exited between two samples.
            auto rate = [&](CgroupCounter counter, const std::optional<std::uint64_t>& value) {
                return value ? cgroup_rates_.update({target.name, counter}, *value, now) : std::nullopt;
            };
            if (usage->cpu_usage_usec) {
                const std::optional<double> usecPerSecond = rate(kCgroupCpuUsec, usage->cpu_usage_usec);
                // Percent of one core: microseconds per second, divided by a million, times 100.
                service.cpu_percent =
                    usecPerSecond ? std::optional<double>(*usecPerSecond / 1e4) : std::nullopt;
            }
            if (usage->memory_current_bytes)
                service.memory_bytes = *usage->memory_current_bytes;
            if (usage->pids_current)
                service.processes = static_cast<std::size_t>(*usage->pids_current);
            if (usage->io_read_bytes && usage->io_write_bytes) {
                service.io_read_bytes_per_second = rate(kCgroupReadBytes, usage->io_read_bytes);
                service.io_write_bytes_per_second = rate(kCgroupWriteBytes, usage->io_write_bytes);
            }
            service.running = service.running || usage->pids_current.value_or(0) > 0;
        }
        snapshot.services.push_back(std::move(service));
    }
    forgetUnseen();
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
