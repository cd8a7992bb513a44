#pragma once
// Every process of the suite logs through spdlog. This sink queues records and the forwarder sends them to
// org.tauos.Log1 in batches, asynchronously, from the loop thread: logging never blocks on the bus.

#include "tau/event_loop.h"
#include "tau/log_record.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <spdlog/sinks/base_sink.h>
#include <string>

namespace tau::bus {

// Logs one record with a stable event name and typed fields besides the message.
void logEvent(spdlog::level::level_enum level, std::string event, std::map<std::string, std::string> fields,
              const std::string& message);

class QueueingLogSink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    QueueingLogSink(std::string service, std::size_t capacity);

    // Takes up to `max` queued records; a record saying how many were dropped comes first if the queue
    // overflowed since the last call.
    std::vector<LogRecord> take(std::size_t max);
    // Queues a record made elsewhere (a supervised service's output, tagged with that service's name).
    void push(LogRecord record);
    // Returns records that could not be delivered, to be sent again first.
    void putBack(std::vector<LogRecord> records);
    // Whether take() would return nothing.
    bool empty();
    // Called whenever something is queued (or dropped), from the logging thread with the sink locked: the
    // forwarder wakes up only when there is work. Empty: nobody to tell.
    void onQueued(std::function<void()> callback);

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}

  private:
    void queued();

    std::string service_;
    std::size_t capacity_;
    std::function<void()> on_queued_;
    std::deque<LogRecord> queue_;
    std::uint64_t dropped_ = 0;
};

// Single-threaded like the rest of a suite process: records are queued on the loop's thread, and a flush is
// scheduled only when there is something to send, so an idle process has no timer to wake it.
class LogForwarder {
  public:
    LogForwarder(EventLoop& loop, sdbus::IConnection& connection, std::shared_ptr<QueueingLogSink> sink);
    ~LogForwarder();

  private:
    void schedule(); // a flush soon, unless one is scheduled or a batch is on its way
    void flush();

    EventLoop& loop_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::shared_ptr<QueueingLogSink> sink_;
    EventLoop::TimerId timer_ = 0;
    bool in_flight_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Sets up the default spdlog logger of a suite process: records to stderr, and to org.tauos.Log1 when
// `sink` is given. `level` is a logging.log_level name.
void configureLogging(const std::string& service, const std::string& level,
                      std::shared_ptr<spdlog::sinks::sink> extra_sink = nullptr);

} // namespace tau::bus
