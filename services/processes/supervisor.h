#pragma once
// The supervisor: starts services, notices every exit through the service's pidfd, and restarts per policy.
// It knows nothing of D-Bus; the adaptor turns its events into signals and properties.

#include "tau/clock.h"
#include "tau/event_loop.h"
#include "tau/restart_budget.h"
#include "tau/restart_policy.h"
#include "tau/spawner.h"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau {

enum class ServiceState { Running, Stopping, Stopped, Backoff, Failed };
std::string_view toString(ServiceState state);

struct ServiceSpec {
    std::string name;
    bool internal = false; // a process of the suite itself
    bool critical = false;
    bool capture_output = true; // false for the suite's own services, which log to Log1 themselves
    SpawnRequest spawn;
    RestartPolicy policy;
    std::chrono::milliseconds stop_timeout{10000};
};

struct ServiceStatus {
    ServiceSpec spec;
    ServiceState state = ServiceState::Stopped;
    pid_t pid = 0;
    int pidfd = -1;
    unsigned restarts = 0;             // automatic restarts
    unsigned consecutive_failures = 0; // reset by a stable run, a clean exit or a manual start
    std::chrono::system_clock::time_point started_at{};
    std::chrono::steady_clock::time_point started_steady{};
    std::optional<ExitStatus> last_exit;
    bool restart_after_stop = false;

    std::chrono::steady_clock::duration uptime(std::chrono::steady_clock::time_point now) const {
        return state == ServiceState::Running || state == ServiceState::Stopping ? now - started_steady
                                                                                 : std::chrono::seconds(0);
    }
};

// How processes are started and signalled; the real one forks, tests record calls.
class ProcessLauncher {
  public:
    virtual ~ProcessLauncher() = default;
    // `capture_output`: the process's stdout and stderr become log records of `service`.
    virtual SpawnedProcess spawn(const std::string& service, const SpawnRequest& request,
                                 bool capture_output) = 0;
    virtual std::optional<ExitStatus> reap(int pidfd) = 0;
    virtual void signalGroup(pid_t process_group, int signal) = 0;
    virtual void release(int pidfd) = 0;
};

class SupervisorListener {
  public:
    virtual ~SupervisorListener() = default;
    virtual void serviceStarted(const ServiceStatus& service) = 0;
    // `pid` is the process that exited; `service` already shows the state after the decision.
    virtual void serviceExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                               const ExitDecision& decision, std::chrono::steady_clock::duration uptime) = 0;
    // Any change of state, pid or counters.
    virtual void serviceChanged(const ServiceStatus& service) = 0;
    virtual void spawnFailed(const ServiceStatus& service, const std::string& reason) = 0;
    // A due restart waits this much longer for a slot of the host-wide restart budget.
    virtual void restartDeferred(const ServiceStatus& service, std::chrono::milliseconds wait) = 0;
};

class Supervisor {
  public:
    Supervisor(Reactor& reactor, ProcessLauncher& launcher, const Clock& clock, SupervisorListener& listener,
               unsigned max_concurrent_configured);
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    void add(ServiceSpec spec);

    // Rate-limits the automatic restarts of configured services across the host (the suite's own services
    // are exempt: the supervisor must be able to bring its own parts back).
    void useRestartBudget(unsigned burst, std::chrono::milliseconds interval);

    // Starts every service in the order added; a service that cannot be spawned is marked failed.
    void startAll();

    // Throw ServiceError (NotFound, Busy, LimitExceeded, SpawnFailed) with a message that names the service.
    void start(const std::string& name);
    void stop(const std::string& name);
    void restart(const std::string& name);

    // Stops every service, one at a time in reverse order of adding, then calls `done`.
    void shutdown(std::function<void()> done);
    bool shuttingDown() const { return shutting_down_; }

    // Last resort when the supervisor cannot go on: SIGKILL to every service's process group at once.
    void killAll();

    const std::vector<ServiceStatus>& services() const { return services_; }
    const ServiceStatus* find(std::string_view name) const;
    unsigned runningCount() const;

  private:
    ServiceStatus& get(const std::string& name);
    // Starts the process and reports it started.
    void spawn(ServiceStatus& service);
    // Starts the process, reporting only a failure.
    void launch(ServiceStatus& service);
    // How long a restart due now must wait for the host-wide budget (a slot is reserved when it is zero).
    std::chrono::milliseconds budgetWait(const ServiceStatus& service);
    void beginStop(ServiceStatus& service);
    void onPidfdReadable(const std::string& name);
    void scheduleRestart(ServiceStatus& service, std::chrono::milliseconds delay, bool slot_reserved = false);
    void continueShutdown();
    unsigned configuredActive() const;

    Reactor& reactor_;
    ProcessLauncher& launcher_;
    const Clock& clock_;
    SupervisorListener& listener_;
    unsigned max_concurrent_configured_;
    std::vector<ServiceStatus> services_;
    std::map<std::string, Reactor::TimerId> restart_timers_;
    std::map<std::string, Reactor::TimerId> kill_timers_;
    std::optional<RestartBudget> restart_budget_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
};

} // namespace tau
