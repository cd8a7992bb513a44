#pragma once
// Per-service memory and CPU limits through a delegated cgroup v2 subtree.
//
// Layout below the daemon's own (delegated) cgroup:
//   <own>/supervisor        the daemon itself: cgroup v2 lets a cgroup either hold processes or hand
//                           controllers to its children, never both ("no internal processes")
//   <own>/services/<name>   one cgroup per service, with memory.max and cpu.max

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau {

// A cgroup file could not be read or written; the message names the file and the errno text.
class CgroupError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Where detection looks. Mount points found in <proc>/self/mountinfo are resolved below `filesystem`, so
// that tests can stage a whole fake tree in a temporary directory.
struct CgroupRoots {
    std::filesystem::path proc = "/proc";
    std::filesystem::path filesystem = "/";
};

struct CgroupDetection {
    std::filesystem::path directory; // the daemon's own cgroup, when usable
    std::string unusable_reason;     // empty when usable

    bool usable() const { return unusable_reason.empty(); }
};

// Finds the cgroup v2 directory of the calling process and checks that limits can be enforced below it:
// it must be writable and offer the memory and cpu controllers. Never throws; an unusable result says why
// ("no cgroup2 mount", "... bound to cgroup v1 (hybrid hierarchy)", "... is not writable", ...).
// Call it before ServiceCgroups::prepare(), which moves the process into a leaf below that directory.
CgroupDetection detectDelegatedCgroup(const CgroupRoots& roots = {});

// An open, close-on-exec, write-only descriptor of a service cgroup's cgroup.procs, for
// SpawnRequest::cgroup_procs_fd. Closed on destruction.
class CgroupProcsFd {
  public:
    CgroupProcsFd() = default;
    explicit CgroupProcsFd(int fd) : fd_(fd) {}
    ~CgroupProcsFd();
    CgroupProcsFd(CgroupProcsFd&& other) noexcept : fd_(other.release()) {}
    CgroupProcsFd& operator=(CgroupProcsFd&& other) noexcept;
    CgroupProcsFd(const CgroupProcsFd&) = delete;
    CgroupProcsFd& operator=(const CgroupProcsFd&) = delete;

    int get() const { return fd_; }
    int release() {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }

  private:
    int fd_ = -1;
};

// The per-service cgroups below a delegated directory (CgroupDetection::directory). Service names become
// path components: empty names, "." and "..", and names containing '/' are refused with
// std::invalid_argument. Failed file operations throw CgroupError.
class ServiceCgroups {
  public:
    static constexpr std::uint64_t kCpuPeriodMicroseconds = 100'000;
    // The kernel refuses a smaller cpu.max quota; lower limits are raised to it (1 % of one CPU).
    static constexpr std::uint64_t kMinimumCpuQuotaMicroseconds = 1'000;

    explicit ServiceCgroups(std::filesystem::path delegated);

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path serviceDirectory(const std::string& service) const;

    // Moves the calling process into <own>/supervisor, then enables +memory +cpu in <own> and in
    // <own>/services. Only the calling process moves: a cgroup that also holds processes the daemon does
    // not own (a login shell, say) is not ours to rearrange, so enabling fails there, the process moves
    // back and the CgroupError names the other processes. Safe to call again.
    void prepare();

    // Creates the service's cgroup if needed and opens its cgroup.procs for the spawner.
    CgroupProcsFd group(const std::string& service);

    // Writes memory.max and cpu.max; nullopt means no limit ("max"). `cpu_percent` is a share of one CPU,
    // as systemd's CPUQuota= (150 = one and a half CPUs). When the kernel accounts swap (memory.swap.max
    // exists), a memory limit also sets memory.swap.max to 0, so that the limit bounds what the service
    // holds rather than what it keeps in RAM: otherwise a leaking service is pushed into swap and slows the
    // whole machine down long before it meets its limit, instead of being stopped by the OOM killer.
    void setLimits(const std::string& service, std::optional<std::uint64_t> memory_bytes,
                   std::optional<double> cpu_percent);

    // How many processes of the service the OOM killer has ended (oom_kill of memory.events); 0 on
    // kernels that do not count them.
    std::uint64_t oomKills(const std::string& service) const;

    // The processes in the service's cgroup (cgroup.procs).
    std::vector<pid_t> processes(const std::string& service) const;

    // Removes the service's cgroup: true once it is gone (also when it never existed), false while it
    // still holds processes.
    bool remove(const std::string& service);

  private:
    std::filesystem::path root_;
};

} // namespace tau
