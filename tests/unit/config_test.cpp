#include "tau/config.h"
#include "tau/service_order.h"
#include "temp_dir.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <sys/resource.h>
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
    EXPECT_EQ(toString(RecoveryStrategy::RestartWithBackoff), "restart_with_backoff");
    EXPECT_EQ(toString(RecoveryStrategy::SafeMode), "safe_mode");
    EXPECT_EQ(toString(RecoveryStrategy::NotifyAdmin), "notify_admin");
    for (RecoveryStrategy strategy :
         {RecoveryStrategy::None, RecoveryStrategy::Restart, RecoveryStrategy::RestartWithDelay,
          RecoveryStrategy::RestartWithBackoff, RecoveryStrategy::SafeMode, RecoveryStrategy::NotifyAdmin}) {
        EXPECT_EQ(recoveryStrategyFromString(toString(strategy)), strategy);
    }
    EXPECT_EQ(recoveryStrategyFromString("restart-with-delay"), std::nullopt);
    EXPECT_EQ(recoveryStrategyFromString("backoff"), std::nullopt);
    EXPECT_EQ(recoveryStrategyFromString(""), std::nullopt);
}

TEST(ConfigNames, FailureClassesRoundTrip) {
    const std::pair<FailureClass, std::string_view> names[] = {
        {FailureClass::Exit, "exit"},   {FailureClass::Signal, "signal"},
        {FailureClass::Oom, "oom"},     {FailureClass::Watchdog, "watchdog"},
        {FailureClass::Probe, "probe"}, {FailureClass::ResourceLimit, "resource_limit"},
        {FailureClass::Start, "start"}};
    for (const auto& [failureClass, name] : names) {
        EXPECT_EQ(toString(failureClass), name);
        EXPECT_EQ(failureClassFromString(name), failureClass);
    }
    EXPECT_EQ(failureClassFromString("resource-limit"), std::nullopt);
    EXPECT_EQ(failureClassFromString("OOM"), std::nullopt);
    EXPECT_EQ(failureClassFromString(""), std::nullopt);
}

TEST(ConfigNames, ServiceTypes) {
    EXPECT_EQ(toString(ServiceType::Simple), "simple");
    EXPECT_EQ(toString(ServiceType::Notify), "notify");
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
    EXPECT_EQ(rm.prometheus_listen, "127.0.0.1:9102");

    const auto& pm = config.process_management;
    EXPECT_TRUE(pm.enabled);
    EXPECT_EQ(pm.max_concurrent_processes, 100U);
    EXPECT_EQ(pm.process_priority_levels, 5U);
    EXPECT_EQ(pm.memory_limit_mb, 2048U);
    EXPECT_DOUBLE_EQ(pm.cpu_limit_percent, 50.0);
    EXPECT_DOUBLE_EQ(pm.limit_check_interval_seconds, 5.0);
    EXPECT_EQ(pm.limit_violation_samples, 3U);
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
    EXPECT_EQ(cr.restart_budget_burst, 20U);
    EXPECT_DOUBLE_EQ(cr.restart_budget_interval_seconds, 10.0);
    EXPECT_TRUE(cr.notify_command.empty());
    EXPECT_FALSE(cr.system_safe_mode);
    EXPECT_EQ(cr.state_versions_kept, 3U);
    EXPECT_EQ(cr.state_max_bytes, 1048576U);
    EXPECT_EQ(cr.state_poison_crashes, 3U);

    const auto& hc = config.health_checking;
    EXPECT_TRUE(hc.enabled);
    EXPECT_EQ(hc.check_interval_seconds, 60U);
    EXPECT_EQ(hc.system_health_checks,
              (std::vector<std::string>{"cpu_usage", "memory_usage", "disk_usage", "swap_usage",
                                        "load_average", "temperature", "pressure", "network_connectivity"}));
    EXPECT_TRUE(hc.network_endpoints.empty());
    EXPECT_DOUBLE_EQ(hc.restart_window_seconds, 600.0);
    EXPECT_EQ(hc.restart_warning_count, 3U);
    EXPECT_DOUBLE_EQ(hc.status_debounce_seconds, 5.0);
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
prometheus_listen = ""

[process_management]
enabled = false
max_concurrent_processes = 12
process_priority_levels = 3
memory_limit_mb = 4096
cpu_limit_percent = 250.0
limit_check_interval_seconds = 0.5
limit_violation_samples = 2
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
restart_budget_burst = 21
restart_budget_interval_seconds = 2.5
notify_command = ["/bin/echo", "alert"]
system_safe_mode = true
state_versions_kept = 5
state_max_bytes = 67108864
state_poison_crashes = 2

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
stop_signal = "SIGINT"
umask = "0027"
type = "notify"
start_timeout_seconds = 30
watchdog_seconds = 5.5
rlimits = { nofile = { soft = 1024, hard = 4096 }, core = "infinity", nproc = 64 }
depends_on = ["second"]
safe_mode = { exec = ["/bin/sh", "-c", "echo safe"], environment = { SAFE = "1" }, stability_seconds = 30 }
standby = { promote_signal = "SIGUSR2" }

[service.recovery]
strategy = "restart_with_delay"
delay_seconds = 0.25
max_attempts = 7
backoff_factor = 1.5
max_delay_seconds = 20
jitter = 0.25
stability_seconds = 90
start_seconds = 2.5
start_limit_burst = 8
start_limit_interval_seconds = 30
success_exit_codes = [0, 3]
no_restart_exit_codes = [78, 255]
no_restart_signals = ["SIGKILL", "SIGSEGV"]

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
    EXPECT_EQ(rm.prometheus_listen, "");

    const auto& pm = config.process_management;
    EXPECT_FALSE(pm.enabled);
    EXPECT_EQ(pm.max_concurrent_processes, 12U);
    EXPECT_EQ(pm.process_priority_levels, 3U);
    EXPECT_EQ(pm.memory_limit_mb, 4096U);
    EXPECT_DOUBLE_EQ(pm.cpu_limit_percent, 250.0);
    EXPECT_DOUBLE_EQ(pm.limit_check_interval_seconds, 0.5);
    EXPECT_EQ(pm.limit_violation_samples, 2U);
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
    EXPECT_EQ(cr.restart_budget_burst, 21U);
    EXPECT_DOUBLE_EQ(cr.restart_budget_interval_seconds, 2.5);
    EXPECT_EQ(cr.notify_command, (std::vector<std::string>{"/bin/echo", "alert"}));
    EXPECT_TRUE(cr.system_safe_mode);
    EXPECT_EQ(cr.state_versions_kept, 5U);
    EXPECT_EQ(cr.state_max_bytes, 67108864U);
    EXPECT_EQ(cr.state_poison_crashes, 2U);

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
    EXPECT_EQ(first.stop_signal, SIGINT);
    EXPECT_EQ(first.umask, std::optional<unsigned>(027));
    EXPECT_EQ(first.type, ServiceType::Notify);
    EXPECT_DOUBLE_EQ(first.start_timeout_seconds, 30.0);
    EXPECT_DOUBLE_EQ(first.watchdog_seconds, 5.5);
    ASSERT_EQ(first.rlimits.size(), 3U);
    EXPECT_EQ(first.rlimits.at("nofile").soft, 1024U);
    EXPECT_EQ(first.rlimits.at("nofile").hard, 4096U);
    EXPECT_EQ(first.rlimits.at("core").soft, RLIM_INFINITY);
    EXPECT_EQ(first.rlimits.at("core").hard, RLIM_INFINITY);
    EXPECT_EQ(first.rlimits.at("nproc").soft, 64U);
    EXPECT_EQ(first.rlimits.at("nproc").hard, 64U);
    EXPECT_EQ(first.depends_on, std::vector<std::string>{"second"});
    ASSERT_TRUE(first.safe_mode.has_value());
    EXPECT_EQ(first.safe_mode->exec, (std::vector<std::string>{"/bin/sh", "-c", "echo safe"}));
    EXPECT_EQ(first.safe_mode->environment, (std::map<std::string, std::string>{{"SAFE", "1"}}));
    EXPECT_DOUBLE_EQ(first.safe_mode->stability_seconds, 30.0);
    ASSERT_TRUE(first.standby.has_value());
    EXPECT_EQ(first.standby->promote_signal, SIGUSR2);
    // The short form is a ladder of one step.
    ASSERT_EQ(first.recovery.ladder.size(), 1U);
    const LadderStep& step = first.recovery.ladder[0];
    EXPECT_EQ(step.strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_DOUBLE_EQ(step.delay_seconds, 0.25);
    EXPECT_EQ(step.attempts, std::optional<unsigned>(7));
    EXPECT_DOUBLE_EQ(step.backoff_factor, 1.5);
    EXPECT_DOUBLE_EQ(step.max_delay_seconds, 20.0);
    EXPECT_DOUBLE_EQ(step.jitter, 0.25);
    EXPECT_TRUE(first.recovery.class_ladders.empty());
    EXPECT_EQ(first.recovery.stability_seconds, std::optional<double>(90.0));
    EXPECT_DOUBLE_EQ(first.recovery.start_seconds, 2.5);
    EXPECT_EQ(first.recovery.start_limit_burst, 8U);
    EXPECT_DOUBLE_EQ(first.recovery.start_limit_interval_seconds, 30.0);
    EXPECT_EQ(first.recovery.success_exit_codes, (std::vector<int>{0, 3}));
    EXPECT_EQ(first.recovery.no_restart_exit_codes, (std::vector<int>{78, 255}));
    EXPECT_EQ(first.recovery.no_restart_signals, (std::vector<int>{SIGKILL, SIGSEGV}));

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
    // Without a recovery table: one restart step bounded by crash_recovery.max_recovery_attempts (0 here).
    ASSERT_EQ(second.recovery.ladder.size(), 1U);
    EXPECT_EQ(second.recovery.ladder[0].strategy, RecoveryStrategy::Restart);
    EXPECT_DOUBLE_EQ(second.recovery.ladder[0].delay_seconds, 1.0);
    EXPECT_EQ(second.recovery.ladder[0].attempts, std::optional<unsigned>(0));
    EXPECT_DOUBLE_EQ(second.recovery.ladder[0].backoff_factor, 2.0);
    EXPECT_DOUBLE_EQ(second.recovery.ladder[0].max_delay_seconds, 300.0);
    EXPECT_DOUBLE_EQ(second.recovery.ladder[0].jitter, 0.1);
    EXPECT_TRUE(second.recovery.class_ladders.empty());
    EXPECT_EQ(second.recovery.stability_seconds, std::nullopt);
    EXPECT_DOUBLE_EQ(second.recovery.start_seconds, 1.0);
    EXPECT_EQ(second.recovery.start_limit_burst, 5U);
    EXPECT_DOUBLE_EQ(second.recovery.start_limit_interval_seconds, 10.0);
    EXPECT_EQ(second.recovery.success_exit_codes, std::vector<int>{0});
    EXPECT_TRUE(second.recovery.no_restart_exit_codes.empty());
    EXPECT_TRUE(second.recovery.no_restart_signals.empty());
    EXPECT_EQ(second.stop_signal, SIGTERM);
    EXPECT_EQ(second.umask, std::nullopt);
    EXPECT_EQ(second.type, ServiceType::Simple);
    EXPECT_DOUBLE_EQ(second.start_timeout_seconds, 90.0);
    EXPECT_DOUBLE_EQ(second.watchdog_seconds, 0.0);
    EXPECT_TRUE(second.rlimits.empty());
    EXPECT_TRUE(second.depends_on.empty());
    EXPECT_FALSE(second.safe_mode.has_value());
    EXPECT_FALSE(second.standby.has_value());

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
    ASSERT_EQ(config.services[0].recovery.ladder.size(), 1U);
    EXPECT_EQ(config.services[0].recovery.ladder[0].strategy, RecoveryStrategy::None);
    EXPECT_EQ(config.services[0].recovery.ladder[0].attempts, std::optional<unsigned>(0));
    EXPECT_DOUBLE_EQ(config.services[0].recovery.ladder[0].delay_seconds, 1.0);
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
    ASSERT_EQ(config.services[0].recovery.ladder.size(), 1U);
    EXPECT_DOUBLE_EQ(config.services[0].recovery.ladder[0].delay_seconds, 0.0);
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

TEST(ConfigEndpoints, ParsesNumericAddressesAndLocalhost) {
    Config config = parseConfig("[health_checking]\nnetwork_endpoints = [\"192.0.2.1:53\", "
                                "\"[2001:db8::1]:443\", \"localhost:22\"]\n",
                                kSourcePath);
    EXPECT_EQ(config.health_checking.network_endpoints.size(), 3U);
    auto v6 = parseEndpoint("[2001:db8::1]:443");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "2001:db8::1");
    EXPECT_EQ(v6->port, 443);
    EXPECT_FALSE(parseEndpoint("192.0.2.1:0"));
    EXPECT_FALSE(parseEndpoint("192.0.2.1:65536"));
    EXPECT_FALSE(parseEndpoint("[192.0.2.1]:80"));
    EXPECT_FALSE(parseEndpoint(":80"));
}

TEST(ConfigThresholds, ReadsBandsSampleCountsAndAdaptiveLevels) {
    Config config = parseConfig(R"(
[resource_monitoring.thresholds.cpu_percent]
warning = { enter = 80, exit = 70, enter_samples = 3, exit_samples = 2 }
critical = { enter = 95 }
[resource_monitoring.thresholds.memory_used_percent]
adaptive = true
[resource_monitoring.thresholds.temperature_celsius.adaptive]
window_samples = 120
min_samples = 20
k = 3
)",
                                kSourcePath);
    const auto& thresholds = config.resource_monitoring.thresholds;
    ASSERT_EQ(thresholds.size(), 3U);
    const ThresholdSpec& cpu = thresholds.at("cpu_percent");
    ASSERT_TRUE(cpu.warning && cpu.critical);
    EXPECT_DOUBLE_EQ(cpu.warning->enter, 80);
    EXPECT_DOUBLE_EQ(cpu.warning->exit, 70);
    EXPECT_EQ(cpu.warning->enter_samples, 3U);
    EXPECT_EQ(cpu.warning->exit_samples, 2U);
    EXPECT_DOUBLE_EQ(cpu.critical->exit, 95 * 0.95);
    EXPECT_EQ(cpu.critical->enter_samples, 1U);
    EXPECT_FALSE(cpu.adaptive);
    const ThresholdSpec& memory = thresholds.at("memory_used_percent");
    ASSERT_TRUE(memory.adaptive);
    EXPECT_EQ(memory.adaptive->window_samples, 60U);
    EXPECT_EQ(memory.adaptive->min_samples, 10U);
    EXPECT_DOUBLE_EQ(memory.adaptive->k, 2);
    EXPECT_DOUBLE_EQ(memory.adaptive->exit_k, 1.5);
    const ThresholdSpec& temperature = thresholds.at("temperature_celsius");
    EXPECT_EQ(temperature.adaptive->window_samples, 120U);
    EXPECT_EQ(temperature.adaptive->min_samples, 20U);
    EXPECT_DOUBLE_EQ(temperature.adaptive->k, 3);
    EXPECT_DOUBLE_EQ(temperature.adaptive->exit_k, 1.5);
}

TEST(ConfigThresholds, AdaptiveFalseLeavesOnlyTheFixedLevels) {
    Config config = parseConfig(
        "[resource_monitoring.thresholds]\ncpu_percent = { adaptive = false, critical = { enter = 99 } }\n",
        kSourcePath);
    EXPECT_FALSE(config.resource_monitoring.thresholds.at("cpu_percent").adaptive);
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
    {"ListenAddressHostName", "[resource_monitoring]\nprometheus_listen = \"localhost:9102\"\n", 2, 21,
     "resource_monitoring.prometheus_listen", "is not a numeric IPv4 address"},
    {"ListenAddressPortTooLarge", "[resource_monitoring]\nprometheus_listen = \"127.0.0.1:70000\"\n", 2, 21,
     "resource_monitoring.prometheus_listen", "the port must be a number from 0 to 65535"},
    {"EndpointWithoutPort", "[health_checking]\nnetwork_endpoints = [\"192.0.2.1\"]\n", 2, 22,
     "health_checking.network_endpoints[0]", "expected host:port"},
    {"EndpointHostName", "[health_checking]\nnetwork_endpoints = [\"1.1.1.1:53\", \"example.org:80\"]\n", 2,
     36, "health_checking.network_endpoints[1]", "got \"example.org:80\""},
    {"EndpointIpv6WithoutBrackets", "[health_checking]\nnetwork_endpoints = [\"::1:22\"]\n", 2, 22,
     "health_checking.network_endpoints[0]", "expected host:port"},
    {"RestartWindowZero", "[health_checking]\nrestart_window_seconds = 0\n", 2, 26,
     "health_checking.restart_window_seconds", "greater than 0"},
    {"UnknownThresholdMetric", "[resource_monitoring.thresholds]\ncpu = { warning = { enter = 1 } }\n", 2, 1,
     "resource_monitoring.thresholds.cpu", "unknown metric"},
    {"ThresholdWithoutLevel", "[resource_monitoring.thresholds]\ncpu_percent = {}\n", 2, 15,
     "resource_monitoring.thresholds.cpu_percent", "needs a warning, critical or adaptive level"},
    {"ThresholdExitAboveEnter",
     "[resource_monitoring.thresholds]\ncpu_percent = { warning = { enter = 80, exit = 90 } }\n", 2, 48,
     "resource_monitoring.thresholds.cpu_percent.warning.exit", "must be at most enter (80), got 90"},
    {"ThresholdWithoutEnter", "[resource_monitoring.thresholds]\ncpu_percent = { warning = { exit = 70 } }\n",
     2, 27, "resource_monitoring.thresholds.cpu_percent.warning.enter", "missing required key"},
    {"CriticalBelowWarning",
     "[resource_monitoring.thresholds]\ncpu_percent = { warning = { enter = 80 }, critical = { enter = 70 } "
     "}\n",
     2, 54, "resource_monitoring.thresholds.cpu_percent.critical.enter",
     "must be at least warning.enter (80), got 70"},
    {"ThresholdZeroSamples",
     "[resource_monitoring.thresholds]\ncpu_percent = { warning = { enter = 80, enter_samples = 0 } }\n", 2,
     57, "resource_monitoring.thresholds.cpu_percent.warning.enter_samples", "must be at least 1"},
    {"AdaptiveMinAboveWindow",
     "[resource_monitoring.thresholds]\ncpu_percent = { adaptive = { window_samples = 5, min_samples = 10 } "
     "}\n",
     2, 64, "resource_monitoring.thresholds.cpu_percent.adaptive.min_samples",
     "must be at most window_samples (5), got 10"},
    {"AdaptiveExitNotBelowK",
     "[resource_monitoring.thresholds]\ncpu_percent = { adaptive = { k = 1, exit_k = 1 } }\n", 2, 46,
     "resource_monitoring.thresholds.cpu_percent.adaptive.exit_k", "must be below k (1), got 1"},
    {"AdaptiveWrongType", "[resource_monitoring.thresholds]\ncpu_percent = { adaptive = \"yes\" }\n", 2, 28,
     "resource_monitoring.thresholds.cpu_percent.adaptive", "expected a table, found a string"},
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
    {"LimitCheckIntervalZero", "[process_management]\nlimit_check_interval_seconds = 0\n", 2, 32,
     "process_management.limit_check_interval_seconds", "greater than 0"},
    {"LimitViolationSamplesZero", "[process_management]\nlimit_violation_samples = 0\n", 2, 27,
     "process_management.limit_violation_samples", "at least 1"},
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

    // Recovery: short form and ladder
    {"LadderAndStrategy",
     service("recovery = { strategy = \"restart\", ladder = [{ strategy = \"restart\" }] }\n"), 4, 14,
     "service[0].recovery.strategy", "cannot be combined with ladder"},
    {"LadderAndMaxAttempts",
     service("recovery = { ladder = [{ strategy = \"restart\" }], max_attempts = 2 }\n"), 4, 51,
     "service[0].recovery.max_attempts", "cannot be combined with ladder"},
    {"LadderNotAnArray", service("recovery = { ladder = \"restart\" }\n"), 4, 23,
     "service[0].recovery.ladder", "expected an array"},
    {"LadderEmpty", service("recovery = { ladder = [] }\n"), 4, 23, "service[0].recovery.ladder",
     "must not be empty"},
    {"LadderStepNotATable", service("recovery = { ladder = [\"restart\"] }\n"), 4, 24,
     "service[0].recovery.ladder[0]", "expected a table"},
    {"LadderStepWithoutStrategy", service("recovery = { ladder = [{ attempts = 2 }] }\n"), 4, 24,
     "service[0].recovery.ladder[0].strategy", "missing required key"},
    {"LadderStepUnknownKey",
     service("recovery = { ladder = [{ strategy = \"restart\", max_attempts = 2 }] }\n"), 4, 48,
     "service[0].recovery.ladder[0].max_attempts", "unknown key"},
    {"LadderStepUnknownStrategy", service("recovery = { ladder = [{ strategy = \"reboot\" }] }\n"), 4, 37,
     "service[0].recovery.ladder[0].strategy", "unknown recovery strategy \"reboot\""},
    {"LadderAttemptsZero", service("recovery = { ladder = [{ strategy = \"restart\", attempts = 0 }] }\n"), 4,
     59, "service[0].recovery.ladder[0].attempts", "at least 1"},
    {"LadderMiddleStepWithoutAttempts",
     service("recovery = { ladder = [{ strategy = \"restart\" }, { strategy = \"notify_admin\" }] }\n"), 4,
     24, "service[0].recovery.ladder[0].attempts", "only the last step may leave it out"},
    {"NotifyAdminNotLast",
     service("recovery = { ladder = [{ strategy = \"notify_admin\", attempts = 1 }, { strategy = \"restart\" "
             "}] }\n"),
     4, 37, "service[0].recovery.ladder[0].strategy", "notify_admin step must be the last one"},
    {"NoneNotLast",
     service("recovery = { ladder = [{ strategy = \"none\", attempts = 1 }, { strategy = \"restart\" }] }\n"),
     4, 37, "service[0].recovery.ladder[0].strategy", "none step must be the last one"},
    {"SafeModeStepWithoutSafeModeTable",
     service("recovery = { ladder = [{ strategy = \"restart\", attempts = 1 }, { strategy = \"safe_mode\" }] "
             "}\n"),
     4, 77, "service[0].recovery.ladder[1].strategy", "needs a safe_mode table"},
    {"SafeModeShortFormWithoutSafeModeTable", service("recovery = { strategy = \"safe_mode\" }\n"), 4, 25,
     "service[0].recovery.strategy", "needs a safe_mode table"},
    {"SafeModeClassLadderWithoutSafeModeTable",
     service("recovery = { classes = { oom = [{ strategy = \"safe_mode\" }] } }\n"), 4, 46,
     "service[0].recovery.classes.oom[0].strategy", "needs a safe_mode table"},
    {"BackoffFactorBelowOne", service("recovery = { backoff_factor = 0.5 }\n"), 4, 31,
     "service[0].recovery.backoff_factor", "must be at least 1"},
    {"JitterAboveOne", service("recovery = { jitter = 1.5 }\n"), 4, 23, "service[0].recovery.jitter",
     "between 0 and 1"},
    {"JitterNegative", service("recovery = { ladder = [{ strategy = \"restart\", jitter = -0.1 }] }\n"), 4,
     57, "service[0].recovery.ladder[0].jitter", "between 0 and 1"},
    {"MaxDelayBelowDelay", service("recovery = { delay_seconds = 10, max_delay_seconds = 5 }\n"), 4, 54,
     "service[0].recovery.max_delay_seconds", "must be at least delay_seconds (10), got 5"},
    {"BackoffDelayAboveTheDefaultCap",
     service("recovery = { strategy = \"restart_with_backoff\", delay_seconds = 600 }\n"), 4, 65,
     "service[0].recovery.delay_seconds", "above max_delay_seconds (300, the default)"},
    {"MaxAttemptsWithLadderStepKey", service("recovery = { attempts = 3 }\n"), 4, 14,
     "service[0].recovery.attempts", "unknown key"},
    {"ClassesNotATable", service("recovery = { classes = [] }\n"), 4, 24, "service[0].recovery.classes",
     "expected a table"},
    {"UnknownFailureClass", service("recovery = { classes = { crash = [{ strategy = \"restart\" }] } }\n"), 4,
     26, "service[0].recovery.classes.crash", "unknown failure class \"crash\""},
    {"ClassLadderEmpty", service("recovery = { classes = { oom = [] } }\n"), 4, 32,
     "service[0].recovery.classes.oom", "must not be empty"},
    {"ClassLadderMiddleStepWithoutAttempts",
     service("recovery = { classes = { probe = [{ strategy = \"restart\" }, { strategy = \"none\" }] } }\n"),
     4, 35, "service[0].recovery.classes.probe[0].attempts", "only the last step"},
    {"StabilityZero", service("recovery = { stability_seconds = 0 }\n"), 4, 34,
     "service[0].recovery.stability_seconds", "greater than 0"},
    {"StartSecondsNegative", service("recovery = { start_seconds = -1 }\n"), 4, 30,
     "service[0].recovery.start_seconds", "at least 0"},
    {"StartLimitBurstZero", service("recovery = { start_limit_burst = 0 }\n"), 4, 34,
     "service[0].recovery.start_limit_burst", "at least 1"},
    {"StartLimitIntervalZero", service("recovery = { start_limit_interval_seconds = 0 }\n"), 4, 45,
     "service[0].recovery.start_limit_interval_seconds", "greater than 0"},
    {"ExitCodeAbove255", service("recovery = { success_exit_codes = [0, 256] }\n"), 4, 39,
     "service[0].recovery.success_exit_codes[1]", "too large (at most 255)"},
    {"ExitCodeNegative", service("recovery = { no_restart_exit_codes = [-1] }\n"), 4, 39,
     "service[0].recovery.no_restart_exit_codes[0]", "must not be negative"},
    {"ExitCodeNotAnInteger", service("recovery = { no_restart_exit_codes = [\"78\"] }\n"), 4, 39,
     "service[0].recovery.no_restart_exit_codes[0]", "expected an integer"},
    {"ExitCodeBothSuccessAndNoRestart",
     service("recovery = { success_exit_codes = [0, 2], no_restart_exit_codes = [78, 2] }\n"), 4, 72,
     "service[0].recovery.no_restart_exit_codes[1]", "exit code 2 is also in success_exit_codes"},
    {"ZeroIsASuccessByDefault", service("recovery = { no_restart_exit_codes = [0] }\n"), 4, 39,
     "service[0].recovery.no_restart_exit_codes[0]", "exit code 0 is also in success_exit_codes"},
    {"UnknownSignal", service("recovery = { no_restart_signals = [\"SIGKILL\", \"SIGFOO\"] }\n"), 4, 47,
     "service[0].recovery.no_restart_signals[1]", "unknown signal \"SIGFOO\""},
    {"SignalWithoutPrefix", service("recovery = { no_restart_signals = [\"KILL\"] }\n"), 4, 36,
     "service[0].recovery.no_restart_signals[0]", "unknown signal \"KILL\""},
    {"SignalNumber", service("recovery = { no_restart_signals = [9] }\n"), 4, 36,
     "service[0].recovery.no_restart_signals[0]", "expected a string"},
    {"SignalsNotAnArray", service("recovery = { no_restart_signals = \"SIGKILL\" }\n"), 4, 35,
     "service[0].recovery.no_restart_signals", "expected an array"},

    // Service keys that go with recovery
    {"StopSignalUnknown", service("stop_signal = \"SIGTERMINATE\"\n"), 4, 15, "service[0].stop_signal",
     "unknown signal \"SIGTERMINATE\""},
    {"StopSignalLowercase", service("stop_signal = \"sigterm\"\n"), 4, 15, "service[0].stop_signal",
     "unknown signal"},
    {"UmaskIntegerTooLarge", service("umask = 512\n"), 4, 9, "service[0].umask", "too large (at most 511)"},
    {"UmaskStringNotOctal", service("umask = \"0028\"\n"), 4, 9, "service[0].umask",
     "expected one to four octal digits"},
    {"UmaskStringTooLong", service("umask = \"00027\"\n"), 4, 9, "service[0].umask", "octal digits"},
    {"UmaskStringEmpty", service("umask = \"\"\n"), 4, 9, "service[0].umask", "octal digits"},
    {"UmaskStringAbove0777", service("umask = \"1000\"\n"), 4, 9, "service[0].umask", "at most 0777"},
    {"UmaskBoolean", service("umask = true\n"), 4, 9, "service[0].umask",
     "expected a string of octal digits or an integer, found a boolean"},
    {"UnknownServiceType", service("type = \"forking\"\n"), 4, 8, "service[0].type",
     "unknown service type \"forking\""},
    {"StartTimeoutZero", service("start_timeout_seconds = 0\n"), 4, 25, "service[0].start_timeout_seconds",
     "greater than 0"},
    {"WatchdogNegative", service("watchdog_seconds = -1\n"), 4, 20, "service[0].watchdog_seconds",
     "at least 0"},
    {"RlimitsNotATable", service("rlimits = 1024\n"), 4, 11, "service[0].rlimits", "expected a table"},
    {"RlimitUnknown", service("rlimits = { files = 1024 }\n"), 4, 13, "service[0].rlimits.files",
     "unknown resource limit \"files\""},
    {"RlimitNegative", service("rlimits = { nofile = -1 }\n"), 4, 22, "service[0].rlimits.nofile",
     "must not be negative"},
    {"RlimitUnlimitedWord", service("rlimits = { core = \"unlimited\" }\n"), 4, 20, "service[0].rlimits.core",
     "expected a non-negative integer or \"infinity\", got \"unlimited\""},
    {"RlimitFloat", service("rlimits = { cpu = 1.5 }\n"), 4, 19, "service[0].rlimits.cpu",
     "expected a non-negative integer or \"infinity\""},
    {"RlimitSoftAboveHard", service("rlimits = { nofile = { soft = 4096, hard = 1024 } }\n"), 4, 31,
     "service[0].rlimits.nofile.soft", "above the hard limit (1024)"},
    {"RlimitInfiniteSoftFiniteHard", service("rlimits = { stack = { soft = \"infinity\", hard = 10 } }\n"), 4,
     30, "service[0].rlimits.stack.soft", "above the hard limit (10)"},
    {"RlimitMissingHard", service("rlimits = { nofile = { soft = 1024 } }\n"), 4, 22,
     "service[0].rlimits.nofile.hard", "missing required key"},
    {"RlimitUnknownPairKey", service("rlimits = { nofile = { soft = 1, hard = 2, max = 3 } }\n"), 4, 44,
     "service[0].rlimits.nofile.max", "unknown key"},
    {"SafeModeNotATable", service("safe_mode = true\n"), 4, 13, "service[0].safe_mode", "expected a table"},
    {"SafeModeUnknownKey", service("safe_mode = { command = [\"/bin/true\"] }\n"), 4, 15,
     "service[0].safe_mode.command", "unknown key"},
    {"SafeModeExecEmpty", service("safe_mode = { exec = [] }\n"), 4, 22, "service[0].safe_mode.exec",
     "must not be empty"},
    {"SafeModeExecRelative", service("safe_mode = { exec = [\"true\"] }\n"), 4, 23,
     "service[0].safe_mode.exec", "must be an absolute path"},
    {"SafeModeStabilityZero", service("safe_mode = { stability_seconds = 0 }\n"), 4, 35,
     "service[0].safe_mode.stability_seconds", "greater than 0"},
    {"SafeModeEnvironmentValue", service("safe_mode = { environment = { A = 1 } }\n"), 4, 35,
     "service[0].safe_mode.environment.A", "expected a string"},
    {"StandbyNotATable", service("standby = \"SIGUSR1\"\n"), 4, 11, "service[0].standby", "expected a table"},
    {"StandbyUnknownKey", service("standby = { signal = \"SIGUSR1\" }\n"), 4, 13, "service[0].standby.signal",
     "unknown key"},
    {"StandbyUnknownSignal", service("standby = { promote_signal = \"USR1\" }\n"), 4, 30,
     "service[0].standby.promote_signal", "unknown signal \"USR1\""},
    {"StandbyUncatchableSignal", service("standby = { promote_signal = \"SIGKILL\" }\n"), 4, 30,
     "service[0].standby.promote_signal", "a signal the standby can catch"},

    // depends_on
    {"DependsOnNotAnArray", service("depends_on = \"db\"\n"), 4, 14, "service[0].depends_on",
     "expected an array"},
    {"DependsOnItself", service("depends_on = [\"svc\"]\n"), 4, 15, "service[0].depends_on[0]",
     "cannot depend on itself"},
    {"DependsOnUnknown", service("depends_on = [\"ghost\"]\n"), 4, 15, "service[0].depends_on[0]",
     "no service named \"ghost\""},
    {"DependsOnTwice",
     service("depends_on = [\"db\", \"db\"]\n") + "[[service]]\nname = \"db\"\nexec = [\"/bin/true\"]\n", 4,
     21, "service[0].depends_on[1]", "\"db\" is already listed"},
    {"DependencyCycleOfTwo",
     service("depends_on = [\"db\"]\n") +
         "[[service]]\nname = \"db\"\nexec = [\"/bin/true\"]\ndepends_on = [\"svc\"]\n",
     8, 15, "service[1].depends_on[0]", "dependency cycle: svc -> db -> svc"},
    {"DependencyCycleOfThree",
     "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\ndepends_on = [\"b\"]\n"
     "[[service]]\nname = \"b\"\nexec = [\"/bin/true\"]\ndepends_on = [\"c\"]\n"
     "[[service]]\nname = \"c\"\nexec = [\"/bin/true\"]\ndepends_on = [\"d\", \"a\"]\n"
     "[[service]]\nname = \"d\"\nexec = [\"/bin/true\"]\n",
     12, 20, "service[2].depends_on[1]", "dependency cycle: a -> b -> c -> a"},
    {"DependencyCycleBehindAnAcyclicStart",
     "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\ndepends_on = [\"b\"]\n"
     "[[service]]\nname = \"b\"\nexec = [\"/bin/true\"]\ndepends_on = [\"c\"]\n"
     "[[service]]\nname = \"c\"\nexec = [\"/bin/true\"]\ndepends_on = [\"b\"]\n",
     12, 15, "service[2].depends_on[0]", "dependency cycle: b -> c -> b"},

    // [crash_recovery] additions
    {"RestartBudgetBurstZero", "[crash_recovery]\nrestart_budget_burst = 0\n", 2, 24,
     "crash_recovery.restart_budget_burst", "at least 1"},
    {"RestartBudgetIntervalZero", "[crash_recovery]\nrestart_budget_interval_seconds = 0\n", 2, 35,
     "crash_recovery.restart_budget_interval_seconds", "greater than 0"},
    {"NotifyCommandNotAnArray", "[crash_recovery]\nnotify_command = \"/bin/true\"\n", 2, 18,
     "crash_recovery.notify_command", "expected an array"},
    {"NotifyCommandRelative", "[crash_recovery]\nnotify_command = [\"mail\", \"root\"]\n", 2, 19,
     "crash_recovery.notify_command", "program \"mail\" must be an absolute path"},
    {"NotifyCommandMissing", "[crash_recovery]\nnotify_command = [\"/nonexistent/notify\"]\n", 2, 19,
     "crash_recovery.notify_command", "does not exist"},
    {"NotifyCommandElementNotAString", "[crash_recovery]\nnotify_command = [\"/bin/true\", 3]\n", 2, 32,
     "crash_recovery.notify_command[1]", "expected a string"},
    {"SystemSafeModeNotABoolean", "[crash_recovery]\nsystem_safe_mode = 1\n", 2, 20,
     "crash_recovery.system_safe_mode", "expected a boolean"},
    {"StateVersionsKeptZero", "[crash_recovery]\nstate_versions_kept = 0\n", 2, 23,
     "crash_recovery.state_versions_kept", "must be at least 1, got 0"},
    {"StateVersionsKeptAbove100", "[crash_recovery]\nstate_versions_kept = 101\n", 2, 23,
     "crash_recovery.state_versions_kept", "101 is too large (at most 100)"},
    {"StateVersionsKeptNotAnInteger", "[crash_recovery]\nstate_versions_kept = 3.0\n", 2, 23,
     "crash_recovery.state_versions_kept", "expected an integer"},
    {"StateMaxBytesZero", "[crash_recovery]\nstate_max_bytes = 0\n", 2, 19, "crash_recovery.state_max_bytes",
     "must be at least 1, got 0"},
    {"StateMaxBytesNegative", "[crash_recovery]\nstate_max_bytes = -1\n", 2, 19,
     "crash_recovery.state_max_bytes", "must not be negative"},
    {"StateMaxBytesAbove64MiB", "[crash_recovery]\nstate_max_bytes = 67108865\n", 2, 19,
     "crash_recovery.state_max_bytes", "67108865 is too large (at most 67108864)"},
    {"StateMaxBytesAString", "[crash_recovery]\nstate_max_bytes = \"1M\"\n", 2, 19,
     "crash_recovery.state_max_bytes", "expected an integer, found a string"},
    {"StatePoisonCrashesZero", "[crash_recovery]\nstate_poison_crashes = 0\n", 2, 24,
     "crash_recovery.state_poison_crashes", "must be at least 1, got 0"},
    {"StatePoisonCrashesAbove100", "[crash_recovery]\nstate_poison_crashes = 1000\n", 2, 24,
     "crash_recovery.state_poison_crashes", "1000 is too large (at most 100)"},

    // Probes
    {"ProbeNotATable", service("liveness_probe = \"tcp\"\n"), 4, 18, "service[0].liveness_probe",
     "expected a table, found a string"},
    {"ProbeTypeMissing", service("liveness_probe = { port = 80 }\n"), 4, 18, "service[0].liveness_probe.type",
     "missing required key"},
    {"ProbeTypeUnknown", service("liveness_probe = { type = \"grpc\" }\n"), 4, 27,
     "service[0].liveness_probe.type", "unknown probe type \"grpc\" (expected one of exec, tcp, http, dbus)"},
    {"ProbeTypeNotAString", service("liveness_probe = { type = 3 }\n"), 4, 27,
     "service[0].liveness_probe.type", "expected a string, found an integer"},
    {"ProbeUnknownKey", service("liveness_probe = { type = \"tcp\", port = 80, retries = 2 }\n"), 4, 45,
     "service[0].liveness_probe.retries", "unknown key"},
    {"ProbeKeyOfHttpOnATcpProbe", service("liveness_probe = { type = \"tcp\", port = 80, path = \"/\" }\n"),
     4, 45, "service[0].liveness_probe.path", "not a key of tcp probes (only of http probes)"},
    {"ProbeKeyOfExecOnAnHttpProbe",
     service("readiness_probe = { type = \"http\", port = 80, command = [\"/bin/true\"] }\n"), 4, 47,
     "service[0].readiness_probe.command", "not a key of http probes (only of exec probes)"},
    {"ProbeKeyOfTcpOnADbusProbe", service("readiness_probe = { type = \"dbus\", port = 80 }\n"), 4, 36,
     "service[0].readiness_probe.port", "not a key of dbus probes (only of tcp, http probes)"},
    {"ProbeExecCommandMissing", service("liveness_probe = { type = \"exec\" }\n"), 4, 18,
     "service[0].liveness_probe.command", "missing required key for exec probes"},
    {"ProbeExecCommandEmpty", service("liveness_probe = { type = \"exec\", command = [] }\n"), 4, 45,
     "service[0].liveness_probe.command", "must not be empty"},
    {"ProbeExecCommandNotAnArray", service("liveness_probe = { type = \"exec\", command = \"/bin/true\" }\n"),
     4, 45, "service[0].liveness_probe.command", "expected an array, found a string"},
    {"ProbeExecCommandRelative", service("liveness_probe = { type = \"exec\", command = [\"true\"] }\n"), 4,
     46, "service[0].liveness_probe.command", "program \"true\" must be an absolute path"},
    {"ProbeTcpPortZero", service("readiness_probe = { type = \"tcp\", port = 0 }\n"), 4, 42,
     "service[0].readiness_probe.port", "must be at least 1, got 0"},
    {"ProbeTcpPort70000", service("readiness_probe = { type = \"tcp\", port = 70000 }\n"), 4, 42,
     "service[0].readiness_probe.port", "70000 is too large (at most 65535)"},
    {"ProbeTcpPortNegative", service("readiness_probe = { type = \"tcp\", port = -80 }\n"), 4, 42,
     "service[0].readiness_probe.port", "must not be negative"},
    {"ProbeTcpPortAString", service("readiness_probe = { type = \"tcp\", port = \"80\" }\n"), 4, 42,
     "service[0].readiness_probe.port", "expected an integer, found a string"},
    {"ProbeTcpPortMissing", service("readiness_probe = { type = \"tcp\", host = \"::1\" }\n"), 4, 19,
     "service[0].readiness_probe.port", "missing required key for tcp probes"},
    {"ProbeTcpHostName",
     service("readiness_probe = { type = \"tcp\", host = \"db.example.com\", port = 5432 }\n"), 4, 42,
     "service[0].readiness_probe.host",
     "expected a numeric IPv4 or IPv6 address or \"localhost\", got \"db.example.com\" (names are not looked "
     "up)"},
    {"ProbeTcpHostBracketedIpv6",
     service("readiness_probe = { type = \"tcp\", host = \"[::1]\", port = 80 }\n"), 4, 42,
     "service[0].readiness_probe.host", "got \"[::1]\""},
    {"ProbeHttpPortMissing", service("readiness_probe = { type = \"http\", path = \"/health\" }\n"), 4, 19,
     "service[0].readiness_probe.port", "missing required key for http probes"},
    {"ProbeHttpPathWithoutSlash",
     service("readiness_probe = { type = \"http\", port = 80, path = \"healthz\" }\n"), 4, 54,
     "service[0].readiness_probe.path", "must start with \"/\", got \"healthz\""},
    {"ProbeHttpPathWithASpace",
     service("readiness_probe = { type = \"http\", port = 80, path = \"/a b\" }\n"), 4, 54,
     "service[0].readiness_probe.path", "must not contain spaces or control characters"},
    {"ProbeHttpHostHeaderWithALineBreak",
     service("readiness_probe = { type = \"http\", port = 80, host_header = \"a\\r\\nX-Evil: 1\" }\n"), 4, 61,
     "service[0].readiness_probe.host_header", "must not contain spaces or control characters"},
    {"ProbeHttpHostHeaderEmpty",
     service("readiness_probe = { type = \"http\", port = 80, host_header = \"\" }\n"), 4, 61,
     "service[0].readiness_probe.host_header", "must not be empty"},
    {"ProbeDbusNameMissing", service("readiness_probe = { type = \"dbus\" }\n"), 4, 19,
     "service[0].readiness_probe.name", "missing required key for dbus probes"},
    {"ProbeDbusNameOfOneElement", service("readiness_probe = { type = \"dbus\", name = \"foo\" }\n"), 4, 43,
     "service[0].readiness_probe.name", "invalid well-known bus name \"foo\""},
    {"ProbeDbusNameElementStartsWithADigit",
     service("readiness_probe = { type = \"dbus\", name = \"org.1example\" }\n"), 4, 43,
     "service[0].readiness_probe.name", "invalid well-known bus name"},
    {"ProbeDbusUniqueName", service("readiness_probe = { type = \"dbus\", name = \":1.42\" }\n"), 4, 43,
     "service[0].readiness_probe.name", "invalid well-known bus name"},
    {"ProbeDbusNameWithAnEmptyElement",
     service("readiness_probe = { type = \"dbus\", name = \"org..example\" }\n"), 4, 43,
     "service[0].readiness_probe.name", "invalid well-known bus name"},
    {"ProbeLivenessSuccessThresholdTwo",
     service("liveness_probe = { type = \"tcp\", port = 80, success_threshold = 2 }\n"), 4, 65,
     "service[0].liveness_probe.success_threshold", "must be 1 for a liveness probe, got 2"},
    {"ProbeSuccessThresholdZero",
     service("readiness_probe = { type = \"tcp\", port = 80, success_threshold = 0 }\n"), 4, 66,
     "service[0].readiness_probe.success_threshold", "must be at least 1, got 0"},
    {"ProbeFailureThresholdZero",
     service("readiness_probe = { type = \"tcp\", port = 80, failure_threshold = 0 }\n"), 4, 66,
     "service[0].readiness_probe.failure_threshold", "must be at least 1, got 0"},
    {"ProbeTimeoutZero", service("readiness_probe = { type = \"tcp\", port = 80, timeout_seconds = 0 }\n"), 4,
     64, "service[0].readiness_probe.timeout_seconds", "must be greater than 0"},
    {"ProbePeriodZero", service("readiness_probe = { type = \"tcp\", port = 80, period_seconds = 0 }\n"), 4,
     63, "service[0].readiness_probe.period_seconds", "must be greater than 0"},
    {"ProbeInitialDelayNegative",
     service("readiness_probe = { type = \"tcp\", port = 80, initial_delay_seconds = -1 }\n"), 4, 70,
     "service[0].readiness_probe.initial_delay_seconds", "must be at least 0"},
    {"ProbeInSubTableForm", service("[service.liveness_probe]\ntype = \"tcp\"\nport = 0\n"), 6, 8,
     "service[0].liveness_probe.port", "must be at least 1, got 0"},
    {"ProbeOfTheSecondService",
     service("") + "[[service]]\nname = \"other\"\nexec = [\"/bin/true\"]\n"
                   "readiness_probe = { type = \"tcp\", port = 0 }\n",
     7, 42, "service[1].readiness_probe.port", "must be at least 1, got 0"},
};

INSTANTIATE_TEST_SUITE_P(Rules, InvalidConfig, testing::ValuesIn(kErrorCases),
                         [](const testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------------------
// Probes

TEST(ParseProbes, ServicesHaveNoProbesUnlessConfigured) {
    Config config = parseConfig(service(""), kSourcePath);
    EXPECT_FALSE(config.services[0].liveness_probe.has_value());
    EXPECT_FALSE(config.services[0].readiness_probe.has_value());
}

TEST(ParseProbes, LeftOutKeysTakeTheKubernetesDefaults) {
    Config config = parseConfig(service("liveness_probe = { type = \"tcp\", port = 8080 }\n"), kSourcePath);
    ASSERT_TRUE(config.services[0].liveness_probe.has_value());
    const ProbeConfig& probe = *config.services[0].liveness_probe;
    EXPECT_EQ(probe.type, ProbeType::Tcp);
    EXPECT_EQ(probe.host, "127.0.0.1");
    EXPECT_EQ(probe.port, 8080);
    EXPECT_DOUBLE_EQ(probe.initial_delay_seconds, 0.0);
    EXPECT_DOUBLE_EQ(probe.period_seconds, 10.0);
    EXPECT_DOUBLE_EQ(probe.timeout_seconds, 1.0);
    EXPECT_EQ(probe.success_threshold, 1U);
    EXPECT_EQ(probe.failure_threshold, 3U);
    EXPECT_FALSE(config.services[0].readiness_probe.has_value());

    const ProbeConfig http =
        *parseConfig(service("readiness_probe = { type = \"http\", port = 80 }\n"), kSourcePath)
             .services[0]
             .readiness_probe;
    EXPECT_EQ(http.host, "127.0.0.1");
    EXPECT_EQ(http.path, "/");
    EXPECT_EQ(http.host_header, std::nullopt);
}

TEST(ParseProbes, ProbeTypeNames) {
    EXPECT_EQ(toString(ProbeType::Exec), "exec");
    EXPECT_EQ(toString(ProbeType::Tcp), "tcp");
    EXPECT_EQ(toString(ProbeType::Http), "http");
    EXPECT_EQ(toString(ProbeType::Dbus), "dbus");
}

TEST(ParseProbes, ExecProbeWithEveryTimingKey) {
    test::TempDir directory;
    fs::path check = writeFileIn(directory, "check", "#!/bin/sh\n", fs::perms::owner_all);
    Config config = parseConfig(
        service(
            R"(liveness_probe = { type = "exec", command = ["${config_dir}/check", "--quick"], initial_delay_seconds = 5, period_seconds = 2.5, timeout_seconds = 0.5, success_threshold = 1, failure_threshold = 6 }
)"),
        directory.path() / "tau.toml");
    const ProbeConfig& probe = *config.services[0].liveness_probe;
    EXPECT_EQ(probe.type, ProbeType::Exec);
    EXPECT_EQ(probe.command, (std::vector<std::string>{check.string(), "--quick"}));
    EXPECT_DOUBLE_EQ(probe.initial_delay_seconds, 5.0);
    EXPECT_DOUBLE_EQ(probe.period_seconds, 2.5);
    EXPECT_DOUBLE_EQ(probe.timeout_seconds, 0.5);
    EXPECT_EQ(probe.success_threshold, 1U);
    EXPECT_EQ(probe.failure_threshold, 6U);
}

TEST(ParseProbes, TcpProbeTakesIpv4Ipv6AndLocalhost) {
    for (const char* host : {"10.0.0.7", "::1", "fe80::1", "localhost"}) {
        Config config = parseConfig(service(std::string("readiness_probe = { type = \"tcp\", host = \"") +
                                            host + "\", port = 65535 }\n"),
                                    kSourcePath);
        const ProbeConfig& probe = *config.services[0].readiness_probe;
        EXPECT_EQ(probe.type, ProbeType::Tcp);
        EXPECT_EQ(probe.host, host);
        EXPECT_EQ(probe.port, 65535);
    }
}

TEST(ParseProbes, HttpProbeWithEveryKey) {
    Config config = parseConfig(
        service(
            R"(readiness_probe = { type = "http", host = "::1", port = 8443, path = "/healthz?full=1", host_header = "web.internal", success_threshold = 3, failure_threshold = 1 }
)"),
        kSourcePath);
    const ProbeConfig& probe = *config.services[0].readiness_probe;
    EXPECT_EQ(probe.type, ProbeType::Http);
    EXPECT_EQ(probe.host, "::1");
    EXPECT_EQ(probe.port, 8443);
    EXPECT_EQ(probe.path, "/healthz?full=1");
    EXPECT_EQ(probe.host_header, std::optional<std::string>("web.internal"));
    EXPECT_EQ(probe.success_threshold, 3U) << "only a liveness probe is held to 1";
    EXPECT_EQ(probe.failure_threshold, 1U);
}

TEST(ParseProbes, DbusProbeNamesAWellKnownName) {
    for (const char* name : {"org.example.Foo", "com.example-corp.a_b", "a.b"}) {
        Config config = parseConfig(
            service(std::string("readiness_probe = { type = \"dbus\", name = \"") + name + "\" }\n"),
            kSourcePath);
        const ProbeConfig& probe = *config.services[0].readiness_probe;
        EXPECT_EQ(probe.type, ProbeType::Dbus);
        EXPECT_EQ(probe.bus_name, name);
    }
}

TEST(ParseProbes, BothProbesInSubTableForm) {
    Config config = parseConfig(service(R"([service.liveness_probe]
type = "exec"
command = ["/bin/true"]
period_seconds = 30
[service.readiness_probe]
type = "http"
port = 8080
path = "/ready"
)"),
                                kSourcePath);
    const ServiceConfig& svc = config.services[0];
    ASSERT_TRUE(svc.liveness_probe.has_value());
    ASSERT_TRUE(svc.readiness_probe.has_value());
    EXPECT_EQ(svc.liveness_probe->type, ProbeType::Exec);
    EXPECT_EQ(svc.liveness_probe->command, (std::vector<std::string>{"/bin/true"}));
    EXPECT_DOUBLE_EQ(svc.liveness_probe->period_seconds, 30.0);
    EXPECT_EQ(svc.readiness_probe->type, ProbeType::Http);
    EXPECT_EQ(svc.readiness_probe->port, 8080);
    EXPECT_EQ(svc.readiness_probe->path, "/ready");
}

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

// ---------------------------------------------------------------------------------------------------------
// Recovery in depth: ladders, failure classes, exit codes, and the service keys that go with them

const std::string kSafeModeTable = "safe_mode = { exec = [\"/bin/true\", \"--safe\"] }\n";

TEST(ParseRecovery, ShortFormAttemptsComeFromCrashRecoveryWhereverItIsDeclared) {
    // [crash_recovery] after the services still supplies the default for max_attempts.
    Config config =
        parseConfig(service("recovery = { strategy = \"restart_with_backoff\", delay_seconds = 2 }\n") +
                        "[crash_recovery]\nmax_recovery_attempts = 9\n",
                    kSourcePath);
    ASSERT_EQ(config.services[0].recovery.ladder.size(), 1U);
    const LadderStep& step = config.services[0].recovery.ladder[0];
    EXPECT_EQ(step.strategy, RecoveryStrategy::RestartWithBackoff);
    EXPECT_DOUBLE_EQ(step.delay_seconds, 2.0);
    EXPECT_EQ(step.attempts, std::optional<unsigned>(9));
}

TEST(ParseRecovery, ServiceWithoutRecoveryTableGetsOneBoundedRestartStep) {
    Config config = parseConfig("[crash_recovery]\nmax_recovery_attempts = 4\n" + service(""), kSourcePath);
    ASSERT_EQ(config.services[0].recovery.ladder.size(), 1U);
    EXPECT_EQ(config.services[0].recovery.ladder[0].strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(config.services[0].recovery.ladder[0].attempts, std::optional<unsigned>(4));
}

TEST(ParseRecovery, EveryStrategyIsAcceptedInTheShortForm) {
    for (const char* name :
         {"none", "restart", "restart_with_delay", "restart_with_backoff", "safe_mode", "notify_admin"}) {
        Config config =
            parseConfig(service(std::string("recovery = { strategy = \"") + name + "\" }\n" + kSafeModeTable),
                        kSourcePath);
        EXPECT_EQ(toString(config.services[0].recovery.ladder.at(0).strategy), name);
    }
}

TEST(ParseRecovery, LadderOfInlineTables) {
    Config config =
        parseConfig(service(R"(safe_mode = { exec = ["/bin/true", "--safe"], stability_seconds = 45 }
[service.recovery]
ladder = [
  { strategy = "restart", attempts = 3 },
  { strategy = "restart_with_backoff", attempts = 5, delay_seconds = 1, backoff_factor = 3, max_delay_seconds = 60, jitter = 0 },
  { strategy = "safe_mode", attempts = 3, delay_seconds = 10 },
  { strategy = "notify_admin" },
]
)"),
                    kSourcePath);
    const auto& ladder = config.services[0].recovery.ladder;
    ASSERT_EQ(ladder.size(), 4U);
    EXPECT_EQ(ladder[0].strategy, RecoveryStrategy::Restart);
    EXPECT_EQ(ladder[0].attempts, std::optional<unsigned>(3));
    EXPECT_EQ(ladder[1].strategy, RecoveryStrategy::RestartWithBackoff);
    EXPECT_EQ(ladder[1].attempts, std::optional<unsigned>(5));
    EXPECT_DOUBLE_EQ(ladder[1].delay_seconds, 1.0);
    EXPECT_DOUBLE_EQ(ladder[1].backoff_factor, 3.0);
    EXPECT_DOUBLE_EQ(ladder[1].max_delay_seconds, 60.0);
    EXPECT_DOUBLE_EQ(ladder[1].jitter, 0.0);
    EXPECT_EQ(ladder[2].strategy, RecoveryStrategy::SafeMode);
    EXPECT_DOUBLE_EQ(ladder[2].delay_seconds, 10.0);
    EXPECT_DOUBLE_EQ(ladder[2].jitter, 0.1);
    EXPECT_EQ(ladder[3].strategy, RecoveryStrategy::NotifyAdmin);
    EXPECT_EQ(ladder[3].attempts, std::nullopt);
    ASSERT_TRUE(config.services[0].safe_mode.has_value());
    EXPECT_EQ(config.services[0].safe_mode->exec, (std::vector<std::string>{"/bin/true", "--safe"}));
    EXPECT_TRUE(config.services[0].safe_mode->environment.empty());
    EXPECT_DOUBLE_EQ(config.services[0].safe_mode->stability_seconds, 45.0);
}

TEST(ParseRecovery, LadderAsAnArrayOfTables) {
    Config config = parseConfig(service(R"([[service.recovery.ladder]]
strategy = "restart_with_delay"
attempts = 2
delay_seconds = 0.5
[[service.recovery.ladder]]
strategy = "restart_with_backoff"
)"),
                                kSourcePath);
    const auto& ladder = config.services[0].recovery.ladder;
    ASSERT_EQ(ladder.size(), 2U);
    EXPECT_EQ(ladder[0].strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_EQ(ladder[0].attempts, std::optional<unsigned>(2));
    EXPECT_DOUBLE_EQ(ladder[0].delay_seconds, 0.5);
    EXPECT_EQ(ladder[1].strategy, RecoveryStrategy::RestartWithBackoff);
    EXPECT_EQ(ladder[1].attempts, std::nullopt); // the last step: every failure that follows
}

TEST(ParseRecovery, ClassLaddersPerFailureClass) {
    Config config = parseConfig(service(R"([service.recovery]
strategy = "restart"
[service.recovery.classes]
oom = [{ strategy = "restart_with_delay", attempts = 1, delay_seconds = 30 }, { strategy = "notify_admin" }]
start = [{ strategy = "restart_with_backoff", delay_seconds = 0.1 }]
resource_limit = [{ strategy = "none" }]
)"),
                                kSourcePath);
    const auto& classes = config.services[0].recovery.class_ladders;
    ASSERT_EQ(classes.size(), 3U);
    ASSERT_EQ(classes.at(FailureClass::Oom).size(), 2U);
    EXPECT_EQ(classes.at(FailureClass::Oom)[0].strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_DOUBLE_EQ(classes.at(FailureClass::Oom)[0].delay_seconds, 30.0);
    EXPECT_EQ(classes.at(FailureClass::Oom)[1].strategy, RecoveryStrategy::NotifyAdmin);
    ASSERT_EQ(classes.at(FailureClass::Start).size(), 1U);
    EXPECT_EQ(classes.at(FailureClass::Start)[0].strategy, RecoveryStrategy::RestartWithBackoff);
    EXPECT_EQ(classes.at(FailureClass::ResourceLimit).at(0).strategy, RecoveryStrategy::None);
    // The default ladder is still the short form.
    ASSERT_EQ(config.services[0].recovery.ladder.size(), 1U);
    EXPECT_EQ(config.services[0].recovery.ladder[0].strategy, RecoveryStrategy::Restart);
}

TEST(ParseRecovery, ClassLadderMayAskForSafeModeWhenTheServiceHasIt) {
    Config config = parseConfig(
        service(kSafeModeTable + "recovery = { classes = { watchdog = [{ strategy = \"safe_mode\" }] } }\n"),
        kSourcePath);
    EXPECT_EQ(config.services[0].recovery.class_ladders.at(FailureClass::Watchdog).at(0).strategy,
              RecoveryStrategy::SafeMode);
}

TEST(ParseRecovery, ExitCodesAndSignals) {
    Config config = parseConfig(service("recovery = { success_exit_codes = [0, 143], no_restart_exit_codes = "
                                        "[78, 0x40], no_restart_signals = [\"SIGABRT\", \"SIGUSR1\"] }\n"),
                                kSourcePath);
    const auto& recovery = config.services[0].recovery;
    EXPECT_EQ(recovery.success_exit_codes, (std::vector<int>{0, 143}));
    EXPECT_EQ(recovery.no_restart_exit_codes, (std::vector<int>{78, 64}));
    EXPECT_EQ(recovery.no_restart_signals, (std::vector<int>{SIGABRT, SIGUSR1}));
}

TEST(ParseRecovery, NoSuccessCodesMakesEveryExitAFailure) {
    Config config = parseConfig(
        service("recovery = { success_exit_codes = [], no_restart_exit_codes = [0] }\n"), kSourcePath);
    EXPECT_TRUE(config.services[0].recovery.success_exit_codes.empty());
    EXPECT_EQ(config.services[0].recovery.no_restart_exit_codes, std::vector<int>{0});
}

TEST(ParseRecovery, BackoffWithADelayAboveTheDefaultCapNeedsItsOwnCap) {
    Config config =
        parseConfig(service("recovery = { strategy = \"restart_with_backoff\", delay_seconds = 600, "
                            "max_delay_seconds = 3600 }\n"),
                    kSourcePath);
    EXPECT_DOUBLE_EQ(config.services[0].recovery.ladder[0].max_delay_seconds, 3600.0);
    // The cap only limits a backoff; a plain delay may exceed the default.
    Config plain = parseConfig(
        service("recovery = { strategy = \"restart_with_delay\", delay_seconds = 600 }\n"), kSourcePath);
    EXPECT_DOUBLE_EQ(plain.services[0].recovery.ladder[0].delay_seconds, 600.0);
}

TEST(ParseServiceKeys, UmaskAsOctalStringOrInteger) {
    EXPECT_EQ(parseConfig(service("umask = \"0027\"\n"), kSourcePath).services[0].umask, 027U);
    EXPECT_EQ(parseConfig(service("umask = \"77\"\n"), kSourcePath).services[0].umask, 077U);
    EXPECT_EQ(parseConfig(service("umask = \"0\"\n"), kSourcePath).services[0].umask, 0U);
    EXPECT_EQ(parseConfig(service("umask = 0o022\n"), kSourcePath).services[0].umask, 022U);
    EXPECT_EQ(parseConfig(service("umask = 511\n"), kSourcePath).services[0].umask, 0777U);
}

TEST(ParseServiceKeys, ResourceLimitsInEveryForm) {
    Config config = parseConfig(service(R"([service.rlimits]
as = 1073741824
core = "infinity"
cpu = { soft = 60, hard = "infinity" }
data = 0
fsize = 1
locks = 2
memlock = 3
msgqueue = 4
nice = 5
nofile = { soft = 1024, hard = 1024 }
nproc = 6
rss = 7
rtprio = 8
sigpending = 9
stack = 10
)"),
                                kSourcePath);
    const auto& limits = config.services[0].rlimits;
    EXPECT_EQ(limits.size(), 15U);
    EXPECT_EQ(limits.at("as").soft, 1073741824U);
    EXPECT_EQ(limits.at("as").hard, 1073741824U);
    EXPECT_EQ(limits.at("core").soft, RLIM_INFINITY);
    EXPECT_EQ(limits.at("cpu").soft, 60U);
    EXPECT_EQ(limits.at("cpu").hard, RLIM_INFINITY);
    EXPECT_EQ(limits.at("data").hard, 0U);
    EXPECT_EQ(limits.at("nofile").soft, 1024U);
    EXPECT_EQ(limits.at("stack").hard, 10U);
}

TEST(ParseServiceKeys, SignalsByName) {
    Config config = parseConfig(service("stop_signal = \"SIGQUIT\"\nstandby = {}\n"), kSourcePath);
    EXPECT_EQ(config.services[0].stop_signal, SIGQUIT);
    ASSERT_TRUE(config.services[0].standby.has_value());
    EXPECT_EQ(config.services[0].standby->promote_signal, SIGUSR1); // the default
    Config kill = parseConfig(service("stop_signal = \"SIGKILL\"\n"), kSourcePath);
    EXPECT_EQ(kill.services[0].stop_signal, SIGKILL);
}

TEST(ParseServiceKeys, SafeModeWithoutExecKeepsTheNormalCommand) {
    Config config =
        parseConfig(service("safe_mode = { environment = { FEATURES = \"minimal\" } }\n"), kSourcePath);
    ASSERT_TRUE(config.services[0].safe_mode.has_value());
    EXPECT_TRUE(config.services[0].safe_mode->exec.empty());
    EXPECT_EQ(config.services[0].safe_mode->environment.at("FEATURES"), "minimal");
    EXPECT_DOUBLE_EQ(config.services[0].safe_mode->stability_seconds, 60.0);
}

TEST(ParseServiceKeys, SafeModeExecAndNotifyCommandExpandConfigDir) {
    test::TempDir directory;
    fs::path tool = writeFileIn(directory, "tool", "#!/bin/sh\n", fs::perms::owner_all);
    std::string text = R"(
[crash_recovery]
notify_command = ["${config_dir}/tool", "--to=${config_dir}/admins"]
[[service]]
name = "svc"
exec = ["/bin/true"]
safe_mode = { exec = ["${config_dir}/tool", "--safe"] }
)";
    Config config = parseConfig(text, directory.path() / "tau.toml");
    const std::string dir = directory.path().string();
    EXPECT_EQ(config.crash_recovery.notify_command,
              (std::vector<std::string>{tool.string(), "--to=" + dir + "/admins"}));
    EXPECT_EQ(config.services[0].safe_mode->exec, (std::vector<std::string>{tool.string(), "--safe"}));
}

TEST(ParseServiceKeys, DependenciesMayPointForwardAndShareTargets) {
    // A diamond is not a cycle.
    Config config = parseConfig(R"(
[[service]]
name = "app"
exec = ["/bin/true"]
depends_on = ["cache", "db"]
[[service]]
name = "cache"
exec = ["/bin/true"]
depends_on = ["db"]
[[service]]
name = "db"
exec = ["/bin/true"]
)",
                                kSourcePath);
    EXPECT_EQ(config.services[0].depends_on, (std::vector<std::string>{"cache", "db"}));
    EXPECT_EQ(config.services[1].depends_on, std::vector<std::string>{"db"});
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
    ASSERT_EQ(worker.recovery.ladder.size(), 1U);
    EXPECT_EQ(worker.recovery.ladder[0].strategy, RecoveryStrategy::RestartWithDelay);
    EXPECT_DOUBLE_EQ(worker.recovery.ladder[0].delay_seconds, 0.5);
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

namespace tau {
namespace {

TEST(StartOrder, DependenciesStartFirstAndConfigurationOrderIsKeptOtherwise) {
    const std::string text = R"(
[[service]]
name = "web"
exec = ["/bin/sh"]
depends_on = ["db", "cache"]
[[service]]
name = "tool"
exec = ["/bin/sh"]
[[service]]
name = "cache"
exec = ["/bin/sh"]
depends_on = ["db"]
[[service]]
name = "db"
exec = ["/bin/sh"]
)";
    const auto config = parseConfig(text, "/etc/tau/t.toml");
    std::vector<std::string> names;
    for (const auto* service : startOrder(config)) {
        names.push_back(service->name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"db", "cache", "web", "tool"}));
}

} // namespace
} // namespace tau
