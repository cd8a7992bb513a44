#include "tau/config_json.h"

#include "tau/spawner.h"

#include <cstdio>
#include <sys/resource.h>

namespace tau {

namespace {

using json = nlohmann::ordered_json;

// The JSON uses what the TOML accepts: signal names, octal umask strings, "infinity".
json signalNames(const std::vector<int>& signals) {
    json names = json::array();
    for (int signal : signals) {
        names.push_back(signalName(signal));
    }
    return names;
}

std::string octalUmask(unsigned mask) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mask);
    return text;
}

json resourceLimitValue(std::uint64_t value) {
    if (value == RLIM_INFINITY) {
        return "infinity";
    }
    return value;
}

json ladderToJson(const std::vector<LadderStep>& ladder) {
    json steps = json::array();
    for (const LadderStep& step : ladder) {
        json entry = {{"strategy", toString(step.strategy)}};
        if (step.attempts) {
            entry["attempts"] = *step.attempts;
        }
        entry["delay_seconds"] = step.delay_seconds;
        entry["backoff_factor"] = step.backoff_factor;
        entry["max_delay_seconds"] = step.max_delay_seconds;
        entry["jitter"] = step.jitter;
        steps.push_back(std::move(entry));
    }
    return steps;
}

// Only the keys of the probe's own type, as the TOML would have them.
json probeToJson(const ProbeConfig& probe) {
    json out = {{"type", toString(probe.type)}};
    switch (probe.type) {
    case ProbeType::Exec:
        out["command"] = probe.command;
        break;
    case ProbeType::Tcp:
        out["host"] = probe.host;
        out["port"] = probe.port;
        break;
    case ProbeType::Http:
        out["host"] = probe.host;
        out["port"] = probe.port;
        out["path"] = probe.path;
        if (probe.host_header) {
            out["host_header"] = *probe.host_header;
        }
        break;
    case ProbeType::Dbus:
        out["name"] = probe.bus_name;
        break;
    }
    out["initial_delay_seconds"] = probe.initial_delay_seconds;
    out["period_seconds"] = probe.period_seconds;
    out["timeout_seconds"] = probe.timeout_seconds;
    out["success_threshold"] = probe.success_threshold;
    out["failure_threshold"] = probe.failure_threshold;
    return out;
}

json recoveryToJson(const ServiceRecoveryConfig& recovery) {
    json classes = json::object();
    for (const auto& [failure_class, ladder] : recovery.class_ladders) {
        classes[std::string(toString(failure_class))] = ladderToJson(ladder);
    }
    json out = {{"ladder", ladderToJson(recovery.ladder)}, {"classes", std::move(classes)}};
    if (recovery.stability_seconds) {
        out["stability_seconds"] = *recovery.stability_seconds;
    }
    out["start_seconds"] = recovery.start_seconds;
    out["start_limit_burst"] = recovery.start_limit_burst;
    out["start_limit_interval_seconds"] = recovery.start_limit_interval_seconds;
    out["success_exit_codes"] = recovery.success_exit_codes;
    out["no_restart_exit_codes"] = recovery.no_restart_exit_codes;
    out["no_restart_signals"] = signalNames(recovery.no_restart_signals);
    return out;
}

json resourceLimitsToJson(const std::map<std::string, ResourceLimit>& limits) {
    json out = json::object();
    for (const auto& [name, limit] : limits) {
        out[name] = {{"soft", resourceLimitValue(limit.soft)}, {"hard", resourceLimitValue(limit.hard)}};
    }
    return out;
}

json bandToJson(const ThresholdBand& band) {
    return {{"enter", band.enter},
            {"exit", band.exit},
            {"enter_samples", band.enter_samples},
            {"exit_samples", band.exit_samples}};
}

json thresholdsToJson(const std::map<std::string, ThresholdSpec>& specs) {
    json out = json::object();
    for (const auto& [metric, spec] : specs) {
        json entry = json::object();
        if (spec.warning)
            entry["warning"] = bandToJson(*spec.warning);
        if (spec.critical)
            entry["critical"] = bandToJson(*spec.critical);
        if (spec.adaptive) {
            entry["adaptive"] = {{"window_samples", spec.adaptive->window_samples},
                                 {"min_samples", spec.adaptive->min_samples},
                                 {"k", spec.adaptive->k},
                                 {"exit_k", spec.adaptive->exit_k}};
        }
        out[metric] = std::move(entry);
    }
    return out;
}

} // namespace

nlohmann::ordered_json configToJson(const Config& config) {
    const auto& rm = config.resource_monitoring;
    const auto& pm = config.process_management;
    const auto& cr = config.crash_recovery;
    const auto& hc = config.health_checking;
    const auto& lg = config.logging;
    json out;
    out["resource_monitoring"] = {{"enabled", rm.enabled},
                                  {"interval_seconds", rm.interval_seconds},
                                  {"cpu_threshold_percent", rm.cpu_threshold_percent},
                                  {"memory_threshold_percent", rm.memory_threshold_percent},
                                  {"disk_threshold_percent", rm.disk_threshold_percent},
                                  {"network_monitoring", rm.network_monitoring},
                                  {"temperature_monitoring", rm.temperature_monitoring},
                                  {"alert_on_threshold", rm.alert_on_threshold},
                                  {"log_resource_usage", rm.log_resource_usage},
                                  {"prometheus_listen", rm.prometheus_listen},
                                  {"thresholds", thresholdsToJson(rm.thresholds)}};
    out["process_management"] = {{"enabled", pm.enabled},
                                 {"max_concurrent_processes", pm.max_concurrent_processes},
                                 {"process_priority_levels", pm.process_priority_levels},
                                 {"memory_limit_mb", pm.memory_limit_mb},
                                 {"cpu_limit_percent", pm.cpu_limit_percent},
                                 {"limit_check_interval_seconds", pm.limit_check_interval_seconds},
                                 {"limit_violation_samples", pm.limit_violation_samples},
                                 {"auto_cleanup_zombies", pm.auto_cleanup_zombies},
                                 {"process_isolation", pm.process_isolation},
                                 {"resource_pooling", pm.resource_pooling}};
    out["crash_recovery"] = {{"enabled", cr.enabled},
                             {"auto_recovery", cr.auto_recovery},
                             {"max_recovery_attempts", cr.max_recovery_attempts},
                             {"recovery_timeout_seconds", cr.recovery_timeout_seconds},
                             {"save_session_state", cr.save_session_state},
                             {"session_state_path", cr.session_state_path.string()},
                             {"critical_processes", cr.critical_processes},
                             {"restart_budget_burst", cr.restart_budget_burst},
                             {"restart_budget_interval_seconds", cr.restart_budget_interval_seconds},
                             {"notify_command", cr.notify_command},
                             {"system_safe_mode", cr.system_safe_mode},
                             {"state_versions_kept", cr.state_versions_kept},
                             {"state_max_bytes", cr.state_max_bytes},
                             {"state_poison_crashes", cr.state_poison_crashes}};
    out["health_checking"] = {{"enabled", hc.enabled},
                              {"check_interval_seconds", hc.check_interval_seconds},
                              {"system_health_checks", hc.system_health_checks},
                              {"service_health_checks", hc.service_health_checks},
                              {"alert_on_failure", hc.alert_on_failure},
                              {"auto_restart_failed_services", hc.auto_restart_failed_services},
                              {"health_score_threshold", hc.health_score_threshold},
                              {"network_endpoints", hc.network_endpoints},
                              {"restart_window_seconds", hc.restart_window_seconds},
                              {"restart_warning_count", hc.restart_warning_count},
                              {"status_debounce_seconds", hc.status_debounce_seconds}};
    out["logging"] = {{"log_level", lg.log_level},
                      {"log_file_path", lg.log_file_path.string()},
                      {"max_log_size_mb", lg.max_log_size_mb},
                      {"log_rotation", lg.log_rotation},
                      {"structured_logging", lg.structured_logging},
                      {"log_compression", lg.log_compression},
                      {"audit_logging", lg.audit_logging},
                      {"performance_logging", lg.performance_logging}};
    out["security"] = {{"admin_groups", config.security.admin_groups}};
    json services = json::array();
    for (const auto& service : config.services) {
        json entry = {{"name", service.name},
                      {"exec", service.exec},
                      {"environment", service.environment},
                      {"working_directory", service.working_directory.string()},
                      {"user", service.user},
                      {"group", service.group},
                      {"critical", config.isCritical(service.name)},
                      {"priority", toString(service.priority)},
                      {"cpu_affinity", service.cpu_affinity},
                      {"stop_timeout_seconds", service.stop_timeout_seconds},
                      {"stop_signal", signalName(service.stop_signal)},
                      {"type", toString(service.type)},
                      {"start_timeout_seconds", service.start_timeout_seconds},
                      {"watchdog_seconds", service.watchdog_seconds},
                      {"state_handoff", service.state_handoff},
                      {"rlimits", resourceLimitsToJson(service.rlimits)},
                      {"depends_on", service.depends_on},
                      {"recovery", recoveryToJson(service.recovery)}};
        if (service.memory_limit_mb) {
            entry["memory_limit_mb"] = *service.memory_limit_mb;
        }
        if (service.cpu_limit_percent) {
            entry["cpu_limit_percent"] = *service.cpu_limit_percent;
        }
        if (service.umask) {
            entry["umask"] = octalUmask(*service.umask);
        }
        if (service.safe_mode) {
            entry["safe_mode"] = {{"exec", service.safe_mode->exec},
                                  {"environment", service.safe_mode->environment},
                                  {"stability_seconds", service.safe_mode->stability_seconds}};
        }
        if (service.standby) {
            entry["standby"] = {{"promote_signal", signalName(service.standby->promote_signal)}};
        }
        if (service.liveness_probe) {
            entry["liveness_probe"] = probeToJson(*service.liveness_probe);
        }
        if (service.readiness_probe) {
            entry["readiness_probe"] = probeToJson(*service.readiness_probe);
        }
        services.push_back(std::move(entry));
    }
    out["service"] = std::move(services);
    out["source"] = config.source.string();
    return out;
}

} // namespace tau
