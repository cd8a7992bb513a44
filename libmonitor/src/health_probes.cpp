#include "tau/health_probes.h"

#include <algorithm>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

// An endpoint that does not accept a connection within this is as good as unreachable.
constexpr double kLongestEndpointTimeoutSeconds = 5.0;

ProbeConfig endpointProbe(const Endpoint& endpoint, unsigned intervalSeconds) {
    ProbeConfig probe;
    probe.type = ProbeType::Tcp;
    probe.host = endpoint.host;
    probe.port = endpoint.port;
    probe.initial_delay_seconds = 0;
    probe.period_seconds = intervalSeconds;
    probe.timeout_seconds = std::min<double>(kLongestEndpointTimeoutSeconds, intervalSeconds);
    // Each check interval judges the endpoint anew, as the other checks judge their latest sample.
    probe.success_threshold = 1;
    probe.failure_threshold = 1;
    return probe;
}

} // namespace

HealthProbes::HealthProbes(Reactor& reactor, const Clock& clock, const Config& config,
                           ProberFactory makeProber, LivenessFailed livenessFailed, Changed changed)
    : reactor_(reactor), clock_(clock), make_prober_(std::move(makeProber)),
      liveness_failed_(std::move(livenessFailed)), changed_(std::move(changed)) {
    for (const auto& service : config.services) {
        auto& probes = services_[service.name];
        auto add = [&](const char* kind, const std::optional<ProbeConfig>& probe) {
            if (!probe)
                return;
            const bool liveness = std::string_view(kind) == "liveness";
            auto scheduler =
                makeScheduler(*probe, [this, name = service.name, liveness](const ProbeTransition& transition,
                                                                            const ProbeTracker& tracker) {
                    if (liveness && transition.to == ProbeResult::Failure)
                        liveness_failed_(name, tracker.lastOutcome() ? tracker.lastOutcome()->message : "");
                    changed_();
                });
            if (scheduler)
                probes.push_back({kind, std::move(scheduler)});
        };
        add("liveness", service.liveness_probe);
        add("readiness", service.readiness_probe);
        if (probes.empty())
            services_.erase(service.name);
    }
    for (const auto& text : config.health_checking.network_endpoints) {
        const auto endpoint = parseEndpoint(text);
        if (!endpoint)
            continue; // the configuration refuses it already
        auto scheduler =
            makeScheduler(endpointProbe(*endpoint, config.health_checking.check_interval_seconds),
                          [this](const ProbeTransition&, const ProbeTracker&) { changed_(); });
        if (scheduler) {
            scheduler->start();
            endpoints_.push_back({text, std::move(scheduler)});
        }
    }
}

HealthProbes::~HealthProbes() = default;

std::unique_ptr<ProbeScheduler> HealthProbes::makeScheduler(const ProbeConfig& config,
                                                            ProbeScheduler::TransitionCallback onTransition) {
    try {
        return std::make_unique<ProbeScheduler>(reactor_, clock_, config, make_prober_(config),
                                                std::move(onTransition));
    } catch (const std::exception& e) {
        spdlog::error("health: a {} probe cannot run: {}", toString(config.type), e.what());
        return nullptr;
    }
}

void HealthProbes::serviceRunning(const std::string& service) {
    const auto found = services_.find(service);
    if (found == services_.end())
        return;
    for (auto& probe : found->second)
        probe.scheduler->start();
}

void HealthProbes::serviceStopped(const std::string& service) {
    const auto found = services_.find(service);
    if (found == services_.end())
        return;
    for (auto& probe : found->second)
        probe.scheduler->stop();
}

bool HealthProbes::probing(const std::string& service) const {
    const auto found = services_.find(service);
    return found != services_.end() && found->second.front().scheduler->running();
}

std::vector<ProbeHealthInput> HealthProbes::probesOf(const std::string& service) const {
    std::vector<ProbeHealthInput> results;
    const auto found = services_.find(service);
    if (found == services_.end())
        return results;
    for (const auto& probe : found->second) {
        const auto& tracker = probe.scheduler->tracker();
        // A stopped service's probes have nothing to say until it runs again.
        const auto result = probe.scheduler->running() ? tracker.result() : ProbeResult::Unknown;
        std::string message;
        if (result != ProbeResult::Unknown && tracker.lastOutcome())
            message = tracker.lastOutcome()->message;
        results.push_back({probe.kind, std::string(toString(result)), std::move(message)});
    }
    return results;
}

std::vector<EndpointHealthInput> HealthProbes::endpoints() const {
    std::vector<EndpointHealthInput> results;
    for (const auto& endpoint : endpoints_) {
        const auto& tracker = endpoint.scheduler->tracker();
        if (tracker.result() == ProbeResult::Unknown)
            continue;
        const bool reachable = tracker.result() == ProbeResult::Success;
        results.push_back({endpoint.text, reachable,
                           reachable || !tracker.lastOutcome() ? "" : tracker.lastOutcome()->message});
    }
    return results;
}

} // namespace tau
