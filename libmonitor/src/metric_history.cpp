#include "tau/metric_history.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace tau {
namespace {

constexpr std::uint16_t kMissingCode = 0xFFFF;
constexpr double kLargestCode = 4095.0;
constexpr unsigned kSlots = QuantizedRing::kSlotsPerBlock;

// One channel of a block: a byte with the width in bits of every difference (kAllMissing when the
// channel holds nothing; kSecondOrder when the differences are those of consecutive differences, which a
// series rising or falling at a steady rate turns into zeros), a bitmap of the slots that hold a value when
// some do not (kSomeMissing), the first code in two bytes, with second order the first difference in two
// more, then each later difference, zigzag-coded and bit-packed.
constexpr std::uint8_t kAllMissing = 0x80;
constexpr std::uint8_t kSomeMissing = 0x40;
constexpr std::uint8_t kSecondOrder = 0x20;
constexpr std::uint8_t kWidthMask = 0x1F;

unsigned bitsFor(std::uint32_t value) {
    unsigned bits = 0;
    while (value != 0) {
        ++bits;
        value >>= 1;
    }
    return bits;
}

std::uint32_t zigzag(int difference) {
    return difference >= 0 ? static_cast<std::uint32_t>(difference) * 2
                           : static_cast<std::uint32_t>(-difference) * 2 - 1;
}

int unzigzag(std::uint32_t value) {
    return (value & 1) != 0 ? -static_cast<int>((value + 1) / 2) : static_cast<int>(value / 2);
}

void encodeCodes(const std::array<std::uint16_t, kSlots>& codes, std::vector<std::uint8_t>& out) {
    std::vector<std::uint16_t> present;
    present.reserve(kSlots);
    for (std::uint16_t code : codes)
        if (code != kMissingCode)
            present.push_back(code);
    if (present.empty()) {
        out.push_back(kAllMissing);
        return;
    }
    std::vector<int> first_order, second_order;
    for (std::size_t i = 1; i < present.size(); ++i) {
        first_order.push_back(present[i] - present[i - 1]);
        if (i >= 2)
            second_order.push_back(first_order[i - 1] - first_order[i - 2]);
    }
    auto widthOf = [](const std::vector<int>& differences) {
        std::uint32_t widest = 0;
        for (int difference : differences)
            widest = std::max(widest, zigzag(difference));
        return bitsFor(widest);
    };
    const unsigned first_width = widthOf(first_order);
    const unsigned second_width = widthOf(second_order);
    // The second order costs two bytes more for its first difference.
    const bool second =
        !second_order.empty() && second_width * second_order.size() + 16 < first_width * first_order.size();
    const unsigned width = second ? second_width : first_width;
    const bool some_missing = present.size() < kSlots;
    out.push_back(
        static_cast<std::uint8_t>(width | (some_missing ? kSomeMissing : 0) | (second ? kSecondOrder : 0)));
    if (some_missing) {
        for (unsigned byte = 0; byte < (kSlots + 7) / 8; ++byte) {
            std::uint8_t bits = 0;
            for (unsigned bit = 0; bit < 8 && byte * 8 + bit < kSlots; ++bit)
                if (codes[byte * 8 + bit] != kMissingCode)
                    bits = static_cast<std::uint8_t>(bits | (1U << bit));
            out.push_back(bits);
        }
    }
    auto pushTwoBytes = [&](std::uint32_t value) {
        out.push_back(static_cast<std::uint8_t>(value >> 8));
        out.push_back(static_cast<std::uint8_t>(value & 0xFF));
    };
    pushTwoBytes(present[0]);
    if (second)
        pushTwoBytes(zigzag(first_order[0]));
    std::uint64_t pending = 0;
    unsigned pending_bits = 0;
    for (int difference : second ? second_order : first_order) {
        pending |= static_cast<std::uint64_t>(zigzag(difference)) << pending_bits;
        pending_bits += width;
        while (pending_bits >= 8) {
            out.push_back(static_cast<std::uint8_t>(pending & 0xFF));
            pending >>= 8;
            pending_bits -= 8;
        }
    }
    if (pending_bits > 0)
        out.push_back(static_cast<std::uint8_t>(pending & 0xFF));
}

std::vector<std::uint8_t>::const_iterator decodeCodes(std::vector<std::uint8_t>::const_iterator in,
                                                      std::array<std::uint16_t, kSlots>& codes) {
    codes.fill(kMissingCode);
    const std::uint8_t header = *in++;
    if ((header & kAllMissing) != 0)
        return in;
    const unsigned width = header & kWidthMask;
    std::array<bool, kSlots> present{};
    if ((header & kSomeMissing) != 0) {
        for (unsigned byte = 0; byte < (kSlots + 7) / 8; ++byte) {
            const std::uint8_t bits = *in++;
            for (unsigned bit = 0; bit < 8 && byte * 8 + bit < kSlots; ++bit)
                present[byte * 8 + bit] = (bits >> bit & 1U) != 0;
        }
    } else {
        present.fill(true);
    }
    auto twoBytes = [&] {
        std::uint32_t value = static_cast<std::uint32_t>(*in++) << 8;
        return value | *in++;
    };
    const bool second = (header & kSecondOrder) != 0;
    int code = static_cast<int>(twoBytes());
    int difference = second ? unzigzag(twoBytes()) : 0;
    std::uint64_t pending = 0;
    unsigned pending_bits = 0;
    unsigned seen = 0;
    for (unsigned slot = 0; slot < kSlots; ++slot) {
        if (!present[slot])
            continue;
        if (seen == 1 && second) {
            code += difference;
        } else if (seen >= 1) {
            while (pending_bits < width) {
                pending |= static_cast<std::uint64_t>(*in++) << pending_bits;
                pending_bits += 8;
            }
            const int packed =
                unzigzag(static_cast<std::uint32_t>(pending & ((std::uint64_t{1} << width) - 1)));
            pending >>= width;
            pending_bits -= width;
            if (second) {
                difference += packed;
                code += difference;
            } else {
                code += packed;
            }
        }
        ++seen;
        codes[slot] = static_cast<std::uint16_t>(code);
    }
    return in;
}
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
      max_sealed_((capacity_ + kSlotsPerBlock - 1) / kSlotsPerBlock),
      open_(static_cast<std::size_t>(channels) * kSlotsPerBlock, std::numeric_limits<float>::quiet_NaN()),
      open_base_(channels, kNaN) {}

double QuantizedRing::openValue(unsigned channel, std::size_t slot) const {
    return open_base_[channel] + static_cast<double>(open_[channel * kSlotsPerBlock + slot]);
}

void QuantizedRing::clear() {
    sealed_.clear();
    bytes_.clear();
    dropped_bytes_ = 0;
    open_number_ = -1;
    std::fill(open_.begin(), open_.end(), std::numeric_limits<float>::quiet_NaN());
    std::fill(open_base_.begin(), open_base_.end(), kNaN);
    newest_.reset();
}

void QuantizedRing::seal() {
    SealedBlock block{open_number_, 0, 0, dropped_bytes_ + bytes_.size()};
    double low = std::numeric_limits<double>::infinity();
    double high = -low;
    for (unsigned channel = 0; channel < channels_; ++channel) {
        for (unsigned slot = 0; slot < kSlotsPerBlock; ++slot) {
            const double value = openValue(channel, slot);
            if (!std::isnan(value)) {
                low = std::min(low, value);
                high = std::max(high, value);
            }
        }
    }
    block.low = std::isfinite(low) ? low : 0;
    block.high = std::isfinite(high) ? high : 0;
    const double range = block.high - block.low;
    std::vector<std::uint8_t> encoded;
    for (unsigned channel = 0; channel < channels_; ++channel) {
        std::array<std::uint16_t, kSlotsPerBlock> codes{};
        for (unsigned slot = 0; slot < kSlotsPerBlock; ++slot) {
            const double value = openValue(channel, slot);
            codes[slot] =
                std::isnan(value) ? kMissingCode
                : range > 0
                    ? static_cast<std::uint16_t>(std::lround((value - block.low) / range * kLargestCode))
                    : 0;
        }
        encodeCodes(codes, encoded);
    }
    if (sealed_.empty())
        sealed_.reserve(max_sealed_ + 1);
    sealed_.push_back(block);
    std::size_t drop = 0;
    if (sealed_.size() > max_sealed_) {
        sealed_.erase(sealed_.begin());
        drop = static_cast<std::size_t>(sealed_.front().offset - dropped_bytes_);
        dropped_bytes_ = sealed_.front().offset;
    }
    // A block is sealed every few minutes at most: copying the stream into a buffer of exactly its new size
    // costs little then, where a vector grown by doubling would leave up to half of it unused.
    std::vector<std::uint8_t> stream;
    stream.reserve(bytes_.size() - drop + encoded.size());
    stream.insert(stream.end(), bytes_.begin() + static_cast<std::ptrdiff_t>(drop), bytes_.end());
    stream.insert(stream.end(), encoded.begin(), encoded.end());
    bytes_ = std::move(stream);
    std::fill(open_.begin(), open_.end(), std::numeric_limits<float>::quiet_NaN());
    std::fill(open_base_.begin(), open_base_.end(), kNaN);
}

void QuantizedRing::decode(const SealedBlock& block, std::vector<double>& values) const {
    values.assign(static_cast<std::size_t>(channels_) * kSlotsPerBlock, kNaN);
    const double range = block.high - block.low;
    auto position = bytes_.begin() + static_cast<std::ptrdiff_t>(block.offset - dropped_bytes_);
    for (unsigned channel = 0; channel < channels_; ++channel) {
        std::array<std::uint16_t, kSlotsPerBlock> codes{};
        position = decodeCodes(position, codes);
        for (unsigned slot = 0; slot < kSlotsPerBlock; ++slot) {
            if (codes[slot] != kMissingCode)
                values[channel * kSlotsPerBlock + slot] =
                    block.low + range * (static_cast<double>(codes[slot]) / kLargestCode);
        }
    }
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
        if (!std::isfinite(value)) {
            open_[channel * kSlotsPerBlock + offset] = std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        if (std::isnan(open_base_[channel]))
            open_base_[channel] = value;
        open_[channel * kSlotsPerBlock + offset] = static_cast<float>(value - open_base_[channel]);
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
    std::vector<double> block_values;
    std::vector<double> values(channels_);
    auto visitBlock = [&](std::int64_t number) {
        for (std::int64_t offset = 0; offset < kSlotsPerBlock; ++offset) {
            const std::int64_t slot = number * kSlotsPerBlock + offset;
            if (slot < from || slot > to)
                continue;
            bool any = false;
            for (unsigned channel = 0; channel < channels_; ++channel) {
                values[channel] = block_values[channel * kSlotsPerBlock + static_cast<std::size_t>(offset)];
                any = any || !std::isnan(values[channel]);
            }
            if (any)
                visit(slot, values);
        }
    };
    for (const SealedBlock& block : sealed_) {
        if (block.number < floorDivide(from, kSlotsPerBlock) ||
            block.number > floorDivide(to, kSlotsPerBlock))
            continue;
        decode(block, block_values);
        visitBlock(block.number);
    }
    if (open_number_ >= 0 && open_number_ <= floorDivide(to, kSlotsPerBlock)) {
        block_values.resize(open_.size());
        for (unsigned channel = 0; channel < channels_; ++channel)
            for (std::size_t slot = 0; slot < kSlotsPerBlock; ++slot)
                block_values[channel * kSlotsPerBlock + slot] = openValue(channel, slot);
        visitBlock(open_number_);
    }
}

std::size_t QuantizedRing::memoryBytes() const {
    return sizeof *this + open_.capacity() * sizeof(float) + open_base_.capacity() * sizeof(double) +
           sealed_.capacity() * sizeof(SealedBlock) + bytes_.capacity();
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
