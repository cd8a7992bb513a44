// Session state round trips through the whole suite: a service supervised by tau-monitor saves and loads
// 4 KiB and 256 KiB states with SaveState and LoadState (durable: SQLite with synchronous FULL in a
// directory on the disk the build tree is on), and the driver prints p50/p99 of each call, of the round
// trip, and the saves per second one client reaches. See bench/README.md.

#include "bench_support.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace {

using namespace bench;

struct Options {
    std::filesystem::path tau_monitor;
    std::filesystem::path client;
    std::filesystem::path directory = ".";
    unsigned rounds = 500;
    unsigned warmup = 20;
    bool keep = false;
};

constexpr const char* kUsage = R"(usage: state_store_bench --tau-monitor PATH --client PATH [options]
  --directory DIR   where the state database goes (default: the current directory; use a real disk)
  --rounds N        measured save + load round trips per size (default 500)
  --warmup N        unmeasured ones first (default 20)
  --keep-temp       keep the temporary directory
)";

Options parse(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string option = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                throw std::runtime_error(option + " needs a value");
            }
            return argv[++i];
        };
        if (option == "--tau-monitor") {
            options.tau_monitor = value();
        } else if (option == "--client") {
            options.client = value();
        } else if (option == "--directory") {
            options.directory = value();
        } else if (option == "--rounds") {
            options.rounds = parseCount(option, value(), 10);
        } else if (option == "--warmup") {
            options.warmup = parseCount(option, value(), 0);
        } else if (option == "--keep-temp") {
            options.keep = true;
        } else if (option == "--help" || option == "-h") {
            std::cout << kUsage;
            std::exit(0);
        } else {
            throw std::runtime_error("unknown option " + option + "\n" + kUsage);
        }
    }
    if (options.tau_monitor.empty() || options.client.empty()) {
        throw std::runtime_error(std::string("--tau-monitor and --client are needed\n") + kUsage);
    }
    options.tau_monitor = std::filesystem::absolute(options.tau_monitor);
    options.client = std::filesystem::absolute(options.client);
    return options;
}

double percentileOf(std::vector<double> values, double percent) {
    std::sort(values.begin(), values.end());
    return percentile(values, percent);
}

} // namespace

int main(int argc, char** argv) {
    try {
        const Options options = parse(argc, argv);
        installInterruptionHandling();
        ::setenv("TMPDIR", std::filesystem::absolute(options.directory).c_str(), 1);
        TemporaryDirectory temporary(options.keep);
        const auto& dir = temporary.path();
        const auto results = dir / "results";
        const std::vector<std::size_t> sizes = {4096, 262144};
        std::ostringstream config;
        config << "[resource_monitoring]\nenabled = false\n\n[health_checking]\nenabled = false\n\n"
               << "[crash_recovery]\nsession_state_path = " << tomlString((dir / "state").string())
               << "\nstate_max_bytes = 1048576\n\n"
               << "[logging]\nlog_file_path = " << tomlString((dir / "tau-monitor.log").string()) << "\n\n"
               << "[[service]]\nname = \"state-client\"\nexec = [" << tomlString(options.client.string())
               << ", " << tomlString(results.string()) << ", \"" << options.rounds << "\", \"" << options.warmup
               << "\"";
        for (const auto size : sizes) {
            config << ", \"" << size << "\"";
        }
        config << "]\nrecovery = { strategy = \"none\" }\n";
        std::ofstream(dir / "tau-monitor.toml") << config.str();

        StartedProcess daemon({options.tau_monitor.string(), "--foreground", "--bus", "private", "--config",
                               (dir / "tau-monitor.toml").string()},
                              isolatedEnvironment(dir / "rt", dir), dir / "tau-monitor.out");
        const auto deadline = monotonicNow() + 600 * kNanosecondsPerSecond;
        while (!std::filesystem::exists(results)) {
            if (!daemon.running() || monotonicNow() > deadline || interrupting_signal != 0) {
                std::cerr << "state_store_bench: no results; tau-monitor said:\n"
                          << lastLines(readWholeFile(dir / "tau-monitor.out"), 20);
                return 2;
            }
            std::vector<pollfd> none;
            waitForEvents(none, monotonicNow() + 50 * kNanosecondsPerMillisecond);
        }
        const int status = daemon.end(SIGTERM, 20 * kNanosecondsPerSecond);

        std::map<std::size_t, std::vector<double>> saves, loads, trips;
        std::istringstream in(readWholeFile(results));
        std::size_t size = 0;
        long long save_ns = 0, load_ns = 0;
        while (in >> size >> save_ns >> load_ns) {
            saves[size].push_back(save_ns / 1e6);
            loads[size].push_back(load_ns / 1e6);
            trips[size].push_back((save_ns + load_ns) / 1e6);
        }
        std::printf("SaveState + LoadState through tau-monitor (private bus, durable writes), %u round trips "
                    "per size after %u unmeasured\n\n",
                    options.rounds, options.warmup);
        std::printf("%-10s %-11s %9s %9s %9s %11s\n", "size", "call", "p50 ms", "p99 ms", "max ms", "per second");
        for (const auto s : sizes) {
            for (const auto& [name, values] :
                 {std::pair{"save", &saves[s]}, std::pair{"load", &loads[s]}, std::pair{"round trip", &trips[s]}}) {
                if (values->empty()) {
                    continue;
                }
                double total = 0;
                for (const double v : *values) {
                    total += v;
                }
                std::printf("%-10s %-11s %9.3f %9.3f %9.3f %11.0f\n",
                            (s >= 1024 ? std::to_string(s / 1024) + " KiB" : std::to_string(s) + " B").c_str(),
                            name, percentileOf(*values, 50), percentileOf(*values, 99),
                            *std::max_element(values->begin(), values->end()), values->size() / (total / 1e3));
            }
        }
        std::printf("\ntau-monitor %s\n", describeWaitStatus(status).c_str());
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "state_store_bench: " << e.what() << '\n';
        return 2;
    }
}
