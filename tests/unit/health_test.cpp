#include "tau/health.h"

#include <chrono>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tau {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Config configWithChecks(std::vector<std::string> systemChecks) {
    Config config;
    config.health_checking.system_health_checks = std::move(systemChecks);
    return config;
}

// A machine at rest: everything well below the default limits, two cores.
ResourceSnapshot calmResources() {
    ResourceSnapshot resources;
    resources.cpu_percent = 10.0;
    resources.cpu_per_core_percent = {10.0, 10.0};
    resources.memory.used_percent = 20.0;
    resources.swap.used_percent = 0.0;
    resources.load = LoadAverage{0.5, 0.5, 0.5};
    DiskSnapshot root;
    root.mount_point = "/";
    root.used_percent = 30.0;
    resources.disks = {root};
    return resources;
}

ServiceHealthInput serviceIn(std::string name, std::string state, bool critical) {
    ServiceHealthInput service;
    service.name = std::move(name);
    service.state = std::move(state);
    service.critical = critical;
    return service;
}

HealthInputs calmInputs() {
    HealthInputs inputs;
    inputs.resources = calmResources();
    inputs.services = std::vector<ServiceHealthInput>{};
    inputs.network = NetworkHealthInput{"eth0", "up", {}};
    return inputs;
}

const CheckResult& findCheck(const HealthReport& report, const std::string& name) {
    for (const CheckResult& check : report.checks) {
        if (check.name == name)
            return check;
    }
    throw std::runtime_error("no check " + name);
}

std::vector<std::string> checkNames(const HealthReport& report) {
    std::vector<std::string> names;
    for (const CheckResult& check : report.checks)
        names.push_back(check.name);
    return names;
}

double sumOfContributions(const HealthReport& report) {
    return std::accumulate(report.checks.begin(), report.checks.end(), 0.0,
                           [](double sum, const CheckResult& check) { return sum + check.contribution; });
}

CheckResult cpuCheckAt(double percent) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_percent = percent;
    return findCheck(evaluateHealth(inputs, configWithChecks({"cpu_usage"})), "cpu_usage");
}

TEST(HealthNames, StatusesHaveStableNames) {
    EXPECT_EQ(toString(CheckStatus::Ok), "ok");
    EXPECT_EQ(toString(CheckStatus::Warning), "warning");
    EXPECT_EQ(toString(CheckStatus::Critical), "critical");
    EXPECT_EQ(toString(CheckStatus::Unknown), "unknown");
    EXPECT_EQ(toString(HealthStatus::Ok), "ok");
    EXPECT_EQ(toString(HealthStatus::Degraded), "degraded");
    EXPECT_EQ(toString(HealthStatus::Critical), "critical");
    EXPECT_EQ(toString(HealthStatus::Unknown), "unknown");
}

TEST(HealthNames, NagiosExitCodes) {
    EXPECT_EQ(nagiosExitCode(HealthStatus::Ok), 0);
    EXPECT_EQ(nagiosExitCode(HealthStatus::Degraded), 1);
    EXPECT_EQ(nagiosExitCode(HealthStatus::Critical), 2);
    EXPECT_EQ(nagiosExitCode(HealthStatus::Unknown), 3);
}

TEST(HealthUsage, StatusChangesExactlyAtTheLimitAndHalfwayToFull) {
    // Default cpu limit 80: warning from 80, critical from 90.
    EXPECT_EQ(cpuCheckAt(79.99).status, CheckStatus::Ok);
    EXPECT_EQ(cpuCheckAt(80.0).status, CheckStatus::Warning);
    EXPECT_EQ(cpuCheckAt(89.99).status, CheckStatus::Warning);
    EXPECT_EQ(cpuCheckAt(90.0).status, CheckStatus::Critical);
    EXPECT_EQ(cpuCheckAt(100.0).status, CheckStatus::Critical);
}

TEST(HealthUsage, ScoreFallsLinearlyFromTheLimitToFull) {
    EXPECT_DOUBLE_EQ(cpuCheckAt(0.0).score, 1.0);
    EXPECT_DOUBLE_EQ(cpuCheckAt(79.99).score, 1.0);
    EXPECT_DOUBLE_EQ(cpuCheckAt(80.0).score, 1.0);
    EXPECT_DOUBLE_EQ(cpuCheckAt(85.0).score, 0.75);
    EXPECT_DOUBLE_EQ(cpuCheckAt(90.0).score, 0.5);
    EXPECT_DOUBLE_EQ(cpuCheckAt(100.0).score, 0.0);
    EXPECT_DOUBLE_EQ(cpuCheckAt(130.0).score, 0.0);
}

TEST(HealthUsage, ANonFiniteValueIsUnknown) {
    EXPECT_EQ(cpuCheckAt(std::numeric_limits<double>::quiet_NaN()).status, CheckStatus::Unknown);
}

TEST(HealthUsage, ValueWeightAndMessage) {
    const CheckResult warning = cpuCheckAt(82.3);
    EXPECT_DOUBLE_EQ(warning.value, 82.3);
    EXPECT_DOUBLE_EQ(warning.weight, 1.0);
    EXPECT_EQ(warning.message, "cpu 82.3% (warning at 80%)");

    EXPECT_EQ(cpuCheckAt(92.3).message, "cpu 92.3% (critical at 90%)");
    EXPECT_EQ(cpuCheckAt(12.0).message, "cpu 12.0% (warning at 80%)");
}

TEST(HealthUsage, MemoryUsesItsOwnLimit) {
    HealthInputs inputs = calmInputs();
    Config config = configWithChecks({"memory_usage"});
    config.resource_monitoring.memory_threshold_percent = 85.0; // critical from 92.5

    inputs.resources->memory.used_percent = 92.4;
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "memory_usage").status, CheckStatus::Warning);
    inputs.resources->memory.used_percent = 92.5;
    const CheckResult critical = findCheck(evaluateHealth(inputs, config), "memory_usage");
    EXPECT_EQ(critical.status, CheckStatus::Critical);
    EXPECT_EQ(critical.message, "memory 92.5% used (critical at 92.5%)");
}

TEST(HealthUsage, DiskJudgesTheFullestFilesystemAndNamesIt) {
    HealthInputs inputs = calmInputs();
    DiskSnapshot data;
    data.mount_point = "/srv/data";
    data.used_percent = 93.0;
    DiskSnapshot home;
    home.mount_point = "/home";
    home.used_percent = 50.0;
    inputs.resources->disks.push_back(data);
    inputs.resources->disks.push_back(home);

    const CheckResult disk =
        findCheck(evaluateHealth(inputs, configWithChecks({"disk_usage"})), "disk_usage");

    EXPECT_EQ(disk.status, CheckStatus::Warning); // limit 90, critical from 95
    EXPECT_DOUBLE_EQ(disk.value, 93.0);
    EXPECT_DOUBLE_EQ(disk.score, 0.7);
    EXPECT_THAT(disk.message, HasSubstr("/srv/data"));
    EXPECT_THAT(disk.message, HasSubstr("93.0%"));
}

TEST(HealthUsage, NoDiskIsUnknown) {
    HealthInputs inputs = calmInputs();
    inputs.resources->disks.clear();

    EXPECT_EQ(findCheck(evaluateHealth(inputs, configWithChecks({"disk_usage"})), "disk_usage").status,
              CheckStatus::Unknown);
}

TEST(HealthUsage, SwapLimitIsEighty) {
    HealthInputs inputs = calmInputs();
    const Config config = configWithChecks({"swap_usage"});

    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "swap_usage").status, CheckStatus::Ok); // no swap
    inputs.resources->swap.used_percent = 80.0;
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "swap_usage").status, CheckStatus::Warning);
    inputs.resources->swap.used_percent = 90.0;
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "swap_usage").status, CheckStatus::Critical);
}

TEST(HealthUsage, LoadIsMeasuredPerCore) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_per_core_percent = {0, 0, 0, 0};
    const Config config = configWithChecks({"load_average"});

    inputs.resources->load.one = 3.0;
    const CheckResult moderate = findCheck(evaluateHealth(inputs, config), "load_average");
    EXPECT_DOUBLE_EQ(moderate.value, 75.0);
    EXPECT_EQ(moderate.status, CheckStatus::Ok);
    EXPECT_THAT(moderate.message, HasSubstr("4 cores"));

    // With a limit of 100% the critical level is 100% as well: there is no warning band.
    inputs.resources->load.one = 4.0;
    const CheckResult saturated = findCheck(evaluateHealth(inputs, config), "load_average");
    EXPECT_DOUBLE_EQ(saturated.value, 100.0);
    EXPECT_EQ(saturated.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(saturated.score, 0.0);
}

TEST(HealthNetwork, UpOrUnknownIsOkAndDownIsCritical) {
    HealthInputs inputs = calmInputs();
    const Config config = configWithChecks({"network_connectivity"});

    const CheckResult up = findCheck(evaluateHealth(inputs, config), "network_connectivity");
    EXPECT_EQ(up.status, CheckStatus::Ok);
    EXPECT_DOUBLE_EQ(up.score, 1.0);
    EXPECT_DOUBLE_EQ(up.value, 1.0);
    EXPECT_DOUBLE_EQ(up.weight, 0.5);

    inputs.network.oper_state = "unknown";
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "network_connectivity").status, CheckStatus::Ok);

    inputs.network.oper_state = "down";
    const CheckResult down = findCheck(evaluateHealth(inputs, config), "network_connectivity");
    EXPECT_EQ(down.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(down.score, 0.0);
    EXPECT_THAT(down.message, HasSubstr("eth0"));

    inputs.network.oper_state.reset(); // the interface has disappeared
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "network_connectivity").status,
              CheckStatus::Critical);
}

TEST(HealthNetwork, NoDefaultRouteIsUnknown) {
    HealthInputs inputs = calmInputs();
    inputs.network = NetworkHealthInput{};

    const CheckResult check =
        findCheck(evaluateHealth(inputs, configWithChecks({"network_connectivity"})), "network_connectivity");

    EXPECT_EQ(check.status, CheckStatus::Unknown);
    EXPECT_EQ(check.message, "no default route");
}

TEST(HealthChecks, FollowTheConfiguredOrderAndOnlyTheConfiguredChecks) {
    const HealthReport report =
        evaluateHealth(calmInputs(), configWithChecks({"network_connectivity", "swap_usage", "cpu_usage"}));

    EXPECT_THAT(checkNames(report), ElementsAre("network_connectivity", "swap_usage", "cpu_usage"));
}

TEST(HealthChecks, DefaultConfigurationRunsEverySystemCheck) {
    const HealthReport report = evaluateHealth(calmInputs(), Config{});

    EXPECT_THAT(checkNames(report),
                ElementsAre("cpu_usage", "memory_usage", "disk_usage", "swap_usage", "load_average",
                            "temperature", "pressure", "network_connectivity"));
    EXPECT_EQ(report.status, HealthStatus::Ok);
    EXPECT_DOUBLE_EQ(report.score, 1.0);
}

TEST(HealthChecks, MissingResourceDataMakesResourceChecksUnknownButNotTheNetwork) {
    HealthInputs inputs = calmInputs();
    inputs.resources.reset();

    const HealthReport report = evaluateHealth(inputs, Config{});

    for (const char* name : {"cpu_usage", "memory_usage", "disk_usage"}) {
        const CheckResult& check = findCheck(report, name);
        EXPECT_EQ(check.status, CheckStatus::Unknown) << name;
        EXPECT_EQ(check.message, "resource data unavailable") << name;
        EXPECT_DOUBLE_EQ(check.contribution, 0.0) << name;
    }
    EXPECT_EQ(findCheck(report, "network_connectivity").status, CheckStatus::Ok);
    // Only the network is known, and it is fine.
    EXPECT_DOUBLE_EQ(report.score, 1.0);
    EXPECT_DOUBLE_EQ(findCheck(report, "network_connectivity").contribution, 1.0);
    EXPECT_EQ(report.status, HealthStatus::Ok);
}

TEST(HealthChecks, NothingKnownIsUnknownWithScoreZero) {
    HealthInputs inputs; // no resources, no services, no default route

    const HealthReport report = evaluateHealth(inputs, Config{});

    EXPECT_EQ(report.status, HealthStatus::Unknown);
    EXPECT_DOUBLE_EQ(report.score, 0.0);
    EXPECT_EQ(nagiosExitCode(report.status), 3);
    EXPECT_EQ(findCheck(report, "services").message, "service data unavailable");
}

TEST(HealthServices, StatesMapToStatusesAndScores) {
    HealthInputs inputs = calmInputs();
    Config config = configWithChecks({});
    config.health_checking.service_health_checks = {"web", "cache", "queue", "batch", "odd"};
    inputs.services = std::vector<ServiceHealthInput>{
        serviceIn("web", "running", false),   serviceIn("cache", "starting", false),
        serviceIn("queue", "backoff", false), serviceIn("batch", "failed", false),
        serviceIn("odd", "sleeping", false),
    };

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_EQ(findCheck(report, "service:web").status, CheckStatus::Ok);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:web").score, 1.0);
    EXPECT_EQ(findCheck(report, "service:cache").status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:cache").score, 0.5);
    EXPECT_EQ(findCheck(report, "service:queue").status, CheckStatus::Warning);
    // Not critical: a failed service only warns, but scores nothing.
    EXPECT_EQ(findCheck(report, "service:batch").status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:batch").score, 0.0);
    EXPECT_EQ(findCheck(report, "service:odd").status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:web").weight, 1.0);
}

TEST(HealthServices, CriticalServicesWeighDoubleAndFailCritically) {
    HealthInputs inputs = calmInputs();
    Config config = configWithChecks({});
    config.crash_recovery.critical_processes = {"db"};
    ServiceConfig api;
    api.name = "api";
    api.critical = true;
    config.services = {api};
    inputs.services = std::vector<ServiceHealthInput>{
        serviceIn("db", "stopped", false), serviceIn("api", "running", false),
        serviceIn("worker", "failed", true),
        serviceIn("unwatched", "failed", false), // neither critical nor listed: not checked
    };

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_THAT(checkNames(report), ElementsAre("service:db", "service:api", "service:worker"));
    EXPECT_EQ(findCheck(report, "service:db").status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:db").weight, 2.0);
    EXPECT_EQ(findCheck(report, "service:api").status, CheckStatus::Ok);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:api").weight, 2.0);
    EXPECT_EQ(findCheck(report, "service:worker").status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:worker").weight, 2.0);
    EXPECT_EQ(report.status, HealthStatus::Critical);
}

TEST(HealthServices, ExpectedButUnsupervisedServicesAreUnknown) {
    HealthInputs inputs = calmInputs();
    Config config = configWithChecks({});
    config.health_checking.service_health_checks = {"web", "mail"};
    config.crash_recovery.critical_processes = {"db", "mail"};
    inputs.services = std::vector<ServiceHealthInput>{serviceIn("web", "running", false)};

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_THAT(checkNames(report), ElementsAre("service:web", "service:mail", "service:db"));
    EXPECT_EQ(findCheck(report, "service:mail").status, CheckStatus::Unknown);
    EXPECT_EQ(findCheck(report, "service:mail").message, "not supervised");
    EXPECT_EQ(findCheck(report, "service:db").status, CheckStatus::Unknown);
    EXPECT_DOUBLE_EQ(report.score, 1.0);
    EXPECT_EQ(report.status, HealthStatus::Ok);
}

TEST(HealthServices, AServiceReportedTwiceIsCheckedOnce) {
    HealthInputs inputs = calmInputs();
    Config config = configWithChecks({});
    config.health_checking.service_health_checks = {"web"};
    ServiceHealthInput restarting = serviceIn("web", "running", false);
    restarting.recent_failures.assign(3, "exit");
    inputs.services = std::vector<ServiceHealthInput>{restarting, serviceIn("web", "failed", false)};

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_THAT(checkNames(report), ElementsAre("service:web"));
    EXPECT_EQ(report.recommendations.size(), 1u);
}

TEST(HealthServices, MissingServiceDataIsOneUnknownCheck) {
    HealthInputs inputs = calmInputs();
    inputs.services.reset();
    Config config = configWithChecks({});
    config.crash_recovery.critical_processes = {"db"};

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_THAT(checkNames(report), ElementsAre("services"));
    EXPECT_EQ(report.checks[0].status, CheckStatus::Unknown);
    EXPECT_EQ(report.status, HealthStatus::Unknown);
}

TEST(HealthScore, IsTheWeightedMeanAndContributionsAddUpToIt) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_percent = 85.0;  // warning, score 0.75
    inputs.network = NetworkHealthInput{}; // unknown, left out
    Config config = configWithChecks({"cpu_usage", "memory_usage", "network_connectivity"});
    config.crash_recovery.critical_processes = {"db"};
    config.health_checking.service_health_checks = {"web"};
    inputs.services = std::vector<ServiceHealthInput>{serviceIn("db", "running", false),
                                                      serviceIn("web", "starting", false)};

    const HealthReport report = evaluateHealth(inputs, config);

    // cpu 1.0 * 0.75, memory 1.0 * 1, db 2.0 * 1, web 1.0 * 0.5; the network weighs nothing while unknown.
    const double expected = (0.75 + 1.0 + 2.0 + 0.5) / (1.0 + 1.0 + 2.0 + 1.0);
    EXPECT_DOUBLE_EQ(report.score, expected);
    EXPECT_NEAR(sumOfContributions(report), report.score, 1e-12);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:db").contribution, 2.0 / 5.0);
    EXPECT_DOUBLE_EQ(findCheck(report, "cpu_usage").contribution, 0.75 / 5.0);
    EXPECT_DOUBLE_EQ(findCheck(report, "network_connectivity").contribution, 0.0);
    EXPECT_EQ(report.status, HealthStatus::Degraded);
    EXPECT_EQ(nagiosExitCode(report.status), 1);
}

TEST(HealthScore, AnyCriticalCheckMakesTheWholeCritical) {
    HealthInputs inputs = calmInputs();
    inputs.network.oper_state = "down";
    // Four checks at 1.0 and the network at 0 with half weight: the score stays above the threshold.
    Config config =
        configWithChecks({"cpu_usage", "memory_usage", "disk_usage", "swap_usage", "network_connectivity"});

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_GT(report.score, config.health_checking.health_score_threshold);
    EXPECT_EQ(report.status, HealthStatus::Critical);
    EXPECT_EQ(nagiosExitCode(report.status), 2);
}

TEST(HealthScore, AScoreBelowTheThresholdIsCriticalEvenWithOnlyWarnings) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_percent = 89.0;         // warning, score 0.55
    inputs.resources->memory.used_percent = 92.0; // warning, score 8/15
    Config config = configWithChecks({"cpu_usage", "memory_usage"});

    config.health_checking.health_score_threshold = 0.6;
    const HealthReport belowThreshold = evaluateHealth(inputs, config);
    EXPECT_LT(belowThreshold.score, 0.6);
    EXPECT_EQ(belowThreshold.status, HealthStatus::Critical);

    config.health_checking.health_score_threshold = 0.5;
    const HealthReport aboveThreshold = evaluateHealth(inputs, config);
    EXPECT_EQ(aboveThreshold.status, HealthStatus::Degraded);
}

TEST(HealthScore, AllOkIsOk) {
    const HealthReport report = evaluateHealth(calmInputs(), Config{});

    EXPECT_EQ(report.status, HealthStatus::Ok);
    EXPECT_EQ(nagiosExitCode(report.status), 0);
    EXPECT_NEAR(sumOfContributions(report), 1.0, 1e-12);
}

TEST(HealthChecks, AnUnsupportedCheckNameIsUnknownAndIgnoredInTheScore) {
    const HealthReport report = evaluateHealth(calmInputs(), configWithChecks({"fan_speed", "cpu_usage"}));

    EXPECT_EQ(findCheck(report, "fan_speed").status, CheckStatus::Unknown);
    EXPECT_EQ(findCheck(report, "fan_speed").message, "unsupported check");
    EXPECT_DOUBLE_EQ(report.score, 1.0);
    EXPECT_EQ(report.status, HealthStatus::Ok);
}

// --- Temperature ---

CheckResult temperatureCheckWith(const std::map<std::string, double>& metrics, const Config& config) {
    HealthInputs inputs = calmInputs();
    inputs.metrics = metrics;
    return findCheck(evaluateHealth(inputs, config), "temperature");
}

CheckResult temperatureCheckAt(double celsius) {
    return temperatureCheckWith({{"temperature_celsius", celsius}}, configWithChecks({"temperature"}));
}

TEST(HealthTemperature, WarnsAtEightyAndIsCriticalAtNinetyFive) {
    EXPECT_EQ(temperatureCheckAt(79.99).status, CheckStatus::Ok);
    EXPECT_EQ(temperatureCheckAt(80.0).status, CheckStatus::Warning);
    EXPECT_EQ(temperatureCheckAt(94.99).status, CheckStatus::Warning);
    EXPECT_EQ(temperatureCheckAt(95.0).status, CheckStatus::Critical);

    const CheckResult warm = temperatureCheckAt(82.0);
    EXPECT_DOUBLE_EQ(warm.value, 82.0);
    EXPECT_EQ(warm.message, "hottest sensor 82.0 °C (warning at 80 °C)");
    EXPECT_EQ(temperatureCheckAt(96.0).message, "hottest sensor 96.0 °C (critical at 95 °C)");
}

TEST(HealthTemperature, ScoreIsHalfAtCriticalAndZeroAsFarBeyond) {
    EXPECT_DOUBLE_EQ(temperatureCheckAt(60.0).score, 1.0);
    EXPECT_DOUBLE_EQ(temperatureCheckAt(87.5).score, 0.75);
    EXPECT_DOUBLE_EQ(temperatureCheckAt(95.0).score, 0.5);
    EXPECT_DOUBLE_EQ(temperatureCheckAt(110.0).score, 0.0);
    EXPECT_DOUBLE_EQ(temperatureCheckAt(130.0).score, 0.0);
}

TEST(HealthTemperature, ConfiguredThresholdsReplaceTheDefaults) {
    Config config = configWithChecks({"temperature"});
    ThresholdSpec spec;
    spec.warning = ThresholdBand{70.0, 65.0, 1, 1};
    spec.critical = ThresholdBand{85.0, 80.0, 1, 1};
    config.resource_monitoring.thresholds["temperature_celsius"] = spec;

    EXPECT_EQ(temperatureCheckWith({{"temperature_celsius", 69.9}}, config).status, CheckStatus::Ok);
    EXPECT_EQ(temperatureCheckWith({{"temperature_celsius", 70.0}}, config).status, CheckStatus::Warning);
    const CheckResult critical = temperatureCheckWith({{"temperature_celsius", 85.0}}, config);
    EXPECT_EQ(critical.status, CheckStatus::Critical);
    EXPECT_EQ(critical.message, "hottest sensor 85.0 °C (critical at 85 °C)");
}

TEST(HealthTemperature, AConfiguredWarningAboveTheDefaultCriticalRaisesIt) {
    Config config = configWithChecks({"temperature"});
    ThresholdSpec spec;
    spec.warning = ThresholdBand{100.0, 95.0, 1, 1};
    config.resource_monitoring.thresholds["temperature_celsius"] = spec;

    EXPECT_EQ(temperatureCheckWith({{"temperature_celsius", 99.0}}, config).status, CheckStatus::Ok);
    EXPECT_EQ(temperatureCheckWith({{"temperature_celsius", 100.0}}, config).status, CheckStatus::Critical);
}

TEST(HealthTemperature, FallsBackToTheHottestSensor) {
    const CheckResult check =
        temperatureCheckWith({{"temperature_celsius@coretemp", 85.0},
                              {"temperature_celsius@nvme", 60.0},
                              {"temperature_celsius@acpitz", std::numeric_limits<double>::quiet_NaN()}},
                             configWithChecks({"temperature"}));

    EXPECT_EQ(check.status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(check.value, 85.0);
    EXPECT_EQ(check.message, "sensor coretemp 85.0 °C (warning at 80 °C)");
}

TEST(HealthTemperature, NoSensorIsUnknownNeverHealthy) {
    const Config config = configWithChecks({"temperature"});

    const CheckResult none = temperatureCheckWith({}, config);
    EXPECT_EQ(none.status, CheckStatus::Unknown);
    EXPECT_EQ(none.message, "temperature sensors unavailable");
    EXPECT_DOUBLE_EQ(none.score, 0.0);

    EXPECT_EQ(temperatureCheckWith({{"temperature_celsius", std::numeric_limits<double>::infinity()}}, config)
                  .status,
              CheckStatus::Unknown);

    Config disabled = config;
    disabled.resource_monitoring.temperature_monitoring = false;
    EXPECT_EQ(temperatureCheckWith({}, disabled).message, "temperature monitoring is disabled");
}

// --- Pressure ---

CheckResult pressureCheckWith(const std::map<std::string, double>& metrics, const Config& config) {
    HealthInputs inputs = calmInputs();
    inputs.metrics = metrics;
    return findCheck(evaluateHealth(inputs, config), "pressure");
}

TEST(HealthPressure, EachResourceHasItsOwnLevels) {
    const Config config = configWithChecks({"pressure"});
    auto statusWith = [&](const char* metric, double value) {
        return pressureCheckWith({{metric, value}}, config).status;
    };

    EXPECT_EQ(statusWith("pressure_memory_some_avg10", 9.99), CheckStatus::Ok);
    EXPECT_EQ(statusWith("pressure_memory_some_avg10", 10.0), CheckStatus::Warning);
    EXPECT_EQ(statusWith("pressure_memory_some_avg10", 39.99), CheckStatus::Warning);
    EXPECT_EQ(statusWith("pressure_memory_some_avg10", 40.0), CheckStatus::Critical);
    EXPECT_EQ(statusWith("pressure_io_full_avg10", 9.99), CheckStatus::Ok);
    EXPECT_EQ(statusWith("pressure_io_full_avg10", 10.0), CheckStatus::Warning);
    EXPECT_EQ(statusWith("pressure_io_full_avg10", 40.0), CheckStatus::Critical);
    EXPECT_EQ(statusWith("pressure_cpu_some_avg10", 49.99), CheckStatus::Ok);
    EXPECT_EQ(statusWith("pressure_cpu_some_avg10", 50.0), CheckStatus::Warning);
    EXPECT_EQ(statusWith("pressure_cpu_some_avg10", 90.0), CheckStatus::Critical);
    // Without levels of its own a metric is not judged: io "some" stalls are normal on a busy disk.
    EXPECT_EQ(statusWith("pressure_io_some_avg10", 95.0), CheckStatus::Unknown);
}

TEST(HealthPressure, TheWorstResourceDecidesAndTheOthersAreNamed) {
    const CheckResult check = pressureCheckWith({{"pressure_cpu_some_avg10", 20.0},
                                                 {"pressure_memory_some_avg10", 45.0},
                                                 {"pressure_io_full_avg10", 12.0}},
                                                configWithChecks({"pressure"}));

    EXPECT_EQ(check.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(check.value, 45.0);
    EXPECT_DOUBLE_EQ(check.score, 0.5 * (70.0 - 45.0) / 30.0);
    EXPECT_EQ(check.message,
              "memory pressure (some) 45.0% (critical at 40%); io pressure (full) 12.0% (warning at 10%)");
}

TEST(HealthPressure, ConfiguredThresholdsJudgeAnyPressureMetric) {
    Config config = configWithChecks({"pressure"});
    ThresholdSpec spec;
    spec.warning = ThresholdBand{30.0, 25.0, 1, 1};
    config.resource_monitoring.thresholds["pressure_io_some_avg10"] = spec;

    const CheckResult check = pressureCheckWith({{"pressure_io_some_avg10", 31.0}}, config);

    EXPECT_EQ(check.status, CheckStatus::Critical); // only a warning level: critical starts there too
    EXPECT_EQ(check.message, "io pressure (some) 31.0% (critical at 30%)");
}

TEST(HealthPressure, NoPsiIsUnknown) {
    const CheckResult check = pressureCheckWith({{"cpu_percent", 10.0}}, configWithChecks({"pressure"}));

    EXPECT_EQ(check.status, CheckStatus::Unknown);
    EXPECT_EQ(check.message, "pressure stall information (PSI) unavailable");
}

// --- Alarm levels from Resources ---

TEST(HealthAlarms, AnAlarmDecidesTheStatusButTheLiveValueIsShown) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_percent = 78.0; // below the warning level, but the alarm has not been left yet
    inputs.alarms = {AlarmInput{"cpu_percent", "system", AlarmLevel::Warning}};

    const CheckResult check = findCheck(evaluateHealth(inputs, configWithChecks({"cpu_usage"})), "cpu_usage");

    EXPECT_EQ(check.status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(check.value, 78.0);
    EXPECT_DOUBLE_EQ(check.score, 1.0);
    EXPECT_EQ(check.message, "cpu 78.0% (warning at 80%; Resources alarm warning)");
}

TEST(HealthAlarms, AnOkAlarmKeepsAValueOverTheLimitOk) {
    HealthInputs inputs = calmInputs();
    inputs.resources->memory.used_percent = 86.0; // not yet for enough samples to enter the alarm
    inputs.alarms = {AlarmInput{"memory_used_percent", "system", AlarmLevel::Ok}};

    const CheckResult check =
        findCheck(evaluateHealth(inputs, configWithChecks({"memory_usage"})), "memory_usage");

    EXPECT_EQ(check.status, CheckStatus::Ok);
    EXPECT_EQ(check.message, "memory 86.0% used (warning at 85%; Resources alarm ok)");
}

TEST(HealthAlarms, EachSystemCheckFollowsItsMetric) {
    HealthInputs inputs = calmInputs();
    inputs.metrics = {{"temperature_celsius", 50.0}, {"pressure_memory_some_avg10", 1.0}};
    inputs.alarms = {
        AlarmInput{"swap_used_percent", "system", AlarmLevel::Critical},
        AlarmInput{"load_percent", "system", AlarmLevel::Warning},
        AlarmInput{"temperature_celsius", "coretemp", AlarmLevel::Warning},
        AlarmInput{"pressure_memory_some_avg10", "system", AlarmLevel::Critical},
        // Another scope of the metric, or another metric: no say in the cpu check.
        AlarmInput{"cpu_percent", "elsewhere", AlarmLevel::Critical},
        AlarmInput{"cpu_iowait_percent", "system", AlarmLevel::Critical},
    };

    const HealthReport report = evaluateHealth(inputs, Config{});

    EXPECT_EQ(findCheck(report, "swap_usage").status, CheckStatus::Critical);
    EXPECT_EQ(findCheck(report, "load_average").status, CheckStatus::Warning);
    EXPECT_EQ(findCheck(report, "temperature").status, CheckStatus::Warning);
    EXPECT_EQ(findCheck(report, "pressure").status, CheckStatus::Critical);
    EXPECT_EQ(findCheck(report, "cpu_usage").status, CheckStatus::Ok);
    EXPECT_EQ(findCheck(report, "memory_usage").status, CheckStatus::Ok);
}

TEST(HealthAlarms, AnAlarmWithoutAMeasurementStaysUnknown) {
    HealthInputs inputs = calmInputs();
    inputs.alarms = {AlarmInput{"temperature_celsius", "system", AlarmLevel::Critical}};

    EXPECT_EQ(findCheck(evaluateHealth(inputs, configWithChecks({"temperature"})), "temperature").status,
              CheckStatus::Unknown);
}

TEST(HealthAlarms, EachMountHasItsOwnAlarmAndTheWorstDecides) {
    HealthInputs inputs = calmInputs();
    DiskSnapshot home;
    home.mount_point = "/home";
    home.used_percent = 20.0;
    inputs.resources->disks.push_back(home); // "/" is 30% used
    inputs.alarms = {AlarmInput{"disk_used_percent", "/home", AlarmLevel::Critical},
                     AlarmInput{"disk_used_percent", "/", AlarmLevel::Ok}};

    const CheckResult check =
        findCheck(evaluateHealth(inputs, configWithChecks({"disk_usage"})), "disk_usage");

    EXPECT_EQ(check.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(check.value, 20.0);
    EXPECT_EQ(check.message, "disk /home 20.0% used (critical at 95%; Resources alarm critical)");
}

TEST(HealthAlarms, ConfiguredBandsSetTheLevelsOfUsageChecks) {
    HealthInputs inputs = calmInputs();
    Config config = configWithChecks({"cpu_usage"});
    ThresholdSpec spec;
    spec.warning = ThresholdBand{60.0, 55.0, 1, 1};
    spec.critical = ThresholdBand{70.0, 65.0, 1, 1};
    config.resource_monitoring.thresholds["cpu_percent"] = spec;

    inputs.resources->cpu_percent = 65.0;
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "cpu_usage").message, "cpu 65.0% (warning at 60%)");
    inputs.resources->cpu_percent = 70.0;
    EXPECT_EQ(findCheck(evaluateHealth(inputs, config), "cpu_usage").status, CheckStatus::Critical);
}

// --- Network endpoints ---

CheckResult networkCheckWith(NetworkHealthInput network) {
    HealthInputs inputs = calmInputs();
    inputs.network = std::move(network);
    return findCheck(evaluateHealth(inputs, configWithChecks({"network_connectivity"})),
                     "network_connectivity");
}

TEST(HealthNetwork, EveryEndpointReachableIsOk) {
    const CheckResult check =
        networkCheckWith({"eth0", "up", {{"192.0.2.1:53", true, ""}, {"[2001:db8::1]:443", true, ""}}});

    EXPECT_EQ(check.status, CheckStatus::Ok);
    EXPECT_DOUBLE_EQ(check.value, 1.0);
    EXPECT_DOUBLE_EQ(check.score, 1.0);
    EXPECT_EQ(check.message, "default route via eth0 is up; 2 of 2 endpoints reachable");
}

TEST(HealthNetwork, SomeEndpointsUnreachableWarnsAndNoneIsCritical) {
    const CheckResult some = networkCheckWith(
        {"eth0", "up", {{"192.0.2.1:53", true, ""}, {"192.0.2.2:443", false, "connection refused"}}});
    EXPECT_EQ(some.status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(some.value, 0.5);
    EXPECT_DOUBLE_EQ(some.score, 0.5);
    EXPECT_EQ(some.message,
              "default route via eth0 is up; 1 of 2 endpoints reachable; 192.0.2.2:443 unreachable "
              "(connection refused)");

    const CheckResult none = networkCheckWith({"eth0", "up", {{"192.0.2.2:443", false, ""}}});
    EXPECT_EQ(none.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(none.score, 0.0);
    EXPECT_EQ(none.message,
              "default route via eth0 is up; 0 of 1 endpoint reachable; 192.0.2.2:443 unreachable");
}

TEST(HealthNetwork, EndpointsAreJudgedWithoutADefaultRoute) {
    const CheckResult check = networkCheckWith({std::nullopt, std::nullopt, {{"10.0.0.1:22", true, ""}}});

    EXPECT_EQ(check.status, CheckStatus::Ok);
    EXPECT_EQ(check.message, "no default route; 1 of 1 endpoint reachable");
}

TEST(HealthNetwork, ADownInterfaceIsCriticalWhateverTheEndpoints) {
    const CheckResult check = networkCheckWith({"eth0", "down", {{"192.0.2.1:53", true, ""}}});

    EXPECT_EQ(check.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(check.score, 0.0);
    EXPECT_EQ(check.message, "default route interface eth0 is down");
}

// --- Service aspects ---

Config serviceConfig(const std::string& name) {
    Config config = configWithChecks({});
    config.health_checking.service_health_checks = {name};
    return config;
}

CheckResult serviceCheckWith(const ServiceHealthInput& service, const Config& config) {
    HealthInputs inputs = calmInputs();
    inputs.services = std::vector<ServiceHealthInput>{service};
    return findCheck(evaluateHealth(inputs, config), "service:" + service.name);
}

TEST(HealthServiceAspects, AFailingReadinessProbeWarns) {
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.probes = {{"readiness", "failure", "HTTP 503"}, {"liveness", "success", ""}};

    const CheckResult check = serviceCheckWith(web, serviceConfig("web"));

    EXPECT_EQ(check.status, CheckStatus::Warning);
    EXPECT_DOUBLE_EQ(check.score, 0.75);
    EXPECT_DOUBLE_EQ(check.value, 1.0);
    EXPECT_EQ(check.message, "service web is running; readiness probe failing: HTTP 503");
}

TEST(HealthServiceAspects, AFailingLivenessProbeIsCritical) {
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.probes = {{"readiness", "failure", ""}, {"liveness", "failure", "timed out after 1 s"}};

    const CheckResult check = serviceCheckWith(web, serviceConfig("web"));

    EXPECT_EQ(check.status, CheckStatus::Critical);
    EXPECT_DOUBLE_EQ(check.score, 0.5);
    // The aspect that decided comes first.
    EXPECT_EQ(check.message,
              "service web is running; liveness probe failing: timed out after 1 s; readiness probe failing");
}

TEST(HealthServiceAspects, UndecidedProbesAndProbesOfAStoppedServiceAreNotJudged) {
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.probes = {{"readiness", "unknown", ""}, {"liveness", "unknown", ""}};
    EXPECT_EQ(serviceCheckWith(web, serviceConfig("web")).status, CheckStatus::Ok);

    ServiceHealthInput stopped = serviceIn("web", "stopped", false);
    stopped.probes = {{"liveness", "failure", "stale"}};
    const CheckResult check = serviceCheckWith(stopped, serviceConfig("web"));
    EXPECT_EQ(check.status, CheckStatus::Warning);
    EXPECT_EQ(check.message, "service web is stopped");
}

TEST(HealthServiceAspects, WatchdogExpiriesWarnAndRepeatedOnesAreCritical) {
    Config config = serviceConfig("web");
    config.health_checking.restart_warning_count = 3;
    ServiceHealthInput web = serviceIn("web", "running", false);

    web.recent_failures = {"watchdog"};
    const CheckResult once = serviceCheckWith(web, config);
    EXPECT_EQ(once.status, CheckStatus::Warning);
    EXPECT_EQ(once.message, "service web is running; watchdog expired 1 time within 10 minutes");

    web.recent_failures = {"watchdog", "exit", "watchdog"};
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Warning);

    web.recent_failures = {"watchdog", "watchdog", "watchdog"};
    const CheckResult repeated = serviceCheckWith(web, config);
    EXPECT_EQ(repeated.status, CheckStatus::Critical);
    EXPECT_EQ(repeated.message,
              "service web is running; watchdog expired 3 times within 10 minutes; failed 3 "
              "times within 10 minutes (warning from 3)");
}

TEST(HealthServiceAspects, TheWindowIsNamedInUnitsAnOperatorWouldUse) {
    Config config = serviceConfig("web");
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.recent_failures = {"watchdog"};

    config.health_checking.restart_window_seconds = 45;
    EXPECT_EQ(serviceCheckWith(web, config).message,
              "service web is running; watchdog expired 1 time within 45 seconds");
    config.health_checking.restart_window_seconds = 3 * 3600;
    EXPECT_EQ(serviceCheckWith(web, config).message,
              "service web is running; watchdog expired 1 time within 3 hours");
    config.health_checking.restart_window_seconds = 2 * 86400;
    EXPECT_EQ(serviceCheckWith(web, config).message,
              "service web is running; watchdog expired 1 time within 2 days");
}

TEST(HealthServiceAspects, RestartsWarnAtTheCountAndAreCriticalAtTwiceIt) {
    Config config = serviceConfig("web");
    config.health_checking.restart_warning_count = 3;
    ServiceHealthInput web = serviceIn("web", "running", false);
    auto statusAfter = [&](std::size_t failures) {
        web.recent_failures.assign(failures, "exit");
        return serviceCheckWith(web, config).status;
    };

    EXPECT_EQ(statusAfter(0), CheckStatus::Ok);
    EXPECT_EQ(statusAfter(2), CheckStatus::Ok);
    EXPECT_EQ(statusAfter(3), CheckStatus::Warning);
    EXPECT_EQ(statusAfter(5), CheckStatus::Warning);
    EXPECT_EQ(statusAfter(6), CheckStatus::Critical);

    web.recent_failures.assign(4, "exit");
    const CheckResult check = serviceCheckWith(web, config);
    EXPECT_EQ(check.message, "service web is running; failed 4 times within 10 minutes (warning from 3)");
    EXPECT_DOUBLE_EQ(check.score, 0.75);
}

TEST(HealthServiceAspects, MemoryNearItsLimitWarnsAndAtItIsCritical) {
    Config config = serviceConfig("web");
    ServiceConfig own;
    own.name = "web";
    own.memory_limit_mb = 100;
    config.services = {own};
    ServiceHealthInput web = serviceIn("web", "running", false);
    constexpr std::uint64_t kMiB = 1024 * 1024;

    web.rss_bytes = 90 * kMiB - 1;
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Ok);
    web.rss_bytes = 90 * kMiB;
    const CheckResult near = serviceCheckWith(web, config);
    EXPECT_EQ(near.status, CheckStatus::Warning);
    EXPECT_EQ(near.message, "service web is running; memory 90.0 MiB is 90% of its limit of 100.0 MiB");
    web.rss_bytes = 100 * kMiB;
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Critical);
}

TEST(HealthServiceAspects, CpuIsMeasuredAgainstItsQuotaOrTheDefault) {
    Config config = serviceConfig("web");
    config.process_management.cpu_limit_percent = 200.0;
    ServiceHealthInput web = serviceIn("web", "running", false);

    web.cpu_percent = 179.9;
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Ok);
    web.cpu_percent = 180.0;
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Warning);

    ServiceConfig own;
    own.name = "web";
    own.cpu_limit_percent = 50.0;
    config.services = {own};
    web.cpu_percent = 45.0;
    const CheckResult near = serviceCheckWith(web, config);
    EXPECT_EQ(near.status, CheckStatus::Warning);
    EXPECT_EQ(near.message, "service web is running; cpu 45.0% is 90% of its limit of 50%");
    web.cpu_percent = 50.0;
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Critical);
    web.cpu_percent = std::numeric_limits<double>::quiet_NaN();
    EXPECT_EQ(serviceCheckWith(web, config).status, CheckStatus::Ok);
}

TEST(HealthServiceAspects, OnlyACriticalServiceMakesTheWholeCritical) {
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.probes = {{"liveness", "failure", ""}};
    HealthInputs inputs = calmInputs();
    inputs.services = std::vector<ServiceHealthInput>{web};
    Config config = configWithChecks({"cpu_usage", "memory_usage", "disk_usage"});
    config.health_checking.service_health_checks = {"web"};

    const HealthReport batch = evaluateHealth(inputs, config);
    EXPECT_EQ(findCheck(batch, "service:web").status, CheckStatus::Critical);
    EXPECT_EQ(batch.status, HealthStatus::Degraded);

    config.crash_recovery.critical_processes = {"web"};
    const HealthReport critical = evaluateHealth(inputs, config);
    EXPECT_DOUBLE_EQ(findCheck(critical, "service:web").weight, 2.0);
    EXPECT_EQ(critical.status, HealthStatus::Critical);
}

TEST(HealthScore, AspectsLowerTheScoreTheyContributeTo) {
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.probes = {{"readiness", "failure", ""}};
    ServiceHealthInput db = serviceIn("db", "running", true);
    db.recent_failures.assign(6, "oom");
    HealthInputs inputs = calmInputs();
    inputs.services = std::vector<ServiceHealthInput>{web, db};
    inputs.metrics = {{"temperature_celsius", 87.5}};
    Config config = configWithChecks({"cpu_usage", "temperature"});
    config.health_checking.service_health_checks = {"web"};

    const HealthReport report = evaluateHealth(inputs, config);

    // cpu 1 × 1, temperature 1 × 0.75, web 1 × 0.75, db 2 × 0.5.
    const double expected = (1.0 + 0.75 + 0.75 + 1.0) / (1.0 + 1.0 + 1.0 + 2.0);
    EXPECT_DOUBLE_EQ(report.score, expected);
    EXPECT_NEAR(sumOfContributions(report), report.score, 1e-12);
    EXPECT_DOUBLE_EQ(findCheck(report, "service:db").contribution, 1.0 / 5.0);
    EXPECT_DOUBLE_EQ(findCheck(report, "temperature").contribution, 0.75 / 5.0);
    EXPECT_EQ(report.status, HealthStatus::Critical);
}

// --- The debouncer ---

using DebounceClock = std::chrono::steady_clock;
const DebounceClock::time_point kStart{std::chrono::hours(1)};
constexpr auto kHold = std::chrono::seconds(5);

TEST(HealthDebouncer, TheFirstEvaluationPublishesAtOnce) {
    StatusDebouncer debouncer(kHold);
    EXPECT_EQ(debouncer.published(), HealthStatus::Unknown);

    EXPECT_EQ(debouncer.offer(HealthStatus::Ok, kStart), HealthStatus::Ok);
    EXPECT_EQ(debouncer.published(), HealthStatus::Ok);
    EXPECT_EQ(debouncer.confirmAt(), std::nullopt);
}

TEST(HealthDebouncer, AnInitialUnknownIsNoChangeAndTheFirstKnownStatusStillPublishesAtOnce) {
    StatusDebouncer debouncer(kHold);

    EXPECT_EQ(debouncer.offer(HealthStatus::Unknown, kStart), std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Degraded, kStart + std::chrono::seconds(1)),
              HealthStatus::Degraded);
}

TEST(HealthDebouncer, ASingleOddEvaluationIsNotPublished) {
    StatusDebouncer debouncer(kHold);
    debouncer.offer(HealthStatus::Ok, kStart);

    EXPECT_EQ(debouncer.offer(HealthStatus::Critical, kStart + std::chrono::seconds(10)), std::nullopt);
    EXPECT_EQ(debouncer.published(), HealthStatus::Ok);
    EXPECT_EQ(debouncer.confirmAt(), kStart + std::chrono::seconds(15));
}

TEST(HealthDebouncer, AStatusThatHeldForTheHoldIsPublished) {
    StatusDebouncer debouncer(kHold);
    debouncer.offer(HealthStatus::Ok, kStart);
    const auto seen = kStart + std::chrono::seconds(10);

    EXPECT_EQ(debouncer.offer(HealthStatus::Degraded, seen), std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Degraded, seen + kHold - std::chrono::milliseconds(1)),
              std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Degraded, seen + kHold), HealthStatus::Degraded);
    EXPECT_EQ(debouncer.published(), HealthStatus::Degraded);
    EXPECT_EQ(debouncer.confirmAt(), std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Degraded, seen + 2 * kHold), std::nullopt);
}

TEST(HealthDebouncer, ReturningToThePublishedStatusCancelsTheCandidate) {
    StatusDebouncer debouncer(kHold);
    debouncer.offer(HealthStatus::Ok, kStart);

    debouncer.offer(HealthStatus::Critical, kStart + std::chrono::seconds(1));
    EXPECT_EQ(debouncer.offer(HealthStatus::Ok, kStart + std::chrono::seconds(2)), std::nullopt);
    EXPECT_EQ(debouncer.confirmAt(), std::nullopt);
    // Critical again starts a new wait rather than continuing the old one.
    EXPECT_EQ(debouncer.offer(HealthStatus::Critical, kStart + std::chrono::seconds(7)), std::nullopt);
    EXPECT_EQ(debouncer.confirmAt(), kStart + std::chrono::seconds(12));
    EXPECT_EQ(debouncer.published(), HealthStatus::Ok);
}

TEST(HealthDebouncer, ADifferentStatusInBetweenRestartsTheWait) {
    StatusDebouncer debouncer(kHold);
    debouncer.offer(HealthStatus::Ok, kStart);

    debouncer.offer(HealthStatus::Degraded, kStart + std::chrono::seconds(1));
    EXPECT_EQ(debouncer.offer(HealthStatus::Critical, kStart + std::chrono::seconds(3)), std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Critical, kStart + std::chrono::seconds(7)), std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Critical, kStart + std::chrono::seconds(8)),
              HealthStatus::Critical);
}

TEST(HealthDebouncer, AGoingToUnknownIsDebouncedLikeAnyChange) {
    StatusDebouncer debouncer(kHold);
    debouncer.offer(HealthStatus::Ok, kStart);

    EXPECT_EQ(debouncer.offer(HealthStatus::Unknown, kStart + std::chrono::seconds(1)), std::nullopt);
    EXPECT_EQ(debouncer.offer(HealthStatus::Unknown, kStart + std::chrono::seconds(6)),
              HealthStatus::Unknown);
    EXPECT_EQ(debouncer.offer(HealthStatus::Ok, kStart + std::chrono::seconds(7)), std::nullopt);
}

TEST(HealthDebouncer, NoHoldPublishesEveryChange) {
    StatusDebouncer debouncer(DebounceClock::duration::zero());
    debouncer.offer(HealthStatus::Ok, kStart);

    EXPECT_EQ(debouncer.offer(HealthStatus::Critical, kStart), HealthStatus::Critical);
}

// --- Recommendations ---

constexpr double kMiBytes = 1024.0 * 1024.0;
constexpr double kGiBytes = 1024.0 * kMiBytes;

TrendReport trendOf(std::string metric, std::string scope, double value, double slopePerHour, double rSquared,
                    std::optional<double> limit = std::nullopt,
                    std::optional<std::chrono::seconds> until = std::nullopt) {
    return TrendReport{std::move(metric), std::move(scope), value, slopePerHour, rSquared, limit, until};
}

std::vector<std::string> recommendationTexts(const HealthReport& report) {
    std::vector<std::string> texts;
    for (const Recommendation& recommendation : report.recommendations)
        texts.push_back(recommendation.check + ": " + recommendation.text);
    return texts;
}

TEST(HealthRecommendations, NoneWhenAllIsCalm) {
    EXPECT_TRUE(evaluateHealth(calmInputs(), Config{}).recommendations.empty());
}

TEST(HealthRecommendations, MemoryNamesTheLargestConsumersAndTheirGrowth) {
    HealthInputs inputs = calmInputs();
    inputs.resources->memory.total_bytes = 16ULL << 30;
    inputs.resources->memory.available_bytes = (16ULL << 30) / 25; // 4%
    inputs.resources->memory.used_percent = 96.0;
    ServiceHealthInput db = serviceIn("db", "running", false);
    db.rss_bytes = 100 * 1024 * 1024;
    ServiceHealthInput idle = serviceIn("idle", "running", false);
    inputs.services = std::vector<ServiceHealthInput>{db, idle};
    inputs.metrics = {{"service_pss_bytes@tau-session", 1.2 * kGiBytes},
                      {"service_memory_bytes@tau-session", 1.5 * kGiBytes},
                      {"service_memory_bytes@web", 300.0 * kMiBytes},
                      {"service_pss_bytes@small", 2048.0}};
    inputs.trends = {trendOf("service_memory_bytes", "tau-session", 1.5 * kGiBytes, 40.0 * kMiBytes, 0.9),
                     // Too noisy to call it growth.
                     trendOf("service_memory_bytes", "web", 300.0 * kMiBytes, 5.0 * kMiBytes, 0.3)};

    const HealthReport report = evaluateHealth(inputs, configWithChecks({"memory_usage"}));

    EXPECT_THAT(
        recommendationTexts(report),
        ElementsAre("memory_usage: memory available 4.0%: largest consumers tau-session (PSS 1.2 GiB, "
                    "growing 40.0 MiB/h), web (memory 300.0 MiB), db (RSS 100.0 MiB)",
                    "service:tau-session: service tau-session may be leaking memory: 1.5 GiB, growing "
                    "40.0 MiB/h steadily (r² 0.90)"));
}

TEST(HealthRecommendations, MemoryWithoutKnownConsumersSaysSo) {
    HealthInputs inputs = calmInputs();
    inputs.resources->memory.used_percent = 91.5;

    const HealthReport report = evaluateHealth(inputs, configWithChecks({"memory_usage"}));

    EXPECT_THAT(
        recommendationTexts(report),
        ElementsAre("memory_usage: memory available 8.5%: no supervised service is known to use it; look "
                    "at other processes"));
}

TEST(HealthRecommendations, CpuNamesTheTopConsumers) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_percent = 95.0;
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.cpu_percent = 20.0;
    inputs.services = std::vector<ServiceHealthInput>{web};
    inputs.metrics = {{"service_cpu_percent@batch", 150.0},
                      {"service_cpu_percent@cache", 20.0},
                      {"service_cpu_percent@tiny", 1.0}};

    const HealthReport report = evaluateHealth(inputs, configWithChecks({"cpu_usage"}));

    EXPECT_THAT(recommendationTexts(report),
                ElementsAre("cpu_usage: cpu 95.0%: top consumers batch (150.0% of a core), cache (20.0% of a "
                            "core), web (20.0% of a core)"));
}

TEST(HealthRecommendations, DisksFillingWithinADayAreForecastSoonestFirst) {
    HealthInputs inputs = calmInputs();
    inputs.trends = {
        trendOf("disk_used_percent", "/var", 70.0, 10.0, 0.95, 100.0, std::chrono::hours(3)),
        trendOf("disk_used_percent", "/home", 50.0, 1.0, 0.95, 100.0, std::chrono::hours(30)), // beyond a day
        trendOf("disk_inodes_used_percent", "/srv", 90.0, 20.0, 0.9, 100.0, std::chrono::minutes(30)),
        trendOf("disk_used_percent", "/tmp", 99.9, 5.0, 0.9, 100.0, std::chrono::seconds(20)),
        trendOf("disk_used_percent", "/opt", 40.0, 0.0, 0.1, 100.0, std::nullopt),
    };

    const HealthReport report = evaluateHealth(inputs, configWithChecks({"disk_usage"}));

    EXPECT_THAT(recommendationTexts(report),
                ElementsAre("disk_usage: /tmp will be full within a minute at the current rate",
                            "disk_usage: /srv will run out of inodes in about 30 minutes at the current rate",
                            "disk_usage: /var will be full in about 3 hours at the current rate"));
}

TEST(HealthRecommendations, ForecastsNeedTheirCheck) {
    HealthInputs inputs = calmInputs();
    inputs.trends = {trendOf("disk_used_percent", "/var", 70.0, 10.0, 0.95, 100.0, std::chrono::hours(3))};

    EXPECT_TRUE(evaluateHealth(inputs, configWithChecks({"cpu_usage"})).recommendations.empty());
}

TEST(HealthRecommendations, SteadyFastGrowthIsASuspectedLeak) {
    HealthInputs inputs = calmInputs();
    inputs.trends = {
        trendOf("service_memory_bytes", "web", 350.0 * kMiBytes, 12.0 * kMiBytes, 0.95),
        trendOf("service_memory_bytes", "api", 900.0 * kMiBytes, 20.0 * kMiBytes, 0.85, 1024.0 * kMiBytes,
                std::chrono::hours(6)),
        trendOf("service_memory_bytes", "noisy", 350.0 * kMiBytes, 30.0 * kMiBytes, 0.7),
        trendOf("service_memory_bytes", "slow", 350.0 * kMiBytes, 5.0 * kMiBytes, 0.99),
        trendOf("service_memory_bytes", "capped", 500.0 * kMiBytes, 2.0 * kMiBytes, 0.99, 512.0 * kMiBytes,
                std::chrono::hours(6)),
    };

    const HealthReport report = evaluateHealth(inputs, configWithChecks({}));

    EXPECT_THAT(
        recommendationTexts(report),
        ElementsAre("service:api: service api may be leaking memory: 900.0 MiB, growing 20.0 MiB/h "
                    "steadily (r² 0.85), reaching its limit of 1.0 GiB in about 6 hours",
                    "service:capped: service capped will reach its memory limit of 512.0 MiB in about 6 "
                    "hours at the current rate",
                    "service:web: service web may be leaking memory: 350.0 MiB, growing 12.0 MiB/h "
                    "steadily (r² 0.95)"));
}

TEST(HealthRecommendations, AServiceRestartingOftenIsNamedWithItsFailureClasses) {
    HealthInputs inputs = calmInputs();
    ServiceHealthInput web = serviceIn("web", "running", false);
    web.recent_failures = {"exit", "watchdog", "exit", "oom", "exit"};
    ServiceHealthInput calm = serviceIn("calm", "running", false);
    calm.recent_failures = {"exit"};
    inputs.services = std::vector<ServiceHealthInput>{web, calm};
    Config config = configWithChecks({});
    config.health_checking.service_health_checks = {"web", "calm"};
    config.health_checking.restart_window_seconds = 3600;

    const HealthReport report = evaluateHealth(inputs, config);

    EXPECT_THAT(recommendationTexts(report),
                ElementsAre("service:web: service web failed 5 times within 60 minutes (3 exit, 1 oom, 1 "
                            "watchdog): its log tells why"));
}

TEST(HealthRecommendations, TemperatureAndPressureNameWhatIsHot) {
    HealthInputs inputs = calmInputs();
    ServiceHealthInput batch = serviceIn("batch", "running", false);
    batch.cpu_percent = 180.0;
    inputs.services = std::vector<ServiceHealthInput>{batch};
    inputs.metrics = {{"temperature_celsius@coretemp", 91.0},
                      {"pressure_cpu_some_avg10", 60.0},
                      {"pressure_io_full_avg10", 15.0},
                      {"pressure_memory_some_avg10", 2.0}};

    const HealthReport report = evaluateHealth(inputs, configWithChecks({"temperature", "pressure"}));

    EXPECT_THAT(
        recommendationTexts(report),
        ElementsAre("temperature: sensor coretemp at 91.0 °C: check fans, airflow and the load",
                    "pressure: cpu pressure (some) 60.0% of the last 10 s stalled: top consumers batch "
                    "(180.0% of a core)",
                    "pressure: io pressure (full) 15.0% of the last 10 s stalled: look for processes "
                    "waiting on the disks"));
}

TEST(HealthRecommendations, TheMostUrgentComeFirst) {
    HealthInputs inputs = calmInputs();
    inputs.resources->cpu_percent = 85.0;         // warning
    inputs.resources->memory.used_percent = 95.0; // critical
    inputs.trends = {trendOf("service_memory_bytes", "web", 350.0 * kMiBytes, 12.0 * kMiBytes, 0.95)};

    const HealthReport report = evaluateHealth(inputs, configWithChecks({"cpu_usage", "memory_usage"}));

    ASSERT_EQ(report.recommendations.size(), 3u);
    EXPECT_EQ(report.recommendations[0].check, "memory_usage");
    EXPECT_EQ(report.recommendations[1].check, "cpu_usage");
    EXPECT_EQ(report.recommendations[2].check, "service:web");
}

} // namespace
} // namespace tau
