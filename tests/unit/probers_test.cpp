// The probers against real servers and commands, on a real event loop.

#include "run_loop.h"
#include "tau/probers.h"
#include "temp_dir.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <netinet/in.h>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Generous: the outcome of a loopback attempt takes milliseconds, but the machine may be busy.
constexpr auto kAttemptTimeout = 10s;

std::string findProgram(const std::string& name) {
    for (const char* directory : {"/usr/bin", "/bin"}) {
        const fs::path candidate = fs::path(directory) / name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate.string();
        }
    }
    ADD_FAILURE() << name << " is neither in /usr/bin nor in /bin";
    return name;
}

// Gone, or a zombie waiting for a parent that is not us.
bool processGone(pid_t pid) {
    if (::kill(pid, 0) < 0 && errno == ESRCH) {
        return true;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const std::size_t end = text.rfind(')');
    return end != std::string::npos && end + 2 < text.size() && text[end + 2] == 'Z';
}

std::size_t openDescriptors() {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        ++count;
    }
    return count;
}

std::optional<ProbeOutcome> attempt(EventLoop& loop, Prober& prober) {
    std::optional<ProbeOutcome> outcome;
    prober.start(kAttemptTimeout, [&](ProbeOutcome result) { outcome = std::move(result); });
    EXPECT_FALSE(outcome.has_value()) << "the outcome must come from the loop, not from start()";
    test::runUntil(loop, [&] { return outcome.has_value(); });
    EXPECT_TRUE(outcome.has_value()) << "no outcome within the bound";
    return outcome;
}

// A TCP socket bound to a free loopback port; listening or not.
class LoopbackSocket {
  public:
    explicit LoopbackSocket(bool listening) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
            (listening && ::listen(fd_, 16) < 0) ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
            ADD_FAILURE() << "cannot set up a loopback socket: " << std::strerror(errno);
            return;
        }
        port_ = ntohs(address.sin_port);
    }
    ~LoopbackSocket() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    LoopbackSocket(const LoopbackSocket&) = delete;
    LoopbackSocket& operator=(const LoopbackSocket&) = delete;

    int fd() const { return fd_; }
    std::uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// Answers every request with `response` once the request's head is in; with no response, never answers.
class TestHttpServer {
  public:
    TestHttpServer(EventLoop& loop, std::optional<std::string> response)
        : loop_(loop), response_(std::move(response)) {
        loop_.watchFd(socket_.fd(), POLLIN, [this](short) { accept(); });
    }
    ~TestHttpServer() {
        loop_.unwatchFd(socket_.fd());
        for (const auto& [fd, request] : clients_) {
            loop_.unwatchFd(fd);
            ::close(fd);
        }
    }

    std::uint16_t port() const { return socket_.port(); }
    const std::vector<std::string>& requests() const { return requests_; }
    // Connections the prober closed before this server did.
    unsigned closedByPeer() const { return closed_by_peer_; }

  private:
    void accept() {
        const int fd = ::accept4(socket_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        clients_[fd];
        loop_.watchFd(fd, POLLIN, [this, fd](short) { read(fd); });
    }

    void read(int fd) {
        char buffer[4096];
        const ssize_t count = ::recv(fd, buffer, sizeof buffer, 0);
        if (count <= 0) {
            if (count == 0 || (errno != EAGAIN && errno != EINTR)) {
                ++closed_by_peer_;
                close(fd);
            }
            return;
        }
        std::string& request = clients_[fd];
        request.append(buffer, static_cast<std::size_t>(count));
        if (request.find("\r\n\r\n") == std::string::npos) {
            return;
        }
        requests_.push_back(request);
        request.clear();
        if (!response_) {
            return;
        }
        ::send(fd, response_->data(), response_->size(), MSG_NOSIGNAL);
        close(fd);
    }

    void close(int fd) {
        loop_.unwatchFd(fd);
        ::close(fd);
        clients_.erase(fd);
    }

    EventLoop& loop_;
    LoopbackSocket socket_{true};
    std::optional<std::string> response_;
    std::map<int, std::string> clients_;
    std::vector<std::string> requests_;
    unsigned closed_by_peer_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// tcp

TEST(TcpProber, SucceedsAgainstAListeningSocket) {
    EventLoop loop;
    LoopbackSocket server(true);
    TcpProber prober(loop, "127.0.0.1", server.port());
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->success) << outcome->message;
    EXPECT_EQ(outcome->message, "connected to 127.0.0.1:" + std::to_string(server.port()));
}

TEST(TcpProber, LocalhostIsTheIpv4Loopback) {
    EventLoop loop;
    LoopbackSocket server(true);
    TcpProber prober(loop, "localhost", server.port());
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->success) << outcome->message;
}

TEST(TcpProber, AClosedPortIsConnectionRefused) {
    EventLoop loop;
    // Bound but not listening: the port stays ours, and nobody accepts on it.
    LoopbackSocket closed(false);
    TcpProber prober(loop, "127.0.0.1", closed.port());
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->message,
              "connect to 127.0.0.1:" + std::to_string(closed.port()) + ": Connection refused");
}

TEST(TcpProber, Ipv6Loopback) {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    socklen_t length = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
        ::listen(fd, 4) < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
        if (fd >= 0) {
            ::close(fd);
        }
        GTEST_SKIP() << "no IPv6 loopback here";
    }
    EventLoop loop;
    TcpProber prober(loop, "::1", ntohs(address.sin6_port));
    auto outcome = attempt(loop, prober);
    ::close(fd);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->success) << outcome->message;
    EXPECT_EQ(outcome->message, "connected to [::1]:" + std::to_string(ntohs(address.sin6_port)));
}

TEST(TcpProber, AHostNameIsNeverLookedUp) {
    EventLoop loop;
    TcpProber prober(loop, "example.com", 80);
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->message, "\"example.com\" is not a numeric address or localhost");
}

// ---------------------------------------------------------------------------------------------------------
// http

struct HttpCase {
    const char* name;
    std::string response;
    bool success;
    std::string message;
};

void PrintTo(const HttpCase& httpCase, std::ostream* out) {
    *out << httpCase.name;
}

class HttpProberAnswers : public testing::TestWithParam<HttpCase> {};

TEST_P(HttpProberAnswers, GivesTheOutcomeOfTheStatusLine) {
    EventLoop loop;
    TestHttpServer server(loop, GetParam().response);
    HttpProber prober(loop, "127.0.0.1", server.port(), "/healthz");
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->success, GetParam().success) << outcome->message;
    EXPECT_EQ(outcome->message, GetParam().message);
}

const HttpCase kHttpCases[] = {
    {"Ok", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, "HTTP 200"},
    {"Redirect", "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n", true, "HTTP 302"},
    {"HighestSuccess", "HTTP/1.1 399 Whatever\r\n\r\n", true, "HTTP 399"},
    {"NoReasonPhrase", "HTTP/1.0 204\r\n\r\n", true, "HTTP 204"},
    {"BareLineFeed", "HTTP/1.1 200 OK\n\n", true, "HTTP 200"},
    {"Unavailable", "HTTP/1.1 503 Service Unavailable\r\n\r\n", false, "HTTP 503"},
    {"NotFound", "HTTP/1.1 404 Not Found\r\n\r\n", false, "HTTP 404"},
    {"Informational", "HTTP/1.1 100 Continue\r\n\r\n", false, "HTTP 100"},
    {"NotHttp", "SSH-2.0-OpenSSH_9.2\r\n", false, "not an HTTP response: \"SSH-2.0-OpenSSH_9.2\""},
    {"BinaryGarbage", std::string("\x16\x03\x01\x00\xa5", 5), false, "not an HTTP response: \"?????\""},
    {"BadStatusCode", "HTTP/1.1 2x0 OK\r\n\r\n", false, "not an HTTP status line: \"HTTP/1.1 2x0 OK\""},
    {"ClosedWithoutAnswer", "", false, "connection closed without a response"},
    {"ClosedWithinTheStatusLine", "HTTP/1.1 20", false, "connection closed within the status line"},
    {"StatusLineBeyondTheLimit", "HTTP/1.1 200 " + std::string(5000, 'a'), false,
     "no complete status line in the first 4096 bytes of the response"},
};

INSTANTIATE_TEST_SUITE_P(Responses, HttpProberAnswers, testing::ValuesIn(kHttpCases),
                         [](const testing::TestParamInfo<HttpCase>& info) { return info.param.name; });

TEST(HttpProber, SendsAGetWithHostConnectionCloseAndUserAgent) {
    EventLoop loop;
    TestHttpServer server(loop, "HTTP/1.1 200 OK\r\n\r\n");
    HttpProber prober(loop, "127.0.0.1", server.port(), "/ready?deep=1");
    ASSERT_TRUE(attempt(loop, prober));
    ASSERT_EQ(server.requests().size(), 1U);
    const std::string& request = server.requests()[0];
    EXPECT_EQ(request.rfind("GET /ready?deep=1 HTTP/1.1\r\n", 0), 0U) << request;
    EXPECT_NE(request.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
              std::string::npos)
        << request;
    EXPECT_NE(request.find("\r\nConnection: close\r\n"), std::string::npos) << request;
    EXPECT_NE(request.find("\r\nUser-Agent: tau-monitor-probe\r\n"), std::string::npos) << request;
}

TEST(HttpProber, SendsTheConfiguredHostHeader) {
    EventLoop loop;
    TestHttpServer server(loop, "HTTP/1.1 200 OK\r\n\r\n");
    HttpProber prober(loop, "127.0.0.1", server.port(), "/", "web.internal");
    ASSERT_TRUE(attempt(loop, prober));
    ASSERT_EQ(server.requests().size(), 1U);
    EXPECT_NE(server.requests()[0].find("\r\nHost: web.internal\r\n"), std::string::npos)
        << server.requests()[0];
}

TEST(HttpProber, AClosedPortIsConnectionRefused) {
    EventLoop loop;
    LoopbackSocket closed(false);
    HttpProber prober(loop, "127.0.0.1", closed.port(), "/");
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->message,
              "connect to 127.0.0.1:" + std::to_string(closed.port()) + ": Connection refused");
}

TEST(HttpProber, AServerThatNeverAnswersTimesOutAndTheConnectionIsClosed) {
    EventLoop loop;
    SystemClock clock;
    TestHttpServer server(loop, std::nullopt);
    ProbeConfig config;
    config.type = ProbeType::Http;
    config.port = server.port();
    config.timeout_seconds = 0.2;
    config.failure_threshold = 1;
    std::vector<ProbeTransition> transitions;
    std::string message;
    ProbeScheduler scheduler(loop, clock, config, makeProber(loop, config),
                             [&](const ProbeTransition& transition, const ProbeTracker& tracker) {
                                 transitions.push_back(transition);
                                 message = tracker.lastOutcome()->message;
                             });
    scheduler.start();
    test::runUntil(loop, [&] { return !transitions.empty(); });
    ASSERT_EQ(transitions.size(), 1U);
    EXPECT_EQ(transitions[0].to, ProbeResult::Failure);
    EXPECT_EQ(message, "timed out after 0.2 s");
    EXPECT_EQ(server.requests().size(), 1U) << "the request was sent; only the answer never came";
    // The cancelled attempt left nothing open: the server sees its connection end.
    test::runUntil(loop, [&] { return server.closedByPeer() == 1; });
    EXPECT_EQ(server.closedByPeer(), 1U);
}

TEST(ParseHttpStatusLine, WaitsForACompleteLine) {
    EXPECT_EQ(parseHttpStatusLine("", false), std::nullopt);
    EXPECT_EQ(parseHttpStatusLine("HT", false), std::nullopt);
    EXPECT_EQ(parseHttpStatusLine("HTTP/1.1 200 O", false), std::nullopt);
    // Garbage is known as such from its first bytes.
    auto garbage = parseHttpStatusLine("<ht", false);
    ASSERT_TRUE(garbage);
    EXPECT_EQ(garbage->message, "not an HTTP response: \"<ht\"");
}

// ---------------------------------------------------------------------------------------------------------
// exec

TEST(ExecProber, ExitStatusZeroIsASuccess) {
    EventLoop loop;
    ExecProber prober(loop, {findProgram("true")});
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->success) << outcome->message;
    EXPECT_EQ(prober.runningPid(), 0);
}

TEST(ExecProber, AnyOtherExitIsAFailure) {
    EventLoop loop;
    ExecProber prober(loop, {findProgram("false")});
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->message, "exited with status 1");
}

TEST(ExecProber, TheFirstLineOfItsOutputJoinsTheMessage) {
    EventLoop loop;
    ExecProber prober(loop, {findProgram("sh"), "-c", "echo 'disk full' >&2; echo more; exit 2"});
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->message, "exited with status 2: disk full");
}

TEST(ExecProber, AProgramThatCannotRunIsAFailure) {
    EventLoop loop;
    ExecProber prober(loop, {"/nonexistent/probe"});
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_NE(outcome->message.find("cannot run: exec '/nonexistent/probe'"), std::string::npos)
        << outcome->message;
}

TEST(ExecProber, WhatTheCommandLeavesBehindIsKilled) {
    EventLoop loop;
    test::TempDir directory;
    const fs::path pidFile = directory.path() / "pid";
    ExecProber prober(loop, {findProgram("sh"), "-c", "sleep 60 & echo $! > '" + pidFile.string() + "'"});
    auto outcome = attempt(loop, prober);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->success) << outcome->message;
    const pid_t sleeper = std::stoi(test::readFile(pidFile));
    test::runUntil(loop, [&] { return processGone(sleeper); });
    EXPECT_TRUE(processGone(sleeper));
    if (!processGone(sleeper)) {
        ::kill(sleeper, SIGKILL);
    }
}

TEST(ExecProber, CancelKillsTheWholeProcessGroupAndReapsTheCommand) {
    EventLoop loop;
    test::TempDir directory;
    const fs::path pidFile = directory.path() / "pid";
    ExecProber prober(loop, {findProgram("sh"), "-c",
                             "sleep 60 & echo $! > '" + pidFile.string() + ".new'; mv '" + pidFile.string() +
                                 ".new' '" + pidFile.string() + "'; wait"});
    bool reported = false;
    prober.start(kAttemptTimeout, [&](ProbeOutcome) { reported = true; });
    const pid_t command = prober.runningPid();
    ASSERT_GT(command, 0);
    test::runUntil(loop, [&] { return fs::exists(pidFile); });
    ASSERT_TRUE(fs::exists(pidFile));
    const pid_t sleeper = std::stoi(test::readFile(pidFile));

    prober.cancel();
    EXPECT_EQ(prober.runningPid(), 0);
    test::runUntil(loop, [&] { return processGone(command) && processGone(sleeper); });
    EXPECT_TRUE(::kill(command, 0) < 0 && errno == ESRCH) << "the command is reaped, not left a zombie";
    EXPECT_TRUE(processGone(sleeper));
    EXPECT_FALSE(reported);
    if (!processGone(sleeper)) {
        ::kill(sleeper, SIGKILL);
    }
}

// A command that sleeps past the probe's timeout, run by the scheduler: recorded by PID as it starts.
class PidRecordingProber final : public Prober {
  public:
    PidRecordingProber(Reactor& reactor, std::vector<std::string> command, std::vector<pid_t>& pids)
        : inner_(reactor, std::move(command)), pids_(pids) {}
    void start(std::chrono::steady_clock::duration timeout, Done done) override {
        inner_.start(timeout, std::move(done));
        pids_.push_back(inner_.runningPid());
    }
    void cancel() override { inner_.cancel(); }

  private:
    ExecProber inner_;
    std::vector<pid_t>& pids_;
};

TEST(ExecProber, ACommandPastTheTimeoutIsKilled) {
    EventLoop loop;
    SystemClock clock;
    ProbeConfig config;
    config.type = ProbeType::Exec;
    config.command = {findProgram("sleep"), "60"};
    config.timeout_seconds = 0.2;
    config.failure_threshold = 1;
    std::vector<pid_t> pids;
    std::vector<ProbeTransition> transitions;
    std::string message;
    ProbeScheduler scheduler(loop, clock, config,
                             std::make_unique<PidRecordingProber>(loop, config.command, pids),
                             [&](const ProbeTransition& transition, const ProbeTracker& tracker) {
                                 transitions.push_back(transition);
                                 message = tracker.lastOutcome()->message;
                             });
    scheduler.start();
    test::runUntil(loop, [&] { return !transitions.empty(); });
    ASSERT_EQ(transitions.size(), 1U);
    EXPECT_EQ(transitions[0].to, ProbeResult::Failure);
    EXPECT_EQ(message, "timed out after 0.2 s");
    ASSERT_EQ(pids.size(), 1U);
    ASSERT_GT(pids[0], 0);
    test::runUntil(loop, [&] { return ::kill(pids[0], 0) < 0 && errno == ESRCH; });
    EXPECT_TRUE(::kill(pids[0], 0) < 0 && errno == ESRCH) << "pid " << pids[0] << " still exists";
    scheduler.stop();
}

TEST(ExecProber, DestroyedWithAnAttemptInFlightLeavesNoProcess) {
    EventLoop loop;
    pid_t command = 0;
    {
        ExecProber prober(loop, {findProgram("sleep"), "60"});
        prober.start(kAttemptTimeout, [](ProbeOutcome) { ADD_FAILURE() << "no outcome after destruction"; });
        command = prober.runningPid();
        ASSERT_GT(command, 0);
    }
    EXPECT_TRUE(::kill(command, 0) < 0 && errno == ESRCH);
}

// ---------------------------------------------------------------------------------------------------------
// All of them

TEST(Probers, NoDescriptorIsLeftOpenAfterAttemptsAndCancels) {
    EventLoop loop;
    LoopbackSocket listening(true);
    LoopbackSocket closed(false);
    TestHttpServer server(loop, "HTTP/1.1 200 OK\r\n\r\n");
    // The spawner reserves its descriptor slots once per process, on the first spawn.
    ExecProber first(loop, {findProgram("true")});
    attempt(loop, first);
    const std::size_t before = openDescriptors();
    {
        ExecProber exec(loop, {findProgram("true")});
        attempt(loop, exec);
        ExecProber sleeper(loop, {findProgram("sleep"), "60"});
        sleeper.start(kAttemptTimeout, [](ProbeOutcome) {});
        sleeper.cancel();
        TcpProber tcp(loop, "127.0.0.1", listening.port());
        attempt(loop, tcp);
        TcpProber refused(loop, "127.0.0.1", closed.port());
        attempt(loop, refused);
        HttpProber http(loop, "127.0.0.1", server.port(), "/");
        attempt(loop, http);
        http.start(kAttemptTimeout, [](ProbeOutcome) {});
        http.cancel();
        // The server closes its side of the cancelled connection once it sees the end.
        test::runUntil(loop, [&] { return server.closedByPeer() == 1; });
    }
    EXPECT_EQ(openDescriptors(), before);
}

TEST(MakeProber, BuildsTheProberOfEachType) {
    EventLoop loop;
    ProbeConfig config;
    config.type = ProbeType::Exec;
    config.command = {findProgram("true")};
    EXPECT_NE(dynamic_cast<ExecProber*>(makeProber(loop, config).get()), nullptr);
    config.type = ProbeType::Tcp;
    config.port = 1;
    EXPECT_NE(dynamic_cast<TcpProber*>(makeProber(loop, config).get()), nullptr);
    config.type = ProbeType::Http;
    EXPECT_NE(dynamic_cast<HttpProber*>(makeProber(loop, config).get()), nullptr);
}

TEST(MakeProber, ADbusProbeComesFromTheCallersFactory) {
    EventLoop loop;
    ProbeConfig config;
    config.type = ProbeType::Dbus;
    config.bus_name = "org.example.Web";
    EXPECT_THROW(makeProber(loop, config), ProberError);
    EXPECT_THROW(makeProber(loop, config, [](const ProbeConfig&) { return std::unique_ptr<Prober>(); }),
                 ProberError);

    std::string asked;
    Prober* made = nullptr;
    auto prober = makeProber(loop, config, [&](const ProbeConfig& probe) -> std::unique_ptr<Prober> {
        asked = probe.bus_name;
        auto exec = std::make_unique<ExecProber>(loop, std::vector<std::string>{findProgram("true")});
        made = exec.get();
        return exec;
    });
    EXPECT_EQ(asked, "org.example.Web");
    EXPECT_EQ(prober.get(), made);
}

} // namespace
} // namespace tau
