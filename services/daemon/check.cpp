// --check: one health evaluation with a Nagios-style summary and exit code. It asks the running daemon when
// there is one and measures locally, with the same scoring, when there is none.

#include "daemon.h"
#include "tau/dbus/org.tauos.Health1-proxy.h"
#include "tau/health.h"
#include "tau/probers.h"
#include "tau/procfs.h"
#include "tau/resource_monitor.h"

#include <fmt/format.h>
#include <iostream>
#include <poll.h>
#include <thread>

namespace tau {
namespace {

// Long enough for a meaningful CPU figure, short enough for a monitoring plugin.
constexpr auto kLocalCpuWindow = std::chrono::milliseconds(500);
constexpr auto kEndpointTimeout = std::chrono::seconds(2);

class HealthClient final : public sdbus::ProxyInterfaces<org::tauos::Health1_proxy> {
  public:
    HealthClient(sdbus::IConnection& connection)
        : ProxyInterfaces(connection, bus::kHealthName, bus::kHealthPath) {
        registerProxy();
    }
    ~HealthClient() { unregisterProxy(); }

  private:
    void onHealthChanged(const double&, const std::string&, const std::string&) override {}
};

HealthStatus statusFromString(const std::string& text) {
    for (auto status : {HealthStatus::Ok, HealthStatus::Degraded, HealthStatus::Critical}) {
        if (toString(status) == text) {
            return status;
        }
    }
    return HealthStatus::Unknown;
}

std::optional<HealthReport> askDaemon(const DaemonOptions& options, std::string& source) {
    bus::DaemonConnection daemon;
    try {
        daemon = bus::connectToDaemon(options.bus);
    } catch (const bus::DaemonNotFound&) {
        return std::nullopt;
    }
    daemon.connection->setMethodCallTimeout(std::chrono::seconds(5));
    try {
        HealthClient client(*daemon.connection);
        const auto [score, status, checks] = client.GetHealth();
        HealthReport report;
        report.score = score;
        report.status = statusFromString(status);
        for (const auto& c : checks) {
            CheckResult check;
            check.name = c.get<0>();
            const auto& check_status = c.get<1>();
            check.status = check_status == "ok"         ? CheckStatus::Ok
                           : check_status == "warning"  ? CheckStatus::Warning
                           : check_status == "critical" ? CheckStatus::Critical
                                                        : CheckStatus::Unknown;
            check.value = c.get<2>();
            check.score = c.get<3>();
            check.weight = c.get<4>();
            check.contribution = c.get<5>();
            check.message = c.get<6>();
            report.checks.push_back(std::move(check));
        }
        for (const auto& recommendation : client.GetRecommendations())
            report.recommendations.push_back({recommendation.get<0>(), recommendation.get<1>()});
        source = "daemon on the " + daemon.description;
        return report;
    } catch (const sdbus::Error& e) {
        std::cerr << "tau-monitor: the daemon did not answer (" << e.getName() << ": " << e.getMessage()
                  << "); measuring locally\n";
        return std::nullopt;
    }
}

// Connects to each configured endpoint at once, as the daemon's endpoint probes do, for at most the probe
// timeout.
std::vector<EndpointHealthInput> probeEndpoints(const std::vector<std::string>& endpoints) {
    EventLoop loop;
    std::vector<std::unique_ptr<TcpProber>> probers;
    std::vector<EndpointHealthInput> results;
    std::size_t pending = 0;
    for (const auto& text : endpoints) {
        const auto endpoint = parseEndpoint(text);
        if (!endpoint)
            continue;
        results.push_back(
            {text, false, "no answer within " + std::to_string(kEndpointTimeout.count()) + " s"});
        probers.push_back(std::make_unique<TcpProber>(loop, endpoint->host, endpoint->port));
        ++pending;
        probers.back()->start(kEndpointTimeout, [&, index = results.size() - 1](ProbeOutcome outcome) {
            results[index].reachable = outcome.success;
            results[index].message = outcome.success ? "" : outcome.message;
            if (--pending == 0)
                loop.quit();
        });
    }
    if (pending > 0) {
        loop.addTimer(kEndpointTimeout, [&] { loop.quit(); });
        loop.run();
    }
    return results;
}

HealthReport measureLocally(const Config& config) {
    ProcFsReader reader;
    SystemClock clock;
    ResourceSampler sampler(reader, clock);
    sampler.sample();
    // A one-shot command, not a service loop: waiting here blocks nobody.
    std::this_thread::sleep_for(kLocalCpuWindow);
    HealthInputs inputs;
    inputs.resources = sampler.sample();
    for (const auto& metric : toMetricSamples(*inputs.resources))
        inputs.metrics[historyKey(metric.name, metric.scope)] = metric.value;
    inputs.network.default_route_interface = reader.defaultRouteInterface();
    if (inputs.network.default_route_interface) {
        inputs.network.oper_state = reader.interfaceOperState(*inputs.network.default_route_interface);
    }
    inputs.network.endpoints = probeEndpoints(config.health_checking.network_endpoints);
    return evaluateHealth(inputs, config);
}

} // namespace

int runCheck(const DaemonOptions& options) {
    const auto config = loadConfigFor(options);
    if (!config) {
        std::cout << "TAU-MONITOR UNKNOWN - invalid configuration\n";
        return nagiosExitCode(HealthStatus::Unknown);
    }
    std::string source;
    std::optional<HealthReport> report;
    try {
        report = askDaemon(options, source);
        if (!report) {
            report = measureLocally(*config);
            source = "local measurement, daemon not running";
        }
    } catch (const std::exception& e) {
        std::cout << "TAU-MONITOR UNKNOWN - " << e.what() << '\n';
        return nagiosExitCode(HealthStatus::Unknown);
    }

    static constexpr const char* labels[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
    const int code = nagiosExitCode(report->status);
    std::string perfdata = fmt::format("score={:.3f};{:.3f};;0;1", report->score,
                                       config->health_checking.health_score_threshold);
    for (const auto& check : report->checks) {
        if (check.status != CheckStatus::Unknown && check.name.rfind("service:", 0) != 0) {
            perfdata += fmt::format(" {}={:.1f}", check.name, check.value);
        }
    }
    std::cout << fmt::format("TAU-MONITOR {} - health {} score {:.2f} ({}) | {}\n", labels[code],
                             toString(report->status), report->score, source, perfdata);
    for (const auto& check : report->checks) {
        std::cout << fmt::format("{:<9} {:<28} {}\n", toString(check.status), check.name, check.message);
    }
    for (const auto& recommendation : report->recommendations) {
        std::cout << fmt::format("advice    {:<28} {}\n", recommendation.check, recommendation.text);
    }
    return code;
}

} // namespace tau
