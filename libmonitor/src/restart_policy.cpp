#include "tau/restart_policy.h"

#include <cmath>

namespace tau {

std::string_view toString(ExitAction action) {
    switch (action) {
    case ExitAction::Restart:
        return "restart";
    case ExitAction::RestartDelayed:
        return "restart_delayed";
    case ExitAction::GiveUp:
        return "give_up";
    case ExitAction::None:
        return "none";
    case ExitAction::Stopped:
        return "stopped";
    }
    return "none";
}

ExitDecision decideOnExit(const RestartPolicy& policy, const ExitStatus& status, bool stop_requested,
                          std::chrono::steady_clock::duration uptime, unsigned previous_failures) {
    if (stop_requested) {
        return {ExitAction::Stopped, {}, 0};
    }
    if (status.success()) {
        return {ExitAction::None, {}, 0};
    }
    const unsigned earlier = uptime >= policy.stability_window ? 0 : previous_failures;
    const unsigned failures = earlier + 1;
    if (!policy.auto_recovery || policy.strategy == RecoveryStrategy::None) {
        return {ExitAction::None, {}, failures};
    }
    if (policy.max_attempts && failures > *policy.max_attempts) {
        return {ExitAction::GiveUp, {}, failures};
    }
    if (policy.strategy == RecoveryStrategy::RestartWithDelay && policy.delay.count() > 0) {
        return {ExitAction::RestartDelayed, policy.delay, failures};
    }
    return {ExitAction::Restart, {}, failures};
}

RestartPolicy policyFor(const ServiceConfig& service, const CrashRecoveryConfig& crash_recovery) {
    RestartPolicy policy;
    // Bridge to the escalation ladder until the supervisor uses RecoveryTracker: only the first step counts.
    // A parsed config always has a step; an empty ladder is a ServiceConfig built in code.
    if (service.recovery.ladder.empty()) {
        policy.max_attempts = crash_recovery.max_recovery_attempts;
    } else {
        const LadderStep& first = service.recovery.ladder.front();
        policy.strategy = first.strategy;
        policy.delay = std::chrono::milliseconds(std::llround(first.delay_seconds * 1000.0));
        policy.max_attempts = first.attempts;
    }
    policy.stability_window = std::chrono::seconds(crash_recovery.recovery_timeout_seconds);
    policy.auto_recovery = crash_recovery.enabled && crash_recovery.auto_recovery;
    return policy;
}

} // namespace tau
