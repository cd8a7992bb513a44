#include "tau/thresholds.h"

#include <algorithm>
#include <cmath>

namespace tau {
namespace {

// A flat line has no spread; without a floor any wiggle of it would be an anomaly.
constexpr double kMinimumDeviationFraction = 0.01;
constexpr double kMinimumDeviation = 1e-9;
constexpr double kLegacyHysteresisPoints = 5.0;

} // namespace

std::string_view toString(AlarmLevel level) {
    switch (level) {
    case AlarmLevel::Ok:
        return "ok";
    case AlarmLevel::Warning:
        return "warning";
    case AlarmLevel::Critical:
        return "critical";
    }
    return "ok";
}

ThresholdTracker::ThresholdTracker(ThresholdSpec spec) : spec_(std::move(spec)) {
    if (spec_.adaptive)
        window_.reserve(spec_.adaptive->window_samples);
}

std::optional<ThresholdBand> ThresholdTracker::learnedWarningBand() const {
    const AdaptiveThreshold& adaptive = *spec_.adaptive;
    if (window_.size() < std::max(adaptive.min_samples, 2U))
        return std::nullopt;
    double sum = 0;
    for (double value : window_)
        sum += value;
    const double mean = sum / static_cast<double>(window_.size());
    double squares = 0;
    for (double value : window_)
        squares += (value - mean) * (value - mean);
    const double deviation = std::max({std::sqrt(squares / static_cast<double>(window_.size() - 1)),
                                       kMinimumDeviationFraction * std::fabs(mean), kMinimumDeviation});
    ThresholdBand band = spec_.warning.value_or(ThresholdBand{});
    band.enter = mean + adaptive.k * deviation;
    band.exit = mean + adaptive.exit_k * deviation;
    return band;
}

std::optional<ThresholdBand> ThresholdTracker::warningBand() const {
    return spec_.adaptive ? learnedWarningBand() : spec_.warning;
}

AlarmLevel ThresholdTracker::classify(double value, const std::optional<ThresholdBand>& warning) const {
    // Inside the hysteresis gap a level holds: it takes the exit value to leave it.
    auto holds = [&](AlarmLevel level, const ThresholdBand& band) {
        return value >= band.enter || (level_ >= level && value > band.exit);
    };
    if (spec_.critical && holds(AlarmLevel::Critical, *spec_.critical))
        return AlarmLevel::Critical;
    if (warning && holds(AlarmLevel::Warning, *warning))
        return AlarmLevel::Warning;
    return AlarmLevel::Ok;
}

void ThresholdTracker::remember(double value) {
    if (!spec_.adaptive)
        return;
    if (window_.size() < spec_.adaptive->window_samples) {
        window_.push_back(value);
        return;
    }
    window_[window_next_] = value;
    window_next_ = (window_next_ + 1) % window_.size();
}

std::optional<ThresholdCrossing> ThresholdTracker::update(std::optional<double> value, TimePoint at) {
    if (!value || !std::isfinite(*value)) {
        warning_run_ = critical_run_ = lower_run_ = 0;
        return std::nullopt;
    }
    last_value_ = *value;
    // The sample is judged against what was learned before it.
    const std::optional<ThresholdBand> warning = warningBand();
    remember(*value);

    const AlarmLevel target = classify(*value, warning);
    warning_run_ = target >= AlarmLevel::Warning ? warning_run_ + 1 : 0;
    critical_run_ = target == AlarmLevel::Critical ? critical_run_ + 1 : 0;
    lower_run_ = target < level_ ? lower_run_ + 1 : 0;

    AlarmLevel next = level_;
    double limit = 0;
    if (target > level_) {
        if (target == AlarmLevel::Critical && critical_run_ >= spec_.critical->enter_samples) {
            next = AlarmLevel::Critical;
            limit = spec_.critical->enter;
        } else if (level_ == AlarmLevel::Ok && warning && warning_run_ >= warning->enter_samples) {
            next = AlarmLevel::Warning;
            limit = warning->enter;
        }
    } else if (target < level_) {
        const std::optional<ThresholdBand>& leaving =
            level_ == AlarmLevel::Critical ? spec_.critical : warning;
        const unsigned needed = leaving ? leaving->exit_samples : 1;
        if (lower_run_ >= needed) {
            next = target;
            limit = leaving ? leaving->exit : *value;
        }
    }
    if (next == level_)
        return std::nullopt;
    ThresholdCrossing crossing{level_, next, *value, limit};
    level_ = next;
    since_ = at;
    lower_run_ = 0;
    return crossing;
}

ThresholdMonitor::ThresholdMonitor(std::map<std::string, ThresholdSpec> specs)
    : specs_(specs.begin(), specs.end()) {}

std::optional<ThresholdCrossing> ThresholdMonitor::update(const std::string& metric, const std::string& scope,
                                                          std::optional<double> value,
                                                          ThresholdTracker::TimePoint at) {
    auto spec = specs_.find(metric);
    if (spec == specs_.end())
        return std::nullopt;
    auto [tracker, inserted] = trackers_.try_emplace({metric, scope}, spec->second);
    return tracker->second.update(value, at);
}

std::vector<ThresholdMonitor::Entry> ThresholdMonitor::entries() const {
    std::vector<Entry> entries;
    entries.reserve(trackers_.size());
    for (const auto& [key, tracker] : trackers_)
        entries.push_back({key.first, key.second, tracker});
    return entries;
}

std::map<std::string, ThresholdSpec> effectiveThresholds(const ResourceMonitoringConfig& config) {
    std::map<std::string, ThresholdSpec> specs = config.thresholds;
    auto legacy = [&](const std::string& metric, double limit) {
        ThresholdSpec spec;
        spec.warning = ThresholdBand{limit, std::max(0.0, limit - kLegacyHysteresisPoints), 1, 1};
        specs.try_emplace(metric, spec);
    };
    legacy("cpu_percent", config.cpu_threshold_percent);
    legacy("memory_used_percent", config.memory_threshold_percent);
    legacy("disk_used_percent", config.disk_threshold_percent);
    return specs;
}

} // namespace tau
