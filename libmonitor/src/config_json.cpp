#include "tau/config_json.h"

namespace tau {

nlohmann::ordered_json configToJson(const Config& config) {
    using json = nlohmann::ordered_json;
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
                                  {"log_resource_usage", rm.log_resource_usage}};
    out["process_management"] = {{"enabled", pm.enabled},
                                 {"max_concurrent_processes", pm.max_concurrent_processes},
                                 {"process_priority_levels", pm.process_priority_levels},
                                 {"memory_limit_mb", pm.memory_limit_mb},
                                 {"cpu_limit_percent", pm.cpu_limit_percent},
                                 {"auto_cleanup_zombies", pm.auto_cleanup_zombies},
                                 {"process_isolation", pm.process_isolation},
                                 {"resource_pooling", pm.resource_pooling}};
    out["crash_recovery"] = {{"enabled", cr.enabled},
                             {"auto_recovery", cr.auto_recovery},
                             {"max_recovery_attempts", cr.max_recovery_attempts},
                             {"recovery_timeout_seconds", cr.recovery_timeout_seconds},
                             {"save_session_state", cr.save_session_state},
                             {"session_state_path", cr.session_state_path.string()},
                             {"critical_processes", cr.critical_processes}};
    out["health_checking"] = {{"enabled", hc.enabled},
                              {"check_interval_seconds", hc.check_interval_seconds},
                              {"system_health_checks", hc.system_health_checks},
                              {"service_health_checks", hc.service_health_checks},
                              {"alert_on_failure", hc.alert_on_failure},
                              {"auto_restart_failed_services", hc.auto_restart_failed_services},
                              {"health_score_threshold", hc.health_score_threshold}};
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
        json recovery = {{"strategy", toString(service.recovery.strategy)},
                         {"delay_seconds", service.recovery.delay_seconds}};
        if (service.recovery.max_attempts) {
            recovery["max_attempts"] = *service.recovery.max_attempts;
        }
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
                      {"recovery", recovery}};
        if (service.memory_limit_mb) {
            entry["memory_limit_mb"] = *service.memory_limit_mb;
        }
        if (service.cpu_limit_percent) {
            entry["cpu_limit_percent"] = *service.cpu_limit_percent;
        }
        services.push_back(std::move(entry));
    }
    out["service"] = std::move(services);
    out["source"] = config.source.string();
    return out;
}

} // namespace tau
