#include "recovery_service.h"

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/crash_history.h"
#include "tau/dbus/org.tauos.Recovery1-adaptor.h"
#include "tau/spawner.h"

#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

constexpr std::size_t kHistoryCapacity = 10000;

std::filesystem::path historyFile(const Config& config) {
    const auto& dir = config.crash_recovery.session_state_path;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        spdlog::error("cannot create {}: {}; crash history is kept in memory only", dir.string(),
                      ec.message());
        return {};
    }
    return dir / "crash-history.jsonl";
}

bool isValidServiceName(const std::string& name) {
    if (name.size() > 64) {
        return false;
    }
    for (const char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}

class RecoveryAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Recovery1_adaptor>,
                              public SuiteService {
  public:
    explicit RecoveryAdaptor(ServiceContext& context)
        : AdaptorInterfaces(context.connection, bus::kRecoveryPath),
          history_(historyFile(context.config), kHistoryCapacity),
          processes_(sdbus::createProxy(context.connection, bus::kProcessesName, bus::kProcessesPath)) {
        if (history_.skippedLines() > 0) {
            spdlog::warn("crash history: skipped {} unreadable lines", history_.skippedLines());
        }
        processes_->uponSignal("ServiceExited")
            .onInterface(bus::kProcessesName)
            .call([this](const std::string& name, int32_t pid, int32_t exit_code, int32_t signal,
                         uint64_t uptime, const std::string& action, uint32_t attempt) {
                bus::logged("ServiceExited",
                            [&] { onServiceExited(name, pid, exit_code, signal, uptime, action, attempt); });
            });
        processes_->finishRegistration();
        registerAdaptor();
    }

    ~RecoveryAdaptor() { unregisterAdaptor(); }

  private:
    void onServiceExited(const std::string& name, int32_t pid, int32_t exit_code, int32_t signal,
                         uint64_t uptime, const std::string& action, uint32_t attempt) {
        CrashEntry entry{std::chrono::system_clock::now(),  name,   pid,    exit_code, signal,
                         std::chrono::microseconds(uptime), action, attempt};
        try {
            history_.record(entry);
        } catch (const std::exception& e) {
            spdlog::error("crash history: {}", e.what());
        }
        getObject().emitPropertiesChangedSignal(org::tauos::Recovery1_adaptor::INTERFACE_NAME,
                                                {"HistorySize"});
        if (action == "stopped") {
            return;
        }
        const ExitStatus status{exit_code, signal, false};
        const std::string reason = status.describe();
        bus::logEvent(
            action == "give_up" ? spdlog::level::err : spdlog::level::info, "recovery.action",
            {{"service", name}, {"action", action}, {"attempt", std::to_string(attempt)}, {"reason", reason}},
            name + " " + reason + ": " + action + " (attempt " + std::to_string(attempt) + ")");
        emitRecoveryAction(name, action, attempt, reason);
    }

    std::vector<wire::HistoryEntry> GetHistory(const std::string& service, const uint32_t& limit) override {
        return bus::guarded("GetHistory", [&] {
            if (!isValidServiceName(service)) {
                throw ServiceError(ErrorCode::InvalidArgument,
                                   "GetHistory: service: '" + service + "' is not a valid service name");
            }
            std::vector<wire::HistoryEntry> result;
            for (const auto& entry : history_.query(service, limit)) {
                result.emplace_back(wire::toMicros(entry.time), entry.service, entry.pid, entry.exit_code,
                                    entry.signal, static_cast<uint64_t>(entry.uptime.count()), entry.action,
                                    entry.attempt);
            }
            return result;
        });
    }

    uint32_t HistorySize() override { return static_cast<uint32_t>(history_.size()); }

    CrashHistory history_;
    std::unique_ptr<sdbus::IProxy> processes_;
};

} // namespace

std::unique_ptr<SuiteService> makeRecoveryService(ServiceContext& context) {
    return std::make_unique<RecoveryAdaptor>(context);
}

} // namespace tau
