#include "health_service.h"

#include "dbus_prober.h"
#include "tau/bus/audit.h"
#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/dbus/org.tauos.Health1-adaptor.h"
#include "tau/health.h"
#include "tau/health_probes.h"
#include "tau/probers.h"
#include "tau/procfs.h"

#include <cmath>
#include <fmt/format.h>
#include <optional>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

// Resources needs a moment after start for its first CPU measurement.
constexpr auto kFirstEvaluation = std::chrono::seconds(2);
// Several exits or probe results in a burst lead to one evaluation.
constexpr auto kEvaluationDebounce = std::chrono::milliseconds(300);
constexpr auto kCallTimeout = std::chrono::seconds(5);
constexpr auto kRetryWithoutResources = std::chrono::seconds(1);
// Asked of Resources1, Processes1 and Recovery1 in every evaluation.
constexpr int kQuestions = 6;

std::chrono::steady_clock::duration seconds(double value) {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(value));
}

std::optional<AlarmLevel> alarmLevelFromString(std::string_view text) {
    for (const auto level : {AlarmLevel::Ok, AlarmLevel::Warning, AlarmLevel::Critical})
        if (toString(level) == text)
            return level;
    return std::nullopt;
}

class HealthAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Health1_adaptor>,
                            public SuiteService {
  public:
    explicit HealthAdaptor(ServiceContext& context)
        : AdaptorInterfaces(context.connection, bus::kHealthPath), config_(context.config),
          loop_(context.loop), authorizer_(context.authorizer),
          resources_(sdbus::createProxy(context.connection, bus::kResourcesName, bus::kResourcesPath)),
          processes_(sdbus::createProxy(context.connection, bus::kProcessesName, bus::kProcessesPath)),
          recovery_(sdbus::createProxy(context.connection, bus::kRecoveryName, bus::kRecoveryPath)),
          debouncer_(seconds(config_.health_checking.status_debounce_seconds)) {
        processes_->uponSignal("ServiceExited")
            .onInterface(bus::kProcessesName)
            .call([this](const std::string& name, int32_t, int32_t, int32_t, uint64_t, const std::string&,
                         uint32_t) {
                bus::logged("service exit", [&] {
                    if (probes_)
                        probes_->serviceStopped(name);
                    evaluateSoon();
                });
            });
        processes_->uponSignal("ServiceStarted")
            .onInterface(bus::kProcessesName)
            .call([this](const std::string& name, int32_t) {
                bus::logged("service start", [&] {
                    if (probes_)
                        probes_->serviceRunning(name);
                    evaluateSoon();
                });
            });
        processes_->finishRegistration();
        resources_->finishRegistration();
        recovery_->finishRegistration();
        registerAdaptor();
        if (!config_.health_checking.enabled) {
            spdlog::info("health checking is disabled in the configuration");
            return;
        }
        probes_.emplace(
            loop_, clock_, config_,
            [this, &connection = context.connection](const ProbeConfig& probe) {
                return makeProber(loop_, probe, [this, &connection](const ProbeConfig& dbus) {
                    return std::make_unique<DbusProber>(loop_, connection, dbus.bus_name);
                });
            },
            [this](const std::string& service, const std::string& message) {
                livenessFailed(service, message);
            },
            [this] { evaluateSoon(); });
        periodic_timer_ = loop_.addTimer(kFirstEvaluation, [this] { periodic(); });
    }

    ~HealthAdaptor() {
        *alive_ = false;
        loop_.cancelTimer(periodic_timer_);
        loop_.cancelTimer(soon_timer_);
        loop_.cancelTimer(retry_timer_);
        loop_.cancelTimer(confirm_timer_);
        unregisterAdaptor();
    }

  private:
    void periodic() {
        periodic_timer_ = loop_.addTimer(std::chrono::seconds(config_.health_checking.check_interval_seconds),
                                         [this] { periodic(); });
        startEvaluation();
    }

    void evaluateSoon() {
        if (soon_timer_ != 0 || !config_.health_checking.enabled) {
            return;
        }
        soon_timer_ = loop_.addTimer(kEvaluationDebounce, [this] {
            soon_timer_ = 0;
            startEvaluation();
        });
    }

    void livenessFailed(const std::string& service, const std::string& message) {
        const bool recover = config_.health_checking.auto_restart_failed_services;
        bus::logEvent(spdlog::level::warn, "health.liveness_failed",
                      {{"service", service}, {"message", message}, {"recover", recover ? "true" : "false"}},
                      fmt::format("{}: liveness probe failed ({}){}", service, message,
                                  recover ? ", asking for its recovery" : ""));
        if (!recover)
            return;
        auto alive = alive_;
        bus::logged("reporting a failed liveness probe", [&] {
            processes_->callMethodAsync("ReportFailure")
                .onInterface(bus::kProcessesName)
                .withTimeout(kCallTimeout)
                .withArguments(service, std::string("probe"), "liveness probe failed: " + message)
                .uponReplyInvoke([service, alive](const sdbus::Error* error) {
                    if (*alive && error != nullptr)
                        spdlog::warn("health: ReportFailure({}) refused: {}: {}", service, error->getName(),
                                     error->getMessage());
                });
        });
    }

    // A reply handler that ignores late replies, keeps nothing of an error, and counts the answer.
    template <typename... Results, typename Use> auto whenAnswered(const char* what, Use use) {
        return [this, what, alive = alive_, use = std::move(use)](const sdbus::Error* error,
                                                                  Results... results) {
            if (!*alive)
                return;
            if (error == nullptr)
                bus::logged(what, [&] { use(std::move(results)...); });
            else
                spdlog::debug("health: {}: {}: {}", what, error->getName(), error->getMessage());
            answered();
        };
    }

    // Asks every service at once, without blocking the loop, and scores when all have answered.
    void startEvaluation() {
        if (pending_ > 0) {
            again_ = true;
            return;
        }
        inputs_ = HealthInputs{};
        failures_.clear();
        services_.reset();
        pending_ = kQuestions;
        // A call that cannot even be sent counts as answered without data.
        auto ask = [this](const char* what, const std::function<void()>& send) {
            try {
                send();
            } catch (const std::exception& e) {
                spdlog::warn("health: {}: {}", what, e.what());
                answered();
            }
        };
        ask("Resources1.GetSnapshot", [&] {
            resources_->callMethodAsync("GetSnapshot")
                .onInterface(bus::kResourcesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(
                    whenAnswered<uint64_t, double, std::vector<double>, wire::Memory, wire::Swap, wire::Load,
                                 std::vector<wire::Disk>, std::vector<wire::Network>>(
                        "Resources1.GetSnapshot", [this](auto... fields) {
                            inputs_.resources = wire::snapshotFromWire({std::move(fields)...});
                        }));
        });
        ask("Resources1.GetMetrics", [&] {
            resources_->callMethodAsync("GetMetrics")
                .onInterface(bus::kResourcesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(
                    whenAnswered<std::vector<wire::Metric>>("Resources1.GetMetrics", [this](auto metrics) {
                        for (const auto& metric : metrics)
                            inputs_.metrics[historyKey(metric.template get<0>(), metric.template get<1>())] =
                                metric.template get<2>();
                    }));
        });
        ask("Resources1.GetThresholds", [&] {
            resources_->callMethodAsync("GetThresholds")
                .onInterface(bus::kResourcesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(whenAnswered<std::vector<wire::Threshold>>(
                    "Resources1.GetThresholds", [this](auto thresholds) {
                        for (const auto& threshold : thresholds)
                            if (auto level = alarmLevelFromString(threshold.template get<2>()))
                                inputs_.alarms.push_back(
                                    {threshold.template get<0>(), threshold.template get<1>(), *level});
                    }));
        });
        ask("Resources1.GetTrends", [&] {
            resources_->callMethodAsync("GetTrends")
                .onInterface(bus::kResourcesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(
                    whenAnswered<std::vector<wire::Trend>>("Resources1.GetTrends", [this](auto trends) {
                        for (const auto& t : trends) {
                            TrendReport trend{t.template get<0>(), t.template get<1>(), t.template get<2>(),
                                              t.template get<3>(), t.template get<4>(), std::nullopt,
                                              std::nullopt};
                            if (!std::isnan(t.template get<5>()))
                                trend.limit = t.template get<5>();
                            if (t.template get<6>() >= 0)
                                trend.until = std::chrono::seconds(t.template get<6>());
                            inputs_.trends.push_back(std::move(trend));
                        }
                    }));
        });
        ask("Processes1.ListServices", [&] {
            processes_->callMethodAsync("ListServices")
                .onInterface(bus::kProcessesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(whenAnswered<std::vector<wire::ServiceEntry>>(
                    "Processes1.ListServices", [this](auto services) { services_ = std::move(services); }));
        });
        ask("Recovery1.GetHistory", [&] {
            const auto window = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::duration<double>(config_.health_checking.restart_window_seconds));
            const auto since =
                wire::toMicros(std::chrono::system_clock::now()) -
                std::min<uint64_t>(wire::toMicros(std::chrono::system_clock::now()), window.count());
            recovery_->callMethodAsync("GetHistory")
                .onInterface(bus::kRecoveryName)
                .withTimeout(kCallTimeout)
                .withArguments(std::string(), std::string(), since, uint32_t{0})
                .uponReplyInvoke(whenAnswered<std::vector<wire::HistoryEntry>>(
                    "Recovery1.GetHistory", [this](auto entries) {
                        for (const auto& entry : entries) {
                            // Clean exits and stops ("none", "stopped") are no failures.
                            if (failureClassFromString(entry.template get<5>()))
                                failures_[entry.template get<1>()].push_back(entry.template get<5>());
                        }
                    }));
        });
    }

    void answered() {
        if (--pending_ > 0) {
            return;
        }
        bus::logged("health evaluation", [this] {
            assembleServices();
            if (probes_)
                inputs_.network.endpoints = probes_->endpoints();
            inputs_.network.default_route_interface = reader_.defaultRouteInterface();
            if (inputs_.network.default_route_interface) {
                inputs_.network.oper_state =
                    reader_.interfaceOperState(*inputs_.network.default_route_interface);
            }
            publish(evaluateHealth(inputs_, config_));
        });
        if (!inputs_.resources && retry_timer_ == 0) {
            // Resources has not sampled yet (or is restarting): try again soon rather than a whole interval
            // later.
            retry_timer_ = loop_.addTimer(kRetryWithoutResources, [this] {
                retry_timer_ = 0;
                startEvaluation();
            });
        }
        if (again_) {
            again_ = false;
            startEvaluation();
        }
    }

    // What Processes1 and Recovery1 said of each service, with what Resources1 measured of it and the
    // results of its probes; keeps the probes in step with services that started or stopped unseen.
    void assembleServices() {
        if (!services_)
            return;
        auto measured = [this](const char* metric, const std::string& service) -> std::optional<double> {
            const auto found = inputs_.metrics.find(historyKey(metric, service));
            return found == inputs_.metrics.end() ? std::nullopt : std::optional(found->second);
        };
        std::vector<ServiceHealthInput> list;
        for (const auto& entry : *services_) {
            ServiceHealthInput service;
            service.name = entry.get<0>();
            service.state = entry.get<1>();
            service.critical = entry.get<7>();
            // The whole process tree as Resources measures it, else the main process as Processes sees it.
            service.cpu_percent = measured("service_cpu_percent", service.name).value_or(entry.get<5>());
            service.rss_bytes = static_cast<std::uint64_t>(
                measured("service_memory_bytes", service.name).value_or(static_cast<double>(entry.get<6>())));
            if (auto failures = failures_.find(service.name); failures != failures_.end())
                service.recent_failures = failures->second;
            if (probes_) {
                // Probes run from the spawn on, as Kubernetes' run from the container's start.
                const bool has_process = service.state == "running" || service.state == "starting";
                if (has_process && !probes_->probing(service.name))
                    probes_->serviceRunning(service.name);
                else if (!has_process && probes_->probing(service.name))
                    probes_->serviceStopped(service.name);
                service.probes = probes_->probesOf(service.name);
            }
            list.push_back(std::move(service));
        }
        inputs_.services = std::move(list);
    }

    void publish(HealthReport report) {
        report_ = std::move(report);
        evaluated_at_ = std::chrono::system_clock::now();
        const auto previous = debouncer_.published();
        const auto changed = debouncer_.offer(report_->status, clock_.now());
        getObject().emitPropertiesChangedSignal(org::tauos::Health1_adaptor::INTERFACE_NAME,
                                                {"Score", "Status", "LastEvaluatedAt"});
        scheduleConfirmation();
        if (!changed) {
            return;
        }
        const auto status = std::string(toString(*changed));
        const auto level = *changed == HealthStatus::Critical && config_.health_checking.alert_on_failure
                               ? spdlog::level::err
                           : *changed == HealthStatus::Ok ? spdlog::level::info
                                                          : spdlog::level::warn;
        std::string failing;
        for (const auto& check : report_->checks) {
            if (check.status == CheckStatus::Warning || check.status == CheckStatus::Critical) {
                failing += (failing.empty() ? "" : "; ") + check.message;
            }
        }
        bus::logEvent(level, "health.changed",
                      {{"score", fmt::format("{:.3f}", report_->score)},
                       {"status", status},
                       {"previous_status", std::string(toString(previous))}},
                      fmt::format("health {} (score {:.2f}){}{}", status, report_->score,
                                  failing.empty() ? "" : ": ", failing));
        emitHealthChanged(report_->score, status, std::string(toString(previous)));
    }

    // A status waiting to be confirmed is looked at again when its hold has passed, not a whole interval
    // later.
    void scheduleConfirmation() {
        loop_.cancelTimer(confirm_timer_);
        confirm_timer_ = 0;
        if (const auto at = debouncer_.confirmAt()) {
            confirm_timer_ = loop_.addTimer(
                std::max(*at - clock_.now(), std::chrono::steady_clock::duration::zero()), [this] {
                    confirm_timer_ = 0;
                    startEvaluation();
                });
        }
    }

    std::tuple<double, std::string, std::vector<wire::Check>> GetHealth() override {
        return bus::guarded("GetHealth", [&] {
            if (!report_) {
                return std::tuple<double, std::string, std::vector<wire::Check>>{
                    0.0, std::string(toString(HealthStatus::Unknown)), {}};
            }
            std::vector<wire::Check> checks;
            for (const auto& c : report_->checks) {
                checks.emplace_back(c.name, std::string(toString(c.status)), c.value, c.score, c.weight,
                                    c.contribution, c.message);
            }
            return std::tuple{report_->score, std::string(toString(report_->status)), std::move(checks)};
        });
    }

    std::vector<wire::Recommendation> GetRecommendations() override {
        return bus::guarded("GetRecommendations", [&] {
            std::vector<wire::Recommendation> out;
            if (report_)
                for (const auto& recommendation : report_->recommendations)
                    out.emplace_back(recommendation.check, recommendation.text);
            return out;
        });
    }

    void Evaluate() override {
        bus::audited(authorizer_, getObject(), "Evaluate", "", [&] { startEvaluation(); });
    }

    double Score() override { return report_ ? report_->score : 0.0; }
    std::string Status() override { return std::string(toString(debouncer_.published())); }
    uint64_t LastEvaluatedAt() override {
        if (!report_) {
            return 0;
        }
        return wire::toMicros(evaluated_at_);
    }

    const Config& config_;
    EventLoop& loop_;
    bus::Authorizer& authorizer_;
    SystemClock clock_;
    ProcFsReader reader_;
    std::unique_ptr<sdbus::IProxy> resources_;
    std::unique_ptr<sdbus::IProxy> processes_;
    std::unique_ptr<sdbus::IProxy> recovery_;
    std::optional<HealthProbes> probes_;
    StatusDebouncer debouncer_;
    // What the evaluation under way has gathered so far.
    HealthInputs inputs_;
    std::optional<std::vector<wire::ServiceEntry>> services_;
    std::map<std::string, std::vector<std::string>> failures_; // failure classes within the window
    int pending_ = 0;
    bool again_ = false;
    std::optional<HealthReport> report_;
    std::chrono::system_clock::time_point evaluated_at_;
    EventLoop::TimerId periodic_timer_ = 0;
    EventLoop::TimerId soon_timer_ = 0;
    EventLoop::TimerId retry_timer_ = 0;
    EventLoop::TimerId confirm_timer_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace

std::unique_ptr<SuiteService> makeHealthService(ServiceContext& context) {
    return std::make_unique<HealthAdaptor>(context);
}

} // namespace tau
