#include "log_service.h"

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/dbus/org.tauos.Log1-adaptor.h"
#include "tau/log_writer.h"

#include <mutex>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace tau {
namespace {

constexpr std::size_t kRecentCapacity = 10000;
constexpr uint32_t kDefaultRecentCount = 100;

LogRecord fromWire(const wire::LogEntry& entry, std::size_t index) {
    LogRecord record;
    record.timestamp = std::chrono::system_clock::time_point(std::chrono::microseconds(entry.get<0>()));
    const auto level = logLevelFromString(entry.get<1>());
    if (!level) {
        throw ServiceError(ErrorCode::InvalidArgument,
                           "Submit: records[" + std::to_string(index) + "].level: unknown level '" +
                               entry.get<1>() + "' (trace, debug, info, warning, error, critical)");
    }
    record.level = *level;
    record.service = entry.get<2>();
    if (record.service.empty()) {
        throw ServiceError(ErrorCode::InvalidArgument,
                           "Submit: records[" + std::to_string(index) + "].service: must not be empty");
    }
    record.pid = entry.get<3>();
    record.event = entry.get<4>();
    record.message = entry.get<5>();
    record.fields = entry.get<6>();
    return record;
}

// The log service's own spdlog records, written by the same writer as everybody else's.
class DirectSink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    explicit DirectSink(LogWriter& writer) : writer_(writer) {}

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        LogRecord record;
        record.timestamp = msg.time;
        static constexpr LogLevel levels[] = {LogLevel::Trace,   LogLevel::Debug, LogLevel::Info,
                                              LogLevel::Warning, LogLevel::Error, LogLevel::Critical};
        record.level = levels[std::min<int>(msg.level, 5)];
        record.service = "log";
        record.pid = getpid();
        record.message.assign(msg.payload.data(), msg.payload.size());
        try {
            writer_.append({record});
        } catch (const std::exception&) {
            // The record is on stderr as well; the failure is counted by the writer.
        }
    }
    void flush_() override {}

  private:
    LogWriter& writer_;
};

class LogAdaptor final : public sdbus::AdaptorInterfaces<org::tauos::Log1_adaptor>, public SuiteService {
  public:
    explicit LogAdaptor(ServiceContext& context)
        : AdaptorInterfaces(context.connection, bus::kLogPath), authorizer_(context.authorizer),
          writer_(context.config.logging.log_file_path,
                  logLevelFromString(context.config.logging.log_level).value_or(LogLevel::Info),
                  kRecentCapacity) {
        bus::configureLogging("log", context.config.logging.log_level, std::make_shared<DirectSink>(writer_));
        registerAdaptor();
        spdlog::info("writing records to {}", writer_.file().string());
    }

    ~LogAdaptor() {
        bus::configureLogging("log", "info");
        unregisterAdaptor();
    }

  private:
    void Submit(const std::vector<wire::LogEntry>& records) override {
        bus::guarded("Submit", [&] {
            authorizer_.requireAdmin(getObject(), "Submit");
            std::vector<LogRecord> batch;
            batch.reserve(records.size());
            for (std::size_t i = 0; i < records.size(); ++i) {
                batch.push_back(fromWire(records[i], i));
            }
            try {
                writer_.append(batch);
            } catch (const std::runtime_error& e) {
                throw ServiceError(ErrorCode::Unavailable, e.what());
            }
        });
    }

    std::vector<wire::LogEntry> GetRecent(const uint32_t& count) override {
        return bus::guarded("GetRecent", [&] {
            const uint32_t wanted =
                count == 0 ? kDefaultRecentCount : std::min<uint32_t>(count, kRecentCapacity);
            std::vector<wire::LogEntry> result;
            for (const auto& record : writer_.recent(wanted)) {
                result.push_back(wire::toWire(record));
            }
            return result;
        });
    }

    std::map<std::string, uint64_t> GetStats() override {
        return bus::guarded("GetStats", [&] { return writer_.stats(); });
    }

    std::string LogFilePath() override { return writer_.file().string(); }
    uint64_t RecordsWritten() override { return writer_.recordsWritten(); }

    bus::Authorizer& authorizer_;
    LogWriter writer_;
};

} // namespace

std::unique_ptr<SuiteService> makeLogService(ServiceContext& context) {
    return std::make_unique<LogAdaptor>(context);
}

} // namespace tau
