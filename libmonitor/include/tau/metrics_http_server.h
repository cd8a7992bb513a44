#pragma once
// The HTTP endpoint Prometheus scrapes: GET and HEAD /metrics, served by libevent's evhttp on one thread of
// its own. libevent cannot hand its descriptors to the owner's event loop, so the owner never calls into
// the server while it serves: it publishes the exposition text whenever what it describes changes, and
// every request is answered from the latest text published.

#include "tau/config.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace tau {

class MetricsHttpServer {
  public:
    struct Limits {
        // Connections past this many wait in the listen backlog, unanswered, until one of the open ones
        // closes; a client sees its connect succeed and its answer come late (or its own timeout).
        unsigned max_connections = 16;
        // Without a byte in either direction for this long, a connection is closed.
        std::chrono::seconds idle_timeout{10};
        // Request line and headers together, and a body; larger requests are answered 400 and closed.
        std::size_t max_request_bytes = 16 * 1024;
    };

    // Listens at once and serves until destroyed. Throws std::invalid_argument for an address
    // parseListenAddress refuses or limits that leave no room for a request, and std::system_error naming
    // the address when it cannot be bound. Until the first publish, /metrics answers 503.
    MetricsHttpServer(std::string_view listen_address, Limits limits);
    explicit MetricsHttpServer(std::string_view listen_address)
        : MetricsHttpServer(listen_address, Limits{}) {}
    // Stops the thread, and closes every connection and the listening socket.
    ~MetricsHttpServer();
    MetricsHttpServer(const MetricsHttpServer&) = delete;
    MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

    // From any thread; requests that arrive afterwards see `text`.
    void publish(std::string text);

    std::uint16_t port() const { return port_; }            // the bound one, also when 0 was asked for
    const std::string& address() const { return address_; } // with the bound port
    // Answers to /metrics that carried a published text.
    std::size_t requestsServed() const { return requests_served_.load(); }

  private:
    struct Loop;
    friend struct Loop;

    std::shared_ptr<const std::string> latest() const;

    std::string address_;
    std::uint16_t port_ = 0;
    mutable std::mutex mutex_;
    std::shared_ptr<const std::string> published_; // guarded by mutex_
    std::atomic<std::size_t> requests_served_{0};
    // Everything of libevent's; touched by the serving thread only, except before it starts and after it
    // has been joined.
    std::unique_ptr<Loop> loop_;
    std::thread thread_;
};

} // namespace tau
