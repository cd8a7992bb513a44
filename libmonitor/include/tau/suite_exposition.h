#pragma once
// What /metrics shows: the machine under node_exporter's names, so existing dashboards and alerts work
// unchanged, and the suite's own view (services, recoveries, alarms, health) under tau_ names.

#include "tau/resource_monitor.h"
#include "tau/resources.h"
#include "tau/thresholds.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tau {

// A supervised service as Processes1.ListServices describes it.
struct ServiceStatus {
    std::string name;
    std::string state;
    std::uint32_t restarts = 0;
    std::uint64_t uptime_usec = 0;
    bool critical = false;
};

struct HealthCheckSummary {
    std::string name;
    std::string status;
    double score = 0;
    double weight = 0;
};

struct HealthSummary {
    double score = 0;
    std::string status;
    std::vector<HealthCheckSummary> checks;
};

struct AlarmSummary {
    std::string metric;
    std::string scope;
    AlarmLevel level = AlarmLevel::Ok;
};

struct SuiteMetrics {
    std::optional<ResourceSnapshot> resources;
    // The latest sample's metrics (toMetricSamples): service_* ones become tau_service_*{service=...}, the
    // others tau_<metric>{scope=...}, without the label for the system scope.
    std::vector<MetricSample> samples;
    std::optional<std::vector<ServiceStatus>> services; // nullopt: Processes1 did not answer
    std::map<std::pair<std::string, std::string>, std::uint64_t> recovery_actions; // (service, action)
    std::optional<HealthSummary> health;                                           // nullopt: no answer yet
    std::vector<AlarmSummary> alarms;
};

// The exposition text, format 0.0.4. Families without data (no health answer yet, say) are left out
// rather than shown as zero, so that a query never mistakes "unknown" for "bad".
std::string renderSuiteMetrics(const SuiteMetrics& metrics);

} // namespace tau
