#pragma once
// The HTTP endpoint Prometheus scrapes: GET and HEAD /metrics, served by libmicrohttpd without threads of its
// own, from the one thread of the event loop. Every request is answered within one iteration; a client that
// lingers holds a connection slot only until its idle timeout.

#include "tau/config.h"
#include "tau/event_loop.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

struct MHD_Daemon;

namespace tau {

class MetricsHttpServer {
  public:
    // Returns the exposition text; called on the loop's thread for every GET or HEAD /metrics. An exception
    // from it is logged and answered with 500.
    using Render = std::function<std::string()>;

    struct Limits {
        unsigned max_connections = 16;
        // Without a byte in either direction for this long, a connection is closed.
        std::chrono::seconds idle_timeout{10};
        // Request line and headers together; larger requests are refused with an error status.
        std::size_t max_request_bytes = 16 * 1024;
    };

    // Listens at once. Throws std::invalid_argument for an address parseListenAddress refuses, and
    // std::system_error naming the address when it cannot be bound.
    MetricsHttpServer(Reactor& reactor, std::string_view listen_address, Render render, Limits limits);
    MetricsHttpServer(Reactor& reactor, std::string_view listen_address, Render render)
        : MetricsHttpServer(reactor, listen_address, std::move(render), Limits{}) {}
    // Closes every connection and the listening socket, and leaves nothing behind in the reactor.
    ~MetricsHttpServer();
    MetricsHttpServer(const MetricsHttpServer&) = delete;
    MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

    std::uint16_t port() const { return port_; } // the bound one, also when 0 was asked for
    const std::string& address() const { return address_; } // with the bound port
    std::size_t requestsServed() const { return requests_served_; }

  private:
    struct Callbacks;

    void serve();
    unsigned connections() const;
    void armTimer();

    Reactor& reactor_;
    std::string address_;
    Render render_;
    MHD_Daemon* daemon_ = nullptr;
    int epoll_fd_ = -1;
    std::optional<Reactor::TimerId> timer_;
    std::uint16_t port_ = 0;
    std::size_t requests_served_ = 0;
};

} // namespace tau
