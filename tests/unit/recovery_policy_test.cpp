#include "tau/recovery_policy.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <gtest/gtest.h>
#include <ostream>
#include <string>
#include <vector>

namespace tau {

// Readable names in failure messages; found by argument-dependent lookup, so they live in namespace tau.
[[maybe_unused]] static void PrintTo(RecoveryAction action, std::ostream* os) {
    *os << toString(action);
}
[[maybe_unused]] static void PrintTo(RecoveryStrategy strategy, std::ostream* os) {
    *os << toString(strategy);
}
[[maybe_unused]] static void PrintTo(FailureClass failure_class, std::ostream* os) {
    *os << toString(failure_class);
}

} // namespace tau

namespace tau {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

// An arbitrary but fixed moment: every test builds its time points from it by hand.
const TimePoint kT0 = TimePoint{} + 1000h;

// Hands out the values a test scripts, and fails the test if the code asks for more than that; a test
// that expects no jitter scripts nothing, so a stray draw shows.
class ScriptedRandom final : public RandomSource {
  public:
    explicit ScriptedRandom(std::vector<double> values = {}) : values_(std::move(values)) {}

    double uniform() override {
        if (next_ >= values_.size()) {
            ADD_FAILURE() << "more random numbers drawn than scripted (" << values_.size() << ")";
            return 0.5;
        }
        return values_[next_++];
    }

    std::size_t drawn() const { return next_; }

  private:
    std::vector<double> values_;
    std::size_t next_ = 0;
};

ExitEvent exitedWith(int code, std::chrono::steady_clock::duration uptime = 5s) {
    ExitEvent event;
    event.status.exit_code = code;
    event.uptime = uptime;
    return event;
}

ExitEvent killedBy(int signal, std::chrono::steady_clock::duration uptime = 5s) {
    ExitEvent event;
    event.status.signal = signal;
    event.uptime = uptime;
    return event;
}

ExitEvent withCause(ExitEvent event, FailureClass cause) {
    event.cause = cause;
    return event;
}

LadderStep step(RecoveryStrategy strategy, std::optional<unsigned> attempts, double delay_seconds = 1.0,
                double backoff_factor = 2.0, double max_delay_seconds = 300.0, double jitter = 0.0) {
    LadderStep result;
    result.strategy = strategy;
    result.attempts = attempts;
    result.delay_seconds = delay_seconds;
    result.backoff_factor = backoff_factor;
    result.max_delay_seconds = max_delay_seconds;
    result.jitter = jitter;
    return result;
}

RecoveryPolicy policyWith(std::vector<LadderStep> ladder) {
    RecoveryPolicy policy;
    policy.ladder = std::move(ladder);
    return policy;
}

// restart x3 -> backoff x5 -> safe_mode x3 -> notify_admin, without jitter.
RecoveryPolicy fullLadder() {
    return policyWith(
        {step(RecoveryStrategy::Restart, 3), step(RecoveryStrategy::RestartWithBackoff, 5, 1.0, 2.0, 8.0),
         step(RecoveryStrategy::SafeMode, 3, 5.0), step(RecoveryStrategy::NotifyAdmin, std::nullopt)});
}

// ---------------------------------------------------------------------------------------------------------
// Names

TEST(RecoveryActionNames, NameEveryAction) {
    EXPECT_EQ(toString(RecoveryAction::Restart), "restart");
    EXPECT_EQ(toString(RecoveryAction::RestartInSafeMode), "restart_safe_mode");
    EXPECT_EQ(toString(RecoveryAction::GiveUp), "give_up");
    EXPECT_EQ(toString(RecoveryAction::NotifyAndStop), "notify_and_stop");
    EXPECT_EQ(toString(RecoveryAction::None), "none");
    EXPECT_EQ(toString(RecoveryAction::Stopped), "stopped");
    EXPECT_EQ(toString(RecoveryAction::WaitForDependency), "wait_for_dependency");
    EXPECT_EQ(toString(RecoveryAction::PromoteStandby), "promote_standby");
}

TEST(RecoveryActionNames, ParseBackEveryActionAndRejectOthers) {
    for (const auto action :
         {RecoveryAction::Restart, RecoveryAction::RestartInSafeMode, RecoveryAction::GiveUp,
          RecoveryAction::NotifyAndStop, RecoveryAction::None, RecoveryAction::Stopped,
          RecoveryAction::WaitForDependency, RecoveryAction::PromoteStandby}) {
        EXPECT_EQ(recoveryActionFromString(toString(action)), action);
    }
    EXPECT_EQ(recoveryActionFromString("Restart"), std::nullopt);
    EXPECT_EQ(recoveryActionFromString(""), std::nullopt);
}

TEST(RecoveryActionNames, ActionsThatBringTheServiceBack) {
    EXPECT_TRUE(bringsBack(RecoveryAction::Restart));
    EXPECT_TRUE(bringsBack(RecoveryAction::RestartInSafeMode));
    EXPECT_TRUE(bringsBack(RecoveryAction::WaitForDependency));
    EXPECT_TRUE(bringsBack(RecoveryAction::PromoteStandby));
    EXPECT_FALSE(bringsBack(RecoveryAction::GiveUp));
    EXPECT_FALSE(bringsBack(RecoveryAction::NotifyAndStop));
    EXPECT_FALSE(bringsBack(RecoveryAction::None));
    EXPECT_FALSE(bringsBack(RecoveryAction::Stopped));
}

TEST(RecoveryTracker, FailureWhileADependencyIsDownWaitsAndDoesNotCount) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::Restart, 2)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0 + 10s, random);
    ExitEvent event = killedBy(SIGSEGV);
    event.dependency_down = "its dependency 'db' is backoff";
    const RecoveryDecision decision = tracker.onExit(event, kT0 + 20s, random);
    EXPECT_EQ(decision.action, RecoveryAction::WaitForDependency);
    EXPECT_EQ(decision.failure_class, FailureClass::Signal);
    EXPECT_EQ(decision.attempt, 1u) << "the incident's count so far, unchanged";
    EXPECT_EQ(decision.delay, 0ms);
    EXPECT_FALSE(decision.escalate);
    EXPECT_NE(decision.reason.find("while its dependency 'db' is backoff"), std::string::npos)
        << decision.reason;
    EXPECT_EQ(tracker.failures(), 1u);
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0 + 30s, random).attempt, 2u);

    ExitEvent clean = exitedWith(0);
    clean.dependency_down = "its dependency 'db' is failed";
    EXPECT_EQ(tracker.onExit(clean, kT0 + 40s, random).action, RecoveryAction::None)
        << "a clean exit is not a failure to wait over";
}

// ---------------------------------------------------------------------------------------------------------
// Exits that are not failures

TEST(RecoveryTracker, RequestedStopIsStoppedAndLeavesTheFailuresAlone) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::Restart, std::nullopt)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    tracker.onExit(exitedWith(1), kT0, random);

    ExitEvent stop = killedBy(SIGTERM);
    stop.stop_requested = true;
    const RecoveryDecision decision = tracker.onExit(stop, kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::Stopped);
    EXPECT_EQ(decision.delay, 0ms);
    EXPECT_EQ(decision.attempt, 0u);
    EXPECT_EQ(decision.failure_class, std::nullopt);
    EXPECT_FALSE(decision.escalate);
    EXPECT_EQ(decision.reason, "killed by SIGTERM after a requested stop; not restarting");
    EXPECT_EQ(tracker.failures(), 2u);
}

TEST(RecoveryTracker, CleanExitIsNoneAndEndsTheIncident) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::Restart, std::nullopt)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    tracker.onExit(exitedWith(1), kT0, random);

    const RecoveryDecision decision = tracker.onExit(exitedWith(0), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::None);
    EXPECT_EQ(decision.attempt, 0u);
    EXPECT_EQ(decision.failure_class, std::nullopt);
    EXPECT_EQ(decision.reason, "exited with status 0, which counts as success; nothing to recover");
    EXPECT_EQ(tracker.failures(), 0u);
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).attempt, 1u);
}

TEST(RecoveryTracker, SuccessExitCodesAreConfigurable) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.success_exit_codes = {0, 143};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    EXPECT_EQ(tracker.onExit(exitedWith(143), kT0, random).action, RecoveryAction::None);
    EXPECT_EQ(tracker.onExit(exitedWith(0), kT0, random).action, RecoveryAction::None);
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).action, RecoveryAction::Restart);
    // A death by signal 15 is not exit status 143, whatever a shell would print.
    EXPECT_EQ(tracker.onExit(killedBy(SIGTERM), kT0, random).action, RecoveryAction::Restart);
}

TEST(RecoveryTracker, WithoutSuccessCodesEvenStatusZeroIsAFailure) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.success_exit_codes.clear();
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    const RecoveryDecision decision = tracker.onExit(exitedWith(0), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::Restart);
    EXPECT_EQ(decision.failure_class, FailureClass::Exit);
}

// ---------------------------------------------------------------------------------------------------------
// Every strategy's delays

TEST(RecoveryTracker, RestartIsImmediate) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::Restart, 3, 7.0, 2.0, 300.0, 0.5)}));
    ScriptedRandom random; // a plain restart has no delay, so jitter draws nothing
    const RecoveryDecision decision = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::Restart);
    EXPECT_EQ(decision.delay, 0ms);
    EXPECT_EQ(decision.attempt, 1u);
    EXPECT_EQ(decision.failure_class, FailureClass::Exit);
    EXPECT_EQ(decision.strategy, RecoveryStrategy::Restart);
    EXPECT_FALSE(decision.escalate);
    EXPECT_FALSE(decision.start_limit_hit);
    EXPECT_EQ(decision.reason,
              "exited with status 1; failure 1, attempt 1 of 3 of the restart step, restarting now");
    EXPECT_EQ(tracker.failures(), 1u);
}

TEST(RecoveryTracker, RestartWithDelayWaitsExactlyTheDelay) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::RestartWithDelay, std::nullopt, 2.5)}));
    ScriptedRandom random;
    for (unsigned attempt = 1; attempt <= 3; ++attempt) {
        const RecoveryDecision decision = tracker.onExit(killedBy(SIGSEGV), kT0, random);
        EXPECT_EQ(decision.action, RecoveryAction::Restart);
        EXPECT_EQ(decision.delay, 2500ms);
        EXPECT_EQ(decision.attempt, attempt);
        EXPECT_EQ(decision.failure_class, FailureClass::Signal);
        EXPECT_EQ(decision.strategy, RecoveryStrategy::RestartWithDelay);
    }
    EXPECT_EQ(random.drawn(), 0u);
}

TEST(RecoveryTracker, BackoffDoublesUpToTheCap) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::RestartWithBackoff, std::nullopt, 1.0, 2.0, 10.0)}));
    ScriptedRandom random;
    const milliseconds expected[] = {1000ms, 2000ms, 4000ms, 8000ms, 10000ms, 10000ms, 10000ms};
    for (milliseconds delay : expected) {
        const RecoveryDecision decision = tracker.onExit(exitedWith(2), kT0, random);
        EXPECT_EQ(decision.action, RecoveryAction::Restart);
        EXPECT_EQ(decision.delay, delay) << "attempt " << decision.attempt;
        EXPECT_EQ(decision.strategy, RecoveryStrategy::RestartWithBackoff);
    }
}

TEST(RecoveryTracker, BackoffWithAFractionalFactor) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::RestartWithBackoff, std::nullopt, 0.2, 1.5, 1.0)}));
    ScriptedRandom random;
    const milliseconds expected[] = {200ms, 300ms, 450ms, 675ms, 1000ms, 1000ms};
    for (milliseconds delay : expected) {
        EXPECT_EQ(tracker.onExit(exitedWith(2), kT0, random).delay, delay);
    }
}

TEST(RecoveryTracker, BackoffSurvivesAVeryLongRunOfFailures) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::RestartWithBackoff, std::nullopt, 1.0, 10.0, 60.0)}));
    ScriptedRandom random;
    RecoveryDecision decision;
    for (int i = 0; i < 2000; ++i) {
        decision = tracker.onExit(exitedWith(2), kT0, random);
    }
    // 10^1999 overflows a double; the cap still holds.
    EXPECT_EQ(decision.delay, 60000ms);
    EXPECT_EQ(decision.attempt, 2000u);
}

TEST(RecoveryTracker, SafeModeRestartsInSafeModeAfterTheDelay) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::SafeMode, std::nullopt, 3.0)}));
    ScriptedRandom random;
    EXPECT_FALSE(tracker.inSafeMode());
    const RecoveryDecision decision = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::RestartInSafeMode);
    EXPECT_EQ(decision.delay, 3000ms);
    EXPECT_EQ(decision.strategy, RecoveryStrategy::SafeMode);
    EXPECT_FALSE(decision.escalate);
    EXPECT_EQ(
        decision.reason,
        "exited with status 1; failure 1, attempt 1 of the safe_mode step, restarting in safe mode in 3.0 s");
    EXPECT_TRUE(tracker.inSafeMode());
}

TEST(RecoveryTracker, NotifyAdminEscalatesOncePerIncident) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::NotifyAdmin, std::nullopt, 4.0)}));
    ScriptedRandom random;
    const RecoveryDecision first = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(first.action, RecoveryAction::NotifyAndStop);
    EXPECT_EQ(first.delay, 0ms);
    EXPECT_EQ(first.strategy, RecoveryStrategy::NotifyAdmin);
    EXPECT_TRUE(first.escalate);
    EXPECT_EQ(first.reason,
              "exited with status 1; failure 1, attempt 1 of the notify_admin step, notifying the "
              "administrator and leaving it stopped");
    const RecoveryDecision second = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(second.action, RecoveryAction::NotifyAndStop);
    EXPECT_FALSE(second.escalate);
}

TEST(RecoveryTracker, StrategyNoneDoesNothingButKeepsCounting) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::None, std::nullopt)}));
    ScriptedRandom random;
    const RecoveryDecision first = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(first.action, RecoveryAction::None);
    EXPECT_EQ(first.attempt, 1u);
    EXPECT_EQ(first.failure_class, FailureClass::Exit);
    EXPECT_EQ(first.strategy, RecoveryStrategy::None);
    EXPECT_FALSE(first.escalate);
    EXPECT_EQ(first.reason, "exited with status 1; failure 1, attempt 1 of the none step, not restarting it");
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).attempt, 2u);
    EXPECT_EQ(tracker.failures(), 2u);
}

// ---------------------------------------------------------------------------------------------------------
// Jitter

TEST(RecoveryTracker, JitterStaysWithinItsBounds) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::RestartWithDelay, std::nullopt, 10.0, 2.0, 300.0, 0.2)}));
    const double almostOne = std::nextafter(1.0, 0.0);
    ScriptedRandom random({0.0, 0.5, 0.75, 0.99, almostOne});
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 8000ms); // delay * (1 - jitter)
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 10000ms);
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 11000ms);
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 11960ms);
    const milliseconds highest = tracker.onExit(exitedWith(1), kT0, random).delay;
    EXPECT_GE(highest, 11999ms);
    EXPECT_LE(highest, 12000ms); // delay * (1 + jitter), never beyond
    EXPECT_EQ(random.drawn(), 5u);
}

TEST(RecoveryTracker, JitterAppliesToTheBackoffDelay) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::RestartWithBackoff, std::nullopt, 1.0, 2.0, 60.0, 0.5)}));
    ScriptedRandom random({0.5, 0.5, 0.25});
    tracker.onExit(exitedWith(1), kT0, random);
    tracker.onExit(exitedWith(1), kT0, random);
    // The third delay is 4 s; u = 0.25 moves it by 0.5 * (2 * 0.25 - 1) = -25 %.
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 3000ms);
}

TEST(RecoveryTracker, FullJitterNeverGoesNegative) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::SafeMode, std::nullopt, 2.0, 2.0, 300.0, 1.0)}));
    ScriptedRandom random({0.0, 0.999});
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 0ms);
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).delay, 3996ms);
}

// ---------------------------------------------------------------------------------------------------------
// Walking the ladder

TEST(RecoveryTracker, WalksTheWholeLadder) {
    RecoveryTracker tracker(fullLadder());
    ScriptedRandom random;
    struct Expected {
        RecoveryAction action;
        milliseconds delay;
        RecoveryStrategy strategy;
        bool escalate;
    };
    const Expected expected[] = {
        {RecoveryAction::Restart, 0ms, RecoveryStrategy::Restart, false},
        {RecoveryAction::Restart, 0ms, RecoveryStrategy::Restart, false},
        {RecoveryAction::Restart, 0ms, RecoveryStrategy::Restart, false},
        {RecoveryAction::Restart, 1000ms, RecoveryStrategy::RestartWithBackoff, false},
        {RecoveryAction::Restart, 2000ms, RecoveryStrategy::RestartWithBackoff, false},
        {RecoveryAction::Restart, 4000ms, RecoveryStrategy::RestartWithBackoff, false},
        {RecoveryAction::Restart, 8000ms, RecoveryStrategy::RestartWithBackoff, false},
        {RecoveryAction::Restart, 8000ms, RecoveryStrategy::RestartWithBackoff, false},
        {RecoveryAction::RestartInSafeMode, 5000ms, RecoveryStrategy::SafeMode, false},
        {RecoveryAction::RestartInSafeMode, 5000ms, RecoveryStrategy::SafeMode, false},
        {RecoveryAction::RestartInSafeMode, 5000ms, RecoveryStrategy::SafeMode, false},
        {RecoveryAction::NotifyAndStop, 0ms, RecoveryStrategy::NotifyAdmin, true},
        {RecoveryAction::NotifyAndStop, 0ms, RecoveryStrategy::NotifyAdmin, false},
    };
    unsigned attempt = 0;
    for (const Expected& want : expected) {
        ++attempt;
        const RecoveryDecision decision = tracker.onExit(killedBy(SIGKILL), kT0, random);
        EXPECT_EQ(decision.attempt, attempt);
        EXPECT_EQ(decision.action, want.action) << "attempt " << attempt;
        EXPECT_EQ(decision.delay, want.delay) << "attempt " << attempt;
        EXPECT_EQ(decision.strategy, want.strategy) << "attempt " << attempt;
        EXPECT_EQ(decision.escalate, want.escalate) << "attempt " << attempt;
        EXPECT_EQ(decision.failure_class, FailureClass::Signal);
        if (attempt == 4) {
            EXPECT_EQ(decision.reason,
                      "killed by SIGKILL; failure 4, attempt 1 of 5 of the restart_with_backoff "
                      "step, restarting in 1.0 s");
        }
        if (attempt == 7) {
            EXPECT_EQ(decision.reason,
                      "killed by SIGKILL; failure 7, attempt 4 of 5 of the restart_with_backoff "
                      "step, restarting in 8.0 s");
        }
    }
    EXPECT_EQ(tracker.failures(), 13u);
}

TEST(RecoveryTracker, GivesUpPastABoundedLadder) {
    RecoveryTracker tracker(
        policyWith({step(RecoveryStrategy::Restart, 2), step(RecoveryStrategy::RestartWithDelay, 1, 0.5)}));
    ScriptedRandom random;
    EXPECT_EQ(tracker.onExit(exitedWith(3), kT0, random).action, RecoveryAction::Restart);
    EXPECT_EQ(tracker.onExit(exitedWith(3), kT0, random).action, RecoveryAction::Restart);
    EXPECT_EQ(tracker.onExit(exitedWith(3), kT0, random).delay, 500ms);

    const RecoveryDecision giveUp = tracker.onExit(exitedWith(3), kT0, random);
    EXPECT_EQ(giveUp.action, RecoveryAction::GiveUp);
    EXPECT_EQ(giveUp.delay, 0ms);
    EXPECT_EQ(giveUp.attempt, 4u);
    EXPECT_EQ(giveUp.failure_class, FailureClass::Exit);
    EXPECT_EQ(giveUp.strategy, RecoveryStrategy::None);
    EXPECT_TRUE(giveUp.escalate);
    EXPECT_EQ(
        giveUp.reason,
        "exited with status 3; failure 4 is past the last step of the ladder (3 attempts in all), giving up");

    const RecoveryDecision again = tracker.onExit(exitedWith(3), kT0, random);
    EXPECT_EQ(again.action, RecoveryAction::GiveUp);
    EXPECT_FALSE(again.escalate);
}

TEST(RecoveryTracker, StepOfZeroAttemptsGivesUpAtOnce) {
    // What max_attempts = 0 in the short form makes.
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::Restart, 0)}));
    ScriptedRandom random;
    const RecoveryDecision decision = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::GiveUp);
    EXPECT_TRUE(decision.escalate);
}

TEST(RecoveryTracker, EmptyLadderGivesUp) {
    RecoveryTracker tracker(policyWith({}));
    ScriptedRandom random;
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).action, RecoveryAction::GiveUp);
}

// ---------------------------------------------------------------------------------------------------------
// The end of an incident

TEST(RecoveryTracker, ALongRunForgivesEarlierFailures) {
    RecoveryTracker tracker(fullLadder());
    ScriptedRandom random;
    for (int i = 0; i < 6; ++i) {
        tracker.onExit(exitedWith(1), kT0, random);
    }
    ASSERT_EQ(tracker.failures(), 6u);
    // A month later: the first step again, not the backoff where the last incident left off.
    const RecoveryDecision decision = tracker.onExit(exitedWith(1, 24h * 30), kT0, random);
    EXPECT_EQ(decision.attempt, 1u);
    EXPECT_EQ(decision.strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(decision.delay, 0ms);
}

TEST(RecoveryTracker, StabilityWindowBoundaryIsInclusive) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.stability_window = 60s;
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(tracker.onExit(exitedWith(1, 60s - 1ms), kT0, random).attempt, 3u);
    EXPECT_EQ(tracker.onExit(exitedWith(1, 60s), kT0, random).attempt, 1u);
}

TEST(RecoveryTracker, EscalationIsReArmedByTheNextIncident) {
    RecoveryTracker tracker(policyWith({step(RecoveryStrategy::Restart, 1)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_TRUE(tracker.onExit(exitedWith(1), kT0, random).escalate);
    EXPECT_FALSE(tracker.onExit(exitedWith(1), kT0, random).escalate);

    // A stable run ends the incident ...
    EXPECT_EQ(tracker.onExit(exitedWith(1, 2h), kT0, random).action, RecoveryAction::Restart);
    const RecoveryDecision second = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(second.action, RecoveryAction::GiveUp);
    EXPECT_TRUE(second.escalate);

    // ... and so does a clean exit.
    tracker.onExit(exitedWith(0), kT0, random);
    tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_TRUE(tracker.onExit(exitedWith(1), kT0, random).escalate);
}

TEST(RecoveryTracker, ResetClearsFailuresSafeModeAndTheIncident) {
    RecoveryTracker tracker(policyWith(
        {step(RecoveryStrategy::SafeMode, 1, 0.0), step(RecoveryStrategy::NotifyAdmin, std::nullopt)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    ASSERT_TRUE(tracker.inSafeMode());
    ASSERT_TRUE(tracker.onExit(exitedWith(1), kT0, random).escalate);

    tracker.reset();
    EXPECT_EQ(tracker.failures(), 0u);
    EXPECT_FALSE(tracker.inSafeMode());
    const RecoveryDecision first = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(first.attempt, 1u);
    EXPECT_EQ(first.action, RecoveryAction::RestartInSafeMode);
    EXPECT_TRUE(tracker.onExit(exitedWith(1), kT0, random).escalate);
}

TEST(RecoveryTracker, LeaveSafeModeKeepsTheIncidentGoing) {
    RecoveryTracker tracker(policyWith(
        {step(RecoveryStrategy::SafeMode, 2, 0.0), step(RecoveryStrategy::NotifyAdmin, std::nullopt)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    ASSERT_TRUE(tracker.inSafeMode());
    tracker.leaveSafeMode();
    EXPECT_FALSE(tracker.inSafeMode());
    EXPECT_EQ(tracker.failures(), 1u);
    // The normal command fails again soon after: the ladder goes on from where it was.
    const RecoveryDecision second = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(second.attempt, 2u);
    EXPECT_EQ(second.action, RecoveryAction::RestartInSafeMode);
    EXPECT_TRUE(tracker.inSafeMode());
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).action, RecoveryAction::NotifyAndStop);
}

TEST(RecoveryTracker, APlainRestartLeavesSafeMode) {
    RecoveryTracker tracker(policyWith(
        {step(RecoveryStrategy::SafeMode, 1, 0.0), step(RecoveryStrategy::Restart, std::nullopt)}));
    ScriptedRandom random;
    tracker.onExit(exitedWith(1), kT0, random);
    ASSERT_TRUE(tracker.inSafeMode());
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).action, RecoveryAction::Restart);
    EXPECT_FALSE(tracker.inSafeMode());
}

// ---------------------------------------------------------------------------------------------------------
// The start limit

RecoveryPolicy startLimitedPolicy(std::vector<LadderStep> ladder) {
    RecoveryPolicy policy = policyWith(std::move(ladder));
    policy.start_limit_burst = 3;
    policy.start_limit_interval = 10s;
    return policy;
}

TEST(RecoveryTracker, StartLimitStretchesTheDelay) {
    RecoveryTracker tracker(startLimitedPolicy({step(RecoveryStrategy::Restart, std::nullopt)}));
    ScriptedRandom random;
    tracker.onStarted(kT0);
    tracker.onStarted(kT0 + 2s);
    tracker.onStarted(kT0 + 4s);
    // Three starts within the last 10 s: the next may come once the one at kT0 has left the interval.
    const RecoveryDecision decision = tracker.onExit(exitedWith(1, 2s), kT0 + 6s, random);
    EXPECT_EQ(decision.action, RecoveryAction::Restart);
    EXPECT_TRUE(decision.start_limit_hit);
    EXPECT_EQ(decision.delay, 4000ms);
    EXPECT_EQ(decision.reason,
              "exited with status 1; failure 1, attempt 1 of the restart step, restarting in 4.0 s "
              "rather than at once to respect the start limit (at most 3 starts within 10.0 s)");

    // Started as told: the oldest start that counts is now the one at kT0 + 2 s.
    tracker.onStarted(kT0 + 10s);
    const RecoveryDecision later = tracker.onExit(exitedWith(1, 1500ms), kT0 + 11500ms, random);
    EXPECT_TRUE(later.start_limit_hit);
    EXPECT_EQ(later.delay, 500ms);
}

TEST(RecoveryTracker, StartLimitLeavesADelayThatIsLongEnoughAlone) {
    RecoveryTracker tracker(
        startLimitedPolicy({step(RecoveryStrategy::RestartWithDelay, std::nullopt, 4.0)}));
    ScriptedRandom random;
    tracker.onStarted(kT0);
    tracker.onStarted(kT0 + 2s);
    tracker.onStarted(kT0 + 4s);
    // kT0 + 6 s + 4 s is exactly 10 s after the oldest start: just outside the interval.
    const RecoveryDecision decision = tracker.onExit(exitedWith(1, 2s), kT0 + 6s, random);
    EXPECT_FALSE(decision.start_limit_hit);
    EXPECT_EQ(decision.delay, 4000ms);
}

TEST(RecoveryTracker, StartLimitOnlyCountsTheMostRecentStarts) {
    RecoveryTracker tracker(
        startLimitedPolicy({step(RecoveryStrategy::RestartWithDelay, std::nullopt, 1.0)}));
    ScriptedRandom random;
    tracker.onStarted(kT0);
    tracker.onStarted(kT0 + 1s);
    const RecoveryDecision first = tracker.onExit(exitedWith(1, 2s), kT0 + 3s, random);
    EXPECT_FALSE(first.start_limit_hit); // only two starts so far
    EXPECT_EQ(first.delay, 1000ms);

    tracker.onStarted(kT0 + 4s);
    const RecoveryDecision second = tracker.onExit(exitedWith(1, 2s), kT0 + 6s, random);
    EXPECT_TRUE(second.start_limit_hit);
    EXPECT_EQ(second.delay, 4000ms); // kT0 + 10 s - (kT0 + 6 s)
    EXPECT_NE(second.reason.find("restarting in 4.0 s rather than in 1.0 s to respect the start limit"),
              std::string::npos)
        << second.reason;

    // The start at kT0 no longer counts; the three that do are at 1 s, 4 s and 10 s.
    tracker.onStarted(kT0 + 10s);
    const RecoveryDecision third = tracker.onExit(exitedWith(1, 2s), kT0 + 12s, random);
    EXPECT_FALSE(third.start_limit_hit);
    EXPECT_EQ(third.delay, 1000ms);
}

TEST(RecoveryTracker, StartLimitStretchesSafeModeRestartsButNotNotifications) {
    RecoveryTracker tracker(startLimitedPolicy(
        {step(RecoveryStrategy::SafeMode, 1, 0.5), step(RecoveryStrategy::NotifyAdmin, std::nullopt)}));
    ScriptedRandom random;
    tracker.onStarted(kT0);
    tracker.onStarted(kT0 + 1s);
    tracker.onStarted(kT0 + 2s);
    const RecoveryDecision safe = tracker.onExit(exitedWith(1, 2s), kT0 + 4s, random);
    EXPECT_EQ(safe.action, RecoveryAction::RestartInSafeMode);
    EXPECT_TRUE(safe.start_limit_hit);
    EXPECT_EQ(safe.delay, 6000ms);

    const RecoveryDecision notify = tracker.onExit(exitedWith(1, 2s), kT0 + 4s, random);
    EXPECT_EQ(notify.action, RecoveryAction::NotifyAndStop);
    EXPECT_FALSE(notify.start_limit_hit);
    EXPECT_EQ(notify.delay, 0ms);
}

TEST(RecoveryTracker, StartLimitRoundsUpSoTheStartFallsOutside) {
    RecoveryTracker tracker(startLimitedPolicy({step(RecoveryStrategy::Restart, std::nullopt)}));
    ScriptedRandom random;
    tracker.onStarted(kT0 + 250us);
    tracker.onStarted(kT0 + 1s);
    tracker.onStarted(kT0 + 2s);
    EXPECT_EQ(tracker.onExit(exitedWith(1, 2s), kT0 + 4s, random).delay, 6001ms);
}

// ---------------------------------------------------------------------------------------------------------
// Exits that restarting cannot fix

TEST(RecoveryTracker, NoRestartExitCodeGivesUpAtOnce) {
    RecoveryPolicy policy = fullLadder();
    policy.no_restart_exit_codes = {78};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    const RecoveryDecision decision = tracker.onExit(exitedWith(78), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::GiveUp);
    EXPECT_EQ(decision.attempt, 1u);
    EXPECT_EQ(decision.failure_class, FailureClass::Exit);
    EXPECT_EQ(decision.strategy, RecoveryStrategy::None);
    EXPECT_TRUE(decision.escalate);
    EXPECT_EQ(decision.reason, "exited with status 78, an exit status configured as not restartable "
                               "(no_restart_exit_codes); giving up");
    EXPECT_FALSE(tracker.onExit(exitedWith(78), kT0, random).escalate);
    // Other codes still walk the ladder.
    EXPECT_EQ(tracker.onExit(exitedWith(77), kT0, random).action, RecoveryAction::Restart);
}

TEST(RecoveryTracker, NoRestartSignalGivesUpAtOnce) {
    RecoveryPolicy policy = fullLadder();
    policy.no_restart_signals = {SIGKILL};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    const RecoveryDecision decision = tracker.onExit(killedBy(SIGKILL), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::GiveUp);
    EXPECT_EQ(decision.failure_class, FailureClass::Signal);
    EXPECT_TRUE(decision.escalate);
    EXPECT_EQ(decision.reason,
              "killed by SIGKILL, a signal configured as not restartable (no_restart_signals); giving up");
    EXPECT_EQ(tracker.onExit(killedBy(SIGSEGV), kT0, random).action, RecoveryAction::Restart);
}

TEST(RecoveryTracker, AutomaticRecoveryOffGivesUp) {
    RecoveryPolicy policy = fullLadder();
    policy.auto_recovery = false;
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    const RecoveryDecision decision = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::GiveUp);
    EXPECT_EQ(decision.attempt, 1u);
    EXPECT_EQ(decision.failure_class, FailureClass::Exit);
    EXPECT_TRUE(decision.escalate);
    EXPECT_EQ(decision.reason, "exited with status 1; automatic recovery is off, giving up");
    EXPECT_FALSE(tracker.onExit(exitedWith(1), kT0, random).escalate);
}

// ---------------------------------------------------------------------------------------------------------
// Failure classes

TEST(RecoveryTracker, ClassLadderIsUsedForItsClassOnly) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.class_ladders[FailureClass::Oom] = {step(RecoveryStrategy::RestartWithDelay, 1, 30.0),
                                               step(RecoveryStrategy::NotifyAdmin, std::nullopt)};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;

    const RecoveryDecision oom = tracker.onExit(withCause(killedBy(SIGKILL), FailureClass::Oom), kT0, random);
    EXPECT_EQ(oom.failure_class, FailureClass::Oom);
    EXPECT_EQ(oom.action, RecoveryAction::Restart);
    EXPECT_EQ(oom.delay, 30000ms);
    EXPECT_EQ(oom.reason, "killed by the OOM killer (killed by SIGKILL); failure 1, attempt 1 of 1 of the "
                          "restart_with_delay step, restarting in 30.0 s");

    const RecoveryDecision exit = tracker.onExit(exitedWith(1), kT0, random);
    EXPECT_EQ(exit.failure_class, FailureClass::Exit);
    EXPECT_EQ(exit.strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(exit.delay, 0ms);

    // The count belongs to the incident, whatever the class: the third failure is past the oom ladder's
    // first step.
    const RecoveryDecision again =
        tracker.onExit(withCause(killedBy(SIGKILL), FailureClass::Oom), kT0, random);
    EXPECT_EQ(again.attempt, 3u);
    EXPECT_EQ(again.action, RecoveryAction::NotifyAndStop);
    EXPECT_TRUE(again.escalate);
}

TEST(RecoveryTracker, BoundedClassLadderNamesItselfWhenItGivesUp) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.class_ladders[FailureClass::Watchdog] = {step(RecoveryStrategy::Restart, 1)};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    const ExitEvent watchdog = withCause(killedBy(SIGABRT), FailureClass::Watchdog);
    tracker.onExit(watchdog, kT0, random);
    const RecoveryDecision decision = tracker.onExit(watchdog, kT0, random);
    EXPECT_EQ(decision.action, RecoveryAction::GiveUp);
    EXPECT_EQ(decision.reason,
              "missed its watchdog deadline (killed by SIGABRT); failure 2 is past the last step "
              "of the watchdog ladder (1 attempt in all), giving up");
}

TEST(RecoveryTracker, ExitWithinTheStartWindowIsAFailedStart) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.start_window = 1000ms;
    policy.class_ladders[FailureClass::Start] = {
        step(RecoveryStrategy::RestartWithBackoff, std::nullopt, 0.5)};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;

    const RecoveryDecision early = tracker.onExit(exitedWith(1, 500ms), kT0, random);
    EXPECT_EQ(early.failure_class, FailureClass::Start);
    EXPECT_EQ(early.strategy, RecoveryStrategy::RestartWithBackoff);
    EXPECT_EQ(early.delay, 500ms);
    EXPECT_EQ(early.reason,
              "exited with status 1 only 0.5 s after it started (a failed start); failure 1, attempt "
              "1 of the restart_with_backoff step, restarting in 0.5 s");

    const RecoveryDecision signal = tracker.onExit(killedBy(SIGSEGV, 999ms), kT0, random);
    EXPECT_EQ(signal.failure_class, FailureClass::Start);

    const RecoveryDecision onTime = tracker.onExit(exitedWith(1, 1000ms), kT0, random);
    EXPECT_EQ(onTime.failure_class, FailureClass::Exit);
    EXPECT_EQ(onTime.strategy, RecoveryStrategy::Restart);
}

TEST(RecoveryTracker, CauseOverridesWhatTheStatusSuggests) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, std::nullopt)});
    policy.no_restart_exit_codes = {78};
    RecoveryTracker tracker(policy);
    ScriptedRandom random;

    // A quick exit the supervisor blames on the watchdog is a watchdog failure, not a failed start.
    EXPECT_EQ(tracker.onExit(withCause(killedBy(SIGABRT, 100ms), FailureClass::Watchdog), kT0, random)
                  .failure_class,
              FailureClass::Watchdog);
    // Status 0 before READY=1 is still a failed start.
    const RecoveryDecision notReady =
        tracker.onExit(withCause(exitedWith(0), FailureClass::Start), kT0, random);
    EXPECT_EQ(notReady.action, RecoveryAction::Restart);
    EXPECT_EQ(notReady.failure_class, FailureClass::Start);
    EXPECT_EQ(notReady.reason.rfind("failed to start (exited with status 0);", 0), 0u) << notReady.reason;
    // The cause decides the class even for a code configured as not restartable.
    const RecoveryDecision probe =
        tracker.onExit(withCause(exitedWith(78), FailureClass::Probe), kT0, random);
    EXPECT_EQ(probe.action, RecoveryAction::Restart);
    EXPECT_EQ(probe.failure_class, FailureClass::Probe);
    EXPECT_EQ(
        tracker.onExit(withCause(killedBy(SIGKILL), FailureClass::ResourceLimit), kT0, random).failure_class,
        FailureClass::ResourceLimit);
    EXPECT_EQ(tracker.failures(), 4u);
}

// ---------------------------------------------------------------------------------------------------------
// explain()

TEST(Explain, ListsEachFailureWithItsDelayAndJitterRange) {
    const RecoveryPolicy policy =
        policyWith({step(RecoveryStrategy::Restart, 2),
                    step(RecoveryStrategy::RestartWithBackoff, 3, 1.0, 3.0, 5.0, 0.2),
                    step(RecoveryStrategy::NotifyAdmin, 1)});
    const Explanation explanation = explain(policy, 7);
    struct Expected {
        RecoveryAction action;
        milliseconds delay, min_delay, max_delay;
        RecoveryStrategy strategy;
    };
    const Expected expected[] = {
        {RecoveryAction::Restart, 0ms, 0ms, 0ms, RecoveryStrategy::Restart},
        {RecoveryAction::Restart, 0ms, 0ms, 0ms, RecoveryStrategy::Restart},
        {RecoveryAction::Restart, 1000ms, 800ms, 1200ms, RecoveryStrategy::RestartWithBackoff},
        {RecoveryAction::Restart, 3000ms, 2400ms, 3600ms, RecoveryStrategy::RestartWithBackoff},
        {RecoveryAction::Restart, 5000ms, 4000ms, 6000ms, RecoveryStrategy::RestartWithBackoff},
        {RecoveryAction::NotifyAndStop, 0ms, 0ms, 0ms, RecoveryStrategy::NotifyAdmin},
        {RecoveryAction::GiveUp, 0ms, 0ms, 0ms, RecoveryStrategy::None},
    };
    ASSERT_EQ(explanation.failures.size(), std::size(expected));
    for (std::size_t i = 0; i < std::size(expected); ++i) {
        const ExplainedFailure& failure = explanation.failures[i];
        EXPECT_EQ(failure.attempt, i + 1);
        EXPECT_EQ(failure.action, expected[i].action) << "failure " << i + 1;
        EXPECT_EQ(failure.delay, expected[i].delay) << "failure " << i + 1;
        EXPECT_EQ(failure.min_delay, expected[i].min_delay) << "failure " << i + 1;
        EXPECT_EQ(failure.max_delay, expected[i].max_delay) << "failure " << i + 1;
        EXPECT_EQ(failure.strategy, expected[i].strategy) << "failure " << i + 1;
    }
    EXPECT_TRUE(explanation.warnings.empty()) << explanation.warnings.front();
}

TEST(Explain, UsesTheLadderOfTheGivenClass) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::Restart, 1)});
    policy.class_ladders[FailureClass::Oom] = {
        step(RecoveryStrategy::SafeMode, std::nullopt, 2.0, 2.0, 300.0, 0.5)};
    const Explanation exit = explain(policy, 2);
    EXPECT_EQ(exit.failures.at(0).action, RecoveryAction::Restart);
    EXPECT_EQ(exit.failures.at(1).action, RecoveryAction::GiveUp);
    const Explanation oom = explain(policy, 2, FailureClass::Oom);
    EXPECT_EQ(oom.failures.at(1).action, RecoveryAction::RestartInSafeMode);
    EXPECT_EQ(oom.failures.at(1).delay, 2000ms);
    EXPECT_EQ(oom.failures.at(1).min_delay, 1000ms);
    EXPECT_EQ(oom.failures.at(1).max_delay, 3000ms);
}

TEST(Explain, ZeroFailuresListsNothing) {
    EXPECT_TRUE(explain(fullLadder(), 0).failures.empty());
}

TEST(Explain, AutomaticRecoveryOff) {
    RecoveryPolicy policy = fullLadder();
    policy.auto_recovery = false;
    const Explanation explanation = explain(policy, 2);
    EXPECT_EQ(explanation.failures.at(0).action, RecoveryAction::GiveUp);
    EXPECT_EQ(explanation.failures.at(1).action, RecoveryAction::GiveUp);
    EXPECT_EQ(explanation.warnings,
              std::vector<std::string>{"Automatic recovery is off: every failure gives up at once"});
}

TEST(Explain, WarnsAboutALadderThatNeverEnds) {
    const Explanation explanation =
        explain(policyWith({step(RecoveryStrategy::RestartWithBackoff, std::nullopt, 1.0, 2.0, 300.0)}), 1);
    EXPECT_EQ(explanation.warnings,
              std::vector<std::string>{"The ladder never gives up nor notifies anyone: its last "
                                       "step restarts the service without an attempts limit"});
}

TEST(Explain, WarnsWhenTheStartLimitWillSetThePace) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::RestartWithDelay, 10, 1.0)});
    EXPECT_EQ(explain(policy, 1).warnings,
              std::vector<std::string>{"The ladder step 1 (restart_with_delay) restarts so quickly that a "
                                       "service failing at once would need more than 5 starts within 10.0 s; "
                                       "the start limit will stretch its delays"});
    // Five delays of 2 s reach exactly the interval: the fifth restart is just outside it.
    policy.ladder[0].delay_seconds = 2.0;
    EXPECT_TRUE(explain(policy, 1).warnings.empty());
    // A step too short to reach the limit on its own is left alone.
    policy.ladder[0] = step(RecoveryStrategy::Restart, 4);
    EXPECT_TRUE(explain(policy, 1).warnings.empty());
    policy.ladder[0] = step(RecoveryStrategy::Restart, 5);
    EXPECT_EQ(explain(policy, 1).warnings.size(), 1u);
    // A backoff that starts short but grows past the interval within five restarts is fine: 1+2+4+8 s.
    policy.ladder[0] = step(RecoveryStrategy::RestartWithBackoff, 5, 1.0, 2.0, 300.0);
    EXPECT_TRUE(explain(policy, 1).warnings.empty());
    // One capped so low that it cannot.
    policy.ladder[0] = step(RecoveryStrategy::RestartWithBackoff, 5, 1.0, 2.0, 1.5);
    EXPECT_EQ(explain(policy, 1).warnings.size(), 1u);
}

TEST(Explain, WarnsAboutEveryProblemInAFixedOrder) {
    RecoveryPolicy policy = policyWith({step(RecoveryStrategy::SafeMode, 2, 30.0),
                                        step(RecoveryStrategy::RestartWithBackoff, 3, 10.0, 2.0, 5.0),
                                        step(RecoveryStrategy::Restart, std::nullopt)});
    policy.class_ladders[FailureClass::Probe] = {};
    policy.class_ladders[FailureClass::Oom] = {step(RecoveryStrategy::Restart, std::nullopt),
                                               step(RecoveryStrategy::NotifyAdmin, 1)};
    const std::string startLimit =
        " restarts so quickly that a service failing at once would need more than 5 starts within 10.0 s; "
        "the start limit will stretch its delays";
    const std::string afterSafeMode =
        " comes after a safe_mode step, so it goes back to the normal command after safe mode failed as well";
    const std::vector<std::string> expected = {
        "The ladder step 2 (restart_with_backoff) has max_delay_seconds below delay_seconds, so every "
        "delay is 5.0 s",
        "The ladder step 2 (restart_with_backoff)" + afterSafeMode,
        "The ladder never gives up nor notifies anyone: its last step restarts the service without an "
        "attempts limit",
        "The ladder step 3 (restart)" + startLimit,
        "The ladder step 3 (restart)" + afterSafeMode,
        "The oom ladder step 1 (restart) has no attempts limit, so the steps after it never run",
        "The oom ladder step 1 (restart)" + startLimit,
        "The probe ladder is empty: the first failure gives up",
    };
    const Explanation explanation = explain(policy, 3);
    EXPECT_EQ(explanation.warnings, expected);
    EXPECT_EQ(explain(policy, 3).warnings, explanation.warnings);
}

// ---------------------------------------------------------------------------------------------------------
// recoveryPolicyFor

TEST(RecoveryPolicyFor, TakesEverythingFromAParsedService) {
    const Config config = parseConfig(R"(
[crash_recovery]
recovery_timeout_seconds = 45
[[service]]
name = "web"
exec = ["/bin/true"]
safe_mode = { exec = ["/bin/true", "--safe"] }
[service.recovery]
ladder = [
  { strategy = "restart", attempts = 3 },
  { strategy = "restart_with_backoff", attempts = 5, delay_seconds = 1, max_delay_seconds = 8, jitter = 0 },
  { strategy = "safe_mode", attempts = 3, delay_seconds = 5, jitter = 0 },
  { strategy = "notify_admin" },
]
classes = { oom = [{ strategy = "notify_admin" }] }
stability_seconds = 120
start_seconds = 0.25
start_limit_burst = 4
start_limit_interval_seconds = 30
success_exit_codes = [0, 2]
no_restart_exit_codes = [78]
no_restart_signals = ["SIGKILL"]
)",
                                      "/etc/tau-monitor/tau-monitor.toml");
    const RecoveryPolicy policy = recoveryPolicyFor(config.services.at(0), config.crash_recovery);
    ASSERT_EQ(policy.ladder.size(), 4u);
    EXPECT_EQ(policy.ladder[1].strategy, RecoveryStrategy::RestartWithBackoff);
    EXPECT_EQ(policy.ladder[1].attempts, std::optional<unsigned>(5));
    ASSERT_EQ(policy.class_ladders.count(FailureClass::Oom), 1u);
    EXPECT_EQ(policy.class_ladders.at(FailureClass::Oom).at(0).strategy, RecoveryStrategy::NotifyAdmin);
    EXPECT_EQ(policy.stability_window, 120000ms);
    EXPECT_EQ(policy.start_window, 250ms);
    EXPECT_EQ(policy.start_limit_burst, 4u);
    EXPECT_EQ(policy.start_limit_interval, 30000ms);
    EXPECT_EQ(policy.success_exit_codes, (std::vector<int>{0, 2}));
    EXPECT_EQ(policy.no_restart_exit_codes, std::vector<int>{78});
    EXPECT_EQ(policy.no_restart_signals, std::vector<int>{SIGKILL});
    EXPECT_TRUE(policy.auto_recovery);

    // And it drives the tracker through the same ladder.
    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    std::vector<RecoveryAction> actions;
    for (int i = 0; i < 12; ++i) {
        actions.push_back(tracker.onExit(exitedWith(1), kT0, random).action);
    }
    EXPECT_EQ(actions[2], RecoveryAction::Restart);
    EXPECT_EQ(actions[8], RecoveryAction::RestartInSafeMode);
    EXPECT_EQ(actions[11], RecoveryAction::NotifyAndStop);
    EXPECT_EQ(tracker.onExit(exitedWith(2), kT0, random).action, RecoveryAction::None);
}

TEST(RecoveryPolicyFor, DefaultsComeFromCrashRecovery) {
    const Config config = parseConfig(R"(
[crash_recovery]
max_recovery_attempts = 4
recovery_timeout_seconds = 90
[[service]]
name = "worker"
exec = ["/bin/true"]
)",
                                      "/etc/tau-monitor/tau-monitor.toml");
    const RecoveryPolicy policy = recoveryPolicyFor(config.services.at(0), config.crash_recovery);
    ASSERT_EQ(policy.ladder.size(), 1u);
    EXPECT_EQ(policy.ladder[0].strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(policy.ladder[0].attempts, std::optional<unsigned>(4));
    EXPECT_TRUE(policy.class_ladders.empty());
    EXPECT_EQ(policy.stability_window, 90000ms);
    EXPECT_EQ(policy.start_window, 1000ms);
    EXPECT_EQ(policy.start_limit_burst, 5u);
    EXPECT_EQ(policy.start_limit_interval, 10000ms);
    EXPECT_EQ(policy.success_exit_codes, std::vector<int>{0});
    EXPECT_TRUE(policy.no_restart_exit_codes.empty());
    EXPECT_TRUE(policy.no_restart_signals.empty());
    // The shipped defaults deserve no warning.
    EXPECT_TRUE(explain(policy, 5).warnings.empty());

    RecoveryTracker tracker(policy);
    ScriptedRandom random;
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).action, RecoveryAction::Restart);
    }
    EXPECT_EQ(tracker.onExit(exitedWith(1), kT0, random).action, RecoveryAction::GiveUp);
}

TEST(RecoveryPolicyFor, AutoRecoveryNeedsBothSwitches) {
    const ServiceConfig service;
    CrashRecoveryConfig crash_recovery;
    EXPECT_TRUE(recoveryPolicyFor(service, crash_recovery).auto_recovery);
    crash_recovery.enabled = false;
    EXPECT_FALSE(recoveryPolicyFor(service, crash_recovery).auto_recovery);
    crash_recovery.enabled = true;
    crash_recovery.auto_recovery = false;
    EXPECT_FALSE(recoveryPolicyFor(service, crash_recovery).auto_recovery);
}

TEST(RecoveryPolicyFor, AServiceBuiltInCodeGetsTheParserDefaultLadder) {
    CrashRecoveryConfig crash_recovery;
    crash_recovery.max_recovery_attempts = 2;
    const RecoveryPolicy policy = recoveryPolicyFor(ServiceConfig{}, crash_recovery);
    ASSERT_EQ(policy.ladder.size(), 1u);
    EXPECT_EQ(policy.ladder[0].strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(policy.ladder[0].attempts, std::optional<unsigned>(2));
    EXPECT_EQ(policy.stability_window, 60000ms);
}

// ---------------------------------------------------------------------------------------------------------
// SystemRandom

TEST(SystemRandom, StaysInTheHalfOpenUnitInterval) {
    SystemRandom random;
    double lowest = 1.0;
    double highest = 0.0;
    for (int i = 0; i < 10000; ++i) {
        const double value = random.uniform();
        ASSERT_GE(value, 0.0);
        ASSERT_LT(value, 1.0);
        lowest = std::min(lowest, value);
        highest = std::max(highest, value);
    }
    // Not a quality test: only that it is not stuck.
    EXPECT_LT(lowest, 0.1);
    EXPECT_GT(highest, 0.9);
}

} // namespace
} // namespace tau
