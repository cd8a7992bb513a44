#pragma once

#include "tau/clock.h"

#include <chrono>

namespace tau::test {

// A clock that moves only when the test says so; steady and wall time move together.
class FakeClock final : public Clock {
  public:
    std::chrono::steady_clock::time_point now() const override { return steady_; }
    std::chrono::system_clock::time_point wallNow() const override { return wall_; }

    void advance(std::chrono::steady_clock::duration by) {
        steady_ += by;
        wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
    }

  private:
    std::chrono::steady_clock::time_point steady_{std::chrono::hours(1000)};
    std::chrono::system_clock::time_point wall_{std::chrono::seconds(1'700'000'000)};
};

} // namespace tau::test
