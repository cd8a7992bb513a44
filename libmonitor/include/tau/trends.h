#pragma once
// Where a metric is heading: a least-squares line through its recent history, and when that line reaches a
// limit (a disk filling up, memory running out, a service that keeps growing).

#include "tau/metric_history.h"

#include <chrono>
#include <optional>
#include <span>

namespace tau {

struct LinearTrend {
    double slope_per_second = 0;
    double value_at_end = 0; // the fitted value at the newest point
    double r_squared = 0;    // 1: the points lie on the line; near 0: no linear trend at all
    std::size_t points = 0;
    std::chrono::seconds span{0}; // from the oldest to the newest point
};

// nullopt with fewer than three points or when they all share one time.
std::optional<LinearTrend> fitTrend(std::span<const HistoryPoint> points);

struct TrendRules {
    std::size_t min_points = 10;
    std::chrono::seconds min_span{600};
    double min_r_squared = 0.5; // a noisy series whose line explains less than this predicts nothing
};

// Time from the newest point until the fitted line reaches `limit`; nullopt when the trend is not
// trustworthy by `rules` or is not heading toward the limit.
std::optional<std::chrono::seconds> timeUntil(const LinearTrend& trend, double limit,
                                              const TrendRules& rules = {});

} // namespace tau
