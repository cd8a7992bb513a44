#include "tau/metrics_http_server.h"

#include "tau/prometheus.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

namespace tau {
namespace {

constexpr std::string_view kIndexPage =
    "<!DOCTYPE html>\n<html><head><title>tau-monitor</title></head>\n"
    "<body><h1>tau-monitor</h1><p><a href=\"/metrics\">Metrics</a></p></body>"
    "</html>\n";

// Both families in one storage, as bind(2) takes them.
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

SocketAddress toSocketAddress(const ListenAddress& address) {
    SocketAddress result;
    if (address.ipv6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(address.port);
        ::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr);
        result.length = sizeof(sockaddr_in6);
    } else {
        auto* in4 = reinterpret_cast<sockaddr_in*>(&result.storage);
        in4->sin_family = AF_INET;
        in4->sin_port = htons(address.port);
        ::inet_pton(AF_INET, address.host.c_str(), &in4->sin_addr);
        result.length = sizeof(sockaddr_in);
    }
    return result;
}

// Bound and listening, non-blocking; ours to close until libmicrohttpd takes it. Binding here rather than
// in libmicrohttpd gives the caller the real errno.
int listenOn(const ListenAddress& address, std::string_view text) {
    const SocketAddress socket_address = toSocketAddress(address);
    const int fd = ::socket(socket_address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "metrics endpoint " + std::string(text));
    }
    const int on = 1;
    // A restarted daemon takes its port back while connections of the previous one sit in TIME_WAIT.
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&socket_address.storage), socket_address.length) < 0 ||
        ::listen(fd, 64) < 0) {
        const int error = errno;
        ::close(fd);
        throw std::system_error(error, std::generic_category(),
                                "metrics endpoint cannot listen on " + std::string(text));
    }
    return fd;
}

std::uint16_t boundPort(int fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) < 0) {
        throw std::system_error(errno, std::generic_category(), "getsockname");
    }
    return storage.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port)
                                         : ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

MHD_Result queue(MHD_Connection* connection, unsigned status, std::string body, std::string_view content_type,
                 std::string_view allow = {}) {
    auto owned = std::make_unique<std::string>(std::move(body));
    MHD_Response* response = MHD_create_response_from_buffer_with_free_callback_cls(
        owned->size(), owned->data(), [](void* text) { delete static_cast<std::string*>(text); },
        owned.get());
    if (response == nullptr) {
        return MHD_NO;
    }
    owned.release();
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, std::string(content_type).c_str());
    if (!allow.empty()) {
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, std::string(allow).c_str());
    }
    const MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

} // namespace

// libmicrohttpd calls back through C function pointers; nothing may unwind through them.
struct MetricsHttpServer::Callbacks {
    static MHD_Result answer(void* cls, MHD_Connection* connection, const char* url, const char* method,
                             const char* /*version*/, const char* /*upload_data*/,
                             std::size_t* /*upload_size*/, void** /*request_state*/) noexcept {
        auto& server = *static_cast<MetricsHttpServer*>(cls);
        const std::string_view path(url);
        const std::string_view verb(method);
        const bool known_path = path == "/metrics" || path == "/";
        try {
            if (!known_path) {
                return queue(connection, MHD_HTTP_NOT_FOUND, "Not found: try /metrics\n", "text/plain");
            }
            if (verb != MHD_HTTP_METHOD_GET && verb != MHD_HTTP_METHOD_HEAD) {
                return queue(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET and HEAD\n", "text/plain",
                             "GET, HEAD");
            }
            if (path == "/") {
                return queue(connection, MHD_HTTP_OK, std::string(kIndexPage), "text/html; charset=utf-8");
            }
            std::string body = server.render_();
            ++server.requests_served_;
            return queue(connection, MHD_HTTP_OK, std::move(body), prometheus::kContentType);
        } catch (const std::exception& e) {
            spdlog::error("metrics endpoint {}: answering {} {} failed: {}", server.address_, verb, path,
                          e.what());
        } catch (...) {
            spdlog::error("metrics endpoint {}: answering {} {} failed", server.address_, verb, path);
        }
        try {
            return queue(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error\n", "text/plain");
        } catch (...) {
            return MHD_NO; // out of memory: libmicrohttpd drops the connection
        }
    }

    static void log(void* cls, const char* format, va_list arguments) noexcept {
        char message[512];
        std::vsnprintf(message, sizeof message, format, arguments);
        std::string_view text(message);
        while (!text.empty() && text.back() == '\n') {
            text.remove_suffix(1);
        }
        try {
            // Mostly about clients that misbehave: worth seeing, not worth an alarm.
            spdlog::info("metrics endpoint {}: {}", static_cast<MetricsHttpServer*>(cls)->address_, text);
        } catch (...) {
            // A lost log line is no reason to take the daemon down.
        }
    }
};

MetricsHttpServer::MetricsHttpServer(Reactor& reactor, std::string_view listen_address, Render render,
                                     Limits limits)
    : reactor_(reactor), address_(listen_address), render_(std::move(render)) {
    const ListenAddress address = parseListenAddress(listen_address);
    // libmicrohttpd reads 0 as "no limit" or "no timeout"; a request always needs some room.
    if (limits.max_connections == 0 || limits.idle_timeout < std::chrono::seconds(1) ||
        limits.max_request_bytes < 1024) {
        throw std::invalid_argument("metrics endpoint " + address_ +
                                    ": needs at least one connection, a timeout of at least 1 s and "
                                    "room for a request of at least 1024 bytes");
    }
    const int listen_fd = listenOn(address, listen_address);
    port_ = boundPort(listen_fd);
    // With port 0 asked for, the address names the one the kernel chose, as clients must use it.
    address_ = (address.ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(port_);

    // No internal thread: MHD_run from the loop does the work. With epoll, one descriptor stands for the
    // listening socket and every connection.
    const unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (address.ipv6 ? MHD_USE_IPv6 : 0);
    daemon_ = MHD_start_daemon(
        // The logger comes first, or what the other options have to say goes to stderr.
        flags, 0, nullptr, nullptr, &Callbacks::answer, this, MHD_OPTION_EXTERNAL_LOGGER, &Callbacks::log,
        this, MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_CONNECTION_LIMIT, limits.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(limits.idle_timeout.count()),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, limits.max_request_bytes, MHD_OPTION_END);
    if (daemon_ == nullptr) {
        // Whether a daemon that failed to start closed the socket it was given depends on where it failed.
        if (::fcntl(listen_fd, F_GETFD) >= 0) {
            ::close(listen_fd);
        }
        throw std::runtime_error("metrics endpoint " + address_ + ": libmicrohttpd did not start");
    }
    const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == nullptr) {
        MHD_stop_daemon(daemon_);
        throw std::runtime_error("metrics endpoint " + address_ + ": libmicrohttpd has no epoll descriptor");
    }
    epoll_fd_ = info->epoll_fd;
    try {
        reactor_.watchFd(epoll_fd_, POLLIN, [this](short) { serve(); });
        armTimer();
    } catch (...) {
        reactor_.unwatchFd(epoll_fd_);
        MHD_stop_daemon(daemon_);
        throw;
    }
}

MetricsHttpServer::~MetricsHttpServer() {
    reactor_.unwatchFd(epoll_fd_);
    if (timer_) {
        reactor_.cancelTimer(*timer_);
    }
    MHD_stop_daemon(daemon_);
}

unsigned MetricsHttpServer::connections() const {
    return MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)->num_connections;
}

void MetricsHttpServer::serve() {
    const unsigned before = connections();
    MHD_run(daemon_);
    // At the connection limit libmicrohttpd takes the listening socket out of its epoll set, and puts it
    // back only at the start of a run: without a second run now, a client waiting in the backlog would
    // wake nobody once a slot is free.
    if (connections() < before) {
        MHD_run(daemon_);
    }
    armTimer();
}

// The epoll descriptor says when a socket is ready; the timer covers what it cannot: idle connections to
// close, and data libmicrohttpd has already read but not yet processed (a timeout of 0 then).
void MetricsHttpServer::armTimer() {
    if (timer_) {
        reactor_.cancelTimer(*timer_);
        timer_.reset();
    }
    MHD_UNSIGNED_LONG_LONG timeout_ms = 0;
    if (MHD_get_timeout(daemon_, &timeout_ms) == MHD_YES) {
        timer_ = reactor_.addTimer(std::chrono::milliseconds(timeout_ms), [this] {
            timer_.reset();
            serve();
        });
    }
}

} // namespace tau
