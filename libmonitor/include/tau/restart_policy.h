#pragma once
// What the supervisor does when a service's main process ends. Pure logic: the same code decides for the
// root and, later, for the recovery service.

#include "tau/config.h"
#include "tau/spawner.h"

#include <chrono>
#include <optional>
#include <string_view>

namespace tau {

struct RestartPolicy {
    RecoveryStrategy strategy = RecoveryStrategy::Restart;
    std::chrono::milliseconds delay{1000};     // for RestartWithDelay
    std::optional<unsigned> max_attempts;      // nullopt: unlimited
    std::chrono::seconds stability_window{60}; // an uptime this long forgives earlier failures
    bool auto_recovery = true;
};

enum class ExitAction { Restart, RestartDelayed, GiveUp, None, Stopped };
std::string_view toString(ExitAction action); // "restart", "restart_delayed", "give_up", "none", "stopped"

struct ExitDecision {
    ExitAction action = ExitAction::None;
    std::chrono::milliseconds delay{0};
    unsigned consecutive_failures = 0; // to remember for the next exit; includes this one
};

// `previous_failures`: consecutive failures before this exit. A clean exit (status 0) is not a failure.
ExitDecision decideOnExit(const RestartPolicy& policy, const ExitStatus& status, bool stop_requested,
                          std::chrono::steady_clock::duration uptime, unsigned previous_failures);

// The policy of a configured service: its own recovery table, falling back to [crash_recovery].
RestartPolicy policyFor(const ServiceConfig& service, const CrashRecoveryConfig& crash_recovery);

} // namespace tau
