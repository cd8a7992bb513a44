#pragma once
// Readers of /proc and /sys. Everything reads below a root directory, so tests point them at a fake tree.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau {

// Cumulative jiffies of one CPU line of /proc/stat.
struct CpuTimes {
    std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;

    std::uint64_t idleAll() const { return idle + iowait; }
    std::uint64_t total() const { return user + nice + system + idle + iowait + irq + softirq + steal; }
};

struct CpuStat {
    CpuTimes total;
    std::vector<CpuTimes> cores; // cpu0, cpu1, ... in order
};

struct MemInfo {
    std::uint64_t total_bytes = 0;
    std::uint64_t free_bytes = 0;
    std::uint64_t available_bytes = 0; // MemAvailable
    std::uint64_t swap_total_bytes = 0;
    std::uint64_t swap_free_bytes = 0;
};

struct LoadAverage {
    double one = 0, five = 0, fifteen = 0;
};

struct NetDevCounters {
    std::string interface;
    std::uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_drops = 0;
    std::uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_drops = 0;
};

struct MountEntry {
    std::string device;
    std::string mount_point;
    std::string fstype;
};

struct FilesystemUsage {
    std::uint64_t total_bytes = 0;
    std::uint64_t free_bytes = 0;      // including the part reserved for root
    std::uint64_t available_bytes = 0; // what an unprivileged user may still write
    std::uint64_t inodes_total = 0;
    std::uint64_t inodes_free = 0;
};

// One line of /proc/<pid>/stat plus what /proc/<pid>/status adds.
struct ProcessStat {
    pid_t pid = 0;
    pid_t ppid = 0;
    std::string comm;
    char state = '?';
    std::uint64_t utime_ticks = 0;
    std::uint64_t stime_ticks = 0;
    std::uint64_t start_time_ticks = 0; // since boot
    unsigned num_threads = 0;
    std::uint64_t rss_bytes = 0;
};

// The interface the samplers use; ProcFsReader is the real one, tests bring fakes or a fake tree.
class SystemReader {
  public:
    virtual ~SystemReader() = default;
    virtual CpuStat readCpuStat() const = 0;
    virtual MemInfo readMemInfo() const = 0;
    virtual LoadAverage readLoadAverage() const = 0;
    virtual std::vector<NetDevCounters> readNetDev() const = 0;
    virtual std::vector<MountEntry> readMounts() const = 0;
    virtual std::optional<FilesystemUsage> readFilesystemUsage(const std::string& mountPoint) const = 0;
    // nullopt when the process is gone.
    virtual std::optional<ProcessStat> readProcessStat(pid_t pid) const = 0;
    virtual std::vector<pid_t> listPids() const = 0;
    // The interface named by the default route in /proc/net/route, if any.
    virtual std::optional<std::string> defaultRouteInterface() const = 0;
    // /sys/class/net/<iface>/operstate, e.g. "up".
    virtual std::optional<std::string> interfaceOperState(const std::string& interface) const = 0;
    virtual long clockTicksPerSecond() const = 0;
};

// Thrown when a file that must exist cannot be read or parsed; names the file.
class ProcReadError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class ProcFsReader final : public SystemReader {
  public:
    explicit ProcFsReader(std::filesystem::path procRoot = "/proc", std::filesystem::path sysRoot = "/sys");

    CpuStat readCpuStat() const override;
    MemInfo readMemInfo() const override;
    LoadAverage readLoadAverage() const override;
    std::vector<NetDevCounters> readNetDev() const override;
    std::vector<MountEntry> readMounts() const override;
    std::optional<FilesystemUsage> readFilesystemUsage(const std::string& mountPoint) const override;
    std::optional<ProcessStat> readProcessStat(pid_t pid) const override;
    std::vector<pid_t> listPids() const override;
    std::optional<std::string> defaultRouteInterface() const override;
    std::optional<std::string> interfaceOperState(const std::string& interface) const override;
    long clockTicksPerSecond() const override;

  private:
    std::filesystem::path proc_;
    std::filesystem::path sys_;
};

// A field of /proc/mounts or mountinfo as it was before the kernel escaped blanks, newlines and backslashes
// (a backslash and three octal digits).
std::string unescapeMountField(std::string_view field);

// Filesystems that hold no user data (proc, sysfs, tmpfs, overlay layers of nothing, ...).
bool isPseudoFilesystem(const std::string& fstype);

// The parent of `pid`; 0 when the process is gone.
pid_t parentPid(const SystemReader& reader, pid_t pid);

// The pids of `root` and all its descendants, `root` first, built from the ppid of every process.
std::vector<pid_t> processTree(const SystemReader& reader, pid_t root);

} // namespace tau
