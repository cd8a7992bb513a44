#include "resources_service.h"

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/dbus/org.tauos.Resources1-adaptor.h"
#include "tau/metrics_http_server.h"
#include "tau/resource_monitor.h"
#include "tau/resources.h"
#include "tau/suite_exposition.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <optional>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

// The first sample measures CPU since boot; the first published one follows this soon after it.
constexpr auto kFirstInterval = std::chrono::seconds(1);
constexpr auto kCallTimeout = std::chrono::seconds(5);
// How often the service list and the health score are asked for when nothing announced a change; each
// ListServices costs Processes a read of every service's /proc files.
constexpr auto kSuiteRefresh = std::chrono::seconds(10);
// Long enough for the answers that follow a sample, short enough that a scrape sees them soon.
constexpr auto kRepublishDelay = std::chrono::milliseconds(100);
constexpr auto kUnscrapedRepublish = std::chrono::seconds(10);
constexpr auto kLongestHistoryStep = std::chrono::hours(24);
constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

using wire::toMicros;

std::map<std::string, double> serviceMemoryLimits(const Config& config) {
    std::map<std::string, double> limits;
    for (const auto& service : config.services) {
        const auto mib = service.memory_limit_mb.value_or(config.process_management.memory_limit_mb);
        limits[service.name] = static_cast<double>(mib) * 1024 * 1024;
    }
    return limits;
}

class ResourcesAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Resources1_adaptor>,
                               public SuiteService {
  public:
    explicit ResourcesAdaptor(ServiceContext& context)
        : AdaptorInterfaces(context.connection, bus::kResourcesPath),
          config_(context.config.resource_monitoring), loop_(context.loop), sampler_(reader_, clock_),
          monitor_(config_, std::chrono::seconds(config_.interval_seconds),
                   serviceMemoryLimits(context.config)),
          processes_(sdbus::createProxy(context.connection, bus::kProcessesName, bus::kProcessesPath)),
          recovery_(sdbus::createProxy(context.connection, bus::kRecoveryName, bus::kRecoveryPath)),
          health_(sdbus::createProxy(context.connection, bus::kHealthName, bus::kHealthPath)) {
        recovery_->uponSignal("RecoveryAction")
            .onInterface(bus::kRecoveryName)
            .call(
                [this](const std::string& service, const std::string& action, uint32_t, const std::string&) {
                    ++suite_.recovery_actions[{service, action}];
                    republishSoon();
                });
        recovery_->finishRegistration();
        // A service that starts or exits changes what is sampled: ask again at the next sample.
        for (const char* signal : {"ServiceStarted", "ServiceExited"})
            processes_->registerSignalHandler(bus::kProcessesName, signal,
                                              [this](sdbus::Signal&) { suite_asked_at_.reset(); });
        processes_->finishRegistration();
        // Each evaluation updates Health's properties: show its score at the next sample.
        health_->registerSignalHandler("org.freedesktop.DBus.Properties", "PropertiesChanged",
                                       [this](sdbus::Signal&) { suite_asked_at_.reset(); });
        health_->finishRegistration();
        registerAdaptor();
        if (!config_.enabled) {
            // Nothing is sampled, so nothing is served either.
            spdlog::info("resource monitoring is disabled in the configuration");
            return;
        }
        if (!config_.prometheus_listen.empty()) {
            // A port that is taken fails the service's start: a silently missing endpoint would only show up
            // as a gap in the dashboards.
            metrics_server_.emplace(config_.prometheus_listen);
            spdlog::info("serving Prometheus metrics at http://{}/metrics", metricsAddress());
        }
        bus::logged("first resource sample", [this] { sampler_.sample(); });
        timer_ = loop_.addTimer(kFirstInterval, [this] { tick(); });
    }

    ~ResourcesAdaptor() {
        *alive_ = false;
        loop_.cancelTimer(timer_);
        loop_.cancelTimer(republish_timer_);
        unregisterAdaptor();
    }

  private:
    void tick() {
        timer_ = loop_.addTimer(std::chrono::seconds(config_.interval_seconds), [this] { tick(); });
        const auto now = std::chrono::steady_clock::now();
        if (!suite_asked_at_ || now - *suite_asked_at_ >= kSuiteRefresh) {
            suite_asked_at_ = now;
            askTheSuite();
        }
        bus::logged("resource sampling", [this] {
            const auto started = std::chrono::steady_clock::now();
            auto& latest = suite_.resources.emplace(sampler_.sample(targets_));
            if (!config_.network_monitoring)
                latest.networks.clear();
            suite_.samples = toMetricSamples(latest);
            const auto events = monitor_.observe(suite_.samples, latest.taken_at);
            const auto took = std::chrono::steady_clock::now() - started;
            suite_.alarms.clear();
            for (const auto& entry : monitor_.thresholds().entries())
                suite_.alarms.push_back({entry.metric, entry.scope, entry.tracker.level()});
            getObject().emitPropertiesChangedSignal(
                org::tauos::Resources1_adaptor::INTERFACE_NAME,
                {"CpuPercent", "MemoryUsedPercent", "SwapUsedPercent", "LoadAverage", "LastSampleAt"});
            for (const auto& event : events)
                announce(event);
            if (config_.log_resource_usage)
                logSample(latest, took);
        });
        republishSoon();
    }

    // The endpoint serves from a thread of its own and never reads suite_: what changes in it is rendered
    // on the loop's thread and handed over, once for the sample and the answers that follow it closely.
    // Nobody scraping, it is rendered only every kUnscrapedRepublish, so that a first scrape is not
    // older than that.
    void republishSoon() {
        if (!metrics_server_ || republish_timer_ != 0)
            return;
        republish_timer_ = loop_.addTimer(kRepublishDelay, [this] {
            republish_timer_ = 0;
            const auto now = std::chrono::steady_clock::now();
            const auto served = metrics_server_->requestsServed();
            if (published_at_ && served == served_at_publish_ && now - *published_at_ < kUnscrapedRepublish)
                return;
            bus::logged("rendering the metrics exposition",
                        [this] { metrics_server_->publish(renderSuiteMetrics(suite_)); });
            published_at_ = now;
            served_at_publish_ = served;
        });
    }

    // What the exposition shows of the rest of the suite; answers arrive between samples and a service that
    // does not answer leaves its part out rather than stale.
    void askTheSuite() {
        auto alive = alive_;
        bus::logged("asking Processes1", [&] {
            processes_->callMethodAsync("ListServices")
                .onInterface(bus::kProcessesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(
                    [this, alive](const sdbus::Error* error, std::vector<wire::ServiceEntry> list) {
                        if (!*alive)
                            return;
                        if (error != nullptr) {
                            suite_.services.reset();
                        } else {
                            std::vector<ServiceStatus> services;
                            targets_.clear();
                            for (const auto& entry : list) {
                                services.push_back({entry.get<0>(), entry.get<1>(), entry.get<3>(),
                                                    entry.get<4>(), entry.get<7>()});
                                if (const pid_t pid = entry.get<2>(); pid > 0)
                                    targets_.emplace_back(entry.get<0>(), pid,
                                                          serviceCgroup(entry.get<0>(), pid));
                            }
                            suite_.services = std::move(services);
                        }
                        republishSoon();
                    });
        });
        bus::logged("asking Health1", [&] {
            health_->callMethodAsync("GetHealth")
                .onInterface(bus::kHealthName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke([this, alive](const sdbus::Error* error, double score, std::string status,
                                               std::vector<wire::Check> checks) {
                    if (!*alive)
                        return;
                    // Before its first evaluation Health has no score to show: a 0 would read as failing.
                    if (error != nullptr || status == "unknown") {
                        suite_.health.reset();
                    } else {
                        HealthSummary health{score, std::move(status), {}};
                        for (const auto& check : checks)
                            health.checks.push_back(
                                {check.get<0>(), check.get<1>(), check.get<3>(), check.get<4>()});
                        suite_.health = std::move(health);
                    }
                    republishSoon();
                });
        });
    }

    void announce(const ThresholdEvent& event) {
        const auto& crossing = event.crossing;
        const std::string level(toString(crossing.to));
        bus::logEvent(crossing.to > crossing.from ? spdlog::level::warn : spdlog::level::info,
                      "resources.threshold",
                      {{"metric", event.metric},
                       {"scope", event.scope},
                       {"level", level},
                       {"previous_level", std::string(toString(crossing.from))},
                       {"value", fmt::format("{:.2f}", crossing.value)},
                       {"limit", fmt::format("{:.2f}", crossing.limit)}},
                      fmt::format("{} {} {} at {:.2f} (limit {:.2f}, was {})", event.metric, event.scope,
                                  level, crossing.value, crossing.limit, toString(crossing.from)));
        if (config_.alert_on_threshold)
            emitThresholdCrossed(event.metric, event.scope, level, crossing.value, crossing.limit);
    }

    // The service's own cgroup, when Processes gave it one (<delegated>/services/<name>): measured there, the
    // service's usage includes what its processes' children left behind outside the process tree.
    std::optional<std::filesystem::path> serviceCgroup(const std::string& service, pid_t pid) const {
        auto directory = reader_.cgroupDirectoryOf(std::to_string(pid));
        if (directory && directory->filename() == service &&
            directory->parent_path().filename() == "services")
            return directory;
        return std::nullopt;
    }

    static void logSample(const ResourceSnapshot& sample, std::chrono::steady_clock::duration took) {
        bus::logEvent(spdlog::level::info, "resources.sample",
                      {{"cpu_percent", fmt::format("{:.1f}", sample.cpu_percent)},
                       {"memory_used_percent", fmt::format("{:.1f}", sample.memory.used_percent)},
                       {"load1", fmt::format("{:.2f}", sample.load.one)},
                       {"sample_usec",
                        std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(took).count())}},
                      fmt::format("cpu {:.1f}%, memory {:.1f}%, load {:.2f}", sample.cpu_percent,
                                  sample.memory.used_percent, sample.load.one));
    }

    const ResourceSnapshot& latest() const {
        if (!suite_.resources) {
            throw ServiceError(ErrorCode::Unavailable, config_.enabled ? "no resource sample taken yet"
                                                                       : "resource monitoring is disabled");
        }
        return *suite_.resources;
    }

    std::string metricsAddress() const { return metrics_server_ ? metrics_server_->address() : ""; }

    wire::Snapshot GetSnapshot() override {
        return bus::guarded("GetSnapshot", [&] { return wire::toWire(latest()); });
    }

    std::vector<wire::Metric> GetMetrics() override {
        return bus::guarded("GetMetrics", [&] {
            latest();
            std::vector<wire::Metric> out;
            for (const auto& metric : suite_.samples)
                out.emplace_back(metric.name, metric.scope, metric.value);
            return out;
        });
    }

    std::vector<wire::HistoryPoint> GetHistory(const std::string& series, const uint64_t& since,
                                               const uint32_t& step) override {
        return bus::guarded("GetHistory", [&] {
            if (std::chrono::seconds(step) > kLongestHistoryStep)
                throw ServiceError(ErrorCode::InvalidArgument,
                                   fmt::format("step {} s is longer than the {} s of history kept", step,
                                               std::chrono::seconds(kLongestHistoryStep).count()));
            if (!monitor_.history().contains(series))
                throw ServiceError(ErrorCode::NotFound,
                                   "no series \"" + series +
                                       "\" (GetMetrics names them: metric for the system "
                                       "scope, metric@scope otherwise)");
            const auto from = std::chrono::system_clock::time_point(std::chrono::microseconds(since));
            std::vector<wire::HistoryPoint> out;
            for (const auto& point : monitor_.history().query(series, from, std::chrono::seconds(step)))
                out.emplace_back(toMicros(point.at), point.mean, point.min, point.max);
            return out;
        });
    }

    std::vector<wire::Threshold> GetThresholds() override {
        return bus::guarded("GetThresholds", [&] {
            std::vector<wire::Threshold> out;
            for (const auto& entry : monitor_.thresholds().entries()) {
                const auto& tracker = entry.tracker;
                const auto warning = tracker.warningBand();
                const auto& critical = tracker.criticalBand();
                out.emplace_back(entry.metric, entry.scope, std::string(toString(tracker.level())),
                                 tracker.lastValue().value_or(kNoValue), warning ? warning->enter : kNoValue,
                                 critical ? critical->enter : kNoValue, toMicros(tracker.since()));
            }
            return out;
        });
    }

    std::vector<wire::Trend> GetTrends() override {
        return bus::guarded("GetTrends", [&] {
            std::vector<wire::Trend> out;
            for (const auto& trend : monitor_.trends(std::chrono::system_clock::now()))
                out.emplace_back(trend.metric, trend.scope, trend.value, trend.slope_per_hour,
                                 trend.r_squared, trend.limit.value_or(kNoValue),
                                 trend.until ? trend.until->count() : -1);
            return out;
        });
    }

    double CpuPercent() override { return suite_.resources ? suite_.resources->cpu_percent : 0.0; }
    double MemoryUsedPercent() override {
        return suite_.resources ? suite_.resources->memory.used_percent : 0.0;
    }
    double SwapUsedPercent() override { return suite_.resources ? suite_.resources->swap.used_percent : 0.0; }
    wire::Load LoadAverage() override {
        if (!suite_.resources)
            return {0.0, 0.0, 0.0};
        const auto& load = suite_.resources->load;
        return {load.one, load.five, load.fifteen};
    }
    uint32_t IntervalSeconds() override { return config_.interval_seconds; }
    std::string MetricsAddress() override { return metricsAddress(); }
    uint64_t LastSampleAt() override { return suite_.resources ? toMicros(suite_.resources->taken_at) : 0; }

    const ResourceMonitoringConfig& config_;
    EventLoop& loop_;
    SystemClock clock_;
    ProcFsReader reader_;
    ResourceSampler sampler_;
    ResourceMonitor monitor_;
    std::unique_ptr<sdbus::IProxy> processes_;
    std::unique_ptr<sdbus::IProxy> recovery_;
    std::unique_ptr<sdbus::IProxy> health_;
    std::optional<MetricsHttpServer> metrics_server_;
    // The running services as Processes1 listed them last; sampled with the machine.
    std::vector<ServiceSampleTarget> targets_;
    std::optional<std::chrono::steady_clock::time_point> suite_asked_at_;
    // The latest sample and what the rest of the suite said: what /metrics and the methods answer from.
    SuiteMetrics suite_;
    EventLoop::TimerId timer_ = 0;
    EventLoop::TimerId republish_timer_ = 0;
    std::optional<std::chrono::steady_clock::time_point> published_at_;
    std::size_t served_at_publish_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace

std::unique_ptr<SuiteService> makeResourcesService(ServiceContext& context) {
    return std::make_unique<ResourcesAdaptor>(context);
}

} // namespace tau
