#include "tau/event_loop.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <poll.h>
#include <string>
#include <sys/epoll.h>
#include <system_error>
#include <unistd.h>

namespace tau {

// poll(2) and epoll(7) give POLLIN, POLLOUT, POLLERR, POLLHUP and POLLPRI the same bits.
static_assert(POLLIN == EPOLLIN && POLLOUT == EPOLLOUT && POLLERR == EPOLLERR && POLLHUP == EPOLLHUP &&
              POLLPRI == EPOLLPRI);

EventLoop::EventLoop() : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_create1");
    }
}

EventLoop::~EventLoop() {
    ::close(epoll_fd_);
}

void EventLoop::watchFd(int fd, short events, FdCallback callback) {
    epoll_event event{};
    event.events = static_cast<std::uint32_t>(static_cast<unsigned short>(events));
    event.data.fd = fd;
    // A descriptor closed without unwatchFd has left the set by itself; its number may come back.
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) < 0 &&
        (errno != EEXIST || ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) < 0)) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl " + std::to_string(fd));
    }
    fds_[fd] = {events, std::move(callback)};
}

void EventLoop::unwatchFd(int fd) {
    if (fds_.erase(fd) > 0) {
        // Fails harmlessly when the descriptor was closed first: it left the set then.
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    }
}

EventLoop::TimerId EventLoop::addTimer(Clock::duration delay, std::function<void()> callback) {
    const TimerId id = next_timer_id_++;
    timers_[id] = Timer{Clock::now() + delay, std::move(callback)};
    return id;
}

void EventLoop::cancelTimer(TimerId id) {
    timers_.erase(id);
}

void EventLoop::addDynamicSource(std::function<PollRequest()> prepare, std::function<void(short)> dispatch) {
    dynamic_sources_.push_back({std::move(prepare), std::move(dispatch)});
}

void EventLoop::runDueTimers() {
    const auto now = Clock::now();
    std::vector<std::pair<Clock::time_point, TimerId>> due;
    for (const auto& [id, timer] : timers_) {
        if (timer.due <= now) {
            due.emplace_back(timer.due, id);
        }
    }
    // Earliest deadline first; timers due at the same moment run in the order they were added.
    std::sort(due.begin(), due.end());
    for (const auto& [when, id] : due) {
        // A callback may cancel a timer that is due in the same round.
        auto it = timers_.find(id);
        if (it == timers_.end()) {
            continue;
        }
        auto callback = std::move(it->second.callback);
        timers_.erase(it);
        callback();
    }
}

void EventLoop::run() {
    running_ = true;
    while (running_) {
        std::vector<pollfd> pollfds;
        std::optional<Clock::time_point> deadline;
        for (const auto& [id, timer] : timers_) {
            if (!deadline || timer.due < *deadline) {
                deadline = timer.due;
            }
        }
        const std::size_t polled_sources = dynamic_sources_.size();
        for (std::size_t i = 0; i < polled_sources; ++i) {
            const auto prepare = dynamic_sources_[i].prepare;
            const PollRequest request = prepare();
            if (request.deadline && (!deadline || *request.deadline < *deadline)) {
                deadline = request.deadline;
            }
            pollfds.push_back({request.fd, request.events, 0});
        }
        if (!running_) {
            break;
        }
        pollfds.push_back({epoll_fd_, POLLIN, 0});

        int timeout_ms = -1;
        if (deadline) {
            const auto remaining = *deadline - Clock::now();
            // Round up so that a timer is never polled for with a zero timeout over and over.
            timeout_ms =
                remaining <= Clock::duration::zero()
                    ? 0
                    : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(remaining).count());
        }
        const int ready = ::poll(pollfds.data(), pollfds.size(), timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "poll");
        }

        // A callback may add sources; those are polled from the next round on.
        for (std::size_t i = 0; i < polled_sources && running_; ++i) {
            // A copy: adding a source while this one runs may move the vector's elements.
            const auto dispatch = dynamic_sources_[i].dispatch;
            dispatch(pollfds[i].revents);
        }
        if (running_ && (pollfds.back().revents & POLLIN) != 0) {
            // More than this many ready at once are served in the next rounds.
            std::array<epoll_event, 64> events{};
            const int count = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
            for (int i = 0; i < count && running_; ++i) {
                // The callback of an earlier descriptor may have removed this one.
                auto it = fds_.find(events[static_cast<std::size_t>(i)].data.fd);
                if (it != fds_.end()) {
                    auto callback = it->second.second;
                    callback(static_cast<short>(events[static_cast<std::size_t>(i)].events));
                }
            }
        }
        if (running_) {
            runDueTimers();
        }
    }
}

} // namespace tau
