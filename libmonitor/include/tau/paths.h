#pragma once

#include <filesystem>

namespace tau {

// Where the daemon keeps its pid file and, for a private bus, the bus socket and its address.
// TAU_MONITOR_RUNTIME_DIR overrides; otherwise /run/tau-monitor for root, $XDG_RUNTIME_DIR/tau-monitor for
// others, /tmp/tau-monitor-<uid> as the last resort.
std::filesystem::path runtimeDirectory();

// The file a root process writes the address of its private bus to; the CLI reads it.
std::filesystem::path busAddressFile();

std::filesystem::path defaultPidFile();

// The configuration used without --config: TAU_MONITOR_CONFIG, else /etc/tau-monitor/tau-monitor.toml.
std::filesystem::path defaultConfigFile();

} // namespace tau
