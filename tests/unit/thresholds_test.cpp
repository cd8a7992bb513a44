#include "fake_clock.h"
#include "tau/thresholds.h"

#include <cmath>
#include <gtest/gtest.h>
#include <optional>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;

ThresholdSpec warningAndCritical(unsigned enterSamples = 1, unsigned exitSamples = 1) {
    ThresholdSpec spec;
    spec.warning = ThresholdBand{80, 75, enterSamples, exitSamples};
    spec.critical = ThresholdBand{95, 90, enterSamples, exitSamples};
    return spec;
}

// Feeds the values one per second and returns the level after each.
class ThresholdTrackerTest : public ::testing::Test {
  protected:
    std::vector<AlarmLevel> feed(ThresholdTracker& tracker,
                                 const std::vector<std::optional<double>>& values) {
        std::vector<AlarmLevel> levels;
        for (const auto& value : values) {
            clock.advance(1s);
            tracker.update(value, clock.wallNow());
            levels.push_back(tracker.level());
        }
        return levels;
    }

    test::FakeClock clock;
};

constexpr AlarmLevel Ok = AlarmLevel::Ok;
constexpr AlarmLevel Warn = AlarmLevel::Warning;
constexpr AlarmLevel Crit = AlarmLevel::Critical;

TEST_F(ThresholdTrackerTest, EntersAtTheEnterValueItselfAndLeavesOnlyBelowTheExitValue) {
    ThresholdTracker tracker(warningAndCritical());
    EXPECT_EQ(feed(tracker, {79.9, 80, 77, 75.1, 75, 74.9}), (std::vector{Ok, Warn, Warn, Warn, Ok, Ok}));
}

TEST_F(ThresholdTrackerTest, ValueHoveringAtTheLimitDoesNotFlap) {
    ThresholdTracker tracker(warningAndCritical());
    int crossings = 0;
    for (double value : {80.1, 79.9, 80.2, 79.8, 80.0, 79.7, 80.3}) {
        clock.advance(1s);
        crossings += tracker.update(value, clock.wallNow()).has_value();
    }
    EXPECT_EQ(crossings, 1);
    EXPECT_EQ(tracker.level(), Warn);
}

TEST_F(ThresholdTrackerTest, ReportsEachTransitionOnceWithTheLimitCrossed) {
    ThresholdTracker tracker(warningAndCritical());
    clock.advance(1s);
    auto up = tracker.update(96.0, clock.wallNow());
    ASSERT_TRUE(up);
    EXPECT_EQ(up->from, Ok);
    EXPECT_EQ(up->to, Crit);
    EXPECT_DOUBLE_EQ(up->value, 96.0);
    EXPECT_DOUBLE_EQ(up->limit, 95.0);
    EXPECT_EQ(tracker.since(), clock.wallNow());
    clock.advance(1s);
    EXPECT_FALSE(tracker.update(97.0, clock.wallNow()));
    clock.advance(1s);
    auto down = tracker.update(85.0, clock.wallNow());
    ASSERT_TRUE(down);
    EXPECT_EQ(down->from, Crit);
    EXPECT_EQ(down->to, Warn);
    EXPECT_DOUBLE_EQ(down->limit, 90.0);
    clock.advance(1s);
    auto ok = tracker.update(10.0, clock.wallNow());
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->to, Ok);
    EXPECT_DOUBLE_EQ(ok->limit, 75.0);
}

TEST_F(ThresholdTrackerTest, LeavingCriticalInsideTheWarningGapLandsOnWarning) {
    ThresholdTracker tracker(warningAndCritical());
    EXPECT_EQ(feed(tracker, {96, 78}), (std::vector{Crit, Warn}));
}

TEST_F(ThresholdTrackerTest, EnterAndExitNeedConsecutiveSamples) {
    ThresholdTracker tracker(warningAndCritical(3, 2));
    EXPECT_EQ(feed(tracker, {85, 85, 70, 85, 85, 85, 70, 85, 70, 70}),
              (std::vector{Ok, Ok, Ok, Ok, Ok, Warn, Warn, Warn, Warn, Ok}));
}

TEST_F(ThresholdTrackerTest, MixedWarningAndCriticalSamplesStillCountTowardWarning) {
    ThresholdTracker tracker(warningAndCritical(3, 1));
    EXPECT_EQ(feed(tracker, {85, 96, 85}), (std::vector{Ok, Ok, Warn}));
    EXPECT_EQ(feed(tracker, {96, 96, 96}), (std::vector{Warn, Warn, Crit}));
}

TEST_F(ThresholdTrackerTest, MissingDataIsNotARecovery) {
    ThresholdTracker tracker(warningAndCritical(1, 2));
    EXPECT_EQ(feed(tracker, {90, std::nullopt, std::nullopt, 70, std::nullopt, 70, 70}),
              (std::vector{Warn, Warn, Warn, Warn, Warn, Warn, Ok}));
}

TEST_F(ThresholdTrackerTest, MissingDataBreaksARunTowardAnAlarm) {
    ThresholdTracker tracker(warningAndCritical(2, 1));
    EXPECT_EQ(feed(tracker, {85, std::nullopt, 85, 85}), (std::vector{Ok, Ok, Ok, Warn}));
}

TEST_F(ThresholdTrackerTest, NotANumberCountsAsMissing) {
    ThresholdTracker tracker(warningAndCritical(1, 1));
    EXPECT_EQ(feed(tracker, {90, std::nan("")}), (std::vector{Warn, Warn}));
}

TEST_F(ThresholdTrackerTest, CriticalOnlySpecIgnoresTheWarningRange) {
    ThresholdSpec spec;
    spec.critical = ThresholdBand{95, 90, 1, 1};
    ThresholdTracker tracker(spec);
    EXPECT_EQ(feed(tracker, {85, 96, 92, 89}), (std::vector{Ok, Crit, Crit, Ok}));
}

ThresholdSpec adaptiveSpec() {
    ThresholdSpec spec;
    spec.adaptive = AdaptiveThreshold{};
    return spec;
}

TEST_F(ThresholdTrackerTest, AdaptiveWarningWaitsForEnoughSamples) {
    ThresholdTracker tracker(adaptiveSpec());
    for (int i = 0; i < 9; ++i)
        feed(tracker, {i % 2 == 0 ? 10.0 : 12.0});
    EXPECT_FALSE(tracker.warningBand());
    EXPECT_EQ(feed(tracker, {1000}), (std::vector{Ok}));
    EXPECT_TRUE(tracker.warningBand());
}

TEST_F(ThresholdTrackerTest, AdaptiveWarningIsMeanPlusKStandardDeviations) {
    ThresholdTracker tracker(adaptiveSpec());
    // Ten samples alternating 10 and 12: mean 11, sample standard deviation sqrt(10/9).
    for (int i = 0; i < 10; ++i)
        feed(tracker, {i % 2 == 0 ? 10.0 : 12.0});
    const double deviation = std::sqrt(10.0 / 9.0);
    auto band = tracker.warningBand();
    ASSERT_TRUE(band);
    EXPECT_NEAR(band->enter, 11 + 2 * deviation, 1e-9);
    EXPECT_NEAR(band->exit, 11 + 1.5 * deviation, 1e-9);
    EXPECT_EQ(feed(tracker, {13.0}), (std::vector{Ok}));
    EXPECT_EQ(feed(tracker, {20}), (std::vector{Warn}));
}

TEST_F(ThresholdTrackerTest, AdaptiveWindowForgetsOldSamples) {
    ThresholdSpec spec = adaptiveSpec();
    spec.adaptive->window_samples = 10;
    ThresholdTracker tracker(spec);
    for (int i = 0; i < 10; ++i)
        feed(tracker, {i % 2 == 0 ? 10.0 : 12.0});
    for (int i = 0; i < 10; ++i)
        feed(tracker, {i % 2 == 0 ? 50.0 : 52.0});
    auto band = tracker.warningBand();
    ASSERT_TRUE(band);
    EXPECT_NEAR(band->enter, 51 + 2 * std::sqrt(10.0 / 9.0), 1e-9);
}

TEST_F(ThresholdTrackerTest, AdaptiveFlatLineNeedsMoreThanAWiggle) {
    ThresholdTracker tracker(adaptiveSpec());
    for (int i = 0; i < 20; ++i)
        feed(tracker, {40.0});
    EXPECT_EQ(feed(tracker, {40.4, 41}), (std::vector{Ok, Warn}));
}

TEST_F(ThresholdTrackerTest, AdaptiveKeepsTheFixedCriticalLevel) {
    ThresholdSpec spec = adaptiveSpec();
    spec.critical = ThresholdBand{95, 90, 1, 1};
    ThresholdTracker tracker(spec);
    EXPECT_EQ(feed(tracker, {96}), (std::vector{Crit}));
}

TEST(ThresholdMonitor, KeepsOneTrackerPerScopeAndIgnoresUnwatchedMetrics) {
    ThresholdMonitor monitor({{"disk_used_percent", warningAndCritical()}});
    const auto at = std::chrono::system_clock::time_point{} + 1h;
    EXPECT_TRUE(monitor.update("disk_used_percent", "/", 85, at));
    EXPECT_FALSE(monitor.update("disk_used_percent", "/var", 10, at));
    EXPECT_FALSE(monitor.update("cpu_percent", "system", 100, at));
    EXPECT_FALSE(monitor.watches("cpu_percent"));
    auto entries = monitor.entries();
    ASSERT_EQ(entries.size(), 2U);
    EXPECT_EQ(entries[0].scope, "/");
    EXPECT_EQ(entries[0].tracker.level(), Warn);
    EXPECT_EQ(entries[1].scope, "/var");
    EXPECT_EQ(entries[1].tracker.level(), Ok);
}

TEST(EffectiveThresholds, PercentKeysBecomeWarningBandsUnlessTheMetricIsConfigured) {
    ResourceMonitoringConfig config;
    config.cpu_threshold_percent = 70;
    config.thresholds["memory_used_percent"] = warningAndCritical();
    auto specs = effectiveThresholds(config);
    ASSERT_TRUE(specs.at("cpu_percent").warning);
    EXPECT_DOUBLE_EQ(specs.at("cpu_percent").warning->enter, 70);
    EXPECT_DOUBLE_EQ(specs.at("cpu_percent").warning->exit, 65);
    EXPECT_FALSE(specs.at("cpu_percent").critical);
    EXPECT_DOUBLE_EQ(specs.at("memory_used_percent").warning->enter, 80);
    EXPECT_TRUE(specs.at("memory_used_percent").critical);
    EXPECT_DOUBLE_EQ(specs.at("disk_used_percent").warning->enter, 90);
}

} // namespace
} // namespace tau
