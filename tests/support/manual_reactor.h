#pragma once
// A Reactor whose time moves only when the test says so, and a Prober whose attempts end when the test
// says so: probes and schedulers tested without sockets, processes or waiting.

#include "fake_clock.h"
#include "tau/event_loop.h"
#include "tau/probes.h"

#include <chrono>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <vector>

namespace tau::test {

// Timers fire in order of their due time as the test moves the clock; descriptors are not used here.
class ManualReactor final : public Reactor {
  public:
    explicit ManualReactor(FakeClock& clock) : clock_(clock) {}

    void watchFd(int, short, FdCallback) override { ADD_FAILURE() << "the scheduler watches no descriptor"; }
    void unwatchFd(int) override {}
    TimerId addTimer(std::chrono::steady_clock::duration delay, std::function<void()> callback) override {
        const TimerId id = next_id_++;
        timers_[id] = {clock_.now() + delay, std::move(callback)};
        return id;
    }
    void cancelTimer(TimerId id) override { timers_.erase(id); }

    std::size_t pendingTimers() const { return timers_.size(); }

    void advance(std::chrono::steady_clock::duration by) {
        const auto target = clock_.now() + by;
        while (true) {
            auto next = timers_.end();
            for (auto it = timers_.begin(); it != timers_.end(); ++it) {
                if (it->second.due <= target &&
                    (next == timers_.end() || it->second.due < next->second.due)) {
                    next = it;
                }
            }
            if (next == timers_.end()) {
                break;
            }
            clock_.advance(next->second.due - clock_.now());
            auto callback = std::move(next->second.callback);
            timers_.erase(next);
            callback();
        }
        clock_.advance(target - clock_.now());
    }

  private:
    struct Timer {
        std::chrono::steady_clock::time_point due;
        std::function<void()> callback;
    };
    FakeClock& clock_;
    std::map<TimerId, Timer> timers_;
    TimerId next_id_ = 1;
};

// Attempts end when the test says so.
class ScriptedProber final : public Prober {
  public:
    struct Log {
        unsigned starts = 0;
        unsigned cancels = 0;
        std::vector<std::chrono::steady_clock::duration> timeouts;
        std::vector<std::chrono::steady_clock::time_point> start_times;
        Done pending;
        Done abandoned; // the `done` of a cancelled attempt, to check that calling it late does no harm
    };

    ScriptedProber(Log& log, const FakeClock& clock) : log_(log), clock_(clock) {}

    void start(std::chrono::steady_clock::duration timeout, Done done) override {
        EXPECT_FALSE(log_.pending) << "a second attempt while one is in flight";
        ++log_.starts;
        log_.timeouts.push_back(timeout);
        log_.start_times.push_back(clock_.now());
        log_.pending = std::move(done);
    }
    void cancel() override {
        ++log_.cancels;
        log_.abandoned = std::move(log_.pending);
        log_.pending = nullptr;
    }

  private:
    Log& log_;
    const FakeClock& clock_;
};

} // namespace tau::test
