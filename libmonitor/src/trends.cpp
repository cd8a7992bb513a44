#include "tau/trends.h"

#include <cmath>

namespace tau {

std::optional<LinearTrend> fitTrend(std::span<const HistoryPoint> points) {
    if (points.size() < 3)
        return std::nullopt;
    // Centred on the means, so that epoch-sized times do not swamp the sums.
    const auto origin = points.front().at;
    auto secondsOf = [&](const HistoryPoint& point) {
        return std::chrono::duration<double>(point.at - origin).count();
    };
    double meanX = 0, meanY = 0;
    for (const HistoryPoint& point : points) {
        meanX += secondsOf(point);
        meanY += point.mean;
    }
    const auto count = static_cast<double>(points.size());
    meanX /= count;
    meanY /= count;
    double sxx = 0, sxy = 0, syy = 0;
    for (const HistoryPoint& point : points) {
        const double dx = secondsOf(point) - meanX;
        const double dy = point.mean - meanY;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if (sxx <= 0)
        return std::nullopt;
    LinearTrend trend;
    trend.slope_per_second = sxy / sxx;
    trend.value_at_end = meanY + trend.slope_per_second * (secondsOf(points.back()) - meanX);
    // A flat series is perfectly explained by its (flat) line.
    trend.r_squared = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1.0;
    trend.points = points.size();
    trend.span = std::chrono::duration_cast<std::chrono::seconds>(points.back().at - origin);
    return trend;
}

std::optional<std::chrono::seconds> timeUntil(const LinearTrend& trend, double limit,
                                              const TrendRules& rules) {
    if (trend.points < rules.min_points || trend.span < rules.min_span ||
        trend.r_squared < rules.min_r_squared)
        return std::nullopt;
    const double remaining = limit - trend.value_at_end;
    if (remaining <= 0)
        return std::chrono::seconds(0);
    if (trend.slope_per_second <= 0)
        return std::nullopt;
    const double seconds = remaining / trend.slope_per_second;
    // Anything beyond a century is no forecast.
    constexpr double kLongest = 100.0 * 365 * 86400;
    if (!std::isfinite(seconds) || seconds > kLongest)
        return std::nullopt;
    return std::chrono::seconds(static_cast<std::int64_t>(std::llround(seconds)));
}

} // namespace tau
