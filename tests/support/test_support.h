#pragma once
// Helpers for tests that run real processes: temporary directories, commands with captured output, bounded
// waiting, and a running tau-monitor on its own private bus.

#include "temp_dir.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau::test {

struct CommandResult {
    int exit_code = -1; // -1 when killed or timed out
    std::string out;
    std::string err;
};

// Runs argv[0] (a path, or a name looked up in PATH) with the environment of this process plus `env`
// (an empty value unsets the variable), kills it by its PID when `timeout` passes.
CommandResult runCommand(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Polls `condition` until it holds or `timeout` passes.
bool waitUntil(const std::function<bool()>& condition,
               std::chrono::milliseconds timeout = std::chrono::seconds(20));

bool processExists(pid_t pid);

// Starts argv[0] as runCommand does, with stdin from /dev/null and stdout and stderr on the descriptors
// given, and returns without waiting. Throws when it cannot be run.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env, int out_fd,
            int err_fd);
int pidfdOpen(pid_t pid); // pidfd_open(2), -1 on failure
// Waits for the child behind `pidfd` to exit within `timeout` and reaps it; its wait status or nullopt.
std::optional<int> waitExit(pid_t pid, int pidfd, std::chrono::milliseconds timeout);
int exitCodeOf(int status); // -1 when killed by a signal

std::string daemonBinary(); // the built tau-monitor
std::string cliBinary();    // the built tau-monitor-cli

// A tau-monitor root process on its own private bus, in its own runtime directory; ended by its PID.
class RunningDaemon {
  public:
    // `config_toml` is written to <dir>/tau-monitor.toml; "@DIR@" in it stands for the temporary directory.
    explicit RunningDaemon(const std::string& config_toml, std::vector<std::string> extra_args = {});
    ~RunningDaemon();
    RunningDaemon(const RunningDaemon&) = delete;
    RunningDaemon& operator=(const RunningDaemon&) = delete;

    // Waits until the five names answer; false on timeout or when the daemon exited.
    bool waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(20));

    pid_t pid() const { return pid_; }
    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path runtimeDir() const { return dir_.path() / "rt"; }
    std::string busAddress() const;
    // The environment that points clients at this daemon and away from the machine's buses.
    std::map<std::string, std::string> clientEnv() const;

    CommandResult cli(const std::vector<std::string>& args) const;
    CommandResult busctl(const std::vector<std::string>& args) const;

    // Sends SIGTERM and waits for the exit; returns the exit status (or -1).
    int terminate(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    std::string output() const; // what the daemon printed so far, over every launch

    // SIGKILL, as a crash would end it, and waits for the exit; false on timeout.
    bool killHard();
    // Starts the daemon again, in the same directory with the same arguments, once it has exited.
    void relaunch();

  private:
    void launch();

    std::vector<std::string> argv_;
    TempDir dir_;
    pid_t pid_ = 0;
    int pidfd_ = -1;
    std::optional<int> exit_status_;
};

} // namespace tau::test
