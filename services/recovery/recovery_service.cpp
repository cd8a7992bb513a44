#include "recovery_service.h"

#include "caller_identity.h"
#include "tau/bus/audit.h"
#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/client/byte_arrays.h"
#include "tau/crash_history.h"
#include "tau/dbus/org.tauos.Recovery1-adaptor.h"
#include "tau/recovery_policy.h"
#include "tau/spawner.h"
#include "tau/state_handoff_files.h"
#include "tau/state_store.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <deque>
#include <fmt/format.h>
#include <map>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace tau {
namespace {

constexpr const char* kHistoryFileName = "crash-history.db";
// A notification hook that hangs must not pile up: after this long it is killed.
constexpr auto kNotifyTimeLimit = std::chrono::seconds(30);

// Explain: 0 failures asks for this many; more than the maximum is refused.
constexpr unsigned kDefaultExplainedFailures = 10;
constexpr unsigned kMaxExplainedFailures = 1000;
// How many failures in a row the restart-budget warning follows the policy for.
constexpr unsigned kSimulatedFailures = 1000;

bool isValidServiceName(const std::string& name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-';
    });
}

[[noreturn]] void invalid(const char* method, const std::string& argument, const std::string& problem) {
    throw ServiceError(ErrorCode::InvalidArgument, std::string(method) + ": " + argument + ": " + problem);
}

void requireServiceName(const char* method, const std::string& name) {
    if (!isValidServiceName(name)) {
        invalid(method, "service", "'" + name + "' is not a valid service name ([A-Za-z0-9_-]{1,64})");
    }
}

// "" stays "" (no filter, or no failure); anything else must name a class.
void requireFailureClass(const char* method, const std::string& failure_class) {
    if (!failure_class.empty() && !failureClassFromString(failure_class)) {
        invalid(method, "failure_class",
                "'" + failure_class +
                    "' is not one of exit, signal, oom, watchdog, probe, resource_limit, start");
    }
}

void requireAction(const char* method, const std::string& action) {
    if (!recoveryActionFromString(action)) {
        invalid(method, "action",
                "'" + action +
                    "' is not one of restart, restart_safe_mode, give_up, notify_and_stop, none, stopped, "
                    "wait_for_dependency, promote_standby");
    }
}

// Times travel as unsigned microseconds; the store keeps signed ones.
std::chrono::system_clock::time_point timeFromWire(const char* method, const char* argument,
                                                   uint64_t micros) {
    if (micros > static_cast<uint64_t>(LLONG_MAX)) {
        invalid(method, argument, std::to_string(micros) + " is out of range");
    }
    return wire::fromMicros(micros);
}

std::chrono::microseconds durationFromWire(uint64_t micros) {
    return std::chrono::microseconds(static_cast<long long>(std::min<uint64_t>(micros, LLONG_MAX)));
}

// The state store's failures as the documented D-Bus errors.
[[noreturn]] void throwStateError(const std::string& method, const StateStoreError& e) {
    ErrorCode code = ErrorCode::Unavailable;
    std::string detail = e.what();
    switch (e.kind()) {
    case StateStoreError::Kind::InvalidService:
    case StateStoreError::Kind::TooLarge:
        code = ErrorCode::InvalidArgument;
        break;
    case StateStoreError::Kind::NoSuchVersion:
        code = ErrorCode::NotFound;
        break;
    case StateStoreError::Kind::StorageFull:
        detail = "the disk holding the session state is full: " + detail;
        break;
    case StateStoreError::Kind::Storage:
        break;
    }
    throw ServiceError(code, method + ": " + detail);
}

std::string rfc3339(std::chrono::system_clock::time_point time) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string formatSeconds(std::chrono::milliseconds duration) {
    return fmt::format("{:g} s", static_cast<double>(duration.count()) / 1000.0);
}

// The host-wide restart budget is shared by every service; one policy that alone restarts faster than it
// allows makes its own restarts wait and crowds out everybody else's. Follows a service that fails as soon
// as it starts, with the delays of the policy (without jitter) stretched by its start limit, as the
// supervisor would.
std::optional<std::string> restartBudgetWarning(const RecoveryPolicy& policy, FailureClass failure_class,
                                                const CrashRecoveryConfig& crash_recovery) {
    using std::chrono::milliseconds;
    const auto budget_interval =
        milliseconds(std::llround(crash_recovery.restart_budget_interval_seconds * 1000.0));
    const unsigned budget_burst = crash_recovery.restart_budget_burst;
    if (budget_burst == 0 || budget_interval.count() <= 0) {
        return std::nullopt;
    }
    const Explanation explanation = explain(policy, kSimulatedFailures, failure_class);
    std::deque<milliseconds> recent_starts{milliseconds(0)};
    std::vector<milliseconds> restarts;
    milliseconds now(0);
    for (const ExplainedFailure& failure : explanation.failures) {
        if (failure.action != RecoveryAction::Restart &&
            failure.action != RecoveryAction::RestartInSafeMode) {
            break;
        }
        milliseconds at = now + failure.delay;
        if (policy.start_limit_burst > 0 && recent_starts.size() >= policy.start_limit_burst) {
            at = std::max(at, recent_starts.front() + policy.start_limit_interval);
        }
        restarts.push_back(at);
        recent_starts.push_back(at);
        while (recent_starts.size() > std::max(policy.start_limit_burst, 1U)) {
            recent_starts.pop_front();
        }
        now = at;
    }
    std::size_t most = 0;
    for (std::size_t first = 0, last = 0; last < restarts.size(); ++last) {
        while (restarts[last] - restarts[first] >= budget_interval) {
            ++first;
        }
        most = std::max(most, last - first + 1);
    }
    if (most <= budget_burst) {
        return std::nullopt;
    }
    return fmt::format(
        "A service failing as soon as it starts would be restarted {} times within {}, over the "
        "host-wide restart budget of {} per {} (crash_recovery.restart_budget_burst and "
        "restart_budget_interval_seconds): its restarts would queue and hold up those of other "
        "services",
        most, formatSeconds(budget_interval), budget_burst, formatSeconds(budget_interval));
}

// Runs crash_recovery.notify_command without ever blocking the loop: the hook's exit wakes the loop through
// its pidfd, and a hook still running after the time limit is killed.
class NotifyHooks {
  public:
    NotifyHooks(EventLoop& loop, std::vector<std::string> command)
        : loop_(loop), command_(std::move(command)) {}

    ~NotifyHooks() {
        // Stopping the service does not cut an administrator's notification short: a hook still running
        // carries on, unwatched.
        for (const auto& [pidfd, hook] : running_) {
            spdlog::warn("notify command for {} (pid {}) is still running; leaving it", hook.service,
                         hook.pid);
            loop_.unwatchFd(pidfd);
            loop_.cancelTimer(hook.kill_timer);
            ::close(pidfd);
        }
    }

    NotifyHooks(const NotifyHooks&) = delete;
    NotifyHooks& operator=(const NotifyHooks&) = delete;

    void run(const std::string& service, std::map<std::string, std::string> environment) {
        if (command_.empty()) {
            return;
        }
        SpawnRequest request;
        request.argv = command_;
        request.environment = std::move(environment);
        SpawnedProcess process;
        try {
            process = spawnProcess(request);
        } catch (const SpawnError& e) {
            bus::logEvent(spdlog::level::err, "recovery.notify_failed",
                          {{"service", service}, {"error", e.what()}},
                          fmt::format("cannot run the notify command for {}: {}", service, e.what()));
            return;
        }
        const int pidfd = process.pidfd;
        Hook hook{service, process.pid, 0, false};
        hook.kill_timer = loop_.addTimer(kNotifyTimeLimit, [this, pidfd] {
            bus::logged("notify command time limit", [&] { onTimeLimit(pidfd); });
        });
        running_.emplace(pidfd, std::move(hook));
        loop_.watchFd(pidfd, POLLIN,
                      [this, pidfd](short) { bus::logged("notify command exit", [&] { onExit(pidfd); }); });
        spdlog::info("notify command for {} started (pid {})", service, process.pid);
    }

  private:
    struct Hook {
        std::string service;
        pid_t pid = 0;
        EventLoop::TimerId kill_timer = 0;
        bool killed = false;
    };

    void onTimeLimit(int pidfd) {
        auto found = running_.find(pidfd);
        if (found == running_.end()) {
            return;
        }
        Hook& hook = found->second;
        hook.kill_timer = 0;
        hook.killed = true;
        spdlog::error("notify command for {} (pid {}) still runs after {} s; killing it", hook.service,
                      hook.pid, kNotifyTimeLimit.count());
        // The hook leads its own process group (it starts a session): whatever it started goes with it. Its
        // pidfd is not reaped yet, so neither the group nor the pid can belong to anybody else.
        signalProcessGroup(hook.pid, SIGKILL);
        signalPidfd(pidfd, SIGKILL);
    }

    void onExit(int pidfd) {
        auto found = running_.find(pidfd);
        if (found == running_.end()) {
            return;
        }
        const auto status = reapPidfd(pidfd);
        if (!status) {
            return; // woken before the exit was complete; the pidfd stays readable until it is
        }
        Hook hook = std::move(found->second);
        running_.erase(found);
        loop_.unwatchFd(pidfd);
        loop_.cancelTimer(hook.kill_timer);
        ::close(pidfd);
        const std::string how = status->describe() + (hook.killed ? " (over its time limit)" : "");
        const bool success = status->success() && !hook.killed;
        bus::logEvent(success ? spdlog::level::info : spdlog::level::err, "recovery.notify_finished",
                      {{"service", hook.service},
                       {"pid", std::to_string(hook.pid)},
                       {"exit_code", std::to_string(status->exit_code)},
                       {"signal", std::to_string(status->signal)}},
                      fmt::format("notify command for {} (pid {}) {}", hook.service, hook.pid, how));
    }

    EventLoop& loop_;
    std::vector<std::string> command_;
    std::map<int, Hook> running_; // by pidfd
};

class RecoveryAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Recovery1_adaptor>,
                              public SuiteService {
  public:
    RecoveryAdaptor(ServiceContext& context, std::unique_ptr<ServiceResolver> resolver)
        : AdaptorInterfaces(context.connection, bus::kRecoveryPath), config_(context.config),
          authorizer_(context.authorizer), hooks_(context.loop, context.config.crash_recovery.notify_command),
          resolver_(std::move(resolver)), callers_(*resolver_) {
        // Without its database the service still announces actions and escalations; the history calls answer
        // Unavailable and opening is tried again on each of them. The state store likewise.
        try {
            openHistory();
        } catch (const ServiceError&) {
        }
        if (config_.crash_recovery.save_session_state) {
            try {
                openStateStore();
            } catch (const ServiceError&) {
            }
        }
        registerAdaptor();
    }

    ~RecoveryAdaptor() { unregisterAdaptor(); }

  private:
    void RecordExit(const uint64_t& time, const std::string& service, const int32_t& pid,
                    const int32_t& exit_code, const int32_t& signal, const std::string& failure_class,
                    const uint64_t& uptime, const uint32_t& attempt, const std::string& action,
                    const uint64_t& delay, const bool& escalate, const std::string& reason) override {
        const std::string summary =
            service + ", pid " + std::to_string(pid) + ", " + failure_class + ", " + action;
        bus::audited(authorizer_, getObject(), "RecordExit", summary, [&] {
            requireServiceName("RecordExit", service);
            requireAction("RecordExit", action);
            requireFailureClass("RecordExit", failure_class);
            CrashEntry entry;
            entry.time = timeFromWire("RecordExit", "time", time);
            entry.service = service;
            entry.pid = pid;
            entry.exit_code = exit_code;
            entry.signal = signal;
            entry.failure_class = failure_class;
            entry.uptime = durationFromWire(uptime);
            entry.attempt = attempt;
            entry.action = action;
            entry.delay = durationFromWire(delay);
            entry.escalate = escalate;
            entry.reason = reason;

            // The supervisor has acted on this decision already: it is announced even when the history cannot
            // keep it, and the caller learns about the history afterwards.
            std::optional<ServiceError> history_error;
            try {
                if (recorded(entry)) {
                    // The same report again, after its first delivery timed out: announced (and counted
                    // against its state) once already.
                    spdlog::debug("RecordExit: the exit of {} (pid {}) is recorded already", service, pid);
                    return;
                }
            } catch (const ServiceError& e) {
                // Without the history a report delivered twice cannot be told apart; the crash is counted
                // anyway, since missing a poisoned state costs more than quarantining one crash early.
                history_error = e;
            }
            // What the exit means for the service's session state goes into the history with it.
            if (failure_class == toString(FailureClass::Start)) {
                if (const auto note = countEarlyCrash(service)) {
                    entry.reason += "; " + *note;
                }
            } else if (!failure_class.empty()) {
                recordStableRun(service);
            }
            if (!history_error) {
                try {
                    record(entry);
                } catch (const ServiceError& e) {
                    history_error = e;
                }
            }
            announce(entry);
            if (history_error) {
                throw *history_error;
            }
        });
    }

    void RecordRecovered(const uint64_t& time, const std::string& service) override {
        bus::audited(authorizer_, getObject(), "RecordRecovered", service, [&] {
            requireServiceName("RecordRecovered", service);
            const auto when = timeFromWire("RecordRecovered", "time", time);
            auto& store = history();
            try {
                if (!store.recordRecovered(service, when)) {
                    spdlog::debug("{} runs again; no pending exit to close", service);
                }
            } catch (const CrashHistoryError& e) {
                throw ServiceError(ErrorCode::Unavailable, std::string("RecordRecovered: ") + e.what());
            }
        });
    }

    std::vector<wire::HistoryEntry> GetHistory(const std::string& service, const std::string& failure_class,
                                               const uint64_t& since, const uint32_t& limit) override {
        return bus::guarded("GetHistory", [&] {
            if (!service.empty()) {
                requireServiceName("GetHistory", service);
            }
            requireFailureClass("GetHistory", failure_class);
            const auto from = timeFromWire("GetHistory", "since", since);
            std::vector<wire::HistoryEntry> result;
            for (const auto& entry : readHistory("GetHistory", [&](const CrashHistory& store) {
                     return store.query(service, failure_class, from, limit);
                 })) {
                result.push_back(wire::toWire(entry));
            }
            return result;
        });
    }

    std::vector<wire::SummaryEntry> GetSummary() override {
        return bus::guarded("GetSummary", [&] {
            std::vector<wire::SummaryEntry> result;
            for (const auto& summary :
                 readHistory("GetSummary", [](const CrashHistory& store) { return store.summary(); })) {
                result.push_back(wire::toWire(summary));
            }
            return result;
        });
    }

    std::tuple<std::vector<wire::ExplainStep>, std::vector<std::string>>
    Explain(const std::string& service, const std::string& failure_class, const uint32_t& failures) override {
        return bus::guarded("Explain", [&] {
            requireServiceName("Explain", service);
            requireFailureClass("Explain", failure_class);
            if (failures > kMaxExplainedFailures) {
                invalid("Explain", "failures",
                        std::to_string(failures) + " is more than " + std::to_string(kMaxExplainedFailures));
            }
            const ServiceConfig* configured = config_.findService(service);
            if (configured == nullptr) {
                throw ServiceError(ErrorCode::NotFound, "Explain: no service named '" + service + "'");
            }
            const FailureClass explained_class =
                failure_class.empty() ? FailureClass::Exit : *failureClassFromString(failure_class);
            const RecoveryPolicy policy = recoveryPolicyFor(*configured, config_.crash_recovery);
            Explanation explanation =
                explain(policy, failures == 0 ? kDefaultExplainedFailures : failures, explained_class);
            if (auto warning = restartBudgetWarning(policy, explained_class, config_.crash_recovery)) {
                explanation.warnings.push_back(std::move(*warning));
            }
            std::vector<wire::ExplainStep> steps;
            for (const auto& failure : explanation.failures) {
                steps.push_back(wire::toWire(failure));
            }
            return std::tuple{std::move(steps), std::move(explanation.warnings)};
        });
    }

    uint64_t SaveState(const std::vector<uint8_t>& data) override {
        return bus::guarded("SaveState", [&] {
            auto& store = stateStore("SaveState");
            const std::string service = callers_.requireService(getObject(), "SaveState");
            try {
                const uint64_t version = store.save(service, data);
                spdlog::debug("SaveState: {} saved version {} ({} bytes)", service, version, data.size());
                refreshHandoff(service);
                return version;
            } catch (const StateStoreError& e) {
                if (e.kind() != StateStoreError::Kind::TooLarge) {
                    spdlog::error("SaveState: {}", e.what());
                }
                throwStateError("SaveState", e);
            }
        });
    }

    std::tuple<std::vector<uint8_t>, uint64_t, uint64_t> LoadState() override {
        return bus::guarded("LoadState", [&] {
            auto& store = stateStore("LoadState");
            const std::string service = callers_.requireService(getObject(), "LoadState");
            try {
                LoadResult loaded = store.load(service);
                if (!loaded.warning.empty()) {
                    spdlog::warn("LoadState: {}", loaded.warning);
                }
                if (!loaded.state) {
                    throw ServiceError(
                        ErrorCode::NotFound,
                        "LoadState: " + service + " has no session state to load" +
                            (loaded.corrupt_skipped.empty() ? "" : " (every version is corrupt)"));
                }
                // From now on early crashes of the service count against this version. Failing to note that
                // (a full disk) must not keep a service from its state: it only weakens the quarantine.
                try {
                    store.recordLoaded(service, loaded.state->version);
                } catch (const StateStoreError& e) {
                    spdlog::error("LoadState: early crashes of {} cannot count against version {}: {}",
                                  service, loaded.state->version, e.what());
                }
                return std::tuple{std::move(loaded.state->data), loaded.state->version,
                                  wire::toMicros(loaded.state->saved_at)};
            } catch (const StateStoreError& e) {
                spdlog::error("LoadState: {}", e.what());
                throwStateError("LoadState", e);
            }
        });
    }

    std::vector<wire::StateEntry> ListStates() override {
        return bus::guarded("ListStates", [&] {
            auto& store = stateStore("ListStates");
            // An administrator sees every service; a supervised service only itself; anybody else nothing.
            std::optional<std::string> only;
            if (!isAdmin("ListStates")) {
                only = callers_.findService(getObject(), "ListStates");
                if (!only) {
                    throw ServiceError(
                        ErrorCode::PermissionDenied,
                        "ListStates: the caller (pid " +
                            std::to_string(CallerIdentity::callerPid(getObject(), "ListStates")) +
                            ") is neither an administrator nor a process of a supervised service");
                }
            }
            std::vector<ServiceStateInfo> services;
            try {
                services = store.list();
            } catch (const StateStoreError& e) {
                spdlog::error("ListStates: {}", e.what());
                throwStateError("ListStates", e);
            }
            std::vector<wire::StateEntry> result;
            for (const auto& info : services) {
                if (only && info.service != *only) {
                    continue;
                }
                for (const auto& version : info.versions) {
                    result.emplace_back(info.service, version.version, version.size,
                                        wire::toMicros(version.saved_at),
                                        std::string(toString(version.checksum)), version.quarantined);
                }
            }
            return result;
        });
    }

    uint32_t DeleteState(const std::string& name) override {
        return bus::audited(authorizer_, getObject(), "DeleteState", name, [&] {
            requireServiceName("DeleteState", name);
            auto& store = stateStore("DeleteState");
            try {
                const std::size_t deleted = store.remove(name);
                handoff_.remove(name);
                bus::logEvent(spdlog::level::info, "state.deleted",
                              {{"service", name}, {"versions", std::to_string(deleted)}},
                              fmt::format("deleted {} version(s) of the session state of {}", deleted, name));
                return static_cast<uint32_t>(std::min<std::size_t>(deleted, UINT32_MAX));
            } catch (const StateStoreError& e) {
                spdlog::error("DeleteState: {}", e.what());
                throwStateError("DeleteState", e);
            }
        });
    }

    uint32_t HistorySize() override {
        return bus::guarded("HistorySize", [&] {
            return history_ ? static_cast<uint32_t>(std::min<std::size_t>(history_->size(), UINT32_MAX)) : 0U;
        });
    }

    // Whether the caller has the rights of the mutating methods. The Authorizer answers by throwing.
    bool isAdmin(const std::string& method) {
        try {
            authorizer_.requireAdmin(getObject(), method);
            return true;
        } catch (const sdbus::Error& e) {
            if (e.getName() == bus::errorName(ErrorCode::PermissionDenied)) {
                return false;
            }
            throw;
        }
    }

    // Opens the session state store, creating its directory. Throws ServiceError(Unavailable) when it cannot.
    void openStateStore() {
        const auto& directory = config_.crash_recovery.session_state_path;
        const auto file = directory / kStateStoreFileName;
        try {
            std::error_code error;
            std::filesystem::create_directories(directory, error);
            if (error) {
                throw StateStoreError(StateStoreError::Kind::Storage,
                                      directory.string() +
                                          ": cannot create the directory: " + error.message());
            }
            state_ =
                std::make_unique<StateStore>(file, StateStoreSettings::fromConfig(config_.crash_recovery));
        } catch (const StateStoreError& e) {
            const std::string message = std::string("session state store unavailable: ") + e.what();
            if (message != last_state_open_error_) {
                spdlog::error("{}", message);
                last_state_open_error_ = message;
            }
            throw ServiceError(ErrorCode::Unavailable, message);
        }
        last_state_open_error_.clear();
        for (const auto& service : config_.services) {
            refreshHandoff(service.name);
        }
        if (const auto& set_aside = state_->setAside()) {
            bus::logEvent(spdlog::level::err, "state.store_corrupt",
                          {{"file", file.string()}, {"moved_to", set_aside->moved_to.string()}},
                          fmt::format("session state store {} could not be read ({}); moved it to {} and "
                                      "started an empty store: every service's saved state is gone",
                                      file.string(), set_aside->reason, set_aside->moved_to.string()));
        }
        spdlog::info("session state in {}", file.string());
    }

    // The state store, opened now if it could not be before.
    StateStore& stateStore(const std::string& method) {
        if (!config_.crash_recovery.save_session_state) {
            throw ServiceError(
                ErrorCode::Unavailable,
                method + ": session state is not kept (crash_recovery.save_session_state is false)");
        }
        if (!state_) {
            try {
                openStateStore();
            } catch (const ServiceError& e) {
                throw ServiceError(e.code(), method + ": " + e.what());
            }
        }
        return *state_;
    }

    // A crash within the startup window counts against the state version the service last loaded; enough in a
    // row quarantine that version. The supervisor has acted on the exit already, so a failing store is only
    // logged: the report itself must not fail for it.
    std::optional<std::string> countEarlyCrash(const std::string& service) {
        if (!config_.crash_recovery.save_session_state) {
            return std::nullopt;
        }
        try {
            const EarlyCrashResult result = stateStore("RecordExit").recordEarlyCrash(service);
            if (!result.loaded_version) {
                return std::nullopt;
            }
            if (!result.quarantined) {
                auto note =
                    fmt::format("early crash {} of {} in a row after loading session state version {}",
                                result.crashes_in_a_row, config_.crash_recovery.state_poison_crashes,
                                *result.loaded_version);
                spdlog::info("{}: {}", service, note);
                return note;
            }
            const QuarantineEvent& event = *result.quarantined;
            refreshHandoff(service);
            auto note = fmt::format("session state version {} quarantined: {}", event.version, event.reason);
            bus::logEvent(spdlog::level::err, "state.quarantined",
                          {{"service", event.service},
                           {"version", std::to_string(event.version)},
                           {"next_version", event.next_version ? std::to_string(*event.next_version) : ""}},
                          fmt::format("quarantined session state version {} of {}: {}", event.version,
                                      event.service, event.reason));
            return note;
        } catch (const StateStoreError& e) {
            spdlog::error("RecordExit: counting the early crash of {} against its state: {}", service,
                          e.what());
        } catch (const ServiceError& e) {
            spdlog::error("RecordExit: counting the early crash of {} against its state: {}", service,
                          e.what());
        }
        return std::nullopt;
    }

    // Makes the service's handoff file (state_handoff = true) hold what LoadState would return now. When that
    // fails the file goes, so that the service's next start asks LoadState rather than resume from an older
    // version; the state itself is safe in the store either way.
    void refreshHandoff(const std::string& service) {
        const auto configured = std::find_if(config_.services.begin(), config_.services.end(),
                                             [&](const ServiceConfig& s) { return s.name == service; });
        if (configured == config_.services.end() || !configured->state_handoff || !state_) {
            return;
        }
        try {
            if (auto loaded = state_->load(service); loaded.state) {
                handoff_.write(service, *loaded.state);
            } else {
                handoff_.remove(service);
            }
        } catch (const StateStoreError& e) {
            handoff_.remove(service);
            spdlog::error("state handoff of {}: {}; its next start asks LoadState instead", service,
                          e.what());
        }
    }

    // A failure after the startup window: the service got past its start with the state it loaded, so the
    // early crashes before do not count towards quarantining it any more.
    void recordStableRun(const std::string& service) {
        if (!config_.crash_recovery.save_session_state) {
            return;
        }
        try {
            stateStore("RecordExit").recordStable(service);
        } catch (const std::exception& e) {
            spdlog::error("RecordExit: resetting the early crashes of {}: {}", service, e.what());
        }
    }

    // Opens the database, creating its directory. Throws ServiceError(Unavailable) when it cannot.
    void openHistory() {
        const auto& directory = config_.crash_recovery.session_state_path;
        const auto file = directory / kHistoryFileName;
        try {
            std::error_code error;
            std::filesystem::create_directories(directory, error);
            if (error) {
                throw CrashHistoryError(directory.string() +
                                        ": cannot create the directory: " + error.message());
            }
            history_ = std::make_unique<CrashHistory>(file);
        } catch (const CrashHistoryError& e) {
            const std::string message = std::string("crash history unavailable: ") + e.what();
            if (message != last_open_error_) {
                spdlog::error("{}", message);
                last_open_error_ = message;
            }
            throw ServiceError(ErrorCode::Unavailable, message);
        }
        last_open_error_.clear();
        if (const auto& set_aside = history_->setAside()) {
            bus::logEvent(
                spdlog::level::err, "recovery.history_corrupt",
                {{"file", file.string()}, {"moved_to", set_aside->moved_to.string()}},
                fmt::format("crash history {} could not be read ({}); moved it to {} and started an "
                            "empty history",
                            file.string(), set_aside->reason, set_aside->moved_to.string()));
        }
        spdlog::info("crash history in {} ({} exits)", file.string(), history_->size());
    }

    // The history, opened now if it could not be before.
    CrashHistory& history() {
        if (!history_) {
            openHistory();
            if (history_->size() != 0) {
                announceHistorySize(); // it read 0 while the history was unavailable
            }
        }
        return *history_;
    }

    void announceHistorySize() {
        getObject().emitPropertiesChangedSignal(org::tauos::Recovery1_adaptor::INTERFACE_NAME,
                                                {"HistorySize"});
    }

    template <typename Read>
    auto readHistory(const char* method, Read&& read) -> decltype(read(std::declval<const CrashHistory&>())) {
        auto& store = history();
        try {
            return read(store);
        } catch (const CrashHistoryError& e) {
            throw ServiceError(ErrorCode::Unavailable, std::string(method) + ": " + e.what());
        }
    }

    // Throws ServiceError(Unavailable) when the history cannot keep the entry. False when it had it already.
    bool recorded(const CrashEntry& entry) {
        try {
            return history().contains(entry.service, entry.time, entry.pid);
        } catch (const CrashHistoryError& e) {
            spdlog::error("crash history: {}", e.what());
            throw ServiceError(ErrorCode::Unavailable, std::string("RecordExit: ") + e.what());
        }
    }

    void record(const CrashEntry& entry) {
        auto& store = history();
        const std::size_t size_before = store.size();
        try {
            store.recordExit(entry);
        } catch (const CrashHistoryError& e) {
            spdlog::error("crash history: {}", e.what());
            throw ServiceError(ErrorCode::Unavailable, std::string("RecordExit: ") + e.what());
        }
        if (store.size() != size_before) {
            announceHistorySize();
        }
    }

    void announce(const CrashEntry& entry) {
        const std::string attempt = std::to_string(entry.attempt);
        const std::map<std::string, std::string> fields = {{"service", entry.service},
                                                           {"action", entry.action},
                                                           {"attempt", attempt},
                                                           {"failure_class", entry.failure_class},
                                                           {"reason", entry.reason}};
        if (entry.action != "stopped") {
            const bool stays_down = entry.action == "give_up" || entry.action == "notify_and_stop";
            bus::logEvent(
                stays_down ? spdlog::level::err : spdlog::level::info, "recovery.action", fields,
                fmt::format("{}: {} (attempt {}): {}", entry.service, entry.action, attempt, entry.reason));
            emitRecoveryAction(entry.service, entry.action, entry.attempt, entry.reason);
        }
        if (!entry.escalate) {
            return;
        }
        bus::logEvent(spdlog::level::critical, "recovery.escalated", fields,
                      fmt::format("{} needs an administrator ({} at failure {}): {}", entry.service,
                                  entry.action, attempt, entry.reason));
        emitRecoveryEscalated(entry.service, entry.action, entry.attempt, entry.failure_class, entry.reason);
        hooks_.run(entry.service, {{"TAU_SERVICE", entry.service},
                                   {"TAU_ACTION", entry.action},
                                   {"TAU_ATTEMPT", attempt},
                                   {"TAU_FAILURE_CLASS", entry.failure_class},
                                   {"TAU_EXIT_CODE", std::to_string(entry.exit_code)},
                                   {"TAU_SIGNAL", std::to_string(entry.signal)},
                                   {"TAU_REASON", entry.reason},
                                   {"TAU_TIME", rfc3339(entry.time)}});
    }

    const Config& config_;
    bus::Authorizer& authorizer_;
    NotifyHooks hooks_;
    std::unique_ptr<CrashHistory> history_;
    std::string last_open_error_;
    std::unique_ptr<ServiceResolver> resolver_;
    CallerIdentity callers_;
    std::unique_ptr<StateStore> state_;
    StateHandoffFiles handoff_{config_.crash_recovery.session_state_path / kStateHandoffDirectory};
    std::string last_state_open_error_;
};

} // namespace

std::unique_ptr<SuiteService> makeRecoveryService(ServiceContext& context) {
    return std::make_unique<RecoveryAdaptor>(context,
                                             std::make_unique<BusServiceResolver>(context.connection));
}

} // namespace tau
