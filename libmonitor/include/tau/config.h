#pragma once
// The daemon's configuration: plain values with their documented defaults, parsed and validated from TOML.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tau {

// Exit code for an unusable configuration (sysexits.h EX_CONFIG).
inline constexpr int kExitConfigError = 78;

enum class Priority { Critical, High, Normal, Low, Background };

std::string_view toString(Priority priority);
std::optional<Priority> priorityFromString(std::string_view text);

enum class RecoveryStrategy { None, Restart, RestartWithDelay };

std::string_view toString(RecoveryStrategy strategy);
std::optional<RecoveryStrategy> recoveryStrategyFromString(std::string_view text);

struct ResourceMonitoringConfig {
    bool enabled = true;
    unsigned interval_seconds = 30;
    double cpu_threshold_percent = 80.0;
    double memory_threshold_percent = 85.0;
    double disk_threshold_percent = 90.0;
    bool network_monitoring = true;
    bool temperature_monitoring = true;
    bool alert_on_threshold = true;
    bool log_resource_usage = true;
};

struct ProcessManagementConfig {
    bool enabled = true;
    unsigned max_concurrent_processes = 100;
    unsigned process_priority_levels = 5;
    std::uint64_t memory_limit_mb = 2048;
    double cpu_limit_percent = 50.0;
    bool auto_cleanup_zombies = true;
    bool process_isolation = true;
    bool resource_pooling = true;
};

struct CrashRecoveryConfig {
    bool enabled = true;
    bool auto_recovery = true;
    unsigned max_recovery_attempts = 3;
    // A service that stays up this long has recovered: its count of consecutive failures starts again.
    unsigned recovery_timeout_seconds = 60;
    bool save_session_state = true;
    std::filesystem::path session_state_path = "/var/lib/tau-monitor/state";
    std::vector<std::string> critical_processes;
};

struct HealthCheckingConfig {
    bool enabled = true;
    unsigned check_interval_seconds = 60;
    std::vector<std::string> system_health_checks = {"cpu_usage", "memory_usage", "disk_usage",
                                                     "network_connectivity"};
    std::vector<std::string> service_health_checks;
    bool alert_on_failure = true;
    bool auto_restart_failed_services = true;
    double health_score_threshold = 0.7;
};

struct LoggingConfig {
    std::string log_level = "info";
    std::filesystem::path log_file_path = "/var/log/tau-monitor/tau-monitor.log";
    unsigned max_log_size_mb = 100;
    bool log_rotation = true;
    bool structured_logging = true;
    bool log_compression = true;
    bool audit_logging = true;
    bool performance_logging = true;
};

struct SecurityConfig {
    // Members of these groups may call mutating methods, besides root and the daemon's own user.
    std::vector<std::string> admin_groups;
};

struct ServiceRecoveryConfig {
    RecoveryStrategy strategy = RecoveryStrategy::Restart;
    double delay_seconds = 1.0;
    // Unset: crash_recovery.max_recovery_attempts applies.
    std::optional<unsigned> max_attempts;
};

struct ServiceConfig {
    std::string name;
    std::vector<std::string> exec;
    std::map<std::string, std::string> environment;
    std::filesystem::path working_directory; // empty: the daemon's own
    std::string user;                        // empty: the daemon's own
    std::string group;
    bool critical = false;
    Priority priority = Priority::Normal;
    std::vector<unsigned> cpu_affinity;
    std::optional<std::uint64_t> memory_limit_mb;
    std::optional<double> cpu_limit_percent;
    double stop_timeout_seconds = 10.0;
    ServiceRecoveryConfig recovery;
};

struct Config {
    ResourceMonitoringConfig resource_monitoring;
    ProcessManagementConfig process_management;
    CrashRecoveryConfig crash_recovery;
    HealthCheckingConfig health_checking;
    LoggingConfig logging;
    SecurityConfig security;
    std::vector<ServiceConfig> services;
    std::filesystem::path source; // the file it came from; empty for built-in defaults

    const ServiceConfig* findService(std::string_view name) const;
    // Critical: named in crash_recovery.critical_processes or marked critical in its own table.
    bool isCritical(std::string_view serviceName) const;
};

// Names the internal services of the suite use; a [[service]] may not take them.
inline constexpr std::string_view kInternalServiceNames[] = {"log", "recovery", "resources", "health"};

class ConfigError : public std::runtime_error {
  public:
    ConfigError(std::string file, unsigned line, unsigned column, std::string key, std::string problem);

    const std::string& file() const { return file_; }
    unsigned line() const { return line_; }         // 1-based; 0 when the problem has no position
    unsigned column() const { return column_; }     // 1-based; 0 when the problem has no position
    const std::string& key() const { return key_; } // dotted path, e.g. "service[2].exec"
    const std::string& problem() const { return problem_; }

  private:
    std::string file_;
    unsigned line_;
    unsigned column_;
    std::string key_;
    std::string problem_;
};

// Parses and validates. `${config_dir}` inside exec, working_directory and path values expands to
// the directory of the configuration file. Throws ConfigError for the first problem found.
Config parseConfig(std::string_view text, const std::filesystem::path& sourcePath);
Config loadConfig(const std::filesystem::path& path);

} // namespace tau
