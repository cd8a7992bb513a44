#include "tau/bus/bus_loop.h"

namespace tau::bus {

void attachToLoop(EventLoop& loop, sdbus::IConnection& connection) {
    auto drain = [&connection] {
        // A nested synchronous call can queue messages without waking the fd: drain until empty.
        while (connection.processPendingRequest()) {
        }
    };
    loop.addDynamicSource(
        [&connection, drain] {
            drain();
            const auto data = connection.getEventLoopPollData();
            EventLoop::PollRequest request{data.fd, data.events, std::nullopt};
            if (const auto relative = data.getRelativeTimeout()) {
                request.deadline = EventLoop::Clock::now() + *relative;
            }
            return request;
        },
        [drain](short) { drain(); });
}

} // namespace tau::bus
