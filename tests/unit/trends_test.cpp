#include "tau/trends.h"

#include <gtest/gtest.h>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;

const std::chrono::system_clock::time_point kStart{std::chrono::seconds(1'700'000'000)};

std::vector<HistoryPoint> line(int count, std::chrono::seconds step, double first, double perStep,
                               double wiggle = 0) {
    std::vector<HistoryPoint> points;
    for (int index = 0; index < count; ++index) {
        const double value = first + perStep * index + (index % 2 == 0 ? wiggle : -wiggle);
        points.push_back({kStart + step * index, value, value, value});
    }
    return points;
}

TEST(Trends, FitsAStraightLineExactly) {
    auto points = line(60, 60s, 50, 0.5);
    auto trend = fitTrend(points);
    ASSERT_TRUE(trend);
    EXPECT_NEAR(trend->slope_per_second, 0.5 / 60, 1e-12);
    EXPECT_NEAR(trend->value_at_end, 50 + 0.5 * 59, 1e-9);
    EXPECT_NEAR(trend->r_squared, 1.0, 1e-12);
    EXPECT_EQ(trend->span, 59min);
    EXPECT_EQ(trend->points, 60U);
}

TEST(Trends, TimeUntilTheLimitFollowsTheLine) {
    // A disk at 79.5 % growing 0.5 points a minute is full 41 minutes after the newest point.
    auto trend = fitTrend(line(60, 60s, 50, 0.5));
    ASSERT_TRUE(trend);
    auto until = timeUntil(*trend, 100);
    ASSERT_TRUE(until);
    EXPECT_EQ(*until, 41min);
}

TEST(Trends, NoForecastForAFallingOrFlatSeries) {
    auto falling = fitTrend(line(60, 60s, 50, -0.5));
    ASSERT_TRUE(falling);
    EXPECT_FALSE(timeUntil(*falling, 100));
    auto flat = fitTrend(line(60, 60s, 50, 0));
    ASSERT_TRUE(flat);
    EXPECT_NEAR(flat->r_squared, 1.0, 1e-12);
    EXPECT_FALSE(timeUntil(*flat, 100));
}

TEST(Trends, NoForecastFromNoiseTooFewPointsOrTooShortASpan) {
    auto noisy = fitTrend(line(60, 60s, 50, 0.01, 5));
    ASSERT_TRUE(noisy);
    EXPECT_LT(noisy->r_squared, 0.5);
    EXPECT_FALSE(timeUntil(*noisy, 100));
    auto few = fitTrend(line(5, 60s, 50, 1));
    ASSERT_TRUE(few);
    EXPECT_FALSE(timeUntil(*few, 100));
    auto brief = fitTrend(line(60, 1s, 50, 0.1));
    ASSERT_TRUE(brief);
    EXPECT_FALSE(timeUntil(*brief, 100));
    EXPECT_TRUE(timeUntil(*brief, 100, TrendRules{10, 30s, 0.5}));
}

TEST(Trends, AlreadyPastTheLimitIsZero) {
    auto trend = fitTrend(line(60, 60s, 95, 0.5));
    ASSERT_TRUE(trend);
    EXPECT_EQ(timeUntil(*trend, 100), 0s);
}

TEST(Trends, NeedsThreePointsAtDifferentTimes) {
    EXPECT_FALSE(fitTrend(line(2, 60s, 1, 1)));
    EXPECT_FALSE(fitTrend(line(5, 0s, 1, 1)));
}

} // namespace
} // namespace tau
