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

enum class RecoveryStrategy { None, Restart, RestartWithDelay, RestartWithBackoff, SafeMode, NotifyAdmin };

std::string_view toString(RecoveryStrategy strategy);
std::optional<RecoveryStrategy> recoveryStrategyFromString(std::string_view text);

// Why a service's main process ended, as far as recovery is concerned.
enum class FailureClass {
    Exit,          // exited with a status that is neither success nor "do not restart"
    Signal,        // killed by a signal nobody asked for
    Oom,           // killed by the kernel's OOM killer
    Watchdog,      // missed its sd_notify watchdog deadline
    Probe,         // a liveness probe failed
    ResourceLimit, // killed for staying over its CPU or memory limit
    Start,         // crashed within its startup window, never became ready, or could not be spawned
};
std::string_view toString(FailureClass failure_class); // "exit", "signal", "oom", "watchdog", "probe",
                                                       // "resource_limit", "start"
std::optional<FailureClass> failureClassFromString(std::string_view text);

enum class ServiceType { Simple, Notify };
std::string_view toString(ServiceType type); // "simple", "notify"

// One alarm level of a metric where higher is worse. It is entered at `enter` after `enter_samples`
// consecutive samples at or above it and left below `exit` after `exit_samples` consecutive samples there;
// the gap between the two values keeps a value that hovers at the limit from flapping.
struct ThresholdBand {
    double enter = 0;
    double exit = 0; // at most `enter`
    unsigned enter_samples = 1;
    unsigned exit_samples = 1;
};

// A warning level learned from the metric itself: entered above mean + k standard deviations of the
// last `window_samples` samples, left below mean + exit_k standard deviations.
struct AdaptiveThreshold {
    unsigned window_samples = 60;
    unsigned min_samples = 10; // no adaptive alarm until the window holds this many samples
    double k = 2.0;
    double exit_k = 1.5; // below k
};

struct ThresholdSpec {
    std::optional<ThresholdBand> warning;
    std::optional<ThresholdBand> critical;
    // Replaces the warning band's values (its sample counts still apply); critical stays fixed.
    std::optional<AdaptiveThreshold> adaptive;
};

// The metrics a threshold may watch; in all of them a higher value is worse. Scopes: "system", or the
// mount point (disk_*), block device (disk_io_*), sensor (temperature_*), interface (network_*) or service.
inline constexpr std::string_view kThresholdMetrics[] = {
    "cpu_percent",
    "cpu_iowait_percent",
    "cpu_steal_percent",
    "memory_used_percent",
    "swap_used_percent",
    "load_percent",
    "disk_used_percent",
    "disk_inodes_used_percent",
    "disk_io_utilization_percent",
    "temperature_celsius",
    "pressure_cpu_some_avg10",
    "pressure_memory_some_avg10",
    "pressure_memory_full_avg10",
    "pressure_io_some_avg10",
    "pressure_io_full_avg10",
    "network_errors_per_second",
    "network_drops_per_second",
    "service_cpu_percent",
    "service_memory_bytes",
};

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
    // Where /metrics is served for Prometheus (parseListenAddress); empty: not served.
    std::string prometheus_listen = "127.0.0.1:9102";
    // Per metric name ("cpu_percent", "disk_used_percent", ...); applies to every scope of the metric.
    // Metrics named by the *_threshold_percent keys get a warning band from them unless listed here.
    std::map<std::string, ThresholdSpec> thresholds;
};

struct ProcessManagementConfig {
    bool enabled = true;
    unsigned max_concurrent_processes = 100;
    unsigned process_priority_levels = 5;
    std::uint64_t memory_limit_mb = 2048;
    double cpu_limit_percent = 50.0;
    // Where the kernel cannot enforce the limits (no delegated cgroup v2), they are sampled from /proc this
    // often (at least; rounds space out when sampling many processes would cost more than 0.05 % of a
    // CPU), and a service over one for this many samples in a row is stopped and recovered.
    double limit_check_interval_seconds = 5.0;
    unsigned limit_violation_samples = 3;
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
    // Host-wide restart budget: at most this many automatic restarts across all services per interval;
    // further restarts wait for a free slot, spread out, instead of storming a shared dependency.
    unsigned restart_budget_burst = 20;
    double restart_budget_interval_seconds = 10.0;
    // Run on an escalation (notify_admin, or a service given up), once per incident, with the details in
    // TAU_* environment variables. Empty: none.
    std::vector<std::string> notify_command;
    // When a critical service is given up or enters safe mode, stop every non-critical service.
    bool system_safe_mode = false;
    // The session-state store (session-state.db in session_state_path): how many versions of a service's
    // state are kept, the largest state a service may save, and how many crashes in a row within the
    // startup window after loading the same version make that version quarantined.
    unsigned state_versions_kept = 3;
    std::uint64_t state_max_bytes = 1048576;
    unsigned state_poison_crashes = 3;
};

struct HealthCheckingConfig {
    bool enabled = true;
    unsigned check_interval_seconds = 60;
    std::vector<std::string> system_health_checks = {"cpu_usage",  "memory_usage",        "disk_usage",
                                                     "swap_usage", "load_average",        "temperature",
                                                     "pressure",   "network_connectivity"};
    std::vector<std::string> service_health_checks;
    bool alert_on_failure = true;
    bool auto_restart_failed_services = true;
    double health_score_threshold = 0.7;
    // network_connectivity also connects to these ("192.0.2.1:53", "[2001:db8::1]:443") every evaluation.
    std::vector<std::string> network_endpoints;
    // A service that failed restart_warning_count times within the window warns.
    double restart_window_seconds = 600.0;
    unsigned restart_warning_count = 3;
    // A new overall status is announced (HealthChanged) once it has held this long.
    double status_debounce_seconds = 5.0;
};

struct Endpoint {
    std::string host; // numeric address, without brackets
    std::uint16_t port = 0;
};
// "192.0.2.1:53", "[2001:db8::1]:443", "localhost:22"; nullopt for anything else.
std::optional<Endpoint> parseEndpoint(std::string_view text);

struct ListenAddress {
    std::string host;       // a numeric IPv4 or IPv6 address, without brackets
    std::uint16_t port = 0; // 0: any free port
    bool ipv6 = false;
};

// "127.0.0.1:9102", "0.0.0.0:9102", "[::1]:9102", "[::]:0". Host names are not resolved: the daemon must
// not wait on DNS. Throws std::invalid_argument whose message quotes `text`.
ListenAddress parseListenAddress(std::string_view text);

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

// One rung of an escalation ladder: what to do for the next `attempts` failures.
struct LadderStep {
    RecoveryStrategy strategy = RecoveryStrategy::Restart;
    // How many failures this step handles; unset only on the last step, where it means "all that follow".
    std::optional<unsigned> attempts;
    double delay_seconds =
        1.0; // restart_with_delay, safe_mode: the delay; restart_with_backoff: the first delay
    double backoff_factor = 2.0;
    double max_delay_seconds = 300.0;
    double jitter = 0.1; // each delay is moved by up to this fraction of itself, either way
};

struct ServiceRecoveryConfig {
    // The short form `strategy` / `delay_seconds` / `max_attempts` (plus the backoff keys) becomes a ladder
    // of one step whose attempts are max_attempts, or crash_recovery.max_recovery_attempts when unset. The
    // long form `ladder = [...]` gives the steps. Never empty after parsing.
    std::vector<LadderStep> ladder;
    // Ladders for particular failure classes; a class without one uses `ladder`.
    std::map<FailureClass, std::vector<LadderStep>> class_ladders;
    // An uptime this long ends the incident: the failure count starts again from zero.
    // Unset: crash_recovery.recovery_timeout_seconds.
    std::optional<double> stability_seconds;
    double start_seconds = 1.0; // a crash sooner than this after the start is a failed start
    unsigned start_limit_burst = 5;
    double start_limit_interval_seconds = 10.0;
    std::vector<int> success_exit_codes = {0};
    std::vector<int> no_restart_exit_codes; // e.g. 78, a configuration error: restarting will not help
    std::vector<int> no_restart_signals;
};

// What the service runs instead while the ladder holds it in safe mode.
struct SafeModeConfig {
    std::vector<std::string> exec;                  // empty: the normal exec
    std::map<std::string, std::string> environment; // added to the normal environment
    double stability_seconds = 60.0;                // stable this long in safe mode: back to normal
};

struct StandbyConfig {
    int promote_signal = 10; // SIGUSR1: tells the warm standby it is now the active instance
};

struct ResourceLimit {
    std::uint64_t soft = 0;
    std::uint64_t hard = 0; // RLIM_INFINITY for "infinity"
};

// How a probe looks at a service: by running a command, by connecting, by an HTTP GET, or by asking whether
// a name is owned on the bus.
enum class ProbeType { Exec, Tcp, Http, Dbus };
std::string_view toString(ProbeType type); // "exec", "tcp", "http", "dbus"

// A liveness or readiness probe, with the meaning and the defaults of Kubernetes' probes.
struct ProbeConfig {
    ProbeType type = ProbeType::Exec;
    std::vector<std::string> command; // exec: argv, argv[0] an absolute path; run without a shell
    // tcp, http: a numeric IPv4 or IPv6 address or "localhost" (127.0.0.1), so that no name is ever looked
    // up on the event loop.
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;                 // tcp, http
    std::string path = "/";                 // http
    std::optional<std::string> host_header; // http; unset: host:port
    std::string bus_name;                   // dbus: the well-known name that must be owned
    double initial_delay_seconds = 0.0;
    double period_seconds = 10.0;
    double timeout_seconds = 1.0;
    unsigned success_threshold = 1; // a liveness probe's is always 1
    unsigned failure_threshold = 3;
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
    int stop_signal = 15; // SIGTERM; the config names it ("SIGINT", "SIGQUIT", ...)
    std::optional<unsigned> umask;
    ServiceType type = ServiceType::Simple;
    double start_timeout_seconds = 90.0; // type notify: READY=1 must come within this
    double watchdog_seconds = 0.0;       // 0: no watchdog; otherwise WATCHDOG=1 must come this often
    bool state_handoff = false; // its last session state is passed at exec as descriptor 3 (TAU_STATE_FD)
    std::map<std::string, ResourceLimit> rlimits; // "nofile", "core", ...: applied before exec
    std::vector<std::string> depends_on;
    std::optional<SafeModeConfig> safe_mode;
    std::optional<StandbyConfig> standby;
    ServiceRecoveryConfig recovery;
    std::optional<ProbeConfig> liveness_probe;  // failing: the service is recovered (FailureClass::Probe)
    std::optional<ProbeConfig> readiness_probe; // failing: the service is up but not ready
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
