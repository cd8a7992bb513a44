#pragma once
// The health score: each check yields a status and a score in [0, 1]; the overall score is their
// weighted mean, so every point of it can be traced to a check.

#include "tau/config.h"
#include "tau/resources.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tau {

enum class CheckStatus { Ok, Warning, Critical, Unknown };
std::string_view toString(CheckStatus status);

enum class HealthStatus { Ok, Degraded, Critical, Unknown };
std::string_view toString(HealthStatus status);
// Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
int nagiosExitCode(HealthStatus status);

struct CheckResult {
    std::string name; // "cpu_usage", "memory_usage", "disk_usage", "network_connectivity", "service:<name>"
    CheckStatus status = CheckStatus::Unknown;
    double value = 0; // the measured value (percent for usage checks, 1/0 for up/down)
    double score = 0; // 0..1
    double weight = 0;
    double contribution = 0; // weight * score / sum of weights of checks with a known status
    std::string message;
};

struct HealthReport {
    double score = 0;
    HealthStatus status = HealthStatus::Unknown;
    std::vector<CheckResult> checks;
};

// What the scorer knows of a supervised service.
struct ServiceHealthInput {
    std::string name;
    std::string state; // "running", "starting", "stopping", "stopped", "failed", "backoff"
    bool critical = false;
};

struct NetworkHealthInput {
    std::optional<std::string> default_route_interface;
    std::optional<std::string> oper_state; // of that interface
};

struct HealthInputs {
    std::optional<ResourceSnapshot> resources;               // nullopt: the resource checks are unknown
    std::optional<std::vector<ServiceHealthInput>> services; // nullopt: service checks are unknown
    NetworkHealthInput network;
};

HealthReport evaluateHealth(const HealthInputs& inputs, const Config& config);

} // namespace tau
