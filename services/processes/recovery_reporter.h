#pragma once
// Delivers the supervisor's decisions to org.tauos.Recovery1, in order. The supervisor decides on its own
// (a restart never waits for another process); when the recovery service is away, reports wait here and
// go out once it is back, so the crash history has no gaps.

#include "tau/event_loop.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <string>
#include <variant>

namespace tau {

struct ExitReport {
    std::uint64_t time_usec = 0;
    std::string service;
    std::int32_t pid = 0;
    std::int32_t exit_code = -1;
    std::int32_t signal = 0;
    std::string failure_class; // "" when the exit was no failure
    std::uint64_t uptime_usec = 0;
    std::uint32_t attempt = 0;
    std::string action;
    std::uint64_t delay_usec = 0;
    bool escalate = false;
    std::string reason;
};

struct RecoveredReport {
    std::uint64_t time_usec = 0;
    std::string service;
};

class RecoveryReporter {
  public:
    RecoveryReporter(EventLoop& loop, sdbus::IConnection& connection, std::size_t capacity = 10000);
    ~RecoveryReporter();
    RecoveryReporter(const RecoveryReporter&) = delete;
    RecoveryReporter& operator=(const RecoveryReporter&) = delete;

    void report(ExitReport report);
    void report(RecoveredReport report);

    std::size_t pending() const { return queue_.size(); }
    std::uint64_t dropped() const { return dropped_; }

  private:
    using Report = std::variant<ExitReport, RecoveredReport>;
    void enqueue(Report report);
    void sendNext();
    void retryLater();

    EventLoop& loop_;
    std::unique_ptr<sdbus::IProxy> recovery_;
    std::size_t capacity_;
    std::deque<Report> queue_;
    bool in_flight_ = false;
    bool away_ = false; // the last attempt failed: the recovery service is down or restarting
    std::uint64_t dropped_ = 0;
    EventLoop::TimerId retry_timer_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace tau
