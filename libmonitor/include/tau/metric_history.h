#pragma once
// Recent values of every metric at two resolutions: each sample for the last hour and a per-minute mean,
// minimum and maximum for a day. Values are kept in blocks quantized to 16 bits against the block's own
// range, so a day of a metric costs a few kilobytes and the error stays below 1/65534 of that range.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tau {

// Slots on a fixed time grid, numbered from the epoch; one or more values ("channels") per slot.
class QuantizedRing {
  public:
    static constexpr unsigned kSlotsPerBlock = 60;

    QuantizedRing(std::size_t capacitySlots, unsigned channels);

    // A slot older than the block being written is dropped; NaN marks a missing channel value.
    void put(std::int64_t slot, std::span<const double> values);
    // Every slot in [from, to] that holds data, oldest first, no further back than the capacity.
    void forEach(std::int64_t from, std::int64_t to,
                 const std::function<void(std::int64_t slot, std::span<const double> values)>& visit) const;
    std::optional<std::int64_t> newestSlot() const { return newest_; }
    std::size_t capacity() const { return capacity_; }
    std::size_t memoryBytes() const;
    void clear();

  private:
    struct BlockHeader {
        std::int64_t number = -1;
        double low = 0;
        double high = 0;
    };

    void seal();
    std::uint16_t* blockCodes(std::size_t block) {
        return codes_.data() + block * channels_ * kSlotsPerBlock;
    }
    const std::uint16_t* blockCodes(std::size_t block) const {
        return codes_.data() + block * channels_ * kSlotsPerBlock;
    }

    std::size_t capacity_;
    unsigned channels_;
    std::vector<BlockHeader> sealed_; // indexed by block number modulo their count
    // Every sealed block's codes in one allocation, channel-major within a block; allocated on the first
    // seal.
    std::vector<std::uint16_t> codes_;
    std::int64_t open_number_ = -1;
    std::vector<double> open_; // channel-major, NaN where nothing was recorded
    std::optional<std::int64_t> newest_;
};

struct HistoryPoint {
    std::chrono::system_clock::time_point at; // start of the slot or step
    double mean = 0;
    double min = 0;
    double max = 0;
};

class MetricHistory {
  public:
    using TimePoint = std::chrono::system_clock::time_point;

    struct Options {
        std::chrono::seconds sample_step{1};
        std::chrono::seconds sample_span{3600};
        std::chrono::seconds minute_span{86400};
    };

    // How much of a series is kept: everything, or (for the many per-service series) the per-minute means.
    enum class Detail { Full, MinuteMeans };

    explicit MetricHistory(Options options);

    void record(const std::string& key, TimePoint at, double value, Detail detail = Detail::Full);

    // Points from `since` on, each `step` wide (zero: the finest resolution kept for that stretch). Steps
    // below a minute are served from the samples while `since` is within their span, else from the minutes;
    // wider steps aggregate the finer points (mean of means, lowest minimum, highest maximum).
    std::vector<HistoryPoint> query(std::string_view key, TimePoint since, std::chrono::seconds step) const;

    std::vector<std::string> keys() const;
    bool contains(std::string_view key) const { return series_.find(key) != series_.end(); }
    // Drops series that received nothing for a whole day, such as a disk long unmounted.
    void forgetSilent(TimePoint now);
    std::size_t memoryBytes() const;

  private:
    struct MinuteAccumulator {
        std::int64_t minute = 0;
        double sum = 0;
        double min = 0;
        double max = 0;
        unsigned count = 0;
    };
    struct Series {
        std::optional<QuantizedRing> samples;
        QuantizedRing minutes;
        MinuteAccumulator current;
        TimePoint last_recorded;
    };

    void flushMinute(Series& series) const;
    std::vector<HistoryPoint> minutePoints(const Series& series, std::int64_t fromMinute) const;

    Options options_;
    std::map<std::string, Series, std::less<>> series_;
};

} // namespace tau
