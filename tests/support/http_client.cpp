#include "http_client.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace tau::test {
namespace {

class Socket {
  public:
    Socket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        if (fd_ < 0) {
            throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        }
    }
    ~Socket() { ::close(fd_); }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int fd() const { return fd_; }

  private:
    int fd_;
};

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

void waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error("HTTP exchange timed out");
        }
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
        if (ready > 0) {
            return;
        }
        if (ready < 0 && errno != EINTR) {
            throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
        }
    }
}

std::string lowerCase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

} // namespace

std::string exchange(std::uint16_t port, std::string_view request, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Socket socket;
    const sockaddr_in address = loopback(port);
    if (::connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + ": " +
                                 std::strerror(errno));
    }
    std::size_t sent = 0;
    while (sent < request.size()) {
        waitFor(socket.fd(), POLLOUT, deadline);
        const ssize_t n = ::send(socket.fd(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR) {
            throw std::runtime_error(std::string("send: ") + std::strerror(errno));
        }
        sent += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    std::string received;
    char buffer[16384];
    for (;;) {
        waitFor(socket.fd(), POLLIN, deadline);
        const ssize_t n = ::recv(socket.fd(), buffer, sizeof buffer, 0);
        if (n == 0) {
            return received;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            // A server that refuses a request may reset the connection after its answer.
            if (errno == ECONNRESET && !received.empty()) {
                return received;
            }
            throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
        }
        received.append(buffer, static_cast<std::size_t>(n));
    }
}

HttpResponse parseHttpResponse(std::string_view raw) {
    const auto head_end = raw.find("\r\n\r\n");
    if (!raw.starts_with("HTTP/1.") || head_end == std::string_view::npos || raw.size() < 12) {
        throw std::runtime_error("not an HTTP response: " + std::string(raw.substr(0, 200)));
    }
    HttpResponse response;
    response.status = std::stoi(std::string(raw.substr(9, 3)));
    // The header lines, between the status line and the blank line.
    const auto status_end = raw.find("\r\n");
    std::string_view head =
        status_end == head_end ? std::string_view() : raw.substr(status_end + 2, head_end - status_end - 2);
    while (!head.empty()) {
        const auto line_end = std::min(head.find("\r\n"), head.size());
        const std::string_view line = head.substr(0, line_end);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') {
                value.remove_prefix(1);
            }
            response.headers[lowerCase(std::string(line.substr(0, colon)))] = std::string(value);
        }
        head.remove_prefix(std::min(head.size(), line_end + 2));
    }
    response.body = std::string(raw.substr(head_end + 4));
    return response;
}

HttpResponse httpRequest(std::uint16_t port, std::string_view method, std::string_view target,
                         std::chrono::milliseconds timeout) {
    const std::string request = std::string(method) + " " + std::string(target) +
                                " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                                "\r\nConnection: close\r\n\r\n";
    return parseHttpResponse(exchange(port, request, timeout));
}

std::string urlEncode(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string encoded;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (std::isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~') {
            encoded += c;
        } else {
            encoded += '%';
            encoded += kHex[byte >> 4];
            encoded += kHex[byte & 0x0F];
        }
    }
    return encoded;
}

std::uint16_t freeLoopbackPort() {
    Socket socket;
    sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    if (::bind(socket.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0 ||
        ::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&address), &length) < 0) {
        throw std::runtime_error(std::string("no free loopback port: ") + std::strerror(errno));
    }
    return ntohs(address.sin_port);
}

} // namespace tau::test
