#pragma once
// Starting and reaping child processes through pidfds: an exit wakes a poll loop at once, and a pidfd
// cannot be confused with a later process that reuses the PID.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau {

struct SpawnRequest {
    std::vector<std::string> argv;                  // argv[0] is the absolute path of the executable
    std::map<std::string, std::string> environment; // set on top of the inherited environment
    std::vector<std::string> unset_environment;     // inherited variables the child must not see
    std::filesystem::path working_directory;        // empty: inherit
    std::string user;  // empty: keep the current user; otherwise switch to it (and its groups)
    std::string group; // empty: the user's primary group
    std::optional<unsigned> umask;
    // Best effort: raising priority (a negative nice, a negative oom_score_adj) needs privileges the daemon
    // may not have, and a service is better started at the default than not at all.
    std::optional<int> nice;
    std::optional<int> oom_score_adj;
    std::vector<unsigned> cpu_affinity; // empty: inherit
    struct Limit {
        int resource = 0; // RLIMIT_*
        std::uint64_t soft = 0;
        std::uint64_t hard = 0;
    };
    std::vector<Limit> rlimits;
    int stdout_fd = -1; // -1: inherit
    int stderr_fd = -1; // -1: inherit
    // stdout_fd and stderr_fd (pipes) are reopened for reading and writing in the child, so that it holds a
    // reader of its own and never gets SIGPIPE while nobody else reads them.
    bool output_read_write = false;
    // An open cgroup.procs of the cgroup the child must run in (ServiceCgroups::group()); -1: stay in ours.
    // The child moves itself before it drops privileges, so the file need only be writable by the daemon,
    // and before exec, so that nothing the service does escapes the cgroup's limits.
    int cgroup_procs_fd = -1;
    // Descriptors the child receives as 3, 4, ... in this order (at most 5); every other descriptor of ours
    // is closed in the child.
    std::vector<int> pass_fds;
    // Sent to the child when this process dies (PR_SET_PDEATHSIG); 0: none.
    int parent_death_signal = 0;
};

struct SpawnedProcess {
    pid_t pid = 0;
    int pidfd = -1; // owned by the caller; readable once the process has exited
};

struct ExitStatus {
    int exit_code = -1; // -1 when killed by a signal
    int signal = 0;     // 0 when it exited
    bool core_dumped = false;
    // False for a process that was not our child (adopted from an earlier supervisor): the kernel tells
    // only its parent how it ended.
    bool known = true;

    bool success() const { return known && signal == 0 && exit_code == 0; }
    std::string describe() const; // "exited with status 3", "killed by SIGKILL"
};

class SpawnError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Forks and execs in a new session (so the service and its children form one process group). The child gets
// our descriptors 0-2 (or stdout_fd and stderr_fd) and pass_fds, nothing else.
// Throws SpawnError when the user is unknown, fork fails, the child cannot join its cgroup or exec fails,
// with the reason.
SpawnedProcess spawnProcess(const SpawnRequest& request);

// Reaps the process behind `pidfd` if it has exited; nullopt while it still runs.
std::optional<ExitStatus> reapPidfd(int pidfd);

// Sends a signal to the process through its pidfd; false if it is already gone.
bool signalPidfd(int pidfd, int signal);

// Sends a signal to a whole process group; false if the group is empty.
bool signalProcessGroup(pid_t pgid, int signal);

std::string signalName(int signal); // "SIGKILL"; "signal 64" for unnamed ones

} // namespace tau
