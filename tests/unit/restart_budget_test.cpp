#include "tau/restart_budget.h"

#include <gtest/gtest.h>

namespace tau {
namespace {

using namespace std::chrono_literals;
using TimePoint = RestartBudget::TimePoint;

const TimePoint kStart{1000s};

TEST(RestartBudget, ABurstGoesThroughAtOnce) {
    RestartBudget budget(3, 9s);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(budget.reserve(kStart), kStart);
    }
}

TEST(RestartBudget, BeyondTheBurstRestartsAreSpreadEvenly) {
    RestartBudget budget(3, 9s);
    std::vector<TimePoint> slots;
    for (int i = 0; i < 8; ++i) {
        slots.push_back(budget.reserve(kStart));
    }
    const std::vector<TimePoint> expected = {kStart,       kStart,       kStart,       kStart + 9s,
                                             kStart + 12s, kStart + 15s, kStart + 18s, kStart + 21s};
    EXPECT_EQ(slots, expected);
}

TEST(RestartBudget, NoWindowEverHoldsMoreThanTheBurst) {
    RestartBudget budget(4, 10s);
    std::vector<TimePoint> slots;
    for (int i = 0; i < 40; ++i) {
        slots.push_back(budget.reserve(kStart + std::chrono::milliseconds(100 * i)));
    }
    for (std::size_t i = 0; i + 4 < slots.size(); ++i) {
        EXPECT_GE(slots[i + 4] - slots[i], 10s) << "slots " << i << " to " << i + 4;
    }
}

TEST(RestartBudget, QuietTimeRefillsTheBudget) {
    RestartBudget budget(2, 10s);
    budget.reserve(kStart);
    budget.reserve(kStart);
    EXPECT_EQ(budget.reserve(kStart + 1s), kStart + 10s);
    // Long after the backlog, a new burst goes through again.
    EXPECT_EQ(budget.reserve(kStart + 60s), kStart + 60s);
    EXPECT_EQ(budget.reserve(kStart + 60s), kStart + 60s);
}

TEST(RestartBudget, NeverGrantsBeforeTheWantedTime) {
    RestartBudget budget(1, 1s);
    EXPECT_EQ(budget.reserve(kStart + 5s), kStart + 5s);
    EXPECT_EQ(budget.reserve(kStart + 7s), kStart + 7s);
}

} // namespace
} // namespace tau
