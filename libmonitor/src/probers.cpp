#include "tau/probers.h"

#include "tau/spawner.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>

namespace tau {

namespace {

// The first line of a probe command's output is part of the message; longer lines are cut here.
constexpr std::size_t kMaxOutputLine = 200;
// How much of an unexpected response is quoted in the message.
constexpr std::size_t kMaxQuoted = 40;

std::string errnoText(int error) {
    return std::strerror(error);
}

// Text from outside (a command's output, a server's response) made safe to put in a log line.
std::string printable(std::string_view text, std::size_t limit) {
    std::string result;
    for (char c : text.substr(0, limit)) {
        const auto byte = static_cast<unsigned char>(c);
        result += byte >= 0x20 && byte < 0x7f ? c : '?';
    }
    if (text.size() > limit) {
        result += "...";
    }
    return result;
}

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

// Only literal addresses: a name lookup would block the loop.
std::optional<SocketAddress> numericAddress(const std::string& host, std::uint16_t port) {
    const std::string literal = host == "localhost" ? "127.0.0.1" : host;
    SocketAddress address;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
    if (::inet_pton(AF_INET, literal.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        address.length = sizeof(sockaddr_in);
        return address;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
    if (::inet_pton(AF_INET6, literal.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        address.length = sizeof(sockaddr_in6);
        return address;
    }
    return std::nullopt;
}

std::string hostAndPort(const std::string& host, std::uint16_t port) {
    const bool ipv6 = host.find(':') != std::string::npos;
    return (ipv6 ? "[" + host + "]" : host) + ':' + std::to_string(port);
}

// A socket whose connect is under way or done, or the reason there is none.
struct Connecting {
    int fd = -1;
    std::string error;
};

Connecting startConnect(const std::string& host, std::uint16_t port, const std::string& address_text) {
    const std::optional<SocketAddress> address = numericAddress(host, port);
    if (!address) {
        return {-1, "\"" + printable(host, kMaxQuoted) + "\" is not a numeric address or localhost"};
    }
    const int fd = ::socket(address->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return {-1, "socket: " + errnoText(errno)};
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address->storage), address->length) < 0 &&
        errno != EINPROGRESS) {
        const int error = errno;
        ::close(fd);
        return {-1, "connect to " + address_text + ": " + errnoText(error)};
    }
    return {fd, {}};
}

// Once a connecting socket is writable: empty when it connected, the reason otherwise.
std::string connectResult(int fd, const std::string& address_text) {
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) {
        error = errno;
    }
    return error == 0 ? std::string() : "connect to " + address_text + ": " + errnoText(error);
}

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// exec

ExecProber::ExecProber(Reactor& reactor, std::vector<std::string> command)
    : reactor_(reactor), command_(std::move(command)) {}

ExecProber::~ExecProber() {
    cancel();
    // Nothing is left to watch them for us: they were sent SIGKILL, so the wait is short.
    for (int pidfd : dying_) {
        reactor_.unwatchFd(pidfd);
        siginfo_t info{};
        while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) < 0 &&
               errno == EINTR) {
        }
        ::close(pidfd);
    }
}

void ExecProber::start(std::chrono::steady_clock::duration, Done done) {
    done_ = std::move(done);
    auto report = [this](ProbeOutcome outcome) {
        report_timer_ = reactor_.addTimer(std::chrono::steady_clock::duration::zero(), [this, outcome] {
            report_timer_.reset();
            Done done = std::move(done_);
            done(outcome);
        });
    };
    int output[2];
    if (::pipe2(output, O_CLOEXEC) < 0) {
        report(ProbeOutcome::failed("cannot create a pipe for its output: " + errnoText(errno)));
        return;
    }
    // Only our end: the command writes as usual, blocking when the pipe is full.
    ::fcntl(output[0], F_SETFL, ::fcntl(output[0], F_GETFL) | O_NONBLOCK);

    SpawnRequest request;
    request.argv = command_;
    request.stdout_fd = output[1];
    request.stderr_fd = output[1];
    request.output_read_write = true;
    // A probe must not outlive the daemon that waits for it.
    request.parent_death_signal = SIGKILL;
    SpawnedProcess process;
    try {
        process = spawnProcess(request);
    } catch (const SpawnError& error) {
        ::close(output[0]);
        ::close(output[1]);
        report(ProbeOutcome::failed(std::string("cannot run: ") + error.what()));
        return;
    }
    ::close(output[1]);
    running_ = Running{process.pid, process.pidfd, output[0], {}, false};
    reactor_.watchFd(process.pidfd, POLLIN, [this](short) { onExit(); });
    reactor_.watchFd(output[0], POLLIN, [this](short) { readOutput(); });
}

void ExecProber::readOutput() {
    if (!running_ || running_->output_fd < 0) {
        return;
    }
    char buffer[4096];
    while (true) {
        const ssize_t count = ::read(running_->output_fd, buffer, sizeof buffer);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count <= 0) {
            if (count == 0 || errno != EAGAIN) {
                closeOutput();
            }
            return;
        }
        // The rest is read and dropped, so that a talkative command never blocks on a full pipe.
        for (ssize_t index = 0; index < count && !running_->line_complete; ++index) {
            if (buffer[index] == '\n' || running_->first_line.size() >= kMaxOutputLine) {
                running_->line_complete = true;
            } else {
                running_->first_line += buffer[index];
            }
        }
    }
}

void ExecProber::closeOutput() {
    if (running_ && running_->output_fd >= 0) {
        reactor_.unwatchFd(running_->output_fd);
        ::close(running_->output_fd);
        running_->output_fd = -1;
    }
}

void ExecProber::onExit() {
    if (!running_) {
        return;
    }
    // What it wrote just before exiting is still in the pipe.
    readOutput();
    // While the exited command is not reaped its PID, and so its process group's ID, cannot be reused.
    signalProcessGroup(running_->pid, SIGKILL);
    const std::optional<ExitStatus> status = reapPidfd(running_->pidfd);
    if (!status) {
        return;
    }
    reactor_.unwatchFd(running_->pidfd);
    ::close(running_->pidfd);
    closeOutput();
    std::string line = printable(running_->first_line, kMaxOutputLine);
    running_.reset();

    ProbeOutcome outcome = status->success()
                               ? ProbeOutcome::succeeded(line)
                               : ProbeOutcome::failed(status->describe() + (line.empty() ? "" : ": " + line));
    Done done = std::move(done_);
    done(outcome);
}

void ExecProber::cancel() {
    if (report_timer_) {
        reactor_.cancelTimer(*report_timer_);
        report_timer_.reset();
    }
    done_ = nullptr;
    if (!running_) {
        return;
    }
    closeOutput();
    signalProcessGroup(running_->pid, SIGKILL);
    // In case the command left its process group.
    signalPidfd(running_->pidfd, SIGKILL);
    const int pidfd = running_->pidfd;
    running_.reset();
    reactor_.unwatchFd(pidfd);
    if (reapPidfd(pidfd)) {
        ::close(pidfd);
        return;
    }
    dying_.push_back(pidfd);
    reactor_.watchFd(pidfd, POLLIN, [this, pidfd](short) { reapKilled(pidfd); });
}

void ExecProber::reapKilled(int pidfd) {
    if (!reapPidfd(pidfd)) {
        return;
    }
    reactor_.unwatchFd(pidfd);
    ::close(pidfd);
    dying_.erase(std::remove(dying_.begin(), dying_.end(), pidfd), dying_.end());
}

// ---------------------------------------------------------------------------------------------------------
// tcp

SocketProber::SocketProber(Reactor& reactor, std::string host, std::uint16_t port)
    : reactor_(reactor), address_text_(hostAndPort(host, port)), host_(std::move(host)), port_(port) {}

SocketProber::~SocketProber() {
    closeSocket();
}

void SocketProber::start(std::chrono::steady_clock::duration, Done done) {
    done_ = std::move(done);
    Connecting connecting = startConnect(host_, port_, address_text_);
    if (connecting.fd < 0) {
        report_timer_ = reactor_.addTimer(std::chrono::steady_clock::duration::zero(),
                                          [this, error = std::move(connecting.error)] {
                                              report_timer_.reset();
                                              finish(ProbeOutcome::failed(error));
                                          });
        return;
    }
    fd_ = connecting.fd;
    this->connecting();
}

void SocketProber::finish(ProbeOutcome outcome) {
    Done done = std::move(done_);
    cancel();
    if (done) {
        done(std::move(outcome));
    }
}

void SocketProber::cancel() {
    closeSocket();
}

void SocketProber::closeSocket() {
    if (report_timer_) {
        reactor_.cancelTimer(*report_timer_);
        report_timer_.reset();
    }
    done_ = nullptr;
    if (fd_ >= 0) {
        reactor_.unwatchFd(fd_);
        ::close(fd_);
        fd_ = -1;
    }
}

// ---------------------------------------------------------------------------------------------------------
// tcp

TcpProber::TcpProber(Reactor& reactor, std::string host, std::uint16_t port)
    : SocketProber(reactor, std::move(host), port) {}

void TcpProber::connecting() {
    reactor_.watchFd(fd_, POLLOUT, [this](short) { onWritable(); });
}

void TcpProber::onWritable() {
    const std::string error = connectResult(fd_, address_text_);
    finish(error.empty() ? ProbeOutcome::succeeded("connected to " + address_text_)
                         : ProbeOutcome::failed(error));
}

// ---------------------------------------------------------------------------------------------------------
// http

std::optional<ProbeOutcome> parseHttpStatusLine(std::string_view received, bool ended) {
    constexpr std::string_view prefix = "HTTP/";
    const std::size_t compared = std::min(received.size(), prefix.size());
    if (received.substr(0, compared) != prefix.substr(0, compared)) {
        const std::string_view firstLine = received.substr(0, received.find_first_of("\r\n"));
        return ProbeOutcome::failed("not an HTTP response: \"" + printable(firstLine, kMaxQuoted) + "\"");
    }
    const std::size_t end = received.find('\n');
    if (end == std::string_view::npos) {
        if (!ended) {
            return std::nullopt;
        }
        return ProbeOutcome::failed(received.empty() ? "connection closed without a response"
                                                     : "connection closed within the status line");
    }
    std::string_view line = received.substr(0, end);
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    // HTTP-version SP status-code [SP reason-phrase], as in RFC 9112.
    const bool wellFormed = line.size() >= 12 && isDigit(line[5]) && line[6] == '.' && isDigit(line[7]) &&
                            line[8] == ' ' && isDigit(line[9]) && isDigit(line[10]) && isDigit(line[11]) &&
                            (line.size() == 12 || line[12] == ' ');
    if (!wellFormed) {
        return ProbeOutcome::failed("not an HTTP status line: \"" + printable(line, kMaxQuoted) + "\"");
    }
    const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    const std::string text = "HTTP " + std::to_string(status);
    // Redirects count as success, as in Kubernetes: the service answered.
    return status >= 200 && status < 400 ? ProbeOutcome::succeeded(text) : ProbeOutcome::failed(text);
}

HttpProber::HttpProber(Reactor& reactor, std::string host, std::uint16_t port, std::string path,
                       std::string host_header)
    : SocketProber(reactor, std::move(host), port), path_(std::move(path)),
      host_header_(std::move(host_header)) {
    if (host_header_.empty()) {
        host_header_ = address_text_;
    }
}

void HttpProber::connecting() {
    connected_ = false;
    request_ = "GET " + path_ + " HTTP/1.1\r\nHost: " + host_header_ +
               "\r\nConnection: close\r\nUser-Agent: tau-monitor-probe\r\nAccept: */*\r\n\r\n";
    sent_ = 0;
    response_.clear();
    reactor_.watchFd(fd_, POLLOUT, [this](short) { onReady(); });
}

void HttpProber::onReady() {
    if (!connected_) {
        const std::string error = connectResult(fd_, address_text_);
        if (!error.empty()) {
            finish(ProbeOutcome::failed(error));
            return;
        }
        connected_ = true;
    }
    if (sent_ < request_.size()) {
        sendRequest();
    } else {
        readResponse();
    }
}

void HttpProber::sendRequest() {
    while (sent_ < request_.size()) {
        const ssize_t count = ::send(fd_, request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            finish(ProbeOutcome::failed("send to " + address_text_ + ": " + errnoText(errno)));
            return;
        }
        sent_ += static_cast<std::size_t>(count);
    }
    reactor_.watchFd(fd_, POLLIN, [this](short) { onReady(); });
}

void HttpProber::readResponse() {
    char buffer[kMaxStatusLine];
    while (true) {
        const std::size_t room = kMaxStatusLine - response_.size();
        const ssize_t count = ::recv(fd_, buffer, std::min(room, sizeof buffer), 0);
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            finish(ProbeOutcome::failed("receive from " + address_text_ + ": " + errnoText(errno)));
            return;
        }
        response_.append(buffer, static_cast<std::size_t>(count));
        if (std::optional<ProbeOutcome> outcome = parseHttpStatusLine(response_, count == 0)) {
            finish(std::move(*outcome));
            return;
        }
        if (response_.size() >= kMaxStatusLine) {
            finish(ProbeOutcome::failed("no complete status line in the first " +
                                        std::to_string(kMaxStatusLine) + " bytes of the response"));
            return;
        }
    }
}

void HttpProber::cancel() {
    SocketProber::cancel();
    request_.clear();
    response_.clear();
}

// ---------------------------------------------------------------------------------------------------------

std::unique_ptr<Prober> makeProber(Reactor& reactor, const ProbeConfig& config,
                                   const DbusProberFactory& dbus_prober) {
    switch (config.type) {
    case ProbeType::Exec:
        return std::make_unique<ExecProber>(reactor, config.command);
    case ProbeType::Tcp:
        return std::make_unique<TcpProber>(reactor, config.host, config.port);
    case ProbeType::Http:
        return std::make_unique<HttpProber>(reactor, config.host, config.port, config.path,
                                            config.host_header.value_or(std::string()));
    case ProbeType::Dbus:
        break;
    }
    if (!dbus_prober) {
        throw ProberError("a dbus probe of " + config.bus_name + " needs a D-Bus prober, and none was given");
    }
    std::unique_ptr<Prober> prober = dbus_prober(config);
    if (!prober) {
        throw ProberError("no D-Bus prober was made for a dbus probe of " + config.bus_name);
    }
    return prober;
}

} // namespace tau
