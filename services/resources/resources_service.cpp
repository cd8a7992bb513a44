#include "resources_service.h"

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/dbus/org.tauos.Resources1-adaptor.h"
#include "tau/resources.h"

#include <fmt/format.h>
#include <map>
#include <optional>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

// A threshold is left only this many percentage points below its limit, so a value that hovers at the limit
// does not raise an alarm on every sample.
constexpr double kHysteresisPercent = 5.0;
// The first sample measures CPU since boot; the first published one follows this soon after it.
constexpr auto kFirstInterval = std::chrono::seconds(1);

using wire::toMicros;

class ResourcesAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Resources1_adaptor>,
                               public SuiteService {
  public:
    explicit ResourcesAdaptor(ServiceContext& context)
        : AdaptorInterfaces(context.connection, bus::kResourcesPath),
          config_(context.config.resource_monitoring), loop_(context.loop), sampler_(reader_, clock_),
          cpu_threshold_(config_.cpu_threshold_percent, kHysteresisPercent),
          memory_threshold_(config_.memory_threshold_percent, kHysteresisPercent) {
        registerAdaptor();
        if (!config_.enabled) {
            spdlog::info("resource monitoring is disabled in the configuration");
            return;
        }
        bus::logged("first resource sample", [this] { sampler_.sample(); });
        timer_ = loop_.addTimer(kFirstInterval, [this] { tick(); });
    }

    ~ResourcesAdaptor() {
        loop_.cancelTimer(timer_);
        unregisterAdaptor();
    }

  private:
    void tick() {
        timer_ = loop_.addTimer(std::chrono::seconds(config_.interval_seconds), [this] { tick(); });
        bus::logged("resource sampling", [this] {
            const auto started = std::chrono::steady_clock::now();
            latest_ = sampler_.sample();
            const auto took = std::chrono::steady_clock::now() - started;
            getObject().emitPropertiesChangedSignal(
                org::tauos::Resources1_adaptor::INTERFACE_NAME,
                {"CpuPercent", "MemoryUsedPercent", "SwapUsedPercent", "LoadAverage", "LastSampleAt"});
            checkThresholds(*latest_);
            if (config_.log_resource_usage) {
                bus::logEvent(
                    spdlog::level::info, "resources.sample",
                    {{"cpu_percent", fmt::format("{:.1f}", latest_->cpu_percent)},
                     {"memory_used_percent", fmt::format("{:.1f}", latest_->memory.used_percent)},
                     {"load1", fmt::format("{:.2f}", latest_->load.one)},
                     {"sample_usec",
                      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(took).count())}},
                    fmt::format("cpu {:.1f}%, memory {:.1f}%, load {:.2f}", latest_->cpu_percent,
                                latest_->memory.used_percent, latest_->load.one));
            }
        });
    }

    void checkThresholds(const ResourceSnapshot& snapshot) {
        report(cpu_threshold_, "cpu", "system", snapshot.cpu_percent);
        report(memory_threshold_, "memory", "system", snapshot.memory.used_percent);
        for (const auto& disk : snapshot.disks) {
            auto [it, inserted] = disk_thresholds_.try_emplace(
                disk.mount_point, config_.disk_threshold_percent, kHysteresisPercent);
            report(it->second, "disk", disk.mount_point, disk.used_percent);
        }
    }

    void report(ThresholdState& state, const std::string& metric, const std::string& scope, double value) {
        if (!state.update(value)) {
            return;
        }
        const std::string level = state.exceeded() ? "warning" : "ok";
        bus::logEvent(state.exceeded() ? spdlog::level::warn : spdlog::level::info, "resources.threshold",
                      {{"metric", metric},
                       {"scope", scope},
                       {"level", level},
                       {"value", fmt::format("{:.1f}", value)},
                       {"limit", fmt::format("{:.1f}", state.limit())}},
                      fmt::format("{} {} {:.1f}% ({} limit {:.1f}%)", metric, scope, value,
                                  state.exceeded() ? "over" : "back under", state.limit()));
        if (config_.alert_on_threshold) {
            emitThresholdCrossed(metric, scope, level, value, state.limit());
        }
    }

    const ResourceSnapshot& latest() const {
        if (!latest_) {
            throw ServiceError(ErrorCode::Unavailable, config_.enabled ? "no resource sample taken yet"
                                                                       : "resource monitoring is disabled");
        }
        return *latest_;
    }

    wire::Snapshot GetSnapshot() override {
        return bus::guarded("GetSnapshot", [&] {
            auto snapshot = wire::toWire(latest());
            if (!config_.network_monitoring) {
                std::get<7>(snapshot).clear();
            }
            return snapshot;
        });
    }

    double CpuPercent() override { return latest_ ? latest_->cpu_percent : 0.0; }
    double MemoryUsedPercent() override { return latest_ ? latest_->memory.used_percent : 0.0; }
    double SwapUsedPercent() override { return latest_ ? latest_->swap.used_percent : 0.0; }
    wire::Load LoadAverage() override {
        return latest_ ? wire::Load{latest_->load.one, latest_->load.five, latest_->load.fifteen}
                       : wire::Load{0.0, 0.0, 0.0};
    }
    uint32_t IntervalSeconds() override { return config_.interval_seconds; }
    uint64_t LastSampleAt() override { return latest_ ? toMicros(latest_->taken_at) : 0; }

    const ResourceMonitoringConfig& config_;
    EventLoop& loop_;
    SystemClock clock_;
    ProcFsReader reader_;
    ResourceSampler sampler_;
    ThresholdState cpu_threshold_;
    ThresholdState memory_threshold_;
    std::map<std::string, ThresholdState> disk_thresholds_;
    std::optional<ResourceSnapshot> latest_;
    EventLoop::TimerId timer_ = 0;
};

} // namespace

std::unique_ptr<SuiteService> makeResourcesService(ServiceContext& context) {
    return std::make_unique<ResourcesAdaptor>(context);
}

} // namespace tau
