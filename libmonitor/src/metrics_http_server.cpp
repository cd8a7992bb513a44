#include "tau/metrics_http_server.h"

#include "tau/prometheus.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>
#include <vector>

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

// Bound and listening, non-blocking; ours to close until evhttp takes it. Binding here rather than in
// evhttp gives the caller the real errno.
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

const char* reasonPhrase(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

// Content-Length is set here, as evhttp gives none for HEAD and GET over HTTP/1.0; and evhttp 2.1 would send
// the body after an answer to HEAD, so none is given to it then.
void reply(evhttp_request* request, int status, std::string_view body, const char* content_type,
           const char* allow = nullptr) {
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Content-Type", content_type);
    evhttp_add_header(headers, "Content-Length", std::to_string(body.size()).c_str());
    if (allow != nullptr) {
        evhttp_add_header(headers, "Allow", allow);
    }
    if (evhttp_request_get_command(request) == EVHTTP_REQ_HEAD) {
        body = {};
    }
    evbuffer* buffer = evbuffer_new();
    if (buffer == nullptr || evbuffer_add(buffer, body.data(), body.size()) != 0) {
        if (buffer != nullptr) {
            evbuffer_free(buffer);
        }
        evhttp_send_error(request, 500, nullptr);
        return;
    }
    evhttp_send_reply(request, status, reasonPhrase(status), buffer);
    evbuffer_free(buffer);
}

} // namespace

// libevent calls back through C function pointers on the serving thread; nothing may unwind through them.
struct MetricsHttpServer::Loop {
    explicit Loop(MetricsHttpServer& server, unsigned max_connections)
        : owner(server), connection_limit(max_connections) {}

    ~Loop() {
        // The listener goes first, so that connections closing below do not enable it again.
        if (bound != nullptr) {
            evhttp_del_accept_socket(http, bound);
            bound = nullptr;
        }
        for (bufferevent* connection : unadopted) {
            bufferevent_decref(connection);
        }
        if (http != nullptr) {
            evhttp_free(http);
        }
        if (wake != nullptr) {
            event_free(wake);
        }
        if (adopt != nullptr) {
            event_free(adopt);
        }
        // Also runs what libevent deferred of freeing the connections, which closes their sockets.
        if (base != nullptr) {
            event_base_free(base);
        }
        if (wake_fd >= 0) {
            ::close(wake_fd);
        }
    }
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    void run() noexcept {
        if (event_base_dispatch(base) < 0) {
            try {
                spdlog::error("metrics endpoint {}: the event loop failed; /metrics is no longer served",
                              owner.address_);
            } catch (...) {
                // Nothing left to tell it with.
            }
        }
    }

    static void onWake(evutil_socket_t fd, short, void* self) noexcept {
        std::uint64_t count = 0;
        [[maybe_unused]] const ssize_t n = ::read(fd, &count, sizeof count);
        event_base_loopbreak(static_cast<Loop*>(self)->base);
    }

    // evhttp has no hook for a connection's start; its bufferevent is made here instead. The connection
    // it belongs to exists only once evhttp has finished accepting, so it is looked up just after.
    static bufferevent* onAccept(event_base* base, void* arg) noexcept {
        auto& self = *static_cast<Loop*>(arg);
        bufferevent* connection = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (connection == nullptr) {
            return nullptr; // evhttp then tries itself, or drops the connection
        }
        try {
            self.unadopted.push_back(connection);
        } catch (...) {
            return connection; // uncounted, which only matters while the limit is reached
        }
        // Held until the lookup, which must see whether evhttp has already freed it.
        bufferevent_incref(connection);
        ++self.connections;
        if (self.connections >= self.connection_limit && self.bound != nullptr) {
            // The rest wait in the kernel's backlog rather than occupy memory here; evconnlistener stops
            // accepting at once when its callback disables it.
            evconnlistener_disable(evhttp_bound_socket_get_listener(self.bound));
        }
        event_active(self.adopt, EV_TIMEOUT, 0);
        return connection;
    }

    // evhttp passes each connection as the argument of its bufferevent's callbacks; freeing a bufferevent
    // clears them.
    static void onAdopt(evutil_socket_t, short, void* arg) noexcept {
        auto& self = *static_cast<Loop*>(arg);
        std::vector<bufferevent*> pending;
        pending.swap(self.unadopted);
        for (bufferevent* connection : pending) {
            void* callback_argument = nullptr;
            bufferevent_getcb(connection, nullptr, nullptr, nullptr, &callback_argument);
            auto* evcon = static_cast<evhttp_connection*>(callback_argument);
            if (evcon != nullptr && evhttp_connection_get_bufferevent(evcon) == connection) {
                evhttp_connection_set_closecb(evcon, &Loop::onClose, &self);
            } else {
                self.released();
            }
            bufferevent_decref(connection);
        }
    }

    static void onClose(evhttp_connection*, void* arg) noexcept { static_cast<Loop*>(arg)->released(); }

    void released() noexcept {
        if (connections > 0) {
            --connections;
        }
        if (connections < connection_limit && bound != nullptr) {
            evconnlistener_enable(evhttp_bound_socket_get_listener(bound));
        }
    }

    static void onRequest(evhttp_request* request, void* arg) noexcept {
        auto& self = *static_cast<Loop*>(arg);
        try {
            self.answer(request);
            return;
        } catch (const std::exception& e) {
            try {
                spdlog::error("metrics endpoint {}: answering a request failed: {}", self.owner.address_,
                              e.what());
            } catch (...) {
                // A lost log line is no reason to take the daemon down.
            }
        } catch (...) {
        }
        evhttp_send_error(request, 500, nullptr);
    }

    void answer(evhttp_request* request) {
        const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
        const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
        const std::string_view path = raw_path != nullptr ? raw_path : "";
        const evhttp_cmd_type method = evhttp_request_get_command(request);
        if (path != "/metrics" && path != "/") {
            reply(request, 404, "Not found: try /metrics\n", "text/plain");
            return;
        }
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
            reply(request, 405, "Only GET and HEAD\n", "text/plain", "GET, HEAD");
            return;
        }
        if (path == "/") {
            reply(request, 200, kIndexPage, "text/html; charset=utf-8");
            return;
        }
        const std::shared_ptr<const std::string> text = owner.latest();
        if (!text) {
            reply(request, 503, "no sample yet\n", "text/plain");
            return;
        }
        // Counted before the answer leaves, so that a client that has it also sees it counted.
        owner.requests_served_.fetch_add(1);
        reply(request, 200, *text, std::string(prometheus::kContentType).c_str());
    }

    MetricsHttpServer& owner;
    const unsigned connection_limit;
    event_base* base = nullptr;
    evhttp* http = nullptr;
    evhttp_bound_socket* bound = nullptr;
    event* wake = nullptr;
    event* adopt = nullptr;
    int wake_fd = -1;
    unsigned connections = 0;
    std::vector<bufferevent*> unadopted;
};

MetricsHttpServer::MetricsHttpServer(std::string_view listen_address, Limits limits)
    : address_(listen_address) {
    const ListenAddress address = parseListenAddress(listen_address);
    if (limits.max_connections == 0 || limits.idle_timeout < std::chrono::seconds(1) ||
        limits.max_request_bytes < 1024) {
        throw std::invalid_argument("metrics endpoint " + address_ +
                                    ": needs at least one connection, a timeout of at least 1 s and "
                                    "room for a request of at least 1024 bytes");
    }
    loop_ = std::make_unique<Loop>(*this, limits.max_connections);
    Loop& loop = *loop_;
    const auto fail = [this](std::string_view what) {
        return std::runtime_error("metrics endpoint " + address_ + ": " + std::string(what));
    };

    // One thread uses the base; without evthread it takes no locks.
    loop.base = event_base_new();
    if (loop.base == nullptr) {
        throw fail("libevent has no event base");
    }
    loop.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop.wake_fd < 0) {
        throw std::system_error(errno, std::generic_category(), "metrics endpoint " + address_ + ": eventfd");
    }
    loop.wake = event_new(loop.base, loop.wake_fd, EV_READ | EV_PERSIST, &Loop::onWake, &loop);
    loop.adopt = event_new(loop.base, -1, 0, &Loop::onAdopt, &loop);
    if (loop.wake == nullptr || loop.adopt == nullptr || event_add(loop.wake, nullptr) != 0) {
        throw fail("libevent has no events");
    }
    loop.http = evhttp_new(loop.base);
    if (loop.http == nullptr) {
        throw fail("evhttp did not start");
    }
    evhttp_set_gencb(loop.http, &Loop::onRequest, &loop);
    evhttp_set_bevcb(loop.http, &Loop::onAccept, &loop);
    // Every method evhttp knows reaches onRequest, to be answered 405 with Allow rather than evhttp's 501.
    evhttp_set_allowed_methods(loop.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                              EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    const auto max_bytes = static_cast<ev_ssize_t>(limits.max_request_bytes);
    evhttp_set_max_headers_size(loop.http, max_bytes);
    evhttp_set_max_body_size(loop.http, max_bytes);
    const timeval idle{.tv_sec = static_cast<time_t>(limits.idle_timeout.count()), .tv_usec = 0};
    evhttp_set_timeout_tv(loop.http, &idle);

    const int listen_fd = listenOn(address, listen_address);
    try {
        port_ = boundPort(listen_fd);
    } catch (...) {
        ::close(listen_fd);
        throw;
    }
    loop.bound = evhttp_accept_socket_with_handle(loop.http, listen_fd);
    if (loop.bound == nullptr) {
        ::close(listen_fd);
        throw fail("evhttp does not accept on the socket");
    }
    // With port 0 asked for, the address names the one the kernel chose, as clients must use it.
    address_ = (address.ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(port_);

    // Signals stay with the owner's threads: the serving thread is born with all of them blocked, and a
    // write to a connection its client has closed fails with EPIPE instead of raising SIGPIPE.
    sigset_t all;
    sigset_t previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
        thread_ = std::thread([&loop] { loop.run(); });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

MetricsHttpServer::~MetricsHttpServer() {
    const std::uint64_t one = 1;
    // An eventfd counter cannot overflow from one write; nothing else would stop the thread.
    [[maybe_unused]] const ssize_t n = ::write(loop_->wake_fd, &one, sizeof one);
    thread_.join();
    loop_.reset();
}

void MetricsHttpServer::publish(std::string text) {
    auto shared = std::make_shared<const std::string>(std::move(text));
    {
        const std::lock_guard lock(mutex_);
        shared.swap(published_);
    }
    // The text replaced is freed here, outside the lock, unless a request still holds it.
}

std::shared_ptr<const std::string> MetricsHttpServer::latest() const {
    const std::lock_guard lock(mutex_);
    return published_;
}

} // namespace tau
