#pragma once
// memory_limit_mb and cpu_limit_percent where the kernel cannot enforce them (no delegated cgroup v2): the
// services' process trees are sampled from /proc, and a service over its limit for N samples in a row is
// stopped and recovered by the supervisor as a resource_limit failure.

#include "supervisor.h"
#include "tau/clock.h"
#include "tau/event_loop.h"
#include "tau/resource_limits.h"

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tau {

struct LimitWatchOptions {
    unsigned consecutive_samples = 3;
    std::chrono::milliseconds min_interval{5000};
    // The share of one CPU the sampling may use: with many processes to read, rounds space out.
    double max_cpu_share = 0.0005;
};

// How long to wait after a round that cost `round_cost` of CPU time, so that sampling stays within
// `max_cpu_share` of one CPU and is never more frequent than `min_interval`.
std::chrono::milliseconds nextSampleInterval(std::chrono::nanoseconds round_cost,
                                             std::chrono::milliseconds min_interval, double max_cpu_share);

class LimitEnforcer {
  public:
    // The CPU time the calling thread has used so far; tests script it.
    using CpuTimeSource = std::function<std::chrono::nanoseconds()>;

    LimitEnforcer(Reactor& reactor, Supervisor& supervisor, ProcessTreeSampler& sampler, const Clock& clock,
                  std::map<std::string, ResourceLimits> limits, LimitWatchOptions options = {},
                  CpuTimeSource cpu_time = threadCpuTime);
    ~LimitEnforcer();
    LimitEnforcer(const LimitEnforcer&) = delete;
    LimitEnforcer& operator=(const LimitEnforcer&) = delete;

    // Samples now and then again and again.
    void start();
    // One round: samples every running service with limits and stops those over them long enough.
    void sampleOnce();
    std::chrono::milliseconds interval() const { return interval_; }

    static std::chrono::nanoseconds threadCpuTime();

  private:
    void schedule();

    Reactor& reactor_;
    Supervisor& supervisor_;
    ProcessTreeSampler& sampler_;
    const Clock& clock_;
    std::map<std::string, ResourceLimits> limits_;
    LimitWatchOptions options_;
    CpuTimeSource cpu_time_;
    ResourceLimitWatcher watcher_;
    std::chrono::milliseconds interval_;
    Reactor::TimerId timer_ = 0;
    std::vector<std::string> names_;
    std::vector<pid_t> roots_;
    std::vector<ProcessTreeSample> trees_;
};

} // namespace tau
