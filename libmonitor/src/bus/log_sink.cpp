#include "tau/bus/log_sink.h"

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/bus/wire.h"

#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace tau::bus {
namespace {

// The event name and fields of the record being logged on this thread, set by logEvent().
thread_local std::string current_event;
thread_local std::map<std::string, std::string> current_fields;

LogLevel toLogLevel(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::trace:
        return LogLevel::Trace;
    case spdlog::level::debug:
        return LogLevel::Debug;
    case spdlog::level::info:
        return LogLevel::Info;
    case spdlog::level::warn:
        return LogLevel::Warning;
    case spdlog::level::err:
        return LogLevel::Error;
    default:
        return LogLevel::Critical;
    }
}

spdlog::level::level_enum toSpdlogLevel(const std::string& name) {
    const auto level = logLevelFromString(name).value_or(LogLevel::Info);
    switch (level) {
    case LogLevel::Trace:
        return spdlog::level::trace;
    case LogLevel::Debug:
        return spdlog::level::debug;
    case LogLevel::Info:
        return spdlog::level::info;
    case LogLevel::Warning:
        return spdlog::level::warn;
    case LogLevel::Error:
        return spdlog::level::err;
    case LogLevel::Critical:
        return spdlog::level::critical;
    }
    return spdlog::level::info;
}

constexpr auto kFlushInterval = std::chrono::milliseconds(200);
constexpr auto kSubmitTimeout = std::chrono::seconds(5);

bool isTransient(const std::string& error_name) {
    return error_name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
           error_name == "org.freedesktop.DBus.Error.NameHasNoOwner" ||
           error_name == "org.freedesktop.DBus.Error.NoReply" ||
           error_name == "org.freedesktop.DBus.Error.Timeout" ||
           error_name == "org.freedesktop.DBus.Error.UnknownObject";
}
constexpr std::size_t kBatchSize = 500;

} // namespace

void logEvent(spdlog::level::level_enum level, std::string event, std::map<std::string, std::string> fields,
              const std::string& message) {
    current_event = std::move(event);
    current_fields = std::move(fields);
    spdlog::log(level, "{}", message);
    current_event.clear();
    current_fields.clear();
}

QueueingLogSink::QueueingLogSink(std::string service, std::size_t capacity)
    : service_(std::move(service)), capacity_(capacity) {}

void QueueingLogSink::sink_it_(const spdlog::details::log_msg& msg) {
    if (queue_.size() >= capacity_) {
        ++dropped_;
        queued();
        return;
    }
    LogRecord record;
    record.timestamp = msg.time;
    record.level = toLogLevel(msg.level);
    record.service = service_;
    record.pid = getpid();
    record.event = current_event;
    record.fields = current_fields;
    record.message.assign(msg.payload.data(), msg.payload.size());
    queue_.push_back(std::move(record));
    queued();
}

void QueueingLogSink::queued() {
    if (on_queued_) {
        on_queued_();
    }
}

void QueueingLogSink::push(LogRecord record) {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= capacity_) {
        ++dropped_;
    } else {
        queue_.push_back(std::move(record));
    }
    queued();
}

bool QueueingLogSink::empty() {
    std::lock_guard lock(mutex_);
    return queue_.empty() && dropped_ == 0;
}

void QueueingLogSink::onQueued(std::function<void()> callback) {
    std::lock_guard lock(mutex_);
    on_queued_ = std::move(callback);
}

void QueueingLogSink::putBack(std::vector<LogRecord> records) {
    std::lock_guard lock(mutex_);
    // Oldest first, ahead of what arrived meanwhile; what does not fit any more is counted as dropped.
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
        if (queue_.size() >= capacity_) {
            ++dropped_;
            continue;
        }
        queue_.push_front(std::move(*it));
    }
    queued();
}

std::vector<LogRecord> QueueingLogSink::take(std::size_t max) {
    std::lock_guard lock(mutex_);
    std::vector<LogRecord> batch;
    if (dropped_ > 0) {
        LogRecord notice;
        notice.timestamp = std::chrono::system_clock::now();
        notice.level = LogLevel::Warning;
        notice.service = service_;
        notice.pid = getpid();
        notice.event = "log.dropped";
        notice.message = "dropped " + std::to_string(dropped_) + " records: log queue full";
        notice.fields["dropped"] = std::to_string(dropped_);
        batch.push_back(std::move(notice));
        dropped_ = 0;
    }
    while (!queue_.empty() && batch.size() < max) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
    }
    return batch;
}

LogForwarder::LogForwarder(EventLoop& loop, sdbus::IConnection& connection,
                           std::shared_ptr<QueueingLogSink> sink)
    : loop_(loop), proxy_(sdbus::createProxy(connection, kLogName, kLogPath)), sink_(std::move(sink)) {
    proxy_->finishRegistration();
    sink_->onQueued([this] { schedule(); });
    if (!sink_->empty()) {
        schedule();
    }
}

LogForwarder::~LogForwarder() {
    *alive_ = false;
    sink_->onQueued(nullptr);
    if (timer_ != 0) {
        loop_.cancelTimer(timer_);
    }
}

void LogForwarder::schedule() {
    if (timer_ != 0 || in_flight_) {
        return;
    }
    timer_ = loop_.addTimer(kFlushInterval, [this] {
        timer_ = 0;
        flush();
    });
}

void LogForwarder::flush() {
    auto batch = sink_->take(kBatchSize);
    if (batch.empty()) {
        return;
    }
    std::vector<wire::LogEntry> entries;
    entries.reserve(batch.size());
    for (const auto& record : batch) {
        entries.push_back(wire::toWire(record));
    }
    auto alive = alive_;
    auto pending = std::make_shared<std::vector<LogRecord>>(std::move(batch));
    try {
        proxy_->callMethodAsync("Submit")
            .onInterface(kLogName)
            .withTimeout(kSubmitTimeout)
            .withArguments(entries)
            .uponReplyInvoke([this, alive, pending](const sdbus::Error* error) {
                if (!*alive) {
                    return;
                }
                in_flight_ = false;
                // While the log service is away (starting, restarting) the batch waits for the next round;
                // a batch it refused stays only on stderr, where every record went as well.
                if (error != nullptr && isTransient(error->getName())) {
                    sink_->putBack(std::move(*pending)); // schedules the next round
                } else if (!sink_->empty()) {
                    schedule();
                }
            });
        in_flight_ = true;
    } catch (const sdbus::Error&) {
        sink_->putBack(std::move(*pending));
    }
}

void configureLogging(const std::string& service, const std::string& level,
                      std::shared_ptr<spdlog::sinks::sink> extra_sink) {
    auto console = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    console->set_pattern("%Y-%m-%dT%H:%M:%S.%e [" + service + "] %l: %v");
    std::vector<spdlog::sink_ptr> sinks{console};
    if (extra_sink) {
        sinks.push_back(std::move(extra_sink));
    }
    auto logger = std::make_shared<spdlog::logger>(service, sinks.begin(), sinks.end());
    logger->set_level(toSpdlogLevel(level));
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(std::move(logger));
}

} // namespace tau::bus
