#include "supervisor.h"

#include "tau/errors.h"

#include <algorithm>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

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
    }
    return "stopped";
}

Supervisor::Supervisor(Reactor& reactor, ProcessLauncher& launcher, const Clock& clock,
                       SupervisorListener& listener, unsigned max_concurrent_configured)
    : reactor_(reactor), launcher_(launcher), clock_(clock), listener_(listener),
      max_concurrent_configured_(max_concurrent_configured) {}

Supervisor::~Supervisor() {
    for (const auto& [name, id] : restart_timers_) {
        reactor_.cancelTimer(id);
    }
    for (const auto* timers : {&kill_timers_, &start_timers_, &watchdog_timers_, &safe_mode_timers_}) {
        for (const auto& [name, id] : *timers) {
            reactor_.cancelTimer(id);
        }
    }
    for (auto& service : services_) {
        if (service.pidfd >= 0) {
            reactor_.unwatchFd(service.pidfd);
            launcher_.release(service.pidfd);
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

void Supervisor::startAll() {
    for (auto& service : services_) {
        if (service.pid != 0) {
            continue;
        }
        try {
            spawn(service);
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
    listener_.serviceChanged(service);
}

void Supervisor::launch(ServiceStatus& service) {
    if (!service.spec.internal && configuredActive() >= max_concurrent_configured_) {
        service.state = ServiceState::Failed;
        const std::string reason = "process_management.max_concurrent_processes (" +
                                   std::to_string(max_concurrent_configured_) + ") reached";
        listener_.spawnFailed(service, reason);
        listener_.serviceChanged(service);
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
        listener_.serviceChanged(service);
        throw ServiceError(ErrorCode::SpawnFailed, "cannot start '" + service.spec.name + "': " + e.what());
    }
    service.recovery.onStarted(clock_.now());
    service.pid = process.pid;
    service.pidfd = process.pidfd;
    service.started_at = clock_.wallNow();
    service.started_steady = clock_.now();
    service.kill_reason.reset();
    service.status_text.clear();
    service.watchdog = service.spec.watchdog;
    const std::string name = service.spec.name;
    reactor_.watchFd(process.pidfd, POLLIN, [this, name](short) { onPidfdReadable(name); });
    if (service.spec.notify) {
        service.state = ServiceState::Starting;
        armStartTimeout(service, service.spec.start_timeout);
    } else {
        service.state = ServiceState::Running;
        armWatchdog(service);
        armSafeModeExit(service);
    }
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
    listener_.serviceChanged(service);
}

void Supervisor::notify(const std::string& name, const NotifyMessage& message) {
    auto& service = get(name);
    if (!hasProcess(service.state)) {
        return;
    }
    bool changed = false;
    if (message.status && *message.status != service.status_text) {
        service.status_text = *message.status;
        changed = true;
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
            reactor_.watchFd(pidfd, POLLIN, [this, name](short) { onPidfdReadable(name); });
            changed = true;
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
    if (changed) {
        listener_.serviceChanged(service);
    }
}

std::optional<std::string> Supervisor::serviceOfProcess(pid_t pid,
                                                        const std::function<pid_t(pid_t)>& parent_of) const {
    // Deep enough for any real process tree, and a bound against a cycle in stale data.
    constexpr int kMaxDepth = 64;
    for (int depth = 0; pid > 1 && depth < kMaxDepth; ++depth, pid = parent_of(pid)) {
        for (const auto& service : services_) {
            if (service.pid == pid && hasProcess(service.state)) {
                return service.spec.name;
            }
        }
    }
    return std::nullopt;
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
    cancelTimer(restart_timers_, name);
    service.recovery.reset();
    spawn(service);
}

void Supervisor::stop(const std::string& name) {
    auto& service = get(name);
    if (cancelTimer(restart_timers_, name)) {
        // A pending restart is cancelled: the service stays stopped.
        service.state = ServiceState::Stopped;
        listener_.serviceChanged(service);
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
    listener_.serviceChanged(service);
}

void Supervisor::onPidfdReadable(const std::string& name) {
    auto& service = get(name);
    const auto status = launcher_.reap(service.pidfd);
    if (!status) {
        return;
    }
    const pid_t pid = service.pid;
    reactor_.unwatchFd(service.pidfd);
    launcher_.release(service.pidfd);
    // Whatever the main process left behind in its group goes with it, so a restart never runs twice.
    launcher_.signalGroup(pid, SIGKILL);
    disarmTimers(name);

    const auto uptime = clock_.now() - service.started_steady;
    const bool stop_requested = service.state == ServiceState::Stopping && !service.kill_reason;
    const bool restart_requested = stop_requested && service.restart_after_stop && !shutting_down_;
    ExitEvent event{*status, uptime, stop_requested || shutting_down_, std::nullopt};
    if (service.kill_reason) {
        event.cause =
            *service.kill_reason == KillReason::Watchdog ? FailureClass::Watchdog : FailureClass::Start;
    } else if (causes_) {
        event.cause = causes_(service, *status);
    }
    RecoveryDecision decision = service.recovery.onExit(event, clock_.now(), *random_);
    service.pid = 0;
    service.pidfd = -1;
    service.last_exit = status;
    service.restart_after_stop = false;

    const bool restart =
        decision.action == RecoveryAction::Restart || decision.action == RecoveryAction::RestartInSafeMode;
    switch (decision.action) {
    case RecoveryAction::Restart:
    case RecoveryAction::RestartInSafeMode:
        service.state = ServiceState::Backoff;
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
    listener_.serviceExited(service, pid, *status, decision, uptime);
    if (restarted) {
        listener_.serviceStarted(service);
        if (service.state == ServiceState::Running) {
            listener_.serviceRunning(service);
        }
    }
    listener_.serviceChanged(service);
    if (spawn_failure) {
        recoverFromSpawnFailure(service, *spawn_failure);
    }
    if (restart_requested) {
        try {
            spawn(service);
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
    restart_timers_[name] = reactor_.addTimer(delay, [this, name, slot_reserved] {
        restart_timers_.erase(name);
        auto& s = get(name);
        if (s.state != ServiceState::Backoff || shutting_down_) {
            return;
        }
        if (!slot_reserved) {
            if (const auto wait = budgetWait(s); wait.count() > 0) {
                listener_.restartDeferred(s, wait);
                scheduleRestart(s, wait, true);
                return;
            }
        }
        ++s.restarts;
        try {
            spawn(s);
        } catch (const ServiceError& e) {
            recoverFromSpawnFailure(s, e);
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
        ExitEvent{nothing_ran, std::chrono::steady_clock::duration::zero(), false, FailureClass::Start},
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
    listener_.serviceChanged(service);
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
        listener_.serviceChanged(service);
    }
    restart_timers_.clear();
    continueShutdown();
}

void Supervisor::killAll() {
    for (const auto& service : services_) {
        if (service.pid != 0) {
            launcher_.signalGroup(service.pid, SIGKILL);
        }
    }
}

void Supervisor::continueShutdown() {
    for (auto it = services_.rbegin(); it != services_.rend(); ++it) {
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
