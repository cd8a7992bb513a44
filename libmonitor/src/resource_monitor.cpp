#include "tau/resource_monitor.h"

#include <set>

namespace tau {
namespace {

constexpr auto kTrendWindow = std::chrono::hours(3);
constexpr std::string_view kServicePrefix = "service_";

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
    const std::string system(kSystemScope);
    std::vector<MetricSample> samples{
        {"cpu_percent", system, snapshot.cpu_percent},
        {"memory_used_percent", system, snapshot.memory.used_percent},
        {"memory_available_bytes", system, static_cast<double>(snapshot.memory.available_bytes)},
        {"swap_used_percent", system, snapshot.swap.used_percent},
        {"load1", system, snapshot.load.one},
        {"load5", system, snapshot.load.five},
        {"load15", system, snapshot.load.fifteen},
    };
    if (!snapshot.cpu_per_core_percent.empty())
        samples.push_back(
            {"load_percent", system,
             100.0 * snapshot.load.one / static_cast<double>(snapshot.cpu_per_core_percent.size())});
    for (std::size_t core = 0; core < snapshot.cpu_per_core_percent.size(); ++core)
        // Per core apart from cpu_percent: one busy core is no alarm.
        samples.push_back(
            {"cpu_core_percent", "cpu" + std::to_string(core), snapshot.cpu_per_core_percent[core]});
    for (const auto& disk : snapshot.disks) {
        samples.push_back({"disk_used_percent", disk.mount_point, disk.used_percent});
        samples.push_back(
            {"disk_available_bytes", disk.mount_point, static_cast<double>(disk.available_bytes)});
        if (disk.inodes_total > 0)
            samples.push_back(
                {"disk_inodes_used_percent", disk.mount_point,
                 100.0 * static_cast<double>(disk.inodes_used) / static_cast<double>(disk.inodes_total)});
    }
    for (const auto& network : snapshot.networks) {
        samples.push_back({"network_rx_bytes_per_second", network.interface, network.rx_bytes_per_second});
        samples.push_back({"network_tx_bytes_per_second", network.interface, network.tx_bytes_per_second});
    }
    return samples;
}

ResourceMonitor::ResourceMonitor(const ResourceMonitoringConfig& config, std::chrono::seconds sampleStep,
                                 std::map<std::string, double> serviceMemoryLimits)
    : history_(MetricHistory::Options{sampleStep, std::chrono::hours(1), std::chrono::hours(24)}),
      thresholds_(effectiveThresholds(config)), service_memory_limits_(std::move(serviceMemoryLimits)) {}

std::vector<ThresholdEvent> ResourceMonitor::observe(std::span<const MetricSample> samples, TimePoint at) {
    std::vector<ThresholdEvent> events;
    std::set<std::pair<std::string_view, std::string_view>> seen;
    for (const MetricSample& sample : samples) {
        // The many per-service series keep minutes only: enough for trends, small enough for thousands.
        const auto detail = std::string_view(sample.name).starts_with(kServicePrefix)
                                ? MetricHistory::Detail::MinuteMeans
                                : MetricHistory::Detail::Full;
        history_.record(historyKey(sample.name, sample.scope), at, sample.value, detail);
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
    return reports;
}

} // namespace tau
