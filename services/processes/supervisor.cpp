#include "supervisor.h"

#include "tau/errors.h"

#include <algorithm>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

namespace tau {

std::string_view toString(ServiceState state) {
    switch (state) {
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
    for (const auto& [name, id] : kill_timers_) {
        reactor_.cancelTimer(id);
    }
    for (auto& service : services_) {
        if (service.pidfd >= 0) {
            reactor_.unwatchFd(service.pidfd);
            launcher_.release(service.pidfd);
        }
    }
}

void Supervisor::add(ServiceSpec spec) {
    ServiceStatus status;
    status.spec = std::move(spec);
    services_.push_back(std::move(status));
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
    return static_cast<unsigned>(std::count_if(services_.begin(), services_.end(), [](const auto& s) {
        return s.state == ServiceState::Running || s.state == ServiceState::Stopping;
    }));
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
        } catch (const ServiceError&) {
            // spawn() has marked it failed and told the listener.
        }
    }
}

void Supervisor::spawn(ServiceStatus& service) {
    launch(service);
    listener_.serviceStarted(service);
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
        process = launcher_.spawn(service.spec.name, service.spec.spawn, service.spec.capture_output);
    } catch (const SpawnError& e) {
        service.state = ServiceState::Failed;
        service.pid = 0;
        listener_.spawnFailed(service, e.what());
        listener_.serviceChanged(service);
        throw ServiceError(ErrorCode::SpawnFailed, "cannot start '" + service.spec.name + "': " + e.what());
    }
    service.pid = process.pid;
    service.pidfd = process.pidfd;
    service.state = ServiceState::Running;
    service.started_at = clock_.wallNow();
    service.started_steady = clock_.now();
    const std::string name = service.spec.name;
    reactor_.watchFd(process.pidfd, POLLIN, [this, name](short) { onPidfdReadable(name); });
}

void Supervisor::start(const std::string& name) {
    if (shutting_down_) {
        throw ServiceError(ErrorCode::Busy, "cannot start '" + name + "': the supervisor is shutting down");
    }
    auto& service = get(name);
    if (service.state == ServiceState::Running || service.state == ServiceState::Stopping) {
        throw ServiceError(ErrorCode::Busy,
                           "service '" + name + "' is already " + std::string(toString(service.state)));
    }
    if (auto it = restart_timers_.find(name); it != restart_timers_.end()) {
        reactor_.cancelTimer(it->second);
        restart_timers_.erase(it);
    }
    service.consecutive_failures = 0;
    spawn(service);
}

void Supervisor::stop(const std::string& name) {
    auto& service = get(name);
    if (auto it = restart_timers_.find(name); it != restart_timers_.end()) {
        // A pending restart is cancelled: the service stays stopped.
        reactor_.cancelTimer(it->second);
        restart_timers_.erase(it);
        service.state = ServiceState::Stopped;
        listener_.serviceChanged(service);
        return;
    }
    if (service.state != ServiceState::Running && service.state != ServiceState::Stopping) {
        throw ServiceError(ErrorCode::Busy, "service '" + name + "' is not running (it is " +
                                                std::string(toString(service.state)) + ")");
    }
    service.restart_after_stop = false;
    beginStop(service);
}

void Supervisor::restart(const std::string& name) {
    auto& service = get(name);
    if (service.state == ServiceState::Running || service.state == ServiceState::Stopping) {
        if (shutting_down_) {
            throw ServiceError(ErrorCode::Busy,
                               "cannot restart '" + name + "': the supervisor is shutting down");
        }
        service.restart_after_stop = true;
        service.consecutive_failures = 0;
        beginStop(service);
        return;
    }
    start(name);
}

void Supervisor::beginStop(ServiceStatus& service) {
    if (service.state == ServiceState::Stopping) {
        return;
    }
    service.state = ServiceState::Stopping;
    launcher_.signalGroup(service.pid, SIGTERM);
    const std::string name = service.spec.name;
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
    if (auto it = kill_timers_.find(name); it != kill_timers_.end()) {
        reactor_.cancelTimer(it->second);
        kill_timers_.erase(it);
    }

    const auto uptime = clock_.now() - service.started_steady;
    const bool stop_requested = service.state == ServiceState::Stopping;
    const bool restart_requested = stop_requested && service.restart_after_stop && !shutting_down_;
    ExitDecision decision =
        decideOnExit(service.spec.policy, *status, stop_requested, uptime, service.consecutive_failures);
    if (shutting_down_ && !stop_requested) {
        decision = {ExitAction::Stopped, {}, 0};
    }
    service.pid = 0;
    service.pidfd = -1;
    service.last_exit = status;
    service.consecutive_failures = decision.consecutive_failures;
    service.restart_after_stop = false;

    switch (decision.action) {
    case ExitAction::Restart:
    case ExitAction::RestartDelayed:
        service.state = ServiceState::Backoff;
        break;
    case ExitAction::GiveUp:
        service.state = ServiceState::Failed;
        break;
    case ExitAction::None:
        service.state = status->success() ? ServiceState::Stopped : ServiceState::Failed;
        break;
    case ExitAction::Stopped:
        service.state = ServiceState::Stopped;
        break;
    }
    // An immediate restart goes first and the reports after it: the service is down for as short a time as
    // the kernel allows, not for as long as the bookkeeping takes.
    bool restarted = false;
    if (decision.action == ExitAction::Restart && decision.delay.count() == 0) {
        const auto wait = budgetWait(service);
        if (wait.count() == 0) {
            ++service.restarts;
            try {
                launch(service);
                restarted = true;
            } catch (const ServiceError&) {
                // launch() has reported it; the service is failed.
            }
        } else {
            listener_.restartDeferred(service, wait);
            decision.delay = wait;
            scheduleRestart(service, wait, true);
        }
    } else if (decision.action == ExitAction::Restart || decision.action == ExitAction::RestartDelayed) {
        scheduleRestart(service, decision.delay);
    }
    listener_.serviceExited(service, pid, *status, decision, uptime);
    if (restarted) {
        listener_.serviceStarted(service);
    }
    listener_.serviceChanged(service);
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
        } catch (const ServiceError&) {
        }
    });
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
        if (it->state == ServiceState::Running) {
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
