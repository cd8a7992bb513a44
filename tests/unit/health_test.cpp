#include "tau/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits>
#include <numeric>
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

    EXPECT_THAT(checkNames(report), ElementsAre("cpu_usage", "memory_usage", "disk_usage", "swap_usage",
                                                "load_average", "temperature", "pressure", "network_connectivity"));
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
    const HealthReport report = evaluateHealth(calmInputs(), configWithChecks({"temperature", "cpu_usage"}));

    EXPECT_EQ(findCheck(report, "temperature").status, CheckStatus::Unknown);
    EXPECT_DOUBLE_EQ(report.score, 1.0);
    EXPECT_EQ(report.status, HealthStatus::Ok);
}

} // namespace
} // namespace tau
