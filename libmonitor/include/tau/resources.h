#pragma once
// Turns raw counters into a snapshot of the machine: percentages and rates between two samples.

#include "tau/clock.h"
#include "tau/procfs.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tau {

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
};

struct NetworkSnapshot {
    std::string interface;
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_bytes = 0;
    double rx_bytes_per_second = 0; // 0 on the first sample and after a counter reset
    double tx_bytes_per_second = 0;
    std::uint64_t rx_errors = 0, tx_errors = 0, rx_drops = 0, tx_drops = 0;
};

struct ResourceSnapshot {
    std::chrono::system_clock::time_point taken_at;
    double cpu_percent = 0; // busy share of all cores since the previous sample
    std::vector<double> cpu_per_core_percent;
    MemorySnapshot memory;
    SwapSnapshot swap;
    LoadAverage load;
    std::vector<DiskSnapshot> disks;       // real filesystems only, one per mount point
    std::vector<NetworkSnapshot> networks; // every interface but loopback
};

// Samples a SystemReader; CPU percentages and rates are relative to the previous call of sample().
// The first call measures CPU since boot and reports zero rates.
class ResourceSampler {
  public:
    ResourceSampler(const SystemReader& reader, const Clock& clock);

    ResourceSnapshot sample();

  private:
    const SystemReader& reader_;
    const Clock& clock_;
    std::optional<CpuStat> previous_cpu_;
    std::vector<NetDevCounters> previous_net_;
    std::chrono::steady_clock::time_point previous_at_;
};

// A simple high-water alarm with hysteresis: enters at `limit`, leaves below `limit - hysteresis`.
class ThresholdState {
  public:
    ThresholdState(double limit, double hysteresis);

    // Returns true when the state changed with this value.
    bool update(double value);
    bool exceeded() const { return exceeded_; }
    double limit() const { return limit_; }

  private:
    double limit_;
    double hysteresis_;
    bool exceeded_ = false;
};

// CPU usage of one process between two readings, in percent of one core.
double processCpuPercent(const ProcessStat& before, const ProcessStat& after,
                         std::chrono::duration<double> elapsed, long ticksPerSecond);

} // namespace tau
