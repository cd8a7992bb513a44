#include "tau/event_loop.h"

#include <poll.h>

#include <cerrno>
#include <system_error>

namespace tau {

void EventLoop::watchFd(int fd, short events, FdCallback callback) {
    fds_[fd] = {events, std::move(callback)};
}

void EventLoop::unwatchFd(int fd) { fds_.erase(fd); }

EventLoop::TimerId EventLoop::addTimer(Clock::duration delay, std::function<void()> callback) {
    const TimerId id = next_timer_id_++;
    timers_[id] = Timer{Clock::now() + delay, std::move(callback)};
    return id;
}

void EventLoop::cancelTimer(TimerId id) { timers_.erase(id); }

void EventLoop::addDynamicSource(std::function<PollRequest()> prepare, std::function<void(short)> dispatch) {
    dynamic_sources_.push_back({std::move(prepare), std::move(dispatch)});
}

void EventLoop::runDueTimers() {
    const auto now = Clock::now();
    std::vector<TimerId> due;
    for (const auto& [id, timer] : timers_) {
        if (timer.due <= now) {
            due.push_back(id);
        }
    }
    for (const TimerId id : due) {
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
        std::vector<int> fd_order;
        std::optional<Clock::time_point> deadline;
        for (const auto& [id, timer] : timers_) {
            if (!deadline || timer.due < *deadline) {
                deadline = timer.due;
            }
        }
        for (auto& source : dynamic_sources_) {
            const PollRequest request = source.prepare();
            if (request.deadline && (!deadline || *request.deadline < *deadline)) {
                deadline = request.deadline;
            }
            pollfds.push_back({request.fd, request.events, 0});
        }
        if (!running_) {
            break;
        }
        for (const auto& [fd, entry] : fds_) {
            pollfds.push_back({fd, entry.first, 0});
            fd_order.push_back(fd);
        }

        int timeout_ms = -1;
        if (deadline) {
            const auto remaining = *deadline - Clock::now();
            // Round up so that a timer is never polled for with a zero timeout over and over.
            timeout_ms = remaining <= Clock::duration::zero()
                             ? 0
                             : static_cast<int>(
                                   std::chrono::ceil<std::chrono::milliseconds>(remaining).count());
        }
        const int ready = ::poll(pollfds.data(), pollfds.size(), timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "poll");
        }

        for (std::size_t i = 0; i < dynamic_sources_.size() && running_; ++i) {
            dynamic_sources_[i].dispatch(pollfds[i].revents);
        }
        for (std::size_t i = 0; i < fd_order.size() && running_; ++i) {
            const short revents = pollfds[dynamic_sources_.size() + i].revents;
            if (revents == 0) {
                continue;
            }
            // The callback of an earlier descriptor may have removed this one.
            auto it = fds_.find(fd_order[i]);
            if (it != fds_.end()) {
                auto callback = it->second.second;
                callback(revents);
            }
        }
        if (running_) {
            runDueTimers();
        }
    }
}

}  // namespace tau
