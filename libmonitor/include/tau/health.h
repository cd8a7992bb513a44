#pragma once
// The health score: each check yields a status and a score in [0, 1]; the overall score is their
// weighted mean, so every point of it can be traced to a check.

#include "tau/config.h"
#include "tau/resource_monitor.h"
#include "tau/resources.h"
#include "tau/thresholds.h"

#include <chrono>
#include <map>

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

// Something an operator can act on, built from live data and naming the check it comes from.
struct Recommendation {
    std::string check;
    std::string text;
};

struct HealthReport {
    double score = 0;
    HealthStatus status = HealthStatus::Unknown;
    std::vector<CheckResult> checks;
    std::vector<Recommendation> recommendations;
};

// The latest result of one probe of a service, as the Health service tracks it.
struct ProbeHealthInput {
    std::string kind;   // "liveness" or "readiness"
    std::string result; // "success", "failure" or "unknown" (not decided yet)
    std::string message;
};

// What the scorer knows of a supervised service.
struct ServiceHealthInput {
    std::string name;
    std::string state; // "running", "starting", "stopping", "stopped", "failed", "backoff"
    bool critical = false;
    double cpu_percent = 0; // of one core
    std::uint64_t rss_bytes = 0;
    // Failure classes ("exit", "watchdog", ...) of its exits within health_checking.restart_window_seconds.
    std::vector<std::string> recent_failures;
    std::vector<ProbeHealthInput> probes;
};

struct EndpointHealthInput {
    std::string endpoint; // host:port
    bool reachable = false;
    std::string message; // why not, when not
};

struct NetworkHealthInput {
    std::optional<std::string> default_route_interface;
    std::optional<std::string> oper_state; // of that interface
    std::vector<EndpointHealthInput> endpoints;
};

// The alarm level Resources holds for a metric; a check of that metric takes its status from it, so the
// health status inherits the hysteresis instead of flapping on its own.
struct AlarmInput {
    std::string metric;
    std::string scope;
    AlarmLevel level = AlarmLevel::Ok;
};

struct HealthInputs {
    std::optional<ResourceSnapshot> resources;               // nullopt: the resource checks are unknown
    std::optional<std::vector<ServiceHealthInput>> services; // nullopt: service checks are unknown
    NetworkHealthInput network;
    // Resources1.GetMetrics keyed by historyKey(metric, scope): temperatures, pressure, per-service usage.
    std::map<std::string, double> metrics;
    std::vector<AlarmInput> alarms;
    std::vector<TrendReport> trends;
};

HealthReport evaluateHealth(const HealthInputs& inputs, const Config& config);

// A new overall status is published only once it has held for `hold` (the evaluation that saw it first
// and another one at least `hold` later), so a single odd sample does not announce a change.
class StatusDebouncer {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    explicit StatusDebouncer(std::chrono::steady_clock::duration hold) : hold_(hold) {}

    // Returns the status to publish when the published one changes.
    std::optional<HealthStatus> offer(HealthStatus status, TimePoint now);
    HealthStatus published() const { return published_; }
    // When a candidate status may be confirmed; nullopt when none is waiting.
    std::optional<TimePoint> confirmAt() const;

  private:
    std::chrono::steady_clock::duration hold_;
    HealthStatus published_ = HealthStatus::Unknown;
    std::optional<HealthStatus> candidate_;
    TimePoint candidate_since_{};
};

} // namespace tau
