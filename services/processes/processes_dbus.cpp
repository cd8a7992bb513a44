#include "processes_dbus.h"

#include "tau/bus/audit.h"
#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/config_json.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

using wire::toMicros;

uint64_t toMicros(std::chrono::steady_clock::duration duration) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(duration).count());
}

} // namespace

ServiceObject::ServiceObject(sdbus::IConnection& connection, const Supervisor& supervisor, std::string name)
    : AdaptorInterfaces(connection, bus::serviceObjectPath(name)), supervisor_(supervisor),
      name_(std::move(name)) {
    registerAdaptor();
}

ServiceObject::~ServiceObject() {
    bus::logged("announcing removal of a service object", [this] { emitInterfacesRemovedSignal(); });
    unregisterAdaptor();
}

const ServiceStatus& ServiceObject::status() const {
    const auto* status = supervisor_.find(name_);
    if (status == nullptr) {
        throw ServiceError(ErrorCode::NotFound, "no service named '" + name_ + "'");
    }
    return *status;
}

void ServiceObject::changed() {
    getObject().emitPropertiesChangedSignal(org::tauos::Processes1::Service_adaptor::INTERFACE_NAME,
                                            {"State", "MainPID", "Restarts", "StartedAt", "LastExitCode",
                                             "LastExitSignal", "WaitingFor", "StandbyPID"});
}

std::string ServiceObject::Kind() {
    return bus::guarded("Kind",
                        [&] { return std::string(status().spec.internal ? "internal" : "configured"); });
}
bool ServiceObject::Critical() {
    return bus::guarded("Critical", [&] { return status().spec.critical; });
}
std::vector<std::string> ServiceObject::ExecStart() {
    return bus::guarded("ExecStart", [&] { return status().spec.spawn.argv; });
}
std::string ServiceObject::State() {
    return bus::guarded("State", [&] { return std::string(toString(status().state)); });
}
int32_t ServiceObject::MainPID() {
    return bus::guarded("MainPID", [&] { return static_cast<int32_t>(status().pid); });
}
uint32_t ServiceObject::Restarts() {
    return bus::guarded("Restarts", [&] { return status().restarts; });
}
uint64_t ServiceObject::StartedAt() {
    return bus::guarded("StartedAt", [&] { return status().pid != 0 ? toMicros(status().started_at) : 0; });
}
int32_t ServiceObject::LastExitCode() {
    return bus::guarded("LastExitCode",
                        [&] { return status().last_exit ? status().last_exit->exit_code : int32_t{-1}; });
}
int32_t ServiceObject::LastExitSignal() {
    return bus::guarded("LastExitSignal",
                        [&] { return status().last_exit ? status().last_exit->signal : 0; });
}

std::string ServiceObject::WaitingFor() {
    return bus::guarded("WaitingFor", [&] {
        return status().state == ServiceState::Waiting ? status().waiting_for : std::string();
    });
}
int32_t ServiceObject::StandbyPID() {
    return bus::guarded("StandbyPID", [&] { return static_cast<int32_t>(status().standby.pid); });
}

ProcessUsageTracker::Usage ProcessUsageTracker::usage(pid_t pid) {
    if (pid <= 0) {
        return {};
    }
    const auto stat = reader_.readProcessStat(pid);
    if (!stat) {
        samples_.erase(pid);
        return {};
    }
    const auto now = std::chrono::steady_clock::now();
    auto it = samples_.find(pid);
    if (it == samples_.end() || it->second.stat.start_time_ticks != stat->start_time_ticks) {
        samples_[pid] = Sample{*stat, now, 0};
        return {0, stat->rss_bytes};
    }
    auto& sample = it->second;
    // Shorter intervals than this measure scheduler noise rather than usage.
    if (now - sample.at >= std::chrono::milliseconds(250)) {
        sample.cpu_percent =
            processCpuPercent(sample.stat, *stat, now - sample.at, reader_.clockTicksPerSecond());
        sample.stat = *stat;
        sample.at = now;
    }
    return {sample.cpu_percent, stat->rss_bytes};
}

ProcessesAdaptor::ProcessesAdaptor(sdbus::IConnection& connection, const Config& config,
                                   bus::Authorizer& authorizer, const SystemReader& reader,
                                   RecoveryReporter& recovery)
    : AdaptorInterfaces(connection, bus::kProcessesPath), config_(config), authorizer_(authorizer),
      reader_(reader), recovery_(recovery), usage_(reader) {
    registerAdaptor();
}

ProcessesAdaptor::~ProcessesAdaptor() {
    objects_.clear();
    unregisterAdaptor();
}

void ProcessesAdaptor::attach(Supervisor& supervisor) {
    supervisor_ = &supervisor;
    for (const auto& service : supervisor.services()) {
        auto object =
            std::make_unique<ServiceObject>(getObject().getConnection(), supervisor, service.spec.name);
        object->announce();
        objects_[service.spec.name] = std::move(object);
    }
}

Supervisor& ProcessesAdaptor::supervisor() {
    if (supervisor_ == nullptr) {
        throw ServiceError(ErrorCode::Unavailable, "the supervisor is not ready yet");
    }
    return *supervisor_;
}

void ProcessesAdaptor::serviceStarted(const ServiceStatus& service) {
    bus::logEvent(spdlog::level::info, "service.started",
                  {{"service", service.spec.name}, {"pid", std::to_string(service.pid)}},
                  "started " + service.spec.name + " (pid " + std::to_string(service.pid) + ")");
    bus::logged("ServiceStarted", [&] { emitServiceStarted(service.spec.name, service.pid); });
}

void ProcessesAdaptor::serviceRunning(const ServiceStatus& service) {
    if (service.spec.notify) {
        bus::logEvent(spdlog::level::info, "service.ready", {{"service", service.spec.name}},
                      service.spec.name + " is ready" +
                          (service.status_text.empty() ? std::string() : ": " + service.status_text));
    }
    if (service.last_exit) {
        recovery_.report(RecoveredReport{toMicros(std::chrono::system_clock::now()), service.spec.name});
    }
}

void ProcessesAdaptor::serviceKilled(const ServiceStatus& service, KillReason reason) {
    const auto seconds = [](std::chrono::milliseconds ms) {
        return fmt::format("{:.1f} s", ms.count() / 1000.0);
    };
    std::string event;
    std::string message;
    switch (reason) {
    case KillReason::Watchdog:
        event = "service.watchdog_timeout";
        message = service.spec.name + " missed its watchdog deadline (" + seconds(service.watchdog) +
                  "): aborting it";
        break;
    case KillReason::StartTimeout:
        event = "service.start_timeout";
        message = service.spec.name + " did not report ready within " + seconds(service.spec.start_timeout) +
                  ": stopping it";
        break;
    case KillReason::ResourceLimit:
        event = "service.resource_limit";
        message = service.spec.name + ": " + service.kill_detail + ": stopping it";
        break;
    case KillReason::Probe:
        event = "service.probe_failed";
        message = service.spec.name + ": " + service.kill_detail + ": stopping it";
        break;
    }
    bus::logEvent(spdlog::level::err, event,
                  {{"service", service.spec.name}, {"pid", std::to_string(service.pid)}}, message);
}

void ProcessesAdaptor::serviceExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                                     const RecoveryDecision& decision,
                                     std::chrono::steady_clock::duration uptime) {
    const auto action = std::string(toString(decision.action));
    const auto failure_class =
        decision.failure_class ? std::string(toString(*decision.failure_class)) : std::string();
    const auto level = decision.escalate                    ? spdlog::level::err
                       : decision.failure_class.has_value() ? spdlog::level::warn
                                                            : spdlog::level::info;
    bus::logEvent(level, "service.exited",
                  {{"service", service.spec.name},
                   {"pid", std::to_string(pid)},
                   {"exit_code", std::to_string(status.exit_code)},
                   {"signal", std::to_string(status.signal)},
                   {"failure_class", failure_class},
                   {"action", action},
                   {"delay_ms", std::to_string(decision.delay.count())},
                   {"attempt", std::to_string(decision.attempt)}},
                  service.spec.name + " (pid " + std::to_string(pid) + ") " + status.describe() + ": " +
                      (decision.reason.empty() ? action : decision.reason));
    bus::logged("ServiceExited", [&] {
        emitServiceExited(service.spec.name, pid, status.exit_code, status.signal, toMicros(uptime), action,
                          decision.attempt);
    });
    ExitReport report;
    report.time_usec = toMicros(std::chrono::system_clock::now());
    report.service = service.spec.name;
    report.pid = pid;
    report.exit_code = status.exit_code;
    report.signal = status.signal;
    report.failure_class = failure_class;
    report.uptime_usec = toMicros(uptime);
    report.attempt = decision.attempt;
    report.action = action;
    report.delay_usec = static_cast<uint64_t>(decision.delay.count()) * 1000;
    report.escalate = decision.escalate;
    report.reason = decision.reason;
    recovery_.report(std::move(report));
}

void ProcessesAdaptor::safeModeLeft(const ServiceStatus& service) {
    bus::logEvent(spdlog::level::info, "service.safe_mode_left", {{"service", service.spec.name}},
                  service.spec.name + " ran stably in safe mode: restarting it with its normal command");
}

void ProcessesAdaptor::serviceWaiting(const ServiceStatus& service, const ServiceStatus& dependency) {
    bus::logEvent(spdlog::level::info, "service.waiting",
                  {{"service", service.spec.name}, {"dependency", dependency.spec.name}},
                  service.spec.name + " waits for " + dependency.spec.name + ", which is " +
                      std::string(toString(dependency.state)));
}

void ProcessesAdaptor::systemSafeModeChanged(bool active, const ServiceStatus& service) {
    if (active) {
        bus::logEvent(spdlog::level::critical, "system.safe_mode_entered", {{"service", service.spec.name}},
                      "system safe mode: critical service " + service.spec.name +
                          " is lost; stopping every non-critical service to protect the critical ones");
    } else {
        bus::logEvent(spdlog::level::warn, "system.safe_mode_left", {{"service", service.spec.name}},
                      "system safe mode ends: " + service.spec.name +
                          " runs normally again; starting the services it stopped");
    }
    bus::logged("PropertiesChanged", [&] {
        getObject().emitPropertiesChangedSignal(org::tauos::Processes1_adaptor::INTERFACE_NAME,
                                                {"SystemSafeMode"});
    });
}

void ProcessesAdaptor::standbyStarted(const ServiceStatus& service) {
    bus::logEvent(spdlog::level::info, "service.standby_started",
                  {{"service", service.spec.name}, {"pid", std::to_string(service.standby.pid)}},
                  "started a standby of " + service.spec.name + " (pid " +
                      std::to_string(service.standby.pid) + ")");
    serviceChanged(service);
}

void ProcessesAdaptor::standbyExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                                     const RecoveryDecision& decision) {
    bus::logEvent(decision.failure_class ? spdlog::level::warn : spdlog::level::info,
                  "service.standby_exited",
                  {{"service", service.spec.name},
                   {"pid", std::to_string(pid)},
                   {"action", std::string(toString(decision.action))},
                   {"delay_ms", std::to_string(decision.delay.count())}},
                  "the standby of " + service.spec.name + " (pid " + std::to_string(pid) + ") " +
                      status.describe() + ": " + decision.reason);
    serviceChanged(service);
}

void ProcessesAdaptor::serviceChanged(const ServiceStatus& service) {
    if (auto it = objects_.find(service.spec.name); it != objects_.end()) {
        bus::logged("PropertiesChanged", [&] { it->second->changed(); });
    }
    const unsigned running = supervisor_ != nullptr ? supervisor_->runningCount() : 0;
    if (running != last_running_count_) {
        last_running_count_ = running;
        bus::logged("PropertiesChanged", [&] {
            getObject().emitPropertiesChangedSignal(org::tauos::Processes1_adaptor::INTERFACE_NAME,
                                                    {"RunningCount"});
        });
    }
}

void ProcessesAdaptor::spawnFailed(const ServiceStatus& service, const std::string& reason) {
    bus::logEvent(spdlog::level::err, "service.spawn_failed",
                  {{"service", service.spec.name}, {"reason", reason}},
                  "cannot start " + service.spec.name + ": " + reason);
}

void ProcessesAdaptor::restartDeferred(const ServiceStatus& service, std::chrono::milliseconds wait) {
    bus::logEvent(spdlog::level::warn, "service.restart_deferred",
                  {{"service", service.spec.name}, {"wait_ms", std::to_string(wait.count())}},
                  "restart of " + service.spec.name + " held back " + std::to_string(wait.count()) +
                      " ms by the host-wide restart budget");
}

std::vector<wire::ServiceEntry> ProcessesAdaptor::ListServices() {
    return bus::guarded("ListServices", [&] {
        std::vector<wire::ServiceEntry> result;
        const auto now = std::chrono::steady_clock::now();
        for (const auto& service : supervisor().services()) {
            const auto usage = usage_.usage(service.pid);
            result.emplace_back(service.spec.name, std::string(toString(service.state)), service.pid,
                                service.restarts, toMicros(service.uptime(now)), usage.cpu_percent,
                                usage.rss_bytes, service.spec.critical,
                                std::string(service.spec.internal ? "internal" : "configured"));
        }
        return result;
    });
}

void ProcessesAdaptor::Start(const std::string& name) {
    bus::audited(authorizer_, getObject(), "Start", name, [&] { supervisor().start(name); });
}

void ProcessesAdaptor::Stop(const std::string& name) {
    bus::audited(authorizer_, getObject(), "Stop", name, [&] { supervisor().stop(name); });
}

void ProcessesAdaptor::Restart(const std::string& name) {
    bus::audited(authorizer_, getObject(), "Restart", name, [&] { supervisor().restart(name); });
}

void ProcessesAdaptor::ReportFailure(const std::string& name, const std::string& failure_class,
                                     const std::string& detail) {
    bus::audited(authorizer_, getObject(), "ReportFailure", name + ", " + failure_class + ", " + detail, [&] {
        constexpr std::size_t kMaxDetail = 1024;
        const auto reported = failureClassFromString(failure_class);
        if (reported != FailureClass::Probe && reported != FailureClass::ResourceLimit) {
            throw ServiceError(ErrorCode::InvalidArgument, "ReportFailure: failure_class: '" + failure_class +
                                                               "' is not one of probe, resource_limit");
        }
        if (detail.size() > kMaxDetail) {
            throw ServiceError(ErrorCode::InvalidArgument,
                               "ReportFailure: detail: " + std::to_string(detail.size()) +
                                   " bytes, more than the " + std::to_string(kMaxDetail) + " allowed");
        }
        const auto reason = reported == FailureClass::Probe ? KillReason::Probe : KillReason::ResourceLimit;
        supervisor().recoverFailing(name, reason, detail.empty() ? "reported failing" : detail);
    });
}

std::vector<wire::ProcessEntry> ProcessesAdaptor::GetProcessTree(const std::string& name) {
    return bus::guarded("GetProcessTree", [&] {
        const auto* service = supervisor().find(name);
        if (service == nullptr) {
            throw ServiceError(ErrorCode::NotFound, "no service named '" + name + "'");
        }
        std::vector<wire::ProcessEntry> result;
        if (service->pid == 0) {
            return result;
        }
        for (const pid_t pid : processTree(reader_, service->pid)) {
            if (const auto stat = reader_.readProcessStat(pid)) {
                result.emplace_back(stat->pid, stat->ppid, stat->comm, stat->rss_bytes);
            }
        }
        return result;
    });
}

std::string ProcessesAdaptor::ServiceOfProcess(const int32_t& pid) {
    return bus::guarded("ServiceOfProcess", [&] {
        if (pid <= 0) {
            throw ServiceError(ErrorCode::InvalidArgument,
                               "ServiceOfProcess: pid: " + std::to_string(pid) + " is not a process id");
        }
        const auto owner =
            supervisor().serviceOfProcess(pid, [this](pid_t child) { return parentPid(reader_, child); });
        if (!owner) {
            throw ServiceError(ErrorCode::NotFound,
                               "process " + std::to_string(pid) + " belongs to no supervised service");
        }
        return owner->service;
    });
}

std::string ProcessesAdaptor::GetConfig() {
    return bus::guarded("GetConfig", [&] { return configToJson(config_).dump(2); });
}

std::string ProcessesAdaptor::Version() {
    return TAU_VERSION;
}
std::string ProcessesAdaptor::ConfigPath() {
    return config_.source.string();
}
uint64_t ProcessesAdaptor::StartedAt() {
    return toMicros(started_at_);
}
uint32_t ProcessesAdaptor::RunningCount() {
    return supervisor_ != nullptr ? supervisor_->runningCount() : 0;
}
bool ProcessesAdaptor::SystemSafeMode() {
    return supervisor_ != nullptr && supervisor_->inSystemSafeMode();
}

} // namespace tau
