#pragma once
// The supervisor: starts services, notices every exit through the service's pidfd, and restarts per policy.
// It knows nothing of D-Bus; the adaptor turns its events into signals and properties.

#include "tau/clock.h"
#include "tau/errors.h"
#include "tau/event_loop.h"
#include "tau/notify_socket.h"
#include "tau/recovery_policy.h"
#include "tau/restart_budget.h"
#include "tau/spawner.h"

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau {

enum class ServiceState { Starting, Running, Stopping, Stopped, Backoff, Failed };
std::string_view toString(ServiceState state);
// Whether a service in this state has a main process.
bool hasProcess(ServiceState state);

// Why the supervisor killed a service that nobody asked to stop.
enum class KillReason { StartTimeout, Watchdog };

struct ServiceSpec {
    std::string name;
    bool internal = false; // a process of the suite itself
    bool critical = false;
    bool capture_output = true; // false for the suite's own services, which log to Log1 themselves
    SpawnRequest spawn;
    RecoveryPolicy policy;
    // What runs while the ladder holds the service in safe mode, and how long a safe-mode run must last
    // before the normal command gets another chance.
    struct SafeMode {
        SpawnRequest spawn;
        std::chrono::milliseconds stability{60000};
    };
    std::optional<SafeMode> safe_mode;
    std::chrono::milliseconds stop_timeout{10000};
    int stop_signal = SIGTERM;
    bool notify = false; // type notify: starting until it sends READY=1
    std::chrono::milliseconds start_timeout{90000};
    std::chrono::milliseconds watchdog{0}; // 0: no watchdog
};

struct ServiceStatus {
    explicit ServiceStatus(ServiceSpec service_spec) : spec(std::move(service_spec)), recovery(spec.policy) {}

    ServiceSpec spec;
    RecoveryTracker recovery;
    bool running_safe_mode = false; // the current process is the safe-mode command
    ServiceState state = ServiceState::Stopped;
    pid_t pid = 0;
    int pidfd = -1;
    unsigned restarts = 0; // automatic restarts
    std::chrono::system_clock::time_point started_at{};
    std::chrono::steady_clock::time_point started_steady{};
    std::optional<ExitStatus> last_exit;
    bool restart_after_stop = false;
    std::optional<KillReason> kill_reason;
    std::string status_text;               // the service's own STATUS= line
    std::chrono::milliseconds watchdog{0}; // the current interval; WATCHDOG_USEC= may change it
    std::chrono::steady_clock::time_point start_deadline{};

    std::chrono::steady_clock::duration uptime(std::chrono::steady_clock::time_point now) const {
        return hasProcess(state) ? now - started_steady : std::chrono::seconds(0);
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
    virtual void signalProcess(int pidfd, int signal) = 0;
    // A pidfd for a process the service made its main one (MAINPID=); -1 when it is already gone.
    virtual int open(pid_t pid) = 0;
    virtual void release(int pidfd) = 0;
};

class SupervisorListener {
  public:
    virtual ~SupervisorListener() = default;
    virtual void serviceStarted(const ServiceStatus& service) = 0;
    // The service entered running: at once for a simple service, on READY=1 for a notify one.
    virtual void serviceRunning(const ServiceStatus& service) = 0;
    // The supervisor is killing the service: it missed its watchdog or did not become ready in time.
    virtual void serviceKilled(const ServiceStatus& service, KillReason reason) = 0;
    // `pid` is the process that exited; `service` already shows the state after the decision.
    virtual void serviceExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                               const RecoveryDecision& decision,
                               std::chrono::steady_clock::duration uptime) = 0;
    // Any change of state, pid or counters.
    virtual void serviceChanged(const ServiceStatus& service) = 0;
    virtual void spawnFailed(const ServiceStatus& service, const std::string& reason) = 0;
    // A due restart waits this much longer for a slot of the host-wide restart budget.
    virtual void restartDeferred(const ServiceStatus& service, std::chrono::milliseconds wait) = 0;
    // A safe-mode run lasted its stability window: the service goes back to its normal command.
    virtual void safeModeLeft(const ServiceStatus& service) = 0;
};

class Supervisor {
  public:
    Supervisor(Reactor& reactor, ProcessLauncher& launcher, const Clock& clock, SupervisorListener& listener,
               unsigned max_concurrent_configured);
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    void add(ServiceSpec spec);

    // Jitter of backoff delays; tests script it.
    void useRandomSource(RandomSource& random) { random_ = &random; }

    // Classifies an exit the supervisor did not cause itself, e.g. a SIGKILL from the OOM killer; nullopt
    // leaves it to the exit status.
    using CauseClassifier =
        std::function<std::optional<FailureClass>(const ServiceStatus&, const ExitStatus&)>;
    void useCauseClassifier(CauseClassifier classify) { causes_ = std::move(classify); }

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

    // An sd_notify message from a process of `service`'s tree (the caller has checked that it is).
    void notify(const std::string& service, const NotifyMessage& message);
    // The service whose main process is `pid` or one of its ancestors (`parent_of` walks up).
    std::optional<std::string> serviceOfProcess(pid_t pid,
                                                const std::function<pid_t(pid_t)>& parent_of) const;

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
    // Stopping: the stop signal to the group (unless `send_stop_signal` is false because the caller sent
    // its own), SIGKILL once the grace period is over.
    void beginStop(ServiceStatus& service, bool send_stop_signal = true);
    void onPidfdReadable(const std::string& name);
    void recoverFromSpawnFailure(ServiceStatus& service, const ServiceError& error);
    void armWatchdog(ServiceStatus& service);
    void armStartTimeout(ServiceStatus& service, std::chrono::milliseconds timeout);
    // Cancels the service's timer in `timers`; false when none was pending.
    bool cancelTimer(std::map<std::string, Reactor::TimerId>& timers, const std::string& name);
    void armSafeModeExit(ServiceStatus& service);
    void disarmTimers(const std::string& name);
    void killFor(ServiceStatus& service, KillReason reason);
    void enterRunning(ServiceStatus& service);
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
    std::map<std::string, Reactor::TimerId> start_timers_;
    std::map<std::string, Reactor::TimerId> watchdog_timers_;
    // Main processes replaced through MAINPID=, still to be reaped quietly.
    std::map<int, pid_t> retired_;
    std::optional<RestartBudget> restart_budget_;
    SystemRandom system_random_;
    RandomSource* random_ = &system_random_;
    CauseClassifier causes_;
    std::map<std::string, Reactor::TimerId> safe_mode_timers_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
};

} // namespace tau
