#include "limit_enforcer.h"

#include "tau/errors.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <spdlog/spdlog.h>

namespace tau {

std::chrono::milliseconds nextSampleInterval(std::chrono::nanoseconds round_cost,
                                             std::chrono::milliseconds min_interval, double max_cpu_share) {
    if (max_cpu_share <= 0 || round_cost.count() <= 0) {
        return min_interval;
    }
    const auto needed = std::chrono::milliseconds(
        static_cast<std::int64_t>(std::ceil(static_cast<double>(round_cost.count()) / max_cpu_share / 1e6)));
    return std::max(min_interval, needed);
}

std::chrono::nanoseconds LimitEnforcer::threadCpuTime() {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

LimitEnforcer::LimitEnforcer(Reactor& reactor, Supervisor& supervisor, ProcessTreeSampler& sampler,
                             const Clock& clock, std::map<std::string, ResourceLimits> limits,
                             LimitWatchOptions options, CpuTimeSource cpu_time)
    : reactor_(reactor), supervisor_(supervisor), sampler_(sampler), clock_(clock),
      limits_(std::move(limits)), options_(options), cpu_time_(std::move(cpu_time)),
      watcher_(options.consecutive_samples), interval_(options.min_interval) {}

LimitEnforcer::~LimitEnforcer() {
    if (timer_ != 0) {
        reactor_.cancelTimer(timer_);
    }
}

void LimitEnforcer::start() {
    if (!limits_.empty()) {
        schedule();
    }
}

void LimitEnforcer::schedule() {
    timer_ = reactor_.addTimer(interval_, [this] {
        timer_ = 0;
        sampleOnce();
        schedule();
    });
}

void LimitEnforcer::sampleOnce() {
    const auto cost_before = cpu_time_();
    names_.clear();
    roots_.clear();
    for (const auto& [name, limits] : limits_) {
        const auto* service = supervisor_.find(name);
        if (service != nullptr && service->state == ServiceState::Running) {
            names_.push_back(name);
            roots_.push_back(service->pid);
        } else {
            watcher_.forget(name); // a service that runs again starts with a clean count
        }
    }
    if (!roots_.empty()) {
        try {
            sampler_.sample(roots_, trees_);
        } catch (const std::exception& e) {
            spdlog::warn("cannot watch the services' resource limits this round: {}", e.what());
            return;
        }
    }
    const auto now = clock_.now();
    for (std::size_t i = 0; i < names_.size(); ++i) {
        const auto violation = watcher_.observe(names_[i], limits_.at(names_[i]), roots_[i], &trees_[i], now);
        if (!violation) {
            continue;
        }
        try {
            supervisor_.recoverFailing(names_[i], KillReason::ResourceLimit, violation->detail);
        } catch (const ServiceError&) {
            // Stopping already (on request or for another reason): nothing more to do.
        }
    }
    interval_ = nextSampleInterval(cpu_time_() - cost_before, options_.min_interval, options_.max_cpu_share);
}

} // namespace tau
