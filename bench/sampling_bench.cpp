// The cost of one full resource sampling cycle with many supervised services, against psutil reading the
// same numbers.
//
// Starts --services sleeping children (the "services"), then runs --cycles sampling cycles of
// tau::ResourceSampler with every child as a service target and measures wall and CPU time per cycle. The
// timed cycles reuse the PSS of the warm-up cycle, as the sampler does between two refreshes (pss_max_age,
// 30 s by default); a few cycles that re-read PSS every time are reported for information. Then
// bench/psutil_sampling.py runs the same number of cycles over the same pids. Every child is killed by its
// pid at the end.
//
// Exit status: 0 when the median wall time is at most --target-ratio of psutil's, 1 when not, 2 on errors.

#include "bench_support.h"
#include "tau/clock.h"
#include "tau/procfs.h"
#include "tau/resources.h"

#include <sys/prctl.h>

namespace {

constexpr double kDefaultTargetRatio = 0.2;
constexpr unsigned kPssRefreshCycles = 3;

struct Options {
    unsigned services = 1000;
    unsigned cycles = 30;
    std::string python = "python3";
    std::filesystem::path script = "bench/psutil_sampling.py";
    double target_ratio = kDefaultTargetRatio;
};

const char* const kUsage =
    "usage: sampling_bench [--services N] [--cycles N] [--python PYTHON] [--script PSUTIL_SCRIPT]\n"
    "                      [--target-ratio R]\n"
    "  --services N      sleeping children sampled as services (default 1000)\n"
    "  --cycles N        timed cycles on each side (default 30)\n"
    "  --python PYTHON   the interpreter that has psutil (default python3)\n"
    "  --script PATH     bench/psutil_sampling.py\n"
    "  --target-ratio R  pass when our median wall time is at most R times psutil's (default 0.2)\n";

Options parseOptions(int argc, char** argv) {
    Options options;
    for (int index = 1; index < argc; ++index) {
        const std::string option = argv[index];
        if (option == "-h" || option == "--help") {
            std::cout << kUsage;
            std::exit(bench::kExitPass);
        }
        if (index + 1 >= argc)
            throw std::invalid_argument(option + " needs a value");
        const std::string value = argv[++index];
        if (option == "--services") {
            options.services = bench::parseCount(option, value, 1);
        } else if (option == "--cycles") {
            options.cycles = bench::parseCount(option, value, 1);
        } else if (option == "--python") {
            options.python = value;
        } else if (option == "--script") {
            options.script = value;
        } else if (option == "--target-ratio") {
            options.target_ratio = std::stod(value);
        } else {
            throw std::invalid_argument("unknown option " + option);
        }
    }
    return options;
}

// Children that do nothing but wait to be killed; each one is ended by its pid in the destructor.
class SleepingChildren {
  public:
    explicit SleepingChildren(unsigned count) {
        pids_.reserve(count);
        const pid_t parent = ::getpid();
        for (unsigned index = 0; index < count; ++index) {
            const pid_t pid = ::fork();
            if (pid < 0)
                throw std::runtime_error(bench::errnoText("fork"));
            if (pid == 0) {
                // Should the benchmark die without cleaning up, its children go with it.
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (::getppid() != parent)
                    ::_exit(0);
                for (;;)
                    ::pause();
            }
            pids_.push_back(pid);
        }
    }

    ~SleepingChildren() {
        for (const pid_t pid : pids_)
            ::kill(pid, SIGKILL);
        for (const pid_t pid : pids_)
            ::waitpid(pid, nullptr, 0);
    }

    SleepingChildren(const SleepingChildren&) = delete;
    SleepingChildren& operator=(const SleepingChildren&) = delete;

    const std::vector<pid_t>& pids() const { return pids_; }

  private:
    std::vector<pid_t> pids_;
};

struct CycleTimes {
    std::vector<double> wall_ms;
    std::vector<double> cpu_ms;
    std::map<std::string, std::vector<double>> collector_ms; // where the wall time goes
};

double processCpuMilliseconds() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
}

CycleTimes timeCycles(tau::ResourceSampler& sampler, const std::vector<tau::ServiceSampleTarget>& targets,
                      unsigned cycles, bool withRates) {
    CycleTimes times;
    for (unsigned cycle = 0; cycle < cycles; ++cycle) {
        if (bench::interrupting_signal != 0)
            throw bench::Interrupted();
        const bench::Nanoseconds wallStart = bench::monotonicNow();
        const double cpuStart = processCpuMilliseconds();
        const tau::ResourceSnapshot snapshot = sampler.sample(targets);
        times.cpu_ms.push_back(processCpuMilliseconds() - cpuStart);
        times.wall_ms.push_back(bench::toMilliseconds(bench::monotonicNow() - wallStart));
        for (const tau::CollectorStatus& collector : snapshot.collectors) {
            if (collector.state != tau::CollectorState::ok)
                std::fprintf(stderr, "collector %s: %s: %s\n", collector.name.c_str(),
                             std::string(tau::toString(collector.state)).c_str(), collector.message.c_str());
            times.collector_ms[collector.name].push_back(static_cast<double>(collector.duration.count()) /
                                                         1e3);
        }
        // A cycle is only worth timing if it measured everything: every service running, and from the
        // second cycle of a sampler on, with its rates.
        std::size_t complete = 0;
        for (const tau::ServiceSnapshot& service : snapshot.services) {
            const bool rates = service.cpu_percent && service.io_read_bytes_per_second;
            complete +=
                service.running && service.open_fds && service.pss_bytes && (rates || !withRates) ? 1 : 0;
        }
        if (complete != targets.size()) {
            throw std::runtime_error("only " + std::to_string(complete) + " of " +
                                     std::to_string(targets.size()) + " services were measured completely");
        }
    }
    return times;
}

std::string shellQuoted(const std::string& text) {
    std::string quoted = "'";
    for (const char character : text) {
        if (character == '\'')
            quoted += "'\\''";
        else
            quoted += character;
    }
    return quoted + "'";
}

CycleTimes runPsutil(const Options& options, const std::vector<pid_t>& pids) {
    bench::TemporaryDirectory directory(false);
    const std::filesystem::path pidsFile = directory.path() / "pids";
    {
        std::ofstream out(pidsFile);
        for (const pid_t pid : pids)
            out << pid << '\n';
    }
    const std::string command = shellQuoted(options.python) + " " + shellQuoted(options.script.string()) +
                                " --cycles " + std::to_string(options.cycles) + " --pids-file " +
                                shellQuoted(pidsFile.string());
    FILE* output = ::popen(command.c_str(), "r");
    if (output == nullptr)
        throw std::runtime_error(bench::errnoText("popen " + command));
    CycleTimes times;
    char line[256];
    while (std::fgets(line, sizeof line, output) != nullptr) {
        double wall = 0, cpu = 0;
        if (std::sscanf(line, "%lf %lf", &wall, &cpu) == 2) {
            times.wall_ms.push_back(wall);
            times.cpu_ms.push_back(cpu);
        }
    }
    const int status = ::pclose(output);
    if (status != 0 || times.wall_ms.size() != options.cycles)
        throw std::runtime_error("the psutil script failed (" + bench::describeWaitStatus(status) + ")");
    return times;
}

struct Spread {
    double median = 0, p10 = 0, p90 = 0;
};

Spread spreadOf(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return Spread{bench::percentile(values, 50), bench::percentile(values, 10),
                  bench::percentile(values, 90)};
}

void printRow(const std::string& label, const CycleTimes& times) {
    const Spread wall = spreadOf(times.wall_ms);
    const Spread cpu = spreadOf(times.cpu_ms);
    std::printf("%-34s wall %8.2f ms (p10 %8.2f, p90 %8.2f)   cpu %8.2f ms (p10 %8.2f, p90 %8.2f)\n",
                label.c_str(), wall.median, wall.p10, wall.p90, cpu.median, cpu.p10, cpu.p90);
}

} // namespace

int main(int argc, char** argv) {
    try {
        const Options options = parseOptions(argc, argv);
        bench::installInterruptionHandling();

        SleepingChildren children(options.services);
        std::vector<tau::ServiceSampleTarget> targets;
        targets.reserve(children.pids().size());
        for (std::size_t index = 0; index < children.pids().size(); ++index)
            targets.emplace_back("service-" + std::to_string(index), children.pids()[index]);

        const tau::ProcFsReader reader;
        const tau::SystemClock clock;
        std::printf("sampling %u services, %u cycles on each side\n", options.services, options.cycles);

        // The PSS of every process is read in the warm-up and reused by the timed cycles. Every timed cycle
        // scans the whole of /proc for the services' trees, as the service does every process_rescan.
        tau::SamplerOptions fullScans;
        fullScans.process_rescan = std::chrono::milliseconds(0);
        tau::ResourceSampler sampler(reader, clock, fullScans);
        const CycleTimes warmUp = timeCycles(sampler, targets, 1, false);
        const CycleTimes timed = timeCycles(sampler, targets, options.cycles, true);

        // The reads spread over the cores, for what that gains or, on a busy machine, costs.
        // Between two full scans only the processes of the trees are read.
        tau::ResourceSampler betweenScansSampler(reader, clock);
        timeCycles(betweenScansSampler, targets, 1, false);
        const CycleTimes betweenScans = timeCycles(betweenScansSampler, targets, options.cycles, true);

        tau::SamplerOptions spread = fullScans;
        spread.workers = tau::defaultSamplingWorkers();
        tau::ResourceSampler spreadSampler(reader, clock, spread);
        timeCycles(spreadSampler, targets, 1, false);
        const CycleTimes overCores = timeCycles(spreadSampler, targets, options.cycles, true);

        tau::SamplerOptions alwaysPss = fullScans;
        alwaysPss.pss_max_age = std::chrono::milliseconds(0);
        tau::ResourceSampler pssSampler(reader, clock, alwaysPss);
        timeCycles(pssSampler, targets, 1, false);
        const CycleTimes withPss = timeCycles(pssSampler, targets, kPssRefreshCycles, true);

        const CycleTimes psutil = runPsutil(options, children.pids());

        printRow("tau ResourceSampler (PSS cached)", timed);
        printRow("tau, between full scans of /proc", betweenScans);
        printRow("tau, reads over " + std::to_string(spread.workers) + " threads", overCores);
        printRow("tau, first cycle (reads PSS)", warmUp);
        printRow("tau, PSS re-read every cycle", withPss);
        printRow("psutil", psutil);
        std::printf("median ms per collector (PSS cached):");
        for (const auto& [name, durations] : timed.collector_ms)
            std::printf(" %s %.2f", name.c_str(), spreadOf(durations).median);
        std::printf("\n");
        const double ratio = spreadOf(timed.wall_ms).median / spreadOf(psutil.wall_ms).median;
        const double cpuRatio = spreadOf(timed.cpu_ms).median / spreadOf(psutil.cpu_ms).median;
        std::printf("ratio tau/psutil: wall %.3f, cpu %.3f (target wall <= %.2f): %s\n", ratio, cpuRatio,
                    options.target_ratio, ratio <= options.target_ratio ? "PASS" : "FAIL");
        return ratio <= options.target_ratio ? bench::kExitPass : bench::kExitFail;
    } catch (const std::exception& error) {
        std::fprintf(stderr, "sampling_bench: %s\n", error.what());
        return bench::kExitError;
    }
}
