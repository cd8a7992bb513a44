#pragma once
// Driving a real event loop from a test, with a bound on the time it may take.

#include "tau/event_loop.h"

#include <chrono>
#include <functional>

namespace tau::test {

// Runs the loop until `done` holds, checked every few milliseconds, for at most `limit`.
inline void runUntil(EventLoop& loop, const std::function<bool()>& done,
                     std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::function<void()> check = [&] {
        if (done() || std::chrono::steady_clock::now() >= deadline) {
            loop.quit();
            return;
        }
        loop.addTimer(std::chrono::milliseconds(5), check);
    };
    loop.addTimer(std::chrono::milliseconds(0), check);
    loop.run();
}

} // namespace tau::test
