#pragma once
// The real ProcessLauncher: forks through the spawner and turns each captured line of a service's stdout and
// stderr into a call of `on_line`, from the loop, without ever blocking on a pipe.
//
// A service holds its output pipes open for reading as well as writing (SpawnRequest::output_read_write):
// when the supervisor dies its services do not get SIGPIPE on their next line, what they write meanwhile
// waits in the pipe (until it is full), and the next supervisor reads on from the same pipes, which it
// reaches through /proc/<pid>/fd/1 and 2 when it adopts the service.

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

    OutputCapturingLauncher(Reactor& reactor, LineHandler on_line);
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

    // Reads on from the output pipes of a process that an earlier supervisor started.
    void adoptOutput(const std::string& service, pid_t pid);

  private:
    struct Pipe {
        std::string service;
        pid_t pid; // the main process that was spawned with this pipe
        OutputStream stream;
        std::string partial; // a line not yet ended by '\n'
    };
    SpawnedProcess spawnCapturing(const std::string& service, const SpawnRequest& request,
                                  bool capture_output);
    void watch(int fd, const std::string& service, pid_t pid, OutputStream stream);
    void drain(int fd);
    void closePipe(int fd);

    Reactor& reactor_;
    LineHandler on_line_;
    std::map<int, Pipe> pipes_;
    std::map<std::string, std::filesystem::path> handoffs_;
};

} // namespace tau
