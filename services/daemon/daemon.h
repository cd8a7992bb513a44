#pragma once
// The modes of the tau-monitor executable.

#include "tau/bus/connection.h"
#include "tau/config.h"

#include <filesystem>
#include <optional>
#include <string>

namespace tau {

struct DaemonOptions {
    std::filesystem::path config_path;
    bool config_given = false;
    bus::BusChoice bus;
    bool detach = false; // --daemon
    std::filesystem::path pid_file;
};

// Loads the configuration for a mode; without --config a missing default file means built-in defaults.
// Prints the error and returns nullopt on failure.
std::optional<Config> loadConfigFor(const DaemonOptions& options);

int runRoot(const DaemonOptions& options);
int runCheck(const DaemonOptions& options);

} // namespace tau
