#include "tau/metric_history.h"

#include <array>
#include <cmath>
#include <gtest/gtest.h>
#include <random>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::system_clock::time_point;

// Midnight, so that minutes and blocks start on round numbers.
const TimePoint kStart{std::chrono::seconds(1'700'006'400)};

MetricHistory perSecond() {
    return MetricHistory({1s, 3600s, 86400s});
}

TEST(MetricHistory, KeepsEverySampleOfTheLastHour) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 3600; ++second)
        history.record("cpu_percent", kStart + std::chrono::seconds(second), second % 100);
    auto points = history.query("cpu_percent", kStart, 0s);
    ASSERT_EQ(points.size(), 3600U);
    for (int second = 0; second < 3600; ++second) {
        EXPECT_EQ(points[second].at, kStart + std::chrono::seconds(second));
        // Sealed blocks hold 12-bit codes over a range of 99: the error stays below 99 / 4095 / 2.
        EXPECT_NEAR(points[second].mean, second % 100, 99.0 / 4095 / 2 + 1e-9);
    }
}

TEST(MetricHistory, KeepsLargeByteCountsToAFractionOfTheirBlockRange) {
    MetricHistory history = perSecond();
    const double base = 64.0 * 1024 * 1024 * 1024;
    for (int second = 0; second < 240; ++second)
        history.record("memory_used_bytes", kStart + std::chrono::seconds(second), base + second * 4096.0);
    auto points = history.query("memory_used_bytes", kStart, 0s);
    ASSERT_EQ(points.size(), 240U);
    // A sealed block spans 119 steps of 4096 bytes in 4095 codes.
    EXPECT_NEAR(points[17].mean, base + 17 * 4096.0, 119 * 4096.0 / 4095 / 2 + 1e-3);
    // The block being filled keeps each value to well within a byte.
    EXPECT_NEAR(points[137].mean, base + 137 * 4096.0, 1.0);
}

TEST(MetricHistory, SkipsSlotsWithoutASample) {
    MetricHistory history = perSecond();
    history.record("load_percent", kStart, 1);
    history.record("load_percent", kStart + 5s, 2);
    history.record("load_percent", kStart + 70s, 3);
    auto points = history.query("load_percent", kStart, 0s);
    ASSERT_EQ(points.size(), 3U);
    EXPECT_EQ(points[1].at, kStart + 5s);
    EXPECT_EQ(points[2].at, kStart + 70s);
    EXPECT_DOUBLE_EQ(points[2].mean, 3);
}

TEST(MetricHistory, DropsSamplesOlderThanTheHourAndServesThemAsMinutes) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 2 * 3600; ++second)
        history.record("cpu_percent", kStart + std::chrono::seconds(second), second / 60 % 2 == 0 ? 10 : 30);
    auto recent = history.query("cpu_percent", kStart + 3600s + 1s, 0s);
    EXPECT_EQ(recent.size(), 3599U);
    auto old = history.query("cpu_percent", kStart, 0s);
    ASSERT_EQ(old.size(), 120U);
    EXPECT_EQ(old[0].at, kStart);
    EXPECT_NEAR(old[0].mean, 10, 1e-3);
    EXPECT_NEAR(old[1].mean, 30, 1e-3);
    EXPECT_EQ(old[119].at, kStart + 119min);
}

TEST(MetricHistory, MinutesCarryMeanMinimumAndMaximum) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 180; ++second)
        history.record("temperature_celsius@cpu", kStart + std::chrono::seconds(second), second % 60);
    auto minutes = history.query("temperature_celsius@cpu", kStart, 60s);
    ASSERT_EQ(minutes.size(), 3U);
    for (const auto& minute : minutes) {
        EXPECT_NEAR(minute.mean, 29.5, 1e-3);
        EXPECT_NEAR(minute.min, 0, 1e-3);
        EXPECT_NEAR(minute.max, 59, 1e-3);
    }
    // The minute still being filled is part of the answer.
    EXPECT_EQ(minutes[2].at, kStart + 2min);
}

TEST(MetricHistory, WiderStepsAggregateTheFinerPoints) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 30; ++second)
        history.record("cpu_percent", kStart + std::chrono::seconds(second), second);
    auto points = history.query("cpu_percent", kStart, 10s);
    ASSERT_EQ(points.size(), 3U);
    EXPECT_EQ(points[1].at, kStart + 10s);
    EXPECT_NEAR(points[1].mean, 14.5, 1e-9);
    EXPECT_NEAR(points[1].min, 10, 1e-9);
    EXPECT_NEAR(points[1].max, 19, 1e-9);
}

TEST(MetricHistory, KeepsADayOfMinutes) {
    MetricHistory history({30s, 3600s, 86400s});
    for (int minute = 0; minute < 26 * 60; ++minute)
        history.record("disk_used_percent@/", kStart + std::chrono::minutes(minute), minute);
    auto points = history.query("disk_used_percent@/", kStart, 60s);
    ASSERT_EQ(points.size(), 1440U);
    EXPECT_EQ(points.front().at, kStart + 120min);
    EXPECT_NEAR(points.back().mean, 26 * 60 - 1, 1e-2);
}

TEST(MetricHistory, MinuteMeansOnlyForSeriesWithoutDetail) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 120; ++second) {
        history.record("service_memory_bytes@web", kStart + std::chrono::seconds(second), second,
                       MetricHistory::Detail::MinuteMeans);
    }
    auto points = history.query("service_memory_bytes@web", kStart, 0s);
    ASSERT_EQ(points.size(), 2U);
    EXPECT_NEAR(points[0].mean, 29.5, 1e-3);
    EXPECT_DOUBLE_EQ(points[0].min, points[0].mean);
    EXPECT_DOUBLE_EQ(points[0].max, points[0].mean);
}

TEST(MetricHistory, ClockSetBackFarStartsTheSeriesOverAndALittleKeepsIt) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 600; ++second)
        history.record("cpu_percent", kStart + std::chrono::seconds(second), 1);
    history.record("cpu_percent", kStart + 598s, 2);
    EXPECT_EQ(history.query("cpu_percent", kStart, 0s).size(), 600U);
    history.record("cpu_percent", kStart - 1h, 3);
    auto points = history.query("cpu_percent", kStart - 2h, 0s);
    ASSERT_EQ(points.size(), 1U);
    EXPECT_DOUBLE_EQ(points[0].mean, 3);
}

TEST(MetricHistory, IgnoresValuesThatAreNotFiniteAndUnknownKeys) {
    MetricHistory history = perSecond();
    history.record("cpu_percent", kStart, std::nan(""));
    history.record("cpu_percent", kStart + 1s, INFINITY);
    EXPECT_FALSE(history.contains("cpu_percent"));
    EXPECT_TRUE(history.query("nothing", kStart, 0s).empty());
}

TEST(MetricHistory, ForgetsSeriesSilentForADay) {
    MetricHistory history = perSecond();
    history.record("disk_used_percent@/mnt", kStart, 5);
    history.record("cpu_percent", kStart + 24h, 5);
    history.forgetSilent(kStart + 24h + 1s);
    EXPECT_EQ(history.keys(), std::vector<std::string>{"cpu_percent"});
}

TEST(MetricHistory, ADayOfTwoHundredMetricsFitsInFourMegabytes) {
    MetricHistory history = perSecond();
    for (int second = 0; second < 86400; second += 1) {
        if (second < 86400 - 3600 && second % 60 != 0)
            continue; // the minutes only need one sample each; the last hour needs all of them
        for (int metric = 0; metric < 200; ++metric)
            history.record("metric" + std::to_string(metric), kStart + std::chrono::seconds(second),
                           second + metric);
    }
    EXPECT_EQ(history.query("metric7", kStart, 60s).size(), 1440U);
    EXPECT_LT(history.memoryBytes(), 4U * 1024 * 1024);
}

// Every value comes back within half a code of its sealed block's range, whatever the series looks like:
// noise, a steady ramp (stored as second differences), a constant, gaps.
TEST(QuantizedRing, SealedBlocksGiveBackEveryValueWithinHalfACode) {
    std::mt19937 random(7);
    std::uniform_real_distribution<double> noise(-1e6, 1e6);
    std::bernoulli_distribution gap(0.1);
    constexpr int kBlocks = 5;
    constexpr int kSlots = QuantizedRing::kSlotsPerBlock;
    QuantizedRing ring((kBlocks + 1) * kSlots, 3);
    std::vector<std::array<double, 3>> written(kBlocks * kSlots);
    for (int slot = 0; slot < kBlocks * kSlots; ++slot) {
        const double nan = std::nan("");
        written[slot] = {noise(random), 1e12 + 4096.0 * slot, 42.0};
        if (gap(random))
            written[slot][0] = nan;
        if (slot / kSlots == 2)
            written[slot][1] = nan; // a whole block without this channel
        ring.put(slot, written[slot]);
    }
    ring.put(kBlocks * kSlots, std::array<double, 3>{0, 0, 0}); // seals the last block
    std::vector<int> seen;
    ring.forEach(0, kBlocks * kSlots - 1, [&](std::int64_t slot, std::span<const double> values) {
        seen.push_back(static_cast<int>(slot));
        const auto& expected = written[static_cast<std::size_t>(slot)];
        // The block's range spans every channel: 2e6 of noise, or the ramp's 1e12.
        const double tolerance = (1e12 + 4096.0 * (kBlocks * kSlots)) / 4095 / 2 + 1;
        for (int channel = 0; channel < 3; ++channel) {
            if (std::isnan(expected[channel])) {
                EXPECT_TRUE(std::isnan(values[channel])) << slot << " " << channel;
            } else {
                EXPECT_NEAR(values[channel], expected[channel], tolerance) << slot << " " << channel;
            }
        }
    });
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(kBlocks * kSlots));
}

TEST(QuantizedRing, AChannelOnItsOwnKeepsNoiseToItsBlockRangeAndARampInFewerBytes) {
    std::mt19937 random(11);
    std::uniform_real_distribution<double> noise(0, 100);
    constexpr int kSlots = QuantizedRing::kSlotsPerBlock;
    QuantizedRing noisy(2 * kSlots, 1);
    QuantizedRing ramp(2 * kSlots, 1);
    std::vector<double> values;
    for (int slot = 0; slot <= kSlots; ++slot) {
        values.push_back(noise(random));
        noisy.put(slot, std::array<double, 1>{values.back()});
        ramp.put(slot, std::array<double, 1>{10.0 + slot});
    }
    noisy.forEach(0, kSlots - 1, [&](std::int64_t slot, std::span<const double> got) {
        EXPECT_NEAR(got[0], values[static_cast<std::size_t>(slot)], 100.0 / 4095 / 2 + 1e-9);
    });
    ramp.forEach(0, kSlots - 1, [&](std::int64_t slot, std::span<const double> got) {
        EXPECT_NEAR(got[0], 10.0 + static_cast<double>(slot), (kSlots - 1.0) / 4095 / 2 + 1e-9);
    });
    // Steady steps are second differences of zero or one code: a few bits each instead of twelve.
    EXPECT_LT(ramp.memoryBytes() + 100, noisy.memoryBytes());
}

} // namespace
} // namespace tau
