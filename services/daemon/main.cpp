// tau-monitor: the supervisor (root process), the one-shot health check and the configuration check.

#include "daemon.h"
#include "tau/paths.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace tau {

std::optional<Config> loadConfigFor(const DaemonOptions& options) {
    try {
        if (!options.config_given && !std::filesystem::exists(options.config_path)) {
            return Config{};
        }
        return loadConfig(options.config_path);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "tau-monitor: %s\n", e.what());
        return std::nullopt;
    }
}

} // namespace tau

int main(int argc, char** argv) {
    CLI::App app{"tau-monitor: keeps critical services alive and reports the health of the system"};
    app.set_version_flag("--version", std::string("tau-monitor ") + TAU_VERSION);

    bool foreground = false;
    bool detach = false;
    bool check = false;
    bool validate = false;
    std::string config_path;
    std::string bus = "auto";
    std::string pid_file;
    std::string runtime_dir;

    auto* fg = app.add_flag("--foreground", foreground, "Run the supervisor in the foreground (the default)");
    auto* dm = app.add_flag("--daemon", detach, "Detach from the terminal and write a pid file");
    auto* ck =
        app.add_flag("--check", check,
                     "Evaluate health once, print a summary and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN");
    auto* vc =
        app.add_flag("--validate-config", validate, "Check the configuration and exit (78 when invalid)");
    app.add_option("--config", config_path,
                   "Configuration file (default: /etc/tau-monitor/tau-monitor.toml)");
    app.add_option("--bus", bus, "auto, system, session, private or a D-Bus address")->capture_default_str();
    app.add_option("--pid-file", pid_file, "Pid file (default: <runtime dir>/tau-monitor.pid)");
    app.add_option("--runtime-dir", runtime_dir,
                   "Directory for the pid file and the private bus (default: /run/tau-monitor for root)");
    fg->excludes(dm)->excludes(ck)->excludes(vc);
    dm->excludes(ck)->excludes(vc);
    ck->excludes(vc);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    if (!runtime_dir.empty()) {
        // Children and clients started from here find the same directory.
        setenv("TAU_MONITOR_RUNTIME_DIR", runtime_dir.c_str(), 1);
    }

    tau::DaemonOptions options;
    options.config_given = !config_path.empty();
    options.config_path =
        options.config_given ? std::filesystem::absolute(config_path) : tau::defaultConfigFile();
    options.detach = detach;
    options.pid_file = pid_file.empty() ? tau::defaultPidFile() : std::filesystem::absolute(pid_file);
    try {
        options.bus = tau::bus::BusChoice::parse(bus);
    } catch (const std::invalid_argument& e) {
        std::cerr << "tau-monitor: " << e.what() << '\n';
        return 64;
    }

    if (validate) {
        const auto config = tau::loadConfigFor(options);
        if (!config) {
            return tau::kExitConfigError;
        }
        std::cout << (config->source.empty() ? std::string("built-in defaults") : config->source.string())
                  << ": configuration is valid (" << config->services.size() << " services)\n";
        return 0;
    }
    if (check) {
        return tau::runCheck(options);
    }
    return tau::runRoot(options);
}
