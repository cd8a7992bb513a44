#pragma once
// One thread, one loop: file descriptors (in an epoll set, so that a wake-up costs the same with thousands of
// services as with one), timers, and sources whose descriptor and deadline change from one iteration to the
// next (a D-Bus connection).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace tau {

// What domain logic needs of a loop; tests drive a fake one by hand.
class Reactor {
  public:
    using TimerId = std::uint64_t;
    using FdCallback = std::function<void(short revents)>;

    virtual ~Reactor() = default;
    virtual void watchFd(int fd, short events, FdCallback callback) = 0;
    virtual void unwatchFd(int fd) = 0;
    virtual TimerId addTimer(std::chrono::steady_clock::duration delay, std::function<void()> callback) = 0;
    virtual void cancelTimer(TimerId id) = 0;
};

class EventLoop final : public Reactor {
  public:
    using Clock = std::chrono::steady_clock;

    struct PollRequest {
        int fd = -1;
        short events = 0;
        std::optional<Clock::time_point> deadline; // wake up then even without an event
    };

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    void watchFd(int fd, short events, FdCallback callback) override;
    void unwatchFd(int fd) override;

    TimerId addTimer(Clock::duration delay, std::function<void()> callback) override;
    void cancelTimer(TimerId id) override;

    // `prepare` runs before every poll and says what to wait for; `dispatch` runs after every poll
    // (with the returned events, 0 on a timeout) so that the source can drain its queue.
    void addDynamicSource(std::function<PollRequest()> prepare, std::function<void(short revents)> dispatch);

    // Runs until quit(); exceptions from callbacks propagate to the caller of run().
    void run();
    void quit() { running_ = false; }
    bool running() const { return running_; }
    // Timers not yet due or cancelled: what would wake an idle process.
    std::size_t pendingTimers() const { return timers_.size(); }

  private:
    struct Timer {
        Clock::time_point due;
        std::function<void()> callback;
    };
    struct DynamicSource {
        std::function<PollRequest()> prepare;
        std::function<void(short)> dispatch;
    };

    void runDueTimers();

    int epoll_fd_ = -1;
    std::map<int, std::pair<short, FdCallback>> fds_;
    std::map<TimerId, Timer> timers_;
    std::vector<DynamicSource> dynamic_sources_;
    TimerId next_timer_id_ = 1;
    bool running_ = false;
};

} // namespace tau
