#include "tau/bus/wire.h"

#include <algorithm>

namespace tau::wire {
namespace {

// Durations travel unsigned; a negative one (a clock that stepped back) travels as 0.
uint64_t unsignedMicros(std::chrono::microseconds duration) {
    return duration.count() > 0 ? static_cast<uint64_t>(duration.count()) : 0;
}

uint64_t unsignedMicros(std::chrono::milliseconds duration) {
    return unsignedMicros(std::chrono::duration_cast<std::chrono::microseconds>(duration));
}

std::chrono::microseconds signedMicros(uint64_t micros) {
    constexpr auto kLongest = static_cast<uint64_t>(std::chrono::microseconds::max().count());
    return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(std::min(micros, kLongest)));
}

} // namespace

uint64_t toMicros(std::chrono::system_clock::time_point time) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count());
}

std::chrono::system_clock::time_point fromMicros(uint64_t micros) {
    return std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
}

Snapshot toWire(const ResourceSnapshot& s) {
    std::vector<Disk> disks;
    for (const auto& d : s.disks) {
        disks.emplace_back(d.mount_point, d.device, d.fstype, d.total_bytes, d.used_bytes, d.available_bytes,
                           d.used_percent, d.inodes_total, d.inodes_used);
    }
    std::vector<Network> networks;
    for (const auto& n : s.networks) {
        networks.emplace_back(n.interface, n.rx_bytes, n.tx_bytes, n.rx_bytes_per_second,
                              n.tx_bytes_per_second);
    }
    return {
        toMicros(s.taken_at),
        s.cpu_percent,
        s.cpu_per_core_percent,
        Memory{s.memory.total_bytes, s.memory.available_bytes, s.memory.used_bytes, s.memory.used_percent},
        Swap{s.swap.total_bytes, s.swap.used_bytes, s.swap.used_percent},
        Load{s.load.one, s.load.five, s.load.fifteen},
        std::move(disks),
        std::move(networks)};
}

ResourceSnapshot snapshotFromWire(const Snapshot& wire) {
    const auto& [taken_at, cpu, per_core, memory, swap, load, disks, networks] = wire;
    ResourceSnapshot s;
    s.taken_at = fromMicros(taken_at);
    s.cpu_percent = cpu;
    s.cpu_per_core_percent = per_core;
    s.memory = {memory.get<0>(), memory.get<1>(), memory.get<2>(), memory.get<3>()};
    s.swap = {swap.get<0>(), swap.get<1>(), swap.get<2>()};
    s.load = {load.get<0>(), load.get<1>(), load.get<2>()};
    for (const auto& d : disks) {
        DiskSnapshot disk;
        disk.mount_point = d.get<0>();
        disk.device = d.get<1>();
        disk.fstype = d.get<2>();
        disk.total_bytes = d.get<3>();
        disk.used_bytes = d.get<4>();
        disk.available_bytes = d.get<5>();
        disk.used_percent = d.get<6>();
        disk.inodes_total = d.get<7>();
        disk.inodes_used = d.get<8>();
        s.disks.push_back(std::move(disk));
    }
    for (const auto& n : networks) {
        NetworkSnapshot net;
        net.interface = n.get<0>();
        net.rx_bytes = n.get<1>();
        net.tx_bytes = n.get<2>();
        net.rx_bytes_per_second = n.get<3>();
        net.tx_bytes_per_second = n.get<4>();
        s.networks.push_back(std::move(net));
    }
    return s;
}

LogEntry toWire(const LogRecord& record) {
    return {toMicros(record.timestamp),
            std::string(toString(record.level)),
            record.service,
            record.pid,
            record.event,
            record.message,
            record.fields};
}

HistoryEntry toWire(const CrashEntry& entry) {
    return {toMicros(entry.time),
            entry.service,
            entry.pid,
            entry.exit_code,
            entry.signal,
            entry.failure_class,
            unsignedMicros(entry.uptime),
            entry.attempt,
            entry.action,
            unsignedMicros(entry.delay),
            entry.outcome,
            entry.reason,
            unsignedMicros(entry.time_to_running)};
}

CrashEntry crashEntryFromWire(const HistoryEntry& wire) {
    CrashEntry entry;
    entry.time = fromMicros(wire.get<0>());
    entry.service = wire.get<1>();
    entry.pid = wire.get<2>();
    entry.exit_code = wire.get<3>();
    entry.signal = wire.get<4>();
    entry.failure_class = wire.get<5>();
    entry.uptime = signedMicros(wire.get<6>());
    entry.attempt = wire.get<7>();
    entry.action = wire.get<8>();
    entry.delay = signedMicros(wire.get<9>());
    entry.outcome = wire.get<10>();
    entry.reason = wire.get<11>();
    entry.time_to_running = signedMicros(wire.get<12>());
    return entry;
}

SummaryEntry toWire(const ServiceCrashSummary& summary) {
    return {summary.service,
            summary.failures,
            summary.recovered,
            summary.success_rate,
            unsignedMicros(summary.mean_time_to_recovery),
            toMicros(summary.last_failure)};
}

ServiceCrashSummary summaryFromWire(const SummaryEntry& wire) {
    ServiceCrashSummary summary;
    summary.service = wire.get<0>();
    summary.failures = wire.get<1>();
    summary.recovered = wire.get<2>();
    summary.success_rate = wire.get<3>();
    summary.mean_time_to_recovery = signedMicros(wire.get<4>());
    summary.last_failure = fromMicros(wire.get<5>());
    return summary;
}

ExplainStep toWire(const ExplainedFailure& failure) {
    return {failure.attempt,
            std::string(toString(failure.action)),
            std::string(toString(failure.strategy)),
            unsignedMicros(failure.delay),
            unsignedMicros(failure.min_delay),
            unsignedMicros(failure.max_delay)};
}

} // namespace tau::wire
