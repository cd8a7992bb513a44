#include "tau/metric_history.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tau {
namespace {

constexpr std::uint16_t kMissingCode = 0xFFFF;
constexpr double kLargestCode = 65534.0;
constexpr std::int64_t kSecondsPerMinute = 60;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::int64_t floorDivide(std::int64_t value, std::int64_t divisor) {
    std::int64_t quotient = value / divisor;
    return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? quotient - 1 : quotient;
}

std::int64_t secondsSinceEpoch(std::chrono::system_clock::time_point at) {
    return std::chrono::floor<std::chrono::seconds>(at).time_since_epoch().count();
}

std::chrono::system_clock::time_point atSecond(std::int64_t seconds) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

} // namespace

QuantizedRing::QuantizedRing(std::size_t capacitySlots, unsigned channels)
    : capacity_(std::max<std::size_t>(capacitySlots, 1)), channels_(channels),
      sealed_((capacity_ + kSlotsPerBlock - 1) / kSlotsPerBlock),
      open_(static_cast<std::size_t>(channels) * kSlotsPerBlock, kNaN) {}

void QuantizedRing::clear() {
    for (BlockHeader& header : sealed_)
        header.number = -1;
    open_number_ = -1;
    std::fill(open_.begin(), open_.end(), kNaN);
    newest_.reset();
}

void QuantizedRing::seal() {
    if (codes_.empty())
        codes_.resize(sealed_.size() * channels_ * kSlotsPerBlock);
    const std::size_t index = static_cast<std::size_t>(open_number_) % sealed_.size();
    BlockHeader& header = sealed_[index];
    header.number = open_number_;
    double low = std::numeric_limits<double>::infinity();
    double high = -low;
    for (double value : open_) {
        if (!std::isnan(value)) {
            low = std::min(low, value);
            high = std::max(high, value);
        }
    }
    header.low = std::isfinite(low) ? low : 0;
    header.high = std::isfinite(high) ? high : 0;
    const double range = header.high - header.low;
    std::uint16_t* codes = blockCodes(index);
    for (std::size_t slot = 0; slot < open_.size(); ++slot) {
        const double value = open_[slot];
        if (std::isnan(value)) {
            codes[slot] = kMissingCode;
        } else {
            codes[slot] =
                range > 0
                    ? static_cast<std::uint16_t>(std::lround((value - header.low) / range * kLargestCode))
                    : 0;
        }
    }
    std::fill(open_.begin(), open_.end(), kNaN);
}

void QuantizedRing::put(std::int64_t slot, std::span<const double> values) {
    const std::int64_t number = floorDivide(slot, kSlotsPerBlock);
    if (open_number_ >= 0 && number < open_number_)
        return;
    if (number > open_number_) {
        if (open_number_ >= 0)
            seal();
        open_number_ = number;
    }
    const auto offset = static_cast<std::size_t>(slot - number * kSlotsPerBlock);
    for (unsigned channel = 0; channel < channels_ && channel < values.size(); ++channel) {
        const double value = values[channel];
        open_[channel * kSlotsPerBlock + offset] = std::isfinite(value) ? value : kNaN;
    }
    newest_ = std::max(newest_.value_or(slot), slot);
}

void QuantizedRing::forEach(
    std::int64_t from, std::int64_t to,
    const std::function<void(std::int64_t slot, std::span<const double> values)>& visit) const {
    if (!newest_)
        return;
    from = std::max(from, *newest_ - static_cast<std::int64_t>(capacity_) + 1);
    to = std::min(to, *newest_);
    std::vector<double> values(channels_);
    for (std::int64_t number = floorDivide(from, kSlotsPerBlock); number <= floorDivide(to, kSlotsPerBlock);
         ++number) {
        const bool open = number == open_number_;
        const std::size_t index = static_cast<std::size_t>(number) % sealed_.size();
        const BlockHeader& header = sealed_[index];
        if (!open && header.number != number)
            continue;
        const std::uint16_t* codes = open ? nullptr : blockCodes(index);
        const double range = header.high - header.low;
        for (std::int64_t offset = 0; offset < kSlotsPerBlock; ++offset) {
            const std::int64_t slot = number * kSlotsPerBlock + offset;
            if (slot < from || slot > to)
                continue;
            bool any = false;
            for (unsigned channel = 0; channel < channels_; ++channel) {
                const std::size_t position = channel * kSlotsPerBlock + static_cast<std::size_t>(offset);
                if (open) {
                    values[channel] = open_[position];
                } else {
                    const std::uint16_t code = codes[position];
                    values[channel] = code == kMissingCode
                                          ? kNaN
                                          : header.low + range * (static_cast<double>(code) / kLargestCode);
                }
                any = any || !std::isnan(values[channel]);
            }
            if (any)
                visit(slot, values);
        }
    }
}

std::size_t QuantizedRing::memoryBytes() const {
    return sizeof *this + open_.capacity() * sizeof(double) + sealed_.capacity() * sizeof(BlockHeader) +
           codes_.capacity() * sizeof(std::uint16_t);
}

MetricHistory::MetricHistory(Options options) : options_(options) {
    options_.sample_step = std::max(options_.sample_step, std::chrono::seconds(1));
}

void MetricHistory::flushMinute(Series& series) const {
    if (series.current.count == 0)
        return;
    const double mean = series.current.sum / series.current.count;
    const double values[] = {mean, series.current.min, series.current.max};
    series.minutes.put(series.current.minute, values);
    series.current = MinuteAccumulator{};
}

void MetricHistory::record(const std::string& key, TimePoint at, double value, Detail detail) {
    if (!std::isfinite(value))
        return;
    auto found = series_.find(key);
    if (found == series_.end()) {
        const auto minuteSlots = static_cast<std::size_t>(options_.minute_span.count() / kSecondsPerMinute);
        Series series{std::nullopt, QuantizedRing(minuteSlots, detail == Detail::Full ? 3 : 1), {}, at};
        if (detail == Detail::Full) {
            series.samples.emplace(static_cast<std::size_t>(options_.sample_span / options_.sample_step), 1);
        }
        found = series_.emplace(key, std::move(series)).first;
    }
    Series& series = found->second;
    const std::int64_t seconds = secondsSinceEpoch(at);
    std::int64_t minute = floorDivide(seconds, kSecondsPerMinute);
    // A wall clock set back a little (a leap second, a small correction) keeps filling the current minute;
    // set back further, what is kept no longer lines up with the present and starts over.
    const std::optional<std::int64_t> latestMinute =
        series.current.count > 0 ? std::optional(series.current.minute) : series.minutes.newestSlot();
    if (latestMinute && minute < *latestMinute) {
        if (*latestMinute - minute > 1) {
            series.minutes.clear();
            if (series.samples)
                series.samples->clear();
            series.current = MinuteAccumulator{};
        } else {
            minute = *latestMinute;
        }
    }
    series.last_recorded = at;
    if (series.samples) {
        const double values[] = {value};
        series.samples->put(floorDivide(seconds, options_.sample_step.count()), values);
    }
    if (series.current.count > 0 && series.current.minute != minute)
        flushMinute(series);
    MinuteAccumulator& current = series.current;
    if (current.count == 0) {
        current.minute = minute;
        current.min = current.max = value;
    }
    current.sum += value;
    current.min = std::min(current.min, value);
    current.max = std::max(current.max, value);
    ++current.count;
}

std::vector<HistoryPoint> MetricHistory::minutePoints(const Series& series, std::int64_t fromMinute) const {
    // The minute being filled counts toward the day kept, so the oldest stored one falls out of it.
    if (series.current.count > 0) {
        fromMinute = std::max(fromMinute, series.current.minute -
                                              static_cast<std::int64_t>(series.minutes.capacity()) + 1);
    }
    std::vector<HistoryPoint> points;
    series.minutes.forEach(fromMinute, std::numeric_limits<std::int64_t>::max(),
                           [&](std::int64_t minute, std::span<const double> values) {
                               const double mean = values[0];
                               points.push_back({atSecond(minute * kSecondsPerMinute), mean,
                                                 values.size() > 1 ? values[1] : mean,
                                                 values.size() > 2 ? values[2] : mean});
                           });
    if (series.current.count > 0 && series.current.minute >= fromMinute) {
        points.push_back({atSecond(series.current.minute * kSecondsPerMinute),
                          series.current.sum / series.current.count, series.current.min, series.current.max});
    }
    return points;
}

std::vector<HistoryPoint> MetricHistory::query(std::string_view key, TimePoint since,
                                               std::chrono::seconds step) const {
    auto found = series_.find(key);
    if (found == series_.end())
        return {};
    const Series& series = found->second;
    const std::int64_t sinceSeconds = secondsSinceEpoch(since);

    std::vector<HistoryPoint> points;
    const std::int64_t sampleStep = options_.sample_step.count();
    const bool fromSamples =
        series.samples && step.count() < kSecondsPerMinute && series.samples->newestSlot() &&
        floorDivide(sinceSeconds, sampleStep) >
            *series.samples->newestSlot() - static_cast<std::int64_t>(series.samples->capacity());
    std::int64_t native = kSecondsPerMinute;
    if (fromSamples) {
        native = sampleStep;
        series.samples->forEach(
            floorDivide(sinceSeconds, sampleStep), std::numeric_limits<std::int64_t>::max(),
            [&](std::int64_t slot, std::span<const double> values) {
                points.push_back({atSecond(slot * sampleStep), values[0], values[0], values[0]});
            });
    } else {
        points = minutePoints(series, floorDivide(sinceSeconds, kSecondsPerMinute));
    }
    if (step.count() <= native)
        return points;

    std::vector<HistoryPoint> resampled;
    std::int64_t bucket = 0;
    unsigned count = 0;
    for (const HistoryPoint& point : points) {
        const std::int64_t pointBucket = floorDivide(secondsSinceEpoch(point.at), step.count());
        if (count > 0 && pointBucket != bucket) {
            resampled.back().mean /= count;
            count = 0;
        }
        if (count == 0) {
            bucket = pointBucket;
            resampled.push_back({atSecond(bucket * step.count()), 0, point.min, point.max});
        }
        HistoryPoint& target = resampled.back();
        target.mean += point.mean;
        target.min = std::min(target.min, point.min);
        target.max = std::max(target.max, point.max);
        ++count;
    }
    if (count > 0)
        resampled.back().mean /= count;
    return resampled;
}

std::vector<std::string> MetricHistory::keys() const {
    std::vector<std::string> keys;
    keys.reserve(series_.size());
    for (const auto& [key, series] : series_)
        keys.push_back(key);
    return keys;
}

void MetricHistory::forgetSilent(TimePoint now) {
    std::erase_if(series_,
                  [&](const auto& entry) { return now - entry.second.last_recorded > options_.minute_span; });
}

std::size_t MetricHistory::memoryBytes() const {
    std::size_t bytes = sizeof *this;
    for (const auto& [key, series] : series_) {
        bytes += sizeof series + key.capacity() + series.minutes.memoryBytes();
        if (series.samples)
            bytes += series.samples->memoryBytes();
    }
    return bytes;
}

} // namespace tau
