// Crash-to-restart latency of tau-monitor against a minimal restarter in C.
//
// For each supervisor the driver runs bench/stamp_child as the supervised service. Every child writes
// "<pid> <CLOCK_MONOTONIC ns>" to a FIFO the moment it starts. The driver SIGKILLs the current child and
// takes the time just before kill(); the replacement's stamp minus that time is one latency sample. It
// covers the whole path: the kernel ending the child, the supervisor noticing, deciding, forking and
// exec'ing, and the new program reaching main().
//
// Both supervisors run for the whole benchmark and are measured in alternating blocks, so that whatever
// else the machine does during the run is spread over both alike.

#include "bench_support.h"

namespace {

using namespace bench;

constexpr double kTargetP50Ratio = 1.3;
constexpr double kTargetP99Ratio = 1.5;

struct Options {
    CommonOptions common;
    std::string only; // empty: both systems
};

const std::string kUsage =
    std::string(
        R"(usage: crash_restart_bench --tau-monitor PATH --baseline PATH --stamp-child PATH [options]

Measures crash-to-restart latency (SIGKILL of the supervised child -> first line written by its
replacement) of tau-monitor and of the baseline restarter, interleaved in blocks, and checks
tau-monitor p50 <= 1.3 x baseline p50 and tau-monitor p99 <= 1.5 x baseline p99.

)") +
    kCommonUsage +
    R"(  --only SYSTEM        run and measure only "baseline" or "tau-monitor" (to look at one under strace or
                       perf); there is then nothing to compare and the exit status is 0

Exit status: 0 targets met, 1 targets missed, 2 error.
)";

Options parseOptions(int argc, char** argv) {
    Options options;
    options.common =
        parseCommandLine(argc, argv, kUsage, [&](const std::string& option, const std::string& value) {
            if (option != "--only") {
                return false;
            }
            if (value != "baseline" && value != "tau-monitor") {
                throw std::invalid_argument(option + ": '" + value + "' is neither baseline nor tau-monitor");
            }
            options.only = value;
            return true;
        });
    return options;
}

int run(const Options& options) {
    const CommonOptions& common = options.common;
    const KillPlan& plan = common.plan;
    TemporaryDirectory directory(common.keep_temporary_directory);
    const auto& dir = directory.path();
    const EnvironmentChanges isolated_environment = isolatedEnvironment(dir / "runtime", dir);

    SupervisedSystem baseline("baseline", dir / "baseline.fifo");
    SupervisedSystem tau("tau-monitor", dir / "tau-monitor.fifo");
    std::vector<SupervisedSystem*> systems;
    if (options.only.empty() || options.only == baseline.name()) {
        systems.push_back(&baseline);
    }
    if (options.only.empty() || options.only == tau.name()) {
        systems.push_back(&tau);
    }
    const bool measuring_tau = std::find(systems.begin(), systems.end(), &tau) != systems.end();

    const TauCli cli(common.tau_cli, isolated_environment, dir / "cli.out");
    SupervisedSystem::ReadinessCheck tau_ready;
    if (cli.available()) {
        tau_ready = tauReadiness(cli, 1, "stamp");
    }

    std::map<const SupervisedSystem*, std::string> stop_results;
    auto stopAll = [&] {
        for (auto it = systems.rbegin(); it != systems.rend(); ++it) {
            stop_results[*it] = (*it)->stop();
        }
    };
    try {
        std::string started;
        for (auto* system : systems) {
            if (system == &baseline) {
                baseline.start(
                    {common.baseline.string(), common.stamp_child.string(), baseline.fifoPath().string()},
                    isolated_environment, dir / "baseline.out", common.stamp_child, {});
            } else {
                const auto config_path = dir / "tau-monitor.toml";
                std::ofstream(config_path)
                    << tauConfiguration(common.stamp_child, dir, {{"stamp", tau.fifoPath()}});
                tau.start({common.tau_monitor.string(), "--foreground", "--bus", "private", "--config",
                           config_path.string()},
                          isolated_environment, dir / "tau-monitor.out", common.stamp_child, tau_ready);
            }
            started += system->name() + " pid " + std::to_string(*system->supervisorPid()) + ", ";
        }
        std::cerr << started << "temporary directory " << dir.string() << '\n';

        measureInInterleavedBlocks(systems, plan);

        std::optional<ListedService> tau_view;
        if (cli.available() && measuring_tau) {
            if (const auto services = cli.processes()) {
                for (const auto& s : *services) {
                    if (s.name == "stamp") {
                        tau_view = s;
                    }
                }
            }
        }
        const pid_t tau_child = tau.currentChild();
        stopAll();

        std::cout
            << "crash-to-restart latency: SIGKILL of the supervised child -> first stamp of its replacement\n"
            << plan.kills << " kills per system in " << plan.blocks << " interleaved blocks, after "
            << plan.warmup_kills << " unmeasured kills each; settle "
            << plan.settle / kNanosecondsPerMillisecond << " ms before every kill\n\n";
        printLatencyTables(systems, plan.blocks);

        std::optional<bool> passed;
        if (systems.size() == 2) {
            const Summary baseline_summary = summarize(baseline.samples());
            const Summary tau_summary = summarize(tau.samples());
            const double p50_ratio = tau_summary.p50 / baseline_summary.p50;
            const double p99_ratio = tau_summary.p99 / baseline_summary.p99;
            const bool p50_met = p50_ratio <= kTargetP50Ratio;
            const bool p99_met = p99_ratio <= kTargetP99Ratio;
            std::printf("\nratio tau-monitor/baseline  p50 %.3fx (target <= %.2fx) %s\n", p50_ratio,
                        kTargetP50Ratio, p50_met ? "PASS" : "FAIL");
            std::printf("ratio tau-monitor/baseline  p99 %.3fx (target <= %.2fx) %s\n", p99_ratio,
                        kTargetP99Ratio, p99_met ? "PASS" : "FAIL");
            passed = p50_met && p99_met;
        }

        if (cli.available() && measuring_tau) {
            if (tau_view) {
                const bool consistent = tau_view->pid == tau_child && tau_view->restarts == tau.killsSent();
                std::printf("tau-monitor-cli: stamp pid %ld, %ld restarts (driver: pid %d, %u kills) %s\n",
                            tau_view->pid, tau_view->restarts, tau_child, tau.killsSent(),
                            consistent ? "consistent" : "MISMATCH");
            } else {
                std::printf("tau-monitor-cli: could not list the services at the end\n");
            }
        }
        std::string how_they_ended;
        for (const auto* system : systems) {
            how_they_ended +=
                (how_they_ended.empty() ? "" : "; ") + system->name() + " " + stop_results[system];
        }
        std::printf("supervisors at exit: %s\n", how_they_ended.c_str());

        if (!common.json_output.empty()) {
            writeLatencyJson(common.json_output, plan, {systems.begin(), systems.end()});
            std::printf("raw latencies: %s\n", common.json_output.c_str());
        }
        if (!passed) {
            std::printf("\nRESULT: only %s measured, nothing to compare\n", options.only.c_str());
            return kExitPass;
        }
        std::printf("\nRESULT: %s\n", *passed ? "PASS" : "FAIL");
        std::fflush(stdout);
        return *passed ? kExitPass : kExitFail;
    } catch (...) {
        stopAll();
        throw;
    }
}

} // namespace

int main(int argc, char** argv) {
    Options options;
    try {
        options = parseOptions(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "crash_restart_bench: " << e.what() << "\n\n" << kUsage;
        return kExitError;
    }
    installInterruptionHandling();
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::cerr << "crash_restart_bench: " << e.what() << '\n';
        return kExitError;
    }
}
