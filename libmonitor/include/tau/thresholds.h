#pragma once
// Alarm levels of metrics that must not flap: hysteresis between entering and leaving a level, a number of
// consecutive samples before either, and no recovery on missing data.

#include "tau/config.h"

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tau {

enum class AlarmLevel { Ok, Warning, Critical };
std::string_view toString(AlarmLevel level); // "ok", "warning", "critical"

struct ThresholdCrossing {
    AlarmLevel from = AlarmLevel::Ok;
    AlarmLevel to = AlarmLevel::Ok;
    double value = 0;
    // The value that was crossed: the enter value of the level entered, or the exit value of the level left.
    double limit = 0;
};

// The alarm state of one metric in one scope.
class ThresholdTracker {
  public:
    using TimePoint = std::chrono::system_clock::time_point;

    explicit ThresholdTracker(ThresholdSpec spec);

    // A sample; nullopt when the metric could not be measured this time. Missing data changes no level and
    // breaks every run of consecutive samples, so an alarm is never left on a gap.
    std::optional<ThresholdCrossing> update(std::optional<double> value, TimePoint at);

    AlarmLevel level() const { return level_; }
    TimePoint since() const { return since_; } // when the current level was entered
    std::optional<double> lastValue() const { return last_value_; }
    // The warning band in force: the configured one, or the one learned so far (nullopt while the adaptive
    // window is still short).
    std::optional<ThresholdBand> warningBand() const;
    const std::optional<ThresholdBand>& criticalBand() const { return spec_.critical; }

  private:
    AlarmLevel classify(double value, const std::optional<ThresholdBand>& warning) const;
    std::optional<ThresholdBand> learnedWarningBand() const;
    void remember(double value);

    ThresholdSpec spec_;
    AlarmLevel level_ = AlarmLevel::Ok;
    TimePoint since_{};
    std::optional<double> last_value_;
    unsigned warning_run_ = 0;   // consecutive samples at warning or above
    unsigned critical_run_ = 0;  // consecutive samples at critical
    unsigned lower_run_ = 0;     // consecutive samples below the current level
    std::vector<double> window_; // ring of the adaptive window
    std::size_t window_next_ = 0;
};

// Trackers for every (metric, scope) seen, created on the first sample from the metric's spec.
class ThresholdMonitor {
  public:
    explicit ThresholdMonitor(std::map<std::string, ThresholdSpec> specs);

    bool watches(std::string_view metric) const { return specs_.contains(metric); }
    // Unwatched metrics are ignored (nullopt).
    std::optional<ThresholdCrossing> update(const std::string& metric, const std::string& scope,
                                            std::optional<double> value, ThresholdTracker::TimePoint at);

    struct Entry {
        const std::string& metric;
        const std::string& scope;
        const ThresholdTracker& tracker;
    };
    std::vector<Entry> entries() const;

  private:
    std::map<std::string, ThresholdSpec, std::less<>> specs_;
    std::map<std::pair<std::string, std::string>, ThresholdTracker> trackers_;
};

// The specs in force: config.thresholds, plus a warning band from each *_threshold_percent key whose metric
// is not listed there (exit 5 points below the limit, like before thresholds could be configured).
std::map<std::string, ThresholdSpec> effectiveThresholds(const ResourceMonitoringConfig& config);

} // namespace tau
