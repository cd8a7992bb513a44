#include "supervisor.h"

#include "tau/errors.h"

#include <algorithm>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <utility>

namespace tau {

bool hasProcess(ServiceState state) {
    return state == ServiceState::Starting || state == ServiceState::Running ||
           state == ServiceState::Stopping;
}

std::string_view toString(ServiceState state) {
    switch (state) {
    case ServiceState::Starting:
        return "starting";
    case ServiceState::Running:
        return "running";
    case ServiceState::Stopping:
        return "stopping";
    case ServiceState::Stopped:
        return "stopped";
    case ServiceState::Backoff:
        return "backoff";
    case ServiceState::Failed:
        return "failed";
    case ServiceState::Waiting:
        return "waiting";
    }
    return "stopped";
}

FailureClass failureClassOf(KillReason reason) {
    switch (reason) {
    case KillReason::StartTimeout:
        return FailureClass::Start;
    case KillReason::Watchdog:
        return FailureClass::Watchdog;
    case KillReason::ResourceLimit:
        return FailureClass::ResourceLimit;
    case KillReason::Probe:
        return FailureClass::Probe;
    }
    return FailureClass::Exit;
}

Supervisor::Supervisor(Reactor& reactor, ProcessLauncher& launcher, const Clock& clock,
                       SupervisorListener& listener, unsigned max_concurrent_configured)
    : reactor_(reactor), launcher_(launcher), clock_(clock), listener_(listener),
      max_concurrent_configured_(max_concurrent_configured) {}

Supervisor::~Supervisor() {
    for (const auto& [name, id] : restart_timers_) {
        reactor_.cancelTimer(id);
    }
    for (const auto* timers : {&kill_timers_, &start_timers_, &watchdog_timers_, &safe_mode_timers_,
                               &standby_timers_, &standby_kill_timers_}) {
        for (const auto& [name, id] : *timers) {
            reactor_.cancelTimer(id);
        }
    }
    for (auto& service : services_) {
        for (const int pidfd : {service.pidfd, service.standby.pidfd}) {
            if (pidfd >= 0) {
                reactor_.unwatchFd(pidfd);
                launcher_.release(pidfd);
            }
        }
    }
    for (const auto& [pidfd, pid] : retired_) {
        reactor_.unwatchFd(pidfd);
        launcher_.release(pidfd);
    }
}

void Supervisor::add(ServiceSpec spec) {
    services_.emplace_back(std::move(spec));
}

const ServiceStatus* Supervisor::find(std::string_view name) const {
    auto it =
        std::find_if(services_.begin(), services_.end(), [&](const auto& s) { return s.spec.name == name; });
    return it == services_.end() ? nullptr : &*it;
}

ServiceStatus& Supervisor::get(const std::string& name) {
    auto it =
        std::find_if(services_.begin(), services_.end(), [&](const auto& s) { return s.spec.name == name; });
    if (it == services_.end()) {
        throw ServiceError(ErrorCode::NotFound, "no service named '" + name + "'");
    }
    return *it;
}

unsigned Supervisor::runningCount() const {
    return static_cast<unsigned>(
        std::count_if(services_.begin(), services_.end(), [](const auto& s) { return hasProcess(s.state); }));
}

unsigned Supervisor::configuredActive() const {
    return static_cast<unsigned>(std::count_if(services_.begin(), services_.end(),
                                               [](const auto& s) { return !s.spec.internal && s.pid != 0; }));
}

void Supervisor::changed(const ServiceStatus& service) {
    listener_.serviceChanged(service);
    if (journal_ != nullptr && !service.spec.internal) {
        journal_->record(service);
    }
}

void Supervisor::startAll() {
    for (auto& service : services_) {
        if (service.pid != 0 || adopted_.contains(service.spec.name)) {
            continue;
        }
        try {
            spawnOrWait(service, false);
        } catch (const ServiceError& e) {
            recoverFromSpawnFailure(service, e);
        }
    }
}

void Supervisor::spawn(ServiceStatus& service) {
    launch(service);
    listener_.serviceStarted(service);
    if (service.state == ServiceState::Running) {
        listener_.serviceRunning(service);
    }
    changed(service);
    if (service.state == ServiceState::Running) {
        onRunning(service);
    }
}

void Supervisor::spawnOrWait(ServiceStatus& service, bool after_failure) {
    if (const auto* dependency = blockingDependency(service)) {
        wait(service, *dependency, after_failure);
        return;
    }
    spawn(service);
}

const ServiceStatus* Supervisor::blockingDependency(const ServiceStatus& service) const {
    for (const auto& name : service.spec.depends_on) {
        if (const auto* dependency = find(name);
            dependency != nullptr && dependency->state != ServiceState::Running) {
            return dependency;
        }
    }
    return nullptr;
}

void Supervisor::wait(ServiceStatus& service, const ServiceStatus& dependency, bool after_failure) {
    service.state = ServiceState::Waiting;
    service.waiting_for = dependency.spec.name;
    service.waiting_after_failure = after_failure;
    listener_.serviceWaiting(service, dependency);
    changed(service);
}

void Supervisor::enterSystemSafeModeIfLost(const ServiceStatus& cause, const RecoveryDecision& decision) {
    const bool lost = decision.action == RecoveryAction::GiveUp ||
                      decision.action == RecoveryAction::NotifyAndStop ||
                      decision.action == RecoveryAction::RestartInSafeMode ||
                      (decision.action == RecoveryAction::None && decision.failure_class);
    if (!lost || !cause.spec.critical || cause.spec.internal || !system_safe_mode_enabled_ ||
        shutting_down_ || !system_safe_mode_causes_.insert(cause.spec.name).second ||
        system_safe_mode_causes_.size() > 1) {
        return;
    }
    listener_.systemSafeModeChanged(true, cause);
    for (auto& service : services_) {
        if (service.spec.internal || service.spec.critical || service.state == ServiceState::Stopping) {
            continue;
        }
        if (hasProcess(service.state) || service.state == ServiceState::Backoff ||
            service.state == ServiceState::Waiting) {
            service.held_by_system_safe_mode = true;
            stop(service.spec.name);
        }
    }
}

void Supervisor::leaveSystemSafeModeIfRecovered(const ServiceStatus& service) {
    if (service.running_safe_mode || system_safe_mode_causes_.erase(service.spec.name) == 0 ||
        !system_safe_mode_causes_.empty()) {
        return;
    }
    listener_.systemSafeModeChanged(false, service);
    for (auto& held : services_) {
        if (!std::exchange(held.held_by_system_safe_mode, false) || held.state != ServiceState::Stopped) {
            continue;
        }
        try {
            spawnOrWait(held, false);
        } catch (const ServiceError& e) {
            recoverFromSpawnFailure(held, e);
        }
    }
}

void Supervisor::onRunning(ServiceStatus& service) {
    leaveSystemSafeModeIfRecovered(service);
    if (service.spec.standby && !service.running_safe_mode && service.standby.pid == 0 &&
        !standby_timers_.contains(service.spec.name)) {
        startStandby(service);
    }
    startWaitingDependents(service.spec.name);
}

void Supervisor::startWaitingDependents(const std::string& dependency) {
    for (auto& service : services_) {
        if (service.state != ServiceState::Waiting || service.waiting_for != dependency) {
            continue;
        }
        if (service.waiting_after_failure) {
            startWithinBudget(service);
            continue;
        }
        try {
            spawnOrWait(service, false);
        } catch (const ServiceError& e) {
            recoverFromSpawnFailure(service, e);
        }
    }
}

void Supervisor::startWithinBudget(ServiceStatus& service) {
    if (const auto* dependency = blockingDependency(service)) {
        wait(service, *dependency, true);
        return;
    }
    if (const auto wait = budgetWait(service); wait.count() > 0) {
        service.state = ServiceState::Backoff;
        listener_.restartDeferred(service, wait);
        changed(service);
        scheduleRestart(service, wait, true);
        return;
    }
    ++service.restarts;
    try {
        spawn(service);
    } catch (const ServiceError& e) {
        recoverFromSpawnFailure(service, e);
    }
}

void Supervisor::launch(ServiceStatus& service) {
    if (!service.spec.internal && configuredActive() >= max_concurrent_configured_) {
        service.state = ServiceState::Failed;
        const std::string reason = "process_management.max_concurrent_processes (" +
                                   std::to_string(max_concurrent_configured_) + ") reached";
        listener_.spawnFailed(service, reason);
        changed(service);
        throw ServiceError(ErrorCode::LimitExceeded, "cannot start '" + service.spec.name + "': " + reason);
    }
    SpawnedProcess process;
    try {
        const bool safe_mode = service.recovery.inSafeMode() && service.spec.safe_mode;
        process =
            launcher_.spawn(service.spec.name, safe_mode ? service.spec.safe_mode->spawn : service.spec.spawn,
                            service.spec.capture_output);
        service.running_safe_mode = safe_mode;
    } catch (const SpawnError& e) {
        service.state = ServiceState::Failed;
        service.pid = 0;
        listener_.spawnFailed(service, e.what());
        changed(service);
        throw ServiceError(ErrorCode::SpawnFailed, "cannot start '" + service.spec.name + "': " + e.what());
    }
    service.recovery.onStarted(clock_.now());
    service.pid = process.pid;
    service.pidfd = process.pidfd;
    service.started_at = clock_.wallNow();
    service.started_steady = clock_.now();
    service.kill_reason.reset();
    service.kill_detail.clear();
    service.status_text.clear();
    service.watchdog = service.spec.watchdog;
    watchMain(service);
    beginRun(service, false);
}

void Supervisor::beginRun(ServiceStatus& service, bool ready) {
    if (service.spec.notify && !ready) {
        service.state = ServiceState::Starting;
        armStartTimeout(service, service.spec.start_timeout);
    } else {
        service.state = ServiceState::Running;
        armWatchdog(service);
        armSafeModeExit(service);
    }
}

void Supervisor::watchMain(ServiceStatus& service) {
    const std::string name = service.spec.name;
    reactor_.watchFd(service.pidfd, POLLIN, [this, name](short) { onPidfdReadable(name); });
}

void Supervisor::adopt(const std::string& name, AdoptedService adopted) {
    auto& service = get(name);
    adopted_.insert(name);
    service.restarts = adopted.restarts;
    service.recovery.restore(std::move(adopted.recovery));
    if (service.standby_recovery && adopted.standby_recovery) {
        service.standby_recovery->restore(std::move(*adopted.standby_recovery));
    }
    if (adopted.standby && service.spec.standby) {
        const auto& standby = *adopted.standby;
        service.standby =
            StandbyProcess{standby.pid, standby.pidfd, standby.ready, false, standby.started_steady};
        reactor_.watchFd(standby.pidfd, POLLIN, [this, name](short) { onStandbyExit(name); });
    } else if (adopted.standby) {
        launcher_.release(adopted.standby->pidfd); // no standby configured any more: not ours to keep
    }
    if (adopted.main) {
        const auto& main = *adopted.main;
        service.pid = main.pid;
        service.pidfd = main.pidfd;
        service.started_steady = main.started_steady;
        service.started_at = main.started_at;
        service.running_safe_mode = adopted.running_safe_mode;
        service.status_text = adopted.status_text;
        service.watchdog = service.spec.watchdog;
        watchMain(service);
        beginRun(service, main.ready);
        changed(service);
        if (service.state == ServiceState::Running) {
            onRunning(service);
        }
        return;
    }
    if (hasProcess(adopted.state) && adopted.pid != 0) {
        // It ended while nobody watched: recovered like any other failure, with what is known of it.
        service.pid = adopted.pid;
        service.started_steady = adopted.started_steady;
        service.state = ServiceState::Running;
        ExitStatus unknown;
        unknown.known = false;
        onExit(service, adopted.pid, unknown);
        return;
    }
    switch (adopted.state) {
    case ServiceState::Stopped:
    case ServiceState::Failed:
        service.state = adopted.state;
        break;
    case ServiceState::Backoff: {
        service.state = ServiceState::Backoff;
        const auto now = clock_.now();
        const auto wait = adopted.restart_due > now
                              ? std::chrono::ceil<std::chrono::milliseconds>(adopted.restart_due - now)
                              : std::chrono::milliseconds(0);
        scheduleRestart(service, wait);
        break;
    }
    default:
        adopted_.erase(name); // waiting or between states: startAll() starts it as usual
        return;
    }
    changed(service);
}

void Supervisor::armSafeModeExit(ServiceStatus& service) {
    if (!service.running_safe_mode) {
        return;
    }
    const std::string name = service.spec.name;
    const pid_t pid = service.pid;
    safe_mode_timers_[name] = reactor_.addTimer(service.spec.safe_mode->stability, [this, name, pid] {
        safe_mode_timers_.erase(name);
        auto& s = get(name);
        if (s.pid != pid || s.state != ServiceState::Running) {
            return;
        }
        // Stable in safe mode: give the normal command another chance, with the incident's count kept.
        s.recovery.leaveSafeMode();
        listener_.safeModeLeft(s);
        s.restart_after_stop = true;
        beginStop(s);
    });
}

void Supervisor::armStartTimeout(ServiceStatus& service, std::chrono::milliseconds timeout) {
    const std::string name = service.spec.name;
    cancelTimer(start_timers_, name);
    service.start_deadline = clock_.now() + timeout;
    start_timers_[name] = reactor_.addTimer(timeout, [this, name] {
        start_timers_.erase(name);
        auto& s = get(name);
        if (s.state == ServiceState::Starting) {
            killFor(s, KillReason::StartTimeout);
        }
    });
}

bool Supervisor::cancelTimer(std::map<std::string, Reactor::TimerId>& timers, const std::string& name) {
    const auto it = timers.find(name);
    if (it == timers.end()) {
        return false;
    }
    reactor_.cancelTimer(it->second);
    timers.erase(it);
    return true;
}

void Supervisor::armWatchdog(ServiceStatus& service) {
    const std::string name = service.spec.name;
    cancelTimer(watchdog_timers_, name);
    if (service.watchdog.count() <= 0 || !hasProcess(service.state)) {
        return;
    }
    watchdog_timers_[name] = reactor_.addTimer(service.watchdog, [this, name] {
        watchdog_timers_.erase(name);
        auto& s = get(name);
        if (s.state == ServiceState::Running) {
            killFor(s, KillReason::Watchdog);
        }
    });
}

void Supervisor::disarmTimers(const std::string& name) {
    for (auto* timers : {&kill_timers_, &start_timers_, &watchdog_timers_, &safe_mode_timers_}) {
        cancelTimer(*timers, name);
    }
}

void Supervisor::recoverFailing(const std::string& name, KillReason reason, std::string detail) {
    auto& service = get(name);
    if (service.state != ServiceState::Running && service.state != ServiceState::Starting) {
        throw ServiceError(ErrorCode::Busy, "service '" + name + "' is not running (it is " +
                                                std::string(toString(service.state)) + ")");
    }
    service.kill_detail = std::move(detail);
    killFor(service, reason);
}

void Supervisor::killFor(ServiceStatus& service, KillReason reason) {
    service.kill_reason = reason;
    listener_.serviceKilled(service, reason);
    // A hung process is aborted, so that it leaves a core dump to learn from; one that never got ready is
    // asked to stop like any other. Either way the group is killed once the grace period is over.
    const bool abort = reason == KillReason::Watchdog;
    if (abort) {
        launcher_.signalProcess(service.pidfd, SIGABRT);
    }
    beginStop(service, !abort);
}

void Supervisor::enterRunning(ServiceStatus& service) {
    service.state = ServiceState::Running;
    cancelTimer(start_timers_, service.spec.name);
    armWatchdog(service);
    armSafeModeExit(service);
    listener_.serviceRunning(service);
    changed(service);
    onRunning(service);
}

void Supervisor::notify(const ProcessOwner& sender, const NotifyMessage& message) {
    const std::string& name = sender.service;
    auto& service = get(name);
    if (sender.standby) {
        // A standby only says when it is warm; it has no watchdog or status of its own until promoted.
        if (message.ready && service.standby.pid != 0) {
            service.standby.ready = true;
        }
        return;
    }
    if (!hasProcess(service.state)) {
        return;
    }
    bool status_changed = false;
    if (message.status && *message.status != service.status_text) {
        service.status_text = *message.status;
        status_changed = true;
    }
    if (message.main_pid && *message.main_pid != service.pid) {
        const int pidfd = launcher_.open(*message.main_pid);
        if (pidfd >= 0) {
            // The old main process is ours to reap, quietly: the service goes on in its successor.
            const int old_pidfd = service.pidfd;
            reactor_.unwatchFd(old_pidfd);
            retired_[old_pidfd] = service.pid;
            reactor_.watchFd(old_pidfd, POLLIN, [this, old_pidfd](short) {
                if (launcher_.reap(old_pidfd)) {
                    reactor_.unwatchFd(old_pidfd);
                    launcher_.release(old_pidfd);
                    retired_.erase(old_pidfd);
                }
            });
            service.pid = *message.main_pid;
            service.pidfd = pidfd;
            watchMain(service);
            status_changed = true;
        }
    }
    if (message.watchdog_usec) {
        service.watchdog = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::microseconds(*message.watchdog_usec));
        armWatchdog(service);
    }
    if (message.extend_timeout_usec) {
        const auto extension = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::microseconds(*message.extend_timeout_usec));
        const auto wanted = clock_.now() + extension;
        if (service.state == ServiceState::Starting && wanted > service.start_deadline) {
            armStartTimeout(service, extension);
        }
    }
    if (message.ready && service.state == ServiceState::Starting) {
        enterRunning(service);
        return;
    }
    if (message.watchdog_trigger && service.state == ServiceState::Running) {
        killFor(service, KillReason::Watchdog);
        return;
    }
    if (message.watchdog_ping && service.state == ServiceState::Running) {
        armWatchdog(service);
    }
    if (status_changed) {
        changed(service);
    }
}

std::optional<ProcessOwner> Supervisor::serviceOfProcess(pid_t pid,
                                                         const std::function<pid_t(pid_t)>& parent_of) const {
    // Deep enough for any real process tree, and a bound against a cycle in stale data.
    constexpr int kMaxDepth = 64;
    for (int depth = 0; pid > 1 && depth < kMaxDepth; ++depth, pid = parent_of(pid)) {
        for (const auto& service : services_) {
            if (service.pid == pid && hasProcess(service.state)) {
                return ProcessOwner{service.spec.name, false};
            }
            if (service.standby.pid == pid) {
                return ProcessOwner{service.spec.name, true};
            }
        }
    }
    return std::nullopt;
}

std::vector<pid_t> Supervisor::ownedProcesses() const {
    std::vector<pid_t> pids;
    pids.reserve(services_.size() + retired_.size());
    for (const auto& [pidfd, pid] : retired_) {
        pids.push_back(pid);
    }
    for (const auto& service : services_) {
        for (const pid_t pid : {service.pid, service.standby.pid}) {
            if (pid != 0) {
                pids.push_back(pid);
            }
        }
    }
    return pids;
}

void Supervisor::start(const std::string& name) {
    if (shutting_down_) {
        throw ServiceError(ErrorCode::Busy, "cannot start '" + name + "': the supervisor is shutting down");
    }
    auto& service = get(name);
    if (hasProcess(service.state)) {
        throw ServiceError(ErrorCode::Busy,
                           "service '" + name + "' is already " + std::string(toString(service.state)));
    }
    if (service.state == ServiceState::Waiting) {
        throw ServiceError(ErrorCode::Busy, "service '" + name + "' is already waiting for its dependency '" +
                                                service.waiting_for + "'");
    }
    // What it depends on is started with it, as systemd's Requires= does.
    for (const auto& dependency_name : service.spec.depends_on) {
        const auto* dependency = find(dependency_name);
        if (dependency != nullptr &&
            (dependency->state == ServiceState::Stopped || dependency->state == ServiceState::Failed)) {
            try {
                start(dependency_name);
            } catch (const ServiceError& e) {
                throw ServiceError(e.code(),
                                   "cannot start '" + name + "' without its dependency: " + e.what());
            }
        }
    }
    cancelTimer(restart_timers_, name);
    service.recovery.reset();
    service.held_by_system_safe_mode = false;
    spawnOrWait(service, false);
}

void Supervisor::stop(const std::string& name) {
    auto& service = get(name);
    stopStandby(service);
    if (cancelTimer(restart_timers_, name) || service.state == ServiceState::Waiting) {
        // A pending restart or start is cancelled: the service stays stopped.
        service.state = ServiceState::Stopped;
        changed(service);
        return;
    }
    if (!hasProcess(service.state)) {
        throw ServiceError(ErrorCode::Busy, "service '" + name + "' is not running (it is " +
                                                std::string(toString(service.state)) + ")");
    }
    service.restart_after_stop = false;
    beginStop(service);
}

void Supervisor::restart(const std::string& name) {
    auto& service = get(name);
    if (hasProcess(service.state)) {
        if (shutting_down_) {
            throw ServiceError(ErrorCode::Busy,
                               "cannot restart '" + name + "': the supervisor is shutting down");
        }
        service.restart_after_stop = true;
        service.recovery.reset();
        beginStop(service);
        return;
    }
    start(name);
}

void Supervisor::beginStop(ServiceStatus& service, bool send_stop_signal) {
    if (service.state == ServiceState::Stopping) {
        return;
    }
    service.state = ServiceState::Stopping;
    const std::string name = service.spec.name;
    cancelTimer(watchdog_timers_, name);
    cancelTimer(start_timers_, name);
    if (send_stop_signal) {
        launcher_.signalGroup(service.pid, service.spec.stop_signal);
    }
    const pid_t pid = service.pid;
    kill_timers_[name] = reactor_.addTimer(service.spec.stop_timeout, [this, name, pid] {
        kill_timers_.erase(name);
        if (const auto* s = find(name); s != nullptr && s->pid == pid) {
            launcher_.signalGroup(pid, SIGKILL);
        }
    });
    changed(service);
}

void Supervisor::onPidfdReadable(const std::string& name) {
    auto& service = get(name);
    const auto status = launcher_.reap(service.pidfd);
    if (!status) {
        return;
    }
    reactor_.unwatchFd(service.pidfd);
    launcher_.release(service.pidfd);
    onExit(service, service.pid, *status);
}

void Supervisor::onExit(ServiceStatus& service, pid_t pid, const ExitStatus& status) {
    const std::string name = service.spec.name;
    // Whatever the main process left behind in its group goes with it, so a restart never runs twice.
    launcher_.signalGroup(pid, SIGKILL);
    disarmTimers(name);

    const auto uptime = clock_.now() - service.started_steady;
    const bool stop_requested = service.state == ServiceState::Stopping && !service.kill_reason;
    const bool restart_requested = stop_requested && service.restart_after_stop && !shutting_down_;
    ExitEvent event{status, uptime, stop_requested || shutting_down_, std::nullopt, {}};
    if (service.kill_reason) {
        event.cause = failureClassOf(*service.kill_reason);
    } else if (causes_) {
        event.cause = causes_(service, status);
    }
    const ServiceStatus* dependency = blockingDependency(service);
    if (dependency != nullptr) {
        event.dependency_down =
            "its dependency '" + dependency->spec.name + "' is " + std::string(toString(dependency->state));
    }
    RecoveryDecision decision = service.recovery.onExit(event, clock_.now(), *random_);
    if (!service.kill_detail.empty()) {
        decision.reason = service.kill_detail + ": " + decision.reason;
    }
    service.pid = 0;
    service.pidfd = -1;
    service.last_exit = status;
    service.restart_after_stop = false;

    const bool promoted = decision.action == RecoveryAction::Restart && promoteStandby(service, decision);
    const bool restart =
        decision.action == RecoveryAction::Restart || decision.action == RecoveryAction::RestartInSafeMode;
    if (decision.action != RecoveryAction::Restart && decision.action != RecoveryAction::PromoteStandby &&
        decision.action != RecoveryAction::WaitForDependency) {
        stopStandby(service); // it runs the command that just failed for good, or is not wanted any more
    }
    switch (decision.action) {
    case RecoveryAction::Restart:
    case RecoveryAction::RestartInSafeMode:
        service.state = ServiceState::Backoff;
        break;
    case RecoveryAction::PromoteStandby:
        break; // running already
    case RecoveryAction::WaitForDependency:
        service.state = ServiceState::Waiting;
        service.waiting_for = dependency->spec.name;
        service.waiting_after_failure = true;
        break;
    case RecoveryAction::GiveUp:
    case RecoveryAction::NotifyAndStop:
        service.state = ServiceState::Failed;
        break;
    case RecoveryAction::None:
        service.state = decision.failure_class ? ServiceState::Failed : ServiceState::Stopped;
        break;
    case RecoveryAction::Stopped:
        service.state = ServiceState::Stopped;
        break;
    }
    // An immediate restart goes first and the reports after it: the service is down for as short a time as
    // the kernel allows, not for as long as the bookkeeping takes.
    bool restarted = false;
    std::optional<ServiceError> spawn_failure;
    if (restart && decision.delay.count() == 0) {
        const auto wait = budgetWait(service);
        if (wait.count() == 0) {
            ++service.restarts;
            try {
                launch(service);
                restarted = true;
            } catch (const ServiceError& e) {
                spawn_failure = e;
            }
        } else {
            listener_.restartDeferred(service, wait);
            decision.delay = wait;
            scheduleRestart(service, wait, true);
        }
    } else if (restart) {
        scheduleRestart(service, decision.delay);
    }
    listener_.serviceExited(service, pid, status, decision, uptime);
    if (restarted || promoted) {
        listener_.serviceStarted(service);
        if (service.state == ServiceState::Running) {
            listener_.serviceRunning(service);
        }
    }
    if (decision.action == RecoveryAction::WaitForDependency) {
        listener_.serviceWaiting(service, *dependency);
    }
    changed(service);
    if ((restarted || promoted) && service.state == ServiceState::Running) {
        onRunning(service);
    }
    enterSystemSafeModeIfLost(service, decision);
    if (spawn_failure) {
        recoverFromSpawnFailure(service, *spawn_failure);
    }
    if (restart_requested) {
        try {
            spawnOrWait(service, false);
        } catch (const ServiceError&) {
        }
    }
    if (shutting_down_) {
        continueShutdown();
    }
}

void Supervisor::scheduleRestart(ServiceStatus& service, std::chrono::milliseconds delay,
                                 bool slot_reserved) {
    const std::string name = service.spec.name;
    service.restart_due = clock_.now() + delay;
    restart_timers_[name] = reactor_.addTimer(delay, [this, name, slot_reserved] {
        restart_timers_.erase(name);
        auto& s = get(name);
        if (s.state != ServiceState::Backoff || shutting_down_) {
            return;
        }
        if (slot_reserved && blockingDependency(s) == nullptr) {
            ++s.restarts;
            try {
                spawn(s);
            } catch (const ServiceError& e) {
                recoverFromSpawnFailure(s, e);
            }
            return;
        }
        startWithinBudget(s);
    });
}

bool Supervisor::promoteStandby(ServiceStatus& service, RecoveryDecision& decision) {
    auto& standby = service.standby;
    if (!service.spec.standby || standby.pid == 0 || !standby.ready || standby.stopping || shutting_down_) {
        return false;
    }
    const std::string name = service.spec.name;
    service.pid = standby.pid;
    service.pidfd = standby.pidfd;
    standby = StandbyProcess{};
    reactor_.unwatchFd(service.pidfd);
    watchMain(service);
    launcher_.signalProcess(service.pidfd, service.spec.standby->promote_signal);
    service.state = ServiceState::Running;
    service.running_safe_mode = false;
    service.kill_reason.reset();
    service.kill_detail.clear();
    service.started_at = clock_.wallNow();
    service.started_steady = clock_.now();
    service.status_text.clear();
    service.watchdog = service.spec.watchdog;
    ++service.restarts;
    armWatchdog(service);
    // The ladder's delay now paces the new standby, so that a command that keeps failing is not respawned
    // any faster than the ladder allows.
    const auto standby_delay = decision.delay;
    decision.action = RecoveryAction::PromoteStandby;
    decision.delay = std::chrono::milliseconds(0);
    decision.reason +=
        "; instead the warm standby (pid " + std::to_string(service.pid) + ") took over at once";
    scheduleStandby(service, standby_delay);
    return true;
}

void Supervisor::startStandby(ServiceStatus& service) {
    if (shutting_down_ || service.state != ServiceState::Running || service.standby.pid != 0) {
        return;
    }
    SpawnRequest request = service.spec.spawn;
    request.environment["TAU_STANDBY"] = "1";
    try {
        const auto process = launcher_.spawn(service.spec.name, request, service.spec.capture_output);
        service.standby_recovery->onStarted(clock_.now());
        service.standby =
            StandbyProcess{process.pid, process.pidfd, !service.spec.notify, false, clock_.now()};
    } catch (const SpawnError& e) {
        listener_.spawnFailed(service, std::string("standby: ") + e.what());
        constexpr auto kMinimumRetry = std::chrono::milliseconds(1000);
        const auto decision = service.standby_recovery->onExit(
            ExitEvent{
                ExitStatus{}, std::chrono::steady_clock::duration::zero(), false, FailureClass::Start, {}},
            clock_.now(), *random_);
        if (bringsBack(decision.action)) {
            scheduleStandby(service, std::max(decision.delay, kMinimumRetry));
        }
        return;
    }
    const std::string name = service.spec.name;
    reactor_.watchFd(service.standby.pidfd, POLLIN, [this, name](short) { onStandbyExit(name); });
    listener_.standbyStarted(service);
}

void Supervisor::scheduleStandby(ServiceStatus& service, std::chrono::milliseconds delay) {
    const std::string name = service.spec.name;
    cancelTimer(standby_timers_, name);
    standby_timers_[name] = reactor_.addTimer(delay, [this, name] {
        standby_timers_.erase(name);
        startStandby(get(name));
    });
}

void Supervisor::onStandbyExit(const std::string& name) {
    auto& service = get(name);
    const auto status = launcher_.reap(service.standby.pidfd);
    if (!status) {
        return;
    }
    const StandbyProcess standby = std::exchange(service.standby, StandbyProcess{});
    reactor_.unwatchFd(standby.pidfd);
    launcher_.release(standby.pidfd);
    launcher_.signalGroup(standby.pid, SIGKILL);
    cancelTimer(standby_kill_timers_, name);
    const ExitEvent event{
        *status, clock_.now() - standby.started_steady, standby.stopping || shutting_down_, std::nullopt, {}};
    const auto decision = service.standby_recovery->onExit(event, clock_.now(), *random_);
    // A standby always runs the normal command: safe mode is for the main instance.
    if (bringsBack(decision.action) && !event.stop_requested) {
        scheduleStandby(service, decision.delay);
    }
    listener_.standbyExited(service, standby.pid, *status, decision);
    if (shutting_down_) {
        continueShutdown();
    }
}

void Supervisor::stopStandby(ServiceStatus& service) {
    const std::string name = service.spec.name;
    cancelTimer(standby_timers_, name);
    auto& standby = service.standby;
    if (standby.pid == 0 || standby.stopping) {
        return;
    }
    standby.stopping = true;
    launcher_.signalGroup(standby.pid, service.spec.stop_signal);
    const pid_t pid = standby.pid;
    standby_kill_timers_[name] = reactor_.addTimer(service.spec.stop_timeout, [this, name, pid] {
        standby_kill_timers_.erase(name);
        if (get(name).standby.pid == pid) {
            launcher_.signalGroup(pid, SIGKILL);
        }
    });
}

void Supervisor::recoverFromSpawnFailure(ServiceStatus& service, const ServiceError& error) {
    if (error.code() != ErrorCode::SpawnFailed || shutting_down_) {
        return; // a configured limit, not a failure of the service: it stays failed until started again
    }
    // A command that cannot even be spawned is a failed start: the ladder applies, at a pace a missing
    // executable cannot turn into a tight loop.
    constexpr auto kMinimumRetry = std::chrono::milliseconds(1000);
    const ExitStatus nothing_ran{};
    RecoveryDecision decision = service.recovery.onExit(
        ExitEvent{nothing_ran, std::chrono::steady_clock::duration::zero(), false, FailureClass::Start, {}},
        clock_.now(), *random_);
    decision.reason = std::string(error.what()) + "; " + decision.reason;
    if (decision.action == RecoveryAction::Restart || decision.action == RecoveryAction::RestartInSafeMode) {
        decision.delay = std::max(decision.delay, kMinimumRetry);
        service.state = ServiceState::Backoff;
        scheduleRestart(service, decision.delay);
    } else {
        service.state = ServiceState::Failed;
    }
    listener_.serviceExited(service, 0, nothing_ran, decision, std::chrono::steady_clock::duration::zero());
    changed(service);
    enterSystemSafeModeIfLost(service, decision);
}

std::chrono::milliseconds Supervisor::budgetWait(const ServiceStatus& service) {
    if (!restart_budget_ || service.spec.internal) {
        return std::chrono::milliseconds(0);
    }
    const auto now = clock_.now();
    const auto slot = restart_budget_->reserve(now);
    return std::chrono::ceil<std::chrono::milliseconds>(slot - now);
}

void Supervisor::useRestartBudget(unsigned burst, std::chrono::milliseconds interval) {
    restart_budget_.emplace(burst, interval);
}

void Supervisor::shutdown(std::function<void()> done) {
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    for (const auto& [name, id] : restart_timers_) {
        reactor_.cancelTimer(id);
        auto& service = get(name);
        service.state = ServiceState::Stopped;
        changed(service);
    }
    restart_timers_.clear();
    for (auto& service : services_) {
        if (service.state == ServiceState::Waiting) {
            service.state = ServiceState::Stopped;
            changed(service);
        }
    }
    continueShutdown();
}

void Supervisor::killAll() {
    for (const auto& service : services_) {
        for (const pid_t pid : {service.pid, service.standby.pid}) {
            if (pid != 0) {
                launcher_.signalGroup(pid, SIGKILL);
            }
        }
    }
}

void Supervisor::continueShutdown() {
    for (auto it = services_.rbegin(); it != services_.rend(); ++it) {
        if (it->standby.pid != 0) {
            stopStandby(*it);
            return; // wait for the standby's exit, which calls us again
        }
        if (it->state == ServiceState::Stopping) {
            return; // wait for its exit, which calls us again
        }
        if (it->state == ServiceState::Running || it->state == ServiceState::Starting) {
            it->restart_after_stop = false;
            beginStop(*it);
            return;
        }
    }
    if (shutdown_done_) {
        auto done = std::move(shutdown_done_);
        shutdown_done_ = nullptr;
        done();
    }
}

} // namespace tau
