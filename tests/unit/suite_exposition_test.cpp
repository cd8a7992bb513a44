#include "prometheus_server.h"
#include "tau/suite_exposition.h"
#include "temp_dir.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <sstream>
#include <string>

namespace tau {
namespace {

bool hasLine(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

SuiteMetrics fullMetrics() {
    SuiteMetrics metrics;
    ResourceSnapshot machine;
    machine.memory = {8'000'000'000, 6'000'000'000, 2'000'000'000, 25.0};
    machine.swap = {1'000'000, 250'000, 25.0};
    machine.load = {0.5, 0.25, 0.125};
    machine.disks.push_back({"/var", "/dev/sda2", "ext4", 1000, 400, 500, 44.4, 100, 30});
    machine.networks.push_back({"eth0", 5000, 7000, 10, 20, 1, 2, 3, 4});
    machine.cpu_core_times = {CpuTimes{250, 0, 100, 1000, 50, 0, 5, 0},
                              CpuTimes{300, 10, 100, 900, 0, 0, 0, 1}};
    machine.clock_ticks_per_second = 100;
    DiskIoSnapshot sda;
    sda.device = "sda";
    sda.counters = {"sda", 10, 8, 20, 16, 1500};
    machine.disk_io.push_back(sda);
    machine.pressure.memory =
        PressureInfo{PressureStall{1, 2, 3, 2'500'000}, PressureStall{0, 0, 0, 500'000}};
    metrics.resources = machine;
    metrics.samples = {{"service_cpu_percent", "web", 12.5},
                       {"service_memory_bytes", "web", 4096},
                       {"service_cpu_percent", "db", 1},
                       {"pressure_memory_some_avg10", "system", 2.5},
                       {"temperature_celsius", "coretemp/Package id 0", 61}};
    metrics.services =
        std::vector<ServiceStatus>{{"web", "running", 2, 3'500'000, true}, {"db", "backoff", 7, 0, false}};
    metrics.recovery_actions[{"db", "restart_with_backoff"}] = 7;
    metrics.health =
        HealthSummary{0.75, "degraded", {{"cpu_usage", "ok", 1, 1}, {"temperature", "unknown", 0, 1}}};
    metrics.alarms = {{"disk_used_percent", "/var", AlarmLevel::Warning}};
    return metrics;
}

TEST(SuiteExpositionTest, MachineUnderNodeExporterNames) {
    const auto text = renderSuiteMetrics(fullMetrics());
    EXPECT_TRUE(hasLine(text, "node_memory_MemTotal_bytes 8000000000")) << text;
    EXPECT_TRUE(hasLine(text, "node_memory_MemAvailable_bytes 6000000000"));
    EXPECT_TRUE(hasLine(text, "node_memory_SwapFree_bytes 750000"));
    EXPECT_TRUE(hasLine(text, "node_load15 0.125"));
    EXPECT_TRUE(hasLine(
        text, "node_filesystem_avail_bytes{device=\"/dev/sda2\",fstype=\"ext4\",mountpoint=\"/var\"} 500"));
    EXPECT_TRUE(hasLine(
        text, "node_filesystem_free_bytes{device=\"/dev/sda2\",fstype=\"ext4\",mountpoint=\"/var\"} 600"));
    EXPECT_TRUE(hasLine(
        text, "node_filesystem_files_free{device=\"/dev/sda2\",fstype=\"ext4\",mountpoint=\"/var\"} 70"));
    EXPECT_TRUE(hasLine(text, "node_network_receive_bytes_total{device=\"eth0\"} 5000"));
    EXPECT_TRUE(hasLine(text, "node_network_transmit_drop_total{device=\"eth0\"} 4"));
    EXPECT_TRUE(hasLine(text, "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 2.5"));
    EXPECT_TRUE(hasLine(text, "node_cpu_seconds_total{cpu=\"1\",mode=\"steal\"} 0.01"));
    EXPECT_TRUE(hasLine(text, "node_pressure_memory_waiting_seconds_total 2.5"));
    EXPECT_TRUE(hasLine(text, "node_disk_read_bytes_total{device=\"sda\"} 4096"));
    EXPECT_TRUE(hasLine(text, "node_disk_writes_completed_total{device=\"sda\"} 20"));
    EXPECT_TRUE(hasLine(text, "node_disk_io_time_seconds_total{device=\"sda\"} 1.5"));
    EXPECT_TRUE(hasLine(text, "node_pressure_memory_stalled_seconds_total 0.5"));
    // No PSI for cpu and io here: left out, not 0.
    EXPECT_EQ(text.find("node_pressure_cpu_waiting_seconds_total"), std::string::npos);
}

TEST(SuiteExpositionTest, ServicesRecoveriesAlarmsAndHealth) {
    const auto text = renderSuiteMetrics(fullMetrics());
    EXPECT_TRUE(hasLine(text, "tau_service_up{service=\"web\"} 1")) << text;
    EXPECT_TRUE(hasLine(text, "tau_service_up{service=\"db\"} 0"));
    EXPECT_TRUE(hasLine(text, "tau_service_restarts_total{service=\"db\"} 7"));
    EXPECT_TRUE(hasLine(text, "tau_service_uptime_seconds{service=\"web\"} 3.5"));
    EXPECT_TRUE(hasLine(text, "tau_service_cpu_percent{service=\"web\"} 12.5"));
    EXPECT_TRUE(hasLine(text, "tau_service_cpu_percent{service=\"db\"} 1"));
    EXPECT_TRUE(hasLine(text, "tau_service_memory_bytes{service=\"web\"} 4096"));
    EXPECT_TRUE(hasLine(text, "tau_pressure_memory_some_avg10 2.5"));
    EXPECT_TRUE(hasLine(text, "tau_temperature_celsius{scope=\"coretemp/Package id 0\"} 61"));
    EXPECT_TRUE(
        hasLine(text, "tau_recovery_actions_total{action=\"restart_with_backoff\",service=\"db\"} 7"));
    EXPECT_TRUE(hasLine(text, "tau_alarm_level{metric=\"disk_used_percent\",scope=\"/var\"} 1"));
    EXPECT_TRUE(hasLine(text, "tau_health_score 0.75"));
    EXPECT_TRUE(hasLine(text, "tau_health_status{status=\"degraded\"} 1"));
    EXPECT_TRUE(hasLine(text, "tau_health_check_score{check=\"cpu_usage\"} 1"));
    // A check that could not be evaluated has a weight but no score: unknown is not zero.
    EXPECT_TRUE(hasLine(text, "tau_health_check_weight{check=\"temperature\"} 1"));
    EXPECT_EQ(text.find("tau_health_check_score{check=\"temperature\"}"), std::string::npos);
}

TEST(SuiteExpositionTest, WhatIsNotKnownIsLeftOut) {
    const auto text = renderSuiteMetrics(SuiteMetrics{});
    EXPECT_EQ(text.find("node_"), std::string::npos) << text;
    EXPECT_EQ(text.find("tau_health_score"), std::string::npos);
    EXPECT_EQ(text.find("tau_service_up"), std::string::npos);
}

TEST(SuiteExpositionTest, PromtoolAcceptsIt) {
    if (!test::findInPath("promtool")) {
        GTEST_SKIP() << "promtool is not on PATH (Debian package prometheus)";
    }
    test::TempDir dir;
    test::writeFile(dir.path() / "metrics.txt", renderSuiteMetrics(fullMetrics()));
    const auto result = test::runCommand(
        {"sh", "-c", "promtool check metrics < \"$0\"", (dir.path() / "metrics.txt").string()});
    // node_exporter's memory names keep /proc/meminfo's spelling, which promtool's linter (exit code 3)
    // calls camelCase; dashboards depend on that spelling, so it is the one complaint allowed.
    EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 3)
        << result.exit_code << result.out << result.err;
    std::istringstream complaints(result.out + result.err);
    for (std::string line; std::getline(complaints, line);) {
        EXPECT_TRUE(line.starts_with("node_memory_") && line.ends_with("not 'camelCase'")) << line;
    }
}

} // namespace
} // namespace tau
