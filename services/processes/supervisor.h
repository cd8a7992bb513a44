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
#include <set>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau {

// Waiting: due to start, but a service it depends on is not running yet.
enum class ServiceState { Starting, Running, Stopping, Stopped, Backoff, Failed, Waiting };
std::string_view toString(ServiceState state);
// Whether a service in this state has a main process.
bool hasProcess(ServiceState state);

// Why the supervisor killed a service that nobody asked to stop.
enum class KillReason { StartTimeout, Watchdog, ResourceLimit, Probe };
// The failure class an exit after such a kill is recovered as.
FailureClass failureClassOf(KillReason reason);

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
    // Started only while these run, and waiting for them (without spending retries) while they do not.
    std::vector<std::string> depends_on;
    // A warm second instance, started with TAU_STANDBY=1 once the main one runs, and made the main one the
    // moment that fails; `promote_signal` tells it.
    struct Standby {
        int promote_signal = SIGUSR1;
    };
    std::optional<Standby> standby;
};

// The standby instance of a service with `standby` configured; pid 0 while there is none.
struct StandbyProcess {
    pid_t pid = 0;
    int pidfd = -1;
    bool ready = false; // a notify service's standby must have sent READY=1 before it can take over
    bool stopping = false;
    std::chrono::steady_clock::time_point started_steady{};
};

struct ServiceStatus {
    explicit ServiceStatus(ServiceSpec service_spec) : spec(std::move(service_spec)), recovery(spec.policy) {
        if (spec.standby) {
            standby_recovery.emplace(spec.policy);
        }
    }

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
    std::string kill_detail;            // why, for a kill asked for from outside (probe, resource limit)
    std::string waiting_for;            // Waiting: the dependency that is not running
    bool waiting_after_failure = false; // Waiting to come back after an exit, not for its first start
    StandbyProcess standby;
    bool held_by_system_safe_mode = false; // stopped to protect the critical services; restarted after
    // Its own count, so that a failing standby never spends the retries of the service itself.
    std::optional<RecoveryTracker> standby_recovery; // only with spec.standby
    std::string status_text;                         // the service's own STATUS= line
    std::chrono::milliseconds watchdog{0};           // the current interval; WATCHDOG_USEC= may change it
    std::chrono::steady_clock::time_point start_deadline{};
    std::chrono::steady_clock::time_point restart_due{}; // Backoff: when the pending restart is due

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
    // The service is due to start but waits for `dependency`, which is not running.
    virtual void serviceWaiting(const ServiceStatus& service, const ServiceStatus& dependency) = 0;
    virtual void standbyStarted(const ServiceStatus& service) = 0;
    // The standby ended without being promoted; `decision` says whether and when another one starts.
    virtual void standbyExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                               const RecoveryDecision& decision) = 0;
    virtual void spawnFailed(const ServiceStatus& service, const std::string& reason) = 0;
    // A due restart waits this much longer for a slot of the host-wide restart budget.
    virtual void restartDeferred(const ServiceStatus& service, std::chrono::milliseconds wait) = 0;
    // A safe-mode run lasted its stability window: the service goes back to its normal command.
    virtual void safeModeLeft(const ServiceStatus& service) = 0;
    // System safe mode began because critical `service` was given up or entered safe mode (the
    // non-critical services are being stopped), or ended because `service` runs normally again.
    virtual void systemSafeModeChanged(bool active, const ServiceStatus& service) = 0;
};

// Where the supervisor writes down every change of a service, so that a supervisor started after this one
// dies can adopt the processes that still run instead of starting them twice.
class SupervisorJournal {
  public:
    virtual ~SupervisorJournal() = default;
    virtual void record(const ServiceStatus& service) = 0;
};

// A process a previous supervisor started and that still runs.
struct AdoptedProcess {
    pid_t pid = 0;
    int pidfd = -1; // opened by the caller (pidfd_open) after checking it is the same process
    bool ready = false;
    std::chrono::steady_clock::time_point started_steady{};
    std::chrono::system_clock::time_point started_at{};
};

// What of a service carries over from one supervisor to the next.
struct CarriedOver {
    unsigned restarts = 0;
    bool running_safe_mode = false;
    std::string status_text;
    RecoveryTracker::State recovery;
    std::optional<RecoveryTracker::State> standby_recovery;
    std::chrono::steady_clock::time_point restart_due{}; // Backoff: when its restart was due
};

// What a previous supervisor knew of a service, for adopt().
struct AdoptedService : CarriedOver {
    ServiceState state = ServiceState::Stopped; // as it was then
    pid_t pid = 0;                              // its main process then, 0 when none
    std::optional<AdoptedProcess> main;         // unset: pid ended while no supervisor watched it
    std::optional<AdoptedProcess> standby;
    std::chrono::steady_clock::time_point started_steady{}; // of pid
};

// Who an sd_notify message speaks for.
struct ProcessOwner {
    std::string service;
    bool standby = false; // from the standby instance's tree, not the main one's
    bool operator==(const ProcessOwner&) const = default;
};

class Supervisor {
  public:
    Supervisor(Reactor& reactor, ProcessLauncher& launcher, const Clock& clock, SupervisorListener& listener,
               unsigned max_concurrent_configured);
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    void add(ServiceSpec spec);
    // Room for this many services, so that adding them never moves the ones added before.
    void reserve(std::size_t count) { services_.reserve(count); }

    // Every change of a service from now on is recorded there; `journal` must outlive the supervisor.
    void useJournal(SupervisorJournal& journal) { journal_ = &journal; }

    // Takes over a service as a previous supervisor left it: a main process (and standby) that still runs is
    // watched again with its pid; one that ended unseen is recovered as a failure whose status is unknown;
    // a stopped or failed service stays so; a pending restart keeps its time. Call before startAll(), which
    // then leaves the service alone. Throws ServiceError NotFound.
    void adopt(const std::string& name, AdoptedService adopted);

    // Jitter of backoff delays; tests script it.
    void useRandomSource(RandomSource& random) { random_ = &random; }

    // Classifies an exit the supervisor did not cause itself, e.g. a SIGKILL from the OOM killer; nullopt
    // leaves it to the exit status.
    using CauseClassifier =
        std::function<std::optional<FailureClass>(const ServiceStatus&, const ExitStatus&)>;
    void useCauseClassifier(CauseClassifier classify) { causes_ = std::move(classify); }

    // When a critical service is given up or put in safe mode, stop every non-critical configured service
    // until all critical services run their normal command again, then start those services again.
    void useSystemSafeMode(bool enabled) { system_safe_mode_enabled_ = enabled; }
    bool inSystemSafeMode() const { return !system_safe_mode_causes_.empty(); }

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

    // Someone found the running service failing (a health probe, a resource limit): it is stopped with
    // its stop signal, killed after the grace period, and recovered as a failure of that class. Throws
    // ServiceError NotFound, or Busy when it is not running.
    void recoverFailing(const std::string& name, KillReason reason, std::string detail);

    // An sd_notify message from a process of the sender's tree (the caller has checked that it is).
    void notify(const ProcessOwner& sender, const NotifyMessage& message);
    // The service whose main or standby process is `pid` or one of its ancestors (`parent_of` walks up).
    std::optional<ProcessOwner> serviceOfProcess(pid_t pid,
                                                 const std::function<pid_t(pid_t)>& parent_of) const;
    // The processes the supervisor waits for itself: main, standby and retired ones.
    std::vector<pid_t> ownedProcesses() const;

    const std::vector<ServiceStatus>& services() const { return services_; }
    const ServiceStatus* find(std::string_view name) const;
    unsigned runningCount() const;

  private:
    ServiceStatus& get(const std::string& name);
    // Starts the process and reports it started.
    void spawn(ServiceStatus& service);
    // Spawns the service, or leaves it waiting while one of its dependencies does not run.
    void spawnOrWait(ServiceStatus& service, bool after_failure);
    // The first dependency of `service` that is not running; nullptr when all run.
    const ServiceStatus* blockingDependency(const ServiceStatus& service) const;
    void wait(ServiceStatus& service, const ServiceStatus& dependency, bool after_failure);
    // The service has just entered running: what waited for it may start, and it gets its standby.
    void onRunning(ServiceStatus& service);
    void startWaitingDependents(const std::string& dependency);
    // An automatic start: through the host-wide budget, at once or after the wait it imposes.
    void startWithinBudget(ServiceStatus& service);
    void startStandby(ServiceStatus& service);
    void scheduleStandby(ServiceStatus& service, std::chrono::milliseconds delay);
    void onStandbyExit(const std::string& name);
    void stopStandby(ServiceStatus& service);
    // A critical service given up or put in safe mode begins system safe mode, when it is configured.
    void enterSystemSafeModeIfLost(const ServiceStatus& cause, const RecoveryDecision& decision);
    void leaveSystemSafeModeIfRecovered(const ServiceStatus& service);
    // The ladder wants the service back: the ready standby takes over now. False if there is none.
    bool promoteStandby(ServiceStatus& service, RecoveryDecision& decision);
    // Starts the process, reporting only a failure.
    void launch(ServiceStatus& service);
    // How long a restart due now must wait for the host-wide budget (a slot is reserved when it is zero).
    std::chrono::milliseconds budgetWait(const ServiceStatus& service);
    // Stopping: the stop signal to the group (unless `send_stop_signal` is false because the caller sent
    // its own), SIGKILL once the grace period is over.
    void beginStop(ServiceStatus& service, bool send_stop_signal = true);
    void onPidfdReadable(const std::string& name);
    // The main process `pid` of the service ended with `status`: the ladder decides what follows.
    void onExit(ServiceStatus& service, pid_t pid, const ExitStatus& status);
    void watchMain(ServiceStatus& service);
    // A new main process: starting (with its start timeout) until a notify service is ready, else running.
    void beginRun(ServiceStatus& service, bool ready);
    // Tells the listener, and the journal, that the service changed.
    void changed(const ServiceStatus& service);
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
    std::map<std::string, Reactor::TimerId> standby_timers_; // a standby's delayed restart
    std::map<std::string, Reactor::TimerId> standby_kill_timers_;
    bool system_safe_mode_enabled_ = false;
    std::set<std::string> system_safe_mode_causes_; // critical services not yet back to normal
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
    SupervisorJournal* journal_ = nullptr;
    std::set<std::string> adopted_; // services startAll() leaves alone
};

} // namespace tau
