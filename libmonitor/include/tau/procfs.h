#pragma once
// Readers of /proc and /sys. Everything reads below a root directory, so tests point them at a fake tree.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <unordered_map>
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

// The swap counters of /proc/vmstat, in pages since boot.
struct VmStat {
    std::uint64_t swap_in_pages = 0;  // pswpin
    std::uint64_t swap_out_pages = 0; // pswpout
};

// One line of /proc/diskstats; sectors there are always 512 bytes, whatever the device uses.
struct DiskStatCounters {
    std::string device;
    std::uint64_t reads_completed = 0;
    std::uint64_t sectors_read = 0;
    std::uint64_t writes_completed = 0;
    std::uint64_t sectors_written = 0;
    std::uint64_t io_ticks_ms = 0; // time the device had at least one request in flight
};

inline constexpr std::uint64_t kDiskStatSectorBytes = 512;

// One line of a /proc/pressure file: the share of wall time some (or all) tasks were stalled.
struct PressureStall {
    double avg10 = 0, avg60 = 0, avg300 = 0; // percent
    std::uint64_t total_usec = 0;
};

struct PressureInfo {
    std::optional<PressureStall> some;
    std::optional<PressureStall> full; // absent for cpu on kernels before 5.13
};

enum class PressureResource { cpu, memory, io };
std::string_view toString(PressureResource resource);

struct TemperatureReading {
    std::string sensor; // the thermal zone type, or "<hwmon name> <label or tempN>"
    double celsius = 0;
};

// Bytes a process made the block layer fetch or send, from /proc/<pid>/io.
struct ProcessIo {
    std::uint64_t read_bytes = 0;
    std::uint64_t write_bytes = 0;
};

// What a cgroup v2 directory says about the processes in it; a file that cannot be read stays absent.
struct CgroupUsage {
    std::optional<std::uint64_t> cpu_usage_usec;       // cpu.stat usage_usec
    std::optional<std::uint64_t> memory_current_bytes; // memory.current
    std::optional<std::uint64_t> pids_current;         // pids.current
    std::optional<std::uint64_t> io_read_bytes;        // io.stat rbytes of every device
    std::optional<std::uint64_t> io_write_bytes;       // io.stat wbytes of every device
    std::optional<std::vector<pid_t>> processes;       // cgroup.procs
};

// The tightest limits on the calling process's own cgroup v2 directory and its ancestors, as a container
// sees them.
struct OwnCgroupLimits {
    std::optional<std::uint64_t> memory_max_bytes;
    std::uint64_t memory_current_bytes = 0; // of the directory that sets memory_max_bytes
    std::uint64_t memory_inactive_file_bytes = 0;
    std::optional<double> cpu_limit_cores; // cpu.max quota / period
    std::optional<std::filesystem::path> cpu_limit_directory;
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

    virtual VmStat readVmStat() const = 0;
    virtual std::vector<DiskStatCounters> readDiskStats() const = 0;
    // A disk rather than a partition or a device-mapper piece of one: it has a /sys/block entry.
    virtual bool isWholeDiskDevice(const std::string& device) const = 0;
    // nullopt when the kernel has no pressure stall information.
    virtual std::optional<PressureInfo> readPressure(PressureResource resource) const = 0;
    // Every thermal zone and hwmon sensor that gives a reading; empty when the machine exposes none.
    virtual std::vector<TemperatureReading> readTemperatures() const = 0;
    // nullopt when the process is gone or its counters are not ours to read.
    virtual std::optional<ProcessIo> readProcessIo(pid_t pid) const = 0;
    // The proportional set size from /proc/<pid>/smaps_rollup; expensive, the kernel walks every mapping.
    virtual std::optional<std::uint64_t> readProcessPss(pid_t pid) const = 0;
    virtual std::optional<std::uint64_t> countOpenFds(pid_t pid) const = 0;
    virtual CgroupUsage readCgroupUsage(const std::filesystem::path& directory) const = 0;
    // nullopt outside a cgroup v2 hierarchy.
    virtual std::optional<OwnCgroupLimits> readOwnCgroupLimits() const = 0;
};

// Thrown when a file that must exist cannot be read or parsed; names the file.
class ProcReadError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class ProcFsReader final : public SystemReader {
  public:
    // Measures a mount point; statvfs() unless a test brings its own (one that blocks, say).
    using FilesystemUsageFunction =
        std::function<std::optional<FilesystemUsage>(const std::string& mountPoint)>;

    // On a real procfs the stat and io files of processes are kept open and re-read from the start, which
    // costs the kernel about half of opening them anew each time: with a thousand services that is most of a
    // sampling cycle. `keptOpenProcessFiles` bounds how many descriptors that may hold; by default a quarter
    // of the soft RLIMIT_NOFILE at construction. 0 turns it off.
    explicit ProcFsReader(std::filesystem::path procRoot = "/proc", std::filesystem::path sysRoot = "/sys",
                          FilesystemUsageFunction filesystemUsage = {},
                          std::optional<std::size_t> keptOpenProcessFiles = std::nullopt);

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
    VmStat readVmStat() const override;
    std::vector<DiskStatCounters> readDiskStats() const override;
    bool isWholeDiskDevice(const std::string& device) const override;
    std::optional<PressureInfo> readPressure(PressureResource resource) const override;
    std::vector<TemperatureReading> readTemperatures() const override;
    std::optional<ProcessIo> readProcessIo(pid_t pid) const override;
    std::optional<std::uint64_t> readProcessPss(pid_t pid) const override;
    std::optional<std::uint64_t> countOpenFds(pid_t pid) const override;
    CgroupUsage readCgroupUsage(const std::filesystem::path& directory) const override;
    // The cgroup hierarchy is looked for at <sys root>/fs/cgroup.
    std::optional<OwnCgroupLimits> readOwnCgroupLimits() const override;

    // How many process files are held open right now.
    std::size_t keptOpenProcessFiles() const;
    // The cgroup v2 directory of a process ("self" or a pid), below <sys root>/fs/cgroup; nullopt without
    // a cgroup v2 membership. Seen from a cgroup namespace whose path leads above the visible root: the
    // root.
    std::optional<std::filesystem::path> cgroupDirectoryOf(const std::string& process) const;

  private:
    std::filesystem::path pidPath(pid_t pid, const char* file) const;
    std::optional<std::string> readProcessFile(pid_t pid, const char* file) const;

    std::filesystem::path proc_;
    std::filesystem::path sys_;
    FilesystemUsageFunction filesystem_usage_;
    std::shared_ptr<class ProcessFileCache> process_files_; // null when nothing is kept open
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

// Runs work(0) ... work(count - 1) on up to `workers` threads, the caller's included; returns when all are
// done, and then rethrows the first exception `work` threw, if any.
void forEachInParallel(std::size_t count, unsigned workers, const std::function<void(std::size_t)>& work);

// How many threads spreading the reads of /proc is worth: the cores, at most 4.
unsigned defaultSamplingWorkers();

// Every process of the machine from one scan of /proc, so that the trees of many services cost one pass.
class ProcessTable {
  public:
    // With several workers the stat files are read on as many threads (the reader must be thread-safe, as
    // ProcFsReader is); the table is the same.
    static ProcessTable scan(const SystemReader& reader, unsigned workers = 1);
    // Only these processes (those still there): far cheaper than a scan when they are a small part of the
    // machine, but blind to processes started since they were found.
    static ProcessTable scanOf(const SystemReader& reader, const std::vector<pid_t>& pids,
                               unsigned workers = 1);

    const ProcessStat* find(pid_t pid) const;
    // Like processTree(): `root` first, then its descendants breadth first; empty when `root` is gone.
    std::vector<pid_t> treeOf(pid_t root) const;
    std::size_t size() const { return processes_.size(); }

  private:
    static ProcessTable of(const SystemReader& reader, const std::vector<pid_t>& pids, unsigned workers);

    std::unordered_map<pid_t, ProcessStat> processes_;
    std::unordered_map<pid_t, std::vector<pid_t>> children_; // sorted
};

} // namespace tau
