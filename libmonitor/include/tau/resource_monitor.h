#pragma once
// What the Resources service does with each sample, apart from the bus: alarm levels, history and trends.

#include "tau/config.h"
#include "tau/metric_history.h"
#include "tau/resources.h"
#include "tau/thresholds.h"
#include "tau/trends.h"

#include <chrono>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tau {

inline constexpr std::string_view kSystemScope = "system";

// One value of one metric in one scope ("system", a mount point, a device, a sensor, a service).
struct MetricSample {
    std::string name;
    std::string scope;
    double value = 0;
};

// "name" for the system scope, "name@scope" otherwise: how GetHistory names a series.
std::string historyKey(std::string_view name, std::string_view scope);

// A snapshot as the metrics thresholds, history and GetMetrics name (see kThresholdMetrics); scopes are
// kSystemScope, a mount point, a device, an interface, a sensor, a core ("cpu0") or a service name. What was
// not measured (a rate on the first sample, a stale mount, the values of a failed collector, a service that
// is not running) is left out rather than reported as 0, so that consumers see missing data instead of a
// false reading.
std::vector<MetricSample> toMetricSamples(const ResourceSnapshot& snapshot);

struct ThresholdEvent {
    std::string metric;
    std::string scope;
    ThresholdCrossing crossing;
};

struct TrendReport {
    std::string metric;
    std::string scope;
    double value = 0; // the fitted current value
    double slope_per_hour = 0;
    double r_squared = 0;
    std::optional<double> limit;               // what "exhausted" means for this metric, if anything
    std::optional<std::chrono::seconds> until; // when the line reaches the limit
};

class ResourceMonitor {
  public:
    using TimePoint = std::chrono::system_clock::time_point;

    // `serviceMemoryLimits`: bytes per service name, where a limit is configured.
    ResourceMonitor(const ResourceMonitoringConfig& config, std::chrono::seconds sampleStep,
                    std::map<std::string, double> serviceMemoryLimits);

    // One sampling cycle. A (metric, scope) watched before and absent now counts as missing data.
    std::vector<ThresholdEvent> observe(std::span<const MetricSample> samples, TimePoint at);

    const MetricHistory& history() const { return history_; }
    const ThresholdMonitor& thresholds() const { return thresholds_; }
    // Disk space and memory heading for full, and services whose memory keeps growing, over the last hours;
    // computed at most once a minute.
    std::vector<TrendReport> trends(TimePoint now) const;

  private:
    std::optional<TrendReport> trendOf(const std::string& metric, const std::string& scope,
                                       std::optional<double> limit, TimePoint now) const;

    MetricHistory history_;
    ThresholdMonitor thresholds_;
    std::map<std::string, double> service_memory_limits_;
    mutable std::optional<std::chrono::sys_time<std::chrono::minutes>> trends_minute_;
    mutable std::vector<TrendReport> trends_;
};

} // namespace tau
