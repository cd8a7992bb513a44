#include "tau/config.h"
#include "temp_dir.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;

// Errors name this file; nothing is read from it, and its directory is what `${config_dir}` becomes.
const fs::path kSourcePath = "/etc/tau-monitor/tau-monitor.toml";

ConfigError parseExpectingError(std::string_view text, const fs::path& sourcePath = kSourcePath) {
    try {
        parseConfig(text, sourcePath);
    } catch (const ConfigError& error) {
        return error;
    }
    ADD_FAILURE() << "expected a ConfigError for:\n" << text;
    return ConfigError("", 0, 0, "", "no error");
}

ConfigError loadExpectingError(const fs::path& path) {
    try {
        loadConfig(path);
    } catch (const ConfigError& error) {
        return error;
    }
    ADD_FAILURE() << "expected a ConfigError for " << path;
    return ConfigError("", 0, 0, "", "no error");
}

// Writes `contents` to `directory`/`name` with the given permissions.
fs::path writeFileIn(const test::TempDir& directory, const std::string& name, std::string_view contents,
                     fs::perms permissions) {
    fs::path file = directory.path() / name;
    std::ofstream(file) << contents;
    fs::permissions(file, permissions);
    return file;
}

unsigned configuredCpus() {
    long count = ::sysconf(_SC_NPROCESSORS_CONF);
    return count > 0 ? static_cast<unsigned>(count) : 1U;
}

// ---------------------------------------------------------------------------------------------------------
// Names and small helpers

TEST(ConfigNames, PrioritiesRoundTrip) {
    for (Priority priority :
         {Priority::Critical, Priority::High, Priority::Normal, Priority::Low, Priority::Background}) {
        EXPECT_EQ(priorityFromString(toString(priority)), priority);
    }
    EXPECT_EQ(toString(Priority::Critical), "critical");
    EXPECT_EQ(toString(Priority::High), "high");
    EXPECT_EQ(toString(Priority::Normal), "normal");
    EXPECT_EQ(toString(Priority::Low), "low");
    EXPECT_EQ(toString(Priority::Background), "background");
    EXPECT_EQ(priorityFromString("urgent"), std::nullopt);
    EXPECT_EQ(priorityFromString("High"), std::nullopt);
    EXPECT_EQ(priorityFromString(""), std::nullopt);
}

TEST(ConfigNames, RecoveryStrategiesRoundTrip) {
    EXPECT_EQ(toString(RecoveryStrategy::None), "none");
    EXPECT_EQ(toString(RecoveryStrategy::Restart), "restart");
    EXPECT_EQ(toString(RecoveryStrategy::RestartWithDelay), "restart_with_delay");
    for (RecoveryStrategy strategy :
         {RecoveryStrategy::None, RecoveryStrategy::Restart, RecoveryStrategy::RestartWithDelay}) {
        EXPECT_EQ(recoveryStrategyFromString(toString(strategy)), strategy);
    }
    EXPECT_EQ(recoveryStrategyFromString("restart-with-delay"), std::nullopt);
    EXPECT_EQ(recoveryStrategyFromString(""), std::nullopt);
}

TEST(ConfigErrorMessage, NamesFileLineColumnKeyAndProblem) {
    ConfigError error("/etc/tau.toml", 3, 14, "logging.log_level", "unknown log level");
    EXPECT_STREQ(error.what(), "/etc/tau.toml:3:14: logging.log_level: unknown log level");
    EXPECT_EQ(error.file(), "/etc/tau.toml");
    EXPECT_EQ(error.line(), 3U);
    EXPECT_EQ(error.column(), 14U);
    EXPECT_EQ(error.key(), "logging.log_level");
    EXPECT_EQ(error.problem(), "unknown log level");
}

TEST(ConfigErrorMessage, LeavesOutMissingPositionAndKey) {
    EXPECT_STREQ(ConfigError("/etc/tau.toml", 0, 0, "", "cannot read: Permission denied").what(),
                 "/etc/tau.toml: cannot read: Permission denied");
    EXPECT_STREQ(ConfigError("/etc/tau.toml", 0, 0, "service[0].name", "bad").what(),
                 "/etc/tau.toml: service[0].name: bad");
    EXPECT_STREQ(ConfigError("/etc/tau.toml", 7, 0, "security", "bad").what(),
                 "/etc/tau.toml:7: security: bad");
}

TEST(ConfigLookup, FindsServicesByName) {
    Config config;
    config.services.resize(2);
    config.services[0].name = "alpha";
    config.services[1].name = "beta";
    ASSERT_NE(config.findService("beta"), nullptr);
    EXPECT_EQ(config.findService("beta"), &config.services[1]);
    EXPECT_EQ(config.findService("gamma"), nullptr);
    EXPECT_EQ(config.findService(""), nullptr);
}

TEST(ConfigLookup, CriticalByListOrByOwnFlag) {
    Config config;
    config.services.resize(3);
    config.services[0].name = "listed";
    config.services[1].name = "flagged";
    config.services[1].critical = true;
    config.services[2].name = "ordinary";
    config.crash_recovery.critical_processes = {"listed"};
    EXPECT_TRUE(config.isCritical("listed"));
    EXPECT_TRUE(config.isCritical("flagged"));
    EXPECT_FALSE(config.isCritical("ordinary"));
    EXPECT_FALSE(config.isCritical("unknown"));
}

// ---------------------------------------------------------------------------------------------------------
// Valid documents

void expectDefaults(const Config& config) {
    const Config defaults;
    const auto& rm = config.resource_monitoring;
    EXPECT_EQ(rm.enabled, defaults.resource_monitoring.enabled);
    EXPECT_EQ(rm.interval_seconds, 30U);
    EXPECT_DOUBLE_EQ(rm.cpu_threshold_percent, 80.0);
    EXPECT_DOUBLE_EQ(rm.memory_threshold_percent, 85.0);
    EXPECT_DOUBLE_EQ(rm.disk_threshold_percent, 90.0);
    EXPECT_TRUE(rm.enabled);
    EXPECT_TRUE(rm.network_monitoring);
    EXPECT_TRUE(rm.temperature_monitoring);
    EXPECT_TRUE(rm.alert_on_threshold);
    EXPECT_TRUE(rm.log_resource_usage);

    const auto& pm = config.process_management;
    EXPECT_TRUE(pm.enabled);
    EXPECT_EQ(pm.max_concurrent_processes, 100U);
    EXPECT_EQ(pm.process_priority_levels, 5U);
    EXPECT_EQ(pm.memory_limit_mb, 2048U);
    EXPECT_DOUBLE_EQ(pm.cpu_limit_percent, 50.0);
    EXPECT_TRUE(pm.auto_cleanup_zombies);
    EXPECT_TRUE(pm.process_isolation);
    EXPECT_TRUE(pm.resource_pooling);

    const auto& cr = config.crash_recovery;
    EXPECT_TRUE(cr.enabled);
    EXPECT_TRUE(cr.auto_recovery);
    EXPECT_EQ(cr.max_recovery_attempts, 3U);
    EXPECT_EQ(cr.recovery_timeout_seconds, 60U);
    EXPECT_TRUE(cr.save_session_state);
    EXPECT_EQ(cr.session_state_path, fs::path("/var/lib/tau-monitor/state"));
    EXPECT_TRUE(cr.critical_processes.empty());

    const auto& hc = config.health_checking;
    EXPECT_TRUE(hc.enabled);
    EXPECT_EQ(hc.check_interval_seconds, 60U);
    EXPECT_EQ(hc.system_health_checks,
              (std::vector<std::string>{"cpu_usage", "memory_usage", "disk_usage", "network_connectivity"}));
    EXPECT_TRUE(hc.service_health_checks.empty());
    EXPECT_TRUE(hc.alert_on_failure);
    EXPECT_TRUE(hc.auto_restart_failed_services);
    EXPECT_DOUBLE_EQ(hc.health_score_threshold, 0.7);

    const auto& log = config.logging;
    EXPECT_EQ(log.log_level, "info");
    EXPECT_EQ(log.log_file_path, fs::path("/var/log/tau-monitor/tau-monitor.log"));
    EXPECT_EQ(log.max_log_size_mb, 100U);
    EXPECT_TRUE(log.log_rotation);
    EXPECT_TRUE(log.structured_logging);
    EXPECT_TRUE(log.log_compression);
    EXPECT_TRUE(log.audit_logging);
    EXPECT_TRUE(log.performance_logging);

    EXPECT_TRUE(config.security.admin_groups.empty());
    EXPECT_TRUE(config.services.empty());
}

TEST(ParseConfig, EmptyDocumentKeepsEveryDefault) {
    Config config = parseConfig("", kSourcePath);
    expectDefaults(config);
    EXPECT_EQ(config.source, kSourcePath);
}

TEST(ParseConfig, EmptySectionsKeepEveryDefault) {
    Config config = parseConfig("[resource_monitoring]\n[process_management]\n[crash_recovery]\n"
                                "[health_checking]\n[logging]\n[security]\n",
                                kSourcePath);
    expectDefaults(config);
}

TEST(ParseConfig, KeysLeftOutOfASectionKeepTheirDefaults) {
    Config config = parseConfig("[resource_monitoring]\ninterval_seconds = 7\n", kSourcePath);
    EXPECT_EQ(config.resource_monitoring.interval_seconds, 7U);
    EXPECT_DOUBLE_EQ(config.resource_monitoring.cpu_threshold_percent, 80.0);
    EXPECT_TRUE(config.resource_monitoring.enabled);
}

constexpr std::string_view kFullConfig = R"(
[resource_monitoring]
enabled = false
interval_seconds = 11
cpu_threshold_percent = 71.5
memory_threshold_percent = 72
disk_threshold_percent = 100
network_monitoring = false
temperature_monitoring = false
alert_on_threshold = false
log_resource_usage = false

[process_management]
enabled = false
max_concurrent_processes = 12
process_priority_levels = 3
memory_limit_mb = 4096
cpu_limit_percent = 250.0
auto_cleanup_zombies = false
process_isolation = false
resource_pooling = false

[crash_recovery]
enabled = false
auto_recovery = false
max_recovery_attempts = 0
recovery_timeout_seconds = 13
save_session_state = false
session_state_path = "/run/tau/state"
critical_processes = ["second"]

[health_checking]
enabled = false
check_interval_seconds = 14
system_health_checks = ["swap_usage", "load_average"]
service_health_checks = ["first", "second"]
alert_on_failure = false
auto_restart_failed_services = false
health_score_threshold = 0.25

[logging]
log_level = "warning"
log_file_path = "/tmp/tau.log"
max_log_size_mb = 15
log_rotation = false
structured_logging = false
log_compression = false
audit_logging = false
performance_logging = false

[security]
admin_groups = ["wheel", "tau-admin"]

[[service]]
name = "first"
exec = ["/bin/sh", "-c", "echo hello"]
environment = { GREETING = "hello", EMPTY = "" }
working_directory = "/tmp"
user = "nobody"
group = "nogroup"
critical = true
priority = "high"
cpu_affinity = [0]
memory_limit_mb = 256
cpu_limit_percent = 150.5
stop_timeout_seconds = 2.5
recovery = { strategy = "restart_with_delay", delay_seconds = 0.25, max_attempts = 7 }

[[service]]
name = "second"
exec = ["/bin/true"]
)";

TEST(ParseConfig, FullConfigRoundTripsEveryField) {
    Config config = parseConfig(kFullConfig, kSourcePath);
    EXPECT_EQ(config.source, kSourcePath);

    const auto& rm = config.resource_monitoring;
    EXPECT_FALSE(rm.enabled);
    EXPECT_EQ(rm.interval_seconds, 11U);
    EXPECT_DOUBLE_EQ(rm.cpu_threshold_percent, 71.5);
    EXPECT_DOUBLE_EQ(rm.memory_threshold_percent, 72.0);
    EXPECT_DOUBLE_EQ(rm.disk_threshold_percent, 100.0);
    EXPECT_FALSE(rm.network_monitoring);
    EXPECT_FALSE(rm.temperature_monitoring);
    EXPECT_FALSE(rm.alert_on_threshold);
    EXPECT_FALSE(rm.log_resource_usage);

    const auto& pm = config.process_management;
    EXPECT_FALSE(pm.enabled);
    EXPECT_EQ(pm.max_concurrent_processes, 12U);
    EXPECT_EQ(pm.process_priority_levels, 3U);
    EXPECT_EQ(pm.memory_limit_mb, 4096U);
    EXPECT_DOUBLE_EQ(pm.cpu_limit_percent, 250.0);
    EXPECT_FALSE(pm.auto_cleanup_zombies);
    EXPECT_FALSE(pm.process_isolation);
    EXPECT_FALSE(pm.resource_pooling);

    const auto& cr = config.crash_recovery;
    EXPECT_FALSE(cr.enabled);
    EXPECT_FALSE(cr.auto_recovery);
    EXPECT_EQ(cr.max_recovery_attempts, 0U);
    EXPECT_EQ(cr.recovery_timeout_seconds, 13U);
    EXPECT_FALSE(cr.save_session_state);
    EXPECT_EQ(cr.session_state_path, fs::path("/run/tau/state"));
    EXPECT_EQ(cr.critical_processes, std::vector<std::string>{"second"});

    const auto& hc = config.health_checking;
    EXPECT_FALSE(hc.enabled);
    EXPECT_EQ(hc.check_interval_seconds, 14U);
    EXPECT_EQ(hc.system_health_checks, (std::vector<std::string>{"swap_usage", "load_average"}));
    EXPECT_EQ(hc.service_health_checks, (std::vector<std::string>{"first", "second"}));
    EXPECT_FALSE(hc.alert_on_failure);
    EXPECT_FALSE(hc.auto_restart_failed_services);
    EXPECT_DOUBLE_EQ(hc.health_score_threshold, 0.25);

    const auto& log = config.logging;
    EXPECT_EQ(log.log_level, "warning");
    EXPECT_EQ(log.log_file_path, fs::path("/tmp/tau.log"));
    EXPECT_EQ(log.max_log_size_mb, 15U);
    EXPECT_FALSE(log.log_rotation);
    EXPECT_FALSE(log.structured_logging);
    EXPECT_FALSE(log.log_compression);
    EXPECT_FALSE(log.audit_logging);
    EXPECT_FALSE(log.performance_logging);

    EXPECT_EQ(config.security.admin_groups, (std::vector<std::string>{"wheel", "tau-admin"}));

    ASSERT_EQ(config.services.size(), 2U);
    const ServiceConfig& first = config.services[0];
    EXPECT_EQ(first.name, "first");
    EXPECT_EQ(first.exec, (std::vector<std::string>{"/bin/sh", "-c", "echo hello"}));
    EXPECT_EQ(first.environment, (std::map<std::string, std::string>{{"GREETING", "hello"}, {"EMPTY", ""}}));
    EXPECT_EQ(first.working_directory, fs::path("/tmp"));
    EXPECT_EQ(first.user, "nobody");
    EXPECT_EQ(first.group, "nogroup");
    EXPECT_TRUE(first.critical);
    EXPECT_EQ(first.priority, Priority::High);
    EXPECT_EQ(first.cpu_affinity, std::vector<unsigned>{0});
    EXPECT_EQ(first.memory_limit_mb, std::optional<std::uint64_t>(256));
    ASSERT_TRUE(first.cpu_limit_percent.has_value());
    EXPECT_DOUBLE_EQ(*first.cpu_limit_percent, 150.5);
    EXPECT_DOUBLE_EQ(first.stop_timeout_seconds, 2.5);
    EXPECT_EQ(first.recovery.strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_DOUBLE_EQ(first.recovery.delay_seconds, 0.25);
    EXPECT_EQ(first.recovery.max_attempts, std::optional<unsigned>(7));

    // The second service sets only what is required, so it shows the per-service defaults.
    const ServiceConfig& second = config.services[1];
    EXPECT_EQ(second.name, "second");
    EXPECT_EQ(second.exec, std::vector<std::string>{"/bin/true"});
    EXPECT_TRUE(second.environment.empty());
    EXPECT_TRUE(second.working_directory.empty());
    EXPECT_TRUE(second.user.empty());
    EXPECT_TRUE(second.group.empty());
    EXPECT_FALSE(second.critical);
    EXPECT_EQ(second.priority, Priority::Normal);
    EXPECT_TRUE(second.cpu_affinity.empty());
    EXPECT_EQ(second.memory_limit_mb, std::nullopt);
    EXPECT_EQ(second.cpu_limit_percent, std::nullopt);
    EXPECT_DOUBLE_EQ(second.stop_timeout_seconds, 10.0);
    EXPECT_EQ(second.recovery.strategy, RecoveryStrategy::Restart);
    EXPECT_DOUBLE_EQ(second.recovery.delay_seconds, 1.0);
    EXPECT_EQ(second.recovery.max_attempts, std::nullopt);

    EXPECT_TRUE(config.isCritical("first"));
    EXPECT_TRUE(config.isCritical("second"));
}

TEST(ParseConfig, RecoveryMayBeASubTable) {
    Config config = parseConfig(R"(
[[service]]
name = "worker"
exec = ["/bin/true"]
[service.recovery]
strategy = "none"
max_attempts = 0
)",
                                kSourcePath);
    ASSERT_EQ(config.services.size(), 1U);
    EXPECT_EQ(config.services[0].recovery.strategy, RecoveryStrategy::None);
    EXPECT_EQ(config.services[0].recovery.max_attempts, std::optional<unsigned>(0));
    EXPECT_DOUBLE_EQ(config.services[0].recovery.delay_seconds, 1.0);
}

TEST(ParseConfig, ServicesMayBeReferencedBeforeTheyAreDeclared) {
    Config config = parseConfig(R"(
[crash_recovery]
critical_processes = ["late"]
[health_checking]
service_health_checks = ["late"]
[[service]]
name = "late"
exec = ["/bin/true"]
)",
                                kSourcePath);
    EXPECT_TRUE(config.isCritical("late"));
}

TEST(ParseConfig, AcceptsBoundaryValues) {
    std::string text = R"(
[resource_monitoring]
interval_seconds = 1
cpu_threshold_percent = 100
memory_threshold_percent = 0.001
[process_management]
max_concurrent_processes = 1
process_priority_levels = 1
memory_limit_mb = 1
cpu_limit_percent = 0.5
[crash_recovery]
max_recovery_attempts = 4294967295
recovery_timeout_seconds = 1
[health_checking]
check_interval_seconds = 1
health_score_threshold = 0
system_health_checks = []
[logging]
max_log_size_mb = 1
[[service]]
name = ")" + std::string(64, 'n') +
                       R"("
exec = ["/bin/true"]
cpu_affinity = [)" + std::to_string(configuredCpus() - 1) +
                       R"(]
stop_timeout_seconds = 0.001
recovery = { delay_seconds = 0 }
)";
    Config config = parseConfig(text, kSourcePath);
    EXPECT_EQ(config.crash_recovery.max_recovery_attempts, 4294967295U);
    EXPECT_DOUBLE_EQ(config.health_checking.health_score_threshold, 0.0);
    EXPECT_TRUE(config.health_checking.system_health_checks.empty());
    ASSERT_EQ(config.services.size(), 1U);
    EXPECT_EQ(config.services[0].name.size(), 64U);
    EXPECT_EQ(config.services[0].cpu_affinity, std::vector<unsigned>{configuredCpus() - 1});
    EXPECT_DOUBLE_EQ(config.services[0].recovery.delay_seconds, 0.0);
}

TEST(ParseConfig, AcceptsEveryLogLevelAndSystemHealthCheck) {
    for (const char* level : {"trace", "debug", "info", "warning", "error", "critical"}) {
        std::string text = std::string("[logging]\nlog_level = \"") + level + "\"\n";
        EXPECT_EQ(parseConfig(text, kSourcePath).logging.log_level, level);
    }
    Config config =
        parseConfig("[health_checking]\nsystem_health_checks = [\"cpu_usage\", \"memory_usage\", "
                    "\"disk_usage\", \"swap_usage\", \"load_average\", \"network_connectivity\"]\n",
                    kSourcePath);
    EXPECT_EQ(config.health_checking.system_health_checks.size(), 6U);
}

TEST(ParseConfig, ExpandsConfigDirInExecWorkingDirectoryAndPaths) {
    test::TempDir directory;
    fs::path tool = writeFileIn(directory, "tool", "#!/bin/sh\n", fs::perms::owner_all);
    std::string text = R"(
[crash_recovery]
session_state_path = "${config_dir}/state"
[logging]
log_file_path = "${config_dir}/log/${config_dir}.log"
[[service]]
name = "tool"
exec = ["${config_dir}/tool", "--config=${config_dir}/tool.conf", "${unrelated}"]
working_directory = "${config_dir}"
user = "${config_dir}"
)";
    Config config = parseConfig(text, directory.path() / "tau.toml");
    const std::string dir = directory.path().string();
    EXPECT_EQ(config.crash_recovery.session_state_path, fs::path(dir + "/state"));
    EXPECT_EQ(config.logging.log_file_path, fs::path(dir + "/log/" + dir + ".log"));
    ASSERT_EQ(config.services.size(), 1U);
    EXPECT_EQ(config.services[0].exec,
              (std::vector<std::string>{tool.string(), "--config=" + dir + "/tool.conf", "${unrelated}"}));
    EXPECT_EQ(config.services[0].working_directory, directory.path());
    // Only the documented keys expand.
    EXPECT_EQ(config.services[0].user, "${config_dir}");
}

TEST(ParseConfig, ConfigDirOfARelativeSourceIsAbsolute) {
    Config config = parseConfig("[logging]\nlog_file_path = \"${config_dir}/tau.log\"\n", "conf/./tau.toml");
    fs::path expected = (fs::current_path() / "conf" / "tau.log").lexically_normal();
    EXPECT_EQ(config.logging.log_file_path, expected);
    EXPECT_TRUE(config.logging.log_file_path.is_absolute());
    EXPECT_EQ(config.source, fs::path("conf/./tau.toml"));
}

// ---------------------------------------------------------------------------------------------------------
// Invalid documents: each case names where the problem is and what the message must say about it.

struct ErrorCase {
    const char* name;
    std::string text;
    unsigned line;
    unsigned column;
    std::string key;
    std::string problem; // a part of the problem text
};

void PrintTo(const ErrorCase& errorCase, std::ostream* out) {
    *out << errorCase.name;
}

class InvalidConfig : public testing::TestWithParam<ErrorCase> {};

TEST_P(InvalidConfig, IsReportedWithPositionAndKey) {
    const ErrorCase& expected = GetParam();
    ConfigError error = parseExpectingError(expected.text);
    EXPECT_EQ(error.file(), kSourcePath.string());
    EXPECT_EQ(error.line(), expected.line) << error.what();
    EXPECT_EQ(error.column(), expected.column) << error.what();
    EXPECT_EQ(error.key(), expected.key) << error.what();
    EXPECT_NE(error.problem().find(expected.problem), std::string::npos)
        << "problem \"" << error.problem() << "\" lacks \"" << expected.problem << "\"";
    std::string prefix = kSourcePath.string() + ':' + std::to_string(expected.line) + ':' +
                         std::to_string(expected.column) + ": ";
    EXPECT_EQ(std::string(error.what()).rfind(prefix, 0), 0U) << error.what();
}

std::string service(std::string_view body) {
    return "[[service]]\nname = \"svc\"\nexec = [\"/bin/true\"]\n" + std::string(body);
}

// Positions below count from 1; a value's column is where the value starts, after `key = `.
const ErrorCase kErrorCases[] = {
    // Syntax
    {"SyntaxError", "[logging]\nlog_level = \"info\n", 2, 18, "", "string"},
    {"DuplicateKey", "[logging]\nlog_level = \"info\"\nlog_level = \"debug\"\n", 3, 13, "", "redefine"},
    {"IntegerBeyond64Bits", "[logging]\nmax_log_size_mb = 99999999999999999999\n", 2, 39, "", "64 bits"},

    // Unknown sections and keys point at the key
    {"UnknownSection", "[resource_monitor]\nenabled = true\n", 1, 2, "resource_monitor", "unknown key"},
    {"UnknownTopLevelKey", "verbose = true\n", 1, 1, "verbose", "unknown key"},
    {"UnknownSectionKey", "[resource_monitoring]\nenabled = true\nintervall = 3\n", 3, 1,
     "resource_monitoring.intervall", "unknown key"},
    {"UnknownSecurityKey", "[security]\nadmins = []\n", 2, 1, "security.admins", "unknown key"},
    {"UnknownServiceKey", service("restart = \"always\"\n"), 4, 1, "service[0].restart", "unknown key"},
    {"UnknownRecoveryKey", service("recovery = { strategy = \"none\", tries = 2 }\n"), 4, 33,
     "service[0].recovery.tries", "unknown key"},

    // Wrong types
    {"SectionNotATable", "logging = 3\n", 1, 11, "logging", "expected a table, found an integer"},
    {"ExpectedBoolean", "[logging]\nlog_rotation = \"yes\"\n", 2, 16, "logging.log_rotation",
     "expected a boolean, found a string"},
    {"ExpectedInteger", "[resource_monitoring]\ninterval_seconds = 2.5\n", 2, 20,
     "resource_monitoring.interval_seconds", "expected an integer, found a floating-point number"},
    {"ExpectedNumber", "[resource_monitoring]\ncpu_threshold_percent = \"80\"\n", 2, 25,
     "resource_monitoring.cpu_threshold_percent", "expected a number, found a string"},
    {"ExpectedString", "[logging]\nlog_level = 3\n", 2, 13, "logging.log_level", "expected a string"},
    {"ExpectedArray", "[security]\nadmin_groups = \"wheel\"\n", 2, 16, "security.admin_groups",
     "expected an array"},
    {"ExpectedStringElement", "[security]\nadmin_groups = [\"wheel\", 5]\n", 2, 26,
     "security.admin_groups[1]", "expected a string, found an integer"},
    {"ServiceNotAnArray", "[service]\nname = \"x\"\n", 1, 1, "service", "expected an array of tables"},
    {"ServiceElementNotATable", "service = [1]\n", 1, 12, "service[0]", "expected a table"},
    {"EnvironmentNotATable", service("environment = [\"A=1\"]\n"), 4, 15, "service[0].environment",
     "expected a table"},
    {"EnvironmentValueNotAString", service("environment = { COUNT = 3 }\n"), 4, 25,
     "service[0].environment.COUNT", "expected a string"},
    {"RecoveryNotATable", service("recovery = \"restart\"\n"), 4, 12, "service[0].recovery",
     "expected a table"},
    {"CriticalNotABoolean", service("critical = 1\n"), 4, 12, "service[0].critical", "expected a boolean"},
    {"DateIsNotANumber", "[health_checking]\nhealth_score_threshold = 2024-01-01\n", 2, 26,
     "health_checking.health_score_threshold", "found a date"},
    {"NotANumberFloat", "[resource_monitoring]\ndisk_threshold_percent = nan\n", 2, 26,
     "resource_monitoring.disk_threshold_percent", "finite"},
    {"InfiniteFloat", service("stop_timeout_seconds = inf\n"), 4, 24, "service[0].stop_timeout_seconds",
     "finite"},

    // Out of range
    {"CpuThresholdZero", "[resource_monitoring]\ncpu_threshold_percent = 0\n", 2, 25,
     "resource_monitoring.cpu_threshold_percent", "greater than 0 and at most 100"},
    {"MemoryThresholdAbove100", "[resource_monitoring]\nmemory_threshold_percent = 100.5\n", 2, 28,
     "resource_monitoring.memory_threshold_percent", "at most 100, got 100.5"},
    {"DiskThresholdNegative", "[resource_monitoring]\ndisk_threshold_percent = -1.0\n", 2, 26,
     "resource_monitoring.disk_threshold_percent", "greater than 0"},
    {"IntervalZero", "[resource_monitoring]\ninterval_seconds = 0\n", 2, 20,
     "resource_monitoring.interval_seconds", "must be at least 1, got 0"},
    {"CheckIntervalZero", "[health_checking]\ncheck_interval_seconds = 0\n", 2, 26,
     "health_checking.check_interval_seconds", "at least 1"},
    {"HealthScoreAboveOne", "[health_checking]\nhealth_score_threshold = 1.5\n", 2, 26,
     "health_checking.health_score_threshold", "between 0 and 1"},
    {"HealthScoreNegative", "[health_checking]\nhealth_score_threshold = -0.1\n", 2, 26,
     "health_checking.health_score_threshold", "between 0 and 1"},
    {"MaxConcurrentZero", "[process_management]\nmax_concurrent_processes = 0\n", 2, 28,
     "process_management.max_concurrent_processes", "at least 1"},
    {"PriorityLevelsZero", "[process_management]\nprocess_priority_levels = 0\n", 2, 27,
     "process_management.process_priority_levels", "at least 1"},
    {"PriorityLevelsSix", "[process_management]\nprocess_priority_levels = 6\n", 2, 27,
     "process_management.process_priority_levels", "too large (at most 5)"},
    {"MaxRecoveryAttemptsNegative", "[crash_recovery]\nmax_recovery_attempts = -1\n", 2, 25,
     "crash_recovery.max_recovery_attempts", "must not be negative"},
    {"RecoveryTimeoutZero", "[crash_recovery]\nrecovery_timeout_seconds = 0\n", 2, 28,
     "crash_recovery.recovery_timeout_seconds", "at least 1"},
    {"MaxLogSizeZero", "[logging]\nmax_log_size_mb = 0\n", 2, 19, "logging.max_log_size_mb", "at least 1"},
    {"UnknownLogLevel", "[logging]\nlog_level = \"verbose\"\n", 2, 13, "logging.log_level",
     "unknown log level \"verbose\""},
    {"LogLevelIsCaseSensitive", "[logging]\nlog_level = \"INFO\"\n", 2, 13, "logging.log_level",
     "unknown log level"},
    {"GlobalMemoryLimitZero", "[process_management]\nmemory_limit_mb = 0\n", 2, 19,
     "process_management.memory_limit_mb", "at least 1"},
    {"GlobalCpuLimitZero", "[process_management]\ncpu_limit_percent = 0\n", 2, 21,
     "process_management.cpu_limit_percent", "greater than 0"},
    {"StopTimeoutZero", service("stop_timeout_seconds = 0\n"), 4, 24, "service[0].stop_timeout_seconds",
     "greater than 0"},
    {"StopTimeoutAboveAYear", service("stop_timeout_seconds = 1e12\n"), 4, 24,
     "service[0].stop_timeout_seconds", "one year"},
    {"DelayNegative", service("recovery = { delay_seconds = -0.5 }\n"), 4, 30,
     "service[0].recovery.delay_seconds", "at least 0"},
    {"MaxAttemptsNegative", service("recovery = { max_attempts = -2 }\n"), 4, 29,
     "service[0].recovery.max_attempts", "must not be negative"},
    {"ServiceCpuLimitZero", service("cpu_limit_percent = 0.0\n"), 4, 21, "service[0].cpu_limit_percent",
     "greater than 0"},
    {"ServiceMemoryLimitZero", service("memory_limit_mb = 0\n"), 4, 19, "service[0].memory_limit_mb",
     "at least 1"},
    {"ServiceMemoryLimitOverflowsBytes", service("memory_limit_mb = 9223372036854775807\n"), 4, 19,
     "service[0].memory_limit_mb", "too large"},

    // Integers that do not fit the target type
    {"IntervalNegative", "[resource_monitoring]\ninterval_seconds = -5\n", 2, 20,
     "resource_monitoring.interval_seconds", "must not be negative, got -5"},
    {"IntervalTooLargeForUnsigned", "[resource_monitoring]\ninterval_seconds = 4294967296\n", 2, 20,
     "resource_monitoring.interval_seconds", "4294967296 is too large (at most 4294967295)"},
    {"MaxAttemptsTooLarge", service("recovery = { max_attempts = 5000000000 }\n"), 4, 29,
     "service[0].recovery.max_attempts", "too large"},
    {"CpuAffinityNegative", service("cpu_affinity = [0, -1]\n"), 4, 20, "service[0].cpu_affinity[1]",
     "must not be negative"},
    {"CpuAffinityNotAnArray", service("cpu_affinity = 0\n"), 4, 16, "service[0].cpu_affinity",
     "expected an array"},

    // Service names
    {"DuplicateServiceName", service("") + "[[service]]\nname = \"svc\"\nexec = [\"/bin/true\"]\n", 5, 8,
     "service[1].name", "duplicate service name \"svc\""},
    {"ServiceNameWithSpace", "[[service]]\nname = \"my service\"\nexec = [\"/bin/true\"]\n", 2, 8,
     "service[0].name", "invalid service name"},
    {"ServiceNameWithDot", "[[service]]\nname = \"a.b\"\nexec = [\"/bin/true\"]\n", 2, 8, "service[0].name",
     "invalid service name"},
    {"ServiceNameEmpty", "[[service]]\nname = \"\"\nexec = [\"/bin/true\"]\n", 2, 8, "service[0].name",
     "invalid service name"},
    {"ServiceNameTooLong", "[[service]]\nname = \"" + std::string(65, 'x') + "\"\nexec = [\"/bin/true\"]\n",
     2, 8, "service[0].name", "invalid service name"},
    {"ServiceNameNotAString", "[[service]]\nname = 7\nexec = [\"/bin/true\"]\n", 2, 8, "service[0].name",
     "expected a string"},
    {"ReservedNameLog", "[[service]]\nname = \"log\"\nexec = [\"/bin/true\"]\n", 2, 8, "service[0].name",
     "reserved for the suite's own services"},
    {"ReservedNameRecovery", "[[service]]\nname = \"recovery\"\nexec = [\"/bin/true\"]\n", 2, 8,
     "service[0].name", "reserved for the suite's own services"},
    {"ReservedNameResources", "[[service]]\nname = \"resources\"\nexec = [\"/bin/true\"]\n", 2, 8,
     "service[0].name", "reserved for the suite's own services"},
    {"ReservedNameHealth", "[[service]]\nname = \"health\"\nexec = [\"/bin/true\"]\n", 2, 8,
     "service[0].name", "reserved for the suite's own services"},

    // Required keys: the position is that of the service's table
    {"MissingName", "[[service]]\nexec = [\"/bin/true\"]\n", 1, 1, "service[0].name", "missing required key"},
    {"MissingExec", service("") + "\n[[service]]\nname = \"other\"\n", 5, 1, "service[1].exec",
     "missing required key"},
    {"MissingNameInInlineTable", "service = [{ exec = [\"/bin/true\"] }]\n", 1, 12, "service[0].name",
     "missing required key"},

    // exec
    {"ExecEmpty", "[[service]]\nname = \"svc\"\nexec = []\n", 3, 8, "service[0].exec", "must not be empty"},
    {"ExecNotAnArray", "[[service]]\nname = \"svc\"\nexec = \"/bin/true\"\n", 3, 8, "service[0].exec",
     "expected an array, found a string"},
    {"ExecElementNotAString", "[[service]]\nname = \"svc\"\nexec = [\"/bin/sh\", 1]\n", 3, 20,
     "service[0].exec[1]", "expected a string"},
    {"ExecRelative", "[[service]]\nname = \"svc\"\nexec = [\"true\"]\n", 3, 9, "service[0].exec",
     "program \"true\" must be an absolute path"},
    {"ExecMissing", "[[service]]\nname = \"svc\"\nexec = [\"/nonexistent/tau-program\"]\n", 3, 9,
     "service[0].exec", "does not exist"},
    {"ExecDirectory", "[[service]]\nname = \"svc\"\nexec = [\"/bin\"]\n", 3, 9, "service[0].exec",
     "not a regular file"},
    {"ExecWithNul", "[[service]]\nname = \"svc\"\nexec = [\"/bin/true\\u0000x\"]\n", 3, 9,
     "service[0].exec[0]", "NUL"},

    // Other service keys
    {"WorkingDirectoryRelative", service("working_directory = \"srv\"\n"), 4, 21,
     "service[0].working_directory", "must be an absolute path"},
    {"WorkingDirectoryEmpty", service("working_directory = \"\"\n"), 4, 21, "service[0].working_directory",
     "must be an absolute path"},
    {"UnknownPriority", service("priority = \"urgent\"\n"), 4, 12, "service[0].priority",
     "unknown priority \"urgent\""},
    {"UnknownStrategy", service("recovery = { strategy = \"always\" }\n"), 4, 25,
     "service[0].recovery.strategy", "unknown recovery strategy \"always\""},
    {"EnvironmentNameWithEquals", service("environment = { \"A=B\" = \"1\" }\n"), 4, 17,
     "service[0].environment.A=B", "invalid environment variable name"},

    // Cross references
    {"CriticalProcessNotConfigured",
     service("") + "[crash_recovery]\ncritical_processes = [\"svc\", \"ghost\"]\n", 5, 30,
     "crash_recovery.critical_processes[1]", "no service named \"ghost\""},
    {"ServiceHealthCheckNotConfigured", "[health_checking]\nservice_health_checks = [\"ghost\"]\n", 2, 26,
     "health_checking.service_health_checks[0]", "no service named \"ghost\""},
    {"UnknownSystemHealthCheck", "[health_checking]\nsystem_health_checks = [\"cpu_usage\", \"gpu_usage\"]\n",
     2, 38, "health_checking.system_health_checks[1]", "unknown system health check \"gpu_usage\""},
    {"EmptyAdminGroup", "[security]\nadmin_groups = [\"\"]\n", 2, 17, "security.admin_groups[0]",
     "must not be empty"},
};

INSTANTIATE_TEST_SUITE_P(Rules, InvalidConfig, testing::ValuesIn(kErrorCases),
                         [](const testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(InvalidConfigExec, CpuAffinityBeyondConfiguredCpus) {
    std::string cpu = std::to_string(configuredCpus());
    ConfigError error = parseExpectingError(service("cpu_affinity = [0, " + cpu + "]\n"));
    EXPECT_EQ(error.line(), 4U);
    EXPECT_EQ(error.column(), 20U);
    EXPECT_EQ(error.key(), "service[0].cpu_affinity[1]");
    EXPECT_NE(error.problem().find("CPU " + cpu + " does not exist"), std::string::npos) << error.what();
}

TEST(InvalidConfigExec, ProgramWithoutExecuteBitIsRejected) {
    test::TempDir directory;
    fs::path script =
        writeFileIn(directory, "script", "#!/bin/sh\n", fs::perms::owner_read | fs::perms::owner_write);
    ConfigError error =
        parseExpectingError("[[service]]\nname = \"svc\"\nexec = [\"" + script.string() + "\"]\n");
    EXPECT_EQ(error.line(), 3U);
    EXPECT_EQ(error.column(), 9U);
    EXPECT_EQ(error.key(), "service[0].exec");
    EXPECT_NE(error.problem().find("is not executable"), std::string::npos) << error.what();
}

TEST(InvalidConfigExec, ProgramIsCheckedAfterExpansion) {
    test::TempDir directory;
    writeFileIn(directory, "tool", "#!/bin/sh\n", fs::perms::owner_read);
    ConfigError error = parseExpectingError("[[service]]\nname = \"svc\"\nexec = [\"${config_dir}/tool\"]\n",
                                            directory.path() / "tau.toml");
    EXPECT_EQ(error.key(), "service[0].exec");
    EXPECT_NE(error.problem().find((directory.path() / "tool").string()), std::string::npos) << error.what();
    EXPECT_NE(error.problem().find("is not executable"), std::string::npos) << error.what();
}

TEST(InvalidConfigExec, ExpansionCannotMakeARelativeWorkingDirectory) {
    // `${config_dir}` is always absolute, so a value starting with it is too.
    Config config = parseConfig(service("working_directory = \"${config_dir}/run\"\n"), "relative/tau.toml");
    EXPECT_TRUE(config.services[0].working_directory.is_absolute());
}

// Whatever the damage, the parser reports it as a ConfigError and nothing else.
TEST(InvalidConfigRobustness, DamagedDocumentsOnlyEverThrowConfigError) {
    const std::string full(kFullConfig);
    std::vector<std::string> damaged;
    for (std::size_t length = 0; length <= full.size(); ++length) {
        damaged.push_back(full.substr(0, length));
    }
    for (std::size_t position = 0; position < full.size(); position += 3) {
        for (char replacement : {'\0', '"', '[', '=', '\xff', '-'}) {
            std::string copy = full;
            copy[position] = replacement;
            damaged.push_back(copy);
        }
    }
    std::size_t rejected = 0;
    for (const std::string& text : damaged) {
        try {
            parseConfig(text, kSourcePath);
        } catch (const ConfigError& error) {
            ++rejected;
            EXPECT_FALSE(error.problem().empty());
            EXPECT_EQ(error.file(), kSourcePath.string());
        } catch (const std::exception& error) {
            ADD_FAILURE() << "escaped: " << error.what() << "\nfor:\n" << text;
        }
    }
    EXPECT_GT(rejected, damaged.size() / 2);
}

// ---------------------------------------------------------------------------------------------------------
// Files

TEST(LoadConfig, MissingFileNamesFileAndReason) {
    ConfigError error = loadExpectingError("/nonexistent/tau-monitor.toml");
    EXPECT_EQ(error.file(), "/nonexistent/tau-monitor.toml");
    EXPECT_EQ(error.line(), 0U);
    EXPECT_EQ(error.column(), 0U);
    EXPECT_NE(error.problem().find(std::strerror(ENOENT)), std::string::npos) << error.what();
    EXPECT_EQ(std::string(error.what()), "/nonexistent/tau-monitor.toml: " + error.problem());
}

TEST(LoadConfig, DirectoryIsNotReadable) {
    test::TempDir directory;
    ConfigError error = loadExpectingError(directory.path());
    EXPECT_EQ(error.line(), 0U);
    EXPECT_NE(error.problem().find(std::strerror(EISDIR)), std::string::npos) << error.what();
}

TEST(LoadConfig, ReadsAndExpandsAFile) {
    const fs::path path = TAU_TEST_DATA "/config/valid.toml";
    const fs::path dir = fs::absolute(path).lexically_normal().parent_path();
    Config config = loadConfig(path);
    EXPECT_EQ(config.source, path);
    EXPECT_EQ(config.resource_monitoring.interval_seconds, 5U);
    EXPECT_EQ(config.logging.log_level, "debug");
    EXPECT_EQ(config.logging.log_file_path, dir / "logs/tau.log");
    EXPECT_EQ(config.crash_recovery.session_state_path, dir / "state");
    ASSERT_EQ(config.services.size(), 1U);
    const ServiceConfig& worker = config.services[0];
    EXPECT_EQ(worker.name, "worker");
    EXPECT_EQ(worker.exec, (std::vector<std::string>{"/bin/sh", "-c", "exec sleep 1000"}));
    EXPECT_EQ(worker.working_directory, dir);
    EXPECT_EQ(worker.priority, Priority::High);
    EXPECT_EQ(worker.recovery.strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_DOUBLE_EQ(worker.recovery.delay_seconds, 0.5);
    EXPECT_TRUE(config.isCritical("worker"));
}

struct BadFile {
    const char* file;
    unsigned line;
    unsigned column;
    const char* key;
    const char* problem;
};

void PrintTo(const BadFile& badFile, std::ostream* out) {
    *out << badFile.file;
}

class InvalidConfigFile : public testing::TestWithParam<BadFile> {};

TEST_P(InvalidConfigFile, IsReportedWithFileAndPosition) {
    const BadFile& expected = GetParam();
    const std::string path = std::string(TAU_TEST_DATA "/config/") + expected.file;
    ConfigError error = loadExpectingError(path);
    EXPECT_EQ(error.file(), path);
    EXPECT_EQ(error.line(), expected.line) << error.what();
    EXPECT_EQ(error.column(), expected.column) << error.what();
    EXPECT_EQ(error.key(), expected.key) << error.what();
    EXPECT_NE(error.problem().find(expected.problem), std::string::npos) << error.what();
}

INSTANTIATE_TEST_SUITE_P(
    Files, InvalidConfigFile,
    testing::Values(BadFile{"bad_syntax.toml", 2, 18, "", "string"},
                    BadFile{"bad_unknown_key.toml", 3, 1, "resource_monitoring.intervall_seconds",
                            "unknown key"},
                    BadFile{"bad_type.toml", 2, 11, "health_checking.enabled", "expected a boolean"},
                    BadFile{"bad_service_reference.toml", 2, 36, "health_checking.service_health_checks[1]",
                            "no service named \"missing\""},
                    BadFile{"bad_missing_exec.toml", 5, 1, "service[1].exec", "missing required key"}),
    [](const testing::TestParamInfo<BadFile>& info) {
        std::string name = fs::path(info.param.file).stem().string();
        return name;
    });

TEST(ShippedConfig, ParsesCleanlyAndMatchesTheDefaults) {
    const fs::path path = TAU_TEST_DATA "/../../config/tau-monitor.toml";
    Config config;
    ASSERT_NO_THROW(config = loadConfig(path));
    // The shipped file documents the defaults, so it must not change them.
    expectDefaults(config);
    EXPECT_EQ(config.source, path);
}

} // namespace
} // namespace tau
