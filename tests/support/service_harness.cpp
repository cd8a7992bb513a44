#include "service_harness.h"

#include "tau/bus/bus_loop.h"
#include "tau/event_loop.h"

#include <future>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace tau::test {

ServiceHarness::ServiceHarness(Config config, Factory factory, std::string bus_name)
    : bus_(std::make_unique<bus::PrivateBus>(dir_.path() / "bus")), config_(std::move(config)) {
    wakeup_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    std::promise<void> ready;
    auto started = ready.get_future();
    server_ = std::thread([this, factory = std::move(factory), bus_name, ready = std::move(ready)]() mutable {
        bool announced = false;
        try {
            auto connection = connect();
            EventLoop loop;
            bus::attachToLoop(loop, *connection);
            bus::Authorizer authorizer(*connection, bus::AccessPolicy(geteuid(), {}));
            ServiceContext context{config_, *connection, loop, authorizer};
            auto service = factory(context);
            connection->requestName(bus_name);
            loop.watchFd(wakeup_fd_, POLLIN, [&loop](short) { loop.quit(); });
            ready.set_value();
            announced = true;
            loop.run();
            service.reset();
        } catch (...) {
            if (!announced) {
                ready.set_exception(std::current_exception());
            } else {
                std::terminate(); // a service that fails while serving fails the test run loudly
            }
        }
    });
    started.get();
    client_ = connect();
}

ServiceHarness::~ServiceHarness() {
    const uint64_t one = 1;
    [[maybe_unused]] auto ignored = write(wakeup_fd_, &one, sizeof one);
    server_.join();
    close(wakeup_fd_);
    client_.reset();
}

std::unique_ptr<sdbus::IConnection> ServiceHarness::connect() const {
    return sdbus::createSessionBusConnectionWithAddress(bus_->address());
}

} // namespace tau::test
