#pragma once
// The real ProcessLauncher: forks through the spawner and turns each captured line of a service's stdout and
// stderr into a call of `on_line`, from the loop, without ever blocking on a pipe.
//
// Output goes through named FIFOs, <directory>/<service>.<pid>.stdout and .stderr, which the service holds
// open for reading and writing: when the supervisor dies its services do not get SIGPIPE on their next line,
// what they write meanwhile waits in the FIFO (until it is full), and the next supervisor reads on from the
// same FIFOs when it adopts them.

#include "supervisor.h"
#include "tau/event_loop.h"

#include <filesystem>
#include <functional>
#include <map>
#include <string>

namespace tau {

enum class OutputStream { Stdout, Stderr };
std::string_view toString(OutputStream stream); // "stdout", "stderr"

class OutputCapturingLauncher final : public ProcessLauncher {
  public:
    using LineHandler =
        std::function<void(const std::string& service, pid_t pid, OutputStream stream, std::string line)>;

    // `directory` holds the FIFOs; it is created if need be (a spawn that cannot make its FIFOs fails).
    OutputCapturingLauncher(Reactor& reactor, std::filesystem::path directory, LineHandler on_line);
    ~OutputCapturingLauncher() override;
    OutputCapturingLauncher(const OutputCapturingLauncher&) = delete;
    OutputCapturingLauncher& operator=(const OutputCapturingLauncher&) = delete;

    SpawnedProcess spawn(const std::string& service, const SpawnRequest& request,
                         bool capture_output) override;
    std::optional<ExitStatus> reap(int pidfd) override { return reapPidfd(pidfd); }
    void signalGroup(pid_t process_group, int signal) override { signalProcessGroup(process_group, signal); }
    void signalProcess(int pidfd, int signal) override { signalPidfd(pidfd, signal); }
    int open(pid_t pid) override;
    void release(int pidfd) override;

    // Every process of `service` started from now on gets the file `handoff` as descriptor 3 and
    // TAU_STATE_FD=3, whenever it exists (its session state, tau/client/state_handoff.h).
    void handOffStateOf(const std::string& service, std::filesystem::path handoff) {
        handoffs_[service] = std::move(handoff);
    }

    // Reads on from the FIFOs of a process that an earlier supervisor started.
    void adoptOutput(const std::string& service, pid_t pid);
    // Deletes the FIFOs nothing reads any more (of processes that ended while no supervisor ran).
    void removeStaleOutput();

  private:
    struct Pipe {
        std::string service;
        pid_t pid; // the main process that was spawned with this pipe
        OutputStream stream;
        std::string partial; // a line not yet ended by '\n'
        std::filesystem::path fifo;
    };
    std::filesystem::path fifoPath(const std::string& service, pid_t pid, OutputStream stream) const;
    SpawnedProcess spawnCapturing(const std::string& service, const SpawnRequest& request,
                                  bool capture_output);
    void watch(int fd, const std::string& service, pid_t pid, OutputStream stream,
               std::filesystem::path fifo);
    void drain(int fd);
    void closePipe(int fd);

    Reactor& reactor_;
    std::filesystem::path directory_;
    LineHandler on_line_;
    std::map<int, Pipe> pipes_;
    std::map<std::string, std::filesystem::path> handoffs_;
};

} // namespace tau
