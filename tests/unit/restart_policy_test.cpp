#include "tau/restart_policy.h"

#include <chrono>
#include <gtest/gtest.h>
#include <ostream>

namespace tau {

// Readable names in failure messages; found by argument-dependent lookup, so it lives in namespace tau.
[[maybe_unused]] static void PrintTo(ExitAction action, std::ostream* os) {
    *os << toString(action);
}

} // namespace tau

namespace tau {
namespace {

using namespace std::chrono_literals;

ExitStatus exitedWith(int code) {
    ExitStatus status;
    status.exit_code = code;
    return status;
}

ExitStatus killedBy(int signal) {
    ExitStatus status;
    status.signal = signal;
    return status;
}

// The old policy reads the first step of the service's escalation ladder.
LadderStep& firstStep(ServiceConfig& service) {
    if (service.recovery.ladder.empty()) {
        service.recovery.ladder.emplace_back();
    }
    return service.recovery.ladder.front();
}

// Short uptimes stay well inside the default 60 s stability window.
constexpr auto kShortUptime = std::chrono::steady_clock::duration(2s);

// ---------------------------------------------------------------------------------------------------------
// toString

TEST(ExitActionToString, NamesEveryAction) {
    EXPECT_EQ(toString(ExitAction::Restart), "restart");
    EXPECT_EQ(toString(ExitAction::RestartDelayed), "restart_delayed");
    EXPECT_EQ(toString(ExitAction::GiveUp), "give_up");
    EXPECT_EQ(toString(ExitAction::None), "none");
    EXPECT_EQ(toString(ExitAction::Stopped), "stopped");
}

// ---------------------------------------------------------------------------------------------------------
// decideOnExit

TEST(DecideOnExit, RequestedStopIsStoppedEvenWhenTheProcessFailed) {
    const RestartPolicy policy;
    const auto decision = decideOnExit(policy, killedBy(15), true, kShortUptime, 2);
    EXPECT_EQ(decision.action, ExitAction::Stopped);
    EXPECT_EQ(decision.delay, 0ms);
    EXPECT_EQ(decision.consecutive_failures, 0u);
}

TEST(DecideOnExit, CleanExitIsNotAFailureAndResetsTheCount) {
    const RestartPolicy policy;
    const auto decision = decideOnExit(policy, exitedWith(0), false, kShortUptime, 2);
    EXPECT_EQ(decision.action, ExitAction::None);
    EXPECT_EQ(decision.consecutive_failures, 0u);
}

TEST(DecideOnExit, FailureRestartsImmediatelyAndCountsItself) {
    const RestartPolicy policy;
    const auto decision = decideOnExit(policy, exitedWith(3), false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.delay, 0ms);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, SignalDeathIsAFailure) {
    const RestartPolicy policy;
    const auto decision = decideOnExit(policy, killedBy(9), false, kShortUptime, 1);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.consecutive_failures, 2u);
}

TEST(DecideOnExit, LostStatusCountsAsAFailure) {
    // reapPidfd returns a default ExitStatus (exit_code -1) when someone else reaped the process.
    const RestartPolicy policy;
    const auto decision = decideOnExit(policy, ExitStatus{}, false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, ExitCodeZeroWithASignalIsNotSuccess) {
    ExitStatus status = killedBy(6);
    status.exit_code = 0;
    EXPECT_FALSE(status.success());
    const auto decision = decideOnExit(RestartPolicy{}, status, false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::Restart);
}

TEST(DecideOnExit, RestartWithDelayCarriesTheDelay) {
    RestartPolicy policy;
    policy.strategy = RecoveryStrategy::RestartWithDelay;
    policy.delay = 2500ms;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::RestartDelayed);
    EXPECT_EQ(decision.delay, 2500ms);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, RestartWithZeroDelayIsAnImmediateRestart) {
    RestartPolicy policy;
    policy.strategy = RecoveryStrategy::RestartWithDelay;
    policy.delay = 0ms;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.delay, 0ms);
}

TEST(DecideOnExit, StrategyNoneDoesNothingButStillCounts) {
    RestartPolicy policy;
    policy.strategy = RecoveryStrategy::None;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 4);
    EXPECT_EQ(decision.action, ExitAction::None);
    EXPECT_EQ(decision.consecutive_failures, 5u);
}

TEST(DecideOnExit, DisabledAutoRecoveryDoesNothingButStillCounts) {
    RestartPolicy policy;
    policy.auto_recovery = false;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::None);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, DisabledAutoRecoveryWinsOverMaxAttempts) {
    RestartPolicy policy;
    policy.auto_recovery = false;
    policy.max_attempts = 1;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 5);
    EXPECT_EQ(decision.action, ExitAction::None);
}

TEST(DecideOnExit, RestartsUpToMaxAttemptsThenGivesUp) {
    RestartPolicy policy;
    policy.max_attempts = 3;
    unsigned failures = 0;
    for (unsigned attempt = 1; attempt <= 3; ++attempt) {
        const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, failures);
        ASSERT_EQ(decision.action, ExitAction::Restart) << "attempt " << attempt;
        EXPECT_EQ(decision.consecutive_failures, attempt);
        failures = decision.consecutive_failures;
    }
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, failures);
    EXPECT_EQ(decision.action, ExitAction::GiveUp);
    EXPECT_EQ(decision.consecutive_failures, 4u);
    EXPECT_EQ(decision.delay, 0ms);
}

TEST(DecideOnExit, MaxAttemptsZeroGivesUpOnTheFirstFailure) {
    RestartPolicy policy;
    policy.max_attempts = 0;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 0);
    EXPECT_EQ(decision.action, ExitAction::GiveUp);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, GiveUpWinsOverADelayedRestart) {
    RestartPolicy policy;
    policy.strategy = RecoveryStrategy::RestartWithDelay;
    policy.delay = 500ms;
    policy.max_attempts = 2;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 2);
    EXPECT_EQ(decision.action, ExitAction::GiveUp);
    EXPECT_EQ(decision.delay, 0ms);
}

TEST(DecideOnExit, UnlimitedAttemptsNeverGiveUp) {
    RestartPolicy policy;
    policy.max_attempts = std::nullopt;
    const auto decision = decideOnExit(policy, exitedWith(1), false, kShortUptime, 100000);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.consecutive_failures, 100001u);
}

TEST(DecideOnExit, StableRunForgivesEarlierFailures) {
    RestartPolicy policy;
    policy.max_attempts = 3;
    policy.stability_window = 60s;
    const auto decision = decideOnExit(policy, exitedWith(1), false, 61s, 3);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, UptimeExactlyAtTheWindowCountsAsStable) {
    RestartPolicy policy;
    policy.max_attempts = 3;
    policy.stability_window = 60s;
    const auto decision = decideOnExit(policy, exitedWith(1), false, 60s, 3);
    EXPECT_EQ(decision.action, ExitAction::Restart);
    EXPECT_EQ(decision.consecutive_failures, 1u);
}

TEST(DecideOnExit, UptimeJustBelowTheWindowKeepsCounting) {
    RestartPolicy policy;
    policy.max_attempts = 3;
    policy.stability_window = 60s;
    const auto decision = decideOnExit(policy, exitedWith(1), false, 60s - 1ms, 3);
    EXPECT_EQ(decision.action, ExitAction::GiveUp);
    EXPECT_EQ(decision.consecutive_failures, 4u);
}

// ---------------------------------------------------------------------------------------------------------
// policyFor

TEST(PolicyFor, TakesStrategyAndDelayFromTheService) {
    ServiceConfig service;
    firstStep(service).strategy = RecoveryStrategy::RestartWithDelay;
    firstStep(service).delay_seconds = 2.5;
    const auto policy = policyFor(service, CrashRecoveryConfig{});
    EXPECT_EQ(policy.strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_EQ(policy.delay, 2500ms);
}

TEST(PolicyFor, RoundsFractionalMillisecondsToTheNearest) {
    ServiceConfig service;
    firstStep(service).delay_seconds = 0.0126;
    EXPECT_EQ(policyFor(service, CrashRecoveryConfig{}).delay, 13ms);
    firstStep(service).delay_seconds = 0.0124;
    EXPECT_EQ(policyFor(service, CrashRecoveryConfig{}).delay, 12ms);
}

TEST(PolicyFor, ServiceMaxAttemptsOverridesTheGlobalOne) {
    ServiceConfig service;
    firstStep(service).attempts = 7;
    CrashRecoveryConfig crash_recovery;
    crash_recovery.max_recovery_attempts = 3;
    const auto policy = policyFor(service, crash_recovery);
    ASSERT_TRUE(policy.max_attempts.has_value());
    EXPECT_EQ(*policy.max_attempts, 7u);
}

TEST(PolicyFor, ServiceMaxAttemptsOfZeroStillOverrides) {
    ServiceConfig service;
    firstStep(service).attempts = 0;
    CrashRecoveryConfig crash_recovery;
    crash_recovery.max_recovery_attempts = 3;
    const auto policy = policyFor(service, crash_recovery);
    ASSERT_TRUE(policy.max_attempts.has_value());
    EXPECT_EQ(*policy.max_attempts, 0u);
}

TEST(PolicyFor, FallsBackToCrashRecoveryMaxAttempts) {
    ServiceConfig service;
    CrashRecoveryConfig crash_recovery;
    crash_recovery.max_recovery_attempts = 5;
    const auto policy = policyFor(service, crash_recovery);
    ASSERT_TRUE(policy.max_attempts.has_value());
    EXPECT_EQ(*policy.max_attempts, 5u);
}

TEST(PolicyFor, StabilityWindowIsTheRecoveryTimeout) {
    CrashRecoveryConfig crash_recovery;
    crash_recovery.recovery_timeout_seconds = 120;
    EXPECT_EQ(policyFor(ServiceConfig{}, crash_recovery).stability_window, 120s);
}

TEST(PolicyFor, AutoRecoveryNeedsBothSwitches) {
    CrashRecoveryConfig crash_recovery;
    EXPECT_TRUE(policyFor(ServiceConfig{}, crash_recovery).auto_recovery);

    crash_recovery.enabled = false;
    EXPECT_FALSE(policyFor(ServiceConfig{}, crash_recovery).auto_recovery);

    crash_recovery.enabled = true;
    crash_recovery.auto_recovery = false;
    EXPECT_FALSE(policyFor(ServiceConfig{}, crash_recovery).auto_recovery);
}

TEST(PolicyFor, DefaultsGiveImmediateRestartsWithThreeAttempts) {
    const auto policy = policyFor(ServiceConfig{}, CrashRecoveryConfig{});
    EXPECT_EQ(policy.strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(policy.delay, 1000ms);
    EXPECT_EQ(policy.max_attempts, std::optional<unsigned>(3));
    EXPECT_EQ(policy.stability_window, 60s);
    EXPECT_TRUE(policy.auto_recovery);
}

TEST(PolicyFor, ResultDrivesDecideOnExit) {
    ServiceConfig service;
    firstStep(service).strategy = RecoveryStrategy::RestartWithDelay;
    firstStep(service).delay_seconds = 0.25;
    firstStep(service).attempts = 1;
    const auto policy = policyFor(service, CrashRecoveryConfig{});

    const auto first = decideOnExit(policy, exitedWith(2), false, kShortUptime, 0);
    EXPECT_EQ(first.action, ExitAction::RestartDelayed);
    EXPECT_EQ(first.delay, 250ms);
    const auto second = decideOnExit(policy, exitedWith(2), false, kShortUptime, first.consecutive_failures);
    EXPECT_EQ(second.action, ExitAction::GiveUp);
}

} // namespace
} // namespace tau
