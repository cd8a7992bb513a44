#pragma once
// Turns raw counters into a snapshot of the machine: percentages and rates between two samples.

#include "tau/clock.h"
#include "tau/procfs.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tau {

// A counter that only grows, turned into a rate per second between two updates.
// No rate on the first update, when no time passed, or when the value went down (the counter was reset: an
// interface re-created, a driver reloaded, a pid reused); the new value is then the baseline.
class CounterRate {
  public:
    std::optional<double> update(std::uint64_t value, std::chrono::steady_clock::time_point at);

  private:
    std::optional<std::uint64_t> last_value_;
    std::chrono::steady_clock::time_point last_at_{};
};

// Hashes the keys of CounterRateTable: strings, integers and pairs of them.
struct CounterKeyHash {
    template <typename First, typename Second>
    std::size_t operator()(const std::pair<First, Second>& key) const {
        // A golden-ratio mix of the two halves: cheap, and spreads pids, devices and counter numbers well.
        const std::size_t first = (*this)(key.first);
        return first ^ ((*this)(key.second) + 0x9e3779b97f4a7c15ULL + (first << 6) + (first >> 2));
    }
    template <typename Value> std::size_t operator()(const Value& value) const {
        return std::hash<Value>{}(value);
    }
};

// CounterRates keyed by device, interface, pid... An entry not updated between two calls of dropUnseen()
// belongs to something that disappeared and is forgotten, so that it starts afresh if it comes back.
template <typename Key> class CounterRateTable {
  public:
    std::optional<double> update(const Key& key, std::uint64_t value,
                                 std::chrono::steady_clock::time_point at) {
        Entry& entry = entries_[key];
        entry.seen = true;
        return entry.rate.update(value, at);
    }

    void dropUnseen() {
        std::erase_if(entries_, [](const auto& entry) { return !entry.second.seen; });
        for (auto& entry : entries_)
            entry.second.seen = false;
    }

    std::size_t size() const { return entries_.size(); }
    bool contains(const Key& key) const { return entries_.contains(key); }

  private:
    struct Entry {
        CounterRate rate;
        bool seen = false;
    };
    std::unordered_map<Key, Entry, CounterKeyHash> entries_;
};

// Shares of the elapsed jiffies, in percent; they add up to 100 when any time elapsed.
struct CpuModesPercent {
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
};

struct MemorySnapshot {
    std::uint64_t total_bytes = 0;
    std::uint64_t available_bytes = 0;
    std::uint64_t used_bytes = 0; // total - available
    double used_percent = 0;
};

struct SwapSnapshot {
    std::uint64_t total_bytes = 0;
    std::uint64_t used_bytes = 0;
    double used_percent = 0; // 0 when there is no swap
};

struct DiskSnapshot {
    std::string mount_point;
    std::string device;
    std::string fstype;
    std::uint64_t total_bytes = 0;
    std::uint64_t used_bytes = 0;
    std::uint64_t available_bytes = 0;
    double used_percent = 0; // used / (used + available), as df computes it
    std::uint64_t inodes_total = 0;
    std::uint64_t inodes_used = 0;
    // statvfs() did not answer within the deadline; the values are those of the last answer.
    bool stale = false;

    double inodesUsedPercent() const;
};

// Block device traffic of a whole disk between two samples.
struct DiskIoSnapshot {
    std::string device;
    bool has_rates = false; // false on the first sample of the device; the rates are then 0
    double read_bytes_per_second = 0;
    double write_bytes_per_second = 0;
    double reads_per_second = 0;
    double writes_per_second = 0;
    double utilization_percent = 0; // share of the time the device was busy
    DiskStatCounters counters;      // cumulative, since boot
};

struct NetworkSnapshot {
    std::string interface;
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_bytes = 0;
    double rx_bytes_per_second = 0; // 0 on the first sample and after a counter reset
    double tx_bytes_per_second = 0;
    std::uint64_t rx_errors = 0, tx_errors = 0, rx_drops = 0, tx_drops = 0;
    // Like the byte rates, 0 on the first sample of the interface and after a reset of that counter.
    bool has_rates = false;
    double rx_packets_per_second = 0, tx_packets_per_second = 0;
    double errors_per_second = 0; // rx + tx
    double drops_per_second = 0;  // rx + tx
    std::optional<std::string> oper_state =
        std::nullopt; // an initializer, so that {a, b, ...} may leave it out
};

struct PressureSnapshot {
    std::optional<PressureInfo> cpu, memory, io; // nullopt without pressure stall information
};

// One supervised service: its whole process tree, or its cgroup when it has one.
struct ServiceSnapshot {
    std::string name;
    pid_t pid = 0;
    bool running = false; // its main process (or, with a cgroup, any process of it) exists
    bool from_cgroup = false;
    std::size_t processes = 0;
    // Percent of one core; absent on the first sample of the service.
    std::optional<double> cpu_percent;
    std::uint64_t rss_bytes = 0;    // sum over its processes; pages shared between them count more than once
    std::uint64_t memory_bytes = 0; // memory.current with a cgroup (page cache included), else rss_bytes
    // Absent when the smaps_rollup of any process could not be read.
    std::optional<std::uint64_t> pss_bytes;
    std::uint64_t threads = 0;
    std::optional<std::uint64_t> open_fds; // absent when any fd directory could not be listed
    // Absent on the first sample, and when the counters are not ours to read (another user's process).
    std::optional<double> io_read_bytes_per_second;
    std::optional<double> io_write_bytes_per_second;
    std::string error; // why some of the above could not be read; empty when all went well
};

struct ServiceSampleTarget {
    // So that callers may write {"web", pid} without naming the cgroup.
    ServiceSampleTarget() = default;
    ServiceSampleTarget(std::string serviceName, pid_t mainPid,
                        std::optional<std::filesystem::path> cgroupDirectory = std::nullopt)
        : name(std::move(serviceName)), pid(mainPid), cgroup_dir(std::move(cgroupDirectory)) {}

    std::string name;
    pid_t pid = 0;
    std::optional<std::filesystem::path> cgroup_dir;
};

enum class CollectorState { ok, stale, failed };
std::string_view toString(CollectorState state);

struct CollectorStatus {
    std::string name; // "cpu", "memory", "swap", "load", "filesystems", "disk_io", "network", ...
    CollectorState state = CollectorState::ok;
    std::string message; // why it failed or what is stale; empty when ok
    std::chrono::microseconds duration{0};
};

struct ResourceSnapshot {
    std::chrono::system_clock::time_point taken_at;
    double cpu_percent =
        0; // busy share of all cores (or of the cgroup's cpu.max quota) since the last sample
    std::vector<double> cpu_per_core_percent;
    CpuModesPercent cpu_modes;
    std::vector<CpuModesPercent> cpu_per_core_modes;
    // The cumulative counters of each core, for those (Prometheus) who compute rates themselves.
    std::vector<CpuTimes> cpu_core_times;
    long clock_ticks_per_second = 100;
    double cpu_capacity_cores = 0; // online cores, or the quota of a container's cpu.max when lower
    MemorySnapshot memory;
    bool memory_from_cgroup = false; // a container: total is its memory.max, used its memory.current
    SwapSnapshot swap;
    std::optional<double> swap_in_bytes_per_second; // absent on the first sample
    std::optional<double> swap_out_bytes_per_second;
    LoadAverage load;
    std::vector<DiskSnapshot> disks;       // real filesystems only, one per mount point
    std::vector<DiskIoSnapshot> disk_io;   // whole disks only
    std::vector<NetworkSnapshot> networks; // every interface but loopback
    std::vector<TemperatureReading> temperatures;
    std::optional<double> hottest_celsius; // nullopt when there is no sensor
    PressureSnapshot pressure;
    std::vector<ServiceSnapshot> services; // in the order of the targets
    std::vector<CollectorStatus> collectors;

    const CollectorStatus* collector(std::string_view name) const;
};

struct SamplerOptions {
    // How long a statvfs() may take before its mount is reported stale (a hung NFS server).
    std::chrono::milliseconds filesystem_deadline{1000};
    // PSS makes the kernel walk every mapping of a process, so a value is reused until it is this old.
    std::chrono::milliseconds pss_max_age{30'000};
    // The services' process trees come from a scan of every process of the machine at most this often; in
    // between only the processes of the trees already known are read. Zero scans every cycle.
    std::chrono::milliseconds process_rescan{10'000};
    // Threads the reads of per-process files are spread over; 0 for defaultSamplingWorkers(). More than one
    // shortens a cycle over many services on an idle machine, but lengthens it on a busy one, where every
    // extra thread waits for a core: hence one unless asked.
    unsigned workers = 1;
};

class FilesystemProber;

// Samples a SystemReader; CPU percentages and rates are relative to the previous call of sample().
// The first call measures CPU since boot and reports no rates.
// Every collector runs on its own: one that throws is reported in `collectors` as failed, leaves its part of
// the snapshot empty and keeps its previous baseline, and sample() goes on with the others.
// SystemReader::readFilesystemUsage runs on worker threads: it must be thread-safe, and a call that hangs
// may outlive the sampler, so the reader must not depend on the sampler.
class ResourceSampler {
  public:
    ResourceSampler(const SystemReader& reader, const Clock& clock, SamplerOptions options = {});
    ~ResourceSampler();
    ResourceSampler(const ResourceSampler&) = delete;
    ResourceSampler& operator=(const ResourceSampler&) = delete;

    ResourceSnapshot sample(const std::vector<ServiceSampleTarget>& services = {});

  private:
    using Instant = std::chrono::steady_clock::time_point;
    // A process is its pid and start time: a reused pid is another process.
    using ProcessKey = std::pair<pid_t, std::uint64_t>;

    struct PssEntry {
        std::optional<std::uint64_t> bytes;
        Instant read_at;
        bool seen = false;
    };

    void sampleCpu(ResourceSnapshot& snapshot, Instant now);
    void sampleMemory(ResourceSnapshot& snapshot);
    void sampleSwap(ResourceSnapshot& snapshot, Instant now);
    void sampleDisks(ResourceSnapshot& snapshot);
    void sampleDiskIo(ResourceSnapshot& snapshot, Instant now);
    void sampleNetwork(ResourceSnapshot& snapshot, Instant now);
    void sampleTemperatures(ResourceSnapshot& snapshot);
    void samplePressure(ResourceSnapshot& snapshot);
    void sampleServices(ResourceSnapshot& snapshot, const std::vector<ServiceSampleTarget>& services,
                        Instant now);

    const SystemReader& reader_;
    const Clock& clock_;
    SamplerOptions options_;
    std::unique_ptr<FilesystemProber> filesystems_;

    std::optional<CpuStat> previous_cpu_;
    std::optional<OwnCgroupLimits> cgroup_limits_; // of the last sample
    CounterRate container_cpu_usec_;
    CounterRateTable<std::string> swap_rates_;
    CounterRateTable<std::pair<std::string, int>> disk_rates_;
    CounterRateTable<std::pair<std::string, int>> network_rates_;
    CounterRateTable<std::pair<ProcessKey, int>> process_rates_;
    CounterRateTable<std::pair<std::string, int>> cgroup_rates_;
    std::unordered_map<ProcessKey, PssEntry, CounterKeyHash> pss_cache_;
    // The processes of the services' trees as the last full scan of /proc found them, the main pids they
    // were found for, and when it ran; all sorted.
    std::vector<pid_t> tree_members_;
    std::vector<pid_t> tree_roots_;
    std::optional<Instant> last_full_scan_;
    std::map<std::string, DiskSnapshot> last_disks_; // what a stale mount reports
};

// CPU usage of one process between two readings, in percent of one core.
double processCpuPercent(const ProcessStat& before, const ProcessStat& after,
                         std::chrono::duration<double> elapsed, long ticksPerSecond);

} // namespace tau
