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
// Probes, restarts, the watchdog and limits refine a service's own check; they weigh half as much: the worst
// of them takes at most this share off the score its state earns.
constexpr double kServiceAspectWeight = 0.5;
constexpr double kAspectWarningScore = 0.5;
constexpr double kTemperatureWarningCelsius = 80.0;
constexpr double kTemperatureCriticalCelsius = 95.0;
// Share of the last 10 s in which tasks stalled, per resource: (metric, warning, critical). The others have
// no level of their own unless configured: some io stall is normal on a busy disk, for instance.
struct PressureLimit {
    std::string_view metric;
    double warning;
    double critical;
};
constexpr PressureLimit kPressureLimits[] = {
    {"pressure_memory_some_avg10", 10, 40},
    {"pressure_io_full_avg10", 10, 40},
    {"pressure_cpu_some_avg10", 50, 90},
};
constexpr std::string_view kPressurePrefix = "pressure_";
// A limit this close is worth a warning before the enforcer acts.
constexpr double kLimitWarningFraction = 0.9;
// Memory growth worth a word even while everything is healthy: this fast, this steadily.
constexpr double kLeakBytesPerHour = 10.0 * 1024 * 1024;
constexpr double kLeakRSquared = 0.8;
constexpr auto kForecastHorizon = std::chrono::hours(24);
constexpr std::size_t kConsumersNamed = 3;
constexpr double kBytesPerMiB = 1024.0 * 1024.0;

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

std::string percentText(double value) {
    return formatFixed(value, 1) + "%";
}

std::string bytesText(double bytes) {
    static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!(std::fabs(bytes) >= 1024.0))
        return formatFixed(bytes, 0) + " B";
    double scaled = bytes / 1024.0;
    std::size_t unit = 0;
    while (std::fabs(scaled) >= 1024.0 && unit + 1 < std::size(kUnits)) {
        scaled /= 1024.0;
        ++unit;
    }
    return formatFixed(scaled, 1) + " " + kUnits[unit];
}

std::string countText(long long count, std::string_view singular, std::string_view plural) {
    return std::to_string(count) + " " + std::string(count == 1 ? singular : plural);
}

// Rounded to the unit an operator would say: minutes up to an hour and a half, hours up to two days.
std::string durationText(double seconds) {
    if (!std::isfinite(seconds) || seconds < 60.0)
        return countText(std::llround(std::isfinite(seconds) ? std::max(0.0, seconds) : 0.0), "second",
                         "seconds");
    const double minutes = seconds / 60.0;
    if (minutes < 90.0)
        return countText(std::llround(minutes), "minute", "minutes");
    const double hours = minutes / 60.0;
    if (hours < 48.0)
        return countText(std::llround(hours), "hour", "hours");
    return countText(std::llround(hours / 24.0), "day", "days");
}

// When a forecast line reaches its limit; seconds would pretend a precision the fit does not have.
std::string forecastText(std::chrono::seconds until) {
    const auto seconds = static_cast<double>(std::max<std::chrono::seconds::rep>(0, until.count()));
    return seconds < 60.0 ? "within a minute" : "in about " + durationText(seconds);
}

std::optional<double> finiteMetric(const std::map<std::string, double>& metrics, const std::string& key) {
    const auto found = metrics.find(key);
    if (found == metrics.end() || !std::isfinite(found->second))
        return std::nullopt;
    return found->second;
}

// How bad a status is, for picking the one that decides; unknown decides nothing.
int severity(CheckStatus status) {
    switch (status) {
    case CheckStatus::Unknown:
        return 0;
    case CheckStatus::Ok:
        return 1;
    case CheckStatus::Warning:
        return 2;
    case CheckStatus::Critical:
        return 3;
    }
    return 0;
}

CheckStatus worse(CheckStatus left, CheckStatus right) {
    return severity(right) > severity(left) ? right : left;
}

CheckStatus statusOf(AlarmLevel level) {
    switch (level) {
    case AlarmLevel::Ok:
        return CheckStatus::Ok;
    case AlarmLevel::Warning:
        return CheckStatus::Warning;
    case AlarmLevel::Critical:
        return CheckStatus::Critical;
    }
    return CheckStatus::Unknown;
}

// The worst alarm Resources holds for `metric` in `scope`, or in any scope when none is given.
std::optional<AlarmLevel> alarmFor(const std::vector<AlarmInput>& alarms, std::string_view metric,
                                   std::optional<std::string_view> scope) {
    std::optional<AlarmLevel> worst;
    for (const AlarmInput& alarm : alarms) {
        if (alarm.metric != metric || (scope && alarm.scope != *scope))
            continue;
        if (!worst || severity(statusOf(alarm.level)) > severity(statusOf(*worst)))
            worst = alarm.level;
    }
    return worst;
}

CheckResult unknownCheck(std::string name, double weight, std::string message) {
    CheckResult check;
    check.name = std::move(name);
    check.status = CheckStatus::Unknown;
    check.weight = weight;
    check.message = std::move(message);
    return check;
}

struct Levels {
    double warning = 0;
    double critical = 0;
};

struct ConfiguredLevels {
    std::optional<double> warning;
    std::optional<double> critical;
};

// The enter values of the metric's configured threshold bands; an adaptive warning band has no fixed value.
ConfiguredLevels configuredLevels(const ResourceMonitoringConfig& config, std::string_view metric) {
    const auto spec = config.thresholds.find(std::string(metric));
    if (spec == config.thresholds.end())
        return {};
    ConfiguredLevels levels;
    if (spec->second.warning && !spec->second.adaptive)
        levels.warning = spec->second.warning->enter;
    if (spec->second.critical)
        levels.critical = spec->second.critical->enter;
    return levels;
}

// A configured level wins over a default one that would contradict it.
Levels resolveLevels(const ConfiguredLevels& configured, double defaultWarning, double defaultCritical) {
    Levels levels{configured.warning.value_or(defaultWarning), configured.critical.value_or(defaultCritical)};
    if (levels.critical < levels.warning) {
        if (configured.warning && !configured.critical) {
            levels.critical = levels.warning;
        } else {
            levels.warning = levels.critical;
        }
    }
    return levels;
}

// A percentage warns at its limit and is critical halfway between the limit and 100%, unless the metric's
// thresholds say otherwise.
Levels usageLevels(const ResourceMonitoringConfig& config, std::string_view metric, double limit) {
    const ConfiguredLevels configured = configuredLevels(config, metric);
    const double warning = configured.warning.value_or(limit);
    return resolveLevels(configured, limit, warning + (100.0 - warning) / 2.0);
}

// Where a level check without a natural maximum scores zero: as far beyond critical as critical is beyond
// warning, so critical scores one half like the usage checks.
double zeroBeyondCritical(const Levels& levels) {
    return levels.critical + (levels.critical - levels.warning);
}

// A value against a warning and a critical level; the score falls linearly from 1 at the warning level to 0
// at `zeroAt`. An alarm, when Resources holds one for the metric, decides the status instead of the value:
// its hysteresis keeps the check from flapping. The score stays that of the live value.
CheckResult levelCheck(std::string name, std::string measurement, double value, const Levels& levels,
                       double zeroAt, std::string_view unit, std::optional<AlarmLevel> alarm) {
    // A NaN would fall through every comparison and poison the weighted mean.
    if (!std::isfinite(value))
        return unknownCheck(std::move(name), kUsageWeight, "no valid measurement");
    CheckResult check;
    check.name = std::move(name);
    check.value = value;
    check.weight = kUsageWeight;
    CheckStatus measured = CheckStatus::Ok;
    if (value < levels.warning) {
        check.score = 1.0;
    } else {
        measured = value >= levels.critical ? CheckStatus::Critical : CheckStatus::Warning;
        check.score = zeroAt <= levels.warning
                          ? 0.0
                          : std::clamp((zeroAt - value) / (zeroAt - levels.warning), 0.0, 1.0);
    }
    check.status = alarm ? statusOf(*alarm) : measured;
    // Quote the level that explains the status: the warning level until critical is reached.
    const bool isCritical = check.status == CheckStatus::Critical;
    check.message = measurement + " (" + (isCritical ? "critical at " : "warning at ") +
                    formatLimit(isCritical ? levels.critical : levels.warning) + std::string(unit);
    if (check.status != measured)
        check.message += "; Resources alarm " + std::string(toString(*alarm));
    check.message += ")";
    return check;
}

CheckResult usageCheck(std::string name, std::string measurement, double value, const Levels& levels,
                       std::optional<AlarmLevel> alarm) {
    return levelCheck(std::move(name), std::move(measurement), value, levels, 100.0, "%", alarm);
}

CheckResult diskCheck(const ResourceSnapshot& resources, const Levels& levels,
                      const std::vector<AlarmInput>& alarms) {
    if (resources.disks.empty())
        return unknownCheck("disk_usage", kUsageWeight, "no filesystem measured");
    // Each mount has its own alarm; the worst filesystem decides, the fullest among equals.
    std::optional<CheckResult> decisive;
    double decisiveUsed = 0;
    for (const DiskSnapshot& disk : resources.disks) {
        CheckResult check = usageCheck(
            "disk_usage", "disk " + disk.mount_point + " " + percentText(disk.used_percent) + " used",
            disk.used_percent, levels, alarmFor(alarms, "disk_used_percent", disk.mount_point));
        const bool worse =
            !decisive || severity(check.status) > severity(decisive->status) ||
            (severity(check.status) == severity(decisive->status) && disk.used_percent > decisiveUsed);
        if (worse) {
            decisive = std::move(check);
            decisiveUsed = disk.used_percent;
        }
    }
    return *decisive;
}

CheckResult loadCheck(const ResourceSnapshot& resources, const Levels& levels,
                      const std::vector<AlarmInput>& alarms) {
    const std::size_t cores = resources.cpu_per_core_percent.size();
    if (cores == 0)
        return unknownCheck("load_average", kUsageWeight, "number of cores unknown");
    // A load equal to the number of cores keeps every core busy; that is the 100% mark.
    const double percent = 100.0 * resources.load.one / static_cast<double>(cores);
    return usageCheck("load_average",
                      "load " + formatFixed(resources.load.one, 2) + " on " + std::to_string(cores) +
                          (cores == 1 ? " core" : " cores") + " is " + percentText(percent),
                      percent, levels, alarmFor(alarms, "load_percent", kSystemScope));
}

struct TemperatureReading {
    std::string where;
    double celsius = 0;
};

// Resources reports the hottest sensor in the system scope; per-sensor values are the fallback.
std::optional<TemperatureReading> hottestTemperature(const std::map<std::string, double>& metrics) {
    constexpr std::string_view kMetric = "temperature_celsius";
    if (const auto hottest = finiteMetric(metrics, std::string(kMetric)))
        return TemperatureReading{"hottest sensor", *hottest};
    const std::string prefix = std::string(kMetric) + "@";
    std::optional<TemperatureReading> hottest;
    for (auto it = metrics.lower_bound(prefix); it != metrics.end() && it->first.starts_with(prefix); ++it) {
        if (!std::isfinite(it->second) || (hottest && it->second <= hottest->celsius))
            continue;
        hottest = TemperatureReading{"sensor " + it->first.substr(prefix.size()), it->second};
    }
    return hottest;
}

Levels temperatureLevels(const ResourceMonitoringConfig& config) {
    return resolveLevels(configuredLevels(config, "temperature_celsius"), kTemperatureWarningCelsius,
                         kTemperatureCriticalCelsius);
}

CheckResult temperatureCheck(const HealthInputs& inputs, const Config& config) {
    const auto reading = hottestTemperature(inputs.metrics);
    if (!reading) {
        return unknownCheck("temperature", kUsageWeight,
                            config.resource_monitoring.temperature_monitoring
                                ? "temperature sensors unavailable"
                                : "temperature monitoring is disabled");
    }
    const Levels levels = temperatureLevels(config.resource_monitoring);
    return levelCheck("temperature", reading->where + " " + formatFixed(reading->celsius, 1) + " °C",
                      reading->celsius, levels, zeroBeyondCritical(levels), " °C",
                      alarmFor(inputs.alarms, "temperature_celsius", std::nullopt));
}

// "pressure_memory_some_avg10" → "memory pressure (some)".
std::string pressureName(std::string_view metric) {
    std::string_view rest = metric.substr(kPressurePrefix.size());
    const std::size_t resourceEnd = rest.find('_');
    if (resourceEnd == std::string_view::npos)
        return std::string(metric);
    const std::string_view resource = rest.substr(0, resourceEnd);
    rest.remove_prefix(resourceEnd + 1);
    return std::string(resource) + " pressure (" + std::string(rest.substr(0, rest.find('_'))) + ")";
}

struct PressureFinding {
    std::string_view metric;
    CheckResult check;
};

// Every pressure metric with levels (the built-in table or configured bands) and a measurement.
std::vector<PressureFinding> pressureFindings(const HealthInputs& inputs,
                                              const ResourceMonitoringConfig& config) {
    std::vector<PressureFinding> findings;
    for (std::string_view metric : kThresholdMetrics) {
        if (!metric.starts_with(kPressurePrefix))
            continue;
        const auto builtIn = std::find_if(std::begin(kPressureLimits), std::end(kPressureLimits),
                                          [&](const PressureLimit& limit) { return limit.metric == metric; });
        const ConfiguredLevels configured = configuredLevels(config, metric);
        const bool hasBuiltIn = builtIn != std::end(kPressureLimits);
        if (!hasBuiltIn && !configured.warning && !configured.critical)
            continue;
        const auto value = finiteMetric(inputs.metrics, historyKey(metric, kSystemScope));
        if (!value)
            continue;
        const double defaultWarning =
            hasBuiltIn ? builtIn->warning : configured.warning.value_or(configured.critical.value_or(0));
        const double defaultCritical =
            hasBuiltIn ? builtIn->critical : configured.critical.value_or(configured.warning.value_or(0));
        const Levels levels = resolveLevels(configured, defaultWarning, defaultCritical);
        findings.push_back({metric, levelCheck("pressure", pressureName(metric) + " " + percentText(*value),
                                               *value, levels, zeroBeyondCritical(levels), "%",
                                               alarmFor(inputs.alarms, metric, std::nullopt))});
    }
    return findings;
}

CheckResult pressureCheck(const std::vector<PressureFinding>& findings) {
    if (findings.empty())
        return unknownCheck("pressure", kUsageWeight, "pressure stall information (PSI) unavailable");
    const PressureFinding* decisive = &findings.front();
    for (const PressureFinding& finding : findings) {
        const int left = severity(finding.check.status);
        const int right = severity(decisive->check.status);
        if (left > right || (left == right && finding.check.score < decisive->check.score))
            decisive = &finding;
    }
    CheckResult check = decisive->check;
    for (const PressureFinding& finding : findings) {
        if (&finding != decisive && severity(finding.check.status) > severity(CheckStatus::Ok))
            check.message += "; " + finding.check.message;
    }
    return check;
}

CheckResult networkCheck(const NetworkHealthInput& network) {
    CheckResult check;
    check.name = "network_connectivity";
    check.weight = kNetworkWeight;

    std::string unreachable;
    std::size_t reachable = 0;
    for (const EndpointHealthInput& endpoint : network.endpoints) {
        if (endpoint.reachable) {
            ++reachable;
            continue;
        }
        unreachable += "; " + endpoint.endpoint + " unreachable";
        if (!endpoint.message.empty())
            unreachable += " (" + endpoint.message + ")";
    }
    const std::size_t probed = network.endpoints.size();
    const double reachableShare =
        probed == 0 ? 1.0 : static_cast<double>(reachable) / static_cast<double>(probed);
    auto judgeEndpoints = [&](std::string linkText) {
        check.value = reachableShare;
        check.score = reachableShare;
        check.status = reachable == probed ? CheckStatus::Ok
                       : reachable == 0    ? CheckStatus::Critical
                                           : CheckStatus::Warning;
        check.message = std::move(linkText);
        if (probed > 0)
            check.message += "; " + std::to_string(reachable) + " of " + std::to_string(probed) +
                             (probed == 1 ? " endpoint" : " endpoints") + " reachable" + unreachable;
    };

    if (!network.default_route_interface) {
        // Endpoints may still be reachable through more specific routes; without any, nothing is known.
        if (probed == 0)
            return unknownCheck("network_connectivity", kNetworkWeight, "no default route");
        judgeEndpoints("no default route");
        return check;
    }
    const std::string& interface = *network.default_route_interface;
    // Some virtual NICs (tun, some veths) never learn their carrier state and report "unknown".
    if (network.oper_state == "up" || network.oper_state == "unknown") {
        judgeEndpoints("default route via " + interface + " is " + *network.oper_state);
        return check;
    }
    check.status = CheckStatus::Critical;
    check.message = network.oper_state ? "default route interface " + interface + " is " + *network.oper_state
                                       : "default route interface " + interface + " does not exist";
    return check;
}

// The system checks, and what the recommendations need of them.
struct SystemFindings {
    std::vector<PressureFinding> pressure;
};

CheckResult systemCheck(const std::string& name, const HealthInputs& inputs, const Config& config,
                        SystemFindings& findings) {
    if (name == "network_connectivity")
        return networkCheck(inputs.network);
    if (name == "temperature")
        return temperatureCheck(inputs, config);
    if (name == "pressure") {
        findings.pressure = pressureFindings(inputs, config.resource_monitoring);
        return pressureCheck(findings.pressure);
    }
    static const std::set<std::string, std::less<>> kResourceChecks = {
        "cpu_usage", "memory_usage", "disk_usage", "swap_usage", "load_average"};
    if (!kResourceChecks.contains(name))
        return unknownCheck(name, kUsageWeight, "unsupported check");
    const std::optional<ResourceSnapshot>& resources = inputs.resources;
    if (!resources)
        return unknownCheck(name, kUsageWeight, "resource data unavailable");

    const ResourceMonitoringConfig& limits = config.resource_monitoring;
    if (name == "cpu_usage") {
        return usageCheck(name, "cpu " + percentText(resources->cpu_percent), resources->cpu_percent,
                          usageLevels(limits, "cpu_percent", limits.cpu_threshold_percent),
                          alarmFor(inputs.alarms, "cpu_percent", kSystemScope));
    }
    if (name == "memory_usage") {
        return usageCheck(name, "memory " + percentText(resources->memory.used_percent) + " used",
                          resources->memory.used_percent,
                          usageLevels(limits, "memory_used_percent", limits.memory_threshold_percent),
                          alarmFor(inputs.alarms, "memory_used_percent", kSystemScope));
    }
    if (name == "disk_usage") {
        return diskCheck(*resources, usageLevels(limits, "disk_used_percent", limits.disk_threshold_percent),
                         inputs.alarms);
    }
    if (name == "swap_usage") {
        return usageCheck(name, "swap " + percentText(resources->swap.used_percent) + " used",
                          resources->swap.used_percent,
                          usageLevels(limits, "swap_used_percent", kSwapLimitPercent),
                          alarmFor(inputs.alarms, "swap_used_percent", kSystemScope));
    }
    return loadCheck(*resources, usageLevels(limits, "load_percent", kLoadLimitPercent), inputs.alarms);
}

// One respect in which a service may be unwell besides its state.
struct ServiceAspect {
    CheckStatus status = CheckStatus::Ok;
    std::string text;
};

std::size_t restartWarningCount(const HealthCheckingConfig& config) {
    return std::max<std::size_t>(1, config.restart_warning_count);
}

std::string windowText(const HealthCheckingConfig& config) {
    return "within " + durationText(config.restart_window_seconds);
}

void probeAspects(const ServiceHealthInput& service, std::vector<ServiceAspect>& aspects) {
    for (const ProbeHealthInput& probe : service.probes) {
        if (probe.result != "failure")
            continue;
        // A failing liveness probe gets the service recovered; a failing readiness probe only means it
        // serves nothing yet.
        const bool liveness = probe.kind == "liveness";
        std::string text = (liveness ? "liveness" : "readiness") + std::string(" probe failing");
        if (!probe.message.empty())
            text += ": " + probe.message;
        aspects.push_back({liveness ? CheckStatus::Critical : CheckStatus::Warning, std::move(text)});
    }
}

void failureAspects(const ServiceHealthInput& service, const HealthCheckingConfig& config,
                    std::vector<ServiceAspect>& aspects) {
    const std::size_t warningCount = restartWarningCount(config);
    const auto watchdogExpiries = static_cast<std::size_t>(
        std::count(service.recent_failures.begin(), service.recent_failures.end(), "watchdog"));
    if (watchdogExpiries > 0) {
        // Once a hang repeats as often as a restart storm would, it is no accident.
        aspects.push_back({watchdogExpiries >= warningCount ? CheckStatus::Critical : CheckStatus::Warning,
                           "watchdog expired " +
                               countText(static_cast<long long>(watchdogExpiries), "time", "times") + " " +
                               windowText(config)});
    }
    const std::size_t failures = service.recent_failures.size();
    if (failures >= warningCount) {
        aspects.push_back({failures >= 2 * warningCount ? CheckStatus::Critical : CheckStatus::Warning,
                           "failed " + countText(static_cast<long long>(failures), "time", "times") + " " +
                               windowText(config) + " (warning from " + std::to_string(warningCount) + ")"});
    }
}

CheckStatus limitStatus(double fraction) {
    if (fraction >= 1.0)
        return CheckStatus::Critical;
    return fraction >= kLimitWarningFraction ? CheckStatus::Warning : CheckStatus::Ok;
}

// The limits the enforcer applies: the service's own, or process_management's defaults.
void limitAspects(const ServiceHealthInput& service, const Config& config,
                  std::vector<ServiceAspect>& aspects) {
    const ServiceConfig* own = config.findService(service.name);
    const std::uint64_t memoryLimitMb =
        own && own->memory_limit_mb ? *own->memory_limit_mb : config.process_management.memory_limit_mb;
    const double cpuLimitPercent =
        own && own->cpu_limit_percent ? *own->cpu_limit_percent : config.process_management.cpu_limit_percent;

    const double memoryLimit = static_cast<double>(memoryLimitMb) * kBytesPerMiB;
    if (memoryLimit > 0 && service.rss_bytes > 0) {
        const double fraction = static_cast<double>(service.rss_bytes) / memoryLimit;
        const CheckStatus status = limitStatus(fraction);
        if (status != CheckStatus::Ok) {
            aspects.push_back({status, "memory " + bytesText(static_cast<double>(service.rss_bytes)) +
                                           " is " + formatFixed(100.0 * fraction, 0) + "% of its limit of " +
                                           bytesText(memoryLimit)});
        }
    }
    if (cpuLimitPercent > 0 && std::isfinite(cpuLimitPercent) && std::isfinite(service.cpu_percent)) {
        const double fraction = service.cpu_percent / cpuLimitPercent;
        const CheckStatus status = limitStatus(fraction);
        if (status != CheckStatus::Ok) {
            aspects.push_back({status, "cpu " + percentText(service.cpu_percent) + " is " +
                                           formatFixed(100.0 * fraction, 0) + "% of its limit of " +
                                           formatLimit(cpuLimitPercent) + "%"});
        }
    }
}

double aspectScore(CheckStatus status) {
    switch (status) {
    case CheckStatus::Warning:
        return kAspectWarningScore;
    case CheckStatus::Critical:
        return 0.0;
    case CheckStatus::Ok:
    case CheckStatus::Unknown:
        return 1.0;
    }
    return 1.0;
}

CheckResult serviceCheck(const ServiceHealthInput& service, bool critical, const Config& config) {
    CheckResult check;
    check.name = "service:" + service.name;
    check.weight = critical ? kCriticalServiceWeight : kServiceWeight;
    check.message =
        "service " + service.name + " is " + (service.state.empty() ? "in no state" : service.state);
    const bool running = service.state == "running";
    if (running) {
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

    std::vector<ServiceAspect> aspects;
    // Probe results and usage of a service that is not running describe a process that is gone.
    if (running)
        probeAspects(service, aspects);
    failureAspects(service, config.health_checking, aspects);
    if (running)
        limitAspects(service, config, aspects);
    // The worst aspect comes first in the message: it is the one that decided.
    std::stable_sort(aspects.begin(), aspects.end(),
                     [](const ServiceAspect& left, const ServiceAspect& right) {
                         return severity(left.status) > severity(right.status);
                     });
    if (!aspects.empty()) {
        check.status = worse(check.status, aspects.front().status);
        check.score *= 1.0 - kServiceAspectWeight * (1.0 - aspectScore(aspects.front().status));
    }
    for (const ServiceAspect& aspect : aspects)
        check.message += "; " + aspect.text;
    return check;
}

struct ServiceChecks {
    // Checks of services that are not critical: their Critical only degrades the whole.
    std::set<std::string, std::less<>> non_critical;
};

void appendServiceChecks(const HealthInputs& inputs, const Config& config, std::vector<CheckResult>& checks,
                         ServiceChecks& serviceChecks) {
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
        // A name reported twice would otherwise count twice in the score.
        if (!supervised.insert(service.name).second)
            continue;
        const bool critical = service.critical || config.isCritical(service.name);
        if (!critical && !isWatched(service.name))
            continue;
        checks.push_back(serviceCheck(service, critical, config));
        if (!critical)
            serviceChecks.non_critical.insert(checks.back().name);
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

// --- Recommendations ---

struct Consumer {
    std::string service;
    double amount = 0;
    std::string what; // "PSS", "RSS", "memory"
};

// Service names from the inputs and from the per-service metric keys with these prefixes.
std::set<std::string> consumerNames(const HealthInputs& inputs,
                                    std::initializer_list<std::string_view> metrics) {
    std::set<std::string> names;
    if (inputs.services) {
        for (const ServiceHealthInput& service : *inputs.services)
            names.insert(service.name);
    }
    for (std::string_view metric : metrics) {
        const std::string prefix = std::string(metric) + "@";
        for (auto it = inputs.metrics.lower_bound(prefix);
             it != inputs.metrics.end() && it->first.starts_with(prefix); ++it) {
            names.insert(it->first.substr(prefix.size()));
        }
    }
    return names;
}

std::vector<Consumer> largest(std::vector<Consumer> consumers) {
    std::sort(consumers.begin(), consumers.end(), [](const Consumer& left, const Consumer& right) {
        return left.amount != right.amount ? left.amount > right.amount : left.service < right.service;
    });
    if (consumers.size() > kConsumersNamed)
        consumers.resize(kConsumersNamed);
    return consumers;
}

const ServiceHealthInput* findServiceInput(const HealthInputs& inputs, std::string_view name) {
    if (!inputs.services)
        return nullptr;
    for (const ServiceHealthInput& service : *inputs.services) {
        if (service.name == name)
            return &service;
    }
    return nullptr;
}

const TrendReport* findTrend(const HealthInputs& inputs, std::string_view metric, std::string_view scope) {
    for (const TrendReport& trend : inputs.trends) {
        if (trend.metric == metric && trend.scope == scope)
            return &trend;
    }
    return nullptr;
}

std::vector<Consumer> memoryConsumers(const HealthInputs& inputs) {
    std::vector<Consumer> consumers;
    for (const std::string& name : consumerNames(inputs, {"service_pss_bytes", "service_memory_bytes"})) {
        // PSS splits shared pages among their users, so the figures add up; RSS counts them in each.
        if (const auto pss = finiteMetric(inputs.metrics, historyKey("service_pss_bytes", name))) {
            consumers.push_back({name, *pss, "PSS"});
        } else if (const auto memory =
                       finiteMetric(inputs.metrics, historyKey("service_memory_bytes", name))) {
            consumers.push_back({name, *memory, "memory"});
        } else if (const ServiceHealthInput* service = findServiceInput(inputs, name)) {
            consumers.push_back({name, static_cast<double>(service->rss_bytes), "RSS"});
        }
    }
    std::erase_if(consumers, [](const Consumer& consumer) { return !(consumer.amount > 0); });
    return largest(std::move(consumers));
}

std::vector<Consumer> cpuConsumers(const HealthInputs& inputs) {
    std::vector<Consumer> consumers;
    for (const std::string& name : consumerNames(inputs, {"service_cpu_percent"})) {
        if (const auto cpu = finiteMetric(inputs.metrics, historyKey("service_cpu_percent", name))) {
            consumers.push_back({name, *cpu, "cpu"});
        } else if (const ServiceHealthInput* service = findServiceInput(inputs, name)) {
            consumers.push_back({name, service->cpu_percent, "cpu"});
        }
    }
    std::erase_if(consumers, [](const Consumer& consumer) { return !(consumer.amount > 0); });
    return largest(std::move(consumers));
}

constexpr std::string_view kNoConsumers = "no supervised service is known to use it; look at other processes";

std::string memoryConsumersText(const HealthInputs& inputs) {
    const std::vector<Consumer> consumers = memoryConsumers(inputs);
    if (consumers.empty())
        return std::string(kNoConsumers);
    std::string text = "largest consumers ";
    for (std::size_t index = 0; index < consumers.size(); ++index) {
        const Consumer& consumer = consumers[index];
        text += (index == 0 ? "" : ", ") + consumer.service + " (" + consumer.what + " " +
                bytesText(consumer.amount);
        const TrendReport* trend = findTrend(inputs, "service_memory_bytes", consumer.service);
        if (trend && trend->slope_per_hour > 0 && trend->r_squared >= TrendRules{}.min_r_squared)
            text += ", growing " + bytesText(trend->slope_per_hour) + "/h";
        text += ")";
    }
    return text;
}

std::string cpuConsumersText(const HealthInputs& inputs) {
    const std::vector<Consumer> consumers = cpuConsumers(inputs);
    if (consumers.empty())
        return std::string(kNoConsumers);
    std::string text = "top consumers ";
    for (std::size_t index = 0; index < consumers.size(); ++index) {
        text += (index == 0 ? "" : ", ") + consumers[index].service + " (" +
                percentText(consumers[index].amount) + " of a core)";
    }
    return text;
}

bool isUnwell(CheckStatus status) {
    return status == CheckStatus::Warning || status == CheckStatus::Critical;
}

// Forecasts of resources the trends see running out within the horizon, soonest first.
void appendForecasts(const HealthInputs& inputs, const std::set<std::string, std::less<>>& checked,
                     std::vector<Recommendation>& recommendations) {
    struct Forecast {
        std::chrono::seconds until;
        std::string scope;
        Recommendation recommendation;
    };
    std::vector<Forecast> forecasts;
    for (const TrendReport& trend : inputs.trends) {
        if (!trend.until || *trend.until > kForecastHorizon)
            continue;
        const std::string when = forecastText(*trend.until) + " at the current rate";
        if (trend.metric == "disk_used_percent" && checked.contains("disk_usage")) {
            forecasts.push_back(
                {*trend.until, trend.scope, {"disk_usage", trend.scope + " will be full " + when}});
        } else if (trend.metric == "disk_inodes_used_percent" && checked.contains("disk_usage")) {
            forecasts.push_back(
                {*trend.until, trend.scope, {"disk_usage", trend.scope + " will run out of inodes " + when}});
        } else if (trend.metric == "memory_used_percent" && checked.contains("memory_usage")) {
            forecasts.push_back({*trend.until, trend.scope, {"memory_usage", "memory will run out " + when}});
        }
    }
    std::stable_sort(forecasts.begin(), forecasts.end(), [](const Forecast& left, const Forecast& right) {
        return left.until != right.until ? left.until < right.until : left.scope < right.scope;
    });
    for (Forecast& forecast : forecasts)
        recommendations.push_back(std::move(forecast.recommendation));
}

// Steady memory growth and limits coming close, per service, in the order of the service names.
void appendMemoryGrowth(const HealthInputs& inputs, std::vector<Recommendation>& recommendations) {
    std::vector<const TrendReport*> growing;
    for (const TrendReport& trend : inputs.trends) {
        if (trend.metric == "service_memory_bytes" && std::isfinite(trend.slope_per_hour) &&
            trend.slope_per_hour > 0)
            growing.push_back(&trend);
    }
    std::stable_sort(growing.begin(), growing.end(), [](const TrendReport* left, const TrendReport* right) {
        return left->scope < right->scope;
    });
    for (const TrendReport* trend : growing) {
        const bool leaking = trend->slope_per_hour > kLeakBytesPerHour && trend->r_squared >= kLeakRSquared;
        const bool limitSoon = trend->limit && trend->until && *trend->until <= kForecastHorizon;
        if (!leaking && !limitSoon)
            continue;
        std::string text = "service " + trend->scope;
        if (leaking) {
            text += " may be leaking memory: " + bytesText(trend->value) + ", growing " +
                    bytesText(trend->slope_per_hour) + "/h steadily (r² " + formatFixed(trend->r_squared, 2) +
                    ")";
            if (limitSoon)
                text +=
                    ", reaching its limit of " + bytesText(*trend->limit) + " " + forecastText(*trend->until);
        } else {
            text += " will reach its memory limit of " + bytesText(*trend->limit) + " " +
                    forecastText(*trend->until) + " at the current rate";
        }
        recommendations.push_back({"service:" + trend->scope, std::move(text)});
    }
}

std::string failureClassesText(const std::vector<std::string>& failures) {
    std::map<std::string, std::size_t> counts;
    for (const std::string& failure : failures)
        ++counts[failure.empty() ? "unclassified" : failure];
    std::vector<std::pair<std::string, std::size_t>> ordered(counts.begin(), counts.end());
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const auto& left, const auto& right) { return left.second > right.second; });
    std::string text;
    for (const auto& [failureClass, count] : ordered)
        text += (text.empty() ? "" : ", ") + std::to_string(count) + " " + failureClass;
    return text;
}

std::string pressureAdvice(std::string_view metric, const HealthInputs& inputs) {
    if (metric.starts_with("pressure_memory_"))
        return memoryConsumersText(inputs);
    if (metric.starts_with("pressure_cpu_"))
        return cpuConsumersText(inputs);
    return "look for processes waiting on the disks";
}

std::vector<Recommendation> recommendationsFor(const HealthReport& report, const HealthInputs& inputs,
                                               const Config& config, const SystemFindings& findings) {
    std::map<std::string, CheckStatus, std::less<>> statuses;
    for (const CheckResult& check : report.checks)
        statuses.emplace(check.name, check.status);
    std::set<std::string, std::less<>> checked;
    for (const auto& [name, status] : statuses)
        checked.insert(name);
    auto unwell = [&](std::string_view name) {
        const auto found = statuses.find(name);
        return found != statuses.end() && isUnwell(found->second);
    };

    std::vector<Recommendation> recommendations;
    if (unwell("memory_usage") && inputs.resources) {
        const MemorySnapshot& memory = inputs.resources->memory;
        const double available = memory.total_bytes > 0
                                     ? 100.0 * static_cast<double>(memory.available_bytes) /
                                           static_cast<double>(memory.total_bytes)
                                     : 100.0 - memory.used_percent;
        recommendations.push_back({"memory_usage", "memory available " + percentText(available) + ": " +
                                                       memoryConsumersText(inputs)});
    }
    if (unwell("cpu_usage") && inputs.resources) {
        recommendations.push_back({"cpu_usage", "cpu " + percentText(inputs.resources->cpu_percent) + ": " +
                                                    cpuConsumersText(inputs)});
    }
    appendForecasts(inputs, checked, recommendations);
    if (unwell("temperature")) {
        if (const auto reading = hottestTemperature(inputs.metrics)) {
            recommendations.push_back({"temperature", reading->where + " at " +
                                                          formatFixed(reading->celsius, 1) +
                                                          " °C: check fans, airflow and the load"});
        }
    }
    for (const PressureFinding& finding : findings.pressure) {
        if (!isUnwell(finding.check.status))
            continue;
        recommendations.push_back(
            {"pressure", pressureName(finding.metric) + " " + percentText(finding.check.value) +
                             " of the last 10 s stalled: " + pressureAdvice(finding.metric, inputs)});
    }
    if (inputs.services) {
        std::set<std::string, std::less<>> named;
        for (const ServiceHealthInput& service : *inputs.services) {
            const std::string name = "service:" + service.name;
            // The check was made from the first entry of a name reported twice.
            if (!named.insert(name).second || !checked.contains(name) ||
                service.recent_failures.size() < restartWarningCount(config.health_checking))
                continue;
            recommendations.push_back(
                {name,
                 "service " + service.name + " failed " +
                     countText(static_cast<long long>(service.recent_failures.size()), "time", "times") +
                     " " + windowText(config.health_checking) + " (" +
                     failureClassesText(service.recent_failures) + "): its log tells why"});
        }
    }
    appendMemoryGrowth(inputs, recommendations);

    // The most urgent first; otherwise in the order they were found.
    auto urgency = [&](const Recommendation& recommendation) {
        const auto found = statuses.find(recommendation.check);
        return found != statuses.end() && isUnwell(found->second) ? severity(found->second) : 0;
    };
    std::stable_sort(recommendations.begin(), recommendations.end(),
                     [&](const Recommendation& left, const Recommendation& right) {
                         return urgency(left) > urgency(right);
                     });
    return recommendations;
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

    SystemFindings findings;
    std::set<std::string, std::less<>> evaluated;
    for (const std::string& name : config.health_checking.system_health_checks) {
        // A name listed twice would otherwise count twice in the score.
        if (!evaluated.insert(name).second)
            continue;
        report.checks.push_back(systemCheck(name, inputs, config, findings));
    }
    ServiceChecks serviceChecks;
    appendServiceChecks(inputs, config, report.checks, serviceChecks);

    double knownWeight = 0.0;
    double weightedScore = 0.0;
    bool anyCritical = false;
    bool anyUnwell = false;
    for (const CheckResult& check : report.checks) {
        if (check.status == CheckStatus::Unknown)
            continue;
        knownWeight += check.weight;
        weightedScore += check.weight * check.score;
        anyUnwell = anyUnwell || isUnwell(check.status);
        anyCritical = anyCritical || (check.status == CheckStatus::Critical &&
                                      !serviceChecks.non_critical.contains(check.name));
    }
    report.recommendations = recommendationsFor(report, inputs, config, findings);
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
    } else if (anyUnwell) {
        report.status = HealthStatus::Degraded;
    } else {
        report.status = HealthStatus::Ok;
    }
    return report;
}

std::optional<HealthStatus> StatusDebouncer::offer(HealthStatus status, TimePoint now) {
    auto publish = [&] {
        published_ = status;
        published_any_ = true;
        candidate_.reset();
        return std::optional<HealthStatus>(status);
    };
    if (status == published_) {
        candidate_.reset();
        return std::nullopt;
    }
    if (!published_any_ || hold_ <= std::chrono::steady_clock::duration::zero())
        return publish();
    if (candidate_ != status) {
        // A different status in between starts the wait again.
        candidate_ = status;
        candidate_since_ = now;
        return std::nullopt;
    }
    if (now - candidate_since_ >= hold_)
        return publish();
    return std::nullopt;
}

std::optional<StatusDebouncer::TimePoint> StatusDebouncer::confirmAt() const {
    if (!candidate_)
        return std::nullopt;
    return candidate_since_ + hold_;
}

} // namespace tau
