#include "health_service.h"

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/dbus/org.tauos.Health1-adaptor.h"
#include "tau/health.h"
#include "tau/procfs.h"

#include <fmt/format.h>
#include <optional>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

// Resources needs a moment after start for its first CPU measurement.
constexpr auto kFirstEvaluation = std::chrono::seconds(2);
// Several exits in a burst lead to one evaluation.
constexpr auto kEvaluationDebounce = std::chrono::milliseconds(300);
constexpr auto kCallTimeout = std::chrono::seconds(5);
constexpr auto kRetryWithoutResources = std::chrono::seconds(1);

class HealthAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Health1_adaptor>,
                            public SuiteService {
  public:
    explicit HealthAdaptor(ServiceContext& context)
        : AdaptorInterfaces(context.connection, bus::kHealthPath), config_(context.config),
          loop_(context.loop), authorizer_(context.authorizer),
          resources_(sdbus::createProxy(context.connection, bus::kResourcesName, bus::kResourcesPath)),
          processes_(sdbus::createProxy(context.connection, bus::kProcessesName, bus::kProcessesPath)) {
        auto soon = [this](auto&&...) { evaluateSoon(); };
        processes_->uponSignal("ServiceExited")
            .onInterface(bus::kProcessesName)
            .call([soon](const std::string&, int32_t, int32_t, int32_t, uint64_t, const std::string&,
                         uint32_t) { soon(); });
        processes_->uponSignal("ServiceStarted")
            .onInterface(bus::kProcessesName)
            .call([soon](const std::string&, int32_t) { soon(); });
        processes_->finishRegistration();
        resources_->finishRegistration();
        registerAdaptor();
        if (config_.health_checking.enabled) {
            periodic_timer_ = loop_.addTimer(kFirstEvaluation, [this] { periodic(); });
        } else {
            spdlog::info("health checking is disabled in the configuration");
        }
    }

    ~HealthAdaptor() {
        *alive_ = false;
        loop_.cancelTimer(periodic_timer_);
        loop_.cancelTimer(soon_timer_);
        loop_.cancelTimer(retry_timer_);
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

    // Asks both services at once, without blocking the loop, and scores when both have answered.
    void startEvaluation() {
        if (pending_ > 0) {
            again_ = true;
            return;
        }
        inputs_ = HealthInputs{};
        pending_ = 2;
        auto alive = alive_;
        // A call that cannot even be sent counts as answered without data.
        auto sendOrGiveUp = [this](const char* what, const std::function<void()>& send) {
            try {
                send();
            } catch (const std::exception& e) {
                spdlog::warn("health: {}: {}", what, e.what());
                answered();
            }
        };
        sendOrGiveUp("asking Resources1", [&] {
            resources_->callMethodAsync("GetSnapshot")
                .onInterface(bus::kResourcesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke([this, alive](const sdbus::Error* error, uint64_t taken_at, double cpu,
                                               std::vector<double> per_core, wire::Memory memory,
                                               wire::Swap swap, wire::Load load,
                                               std::vector<wire::Disk> disks,
                                               std::vector<wire::Network> networks) {
                    if (!*alive) {
                        return;
                    }
                    if (error == nullptr) {
                        inputs_.resources = wire::snapshotFromWire(
                            {taken_at, cpu, per_core, memory, swap, load, disks, networks});
                    }
                    answered();
                });
        });
        sendOrGiveUp("asking Processes1", [&] {
            processes_->callMethodAsync("ListServices")
                .onInterface(bus::kProcessesName)
                .withTimeout(kCallTimeout)
                .uponReplyInvoke(
                    [this, alive](const sdbus::Error* error, std::vector<wire::ServiceEntry> services) {
                        if (!*alive) {
                            return;
                        }
                        if (error == nullptr) {
                            std::vector<ServiceHealthInput> list;
                            for (const auto& s : services) {
                                ServiceHealthInput service;
                                service.name = s.get<0>();
                                service.state = s.get<1>();
                                service.critical = s.get<7>();
                                list.push_back(std::move(service));
                            }
                            inputs_.services = std::move(list);
                        }
                        answered();
                    });
        });
    }

    void answered() {
        if (--pending_ > 0) {
            return;
        }
        bus::logged("health evaluation", [this] {
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

    void publish(HealthReport report) {
        const auto previous = report_ ? report_->status : HealthStatus::Unknown;
        report_ = std::move(report);
        evaluated_at_ = std::chrono::system_clock::now();
        getObject().emitPropertiesChangedSignal(org::tauos::Health1_adaptor::INTERFACE_NAME,
                                                {"Score", "Status", "LastEvaluatedAt"});
        if (report_->status == previous) {
            return;
        }
        const auto status = std::string(toString(report_->status));
        const auto level =
            report_->status == HealthStatus::Critical && config_.health_checking.alert_on_failure
                ? spdlog::level::err
            : report_->status == HealthStatus::Ok ? spdlog::level::info
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

    void Evaluate() override {
        bus::guarded("Evaluate", [&] {
            authorizer_.requireAdmin(getObject(), "Evaluate");
            startEvaluation();
        });
    }

    double Score() override { return report_ ? report_->score : 0.0; }
    std::string Status() override {
        return std::string(toString(report_ ? report_->status : HealthStatus::Unknown));
    }
    uint64_t LastEvaluatedAt() override {
        if (!report_) {
            return 0;
        }
        return wire::toMicros(evaluated_at_);
    }

    const Config& config_;
    EventLoop& loop_;
    bus::Authorizer& authorizer_;
    ProcFsReader reader_;
    std::unique_ptr<sdbus::IProxy> resources_;
    std::unique_ptr<sdbus::IProxy> processes_;
    HealthInputs inputs_;
    int pending_ = 0;
    bool again_ = false;
    std::optional<HealthReport> report_;
    std::chrono::system_clock::time_point evaluated_at_;
    EventLoop::TimerId periodic_timer_ = 0;
    EventLoop::TimerId soon_timer_ = 0;
    EventLoop::TimerId retry_timer_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace

std::unique_ptr<SuiteService> makeHealthService(ServiceContext& context) {
    return std::make_unique<HealthAdaptor>(context);
}

} // namespace tau
