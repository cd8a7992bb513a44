#include "tau/event_loop.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/eventfd.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;

// A pipe whose ends are closed with the test.
class Pipe {
  public:
    Pipe() {
        if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
            ADD_FAILURE() << "pipe2 failed";
        }
    }
    ~Pipe() {
        for (const int fd : fds_) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;

    int readEnd() const { return fds_[0]; }
    void writeByte() const { ASSERT_EQ(::write(fds_[1], "x", 1), 1); }
    void drain() const {
        char buffer[64];
        while (::read(fds_[0], buffer, sizeof buffer) > 0) {
        }
    }

  private:
    int fds_[2] = {-1, -1};
};

// Every test loop gets a watchdog: if the behaviour under test never ends the loop, the watchdog fails the
// test and quits instead of letting run() block forever. It is never reached when the code works.
class EventLoopTest : public testing::Test {
  protected:
    void SetUp() override {
        watchdog_ = loop_.addTimer(10s, [this] {
            ADD_FAILURE() << "the loop did not finish on its own";
            loop_.quit();
        });
    }
    void TearDown() override { loop_.cancelTimer(watchdog_); }

    EventLoop loop_;
    EventLoop::TimerId watchdog_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Timers

TEST_F(EventLoopTest, TimerFiresAndQuitEndsRun) {
    bool fired = false;
    loop_.addTimer(0ms, [&] {
        fired = true;
        EXPECT_TRUE(loop_.running());
        loop_.quit();
    });
    loop_.run();
    EXPECT_TRUE(fired);
    EXPECT_FALSE(loop_.running());
}

TEST_F(EventLoopTest, TimerIdsAreDistinct) {
    const auto first = loop_.addTimer(1h, [] {});
    const auto second = loop_.addTimer(1h, [] {});
    EXPECT_NE(first, second);
    loop_.cancelTimer(first);
    loop_.cancelTimer(second);
}

TEST_F(EventLoopTest, EarlierDueTimerFiresFirstEvenWhenAddedLater) {
    bool late_fired = false;
    bool early_fired = false;
    const auto late = loop_.addTimer(1h, [&] { late_fired = true; });
    loop_.addTimer(0ms, [&] {
        early_fired = true;
        loop_.quit();
    });
    loop_.run();
    EXPECT_TRUE(early_fired);
    EXPECT_FALSE(late_fired);
    loop_.cancelTimer(late);
}

TEST_F(EventLoopTest, TimersAddedInDueOrderFireInThatOrder) {
    std::vector<int> order;
    loop_.addTimer(0ms, [&] { order.push_back(1); });
    loop_.addTimer(1ms, [&] { order.push_back(2); });
    loop_.addTimer(2ms, [&] {
        order.push_back(3);
        loop_.quit();
    });
    loop_.run();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(EventLoopTest, OverdueTimersFireInDueOrderNotInOrderOfAdding) {
    // Negative delays make both timers overdue before run() starts, as after a long callback: the one that
    // was due first must run first.
    std::vector<std::string> order;
    loop_.addTimer(-1ms, [&] {
        order.push_back("due later");
        loop_.quit();
    });
    loop_.addTimer(-5ms, [&] { order.push_back("due earlier"); });
    loop_.run();
    EXPECT_EQ(order, (std::vector<std::string>{"due earlier", "due later"}));
}

TEST_F(EventLoopTest, CancelledTimerNeverFires) {
    bool cancelled_fired = false;
    const auto cancelled = loop_.addTimer(0ms, [&] { cancelled_fired = true; });
    loop_.cancelTimer(cancelled);
    loop_.addTimer(0ms, [&] { loop_.quit(); });
    loop_.run();
    EXPECT_FALSE(cancelled_fired);
}

TEST_F(EventLoopTest, CancellingAnUnknownOrFiredTimerIsHarmless) {
    int fired = 0;
    EventLoop::TimerId first = 0;
    first = loop_.addTimer(0ms, [&] {
        ++fired;
        // Cancelling itself while running must not disturb anything.
        loop_.cancelTimer(first);
    });
    loop_.addTimer(0ms, [&] { loop_.quit(); });
    loop_.cancelTimer(987654321);
    loop_.run();
    loop_.cancelTimer(first);
    EXPECT_EQ(fired, 1);
}

TEST_F(EventLoopTest, CallbackCanCancelAnotherTimerDueInTheSameRound) {
    // All three have a zero delay, so all are due when the loop first looks at its timers.
    bool victim_fired = false;
    bool last_fired = false;
    EventLoop::TimerId victim = 0;
    loop_.addTimer(0ms, [&] { loop_.cancelTimer(victim); });
    victim = loop_.addTimer(0ms, [&] { victim_fired = true; });
    loop_.addTimer(0ms, [&] {
        last_fired = true;
        loop_.quit();
    });
    loop_.run();
    EXPECT_FALSE(victim_fired);
    EXPECT_TRUE(last_fired);
}

TEST_F(EventLoopTest, TimerAddedFromACallbackFiresLater) {
    std::vector<int> order;
    loop_.addTimer(0ms, [&] {
        order.push_back(1);
        loop_.addTimer(0ms, [&] {
            order.push_back(3);
            loop_.quit();
        });
    });
    loop_.addTimer(0ms, [&] { order.push_back(2); });
    loop_.run();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(EventLoopTest, ExceptionFromATimerPropagatesOutOfRun) {
    loop_.addTimer(0ms, [] { throw std::runtime_error("boom"); });
    EXPECT_THROW(loop_.run(), std::runtime_error);
}

// ---------------------------------------------------------------------------------------------------------
// File descriptors

TEST_F(EventLoopTest, WatchedPipeReportsReadable) {
    Pipe pipe;
    pipe.writeByte();
    short seen = 0;
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short revents) {
        seen = revents;
        pipe.drain();
        loop_.quit();
    });
    loop_.run();
    EXPECT_TRUE(seen & POLLIN);
    loop_.unwatchFd(pipe.readEnd());
}

TEST_F(EventLoopTest, WatchedEventfdWakesTheLoopFromATimer) {
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ASSERT_GE(efd, 0);
    std::uint64_t received = 0;
    loop_.watchFd(efd, POLLIN, [&](short revents) {
        EXPECT_TRUE(revents & POLLIN);
        ASSERT_EQ(::read(efd, &received, sizeof received), static_cast<ssize_t>(sizeof received));
        loop_.quit();
    });
    // Nothing is readable until the timer writes, so the fd callback runs only after it.
    loop_.addTimer(0ms, [&] {
        const std::uint64_t value = 7;
        ASSERT_EQ(::write(efd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
    });
    loop_.run();
    EXPECT_EQ(received, 7u);
    loop_.unwatchFd(efd);
    ::close(efd);
}

TEST_F(EventLoopTest, IdleDescriptorCallbackIsNotCalled) {
    Pipe idle;
    bool idle_called = false;
    loop_.watchFd(idle.readEnd(), POLLIN, [&](short) { idle_called = true; });
    loop_.addTimer(0ms, [&] { loop_.quit(); });
    loop_.run();
    EXPECT_FALSE(idle_called);
    loop_.unwatchFd(idle.readEnd());
}

TEST_F(EventLoopTest, WatchingTheSameFdAgainReplacesTheCallback) {
    Pipe pipe;
    pipe.writeByte();
    int first_calls = 0;
    int second_calls = 0;
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short) { ++first_calls; });
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short) {
        ++second_calls;
        pipe.drain();
        loop_.quit();
    });
    loop_.run();
    EXPECT_EQ(first_calls, 0);
    EXPECT_EQ(second_calls, 1);
    loop_.unwatchFd(pipe.readEnd());
}

TEST_F(EventLoopTest, UnwatchedFdIsNoLongerPolled) {
    Pipe pipe;
    pipe.writeByte();
    bool called = false;
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short) { called = true; });
    loop_.unwatchFd(pipe.readEnd());
    loop_.addTimer(0ms, [&] { loop_.quit(); });
    loop_.run();
    EXPECT_FALSE(called);
}

TEST_F(EventLoopTest, CallbackCanUnwatchItselfWhileStillReadable) {
    Pipe pipe;
    pipe.writeByte(); // never drained: a level-triggered poll would report it on every round
    int calls = 0;
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short) {
        ++calls;
        loop_.unwatchFd(pipe.readEnd());
        // Let a few more rounds pass to prove the descriptor is gone for good.
        loop_.addTimer(0ms, [&] { loop_.addTimer(0ms, [&] { loop_.quit(); }); });
    });
    loop_.run();
    EXPECT_EQ(calls, 1);
}

TEST_F(EventLoopTest, CallbackCanUnwatchAnotherReadyFdOfTheSameRound) {
    Pipe first;
    Pipe second;
    first.writeByte();
    second.writeByte();
    // Callbacks run in ascending descriptor order; whichever runs first removes the other.
    const int lower = std::min(first.readEnd(), second.readEnd());
    const int higher = std::max(first.readEnd(), second.readEnd());
    int lower_calls = 0;
    int higher_calls = 0;
    loop_.watchFd(lower, POLLIN, [&](short) {
        ++lower_calls;
        loop_.unwatchFd(higher);
        loop_.unwatchFd(lower);
        loop_.addTimer(0ms, [&] { loop_.quit(); });
    });
    loop_.watchFd(higher, POLLIN, [&](short) { ++higher_calls; });
    loop_.run();
    EXPECT_EQ(lower_calls, 1);
    EXPECT_EQ(higher_calls, 0);
}

TEST_F(EventLoopTest, QuitFromAnFdCallbackSkipsTheRestOfTheRoundAndRunResumesIt) {
    Pipe pipe;
    pipe.writeByte();
    bool timer_fired = false;
    loop_.addTimer(0ms, [&] {
        timer_fired = true;
        loop_.quit();
    });
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short) {
        pipe.drain();
        loop_.unwatchFd(pipe.readEnd());
        loop_.quit();
    });
    loop_.run();
    // Descriptors are dispatched before timers; quit stops the round before the due timer runs.
    EXPECT_FALSE(timer_fired);

    loop_.run();
    EXPECT_TRUE(timer_fired);
}

TEST_F(EventLoopTest, ExceptionFromAnFdCallbackPropagatesOutOfRun) {
    Pipe pipe;
    pipe.writeByte();
    loop_.watchFd(pipe.readEnd(), POLLIN, [](short) { throw std::logic_error("bad fd"); });
    EXPECT_THROW(loop_.run(), std::logic_error);
    loop_.unwatchFd(pipe.readEnd());
}

// ---------------------------------------------------------------------------------------------------------
// Dynamic sources

TEST_F(EventLoopTest, DynamicSourceIsPreparedBeforeAndDispatchedAfterEveryPoll) {
    std::vector<std::string> calls;
    int rounds = 0;
    loop_.addDynamicSource(
        [&] {
            calls.push_back("prepare");
            // No descriptor, due at once: poll times out immediately.
            return EventLoop::PollRequest{-1, 0, EventLoop::Clock::now()};
        },
        [&](short revents) {
            calls.push_back("dispatch");
            EXPECT_EQ(revents, 0);
            if (++rounds == 3) {
                loop_.quit();
            }
        });
    loop_.run();
    EXPECT_EQ(calls, (std::vector<std::string>{"prepare", "dispatch", "prepare", "dispatch", "prepare",
                                               "dispatch"}));
}

TEST_F(EventLoopTest, DynamicSourceDeadlineWakesTheLoopWithoutAnyTimer) {
    // Only the far-away watchdog timer exists: the source's own deadline must wake poll.
    bool dispatched = false;
    loop_.addDynamicSource(
        [] {
            return EventLoop::PollRequest{-1, 0, EventLoop::Clock::now() + 1ms};
        },
        [&](short) {
            dispatched = true;
            loop_.quit();
        });
    loop_.run();
    EXPECT_TRUE(dispatched);
}

TEST_F(EventLoopTest, DynamicSourceReceivesTheEventsOfItsDescriptor) {
    Pipe pipe;
    pipe.writeByte();
    short seen = 0;
    loop_.addDynamicSource(
        [&] {
            return EventLoop::PollRequest{pipe.readEnd(), POLLIN, std::nullopt};
        },
        [&](short revents) {
            seen = revents;
            pipe.drain();
            loop_.quit();
        });
    loop_.run();
    EXPECT_TRUE(seen & POLLIN);
}

TEST_F(EventLoopTest, DynamicSourceCanChangeItsDescriptorBetweenRounds) {
    Pipe first;
    Pipe second;
    first.writeByte();
    second.writeByte();
    std::vector<int> polled;
    int round = 0;
    loop_.addDynamicSource(
        [&] {
            const int fd = round == 0 ? first.readEnd() : second.readEnd();
            polled.push_back(fd);
            return EventLoop::PollRequest{fd, POLLIN, std::nullopt};
        },
        [&](short revents) {
            EXPECT_TRUE(revents & POLLIN);
            if (++round == 2) {
                loop_.quit();
            }
        });
    loop_.run();
    EXPECT_EQ(polled, (std::vector<int>{first.readEnd(), second.readEnd()}));
}

TEST_F(EventLoopTest, DynamicSourcesAreDispatchedBeforeWatchedFds) {
    Pipe source_pipe;
    Pipe watched_pipe;
    source_pipe.writeByte();
    watched_pipe.writeByte();
    std::vector<std::string> order;
    loop_.addDynamicSource(
        [&] {
            return EventLoop::PollRequest{source_pipe.readEnd(), POLLIN, std::nullopt};
        },
        [&](short) {
            order.push_back("source");
            source_pipe.drain();
        });
    loop_.watchFd(watched_pipe.readEnd(), POLLIN, [&](short revents) {
        EXPECT_TRUE(revents & POLLIN);
        order.push_back("fd");
        watched_pipe.drain();
        loop_.quit();
    });
    loop_.run();
    EXPECT_EQ(order, (std::vector<std::string>{"source", "fd"}));
    loop_.unwatchFd(watched_pipe.readEnd());
}

TEST_F(EventLoopTest, QuitFromPrepareEndsRunWithoutPolling) {
    bool dispatched = false;
    loop_.addDynamicSource(
        [&] {
            loop_.quit();
            return EventLoop::PollRequest{};
        },
        [&](short) { dispatched = true; });
    loop_.run();
    EXPECT_FALSE(dispatched);
    EXPECT_FALSE(loop_.running());
}

TEST_F(EventLoopTest, QuitFromADispatchSkipsWatchedFds) {
    Pipe pipe;
    pipe.writeByte();
    bool fd_called = false;
    loop_.addDynamicSource(
        [] {
            return EventLoop::PollRequest{-1, 0, EventLoop::Clock::now()};
        },
        [&](short) { loop_.quit(); });
    loop_.watchFd(pipe.readEnd(), POLLIN, [&](short) { fd_called = true; });
    loop_.run();
    EXPECT_FALSE(fd_called);
    loop_.unwatchFd(pipe.readEnd());
}

TEST_F(EventLoopTest, FdCallbackCanAddADynamicSource) {
    // Three descriptors in ascending order: the lowest adds a source, the middle one stays idle, the highest
    // is ready. Were the middle one's events read one slot too far, it would see the highest one's POLLIN.
    Pipe pipes[3];
    int fds[3] = {pipes[0].readEnd(), pipes[1].readEnd(), pipes[2].readEnd()};
    std::sort(std::begin(fds), std::end(fds));
    const int adder = fds[0];
    const int idle = fds[1];
    const int ready = fds[2];
    for (const auto& pipe : pipes) {
        if (pipe.readEnd() != idle) {
            pipe.writeByte();
        }
    }
    bool idle_called = false;
    bool source_dispatched = false;
    loop_.watchFd(adder, POLLIN, [&](short) {
        loop_.unwatchFd(adder);
        loop_.addDynamicSource(
            [] {
                return EventLoop::PollRequest{-1, 0, EventLoop::Clock::now()};
            },
            [&](short) {
                source_dispatched = true;
                loop_.quit();
            });
    });
    loop_.watchFd(idle, POLLIN, [&](short) { idle_called = true; });
    loop_.watchFd(ready, POLLIN, [&](short) { loop_.unwatchFd(ready); });
    loop_.run();
    EXPECT_TRUE(source_dispatched);
    EXPECT_FALSE(idle_called);
    loop_.unwatchFd(idle);
}

} // namespace
} // namespace tau
