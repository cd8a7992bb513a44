#include "tau/resource_monitor.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace tau {
namespace {

constexpr auto kTrendWindow = std::chrono::hours(3);
constexpr std::string_view kServicePrefix = "service_";
constexpr std::string_view kServiceHistoryMetrics[] = {"service_cpu_percent", "service_memory_bytes"};

bool contains(std::span<const std::string_view> names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

class SampleList {
  public:
    void add(std::string_view name, std::string_view scope, double value) {
        samples_.push_back(MetricSample{std::string(name), std::string(scope), value});
    }
    void add(std::string_view name, double value) { add(name, kSystemScope, value); }
    void addIf(std::string_view name, std::string_view scope, const std::optional<double>& value) {
        if (value)
            add(name, scope, *value);
    }

    std::vector<MetricSample> take() { return std::move(samples_); }

  private:
    std::vector<MetricSample> samples_;
};

// A snapshot built by hand (or received from elsewhere) carries no collector status; its values are taken
// as measured.
bool collected(const ResourceSnapshot& snapshot, std::string_view collector) {
    const CollectorStatus* status = snapshot.collector(collector);
    return status == nullptr || status->state != CollectorState::failed;
}

void addPressure(SampleList& samples, std::string_view resource, const std::optional<PressureInfo>& info) {
    if (!info)
        return;
    auto addStall = [&](std::string_view kind, const std::optional<PressureStall>& stall) {
        if (!stall)
            return;
        const std::string prefix = "pressure_" + std::string(resource) + "_" + std::string(kind) + "_";
        samples.add(prefix + "avg10", stall->avg10);
        samples.add(prefix + "avg60", stall->avg60);
        samples.add(prefix + "avg300", stall->avg300);
    };
    addStall("some", info->some);
    addStall("full", info->full);
}

} // namespace

std::string historyKey(std::string_view name, std::string_view scope) {
    std::string key(name);
    if (scope != kSystemScope) {
        key += '@';
        key += scope;
    }
    return key;
}

std::vector<MetricSample> toMetricSamples(const ResourceSnapshot& snapshot) {
    SampleList samples;

    if (collected(snapshot, "cpu") && !snapshot.cpu_per_core_percent.empty()) {
        samples.add("cpu_percent", snapshot.cpu_percent);
        samples.add("cpu_user_percent", snapshot.cpu_modes.user);
        samples.add("cpu_nice_percent", snapshot.cpu_modes.nice);
        samples.add("cpu_system_percent", snapshot.cpu_modes.system);
        samples.add("cpu_idle_percent", snapshot.cpu_modes.idle);
        samples.add("cpu_iowait_percent", snapshot.cpu_modes.iowait);
        samples.add("cpu_irq_percent", snapshot.cpu_modes.irq);
        samples.add("cpu_softirq_percent", snapshot.cpu_modes.softirq);
        samples.add("cpu_steal_percent", snapshot.cpu_modes.steal);
        for (std::size_t core = 0; core < snapshot.cpu_per_core_percent.size(); ++core)
            samples.add("cpu_core_percent", "cpu" + std::to_string(core),
                        snapshot.cpu_per_core_percent[core]);
    }

    if (collected(snapshot, "memory") && snapshot.memory.total_bytes > 0) {
        samples.add("memory_used_percent", snapshot.memory.used_percent);
        samples.add("memory_used_bytes", static_cast<double>(snapshot.memory.used_bytes));
        samples.add("memory_available_bytes", static_cast<double>(snapshot.memory.available_bytes));
        samples.add("memory_total_bytes", static_cast<double>(snapshot.memory.total_bytes));
        samples.add("swap_used_percent", snapshot.swap.used_percent);
        samples.add("swap_used_bytes", static_cast<double>(snapshot.swap.used_bytes));
    }
    if (collected(snapshot, "swap")) {
        samples.addIf("swap_in_bytes_per_second", kSystemScope, snapshot.swap_in_bytes_per_second);
        samples.addIf("swap_out_bytes_per_second", kSystemScope, snapshot.swap_out_bytes_per_second);
    }

    if (collected(snapshot, "load")) {
        samples.add("load1", snapshot.load.one);
        samples.add("load5", snapshot.load.five);
        samples.add("load15", snapshot.load.fifteen);
        // A load equal to the capacity keeps every core (or the whole quota) busy: that is 100%.
        const double capacity = snapshot.cpu_capacity_cores > 0
                                    ? snapshot.cpu_capacity_cores
                                    : static_cast<double>(snapshot.cpu_per_core_percent.size());
        if (capacity > 0)
            samples.add("load_percent", 100.0 * snapshot.load.one / capacity);
    }

    for (const DiskSnapshot& disk : snapshot.disks) {
        if (disk.stale)
            continue;
        samples.add("disk_used_percent", disk.mount_point, disk.used_percent);
        samples.add("disk_used_bytes", disk.mount_point, static_cast<double>(disk.used_bytes));
        samples.add("disk_available_bytes", disk.mount_point, static_cast<double>(disk.available_bytes));
        // Filesystems like btrfs report no inode limit at all.
        if (disk.inodes_total > 0)
            samples.add("disk_inodes_used_percent", disk.mount_point, disk.inodesUsedPercent());
    }

    for (const DiskIoSnapshot& disk : snapshot.disk_io) {
        if (!disk.has_rates)
            continue;
        samples.add("disk_io_utilization_percent", disk.device, disk.utilization_percent);
        samples.add("disk_read_bytes_per_second", disk.device, disk.read_bytes_per_second);
        samples.add("disk_write_bytes_per_second", disk.device, disk.write_bytes_per_second);
        samples.add("disk_reads_per_second", disk.device, disk.reads_per_second);
        samples.add("disk_writes_per_second", disk.device, disk.writes_per_second);
    }

    for (const NetworkSnapshot& interface : snapshot.networks) {
        if (interface.oper_state)
            samples.add("network_up", interface.interface, *interface.oper_state == "up" ? 1.0 : 0.0);
        if (!interface.has_rates)
            continue;
        samples.add("network_rx_bytes_per_second", interface.interface, interface.rx_bytes_per_second);
        samples.add("network_tx_bytes_per_second", interface.interface, interface.tx_bytes_per_second);
        samples.add("network_rx_packets_per_second", interface.interface, interface.rx_packets_per_second);
        samples.add("network_tx_packets_per_second", interface.interface, interface.tx_packets_per_second);
        samples.add("network_errors_per_second", interface.interface, interface.errors_per_second);
        samples.add("network_drops_per_second", interface.interface, interface.drops_per_second);
    }

    samples.addIf("temperature_celsius", kSystemScope, snapshot.hottest_celsius);
    for (const TemperatureReading& reading : snapshot.temperatures)
        samples.add("temperature_celsius", reading.sensor, reading.celsius);

    addPressure(samples, "cpu", snapshot.pressure.cpu);
    addPressure(samples, "memory", snapshot.pressure.memory);
    addPressure(samples, "io", snapshot.pressure.io);

    for (const ServiceSnapshot& service : snapshot.services) {
        if (!service.running)
            continue;
        const std::string& scope = service.name;
        samples.addIf("service_cpu_percent", scope, service.cpu_percent);
        samples.add("service_memory_bytes", scope, static_cast<double>(service.memory_bytes));
        samples.add("service_rss_bytes", scope, static_cast<double>(service.rss_bytes));
        if (service.pss_bytes)
            samples.add("service_pss_bytes", scope, static_cast<double>(*service.pss_bytes));
        samples.add("service_processes", scope, static_cast<double>(service.processes));
        samples.add("service_threads", scope, static_cast<double>(service.threads));
        if (service.open_fds)
            samples.add("service_fds", scope, static_cast<double>(*service.open_fds));
        samples.addIf("service_io_read_bytes_per_second", scope, service.io_read_bytes_per_second);
        samples.addIf("service_io_write_bytes_per_second", scope, service.io_write_bytes_per_second);
    }
    return samples.take();
}

ResourceMonitor::ResourceMonitor(const ResourceMonitoringConfig& config, std::chrono::seconds sampleStep,
                                 std::map<std::string, double> serviceMemoryLimits)
    : history_(MetricHistory::Options{sampleStep, std::chrono::hours(1), std::chrono::hours(24)}),
      thresholds_(effectiveThresholds(config)), service_memory_limits_(std::move(serviceMemoryLimits)) {}

std::vector<ThresholdEvent> ResourceMonitor::observe(std::span<const MetricSample> samples, TimePoint at) {
    std::vector<ThresholdEvent> events;
    std::set<std::pair<std::string_view, std::string_view>> seen;
    for (const MetricSample& sample : samples) {
        const bool of_service = std::string_view(sample.name).starts_with(kServicePrefix);
        // Of each service only CPU and memory have a history, and only their minutes: enough for graphs and
        // trends, small enough for a thousand services. The rest is in the latest sample.
        if (!of_service || contains(kServiceHistoryMetrics, sample.name))
            history_.record(historyKey(sample.name, sample.scope), at, sample.value,
                            of_service ? MetricHistory::Detail::MinuteMeans : MetricHistory::Detail::Full);
        if (!thresholds_.watches(sample.name))
            continue;
        seen.emplace(sample.name, sample.scope);
        if (auto crossing = thresholds_.update(sample.name, sample.scope, sample.value, at))
            events.push_back({sample.name, sample.scope, *crossing});
    }
    for (const auto& entry : thresholds_.entries()) {
        if (!seen.contains({entry.metric, entry.scope}))
            thresholds_.update(entry.metric, entry.scope, std::nullopt, at);
    }
    history_.forgetSilent(at);
    return events;
}

std::optional<TrendReport> ResourceMonitor::trendOf(const std::string& metric, const std::string& scope,
                                                    std::optional<double> limit, TimePoint now) const {
    const auto points =
        history_.query(historyKey(metric, scope), now - kTrendWindow, std::chrono::seconds(60));
    const auto fit = fitTrend(points);
    if (!fit)
        return std::nullopt;
    TrendReport report{metric, scope, fit->value_at_end, fit->slope_per_second * 3600, fit->r_squared,
                       limit,  {}};
    if (limit)
        report.until = timeUntil(*fit, *limit);
    return report;
}

std::vector<TrendReport> ResourceMonitor::trends(TimePoint now) const {
    // The fits are over minutes: within a minute they would come out the same.
    const auto minute = std::chrono::floor<std::chrono::minutes>(now);
    if (trends_minute_ == minute)
        return trends_;
    std::vector<TrendReport> reports;
    for (const std::string& key : history_.keys()) {
        const std::size_t at = key.find('@');
        const std::string metric = key.substr(0, at);
        const std::string scope = at == std::string::npos ? std::string(kSystemScope) : key.substr(at + 1);
        std::optional<TrendReport> report;
        if (metric == "disk_used_percent" || metric == "disk_inodes_used_percent" ||
            metric == "memory_used_percent") {
            report = trendOf(metric, scope, 100.0, now);
        } else if (metric == "service_memory_bytes") {
            auto limit = service_memory_limits_.find(scope);
            report = trendOf(
                metric, scope,
                limit == service_memory_limits_.end() ? std::nullopt : std::optional(limit->second), now);
        }
        if (report)
            reports.push_back(std::move(*report));
    }
    trends_minute_ = minute;
    trends_ = reports;
    return reports;
}

} // namespace tau
