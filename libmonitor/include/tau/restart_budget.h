#pragma once
// The host-wide restart budget: when a shared dependency goes down, every service that needs it crashes at
// once; restarting them all at once only knocks the dependency over again. At most `burst` restarts go
// through per `interval`; the rest wait for a slot, spread evenly over the following intervals.

#include <chrono>
#include <deque>

namespace tau {

class RestartBudget {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    RestartBudget(unsigned burst, std::chrono::milliseconds interval);

    // Reserves a slot for a restart wanted at `wanted` and returns when it may happen (never before
    // `wanted`). Called when a restart is due, so `wanted` does not decrease from call to call; slots are
    // granted in the order asked for.
    TimePoint reserve(TimePoint wanted);

    unsigned burst() const { return burst_; }
    std::chrono::milliseconds interval() const { return interval_; }

  private:
    unsigned burst_;
    std::chrono::milliseconds interval_;
    std::deque<TimePoint> granted_; // in increasing order
};

} // namespace tau
