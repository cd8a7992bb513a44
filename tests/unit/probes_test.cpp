#include "fake_clock.h"
#include "manual_reactor.h"
#include "tau/probes.h"

#include <gtest/gtest.h>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::ManualReactor;
using test::ScriptedProber;

// ---------------------------------------------------------------------------------------------------------
// ProbeTracker

const auto kSomeTime = std::chrono::steady_clock::time_point(std::chrono::hours(5));

TEST(ProbeResultNames, AreLowerCase) {
    EXPECT_EQ(toString(ProbeResult::Unknown), "unknown");
    EXPECT_EQ(toString(ProbeResult::Success), "success");
    EXPECT_EQ(toString(ProbeResult::Failure), "failure");
}

TEST(ProbeTracker, StartsUnknownWithNoHistory) {
    ProbeTracker tracker(1, 3);
    EXPECT_EQ(tracker.result(), ProbeResult::Unknown);
    EXPECT_EQ(tracker.consecutiveSuccesses(), 0U);
    EXPECT_EQ(tracker.consecutiveFailures(), 0U);
    EXPECT_FALSE(tracker.lastOutcome().has_value());
    EXPECT_FALSE(tracker.lastOutcomeTime().has_value());
}

TEST(ProbeTracker, SucceedsAfterExactlySuccessThresholdSuccesses) {
    ProbeTracker tracker(3, 3);
    EXPECT_FALSE(tracker.record(ProbeOutcome::succeeded(), kSomeTime));
    EXPECT_FALSE(tracker.record(ProbeOutcome::succeeded(), kSomeTime));
    EXPECT_EQ(tracker.result(), ProbeResult::Unknown);
    auto transition = tracker.record(ProbeOutcome::succeeded(), kSomeTime);
    ASSERT_TRUE(transition.has_value());
    EXPECT_EQ(transition->from, ProbeResult::Unknown);
    EXPECT_EQ(transition->to, ProbeResult::Success);
    EXPECT_EQ(tracker.consecutiveSuccesses(), 3U);
    EXPECT_FALSE(tracker.record(ProbeOutcome::succeeded(), kSomeTime)) << "reported once, not again";
    EXPECT_EQ(tracker.consecutiveSuccesses(), 4U);
}

TEST(ProbeTracker, FailsAfterExactlyFailureThresholdFailures) {
    ProbeTracker tracker(1, 3);
    EXPECT_FALSE(tracker.record(ProbeOutcome::failed("connection refused"), kSomeTime));
    EXPECT_FALSE(tracker.record(ProbeOutcome::failed("connection refused"), kSomeTime));
    EXPECT_EQ(tracker.result(), ProbeResult::Unknown);
    auto transition = tracker.record(ProbeOutcome::failed("HTTP 503"), kSomeTime);
    ASSERT_TRUE(transition.has_value());
    EXPECT_EQ(transition->from, ProbeResult::Unknown);
    EXPECT_EQ(transition->to, ProbeResult::Failure);
    EXPECT_EQ(tracker.consecutiveFailures(), 3U);
    EXPECT_EQ(tracker.lastOutcome()->message, "HTTP 503");
    EXPECT_FALSE(tracker.record(ProbeOutcome::failed("HTTP 503"), kSomeTime));
}

TEST(ProbeTracker, AnInterruptedRunStartsCountingAgain) {
    ProbeTracker tracker(2, 2);
    ASSERT_TRUE(tracker.record(ProbeOutcome::succeeded(), kSomeTime) == std::nullopt);
    ASSERT_TRUE(tracker.record(ProbeOutcome::succeeded(), kSomeTime).has_value());
    // One failure between successes changes nothing; the count of failures starts over after a success.
    EXPECT_FALSE(tracker.record(ProbeOutcome::failed("exit status 2"), kSomeTime));
    EXPECT_EQ(tracker.consecutiveFailures(), 1U);
    EXPECT_EQ(tracker.consecutiveSuccesses(), 0U);
    EXPECT_FALSE(tracker.record(ProbeOutcome::succeeded(), kSomeTime));
    EXPECT_EQ(tracker.consecutiveFailures(), 0U);
    EXPECT_FALSE(tracker.record(ProbeOutcome::failed("exit status 2"), kSomeTime));
    EXPECT_EQ(tracker.result(), ProbeResult::Success);
    auto toFailure = tracker.record(ProbeOutcome::failed("exit status 2"), kSomeTime);
    ASSERT_TRUE(toFailure.has_value());
    EXPECT_EQ(toFailure->from, ProbeResult::Success);
    EXPECT_EQ(toFailure->to, ProbeResult::Failure);
    // And back: success_threshold successes in a row again.
    EXPECT_FALSE(tracker.record(ProbeOutcome::succeeded(), kSomeTime));
    auto toSuccess = tracker.record(ProbeOutcome::succeeded(), kSomeTime);
    ASSERT_TRUE(toSuccess.has_value());
    EXPECT_EQ(toSuccess->from, ProbeResult::Failure);
    EXPECT_EQ(toSuccess->to, ProbeResult::Success);
}

TEST(ProbeTracker, KeepsTheLastOutcomeAndItsTime) {
    ProbeTracker tracker(1, 3);
    tracker.record(ProbeOutcome::failed("timed out after 1 s"), kSomeTime);
    tracker.record(ProbeOutcome::succeeded("HTTP 200"), kSomeTime + 10s);
    ASSERT_TRUE(tracker.lastOutcome().has_value());
    EXPECT_TRUE(tracker.lastOutcome()->success);
    EXPECT_EQ(tracker.lastOutcome()->message, "HTTP 200");
    EXPECT_EQ(tracker.lastOutcomeTime(), kSomeTime + 10s);
}

TEST(ProbeTracker, ResetForgetsEverything) {
    ProbeTracker tracker(1, 1);
    tracker.record(ProbeOutcome::failed("exit status 1"), kSomeTime);
    ASSERT_EQ(tracker.result(), ProbeResult::Failure);
    tracker.reset();
    EXPECT_EQ(tracker.result(), ProbeResult::Unknown);
    EXPECT_EQ(tracker.consecutiveFailures(), 0U);
    EXPECT_FALSE(tracker.lastOutcome().has_value());
    EXPECT_FALSE(tracker.lastOutcomeTime().has_value());
}

TEST(ProbeTracker, ThresholdsBelowOneCountAsOne) {
    ProbeTracker tracker(0, 0);
    EXPECT_TRUE(tracker.record(ProbeOutcome::succeeded(), kSomeTime).has_value());
    EXPECT_TRUE(tracker.record(ProbeOutcome::failed("x"), kSomeTime).has_value());
}

// ---------------------------------------------------------------------------------------------------------
// ProbeScheduler, on a reactor whose time moves by hand

class ProbeSchedulerTest : public testing::Test {
  protected:
    ProbeSchedulerTest() {
        config_.type = ProbeType::Tcp;
        config_.port = 80;
    }

    ProbeScheduler& make() {
        scheduler_.emplace(reactor_, clock_, config_, std::make_unique<ScriptedProber>(log_, clock_),
                           [this](const ProbeTransition& transition, const ProbeTracker& tracker) {
                               transitions_.push_back(transition);
                               messages_.push_back(tracker.lastOutcome()->message);
                               if (stop_on_transition_) {
                                   scheduler_->stop();
                               }
                           });
        return *scheduler_;
    }

    void complete(ProbeOutcome outcome) {
        ASSERT_TRUE(log_.pending) << "no attempt in flight";
        Prober::Done done = std::move(log_.pending);
        log_.pending = nullptr;
        done(std::move(outcome));
    }

    FakeClock clock_;
    ManualReactor reactor_{clock_};
    ProbeConfig config_;
    ScriptedProber::Log log_;
    std::vector<ProbeTransition> transitions_;
    std::vector<std::string> messages_;
    bool stop_on_transition_ = false;
    std::optional<ProbeScheduler> scheduler_;
};

TEST_F(ProbeSchedulerTest, FirstAttemptAfterTheInitialDelayThenOneEveryPeriod) {
    config_.initial_delay_seconds = 5;
    config_.period_seconds = 10;
    config_.timeout_seconds = 1;
    ProbeScheduler& scheduler = make();
    const auto started = clock_.now();
    scheduler.start();
    EXPECT_TRUE(scheduler.running());

    reactor_.advance(5s - 1ms);
    EXPECT_EQ(log_.starts, 0U);
    reactor_.advance(1ms);
    ASSERT_EQ(log_.starts, 1U);
    EXPECT_TRUE(scheduler.attemptInFlight());
    EXPECT_EQ(log_.timeouts[0], 1s) << "the prober is told the timeout";
    reactor_.advance(300ms);
    complete(ProbeOutcome::succeeded());
    EXPECT_FALSE(scheduler.attemptInFlight());

    // Periods count from the start of an attempt, not from its end.
    reactor_.advance(10s - 300ms - 1ms);
    EXPECT_EQ(log_.starts, 1U);
    reactor_.advance(1ms);
    ASSERT_EQ(log_.starts, 2U);
    complete(ProbeOutcome::succeeded());
    reactor_.advance(20s);
    EXPECT_EQ(log_.starts, 4U);
    EXPECT_EQ(log_.start_times, (std::vector<std::chrono::steady_clock::time_point>{
                                    started + 5s, started + 15s, started + 25s, started + 35s}));
}

TEST_F(ProbeSchedulerTest, WithoutAnInitialDelayTheFirstAttemptComesAtOnce) {
    ProbeScheduler& scheduler = make();
    scheduler.start();
    reactor_.advance(0s);
    EXPECT_EQ(log_.starts, 1U);
}

TEST_F(ProbeSchedulerTest, AnAttemptOverItsTimeoutIsCancelledAndCountsAsAFailure) {
    config_.timeout_seconds = 0.2;
    config_.failure_threshold = 1;
    ProbeScheduler& scheduler = make();
    scheduler.start();
    reactor_.advance(200ms - 1ms);
    EXPECT_EQ(log_.cancels, 0U);
    EXPECT_TRUE(transitions_.empty());
    reactor_.advance(1ms);
    EXPECT_EQ(log_.cancels, 1U);
    EXPECT_FALSE(scheduler.attemptInFlight());
    ASSERT_EQ(transitions_.size(), 1U);
    EXPECT_EQ(transitions_[0].to, ProbeResult::Failure);
    EXPECT_EQ(messages_[0], "timed out after 0.2 s");
    EXPECT_EQ(scheduler.tracker().consecutiveFailures(), 1U);

    // An outcome that still arrives for the abandoned attempt is ignored.
    ASSERT_TRUE(log_.abandoned);
    log_.abandoned(ProbeOutcome::succeeded());
    EXPECT_EQ(scheduler.tracker().result(), ProbeResult::Failure);
    EXPECT_EQ(scheduler.tracker().consecutiveFailures(), 1U);
}

TEST_F(ProbeSchedulerTest, ATimeoutOfOneSecondIsNamedSo) {
    config_.failure_threshold = 1;
    make().start();
    reactor_.advance(1s);
    ASSERT_EQ(messages_.size(), 1U);
    EXPECT_EQ(messages_[0], "timed out after 1 s");
}

TEST_F(ProbeSchedulerTest, APeriodDuringAnAttemptIsSkippedNotOverlapped) {
    config_.period_seconds = 10;
    config_.timeout_seconds = 15;
    ProbeScheduler& scheduler = make();
    scheduler.start();
    reactor_.advance(0s);
    ASSERT_EQ(log_.starts, 1U);
    reactor_.advance(12s);
    EXPECT_EQ(log_.starts, 1U) << "the period at 10 s came while the attempt was in flight";
    complete(ProbeOutcome::succeeded());
    reactor_.advance(7s);
    EXPECT_EQ(log_.starts, 1U);
    reactor_.advance(1s);
    EXPECT_EQ(log_.starts, 2U) << "the next period, at 20 s";
    // This one runs into its timeout at 35 s; the period at 30 s is skipped.
    reactor_.advance(15s);
    EXPECT_EQ(log_.cancels, 1U);
    EXPECT_EQ(log_.starts, 2U);
    reactor_.advance(5s);
    EXPECT_EQ(log_.starts, 3U);
}

TEST_F(ProbeSchedulerTest, ReportsEachTransitionOnce) {
    config_.success_threshold = 2;
    config_.failure_threshold = 2;
    config_.period_seconds = 1;
    ProbeScheduler& scheduler = make();
    scheduler.start();
    const std::vector<bool> outcomes = {true, true, true, false, false, false, true, true};
    for (bool success : outcomes) {
        reactor_.advance(scheduler.tracker().lastOutcomeTime() ? 1s : 0s);
        complete(success ? ProbeOutcome::succeeded("HTTP 200") : ProbeOutcome::failed("HTTP 503"));
    }
    ASSERT_EQ(transitions_.size(), 3U);
    EXPECT_EQ(transitions_[0].from, ProbeResult::Unknown);
    EXPECT_EQ(transitions_[0].to, ProbeResult::Success);
    EXPECT_EQ(transitions_[1].from, ProbeResult::Success);
    EXPECT_EQ(transitions_[1].to, ProbeResult::Failure);
    EXPECT_EQ(transitions_[2].from, ProbeResult::Failure);
    EXPECT_EQ(transitions_[2].to, ProbeResult::Success);
    EXPECT_EQ(messages_, (std::vector<std::string>{"HTTP 200", "HTTP 503", "HTTP 200"}));
    EXPECT_EQ(scheduler.tracker().lastOutcomeTime(), clock_.now());
}

TEST_F(ProbeSchedulerTest, StopCancelsTheTimersAndTheAttemptInFlight) {
    ProbeScheduler& scheduler = make();
    scheduler.start();
    reactor_.advance(0s);
    ASSERT_TRUE(scheduler.attemptInFlight());
    scheduler.stop();
    EXPECT_FALSE(scheduler.running());
    EXPECT_FALSE(scheduler.attemptInFlight());
    EXPECT_EQ(log_.cancels, 1U);
    EXPECT_EQ(reactor_.pendingTimers(), 0U);
    reactor_.advance(1h);
    EXPECT_EQ(log_.starts, 1U);
    scheduler.stop();
    EXPECT_EQ(log_.cancels, 1U) << "stopping twice cancels nothing more";
}

TEST_F(ProbeSchedulerTest, StartingAgainBeginsFromScratch) {
    config_.initial_delay_seconds = 3;
    config_.failure_threshold = 1;
    ProbeScheduler& scheduler = make();
    scheduler.start();
    reactor_.advance(3s);
    complete(ProbeOutcome::failed("exit status 1"));
    ASSERT_EQ(scheduler.tracker().result(), ProbeResult::Failure);
    scheduler.stop();
    EXPECT_EQ(scheduler.tracker().result(), ProbeResult::Failure) << "stop keeps what was seen";

    scheduler.start();
    EXPECT_EQ(scheduler.tracker().result(), ProbeResult::Unknown);
    reactor_.advance(3s - 1ms);
    EXPECT_EQ(log_.starts, 1U);
    reactor_.advance(1ms);
    EXPECT_EQ(log_.starts, 2U) << "the initial delay applies again";
    scheduler.start();
    reactor_.advance(3s);
    EXPECT_EQ(log_.starts, 2U) << "starting while running changes nothing";
}

TEST_F(ProbeSchedulerTest, TheTransitionCallbackMayStopTheScheduler) {
    config_.failure_threshold = 1;
    stop_on_transition_ = true;
    ProbeScheduler& scheduler = make();
    scheduler.start();
    reactor_.advance(0s);
    complete(ProbeOutcome::failed("connection refused"));
    EXPECT_FALSE(scheduler.running());
    EXPECT_EQ(reactor_.pendingTimers(), 0U);
}

TEST_F(ProbeSchedulerTest, RefusesToRunWithoutAProber) {
    EXPECT_THROW(ProbeScheduler(reactor_, clock_, config_, nullptr, {}), std::invalid_argument);
}

TEST_F(ProbeSchedulerTest, DestroyingARunningSchedulerCancelsEverything) {
    make().start();
    reactor_.advance(0s);
    scheduler_.reset();
    EXPECT_EQ(log_.cancels, 1U);
    EXPECT_EQ(reactor_.pendingTimers(), 0U);
}

} // namespace
} // namespace tau
