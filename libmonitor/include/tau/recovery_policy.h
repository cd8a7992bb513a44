#pragma once
// Recovery in depth: what to do when a service's main process ends, walking the service's escalation
// ladder (restart, back off, safe mode, notify the administrator, give up). Pure logic with the clock and
// the randomness passed in, so every decision can be replayed exactly in a test.

#include "tau/config.h"
#include "tau/spawner.h"

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tau {

class RandomSource {
  public:
    virtual ~RandomSource() = default;
    virtual double uniform() = 0; // [0, 1)
};

class SystemRandom final : public RandomSource {
  public:
    SystemRandom();
    double uniform() override;

  private:
    std::mt19937_64 engine_;
};

struct RecoveryPolicy {
    std::vector<LadderStep> ladder;
    std::map<FailureClass, std::vector<LadderStep>> class_ladders;
    std::chrono::milliseconds stability_window{60000};
    std::chrono::milliseconds start_window{1000};
    unsigned start_limit_burst = 5;
    std::chrono::milliseconds start_limit_interval{10000};
    std::vector<int> success_exit_codes{0};
    std::vector<int> no_restart_exit_codes;
    std::vector<int> no_restart_signals;
    bool auto_recovery = true;
};

// The policy of a configured service. auto_recovery needs both switches of [crash_recovery]; the stability
// window is the service's own or crash_recovery.recovery_timeout_seconds.
RecoveryPolicy recoveryPolicyFor(const ServiceConfig& service, const CrashRecoveryConfig& crash_recovery);

struct ExitEvent {
    ExitStatus status;
    std::chrono::steady_clock::duration uptime{};
    bool stop_requested = false;
    // Set by the supervisor when it knows better than the exit status (watchdog, oom, probe,
    // resource_limit, start). An event with a cause is always a failure.
    std::optional<FailureClass> cause;
    // Set by the supervisor when a service this one depends on is not running: a failure then is most
    // likely the dependency's doing, so the service waits for it instead of spending a retry.
    std::string dependency_down;
};

// PromoteStandby is the supervisor's: a restart the ladder asked for, served at once by the warm standby.
enum class RecoveryAction {
    Restart,
    RestartInSafeMode,
    GiveUp,
    NotifyAndStop,
    None,
    Stopped,
    WaitForDependency,
    PromoteStandby
};
// "restart", "restart_safe_mode", "give_up", "notify_and_stop", "none", "stopped", "wait_for_dependency",
// "promote_standby"
std::string_view toString(RecoveryAction action);
std::optional<RecoveryAction> recoveryActionFromString(std::string_view text);
// Whether the service is meant to run again after this action, so the exit waits for that outcome.
bool bringsBack(RecoveryAction action);

struct RecoveryDecision {
    RecoveryAction action = RecoveryAction::None;
    std::chrono::milliseconds delay{0};
    unsigned attempt =
        0; // failures in this incident, this one included; 0 for None/Stopped/WaitForDependency
    std::optional<FailureClass> failure_class;          // nullopt for None/Stopped
    RecoveryStrategy strategy = RecoveryStrategy::None; // the ladder step that decided
    bool escalate = false;        // true once per incident: at the first NotifyAndStop or GiveUp
    bool start_limit_hit = false; // the delay was stretched to respect the start limit
    std::string reason;           // one sentence for the log and the operator
};

// The recovery state of one service across its exits.
class RecoveryTracker {
  public:
    explicit RecoveryTracker(RecoveryPolicy policy);

    RecoveryDecision onExit(const ExitEvent& event, std::chrono::steady_clock::time_point now,
                            RandomSource& random);
    void onStarted(std::chrono::steady_clock::time_point at); // every spawn, for the start limit
    void reset();                                             // a manual start: a clean slate
    bool inSafeMode() const { return in_safe_mode_; }
    void leaveSafeMode(); // after a stable run in safe mode; the failures of the incident are kept
    unsigned failures() const { return failures_; }
    const RecoveryPolicy& policy() const { return policy_; }

    // What a restarted supervisor needs to go on where the previous one stopped.
    struct State {
        unsigned failures = 0;
        bool in_safe_mode = false;
        bool escalated = false;
        std::vector<std::chrono::steady_clock::time_point> starts;
        bool operator==(const State&) const = default;
    };
    State state() const { return {failures_, in_safe_mode_, escalated_, starts_}; }
    void restore(State state);

  private:
    FailureClass classify(const ExitEvent& event) const;
    void endIncident();
    bool takeEscalation();
    std::optional<std::chrono::milliseconds> startLimitDelay(std::chrono::steady_clock::time_point now,
                                                             std::chrono::milliseconds delay) const;

    RecoveryPolicy policy_;
    unsigned failures_ = 0;
    bool in_safe_mode_ = false;
    bool escalated_ = false;
    // Only the start_limit_burst most recent starts can decide whether one more start is too many.
    // A vector, not a deque: a handful of entries, and an empty deque already costs a heap block per service.
    std::vector<std::chrono::steady_clock::time_point> starts_;
};

struct ExplainedFailure {
    unsigned attempt;
    RecoveryAction action;
    std::chrono::milliseconds delay;                // without jitter
    std::chrono::milliseconds min_delay, max_delay; // the range jitter can move it within
    RecoveryStrategy strategy;
};

struct Explanation {
    std::vector<ExplainedFailure> failures;
    std::vector<std::string> warnings; // about the whole policy, in a fixed order
};

// What `failures` consecutive failures of one class would lead to, ignoring the start limit.
Explanation explain(const RecoveryPolicy& policy, unsigned failures,
                    FailureClass failure_class = FailureClass::Exit);

} // namespace tau
