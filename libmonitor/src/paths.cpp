#include "tau/paths.h"

#include <cstdlib>
#include <string>
#include <unistd.h>

namespace tau {

std::filesystem::path runtimeDirectory() {
    if (const char* dir = std::getenv("TAU_MONITOR_RUNTIME_DIR"); dir != nullptr && *dir != '\0') {
        return dir;
    }
    if (geteuid() == 0) {
        return "/run/tau-monitor";
    }
    if (const char* dir = std::getenv("XDG_RUNTIME_DIR"); dir != nullptr && *dir != '\0') {
        return std::filesystem::path(dir) / "tau-monitor";
    }
    return "/tmp/tau-monitor-" + std::to_string(geteuid());
}

std::filesystem::path busAddressFile() {
    return runtimeDirectory() / "bus-address";
}

std::filesystem::path defaultPidFile() {
    return runtimeDirectory() / "tau-monitor.pid";
}

std::filesystem::path defaultConfigFile() {
    if (const char* path = std::getenv("TAU_MONITOR_CONFIG"); path != nullptr && *path != '\0') {
        return path;
    }
    return "/etc/tau-monitor/tau-monitor.toml";
}

} // namespace tau
