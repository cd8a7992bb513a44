#include "tau/health.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

namespace tau {

namespace {

constexpr double kUsageWeight = 1.0;
constexpr double kNetworkWeight = 0.5;
constexpr double kCriticalServiceWeight = 2.0;
constexpr double kServiceWeight = 1.0;
constexpr double kSwapLimitPercent = 80.0;
constexpr double kLoadLimitPercent = 100.0;
constexpr double kTransitionalServiceScore = 0.5;
// Probes, restarts, the watchdog and limits refine a service's own check; they weigh half as much.
constexpr double kServiceAspectWeight = 0.5;
constexpr double kTemperatureWarningCelsius = 80.0;
constexpr double kTemperatureCriticalCelsius = 95.0;
// Share of the last 10 s in which tasks stalled, per resource: (metric, what, warning, critical).
struct PressureLimit {
    std::string_view metric;
    std::string_view what;
    double warning;
    double critical;
};
constexpr PressureLimit kPressureLimits[] = {
    {"pressure_memory_some_avg10", "memory", 10, 40},
    {"pressure_io_full_avg10", "io", 10, 40},
    {"pressure_cpu_some_avg10", "cpu", 50, 90},
};
// A limit this close is worth a warning before the enforcer acts.
constexpr double kLimitWarningFraction = 0.9;
// Memory growth worth a word even while everything is healthy: this fast, this steadily.
constexpr double kLeakBytesPerHour = 10.0 * 1024 * 1024;
constexpr double kLeakRSquared = 0.8;
constexpr auto kForecastHorizon = std::chrono::hours(24);
constexpr std::size_t kConsumersNamed = 3;

std::string formatFixed(double value, int decimals) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

// Limits are usually round numbers; print them without trailing zeros.
std::string formatLimit(double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
}

CheckResult unknownCheck(std::string name, double weight, std::string message) {
    CheckResult check;
    check.name = std::move(name);
    check.status = CheckStatus::Unknown;
    check.weight = weight;
    check.message = std::move(message);
    return check;
}

// A value against a warning and a critical level; the score falls linearly from 1 at the warning level to 0
// at `zeroAt`.
CheckResult levelCheck(std::string name, std::string measurement, double value, double warning, double critical,
                       double zeroAt, std::string_view unit) {
    // A NaN would fall through every comparison and poison the weighted mean.
    if (!std::isfinite(value))
        return unknownCheck(std::move(name), kUsageWeight, "no valid measurement");
    CheckResult check;
    check.name = std::move(name);
    check.value = value;
    check.weight = kUsageWeight;
    if (value < warning) {
        check.status = CheckStatus::Ok;
        check.score = 1.0;
    } else {
        check.status = value >= critical ? CheckStatus::Critical : CheckStatus::Warning;
        check.score = zeroAt <= warning ? 0.0 : std::clamp((zeroAt - value) / (zeroAt - warning), 0.0, 1.0);
    }
    // Quote the level that explains the status: the warning level until critical is reached.
    const bool isCritical = check.status == CheckStatus::Critical;
    check.message = measurement + " (" + (isCritical ? "critical at " : "warning at ") +
                    formatLimit(isCritical ? critical : warning) + std::string(unit) + ")";
    return check;
}

// A percentage against a warning limit; critical starts at the configured critical level of the metric's
// threshold, or halfway between the limit and 100%.
CheckResult usageCheck(std::string name, std::string measurement, double value, double limit,
                       std::optional<double> critical = std::nullopt) {
    return levelCheck(std::move(name), std::move(measurement), value, limit,
                      critical.value_or(limit + (100.0 - limit) / 2.0), 100.0, "%");
}

std::string percentText(double value) {
    return formatFixed(value, 1) + "%";
}

CheckResult diskCheck(const ResourceSnapshot& resources, double limit) {
    if (resources.disks.empty())
        return unknownCheck("disk_usage", kUsageWeight, "no filesystem measured");
    const DiskSnapshot& fullest = *std::max_element(resources.disks.begin(), resources.disks.end(),
                                                    [](const DiskSnapshot& left, const DiskSnapshot& right) {
                                                        return left.used_percent < right.used_percent;
                                                    });
    return usageCheck("disk_usage",
                      "disk " + fullest.mount_point + " " + percentText(fullest.used_percent) + " used",
                      fullest.used_percent, limit);
}

CheckResult loadCheck(const ResourceSnapshot& resources) {
    const std::size_t cores = resources.cpu_per_core_percent.size();
    if (cores == 0)
        return unknownCheck("load_average", kUsageWeight, "number of cores unknown");
    // A load equal to the number of cores keeps every core busy; that is the 100% mark.
    const double percent = 100.0 * resources.load.one / static_cast<double>(cores);
    return usageCheck("load_average",
                      "load " + formatFixed(resources.load.one, 2) + " on " + std::to_string(cores) +
                          (cores == 1 ? " core" : " cores") + " is " + percentText(percent),
                      percent, kLoadLimitPercent);
}

CheckResult networkCheck(const NetworkHealthInput& network) {
    if (!network.default_route_interface) {
        return unknownCheck("network_connectivity", kNetworkWeight, "no default route");
    }
    const std::string& interface = *network.default_route_interface;
    CheckResult check;
    check.name = "network_connectivity";
    check.weight = kNetworkWeight;
    // Some virtual NICs (tun, some veths) never learn their carrier state and report "unknown".
    if (network.oper_state == "up" || network.oper_state == "unknown") {
        check.status = CheckStatus::Ok;
        check.value = 1.0;
        check.score = 1.0;
        check.message = "default route via " + interface + " is " + *network.oper_state;
    } else {
        check.status = CheckStatus::Critical;
        check.message = network.oper_state
                            ? "default route interface " + interface + " is " + *network.oper_state
                            : "default route interface " + interface + " does not exist";
    }
    return check;
}

CheckResult resourceCheck(const std::string& name, const std::optional<ResourceSnapshot>& resources,
                          const Config& config) {
    static const std::set<std::string, std::less<>> kResourceChecks = {
        "cpu_usage", "memory_usage", "disk_usage", "swap_usage", "load_average"};
    if (!kResourceChecks.contains(name))
        return unknownCheck(name, kUsageWeight, "unsupported check");
    if (!resources)
        return unknownCheck(name, kUsageWeight, "resource data unavailable");

    const ResourceMonitoringConfig& limits = config.resource_monitoring;
    if (name == "cpu_usage") {
        return usageCheck(name, "cpu " + percentText(resources->cpu_percent), resources->cpu_percent,
                          limits.cpu_threshold_percent);
    }
    if (name == "memory_usage") {
        return usageCheck(name, "memory " + percentText(resources->memory.used_percent) + " used",
                          resources->memory.used_percent, limits.memory_threshold_percent);
    }
    if (name == "disk_usage")
        return diskCheck(*resources, limits.disk_threshold_percent);
    if (name == "swap_usage") {
        return usageCheck(name, "swap " + percentText(resources->swap.used_percent) + " used",
                          resources->swap.used_percent, kSwapLimitPercent);
    }
    return loadCheck(*resources);
}

CheckResult serviceCheck(const ServiceHealthInput& service, bool critical) {
    CheckResult check;
    check.name = "service:" + service.name;
    check.weight = critical ? kCriticalServiceWeight : kServiceWeight;
    check.message =
        "service " + service.name + " is " + (service.state.empty() ? "in no state" : service.state);
    if (service.state == "running") {
        check.status = CheckStatus::Ok;
        check.value = 1.0;
        check.score = 1.0;
    } else if (service.state == "starting" || service.state == "stopping" || service.state == "backoff") {
        check.status = CheckStatus::Warning;
        check.score = kTransitionalServiceScore;
    } else {
        check.status = critical ? CheckStatus::Critical : CheckStatus::Warning;
        check.score = 0.0;
    }
    return check;
}

void appendServiceChecks(const HealthInputs& inputs, const Config& config, std::vector<CheckResult>& checks) {
    if (!inputs.services) {
        checks.push_back(unknownCheck("services", kServiceWeight, "service data unavailable"));
        return;
    }
    const std::vector<std::string>& watched = config.health_checking.service_health_checks;
    auto isWatched = [&](const std::string& name) {
        return std::find(watched.begin(), watched.end(), name) != watched.end();
    };

    std::set<std::string, std::less<>> supervised;
    for (const ServiceHealthInput& service : *inputs.services) {
        supervised.insert(service.name);
        const bool critical = service.critical || config.isCritical(service.name);
        if (critical || isWatched(service.name))
            checks.push_back(serviceCheck(service, critical));
    }

    std::set<std::string, std::less<>> reported;
    auto reportMissing = [&](const std::string& name) {
        if (supervised.contains(name) || !reported.insert(name).second)
            return;
        const double weight = config.isCritical(name) ? kCriticalServiceWeight : kServiceWeight;
        checks.push_back(unknownCheck("service:" + name, weight, "not supervised"));
    };
    for (const std::string& name : watched)
        reportMissing(name);
    for (const std::string& name : config.crash_recovery.critical_processes)
        reportMissing(name);
}

} // namespace

std::string_view toString(CheckStatus status) {
    switch (status) {
    case CheckStatus::Ok:
        return "ok";
    case CheckStatus::Warning:
        return "warning";
    case CheckStatus::Critical:
        return "critical";
    case CheckStatus::Unknown:
        return "unknown";
    }
    return "unknown";
}

std::string_view toString(HealthStatus status) {
    switch (status) {
    case HealthStatus::Ok:
        return "ok";
    case HealthStatus::Degraded:
        return "degraded";
    case HealthStatus::Critical:
        return "critical";
    case HealthStatus::Unknown:
        return "unknown";
    }
    return "unknown";
}

int nagiosExitCode(HealthStatus status) {
    switch (status) {
    case HealthStatus::Ok:
        return 0;
    case HealthStatus::Degraded:
        return 1;
    case HealthStatus::Critical:
        return 2;
    case HealthStatus::Unknown:
        return 3;
    }
    return 3;
}

HealthReport evaluateHealth(const HealthInputs& inputs, const Config& config) {
    HealthReport report;

    std::set<std::string, std::less<>> evaluated;
    for (const std::string& name : config.health_checking.system_health_checks) {
        // A name listed twice would otherwise count twice in the score.
        if (!evaluated.insert(name).second)
            continue;
        if (name == "network_connectivity") {
            report.checks.push_back(networkCheck(inputs.network));
        } else {
            report.checks.push_back(resourceCheck(name, inputs.resources, config));
        }
    }
    appendServiceChecks(inputs, config, report.checks);

    double knownWeight = 0.0;
    double weightedScore = 0.0;
    bool anyCritical = false;
    bool anyWarning = false;
    for (const CheckResult& check : report.checks) {
        if (check.status == CheckStatus::Unknown)
            continue;
        knownWeight += check.weight;
        weightedScore += check.weight * check.score;
        anyCritical = anyCritical || check.status == CheckStatus::Critical;
        anyWarning = anyWarning || check.status == CheckStatus::Warning;
    }
    if (knownWeight <= 0.0) {
        report.score = 0.0;
        report.status = HealthStatus::Unknown;
        return report;
    }

    for (CheckResult& check : report.checks) {
        check.contribution =
            check.status == CheckStatus::Unknown ? 0.0 : check.weight * check.score / knownWeight;
    }
    report.score = weightedScore / knownWeight;
    if (anyCritical || report.score < config.health_checking.health_score_threshold) {
        report.status = HealthStatus::Critical;
    } else if (anyWarning) {
        report.status = HealthStatus::Degraded;
    } else {
        report.status = HealthStatus::Ok;
    }
    return report;
}

} // namespace tau
