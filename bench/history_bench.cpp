// What a day of history costs the Resources service: 200 series recorded for 24 hours, as the service
// records them, with values shaped like a real machine's (steady disk usage, drifting memory, noisy CPU,
// bursty I/O rates), and in the worst case (every series noise). Prints the memory the history accounts
// for, how much the process's resident anonymous memory grew, and how long GetHistory's queries take.
//
// usage: history_bench [--series N] [--interval-s S] [--worst-case]

#include "tau/metric_history.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <malloc.h>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

long statusKilobytes(const char* field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field, 0) == 0)
            return std::stol(line.substr(std::strlen(field)));
    }
    return -1;
}

enum class Shape { Steady, Drifting, Noisy, Bursty };

Shape shapeOf(unsigned series, bool worstCase) {
    if (worstCase)
        return Shape::Noisy;
    // A machine's mix: a fifth steady (disk and inode usage, limits), a third drifting (memory, service
    // memory, temperatures, load), a quarter noisy (CPU, per core and per service), the rest bursty rates
    // (network and disk I/O, mostly idle).
    const unsigned slot = series % 20;
    return slot < 4 ? Shape::Steady : slot < 11 ? Shape::Drifting : slot < 16 ? Shape::Noisy : Shape::Bursty;
}

double valueAt(Shape shape, unsigned series, long second, std::mt19937_64& random) {
    std::normal_distribution<double> jitter(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    switch (shape) {
    case Shape::Steady:
        return 40.0 + series + static_cast<double>(second) * 1e-5;
    case Shape::Drifting:
        return 4e9 + 5e8 * std::sin(static_cast<double>(second) / 7200.0 + series) + 2e6 * jitter(random);
    case Shape::Noisy:
        return std::clamp(30.0 + 25.0 * jitter(random), 0.0, 100.0);
    case Shape::Bursty:
        return uniform(random) < 0.9 ? 0.0 : 1e6 * uniform(random);
    }
    return 0;
}

double medianMicros(std::vector<double> samples) {
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    unsigned series = 200;
    long interval = 1;
    bool worstCase = false;
    for (int i = 1; i < argc; ++i) {
        const std::string argument = argv[i];
        if (argument == "--series" && i + 1 < argc) {
            series = static_cast<unsigned>(std::stoul(argv[++i]));
        } else if (argument == "--interval-s" && i + 1 < argc) {
            interval = std::stol(argv[++i]);
        } else if (argument == "--worst-case") {
            worstCase = true;
        } else {
            std::cerr << "usage: history_bench [--series N] [--interval-s S] [--worst-case]\n";
            return 2;
        }
    }
    if (series == 0 || interval < 1) {
        std::cerr << "history_bench: --series and --interval-s must be at least 1\n";
        return 2;
    }

    std::vector<std::string> keys;
    for (unsigned i = 0; i < series; ++i)
        keys.push_back("metric_" + std::to_string(i) + "@scope" + std::to_string(i));
    malloc_trim(0);
    const long anonBefore = statusKilobytes("RssAnon:");

    tau::MetricHistory history(
        {std::chrono::seconds(interval), std::chrono::hours(1), std::chrono::hours(24)});
    std::mt19937_64 random(42);
    const auto start = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'006'400));
    const auto fillStarted = Clock::now();
    for (long second = 0; second < 86400; second += interval) {
        const auto at = start + std::chrono::seconds(second);
        for (unsigned i = 0; i < series; ++i)
            history.record(keys[i], at, valueAt(shapeOf(i, worstCase), i, second, random));
    }
    const double fillSeconds = std::chrono::duration<double>(Clock::now() - fillStarted).count();
    const long anonAfter = statusKilobytes("RssAnon:");

    std::vector<double> hourQueries, dayQueries;
    const auto end = start + std::chrono::hours(24);
    for (unsigned i = 0; i < series; ++i) {
        auto began = Clock::now();
        const auto hour = history.query(keys[i], end - std::chrono::hours(1), std::chrono::seconds(0));
        hourQueries.push_back(std::chrono::duration<double, std::micro>(Clock::now() - began).count());
        began = Clock::now();
        const auto day = history.query(keys[i], start, std::chrono::seconds(60));
        dayQueries.push_back(std::chrono::duration<double, std::micro>(Clock::now() - began).count());
        if (hour.empty() || day.size() < 1400) {
            std::cerr << "history_bench: series " << keys[i] << " lost data (" << hour.size() << " samples, "
                      << day.size() << " minutes)\n";
            return 2;
        }
    }

    const double historyMiB = static_cast<double>(history.memoryBytes()) / (1024.0 * 1024.0);
    std::printf("history of %u series, 24 h at %ld s (%s values)\n", series, interval,
                worstCase ? "worst-case: all noise" : "a machine's mix");
    std::printf("  filled in                  %.1f s\n", fillSeconds);
    std::printf("  memory the history counts  %.2f MiB (%.1f KiB per series)\n", historyMiB,
                static_cast<double>(history.memoryBytes()) / 1024.0 / series);
    std::printf("  resident anonymous growth  %.2f MiB\n",
                static_cast<double>(anonAfter - anonBefore) / 1024.0);
    std::printf("  GetHistory last hour       median %.0f us\n", medianMicros(hourQueries));
    std::printf("  GetHistory day in minutes  median %.0f us\n", medianMicros(dayQueries));
    return 0;
}
