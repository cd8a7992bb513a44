#pragma once
// Recent values of every metric at two resolutions: each sample for the last hour and a per-minute mean,
// minimum and maximum for a day. A block of slots is sealed once full: each value becomes a 12-bit code
// against the block's own range (the error stays below 1/8190 of that range), and the codes are stored as
// bit-packed differences from their predecessor, so a steady series costs a few bits a sample and a noisy
// one at most 13.

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
    static constexpr unsigned kSlotsPerBlock = 120;

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
    struct SealedBlock {
        std::int64_t number = -1;
        double low = 0;
        double high = 0;
        std::uint64_t offset = 0; // into the byte stream of every block sealed so far
    };

    void seal();
    double openValue(unsigned channel, std::size_t slot) const; // NaN where nothing was recorded
    // The block's values, channel-major, NaN where nothing was recorded.
    void decode(const SealedBlock& block, std::vector<double>& values) const;

    std::size_t capacity_;
    unsigned channels_;
    std::size_t max_sealed_;
    // Oldest first; a block is dropped from the front once max_sealed_ newer ones exist. Vectors rather
    // than deques: a deque's smallest allocation would outweigh a steady series' whole history.
    std::vector<SealedBlock> sealed_;
    std::vector<std::uint8_t> bytes_;
    std::uint64_t dropped_bytes_ = 0; // of the stream, before bytes_.front()
    std::int64_t open_number_ = -1;
    // Channel-major, as differences from the channel's first value in the block: a float keeps more
    // precision than the codes the block becomes even for values as large as byte counts.
    std::vector<float> open_;
    std::vector<double> open_base_; // NaN until the channel's first value
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
