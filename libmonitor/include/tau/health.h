#pragma once
// The health score: each check yields a status and a score in [0, 1]; the overall score is their
// weighted mean, so every point of it can be traced to a check.

#include "tau/config.h"
#include "tau/resource_monitor.h"
#include "tau/resources.h"
#include "tau/thresholds.h"

#include <chrono>
#include <cstdint>
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
    // The live value: percent for the usage and pressure checks, °C for temperature, the share of reachable
    // endpoints (1 with none configured) for the network, 1/0 for a service running or not.
    double value = 0;
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
    double cpu_percent = 0; // of one core, like cpu_limit_percent
    std::uint64_t rss_bytes = 0;
    // Failure classes ("exit", "watchdog", ...) of its exits within health_checking.restart_window_seconds.
    // The caller drops the older ones: the scorer has no clock and counts every entry.
    std::vector<std::string> recent_failures;
    // Judged only while the service is running; a result of "unknown" is not judged.
    std::vector<ProbeHealthInput> probes;
};

// The outcome of connecting to one of health_checking.network_endpoints in this evaluation.
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
    // Resources1.GetMetrics keyed by historyKey(metric, scope). Read here:
    //   temperature_celsius (the hottest sensor), or else the hottest temperature_celsius@<sensor>;
    //   pressure_<resource>_<some|full>_avg10 (system scope);
    //   service_pss_bytes@<service>, else service_memory_bytes@<service>: the memory consumers named;
    //   service_cpu_percent@<service>: the cpu consumers named.
    // A key that is absent or not finite counts as not measured, never as zero.
    std::map<std::string, double> metrics;
    // Alarm levels of cpu_percent, memory_used_percent, swap_used_percent, load_percent (system scope),
    // disk_used_percent (scope: the mount point), temperature_celsius and pressure_* (any scope).
    std::vector<AlarmInput> alarms;
    // ResourceMonitor::trends(): disk_used_percent, disk_inodes_used_percent and memory_used_percent
    // forecasts, and service_memory_bytes growth.
    std::vector<TrendReport> trends;
};

// A service's check ("service:<name>", for critical services and those in service_health_checks) scores its
// state: running 1, starting/stopping/backoff 0.5, anything else 0. Its worst aspect besides the state may
// raise the status and takes up to half off that score (a warning a quarter): a failing liveness probe
// (critical), a failing readiness probe (warning), watchdog expiries (warning; critical from
// restart_warning_count of them), failures (warning from restart_warning_count, critical from twice that),
// and cpu or memory use against the limits the enforcer applies (warning from 90 %, critical at 100 %).
// Probes and use count only while the service is running.
//
// The overall status is critical when the score is below health_checking.health_score_threshold, when a
// system check is critical, or when a check of a critical service is; a critical check of another service
// degrades the whole, which keeps a failing batch job from declaring the host critical on its own (its
// weight still lowers the score). Otherwise any warning or critical check degrades it.
HealthReport evaluateHealth(const HealthInputs& inputs, const Config& config);

// A new overall status is published only once it has held for `hold` (the evaluation that saw it first
// and another one at least `hold` later, with no other status offered in between), so a single odd sample
// does not announce a change. Offering the published status again cancels a waiting candidate. The first
// status other than the initial Unknown is published at once, since there is nothing to keep yet; a hold of
// zero or less publishes every change at once.
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
    bool published_any_ = false;
    std::optional<HealthStatus> candidate_;
    TimePoint candidate_since_{};
};

} // namespace tau
