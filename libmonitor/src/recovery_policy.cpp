#include "tau/recovery_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace tau {

namespace {

using std::chrono::milliseconds;

constexpr FailureClass kAllFailureClasses[] = {
    FailureClass::Exit,  FailureClass::Signal,        FailureClass::Oom,  FailureClass::Watchdog,
    FailureClass::Probe, FailureClass::ResourceLimit, FailureClass::Start};

// The configuration allows no duration beyond a year; a policy built in code gets the same ceiling, so
// that an infinite or absurd delay cannot overflow the conversion.
constexpr double kMaxSeconds = 365.0 * 24 * 60 * 60;

milliseconds secondsToMilliseconds(double seconds) {
    if (!(seconds > 0)) {
        return milliseconds(0);
    }
    return milliseconds(std::llround(std::min(seconds, kMaxSeconds) * 1000.0));
}

// "8.0", "0.25", "1.234": as many decimals as the milliseconds need, at least one.
std::string formatSeconds(milliseconds duration) {
    char text[64];
    std::snprintf(text, sizeof text, "%.3f", static_cast<double>(duration.count()) / 1000.0);
    std::string result = text;
    while (result.size() > 1 && result.back() == '0' && result[result.size() - 2] != '.') {
        result.pop_back();
    }
    return result + " s";
}

std::string countOf(std::uint64_t count, const std::string& noun) {
    return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

bool contains(const std::vector<int>& values, int value) {
    return std::find(values.begin(), values.end(), value) != values.end();
}

bool restarts(RecoveryStrategy strategy) {
    return strategy == RecoveryStrategy::Restart || strategy == RecoveryStrategy::RestartWithDelay ||
           strategy == RecoveryStrategy::RestartWithBackoff || strategy == RecoveryStrategy::SafeMode;
}

const std::vector<LadderStep>& ladderFor(const RecoveryPolicy& policy, FailureClass failure_class) {
    auto found = policy.class_ladders.find(failure_class);
    return found == policy.class_ladders.end() ? policy.ladder : found->second;
}

// Where the n-th failure of an incident falls: which step, and the how-manieth failure of that step.
struct LadderPosition {
    std::size_t step;
    unsigned within_step; // 1-based
};

std::optional<LadderPosition> locate(const std::vector<LadderStep>& ladder, unsigned failure) {
    unsigned remaining = failure;
    for (std::size_t index = 0; index < ladder.size(); ++index) {
        const LadderStep& step = ladder[index];
        if (!step.attempts || remaining <= *step.attempts) {
            return LadderPosition{index, remaining};
        }
        remaining -= *step.attempts;
    }
    return std::nullopt;
}

std::uint64_t boundedAttempts(const std::vector<LadderStep>& ladder) {
    std::uint64_t total = 0;
    for (const LadderStep& step : ladder) {
        total += step.attempts.value_or(0);
    }
    return total;
}

// The delay of the `within_step`-th failure handled by `step`, before jitter.
double baseDelaySeconds(const LadderStep& step, unsigned within_step) {
    switch (step.strategy) {
    case RecoveryStrategy::RestartWithDelay:
    case RecoveryStrategy::SafeMode:
        return step.delay_seconds;
    case RecoveryStrategy::RestartWithBackoff: {
        if (step.delay_seconds <= 0) {
            return 0; // also keeps 0 * inf from turning into NaN for a long run of failures
        }
        // pow may overflow to infinity after many failures; the cap absorbs it.
        double grown =
            step.delay_seconds * std::pow(step.backoff_factor, static_cast<double>(within_step - 1));
        return std::min(grown, step.max_delay_seconds);
    }
    case RecoveryStrategy::Restart:
    case RecoveryStrategy::NotifyAdmin:
    case RecoveryStrategy::None:
        break;
    }
    return 0;
}

milliseconds baseDelay(const LadderStep& step, unsigned within_step) {
    return secondsToMilliseconds(baseDelaySeconds(step, within_step));
}

// Whether the step's delay stays the same from this failure on, so the rest can be multiplied out.
bool delayIsSettled(const LadderStep& step, unsigned within_step) {
    if (step.strategy != RecoveryStrategy::RestartWithBackoff || step.delay_seconds <= 0 ||
        step.backoff_factor <= 1) {
        return true;
    }
    return baseDelaySeconds(step, within_step) >= step.max_delay_seconds;
}

milliseconds jittered(const LadderStep& step, milliseconds delay, RandomSource& random) {
    // Without jitter no random number is drawn, so such steps are exact and use up nothing.
    if (step.jitter <= 0 || delay.count() <= 0) {
        return delay;
    }
    double factor = 1.0 + step.jitter * (2.0 * random.uniform() - 1.0);
    return milliseconds(std::max<long long>(0, std::llround(static_cast<double>(delay.count()) * factor)));
}

RecoveryAction actionOf(RecoveryStrategy strategy) {
    switch (strategy) {
    case RecoveryStrategy::Restart:
    case RecoveryStrategy::RestartWithDelay:
    case RecoveryStrategy::RestartWithBackoff:
        return RecoveryAction::Restart;
    case RecoveryStrategy::SafeMode:
        return RecoveryAction::RestartInSafeMode;
    case RecoveryStrategy::NotifyAdmin:
        return RecoveryAction::NotifyAndStop;
    case RecoveryStrategy::None:
        break;
    }
    return RecoveryAction::None;
}

std::string describeFailure(const ExitEvent& event, FailureClass failure_class) {
    std::string status = event.status.describe();
    if (!event.cause) {
        if (failure_class == FailureClass::Start) {
            return status + " only " + formatSeconds(std::chrono::duration_cast<milliseconds>(event.uptime)) +
                   " after it started (a failed start)";
        }
        return status;
    }
    switch (*event.cause) {
    case FailureClass::Oom:
        return "killed by the OOM killer (" + status + ")";
    case FailureClass::Watchdog:
        return "missed its watchdog deadline (" + status + ")";
    case FailureClass::Probe:
        return "failed its liveness probe (" + status + ")";
    case FailureClass::ResourceLimit:
        return "stayed over its resource limit (" + status + ")";
    case FailureClass::Start:
        return "failed to start (" + status + ")";
    case FailureClass::Exit:
    case FailureClass::Signal:
        break;
    }
    return status;
}

std::string describePosition(const std::vector<LadderStep>& ladder, LadderPosition position,
                             unsigned failure) {
    const LadderStep& step = ladder[position.step];
    std::string text =
        "failure " + std::to_string(failure) + ", attempt " + std::to_string(position.within_step);
    if (step.attempts) {
        text += " of " + std::to_string(*step.attempts);
    }
    return text + " of the " + std::string(toString(step.strategy)) + " step";
}

std::string capitalized(std::string text) {
    if (!text.empty() && text.front() >= 'a' && text.front() <= 'z') {
        text.front() = static_cast<char>(text.front() - 'a' + 'A');
    }
    return text;
}

// Whether a service that fails as soon as it starts would, under this step alone, reach `burst` starts
// within `interval`: then the start limit, not the step, sets the pace.
bool outpacesStartLimit(const LadderStep& step, unsigned burst, milliseconds interval) {
    if (!restarts(step.strategy) || burst == 0 || (step.attempts && *step.attempts < burst)) {
        return false;
    }
    // The start before the step's first restart plus `burst` restarts: the last of them is stretched when
    // the first `burst` delays add up to less than the interval.
    constexpr unsigned kMaxSummedDelays = 100000;
    double total = 0;
    for (unsigned attempt = 1; attempt <= burst; ++attempt) {
        double delay = static_cast<double>(baseDelay(step, attempt).count());
        if (delayIsSettled(step, attempt) || attempt == kMaxSummedDelays) {
            total += delay * static_cast<double>(burst - attempt + 1);
            break;
        }
        total += delay;
        if (total >= static_cast<double>(interval.count())) {
            return false;
        }
    }
    return total < static_cast<double>(interval.count());
}

void warnAboutLadder(const RecoveryPolicy& policy, const std::vector<LadderStep>& ladder,
                     const std::string& name, std::vector<std::string>& warnings) {
    if (ladder.empty()) {
        warnings.push_back(capitalized(name) + " is empty: the first failure gives up");
        return;
    }
    bool after_safe_mode = false;
    for (std::size_t index = 0; index < ladder.size(); ++index) {
        const LadderStep& step = ladder[index];
        std::string step_name = capitalized(name) + " step " + std::to_string(index + 1) + " (" +
                                std::string(toString(step.strategy)) + ")";
        bool last = index + 1 == ladder.size();
        if (!step.attempts && !last) {
            warnings.push_back(step_name + " has no attempts limit, so the steps after it never run");
        }
        if (!step.attempts && last && restarts(step.strategy)) {
            warnings.push_back(
                capitalized(name) +
                " never gives up nor notifies anyone: its last step restarts the service without "
                "an attempts limit");
        }
        if (step.strategy == RecoveryStrategy::RestartWithBackoff &&
            step.max_delay_seconds < step.delay_seconds) {
            warnings.push_back(step_name + " has max_delay_seconds below delay_seconds, so every delay is " +
                               formatSeconds(secondsToMilliseconds(step.max_delay_seconds)));
        }
        if (outpacesStartLimit(step, policy.start_limit_burst, policy.start_limit_interval)) {
            warnings.push_back(
                step_name + " restarts so quickly that a service failing at once would need more than " +
                std::to_string(policy.start_limit_burst) + " starts within " +
                formatSeconds(policy.start_limit_interval) + "; the start limit will stretch its delays");
        }
        if (after_safe_mode && restarts(step.strategy) && step.strategy != RecoveryStrategy::SafeMode) {
            warnings.push_back(
                step_name + " comes after a safe_mode step, so it goes back to the normal command after safe "
                            "mode failed as well");
        }
        after_safe_mode = after_safe_mode || step.strategy == RecoveryStrategy::SafeMode;
    }
}

} // namespace

SystemRandom::SystemRandom() : engine_(std::random_device{}()) {}

double SystemRandom::uniform() {
    double value = std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
    // Rounding inside the distribution can yield 1.0 itself on some standard libraries.
    return value < 1.0 ? value : std::nextafter(1.0, 0.0);
}

RecoveryPolicy recoveryPolicyFor(const ServiceConfig& service, const CrashRecoveryConfig& crash_recovery) {
    const ServiceRecoveryConfig& recovery = service.recovery;
    RecoveryPolicy policy;
    policy.ladder = recovery.ladder;
    if (policy.ladder.empty()) {
        // A ServiceConfig built in code rather than parsed: the parser's default for a service.
        LadderStep step;
        step.attempts = crash_recovery.max_recovery_attempts;
        policy.ladder.push_back(step);
    }
    policy.class_ladders = recovery.class_ladders;
    policy.stability_window = secondsToMilliseconds(
        recovery.stability_seconds.value_or(static_cast<double>(crash_recovery.recovery_timeout_seconds)));
    policy.start_window = secondsToMilliseconds(recovery.start_seconds);
    policy.start_limit_burst = recovery.start_limit_burst;
    policy.start_limit_interval = secondsToMilliseconds(recovery.start_limit_interval_seconds);
    policy.success_exit_codes = recovery.success_exit_codes;
    policy.no_restart_exit_codes = recovery.no_restart_exit_codes;
    policy.no_restart_signals = recovery.no_restart_signals;
    policy.auto_recovery = crash_recovery.enabled && crash_recovery.auto_recovery;
    return policy;
}

std::string_view toString(RecoveryAction action) {
    switch (action) {
    case RecoveryAction::Restart:
        return "restart";
    case RecoveryAction::RestartInSafeMode:
        return "restart_safe_mode";
    case RecoveryAction::GiveUp:
        return "give_up";
    case RecoveryAction::NotifyAndStop:
        return "notify_and_stop";
    case RecoveryAction::None:
        return "none";
    case RecoveryAction::Stopped:
        return "stopped";
    case RecoveryAction::WaitForDependency:
        return "wait_for_dependency";
    case RecoveryAction::PromoteStandby:
        return "promote_standby";
    }
    return "none";
}

std::optional<RecoveryAction> recoveryActionFromString(std::string_view text) {
    for (const auto action :
         {RecoveryAction::Restart, RecoveryAction::RestartInSafeMode, RecoveryAction::GiveUp,
          RecoveryAction::NotifyAndStop, RecoveryAction::None, RecoveryAction::Stopped,
          RecoveryAction::WaitForDependency, RecoveryAction::PromoteStandby}) {
        if (toString(action) == text) {
            return action;
        }
    }
    return std::nullopt;
}

bool bringsBack(RecoveryAction action) {
    return action == RecoveryAction::Restart || action == RecoveryAction::RestartInSafeMode ||
           action == RecoveryAction::WaitForDependency || action == RecoveryAction::PromoteStandby;
}

RecoveryTracker::RecoveryTracker(RecoveryPolicy policy) : policy_(std::move(policy)) {}

void RecoveryTracker::endIncident() {
    failures_ = 0;
    escalated_ = false;
}

bool RecoveryTracker::takeEscalation() {
    return !std::exchange(escalated_, true);
}

void RecoveryTracker::reset() {
    endIncident();
    in_safe_mode_ = false;
}

void RecoveryTracker::restore(State state) {
    failures_ = state.failures;
    in_safe_mode_ = state.in_safe_mode;
    escalated_ = state.escalated;
    starts_ = std::move(state.starts);
    const std::size_t keep = std::max(policy_.start_limit_burst, 1U);
    if (starts_.size() > keep) {
        starts_.erase(starts_.begin(), starts_.end() - static_cast<std::ptrdiff_t>(keep));
    }
}

void RecoveryTracker::leaveSafeMode() {
    in_safe_mode_ = false;
}

void RecoveryTracker::onStarted(std::chrono::steady_clock::time_point at) {
    starts_.push_back(at);
    const std::size_t keep = std::max(policy_.start_limit_burst, 1U);
    if (starts_.size() > keep) {
        starts_.erase(starts_.begin(), starts_.end() - static_cast<std::ptrdiff_t>(keep));
    }
}

std::optional<milliseconds> RecoveryTracker::startLimitDelay(std::chrono::steady_clock::time_point now,
                                                             milliseconds delay) const {
    if (policy_.start_limit_burst == 0 || starts_.size() < policy_.start_limit_burst) {
        return std::nullopt;
    }
    // starts_ holds exactly the burst most recent starts; once the oldest of them has left the interval,
    // one more start is allowed.
    auto allowed_at = starts_.front() + policy_.start_limit_interval;
    if (allowed_at <= now + delay) {
        return std::nullopt;
    }
    return std::chrono::ceil<milliseconds>(allowed_at - now);
}

FailureClass RecoveryTracker::classify(const ExitEvent& event) const {
    return event.cause                           ? *event.cause
           : event.uptime < policy_.start_window ? FailureClass::Start
           : event.status.signal != 0            ? FailureClass::Signal
                                                 : FailureClass::Exit;
}

RecoveryDecision RecoveryTracker::onExit(const ExitEvent& event, std::chrono::steady_clock::time_point now,
                                         RandomSource& random) {
    RecoveryDecision decision;
    const ExitStatus& status = event.status;
    if (event.stop_requested) {
        decision.action = RecoveryAction::Stopped;
        decision.reason = status.describe() + " after a requested stop; not restarting";
        return decision;
    }
    // The supervisor only names a cause for an exit it knows to be a failure, whatever the status says.
    if (!event.cause && status.known && status.signal == 0 &&
        contains(policy_.success_exit_codes, status.exit_code)) {
        endIncident();
        decision.action = RecoveryAction::None;
        decision.reason = status.describe() + ", which counts as success; nothing to recover";
        return decision;
    }

    // A long enough run ends the incident: a crash a month later starts at the first step again.
    if (event.uptime >= policy_.stability_window) {
        endIncident();
    }
    if (!event.dependency_down.empty()) {
        decision.action = RecoveryAction::WaitForDependency;
        decision.failure_class = classify(event);
        decision.attempt = failures_;
        decision.reason = describeFailure(event, *decision.failure_class) + " while " +
                          event.dependency_down + "; waiting for it without counting this failure";
        return decision;
    }
    ++failures_;
    decision.attempt = failures_;

    auto give_up = [&](std::string why) {
        decision.action = RecoveryAction::GiveUp;
        decision.strategy = RecoveryStrategy::None;
        decision.escalate = takeEscalation();
        decision.reason = std::move(why);
        return decision;
    };

    if (!event.cause) {
        if (status.known && status.signal == 0 && contains(policy_.no_restart_exit_codes, status.exit_code)) {
            decision.failure_class = FailureClass::Exit;
            return give_up(
                status.describe() +
                ", an exit status configured as not restartable (no_restart_exit_codes); giving up");
        }
        if (status.signal != 0 && contains(policy_.no_restart_signals, status.signal)) {
            decision.failure_class = FailureClass::Signal;
            return give_up(status.describe() +
                           ", a signal configured as not restartable (no_restart_signals); giving up");
        }
    }
    const FailureClass failure_class = classify(event);
    decision.failure_class = failure_class;
    std::string what = describeFailure(event, failure_class);

    if (!policy_.auto_recovery) {
        return give_up(what + "; automatic recovery is off, giving up");
    }

    const std::vector<LadderStep>& ladder = ladderFor(policy_, failure_class);
    std::optional<LadderPosition> position = locate(ladder, failures_);
    if (!position) {
        return give_up(what + "; failure " + std::to_string(failures_) + " is past the last step of the " +
                       (&ladder == &policy_.ladder ? std::string("ladder")
                                                   : std::string(toString(failure_class)) + " ladder") +
                       " (" + countOf(boundedAttempts(ladder), "attempt") + " in all), giving up");
    }

    const LadderStep& step = ladder[position->step];
    decision.strategy = step.strategy;
    decision.action = actionOf(step.strategy);
    std::string where = what + "; " + describePosition(ladder, *position, failures_);

    switch (decision.action) {
    case RecoveryAction::NotifyAndStop:
        decision.escalate = takeEscalation();
        decision.reason = where + ", notifying the administrator and leaving it stopped";
        return decision;
    case RecoveryAction::None:
        decision.reason = where + ", not restarting it";
        return decision;
    case RecoveryAction::Restart:
    case RecoveryAction::RestartInSafeMode:
    case RecoveryAction::GiveUp:
    case RecoveryAction::Stopped:
    case RecoveryAction::WaitForDependency:
    case RecoveryAction::PromoteStandby:
        break;
    }

    // The next start runs the safe-mode command exactly when this decision says so.
    in_safe_mode_ = decision.action == RecoveryAction::RestartInSafeMode;
    decision.delay = jittered(step, baseDelay(step, position->within_step), random);
    std::string how = in_safe_mode_ ? "restarting in safe mode" : "restarting";
    if (std::optional<milliseconds> stretched = startLimitDelay(now, decision.delay)) {
        decision.start_limit_hit = true;
        decision.reason = where + ", " + how + " in " + formatSeconds(*stretched) +
                          (decision.delay.count() == 0 ? " rather than at once"
                                                       : " rather than in " + formatSeconds(decision.delay)) +
                          " to respect the start limit (at most " +
                          std::to_string(policy_.start_limit_burst) + " starts within " +
                          formatSeconds(policy_.start_limit_interval) + ")";
        decision.delay = *stretched;
        return decision;
    }
    decision.reason =
        where + ", " + how + (decision.delay.count() == 0 ? " now" : " in " + formatSeconds(decision.delay));
    return decision;
}

Explanation explain(const RecoveryPolicy& policy, unsigned failures, FailureClass failure_class) {
    Explanation explanation;
    const std::vector<LadderStep>& ladder = ladderFor(policy, failure_class);
    for (unsigned failure = 1; failure <= failures; ++failure) {
        ExplainedFailure explained{failure,         RecoveryAction::GiveUp, milliseconds(0),
                                   milliseconds(0), milliseconds(0),        RecoveryStrategy::None};
        std::optional<LadderPosition> position = locate(ladder, failure);
        if (policy.auto_recovery && position) {
            const LadderStep& step = ladder[position->step];
            explained.strategy = step.strategy;
            explained.action = actionOf(step.strategy);
            explained.delay = baseDelay(step, position->within_step);
            double spread = static_cast<double>(explained.delay.count()) * std::max(step.jitter, 0.0);
            explained.min_delay = milliseconds(
                std::max<long long>(0, std::llround(static_cast<double>(explained.delay.count()) - spread)));
            explained.max_delay =
                milliseconds(std::llround(static_cast<double>(explained.delay.count()) + spread));
        }
        explanation.failures.push_back(explained);
    }

    if (!policy.auto_recovery) {
        explanation.warnings.push_back("Automatic recovery is off: every failure gives up at once");
    }
    warnAboutLadder(policy, policy.ladder, "the ladder", explanation.warnings);
    for (FailureClass candidate : kAllFailureClasses) {
        auto found = policy.class_ladders.find(candidate);
        if (found != policy.class_ladders.end()) {
            warnAboutLadder(policy, found->second, "the " + std::string(toString(candidate)) + " ladder",
                            explanation.warnings);
        }
    }
    return explanation;
}

} // namespace tau
