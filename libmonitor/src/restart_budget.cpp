#include "tau/restart_budget.h"

#include <algorithm>

namespace tau {

RestartBudget::RestartBudget(unsigned burst, std::chrono::milliseconds interval)
    : burst_(std::max(burst, 1u)), interval_(interval) {}

RestartBudget::TimePoint RestartBudget::reserve(TimePoint wanted) {
    TimePoint slot = wanted;
    if (!granted_.empty()) {
        slot = std::max(slot, granted_.back());
    }
    if (granted_.size() >= burst_) {
        // The window is full until the grant `burst` places back has left it.
        slot = std::max(slot, granted_[granted_.size() - burst_] + interval_);
    }
    if (slot > wanted && !granted_.empty()) {
        // A backlog drains evenly, a fair share of the interval apart, rather than in bursts.
        slot = std::max(slot, granted_.back() + interval_ / burst_);
    }
    granted_.push_back(slot);
    while (granted_.size() > burst_) {
        granted_.pop_front();
    }
    return slot;
}

} // namespace tau
