// tau-monitor with many supervised services (1000 by default).
//
// Every service is bench/stamp_child, which writes "<pid> <CLOCK_MONOTONIC ns>" to a FIFO the moment it
// starts. In one run the driver measures:
//
//  1. start-up: the time from launching the supervisor to the last of the N first lines, for tau-monitor
//     and for bench/baseline_restarter -n N, in alternating runs;
//  2. crash-to-restart latency of one designated service while N-1 others idle, against the same with a
//     single service, in alternating blocks of kills of two tau-monitor daemons running side by side;
//  3. idle CPU of the tau-monitor root with N services (utime+stime from /proc/PID/stat over a window),
//     and of its four internal services for information;
//  4. the resident memory of the tau-monitor root (VmRSS, VmHWM) after start-up and at the end.

#include "bench_support.h"

#include <set>
#include <sys/resource.h>

namespace {

using namespace bench;

constexpr double kTargetStartupRatio = 2.0;
constexpr double kTargetLatencyP50Ratio = 1.2;
constexpr double kTargetIdleCpuPercent = 0.1;
constexpr long kKiB = 1024;
constexpr long kTargetRssKiB = 8 * 1024; // 8 MiB = 8388608 bytes
// What the tau-monitor root holds per configured service (a pidfd and the two pipes of its output), and
// what it needs besides, for the check of RLIMIT_NOFILE before the run.
constexpr rlim_t kDescriptorsPerService = 3;
constexpr rlim_t kDescriptorsBesides = 256;
// A start-up of many services may take far longer than the first child of one.
constexpr Nanoseconds kStartTimeoutPerService = 20 * kNanosecondsPerMillisecond;

struct Options {
    CommonOptions common;
    unsigned services = 1000;
    unsigned startup_runs = 3;
    Nanoseconds idle_settle = 10 * kNanosecondsPerSecond;
    Nanoseconds idle_window = 60 * kNanosecondsPerSecond;
};

const std::string kUsage =
    std::string(
        R"(usage: many_services_bench --tau-monitor PATH --tau-cli PATH --baseline PATH --stamp-child PATH
                           [options]

Runs N services (stamp_child) under tau-monitor and measures, in one run:
  start-up      launch -> all N services wrote their first line, tau-monitor against
                baseline_restarter -n N (alternating runs); target: ratio of the medians <= 2.0
  latency       crash-to-restart latency of one service with N services against 1 service, two
                tau-monitor daemons side by side, alternating blocks; target: p50 ratio <= 1.2
  idle CPU      utime+stime of the tau-monitor root with N services over a window after start-up;
                target: < 0.1 % of one core
  memory        VmRSS of the tau-monitor root after start-up and at the end; target: < 8 MiB

  --services N         the number of services (default 1000, at least 2)
  --startup-runs N     start-up runs per system, alternating (default 3)
  --idle-settle-s N    seconds between start-up and the idle window (default 10)
  --idle-window-s N    seconds of the idle CPU window (default 60)
)") +
    kCommonUsage + R"(
--kills, --blocks, --warmup, --settle-ms and --timeout-ms apply to the latency part, where the two
systems are tau-monitor with N services and tau-monitor with 1. --tau-cli is required.

Exit status: 0 targets met, 1 targets missed, 2 error.
)";

Options parseOptions(int argc, char** argv) {
    Options options;
    options.common =
        parseCommandLine(argc, argv, kUsage, [&](const std::string& option, const std::string& value) {
            if (option == "--services") {
                options.services = parseCount(option, value, 2);
            } else if (option == "--startup-runs") {
                options.startup_runs = parseCount(option, value, 1);
            } else if (option == "--idle-settle-s") {
                options.idle_settle = parseCount(option, value, 0) * kNanosecondsPerSecond;
            } else if (option == "--idle-window-s") {
                options.idle_window = parseCount(option, value, 1) * kNanosecondsPerSecond;
            } else {
                return false;
            }
            return true;
        });
    if (options.common.tau_cli.empty()) {
        throw std::invalid_argument("--tau-cli is required");
    }
    return options;
}

// The supervisor runs its services with the driver's limits, so too low a limit would show only as
// services that fail to start: say so before anything starts.
void checkLimits(unsigned services) {
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_max != RLIM_INFINITY) {
        const rlim_t needed = services * kDescriptorsPerService + kDescriptorsBesides;
        if (files.rlim_max < needed) {
            throw std::runtime_error(
                "the hard limit of open files (RLIMIT_NOFILE, ulimit -Hn) is " +
                std::to_string(files.rlim_max) +
                ". tau-monitor raises its soft limit to that hard limit, but with " +
                std::to_string(services) + " services it needs about " + std::to_string(needed) +
                " descriptors (" + std::to_string(kDescriptorsPerService) + " per service and " +
                std::to_string(kDescriptorsBesides) +
                " besides). Raise the hard limit (e.g. LimitNOFILE= of the session, or limits.conf) or run "
                "fewer --services.");
        }
    }
    rlimit processes{};
    if (::getrlimit(RLIMIT_NPROC, &processes) == 0 && processes.rlim_cur != RLIM_INFINITY) {
        // The services of one system at a time, the single-service daemon, the suites and their buses.
        const rlim_t needed = services + 64;
        if (processes.rlim_cur < needed) {
            throw std::runtime_error("the limit of processes (RLIMIT_NPROC, ulimit -u) is " +
                                     std::to_string(processes.rlim_cur) + "; the benchmark runs at least " +
                                     std::to_string(needed) + " at once. Raise it or run fewer --services.");
        }
    }
}

// Services of one supervisor that report to one FIFO and are never killed. The driver waits for their
// first lines; any later line is a restart nobody asked for.
class ServiceCrowd {
  public:
    ServiceCrowd(std::string name, std::filesystem::path fifo_path,
                 const std::filesystem::path& child_executable)
        : name_(std::move(name)), fifo_(std::move(fifo_path)),
          child_executable_(std::filesystem::weakly_canonical(child_executable)) {}

    const std::filesystem::path& fifoPath() const { return fifo_.path(); }
    const std::set<pid_t>& pids() const { return pids_; }

    // Waits until `count` different children reported; returns when the last of them started (its stamp).
    Nanoseconds awaitFirstLines(std::size_t count, Nanoseconds deadline, StartedProcess& supervisor,
                                const std::filesystem::path& output) {
        Nanoseconds latest = 0;
        while (pids_.size() < count) {
            const auto stamp = next(deadline, supervisor, output);
            if (!stamp) {
                throw std::runtime_error(supervisorFailure(name_,
                                                           "only " + std::to_string(pids_.size()) + " of " +
                                                               std::to_string(count) +
                                                               " services wrote their first line in time",
                                                           &supervisor, output));
            }
            if (pids_.insert(stamp->pid).second) {
                latest = std::max(latest, stamp->written_at);
            }
        }
        return latest;
    }

    // Lets time pass while watching the FIFO: a line now would mean a restart nobody asked for.
    void expectQuietUntil(Nanoseconds deadline, StartedProcess& supervisor,
                          const std::filesystem::path& output) {
        if (const auto unexpected = next(deadline, supervisor, output)) {
            throw std::runtime_error(supervisorFailure(name_,
                                                       "an idle service started again (pid " +
                                                           std::to_string(unexpected->pid) +
                                                           ") though none was killed",
                                                       &supervisor, output));
        }
    }

    void endLeftovers() const {
        for (const pid_t pid : pids_) {
            endIfStillRunning(pid, child_executable_);
        }
    }

  private:
    std::optional<Stamp> next(Nanoseconds deadline, StartedProcess& supervisor,
                              const std::filesystem::path& output) {
        try {
            return fifo_.next(deadline, supervisor);
        } catch (const SupervisorExited&) {
            throw std::runtime_error(
                supervisorFailure(name_, "the supervisor " + describeWaitStatus(supervisor.end(SIGKILL, 0)),
                                  &supervisor, output));
        }
    }

    std::string name_;
    StampFifo fifo_;
    std::filesystem::path child_executable_;
    std::set<pid_t> pids_;
};

Nanoseconds startTimeout(unsigned services) {
    return kFirstStampTimeout + services * kStartTimeoutPerService;
}

// Launches a supervisor whose `services` children all report to `crowd`, times the launch -> the last
// first line, and stops the supervisor again (SIGTERM by pid, then reaped); `how_it_ended` says how.
Nanoseconds timeStartup(const std::string& name, std::vector<std::string> argv,
                        const EnvironmentChanges& environment, const std::filesystem::path& output,
                        unsigned services, ServiceCrowd& crowd, std::string& how_it_ended) {
    const Nanoseconds launched_at = monotonicNow();
    StartedProcess supervisor(std::move(argv), environment, output);
    Nanoseconds last_started = 0;
    try {
        last_started =
            crowd.awaitFirstLines(services, launched_at + startTimeout(services), supervisor, output);
    } catch (...) {
        supervisor.end(SIGTERM, kStopGracePeriod);
        crowd.endLeftovers();
        throw;
    }
    how_it_ended = name + " " + describeWaitStatus(supervisor.end(SIGTERM, kStopGracePeriod));
    crowd.endLeftovers();
    return last_started - launched_at;
}

std::vector<StampService> manyServices(unsigned services, const std::filesystem::path& designated_fifo,
                                       const std::filesystem::path& others_fifo) {
    std::vector<StampService> result{{"stamp", designated_fifo}};
    const int width = static_cast<int>(std::to_string(services - 1).size());
    for (unsigned i = 1; i < services; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "idle-%0*u", width, i);
        result.push_back({name, others_fifo});
    }
    return result;
}

std::vector<std::string> tauArgv(const Options& options, const std::filesystem::path& config) {
    return {
        options.common.tau_monitor.string(), "--foreground", "--bus", "private", "--config", config.string()};
}

// A tau-monitor daemon's own directory: configuration, runtime directory, state, log and output.
struct TauInstance {
    std::filesystem::path directory;
    std::filesystem::path config;
    std::filesystem::path output;
    EnvironmentChanges environment;
};

TauInstance prepareTau(const Options& options, const std::filesystem::path& directory,
                       const std::filesystem::path& temporary, const std::vector<StampService>& services) {
    std::filesystem::create_directories(directory);
    TauInstance instance{directory, directory / "tau-monitor.toml", directory / "tau-monitor.out",
                         isolatedEnvironment(directory / "runtime", temporary)};
    std::ofstream(instance.config) << tauConfiguration(options.common.stamp_child, directory, services);
    return instance;
}

// CPU time and wakeups of one process, from /proc.
struct CpuReading {
    Nanoseconds taken_at = 0;
    unsigned long long start_time = 0; // ticks after boot: tells a restarted process with the same pid
    unsigned long long ticks = 0;      // utime + stime of all its threads, from /proc/PID/stat
    unsigned long long on_cpu = 0;     // ns on a CPU, summed over /proc/PID/task/*/schedstat
    unsigned long long wakeups = 0;    // voluntary context switches, summed over /proc/PID/task/*/status
};

std::optional<CpuReading> readCpu(pid_t pid) {
    const std::filesystem::path proc = "/proc/" + std::to_string(pid);
    CpuReading reading;
    reading.taken_at = monotonicNow();
    const std::string stat = readWholeFile(proc / "stat");
    const auto after_name = stat.rfind(')');
    if (after_name == std::string::npos) {
        return std::nullopt;
    }
    // Fields from the state (field 3) on; utime, stime and starttime are fields 14, 15 and 22.
    std::istringstream fields(stat.substr(after_name + 2));
    std::vector<std::string> field;
    for (std::string f; fields >> f;) {
        field.push_back(f);
    }
    if (field.size() < 20) {
        return std::nullopt;
    }
    reading.ticks = std::stoull(field[11]) + std::stoull(field[12]);
    reading.start_time = std::stoull(field[19]);
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator(proc / "task", error)) {
        std::istringstream schedstat(readWholeFile(task.path() / "schedstat"));
        unsigned long long on_cpu = 0;
        if (schedstat >> on_cpu) {
            reading.on_cpu += on_cpu;
        }
        std::istringstream status(readWholeFile(task.path() / "status"));
        for (std::string line; std::getline(status, line);) {
            if (line.starts_with("voluntary_ctxt_switches:")) {
                reading.wakeups += std::stoull(line.substr(line.find(':') + 1));
            }
        }
    }
    return reading;
}

// From /proc/PID/status, in KiB; -1 when not read.
struct MemoryReading {
    long rss_kib = -1;  // VmRSS = RssAnon + RssFile + RssShmem
    long hwm_kib = -1;  // VmHWM, the largest VmRSS so far
    long anon_kib = -1; // RssAnon: heap, stacks, and other private memory
    long file_kib = -1; // RssFile: mapped files, mostly the executable and the shared libraries
};

MemoryReading readMemory(pid_t pid) {
    std::istringstream status(readWholeFile("/proc/" + std::to_string(pid) + "/status"));
    MemoryReading reading;
    for (std::string line; std::getline(status, line);) {
        const auto colon = line.find(':');
        const std::string key = line.substr(0, colon);
        long* const field = key == "VmRSS"     ? &reading.rss_kib
                            : key == "VmHWM"   ? &reading.hwm_kib
                            : key == "RssAnon" ? &reading.anon_kib
                            : key == "RssFile" ? &reading.file_kib
                                               : nullptr;
        if (field != nullptr) {
            *field = std::stol(line.substr(colon + 1));
        }
    }
    return reading;
}

long countOpenDescriptors(pid_t pid) {
    std::error_code error;
    long count = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error);
         !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
        ++count;
    }
    return error ? -1 : count;
}

// A process whose idle CPU is measured.
struct Watched {
    std::string label;
    pid_t pid = 0;
    std::optional<CpuReading> before;
    std::optional<CpuReading> after;
};

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t middle = values.size() / 2;
    return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::string passOrFail(bool met) {
    return met ? "PASS" : "FAIL";
}

int run(const Options& options) {
    const CommonOptions& common = options.common;
    const unsigned n = options.services;
    checkLimits(n);
    TemporaryDirectory directory(common.keep_temporary_directory);
    const auto& dir = directory.path();
    std::cerr << "temporary directory " << dir.string() << '\n';

    // Start-up, alternating which system goes first.
    std::vector<double> startup_baseline;
    std::vector<double> startup_tau;
    std::map<std::string, unsigned> startup_endings;
    for (unsigned run = 1; run <= options.startup_runs; ++run) {
        std::vector<std::string> order{"baseline", "tau-monitor"};
        if (run % 2 == 0) {
            std::reverse(order.begin(), order.end());
        }
        for (const auto& system : order) {
            const auto run_dir = dir / ("startup-" + system + "-" + std::to_string(run));
            std::filesystem::create_directories(run_dir);
            ServiceCrowd crowd(system, run_dir / "stamps.fifo", common.stamp_child);
            std::string ended;
            if (system == "baseline") {
                const Nanoseconds took = timeStartup(system,
                                                     {common.baseline.string(), "-n", std::to_string(n),
                                                      common.stamp_child.string(), crowd.fifoPath().string()},
                                                     isolatedEnvironment(run_dir / "runtime", dir),
                                                     run_dir / "baseline.out", n, crowd, ended);
                startup_baseline.push_back(toMilliseconds(took));
            } else {
                const auto tau =
                    prepareTau(options, run_dir, dir, manyServices(n, crowd.fifoPath(), crowd.fifoPath()));
                const Nanoseconds took = timeStartup(system, tauArgv(options, tau.config), tau.environment,
                                                     tau.output, n, crowd, ended);
                startup_tau.push_back(toMilliseconds(took));
            }
            ++startup_endings[ended];
            std::cerr << "start-up run " << run << " " << system << ": "
                      << (system == "baseline" ? startup_baseline : startup_tau).back() << " ms\n";
        }
    }

    // Two daemons side by side, N services and 1 service: idle CPU and memory first, then latency.
    const std::string many_name = "tau-monitor x" + std::to_string(n);
    const std::string one_name = "tau-monitor x1";
    const auto many_dir = dir / "tau-many";
    const auto one_dir = dir / "tau-one";
    std::filesystem::create_directories(many_dir);
    std::filesystem::create_directories(one_dir);
    SupervisedSystem tau_many(many_name, many_dir / "stamp.fifo");
    ServiceCrowd idle(many_name, many_dir / "idle.fifo", common.stamp_child);
    SupervisedSystem tau_one(one_name, one_dir / "stamp.fifo");
    const auto many =
        prepareTau(options, many_dir, dir, manyServices(n, tau_many.fifoPath(), idle.fifoPath()));
    const auto one = prepareTau(options, one_dir, dir, {{"stamp", tau_one.fifoPath()}});
    const TauCli many_cli(common.tau_cli, many.environment, many_dir / "cli.out");
    const TauCli one_cli(common.tau_cli, one.environment, one_dir / "cli.out");

    std::string many_ended = "not started";
    std::string one_ended = "not started";
    auto stopAll = [&] {
        one_ended = tau_one.stop();
        many_ended = tau_many.stop();
        idle.endLeftovers();
    };
    try {
        tau_many.start(tauArgv(options, many.config), many.environment, many.output, common.stamp_child,
                       tauReadiness(many_cli, n, "stamp"), startTimeout(n));
        idle.awaitFirstLines(n - 1, monotonicNow() + startTimeout(n), tau_many.supervisor(), many.output);
        tau_one.start(tauArgv(options, one.config), one.environment, one.output, common.stamp_child,
                      tauReadiness(one_cli, 1, "stamp"));
        const pid_t many_root = *tau_many.supervisorPid();
        const pid_t one_root = *tau_one.supervisorPid();
        std::cerr << many_name << " pid " << many_root << ", " << one_name << " pid " << one_root << '\n';

        // Idle CPU. The CLI is asked before the window: a call is work for the daemon.
        std::vector<Watched> watched{{many_name + " root", many_root, {}, {}}};
        const auto listed = many_cli.processes();
        if (!listed) {
            throw std::runtime_error(many_name + ": tau-monitor-cli cannot list the services");
        }
        for (const auto& service : *listed) {
            if (service.kind == "internal") {
                watched.push_back({"  internal " + service.name, static_cast<pid_t>(service.pid), {}, {}});
            }
        }
        watched.push_back({one_name + " root", one_root, {}, {}});
        std::cerr << "idle: settling " << options.idle_settle / kNanosecondsPerSecond << " s, then measuring "
                  << options.idle_window / kNanosecondsPerSecond << " s\n";
        idle.expectQuietUntil(monotonicNow() + options.idle_settle, tau_many.supervisor(), many.output);
        const MemoryReading many_after_start = readMemory(many_root);
        const MemoryReading one_after_start = readMemory(one_root);
        const long many_descriptors = countOpenDescriptors(many_root);
        for (auto& w : watched) {
            w.before = readCpu(w.pid);
        }
        const Nanoseconds window_start = monotonicNow();
        idle.expectQuietUntil(window_start + options.idle_window, tau_many.supervisor(), many.output);
        for (auto& w : watched) {
            w.after = readCpu(w.pid);
        }
        tau_many.expectNoStampUntil(monotonicNow());
        tau_one.expectNoStampUntil(monotonicNow());

        // Crash-to-restart latency, N services against 1.
        std::cerr << "latency: " << common.plan.kills << " kills per system\n";
        const std::vector<SupervisedSystem*> systems{&tau_one, &tau_many};
        measureInInterleavedBlocks(systems, common.plan);
        idle.expectQuietUntil(monotonicNow(), tau_many.supervisor(), many.output);

        // Memory at the end, and what the daemon says about its services.
        const MemoryReading many_at_end = readMemory(many_root);
        const MemoryReading one_at_end = readMemory(one_root);
        const auto listed_at_end = many_cli.processes();
        const pid_t designated_child = tau_many.currentChild();
        stopAll();

        // The report.
        std::printf("%u services (stamp_child) under tau-monitor; baseline: baseline_restarter -n %u\n\n", n,
                    n);

        std::printf(
            "start-up: launch of the supervisor -> the last of the %u services wrote its first line\n", n);
        std::printf("%-12s %14s %14s %9s\n", "run", "baseline ms", "tau-monitor ms", "ratio");
        for (std::size_t i = 0; i < startup_tau.size(); ++i) {
            std::printf("%-12zu %14.1f %14.1f %8.3fx\n", i + 1, startup_baseline[i], startup_tau[i],
                        startup_tau[i] / startup_baseline[i]);
        }
        const double baseline_median = median(startup_baseline);
        const double tau_median = median(startup_tau);
        auto [baseline_min, baseline_max] =
            std::minmax_element(startup_baseline.begin(), startup_baseline.end());
        auto [tau_min, tau_max] = std::minmax_element(startup_tau.begin(), startup_tau.end());
        std::printf("%-12s %14.1f %14.1f\n", "median", baseline_median, tau_median);
        std::printf("%-12s %14.1f %14.1f\n", "min", *baseline_min, *tau_min);
        std::printf("%-12s %14.1f %14.1f\n", "max", *baseline_max, *tau_max);
        std::printf("%-12s %13.1f%% %13.1f%%\n", "(max-min)/med",
                    100 * (*baseline_max - *baseline_min) / baseline_median,
                    100 * (*tau_max - *tau_min) / tau_median);
        const double startup_ratio = tau_median / baseline_median;
        const bool startup_met = startup_ratio <= kTargetStartupRatio;
        std::printf("ratio of the medians tau-monitor/baseline %.3fx (target <= %.2fx) %s\n\n", startup_ratio,
                    kTargetStartupRatio, passOrFail(startup_met).c_str());

        std::printf("crash-to-restart latency of one service with %u services (%u idle) and with 1 service\n",
                    n, n - 1);
        std::printf(
            "%u kills per system in %u interleaved blocks, after %u unmeasured kills each; settle %lld ms "
            "before every kill\n\n",
            common.plan.kills, common.plan.blocks, common.plan.warmup_kills,
            static_cast<long long>(common.plan.settle / kNanosecondsPerMillisecond));
        std::fflush(stdout);
        printLatencyTables(systems, common.plan.blocks);
        const Summary one_summary = summarize(tau_one.samples());
        const Summary many_summary = summarize(tau_many.samples());
        const double p50_ratio = many_summary.p50 / one_summary.p50;
        const double p99_ratio = many_summary.p99 / one_summary.p99;
        const bool latency_met = p50_ratio <= kTargetLatencyP50Ratio;
        std::printf("\nratio x%u/x1  p50 %.3fx (target <= %.2fx) %s\n", n, p50_ratio, kTargetLatencyP50Ratio,
                    passOrFail(latency_met).c_str());
        std::printf("ratio x%u/x1  p99 %.3fx (for information)\n\n", n, p99_ratio);

        const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
        std::printf("idle CPU: %.1f s window, %lld s after start-up; utime+stime from /proc/PID/stat (%ld "
                    "ticks/s)\n",
                    static_cast<double>(options.idle_window) / kNanosecondsPerSecond,
                    static_cast<long long>(options.idle_settle / kNanosecondsPerSecond), ticks_per_second);
        std::printf("%-28s %8s %6s %9s %10s %10s %10s\n", "process", "pid", "ticks", "cpu ms", "% of core",
                    "on-cpu ms", "wakeups/s");
        std::optional<double> root_percent;
        for (const auto& w : watched) {
            if (!w.before || !w.after || w.before->start_time != w.after->start_time) {
                std::printf("%-28s %8d  (ended or restarted during the window)\n", w.label.c_str(), w.pid);
                continue;
            }
            const double seconds =
                static_cast<double>(w.after->taken_at - w.before->taken_at) / kNanosecondsPerSecond;
            const auto ticks = w.after->ticks - w.before->ticks;
            const double cpu_ms = 1000.0 * static_cast<double>(ticks) / static_cast<double>(ticks_per_second);
            const double percent = cpu_ms / 10.0 / seconds;
            const double on_cpu_ms = static_cast<double>(w.after->on_cpu - w.before->on_cpu) / 1e6;
            const double wakeups = static_cast<double>(w.after->wakeups - w.before->wakeups) / seconds;
            std::printf("%-28s %8d %6llu %9.0f %9.3f%% %10.1f %10.2f\n", w.label.c_str(), w.pid, ticks,
                        cpu_ms, percent, on_cpu_ms, wakeups);
            if (w.pid == many_root) {
                root_percent = percent;
            }
        }
        const bool idle_met = root_percent && *root_percent < kTargetIdleCpuPercent;
        if (root_percent) {
            std::printf("%s root: %.3f %% of one core (target < %.3f %%) %s\n\n", many_name.c_str(),
                        *root_percent, kTargetIdleCpuPercent, passOrFail(idle_met).c_str());
        } else {
            std::printf("%s root: not measured (target < %.3f %%) FAIL\n\n", many_name.c_str(),
                        kTargetIdleCpuPercent);
        }

        std::printf(
            "memory of the roots, from /proc/PID/status, in KiB (1 KiB = 1024 bytes; 8 MiB = 8192 KiB = "
            "8388608 bytes)\n");
        std::printf("%-28s %-16s %10s %10s %10s %10s\n", "process", "when", "VmRSS KiB", "VmHWM KiB",
                    "RssAnon", "RssFile");
        struct MemoryRow {
            std::string process;
            const char* when;
            MemoryReading reading;
        };
        const MemoryRow memory_rows[] = {{many_name + " root", "after start-up", many_after_start},
                                         {many_name + " root", "at the end", many_at_end},
                                         {one_name + " root", "after start-up", one_after_start},
                                         {one_name + " root", "at the end", one_at_end}};
        for (const auto& row : memory_rows) {
            std::printf("%-28s %-16s %10ld %10ld %10ld %10ld\n", row.process.c_str(), row.when,
                        row.reading.rss_kib, row.reading.hwm_kib, row.reading.anon_kib, row.reading.file_kib);
        }
        const long largest_rss = std::max(many_after_start.rss_kib, many_at_end.rss_kib);
        const bool memory_met =
            many_after_start.rss_kib > 0 && many_at_end.rss_kib > 0 && largest_rss < kTargetRssKiB;
        std::printf("%s root VmRSS: at most %ld KiB = %.2f MiB (target < %ld KiB = 8 MiB) %s\n",
                    many_name.c_str(), largest_rss, static_cast<double>(largest_rss) / kKiB, kTargetRssKiB,
                    passOrFail(memory_met).c_str());
        std::printf(
            "%s root after start-up: %.1f KiB of VmRSS (%.1f KiB of RssAnon) per service more than %s; "
            "%ld open descriptors\n\n",
            many_name.c_str(),
            static_cast<double>(many_after_start.rss_kib - one_after_start.rss_kib) / (n - 1),
            static_cast<double>(many_after_start.anon_kib - one_after_start.anon_kib) / (n - 1),
            one_name.c_str(), many_descriptors);

        if (listed_at_end) {
            std::size_t others_running = 0;
            long others_restarts = 0;
            std::optional<ListedService> designated;
            for (const auto& s : *listed_at_end) {
                if (s.name == "stamp") {
                    designated = s;
                } else if (s.kind == "configured") {
                    others_running += s.state == "running" && idle.pids().contains(static_cast<pid_t>(s.pid));
                    others_restarts += s.restarts;
                }
            }
            const bool consistent = designated && designated->pid == designated_child &&
                                    designated->restarts == tau_many.killsSent() && others_running == n - 1 &&
                                    others_restarts == 0;
            std::printf(
                "tau-monitor-cli (%s): stamp pid %ld, %ld restarts (driver: pid %d, %u kills); %zu of %u "
                "idle services running as started, %ld restarts among them: %s\n",
                many_name.c_str(), designated ? designated->pid : -1L,
                designated ? designated->restarts : -1L, designated_child, tau_many.killsSent(),
                others_running, n - 1, others_restarts, consistent ? "consistent" : "MISMATCH");
        } else {
            std::printf("tau-monitor-cli (%s): could not list the services at the end\n", many_name.c_str());
        }
        std::string startup_ended;
        for (const auto& [how, count] : startup_endings) {
            startup_ended += (startup_ended.empty() ? "" : "; ") + how + " (" + std::to_string(count) + "x)";
        }
        std::printf("supervisors at exit: start-up runs: %s\n", startup_ended.c_str());
        std::printf("supervisors at exit: %s %s; %s %s\n", one_name.c_str(), one_ended.c_str(),
                    many_name.c_str(), many_ended.c_str());

        if (!common.json_output.empty()) {
            std::ostringstream leading;
            auto list = [](const std::vector<double>& values) {
                std::string text;
                for (const double v : values) {
                    text += (text.empty() ? "" : ", ") + std::to_string(v);
                }
                return "[" + text + "]";
            };
            leading << "  \"services\": " << n
                    << ",\n  \"startup_ms\": {\"baseline\": " << list(startup_baseline)
                    << ", \"tau-monitor\": " << list(startup_tau) << "},\n"
                    << "  \"idle_root_cpu_percent\": " << (root_percent ? *root_percent : -1.0) << ",\n"
                    << "  \"root_vmrss_kib\": {\"after_startup\": " << many_after_start.rss_kib
                    << ", \"at_end\": " << many_at_end.rss_kib << "},\n";
            writeLatencyJson(common.json_output, common.plan, {systems.begin(), systems.end()},
                             leading.str());
            std::printf("raw results: %s\n", common.json_output.c_str());
        }
        const bool passed = startup_met && latency_met && idle_met && memory_met;
        std::printf("\nRESULT: %s (start-up %s, latency %s, idle CPU %s, memory %s)\n",
                    passOrFail(passed).c_str(), passOrFail(startup_met).c_str(),
                    passOrFail(latency_met).c_str(), passOrFail(idle_met).c_str(),
                    passOrFail(memory_met).c_str());
        std::fflush(stdout);
        return passed ? kExitPass : kExitFail;
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
        std::cerr << "many_services_bench: " << e.what() << "\n\n" << kUsage;
        return kExitError;
    }
    installInterruptionHandling();
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::cerr << "many_services_bench: " << e.what() << '\n';
        return kExitError;
    }
}
