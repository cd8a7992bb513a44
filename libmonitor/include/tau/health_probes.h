#pragma once
// Every probe the Health service runs: the liveness and readiness probes of each supervised service, while
// that service runs, and a TCP connect to each configured network endpoint, all on one Reactor.

#include "tau/clock.h"
#include "tau/config.h"
#include "tau/event_loop.h"
#include "tau/health.h"
#include "tau/probes.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tau {

class HealthProbes {
  public:
    using ProberFactory = std::function<std::unique_ptr<Prober>(const ProbeConfig&)>;
    // A liveness probe reached its failure threshold; `message` is what the last attempt saw.
    using LivenessFailed = std::function<void(const std::string& service, const std::string& message)>;
    // A probe's or an endpoint's result changed, so the score may have.
    using Changed = std::function<void()>;

    // Endpoints are probed from now on, one attempt per health_checking.check_interval_seconds. A
    // service's probes start with serviceRunning().
    HealthProbes(Reactor& reactor, const Clock& clock, const Config& config, ProberFactory makeProber,
                 LivenessFailed livenessFailed, Changed changed);
    ~HealthProbes();
    HealthProbes(const HealthProbes&) = delete;
    HealthProbes& operator=(const HealthProbes&) = delete;

    // The service's process (re)started: its probes start from scratch, initial delay included. Does
    // nothing for a service whose probes already run, or one without probes.
    void serviceRunning(const std::string& service);
    // The service stopped: its probes stop and their results go back to unknown.
    void serviceStopped(const std::string& service);
    bool probing(const std::string& service) const;

    // The results of the service's probes, liveness first; empty for a service without probes.
    std::vector<ProbeHealthInput> probesOf(const std::string& service) const;
    // The endpoints whose first attempt has ended, in configuration order.
    std::vector<EndpointHealthInput> endpoints() const;

  private:
    struct ServiceProbe {
        std::string kind; // "liveness" or "readiness"
        std::unique_ptr<ProbeScheduler> scheduler;
    };
    struct Endpoint {
        std::string text;
        std::unique_ptr<ProbeScheduler> scheduler;
    };

    std::unique_ptr<ProbeScheduler> makeScheduler(const ProbeConfig& config,
                                                  ProbeScheduler::TransitionCallback onTransition);

    Reactor& reactor_;
    const Clock& clock_;
    ProberFactory make_prober_;
    LivenessFailed liveness_failed_;
    Changed changed_;
    std::map<std::string, std::vector<ServiceProbe>> services_;
    std::vector<Endpoint> endpoints_;
};

} // namespace tau
