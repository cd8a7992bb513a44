#include "tau/config_json.h"

#include <csignal>
#include <gtest/gtest.h>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace tau {
namespace {

using json = nlohmann::ordered_json;

std::vector<std::string> keysOf(const json& object) {
    std::vector<std::string> keys;
    for (const auto& item : object.items()) {
        keys.push_back(item.key());
    }
    return keys;
}

// Every value differs from its default, so that a key wired to the wrong member shows.
Config customConfig() {
    Config config;
    auto& rm = config.resource_monitoring;
    rm.enabled = false;
    rm.interval_seconds = 15;
    rm.cpu_threshold_percent = 70.5;
    rm.memory_threshold_percent = 75.25;
    rm.disk_threshold_percent = 95.0;
    rm.network_monitoring = false;
    rm.temperature_monitoring = false;
    rm.alert_on_threshold = false;
    rm.log_resource_usage = false;
    rm.prometheus_listen = "[::1]:0";

    auto& pm = config.process_management;
    pm.enabled = false;
    pm.max_concurrent_processes = 12;
    pm.process_priority_levels = 3;
    pm.memory_limit_mb = 4096;
    pm.cpu_limit_percent = 33.5;
    pm.limit_check_interval_seconds = 0.25;
    pm.limit_violation_samples = 4;
    pm.auto_cleanup_zombies = false;
    pm.process_isolation = false;
    pm.resource_pooling = false;

    auto& cr = config.crash_recovery;
    cr.enabled = false;
    cr.auto_recovery = false;
    cr.max_recovery_attempts = 9;
    cr.recovery_timeout_seconds = 120;
    cr.save_session_state = false;
    cr.session_state_path = "/srv/tau/state";
    cr.critical_processes = {"db"};
    cr.restart_budget_burst = 7;
    cr.restart_budget_interval_seconds = 2.5;
    cr.notify_command = {"/usr/bin/notify-admin", "--urgent"};
    cr.system_safe_mode = true;
    cr.state_versions_kept = 4;
    cr.state_max_bytes = 2097152;
    cr.state_poison_crashes = 5;

    auto& hc = config.health_checking;
    hc.enabled = false;
    hc.check_interval_seconds = 45;
    hc.system_health_checks = {"cpu_usage"};
    hc.service_health_checks = {"web", "db"};
    hc.alert_on_failure = false;
    hc.auto_restart_failed_services = false;
    hc.health_score_threshold = 0.5;

    auto& lg = config.logging;
    lg.log_level = "debug";
    lg.log_file_path = "/srv/tau/tau.log";
    lg.max_log_size_mb = 7;
    lg.log_rotation = false;
    lg.structured_logging = false;
    lg.log_compression = false;
    lg.audit_logging = false;
    lg.performance_logging = false;

    config.security.admin_groups = {"wheel", "tau-admins"};

    ServiceConfig web;
    web.name = "web";
    web.exec = {"/usr/bin/web", "--port", "8080"};
    web.environment = {{"MODE", "production"}, {"LANG", "C.UTF-8"}};
    web.working_directory = "/srv/web";
    web.user = "www-data";
    web.group = "www";
    web.critical = true;
    web.priority = Priority::High;
    web.cpu_affinity = {0, 2};
    web.memory_limit_mb = 512;
    web.cpu_limit_percent = 25.5;
    web.stop_timeout_seconds = 2.5;
    web.stop_signal = SIGINT;
    web.umask = 027;
    web.type = ServiceType::Notify;
    web.start_timeout_seconds = 30.0;
    web.watchdog_seconds = 5.0;
    web.rlimits = {{"nofile", {1024, 4096}}, {"core", {RLIM_INFINITY, RLIM_INFINITY}}};
    web.depends_on = {"db"};
    web.safe_mode = SafeModeConfig{{"/usr/bin/web", "--safe"}, {{"SAFE", "1"}}, 120.0};
    web.standby = StandbyConfig{SIGUSR2};
    web.recovery.ladder = {LadderStep{RecoveryStrategy::RestartWithBackoff, 4, 0.75, 3.0, 30.0, 0.2},
                           LadderStep{RecoveryStrategy::NotifyAdmin, std::nullopt, 1.0, 2.0, 300.0, 0.1}};
    web.recovery.class_ladders = {
        {FailureClass::Oom, {LadderStep{RecoveryStrategy::SafeMode, 2, 5.0, 2.0, 300.0, 0.0}}}};
    web.recovery.stability_seconds = 90.0;
    web.recovery.start_seconds = 2.5;
    web.recovery.start_limit_burst = 3;
    web.recovery.start_limit_interval_seconds = 20.0;
    web.recovery.success_exit_codes = {0, 2};
    web.recovery.no_restart_exit_codes = {78};
    web.recovery.no_restart_signals = {SIGKILL, SIGSEGV};
    web.liveness_probe = ProbeConfig{ProbeType::Exec,
                                     {"/usr/bin/web-check", "--live"},
                                     "127.0.0.1",
                                     0,
                                     "/",
                                     std::nullopt,
                                     "",
                                     5.0,
                                     20.0,
                                     2.0,
                                     1,
                                     4};
    web.readiness_probe =
        ProbeConfig{ProbeType::Http, {}, "::1", 8080, "/ready", "web.internal", "", 0.5, 3.0, 0.25, 2, 5};
    config.services.push_back(web);

    // Only the required parts: the optional keys must stay out.
    ServiceConfig db;
    db.name = "db";
    db.exec = {"/usr/bin/db"};
    config.services.push_back(db);

    config.source = "/etc/tau-monitor/tau-monitor.toml";
    return config;
}

TEST(ConfigToJson, HasTheTopLevelSectionsInOrder) {
    const json out = configToJson(customConfig());
    EXPECT_EQ(keysOf(out),
              (std::vector<std::string>{"resource_monitoring", "process_management", "crash_recovery",
                                        "health_checking", "logging", "security", "service", "source"}));
    EXPECT_EQ(out.at("source"), "/etc/tau-monitor/tau-monitor.toml");
}

TEST(ConfigToJson, ResourceMonitoring) {
    const json section = configToJson(customConfig()).at("resource_monitoring");
    const json expected = {{"enabled", false},
                           {"interval_seconds", 15},
                           {"cpu_threshold_percent", 70.5},
                           {"memory_threshold_percent", 75.25},
                           {"disk_threshold_percent", 95.0},
                           {"network_monitoring", false},
                           {"temperature_monitoring", false},
                           {"alert_on_threshold", false},
                           {"log_resource_usage", false},
                           {"prometheus_listen", "[::1]:0"},
                           {"thresholds", json::object()}};
    EXPECT_EQ(section, expected) << section.dump(2);
    EXPECT_EQ(keysOf(section), keysOf(expected));
}

TEST(ConfigToJson, ProcessManagement) {
    const json section = configToJson(customConfig()).at("process_management");
    const json expected = {{"enabled", false},
                           {"max_concurrent_processes", 12},
                           {"process_priority_levels", 3},
                           {"memory_limit_mb", 4096},
                           {"cpu_limit_percent", 33.5},
                           {"limit_check_interval_seconds", 0.25},
                           {"limit_violation_samples", 4},
                           {"auto_cleanup_zombies", false},
                           {"process_isolation", false},
                           {"resource_pooling", false}};
    EXPECT_EQ(section, expected) << section.dump(2);
    EXPECT_EQ(keysOf(section), keysOf(expected));
}

TEST(ConfigToJson, CrashRecovery) {
    const json section = configToJson(customConfig()).at("crash_recovery");
    const json expected = {{"enabled", false},
                           {"auto_recovery", false},
                           {"max_recovery_attempts", 9},
                           {"recovery_timeout_seconds", 120},
                           {"save_session_state", false},
                           {"session_state_path", "/srv/tau/state"},
                           {"critical_processes", {"db"}},
                           {"restart_budget_burst", 7},
                           {"restart_budget_interval_seconds", 2.5},
                           {"notify_command", {"/usr/bin/notify-admin", "--urgent"}},
                           {"system_safe_mode", true},
                           {"state_versions_kept", 4},
                           {"state_max_bytes", 2097152},
                           {"state_poison_crashes", 5}};
    EXPECT_EQ(section, expected) << section.dump(2);
    EXPECT_EQ(keysOf(section), keysOf(expected));
}

TEST(ConfigToJson, HealthChecking) {
    const json section = configToJson(customConfig()).at("health_checking");
    const json expected = {{"enabled", false},
                           {"check_interval_seconds", 45},
                           {"system_health_checks", {"cpu_usage"}},
                           {"service_health_checks", {"web", "db"}},
                           {"alert_on_failure", false},
                           {"auto_restart_failed_services", false},
                           {"health_score_threshold", 0.5},
                           {"network_endpoints", json::array()},
                           {"restart_window_seconds", 600.0},
                           {"restart_warning_count", 3},
                           {"status_debounce_seconds", 5.0}};
    EXPECT_EQ(section, expected) << section.dump(2);
    EXPECT_EQ(keysOf(section), keysOf(expected));
}

TEST(ConfigToJson, Logging) {
    const json section = configToJson(customConfig()).at("logging");
    const json expected = {{"log_level", "debug"},        {"log_file_path", "/srv/tau/tau.log"},
                           {"max_log_size_mb", 7},        {"log_rotation", false},
                           {"structured_logging", false}, {"log_compression", false},
                           {"audit_logging", false},      {"performance_logging", false}};
    EXPECT_EQ(section, expected) << section.dump(2);
    EXPECT_EQ(keysOf(section), keysOf(expected));
}

TEST(ConfigToJson, Security) {
    const json section = configToJson(customConfig()).at("security");
    EXPECT_EQ(section, (json{{"admin_groups", {"wheel", "tau-admins"}}})) << section.dump(2);
}

TEST(ConfigToJson, EmptyListsAreEmptyArrays) {
    Config config;
    config.health_checking.service_health_checks.clear();
    const json out = configToJson(config);
    EXPECT_TRUE(out.at("security").at("admin_groups").is_array());
    EXPECT_TRUE(out.at("security").at("admin_groups").empty());
    EXPECT_TRUE(out.at("crash_recovery").at("critical_processes").is_array());
    EXPECT_TRUE(out.at("health_checking").at("service_health_checks").is_array());
}

TEST(ConfigToJson, ServicesAreAnArrayInConfigurationOrder) {
    const json services = configToJson(customConfig()).at("service");
    ASSERT_TRUE(services.is_array());
    ASSERT_EQ(services.size(), 2u);
    EXPECT_EQ(services[0].at("name"), "web");
    EXPECT_EQ(services[1].at("name"), "db");
}

TEST(ConfigToJson, ServiceWithEveryFieldSet) {
    const json web = configToJson(customConfig()).at("service").at(0);
    EXPECT_EQ(keysOf(web), (std::vector<std::string>{"name",
                                                     "exec",
                                                     "environment",
                                                     "working_directory",
                                                     "user",
                                                     "group",
                                                     "critical",
                                                     "priority",
                                                     "cpu_affinity",
                                                     "stop_timeout_seconds",
                                                     "stop_signal",
                                                     "type",
                                                     "start_timeout_seconds",
                                                     "watchdog_seconds",
                                                     "state_handoff",
                                                     "rlimits",
                                                     "depends_on",
                                                     "recovery",
                                                     "memory_limit_mb",
                                                     "cpu_limit_percent",
                                                     "umask",
                                                     "safe_mode",
                                                     "standby",
                                                     "liveness_probe",
                                                     "readiness_probe"}));
    EXPECT_EQ(web.at("exec"), (json{"/usr/bin/web", "--port", "8080"}));
    EXPECT_EQ(web.at("environment"), (json{{"LANG", "C.UTF-8"}, {"MODE", "production"}}));
    EXPECT_TRUE(web.at("environment").is_object());
    EXPECT_EQ(web.at("working_directory"), "/srv/web");
    EXPECT_EQ(web.at("user"), "www-data");
    EXPECT_EQ(web.at("group"), "www");
    EXPECT_EQ(web.at("critical"), true);
    EXPECT_EQ(web.at("priority"), "high");
    EXPECT_EQ(web.at("cpu_affinity"), (json{0, 2}));
    EXPECT_EQ(web.at("stop_timeout_seconds"), 2.5);
    EXPECT_EQ(web.at("memory_limit_mb"), 512);
    EXPECT_EQ(web.at("cpu_limit_percent"), 25.5);
    // Values are given the way the TOML takes them: signal names, an octal umask string, "infinity".
    EXPECT_EQ(web.at("stop_signal"), "SIGINT");
    EXPECT_EQ(web.at("umask"), "0027");
    EXPECT_EQ(web.at("type"), "notify");
    EXPECT_EQ(web.at("start_timeout_seconds"), 30.0);
    EXPECT_EQ(web.at("watchdog_seconds"), 5.0);
    EXPECT_EQ(web.at("rlimits"), (json{{"core", {{"soft", "infinity"}, {"hard", "infinity"}}},
                                       {"nofile", {{"soft", 1024}, {"hard", 4096}}}}))
        << web.at("rlimits").dump();
    EXPECT_EQ(web.at("depends_on"), (json{"db"}));
    EXPECT_EQ(web.at("safe_mode"), (json{{"exec", {"/usr/bin/web", "--safe"}},
                                         {"environment", {{"SAFE", "1"}}},
                                         {"stability_seconds", 120.0}}));
    EXPECT_EQ(web.at("standby"), (json{{"promote_signal", "SIGUSR2"}}));
}

TEST(ConfigToJson, ProbesCarryOnlyTheKeysOfTheirType) {
    const json web = configToJson(customConfig()).at("service").at(0);
    EXPECT_EQ(web.at("liveness_probe"), (json{{"type", "exec"},
                                              {"command", {"/usr/bin/web-check", "--live"}},
                                              {"initial_delay_seconds", 5.0},
                                              {"period_seconds", 20.0},
                                              {"timeout_seconds", 2.0},
                                              {"success_threshold", 1},
                                              {"failure_threshold", 4}}))
        << web.at("liveness_probe").dump();
    EXPECT_EQ(web.at("readiness_probe"), (json{{"type", "http"},
                                               {"host", "::1"},
                                               {"port", 8080},
                                               {"path", "/ready"},
                                               {"host_header", "web.internal"},
                                               {"initial_delay_seconds", 0.5},
                                               {"period_seconds", 3.0},
                                               {"timeout_seconds", 0.25},
                                               {"success_threshold", 2},
                                               {"failure_threshold", 5}}))
        << web.at("readiness_probe").dump();

    ProbeConfig tcp;
    tcp.type = ProbeType::Tcp;
    tcp.host = "10.0.0.1";
    tcp.port = 5432;
    ProbeConfig dbus;
    dbus.type = ProbeType::Dbus;
    dbus.bus_name = "org.example.Web";
    Config config;
    ServiceConfig db;
    db.name = "db";
    db.exec = {"/usr/bin/db"};
    db.liveness_probe = tcp;
    db.readiness_probe = dbus;
    config.services.push_back(db);
    const json probes = configToJson(config).at("service").at(0);
    EXPECT_EQ(keysOf(probes.at("liveness_probe")),
              (std::vector<std::string>{"type", "host", "port", "initial_delay_seconds", "period_seconds",
                                        "timeout_seconds", "success_threshold", "failure_threshold"}));
    EXPECT_EQ(probes.at("liveness_probe").at("host"), "10.0.0.1");
    EXPECT_EQ(probes.at("liveness_probe").at("port"), 5432);
    EXPECT_EQ(keysOf(probes.at("readiness_probe")),
              (std::vector<std::string>{"type", "name", "initial_delay_seconds", "period_seconds",
                                        "timeout_seconds", "success_threshold", "failure_threshold"}));
    EXPECT_EQ(probes.at("readiness_probe").at("name"), "org.example.Web");
    // Left-out HTTP keys: no host_header when it defaults to host:port.
    ProbeConfig http;
    http.type = ProbeType::Http;
    http.port = 80;
    config.services[0].readiness_probe = http;
    EXPECT_FALSE(configToJson(config).at("service").at(0).at("readiness_probe").contains("host_header"));
}

TEST(ConfigToJson, RecoveryWithEveryFieldSet) {
    const json recovery = configToJson(customConfig()).at("service").at(0).at("recovery");
    EXPECT_EQ(keysOf(recovery), (std::vector<std::string>{
                                    "ladder", "classes", "stability_seconds", "start_seconds",
                                    "start_limit_burst", "start_limit_interval_seconds", "success_exit_codes",
                                    "no_restart_exit_codes", "no_restart_signals"}));
    const json ladder = recovery.at("ladder");
    ASSERT_EQ(ladder.size(), 2u);
    EXPECT_EQ(keysOf(ladder[0]), (std::vector<std::string>{"strategy", "attempts", "delay_seconds",
                                                           "backoff_factor", "max_delay_seconds", "jitter"}));
    EXPECT_EQ(ladder[0], (json{{"strategy", "restart_with_backoff"},
                               {"attempts", 4},
                               {"delay_seconds", 0.75},
                               {"backoff_factor", 3.0},
                               {"max_delay_seconds", 30.0},
                               {"jitter", 0.2}}));
    // The last step without attempts handles every further failure: the key stays out.
    EXPECT_EQ(ladder[1], (json{{"strategy", "notify_admin"},
                               {"delay_seconds", 1.0},
                               {"backoff_factor", 2.0},
                               {"max_delay_seconds", 300.0},
                               {"jitter", 0.1}}));
    EXPECT_EQ(recovery.at("classes"), (json{{"oom",
                                             {{{"strategy", "safe_mode"},
                                               {"attempts", 2},
                                               {"delay_seconds", 5.0},
                                               {"backoff_factor", 2.0},
                                               {"max_delay_seconds", 300.0},
                                               {"jitter", 0.0}}}}}))
        << recovery.at("classes").dump();
    EXPECT_EQ(recovery.at("stability_seconds"), 90.0);
    EXPECT_EQ(recovery.at("start_seconds"), 2.5);
    EXPECT_EQ(recovery.at("start_limit_burst"), 3);
    EXPECT_EQ(recovery.at("start_limit_interval_seconds"), 20.0);
    EXPECT_EQ(recovery.at("success_exit_codes"), (json{0, 2}));
    EXPECT_EQ(recovery.at("no_restart_exit_codes"), (json{78}));
    EXPECT_EQ(recovery.at("no_restart_signals"), (json{"SIGKILL", "SIGSEGV"}));
}

TEST(ConfigToJson, OptionalServiceFieldsAreLeftOutWhenUnset) {
    const json db = configToJson(customConfig()).at("service").at(1);
    EXPECT_FALSE(db.contains("memory_limit_mb"));
    EXPECT_FALSE(db.contains("cpu_limit_percent"));
    EXPECT_FALSE(db.contains("umask"));
    EXPECT_FALSE(db.contains("safe_mode"));
    EXPECT_FALSE(db.contains("standby"));
    EXPECT_FALSE(db.contains("liveness_probe"));
    EXPECT_FALSE(db.contains("readiness_probe"));
    EXPECT_FALSE(db.at("recovery").contains("stability_seconds"));
    EXPECT_EQ(keysOf(db),
              (std::vector<std::string>{"name", "exec", "environment", "working_directory", "user", "group",
                                        "critical", "priority", "cpu_affinity", "stop_timeout_seconds",
                                        "stop_signal", "type", "start_timeout_seconds", "watchdog_seconds",
                                        "state_handoff", "rlimits", "depends_on", "recovery"}));
    // Unset but not optional: present with their defaults.
    EXPECT_EQ(db.at("working_directory"), "");
    EXPECT_EQ(db.at("user"), "");
    EXPECT_EQ(db.at("group"), "");
    EXPECT_EQ(db.at("priority"), "normal");
    EXPECT_EQ(db.at("stop_timeout_seconds"), 10.0);
    EXPECT_EQ(db.at("stop_signal"), "SIGTERM");
    EXPECT_EQ(db.at("type"), "simple");
    EXPECT_EQ(db.at("start_timeout_seconds"), 90.0);
    EXPECT_EQ(db.at("watchdog_seconds"), 0.0);
    EXPECT_TRUE(db.at("environment").is_object());
    EXPECT_TRUE(db.at("environment").empty());
    EXPECT_TRUE(db.at("cpu_affinity").is_array());
    EXPECT_TRUE(db.at("cpu_affinity").empty());
    EXPECT_TRUE(db.at("rlimits").is_object());
    EXPECT_TRUE(db.at("rlimits").empty());
    EXPECT_TRUE(db.at("depends_on").is_array());
    EXPECT_TRUE(db.at("depends_on").empty());
    // Built in code, so its ladder is empty; a parsed service always has a step.
    EXPECT_EQ(db.at("recovery"), (json{{"ladder", json::array()},
                                       {"classes", json::object()},
                                       {"start_seconds", 1.0},
                                       {"start_limit_burst", 5},
                                       {"start_limit_interval_seconds", 10.0},
                                       {"success_exit_codes", {0}},
                                       {"no_restart_exit_codes", json::array()},
                                       {"no_restart_signals", json::array()}}))
        << db.at("recovery").dump();
}

TEST(ConfigToJson, OptionalFieldsSetToZeroAreStillPresent) {
    Config config;
    ServiceConfig service;
    service.name = "zero";
    service.exec = {"/bin/true"};
    service.memory_limit_mb = 0;
    service.cpu_limit_percent = 0.0;
    service.umask = 0;
    service.recovery.ladder = {LadderStep{RecoveryStrategy::Restart, 0, 1.0, 2.0, 300.0, 0.1}};
    config.services.push_back(service);
    const json entry = configToJson(config).at("service").at(0);
    EXPECT_EQ(entry.at("memory_limit_mb"), 0);
    EXPECT_EQ(entry.at("cpu_limit_percent"), 0.0);
    EXPECT_EQ(entry.at("umask"), "0000");
    EXPECT_EQ(entry.at("recovery").at("ladder").at(0).at("attempts"), 0);
}

TEST(ConfigToJson, ParsedShortFormShowsAsALadderOfOneStep) {
    const Config config = parseConfig(R"(
[crash_recovery]
max_recovery_attempts = 6
[[service]]
name = "web"
exec = ["/bin/true"]
recovery = { strategy = "restart_with_delay", delay_seconds = 2 }
)",
                                      "/etc/tau-monitor/tau-monitor.toml");
    const json ladder = configToJson(config).at("service").at(0).at("recovery").at("ladder");
    EXPECT_EQ(ladder, (json{{{"strategy", "restart_with_delay"},
                             {"attempts", 6},
                             {"delay_seconds", 2.0},
                             {"backoff_factor", 2.0},
                             {"max_delay_seconds", 300.0},
                             {"jitter", 0.1}}}))
        << ladder.dump();
}

TEST(ConfigToJson, CriticalComesFromEitherSource) {
    // "db" is critical only through crash_recovery.critical_processes, "web" only through its own flag.
    const json services = configToJson(customConfig()).at("service");
    EXPECT_EQ(services[0].at("critical"), true);
    EXPECT_EQ(services[1].at("critical"), true);

    Config config = customConfig();
    config.crash_recovery.critical_processes.clear();
    config.services[0].critical = false;
    const json plain = configToJson(config).at("service");
    EXPECT_EQ(plain[0].at("critical"), false);
    EXPECT_EQ(plain[1].at("critical"), false);
}

TEST(ConfigToJson, EveryPriorityAndStrategyHasItsName) {
    Config config;
    const std::pair<Priority, const char*> priorities[] = {{Priority::Critical, "critical"},
                                                           {Priority::High, "high"},
                                                           {Priority::Normal, "normal"},
                                                           {Priority::Low, "low"},
                                                           {Priority::Background, "background"}};
    for (const auto& [priority, name] : priorities) {
        ServiceConfig service;
        service.name = name;
        service.priority = priority;
        config.services.push_back(service);
    }
    const std::pair<RecoveryStrategy, const char*> strategies[] = {
        {RecoveryStrategy::Restart, "restart"},
        {RecoveryStrategy::RestartWithDelay, "restart_with_delay"},
        {RecoveryStrategy::RestartWithBackoff, "restart_with_backoff"},
        {RecoveryStrategy::SafeMode, "safe_mode"},
        {RecoveryStrategy::NotifyAdmin, "notify_admin"},
        {RecoveryStrategy::None, "none"}};
    for (const auto& [strategy, name] : strategies) {
        LadderStep step;
        step.strategy = strategy;
        step.attempts = 1;
        config.services[0].recovery.ladder.push_back(step);
    }
    const std::pair<FailureClass, const char*> classes[] = {
        {FailureClass::Exit, "exit"},   {FailureClass::Signal, "signal"},
        {FailureClass::Oom, "oom"},     {FailureClass::Watchdog, "watchdog"},
        {FailureClass::Probe, "probe"}, {FailureClass::ResourceLimit, "resource_limit"},
        {FailureClass::Start, "start"}};
    for (const auto& [failure_class, name] : classes) {
        config.services[1].recovery.class_ladders[failure_class] = {LadderStep{}};
    }
    config.services[2].type = ServiceType::Notify;

    const json services = configToJson(config).at("service");
    for (std::size_t i = 0; i < std::size(priorities); ++i) {
        EXPECT_EQ(services[i].at("priority"), priorities[i].second);
    }
    const json& ladder = services[0].at("recovery").at("ladder");
    ASSERT_EQ(ladder.size(), std::size(strategies));
    for (std::size_t i = 0; i < std::size(strategies); ++i) {
        EXPECT_EQ(ladder[i].at("strategy"), strategies[i].second);
    }
    const json& classLadders = services[1].at("recovery").at("classes");
    for (const auto& [failure_class, name] : classes) {
        EXPECT_TRUE(classLadders.contains(name)) << name;
    }
    EXPECT_EQ(services[1].at("type"), "simple");
    EXPECT_EQ(services[2].at("type"), "notify");
}

TEST(ConfigToJson, DefaultConfigHasDefaultsNoServicesAndNoSource) {
    const json out = configToJson(Config{});
    EXPECT_TRUE(out.at("service").is_array());
    EXPECT_TRUE(out.at("service").empty());
    EXPECT_EQ(out.at("source"), "");
    EXPECT_EQ(out.at("resource_monitoring").at("interval_seconds"), 30);
    EXPECT_EQ(out.at("process_management").at("max_concurrent_processes"), 100);
    EXPECT_EQ(out.at("crash_recovery").at("max_recovery_attempts"), 3);
    EXPECT_EQ(out.at("crash_recovery").at("session_state_path"), "/var/lib/tau-monitor/state");
    EXPECT_EQ(out.at("health_checking").at("system_health_checks"),
              (json{"cpu_usage", "memory_usage", "disk_usage", "swap_usage", "load_average", "temperature",
                    "pressure", "network_connectivity"}));
    EXPECT_EQ(out.at("logging").at("log_level"), "info");
    EXPECT_EQ(out.at("logging").at("log_file_path"), "/var/log/tau-monitor/tau-monitor.log");
}

TEST(ConfigToJson, SurvivesADumpAndParse) {
    const json out = configToJson(customConfig());
    EXPECT_EQ(json::parse(out.dump()), out);
}

} // namespace
} // namespace tau
