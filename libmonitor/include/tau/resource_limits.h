#pragma once
// Memory and CPU limits of services where no delegated cgroup v2 exists: the process trees are measured
// from /proc and a service that stays over a limit is reported, for the caller to kill and recover.

#include <chrono>
#include <cstdint>
#include <dirent.h>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <unordered_map>
#include <vector>

namespace tau {

struct ProcessCpuSample {
    pid_t pid = 0;
    std::uint64_t start_time_ticks = 0; // tells a process from a later one with the same pid
    std::uint64_t cpu_ticks = 0;        // utime + stime
};

// One service's process tree: the main process and all its descendants alive at sampling time.
struct ProcessTreeSample {
    pid_t root = 0;
    bool found = false; // false: the root was not in /proc
    std::uint64_t rss_bytes = 0;
    std::uint64_t cpu_ticks = 0;
    std::vector<ProcessCpuSample> processes; // sorted by pid
};

// Measures process trees with one pass over /proc per round, reading each /proc/<pid>/stat once. Built to
// run every few seconds for a thousand services: plain open/read into a stack buffer and readdir, and
// buffers that are kept from round to round rather than allocated per process.
class ProcessTreeSampler {
  public:
    explicit ProcessTreeSampler(std::filesystem::path procRoot = "/proc");
    ~ProcessTreeSampler();
    ProcessTreeSampler(const ProcessTreeSampler&) = delete;
    ProcessTreeSampler& operator=(const ProcessTreeSampler&) = delete;

    // Fills `trees[i]` with the tree of `roots[i]`; pass the same vector every round so that its buffers
    // are reused. A process counts towards its nearest ancestor among `roots`; a root listed twice is
    // counted at its first place only. RSS is summed per process,
    // as ps shows it: pages shared between processes of a tree count once for each of them.
    // Throws ProcReadError (tau/procfs.h) when the proc root itself cannot be listed.
    void sample(const std::vector<pid_t>& roots, std::vector<ProcessTreeSample>& trees);

  private:
    struct ProcessEntry {
        pid_t pid;
        pid_t ppid;
        std::uint64_t start_time_ticks;
        std::uint64_t cpu_ticks;
        std::uint64_t rss_pages;
    };

    void scan();
    int treeOf(std::size_t entry);
    std::optional<std::size_t> indexOf(pid_t pid) const;

    std::filesystem::path proc_;
    DIR* directory_ = nullptr;
    std::uint64_t page_size_;
    std::vector<ProcessEntry> entries_;
    std::vector<int> tree_of_entry_;
    std::vector<std::size_t> chain_;
};

struct ResourceLimits {
    std::optional<std::uint64_t> memory_bytes;
    std::optional<double> cpu_percent; // of one CPU, as systemd's CPUQuota= (150 = one and a half CPUs)
};

struct ResourceViolation {
    enum class Kind { Memory, Cpu };
    Kind kind = Kind::Memory;
    pid_t main_pid = 0;
    // "memory 612 MiB over its limit of 512 MiB for 3 samples", "CPU 187 % over its limit of 50 % for 3
    // samples"
    std::string detail;
};

// Decides, sample by sample, when a service has been over a limit long enough to be stopped. Pure logic:
// the caller supplies the samples and their times.
//
// CPU usage is the tick delta per process between two samples of the same tree, so that a child exiting
// (and taking its ticks out of the tree's total) never makes the usage look lower, let alone negative. A
// process absent from the previous sample (by pid and start time) was born since and counts with all its
// ticks; a process that exited since counts with nothing for its last interval, which errs on the side of
// not killing.
class ResourceLimitWatcher {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    // `consecutive_samples`: how many samples in a row must be over a limit (at least 1).
    // `ticks_per_second`: the unit of the CPU ticks in the samples; 0 asks sysconf(_SC_CLK_TCK).
    explicit ResourceLimitWatcher(unsigned consecutive_samples = 3, long ticks_per_second = 0);

    // Takes one sample of `service`, whose main process is `main_pid`, taken at `at`; CPU usage comes from
    // `tree->processes`. `tree` is null (or not found) when there is no data this round, e.g. because the
    // process is gone: that counts neither for nor against the service, and neither does a sample whose
    // time is not after the previous one. A new `main_pid` (a restart) starts the service afresh; new limits
    // restart the counts. Returns the violation once a limit has been exceeded (strictly over) for
    // `consecutive_samples` samples in a row, memory first if both are; after that the service is not
    // reported again until its main pid changes.
    std::optional<ResourceViolation> observe(const std::string& service, const ResourceLimits& limits,
                                             pid_t main_pid, const ProcessTreeSample* tree, TimePoint at);

    // Drops what is remembered of a service that no longer exists.
    void forget(const std::string& service);

    // The CPU usage computed from the last two samples, in percent of one CPU; nullopt before there are two.
    std::optional<double> lastCpuPercent(const std::string& service) const;

  private:
    struct ServiceState {
        pid_t main_pid = 0;
        ResourceLimits limits;
        bool reported = false;
        unsigned memory_over = 0;
        unsigned cpu_over = 0;
        std::optional<double> cpu_percent;
        std::optional<TimePoint> previous_at;
        std::vector<ProcessCpuSample> previous_processes;
    };

    unsigned consecutive_samples_;
    double ticks_per_second_;
    std::unordered_map<std::string, ServiceState> services_;
};

} // namespace tau
