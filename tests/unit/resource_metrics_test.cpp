#include "tau/config.h"
#include "tau/resource_monitor.h"

#include <algorithm>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <optional>
#include <string>

namespace tau {
namespace {

std::optional<double> valueOf(const std::vector<MetricSample>& samples, const std::string& name,
                              const std::string& scope = std::string(kSystemScope)) {
    std::optional<double> found;
    for (const MetricSample& sample : samples) {
        if (sample.name == name && sample.scope == scope) {
            EXPECT_FALSE(found.has_value()) << name << "@" << scope << " twice";
            found = sample.value;
        }
    }
    return found;
}

// A second sample of a busy machine, every part measured.
ResourceSnapshot measuredSnapshot() {
    ResourceSnapshot snapshot;
    snapshot.cpu_percent = 45;
    snapshot.cpu_modes.user = 30;
    snapshot.cpu_modes.iowait = 5;
    snapshot.cpu_modes.steal = 2;
    snapshot.cpu_per_core_percent = {55, 35};
    snapshot.cpu_capacity_cores = 2;
    snapshot.memory = {1000, 250, 750, 75.0};
    snapshot.swap = {400, 100, 25.0};
    snapshot.swap_in_bytes_per_second = 4096;
    snapshot.swap_out_bytes_per_second = 0;
    snapshot.load = LoadAverage{1.5, 1.0, 0.5};

    DiskSnapshot root;
    root.mount_point = "/";
    root.used_percent = 60;
    root.used_bytes = 600;
    root.available_bytes = 400;
    root.inodes_total = 100;
    root.inodes_used = 40;
    DiskSnapshot hung;
    hung.mount_point = "/mnt/nfs";
    hung.used_percent = 10;
    hung.stale = true;
    DiskSnapshot noInodes;
    noInodes.mount_point = "/btrfs";
    noInodes.used_percent = 5;
    snapshot.disks = {root, hung, noInodes};

    DiskIoSnapshot sda;
    sda.device = "sda";
    sda.has_rates = true;
    sda.utilization_percent = 50;
    sda.read_bytes_per_second = 1024;
    DiskIoSnapshot fresh;
    fresh.device = "sdb";
    snapshot.disk_io = {sda, fresh};

    NetworkSnapshot eth0;
    eth0.interface = "eth0";
    eth0.has_rates = true;
    eth0.rx_bytes_per_second = 3000;
    eth0.errors_per_second = 3;
    eth0.drops_per_second = 1;
    eth0.oper_state = "up";
    NetworkSnapshot wlan0;
    wlan0.interface = "wlan0";
    wlan0.oper_state = "dormant";
    snapshot.networks = {eth0, wlan0};

    snapshot.temperatures = {{"acpitz", 45}, {"coretemp Package id 0", 61}};
    snapshot.hottest_celsius = 61;

    PressureInfo cpu;
    cpu.some = PressureStall{1.5, 0.8, 0.2, 100};
    PressureInfo io;
    io.some = PressureStall{3, 2, 1, 10};
    io.full = PressureStall{2.5, 1.5, 0.75, 5};
    snapshot.pressure.cpu = cpu;
    snapshot.pressure.io = io;

    ServiceSnapshot web;
    web.name = "web";
    web.running = true;
    web.cpu_percent = 80;
    web.memory_bytes = 7000;
    web.rss_bytes = 7000;
    web.pss_bytes = 3500;
    web.threads = 7;
    web.processes = 3;
    web.open_fds = 8;
    web.io_read_bytes_per_second = 4096;
    ServiceSnapshot starting;
    starting.name = "starting";
    starting.running = true;
    starting.memory_bytes = 100;
    ServiceSnapshot stopped;
    stopped.name = "stopped";
    snapshot.services = {web, starting, stopped};
    return snapshot;
}

TEST(ResourceMetrics, SystemMetricsUseTheThresholdNames) {
    const std::vector<MetricSample> samples = toMetricSamples(measuredSnapshot());

    EXPECT_EQ(valueOf(samples, "cpu_percent"), 45.0);
    EXPECT_EQ(valueOf(samples, "cpu_user_percent"), 30.0);
    EXPECT_EQ(valueOf(samples, "cpu_iowait_percent"), 5.0);
    EXPECT_EQ(valueOf(samples, "cpu_steal_percent"), 2.0);
    EXPECT_EQ(valueOf(samples, "cpu_core_percent", "cpu1"), 35.0);
    EXPECT_EQ(valueOf(samples, "memory_used_percent"), 75.0);
    EXPECT_EQ(valueOf(samples, "memory_available_bytes"), 250.0);
    EXPECT_EQ(valueOf(samples, "swap_used_percent"), 25.0);
    EXPECT_EQ(valueOf(samples, "swap_in_bytes_per_second"), 4096.0);
    EXPECT_EQ(valueOf(samples, "swap_out_bytes_per_second"), 0.0);
    EXPECT_EQ(valueOf(samples, "load_percent"), 75.0); // 1.5 on two cores
    EXPECT_EQ(valueOf(samples, "load15"), 0.5);
    EXPECT_EQ(valueOf(samples, "temperature_celsius"), 61.0);
    EXPECT_EQ(valueOf(samples, "temperature_celsius", "acpitz"), 45.0);
    EXPECT_EQ(valueOf(samples, "pressure_cpu_some_avg10"), 1.5);
    EXPECT_EQ(valueOf(samples, "pressure_io_full_avg10"), 2.5);
    EXPECT_EQ(valueOf(samples, "pressure_io_some_avg300"), 1.0);
    EXPECT_FALSE(valueOf(samples, "pressure_cpu_full_avg10").has_value());
    EXPECT_FALSE(valueOf(samples, "pressure_memory_some_avg10").has_value());

    // Every threshold metric name is one toMetricSamples produces for some snapshot of this shape, except the
    // memory pressure, absent here.
    for (std::string_view metric : kThresholdMetrics) {
        const bool produced = std::any_of(samples.begin(), samples.end(),
                                          [&](const MetricSample& sample) { return sample.name == metric; });
        EXPECT_TRUE(produced || metric.starts_with("pressure_memory")) << metric;
    }
}

TEST(ResourceMetrics, ScopedMetricsSkipWhatWasNotMeasured) {
    const std::vector<MetricSample> samples = toMetricSamples(measuredSnapshot());

    EXPECT_EQ(valueOf(samples, "disk_used_percent", "/"), 60.0);
    EXPECT_EQ(valueOf(samples, "disk_inodes_used_percent", "/"), 40.0);
    EXPECT_EQ(valueOf(samples, "disk_used_percent", "/btrfs"), 5.0);
    EXPECT_FALSE(valueOf(samples, "disk_inodes_used_percent", "/btrfs").has_value());
    EXPECT_FALSE(valueOf(samples, "disk_used_percent", "/mnt/nfs").has_value()); // stale

    EXPECT_EQ(valueOf(samples, "disk_io_utilization_percent", "sda"), 50.0);
    EXPECT_EQ(valueOf(samples, "disk_read_bytes_per_second", "sda"), 1024.0);
    EXPECT_FALSE(valueOf(samples, "disk_io_utilization_percent", "sdb").has_value()); // first sample

    EXPECT_EQ(valueOf(samples, "network_rx_bytes_per_second", "eth0"), 3000.0);
    EXPECT_EQ(valueOf(samples, "network_errors_per_second", "eth0"), 3.0);
    EXPECT_EQ(valueOf(samples, "network_drops_per_second", "eth0"), 1.0);
    EXPECT_EQ(valueOf(samples, "network_up", "eth0"), 1.0);
    EXPECT_EQ(valueOf(samples, "network_up", "wlan0"), 0.0);
    EXPECT_FALSE(valueOf(samples, "network_errors_per_second", "wlan0").has_value());

    EXPECT_EQ(valueOf(samples, "service_cpu_percent", "web"), 80.0);
    EXPECT_EQ(valueOf(samples, "service_memory_bytes", "web"), 7000.0);
    EXPECT_EQ(valueOf(samples, "service_pss_bytes", "web"), 3500.0);
    EXPECT_EQ(valueOf(samples, "service_threads", "web"), 7.0);
    EXPECT_EQ(valueOf(samples, "service_fds", "web"), 8.0);
    EXPECT_EQ(valueOf(samples, "service_io_read_bytes_per_second", "web"), 4096.0);
    EXPECT_FALSE(valueOf(samples, "service_io_write_bytes_per_second", "web").has_value());
    EXPECT_EQ(valueOf(samples, "service_memory_bytes", "starting"), 100.0);
    EXPECT_FALSE(valueOf(samples, "service_cpu_percent", "starting").has_value());
    EXPECT_FALSE(valueOf(samples, "service_pss_bytes", "starting").has_value());
    for (const MetricSample& sample : samples)
        EXPECT_NE(sample.scope, "stopped") << sample.name;
}

TEST(ResourceMetrics, AFailedCollectorContributesNothing) {
    ResourceSnapshot snapshot = measuredSnapshot();
    snapshot.collectors = {CollectorStatus{"cpu", CollectorState::failed, "malformed stat", {}},
                           CollectorStatus{"memory", CollectorState::ok, "", {}},
                           CollectorStatus{"load", CollectorState::failed, "malformed loadavg", {}}};

    const std::vector<MetricSample> samples = toMetricSamples(snapshot);

    EXPECT_FALSE(valueOf(samples, "cpu_percent").has_value());
    EXPECT_FALSE(valueOf(samples, "cpu_core_percent", "cpu0").has_value());
    EXPECT_FALSE(valueOf(samples, "load_percent").has_value());
    EXPECT_EQ(valueOf(samples, "memory_used_percent"), 75.0);
}

TEST(ResourceMetrics, NoSensorsMeansNoTemperatureAtAll) {
    ResourceSnapshot snapshot = measuredSnapshot();
    snapshot.temperatures.clear();
    snapshot.hottest_celsius.reset();

    const std::vector<MetricSample> samples = toMetricSamples(snapshot);

    EXPECT_TRUE(std::none_of(samples.begin(), samples.end(), [](const MetricSample& sample) {
        return sample.name == "temperature_celsius";
    }));
}

TEST(ResourceMetrics, LoadOfAContainerIsOfItsQuota) {
    ResourceSnapshot snapshot = measuredSnapshot();
    snapshot.cpu_capacity_cores = 0.5;

    EXPECT_EQ(valueOf(toMetricSamples(snapshot), "load_percent"), 300.0);
}

} // namespace
} // namespace tau
