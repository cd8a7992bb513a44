#pragma once
// The D-Bus shapes of the suite's data, as the XML in dbus/ declares them, and their conversions from and to
// the domain types. Services, the CLI and the tests share them so a signature is written down once.

#include "tau/crash_history.h"
#include "tau/log_record.h"
#include "tau/recovery_policy.h"
#include "tau/resources.h"

#include <cstdint>
#include <map>
#include <sdbus-c++/Types.h>
#include <string>
#include <tuple>
#include <vector>

namespace tau::wire {

// org.tauos.Resources1.GetSnapshot
using Memory = sdbus::Struct<uint64_t, uint64_t, uint64_t, double>;
using Swap = sdbus::Struct<uint64_t, uint64_t, double>;
using Load = sdbus::Struct<double, double, double>;
using Disk = sdbus::Struct<std::string, std::string, std::string, uint64_t, uint64_t, uint64_t, double,
                           uint64_t, uint64_t>;
using Network = sdbus::Struct<std::string, uint64_t, uint64_t, double, double>;
using Snapshot = std::tuple<uint64_t, double, std::vector<double>, Memory, Swap, Load, std::vector<Disk>,
                            std::vector<Network>>;

// org.tauos.Resources1.GetMetrics: name, scope, value
using Metric = sdbus::Struct<std::string, std::string, double>;
// org.tauos.Resources1.GetHistory: start of the step (microseconds), mean, minimum, maximum
using HistoryPoint = sdbus::Struct<uint64_t, double, double, double>;
// org.tauos.Resources1.GetThresholds: metric, scope, level, latest value, warning enter, critical enter,
// level entered at (microseconds)
using Threshold = sdbus::Struct<std::string, std::string, std::string, double, double, double, uint64_t>;
// org.tauos.Resources1.GetTrends: metric, scope, value, slope per hour, r squared, limit, seconds until it
using Trend = sdbus::Struct<std::string, std::string, double, double, double, double, int64_t>;
// org.tauos.Processes1.ListServices: name, state, pid, restarts, uptime, cpu %, rss, critical, kind
using ServiceEntry =
    sdbus::Struct<std::string, std::string, int32_t, uint32_t, uint64_t, double, uint64_t, bool, std::string>;
// org.tauos.Processes1.GetProcessTree: pid, ppid, comm, rss
using ProcessEntry = sdbus::Struct<int32_t, int32_t, std::string, uint64_t>;
// org.tauos.Recovery1.GetHistory: time, service, pid, exit code, signal, failure class, uptime, attempt,
// action, delay, outcome, reason, time until running again (times in microseconds)
using HistoryEntry = sdbus::Struct<uint64_t, std::string, int32_t, int32_t, int32_t, std::string, uint64_t,
                                   uint32_t, std::string, uint64_t, std::string, std::string, uint64_t>;
// org.tauos.Recovery1.GetSummary: service, failures, recovered, success rate, mean time to recovery, time of
// the last failure (microseconds)
using SummaryEntry = sdbus::Struct<std::string, uint32_t, uint32_t, double, uint64_t, uint64_t>;
// org.tauos.Recovery1.ListStates: service, version, size, saved at (microseconds), checksum status,
// quarantined
using StateEntry = sdbus::Struct<std::string, uint64_t, uint64_t, uint64_t, std::string, bool>;
// org.tauos.Recovery1.Explain: attempt, action, strategy, delay, shortest delay, longest delay (microseconds)
using ExplainStep = sdbus::Struct<uint32_t, std::string, std::string, uint64_t, uint64_t, uint64_t>;
// org.tauos.Health1.GetHealth: name, status, value, score, weight, contribution, message
using Check = sdbus::Struct<std::string, std::string, double, double, double, double, std::string>;
// org.tauos.Health1.GetRecommendations: check, text
using Recommendation = sdbus::Struct<std::string, std::string>;
// org.tauos.Log1 records: timestamp, level, service, pid, event, message, fields
using LogEntry = sdbus::Struct<uint64_t, std::string, std::string, int32_t, std::string, std::string,
                               std::map<std::string, std::string>>;

uint64_t toMicros(std::chrono::system_clock::time_point time);
std::chrono::system_clock::time_point fromMicros(uint64_t micros);

Snapshot toWire(const ResourceSnapshot& snapshot);
ResourceSnapshot snapshotFromWire(const Snapshot& wire);

LogEntry toWire(const LogRecord& record);

HistoryEntry toWire(const CrashEntry& entry);
CrashEntry crashEntryFromWire(const HistoryEntry& wire);
SummaryEntry toWire(const ServiceCrashSummary& summary);
ServiceCrashSummary summaryFromWire(const SummaryEntry& wire);
ExplainStep toWire(const ExplainedFailure& failure);

} // namespace tau::wire
