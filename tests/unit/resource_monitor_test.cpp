#include "tau/resource_monitor.h"

#include <gtest/gtest.h>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;

const std::chrono::system_clock::time_point kStart{std::chrono::seconds(1'700'006'400)};

ResourceMonitoringConfig withDiskThreshold() {
    ResourceMonitoringConfig config;
    config.thresholds["disk_used_percent"].warning = ThresholdBand{80, 75, 1, 2};
    return config;
}

TEST(ResourceMonitor, HistoryKeysNameTheScopeUnlessItIsTheSystem) {
    EXPECT_EQ(historyKey("cpu_percent", "system"), "cpu_percent");
    EXPECT_EQ(historyKey("disk_used_percent", "/var"), "disk_used_percent@/var");
}

TEST(ResourceMonitor, ReportsCrossingsPerScopeAndRecordsHistory) {
    ResourceMonitor monitor(withDiskThreshold(), 1s, {});
    std::vector<MetricSample> samples = {{"disk_used_percent", "/", 85}, {"disk_used_percent", "/var", 10}};
    auto events = monitor.observe(samples, kStart);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].metric, "disk_used_percent");
    EXPECT_EQ(events[0].scope, "/");
    EXPECT_EQ(events[0].crossing.to, AlarmLevel::Warning);
    EXPECT_EQ(monitor.history().query("disk_used_percent@/var", kStart, 0s).size(), 1U);
}

TEST(ResourceMonitor, AScopeThatStopsReportingIsMissingDataNotARecovery) {
    ResourceMonitor monitor(withDiskThreshold(), 1s, {});
    std::vector<MetricSample> full = {{"disk_used_percent", "/mnt", 90}};
    std::vector<MetricSample> low = {{"disk_used_percent", "/mnt", 10}};
    monitor.observe(full, kStart);
    // Gone, back low once (the gap broke the run), low again: only now is it a recovery.
    EXPECT_TRUE(monitor.observe({}, kStart + 1s).empty());
    EXPECT_TRUE(monitor.observe(low, kStart + 2s).empty());
    EXPECT_TRUE(monitor.observe({}, kStart + 3s).empty());
    EXPECT_TRUE(monitor.observe(low, kStart + 4s).empty());
    auto events = monitor.observe(low, kStart + 5s);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].crossing.to, AlarmLevel::Ok);
}

TEST(ResourceMonitor, ForecastsWhenADiskFillsAndWhichServiceGrows) {
    ResourceMonitor monitor(ResourceMonitoringConfig{}, 60s, {{"web", 1024.0 * 1024 * 1024}});
    for (int minute = 0; minute < 120; ++minute) {
        std::vector<MetricSample> samples = {
            {"disk_used_percent", "/var", 40 + 0.25 * minute},
            {"memory_used_percent", "system", 30},
            {"service_memory_bytes", "web", 100e6 + minute * 1e6},
            {"cpu_percent", "system", 5},
        };
        monitor.observe(samples, kStart + std::chrono::minutes(minute));
    }
    auto trends = monitor.trends(kStart + 119min);
    auto find = [&](const std::string& metric) -> const TrendReport& {
        for (const TrendReport& trend : trends) {
            if (trend.metric == metric)
                return trend;
        }
        throw std::runtime_error("no trend for " + metric);
    };
    const TrendReport& disk = find("disk_used_percent");
    EXPECT_EQ(disk.scope, "/var");
    EXPECT_NEAR(disk.slope_per_hour, 15, 1e-3);
    ASSERT_TRUE(disk.until);
    // 69.75 % now, 15 points an hour: full in 2 h 1 min.
    EXPECT_NEAR(static_cast<double>(disk.until->count()), 121 * 60, 5);
    const TrendReport& memory = find("memory_used_percent");
    EXPECT_FALSE(memory.until);
    const TrendReport& web = find("service_memory_bytes");
    EXPECT_NEAR(web.slope_per_hour, 60e6, 1e3);
    ASSERT_TRUE(web.limit);
    ASSERT_TRUE(web.until);
    for (const TrendReport& trend : trends)
        EXPECT_NE(trend.metric, "cpu_percent");
}

} // namespace
} // namespace tau
