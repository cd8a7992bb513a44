#include "tau/spawner.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <memory>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace tau {
namespace {

struct Credentials {
    uid_t uid;
    gid_t gid;
    // Looked up before the clone: the child must not call into NSS or malloc. Unset: keep ours.
    std::optional<std::vector<gid_t>> supplementary_groups;
};

std::optional<Credentials> resolveCredentials(const SpawnRequest& request) {
    if (request.user.empty() && request.group.empty()) {
        return std::nullopt;
    }
    Credentials credentials{getuid(), getgid(), std::nullopt};
    if (!request.user.empty()) {
        errno = 0;
        const passwd* pw = getpwnam(request.user.c_str());
        if (pw == nullptr) {
            throw SpawnError("unknown user '" + request.user + "'");
        }
        credentials.uid = pw->pw_uid;
        credentials.gid = pw->pw_gid;
        const std::string name = pw->pw_name;
        int count = 32;
        std::vector<gid_t> groups(static_cast<std::size_t>(count));
        while (getgrouplist(name.c_str(), credentials.gid, groups.data(), &count) < 0) {
            groups.resize(static_cast<std::size_t>(count));
        }
        groups.resize(static_cast<std::size_t>(count));
        credentials.supplementary_groups = std::move(groups);
    }
    if (!request.group.empty()) {
        const group* gr = getgrnam(request.group.c_str());
        if (gr == nullptr) {
            throw SpawnError("unknown group '" + request.group + "'");
        }
        credentials.gid = gr->gr_gid;
    }
    return credentials;
}

std::vector<std::string> buildEnvironment(const std::map<std::string, std::string>& overrides,
                                          const std::vector<std::string>& removed) {
    std::vector<std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view item(*entry);
        const auto eq = item.find('=');
        const std::string name(item.substr(0, eq));
        if (overrides.contains(name) || std::find(removed.begin(), removed.end(), name) != removed.end()) {
            continue;
        }
        env.emplace_back(item);
    }
    for (const auto& [key, value] : overrides) {
        env.push_back(key + "=" + value);
    }
    return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> result;
    result.reserve(strings.size() + 1);
    for (auto& s : strings) {
        result.push_back(s.data());
    }
    result.push_back(nullptr);
    return result;
}

// What the child needs, prepared before the clone so that the child allocates nothing.
struct ChildSetup {
    std::optional<cpu_set_t> affinity;
    std::string oom_score_adj; // the text to write to /proc/self/oom_score_adj
};

// The descriptors a child receives sit in these slots while it is cloned: a few numbers reserved low in the
// descriptor table, so that the child can give up the rest of the table it shares with us without copying
// it. A parent with thousands of open descriptors (a pidfd and two output pipes per service) would otherwise
// copy every one of them into each child and close them again at exec, on the path of every restart.
class DescriptorSlots {
  public:
    static constexpr std::size_t kCount = 8; // stdout, stderr, the cgroup and up to 5 passed descriptors

    static DescriptorSlots& instance() {
        static DescriptorSlots slots;
        return slots;
    }

    std::mutex& mutex() { return mutex_; }
    int slot(std::size_t index) const { return slots_[index]; }
    // The child keeps the descriptors below this number and nothing else.
    unsigned end() const { return end_; }
    char* stackTop() { return stack_.get() + kChildStack; }

    // Points the slots at `fds` (-1: leave it at /dev/null).
    void fill(const std::array<int, kCount>& fds) {
        for (std::size_t i = 0; i < kCount; ++i) {
            if (fds[i] >= 0 && dup3(fds[i], slots_[i], O_CLOEXEC) < 0) {
                const int saved = errno;
                clear();
                throw SpawnError(std::string("dup3: ") + std::strerror(saved));
            }
        }
    }
    // Drops our references to what the child received, so that a pipe sees EOF once the child is gone.
    void clear() {
        for (const int slot : slots_) {
            dup3(null_, slot, O_CLOEXEC);
        }
    }

  private:
    static constexpr std::size_t kChildStack = 256 * 1024;

    DescriptorSlots() : stack_(new char[kChildStack]) {
        null_ = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_ < 0) {
            throw SpawnError(std::string("/dev/null: ") + std::strerror(errno));
        }
        for (auto& slot : slots_) {
            slot = fcntl(null_, F_DUPFD_CLOEXEC, 3);
            if (slot < 0) {
                throw SpawnError(std::string("reserving a descriptor: ") + std::strerror(errno));
            }
            end_ = std::max(end_, static_cast<unsigned>(slot) + 1);
        }
    }

    std::mutex mutex_;
    std::unique_ptr<char[]> stack_; // one clone at a time, under mutex_
    int null_ = -1;
    std::array<int, kCount> slots_{};
    unsigned end_ = 3;
};

constexpr std::size_t kStdoutSlot = 0;
constexpr std::size_t kStderrSlot = 1;
constexpr std::size_t kCgroupSlot = 2;
constexpr std::size_t kFirstPassedSlot = 3;
constexpr std::size_t kMaxPassed = DescriptorSlots::kCount - kFirstPassedSlot;

struct ChildArguments {
    const DescriptorSlots* slots;
    const SpawnRequest* request;
    const ChildSetup* setup;
    const std::optional<Credentials>* credentials;
    char* const* argv;
    char* const* envp;
    // Written by a child that fails; it shares our memory, and we read them once it has exited.
    int failed_step = 0;
    int failed_errno = 0;
};

// Runs in the child between clone and exec, on our memory: only async-signal-safe calls, no allocation.
int childMain(void* argument) {
    auto& child = *static_cast<ChildArguments*>(argument);
    const auto& request = *child.request;
    const auto& slots = *child.slots;
    auto fail = [&child](int step) {
        child.failed_step = step;
        child.failed_errno = errno;
        _exit(127);
    };
    // A table of our own, holding only the descriptors below the slots' end: ours 0-2 and the slots.
    if (syscall(SYS_close_range, slots.end(), ~0U, CLOSE_RANGE_UNSHARE) < 0) {
        fail(10);
    }
    // Default dispositions first, while every signal is still blocked, then an empty mask.
    for (int sig = 1; sig < NSIG; ++sig) {
        signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (request.cgroup_procs_fd >= 0) {
        // "0" stands for the writing process: this child, not the parent whose memory it borrows.
        const ssize_t written = ::write(slots.slot(kCgroupSlot), "0", 1);
        if (written != 1) {
            if (written >= 0) {
                errno = EIO;
            }
            fail(9);
        }
    }
    if (setsid() < 0) {
        fail(1);
    }
    if (request.parent_death_signal != 0 && prctl(PR_SET_PDEATHSIG, request.parent_death_signal) < 0) {
        fail(11);
    }
    if (!request.working_directory.empty() && chdir(request.working_directory.c_str()) < 0) {
        fail(2);
    }
    if ((request.stdout_fd >= 0 && dup2(slots.slot(kStdoutSlot), STDOUT_FILENO) < 0) ||
        (request.stderr_fd >= 0 && dup2(slots.slot(kStderrSlot), STDERR_FILENO) < 0)) {
        fail(8);
    }
    if (request.output_read_write) {
        // Best effort: without /proc the pipe stays write-only, which only matters once the reader is gone.
        char path[] = "/proc/self/fd/N";
        for (const auto& [fd, given] :
             {std::pair{STDOUT_FILENO, request.stdout_fd}, std::pair{STDERR_FILENO, request.stderr_fd}}) {
            if (given < 0) {
                continue;
            }
            path[sizeof path - 2] = static_cast<char>('0' + fd);
            const int read_write = open(path, O_RDWR);
            if (read_write >= 0) {
                dup2(read_write, fd);
                close(read_write);
            }
        }
    }
    // Passed descriptors become 3, 4, ...: moved above every slot first, since a target may be a slot.
    const auto passed = request.pass_fds.size();
    for (std::size_t i = 0; i < passed; ++i) {
        if (dup3(slots.slot(kFirstPassedSlot + i), static_cast<int>(slots.end() + i), 0) < 0) {
            fail(8);
        }
    }
    for (std::size_t i = 0; i < passed; ++i) {
        if (dup2(static_cast<int>(slots.end() + i), static_cast<int>(3 + i)) < 0) {
            fail(8);
        }
    }
    syscall(SYS_close_range, static_cast<unsigned>(3 + passed), ~0U, 0);
    for (const auto& limit : request.rlimits) {
        const rlimit value{static_cast<rlim_t>(limit.soft), static_cast<rlim_t>(limit.hard)};
        if (setrlimit(static_cast<__rlimit_resource>(limit.resource), &value) < 0) {
            fail(6);
        }
    }
    const auto& setup = *child.setup;
    if (setup.affinity && sched_setaffinity(0, sizeof(cpu_set_t), &*setup.affinity) < 0) {
        fail(7);
    }
    if (request.nice) {
        setpriority(PRIO_PROCESS, 0, *request.nice);
    }
    if (!setup.oom_score_adj.empty()) {
        const int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            [[maybe_unused]] auto ignored = write(fd, setup.oom_score_adj.data(), setup.oom_score_adj.size());
            close(fd);
        }
    }
    if (request.umask) {
        ::umask(static_cast<mode_t>(*request.umask));
    }
    if (const auto& creds = *child.credentials) {
        if (creds->supplementary_groups &&
            setgroups(creds->supplementary_groups->size(), creds->supplementary_groups->data()) < 0) {
            fail(3);
        }
        if (setgid(creds->gid) < 0) {
            fail(3);
        }
        if (setuid(creds->uid) < 0) {
            fail(4);
        }
    }
    execve(child.argv[0], child.argv, child.envp);
    fail(5);
    return 127;
}

// The file behind a descriptor, for error messages: the cgroup.procs the caller opened.
std::string describeDescriptor(int fd) {
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    std::array<char, PATH_MAX> target{};
    const ssize_t length = ::readlink(link.c_str(), target.data(), target.size() - 1);
    if (length <= 0) {
        return "descriptor " + std::to_string(fd);
    }
    return std::string(target.data(), static_cast<std::size_t>(length));
}

} // namespace

std::string ExitStatus::describe() const {
    if (!known) {
        return "ended (exit status unknown: not a child of this tau-monitor)";
    }
    if (signal != 0) {
        return "killed by " + signalName(signal) + (core_dumped ? " (core dumped)" : "");
    }
    return "exited with status " + std::to_string(exit_code);
}

SpawnedProcess spawnProcess(const SpawnRequest& request) {
    if (request.argv.empty()) {
        throw SpawnError("empty argv");
    }
    const auto credentials = resolveCredentials(request);
    ChildSetup setup;
    if (!request.cpu_affinity.empty()) {
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        for (const unsigned cpu : request.cpu_affinity) {
            CPU_SET(cpu, &cpus);
        }
        setup.affinity = cpus;
    }
    if (request.oom_score_adj) {
        setup.oom_score_adj = std::to_string(*request.oom_score_adj);
    }
    std::vector<std::string> argv_strings = request.argv;
    std::vector<std::string> env_strings = buildEnvironment(request.environment, request.unset_environment);
    auto argv = pointers(argv_strings);
    auto envp = pointers(env_strings);

    if (request.pass_fds.size() > kMaxPassed) {
        throw SpawnError("cannot pass more than " + std::to_string(kMaxPassed) + " descriptors");
    }
    std::array<int, DescriptorSlots::kCount> received;
    received.fill(-1);
    received[kStdoutSlot] = request.stdout_fd;
    received[kStderrSlot] = request.stderr_fd;
    received[kCgroupSlot] = request.cgroup_procs_fd;
    std::copy(request.pass_fds.begin(), request.pass_fds.end(), received.begin() + kFirstPassedSlot);

    auto& slots = DescriptorSlots::instance();
    std::lock_guard lock(slots.mutex());
    slots.fill(received);
    // The child shares our memory and, until its first step, our descriptor table (CLONE_VM | CLONE_VFORK,
    // as posix_spawn does): no page tables or descriptors to copy, no copy-on-write faults afterwards, and
    // the pidfd comes with the clone itself. We go on once it has exec'd or failed. Signals stay blocked
    // around it so that no handler of ours runs on the child's borrowed memory.
    ChildArguments child{&slots, &request, &setup, &credentials, argv.data(), envp.data()};
    sigset_t all;
    sigset_t previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int pidfd = -1;
    const pid_t pid = clone(childMain, slots.stackTop(),
                            CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | SIGCHLD, &child, &pidfd);
    const int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    slots.clear();
    if (pid < 0) {
        throw SpawnError(std::string("clone: ") + std::strerror(clone_errno));
    }

    if (child.failed_step != 0) {
        waitpid(pid, nullptr, 0);
        if (pidfd >= 0) {
            close(pidfd);
        }
        static constexpr const char* steps[] = {"",
                                                "setsid",
                                                "chdir to working directory",
                                                "set group",
                                                "set user",
                                                "exec",
                                                "set resource limits for",
                                                "set CPU affinity for",
                                                "redirect output of",
                                                "move into cgroup",
                                                "close the descriptors of",
                                                "set the parent death signal of"};
        const int step = child.failed_step >= 1 && child.failed_step <= 11 ? child.failed_step : 5;
        std::string subject = request.argv[0];
        if (step == 2) {
            subject = request.working_directory.string();
        } else if (step == 9) {
            subject = describeDescriptor(request.cgroup_procs_fd);
        }
        throw SpawnError(std::string(steps[step]) + " '" + subject +
                         "': " + std::strerror(child.failed_errno));
    }
    return SpawnedProcess{pid, pidfd};
}

std::optional<ExitStatus> reapPidfd(int pidfd) {
    siginfo_t info{};
    if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) < 0) {
        // ECHILD: not our child (its parent reaps it), or reaped already. A readable pidfd says it is gone.
        if (errno == ECHILD) {
            pollfd readable{pidfd, POLLIN, 0};
            if (poll(&readable, 1, 0) != 1) {
                return std::nullopt;
            }
            ExitStatus unknown;
            unknown.known = false;
            return unknown;
        }
        return std::nullopt;
    }
    if (info.si_pid == 0) {
        return std::nullopt;
    }
    ExitStatus status;
    if (info.si_code == CLD_EXITED) {
        status.exit_code = info.si_status;
    } else {
        status.signal = info.si_status;
        status.core_dumped = info.si_code == CLD_DUMPED;
    }
    return status;
}

bool signalPidfd(int pidfd, int signal) {
    return syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) == 0;
}

bool signalProcessGroup(pid_t pgid, int signal) {
    return pgid > 0 && kill(-pgid, signal) == 0;
}

std::string signalName(int signal) {
    const char* abbrev = sigabbrev_np(signal);
    if (abbrev == nullptr) {
        return "signal " + std::to_string(signal);
    }
    return std::string("SIG") + abbrev;
}

} // namespace tau
