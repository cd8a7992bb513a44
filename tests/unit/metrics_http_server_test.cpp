#include "http_client.h"
#include "prometheus_server.h"
#include "tau/metrics_http_server.h"
#include "tau/prometheus.h"
#include "test_support.h"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <gtest/gtest.h>
#include <iterator>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace tau {
namespace {

using namespace std::chrono_literals;

std::string sampleBody() {
    prometheus::Exposition exposition;
    prometheus::MetricFamily score("tau_health_score", "Overall health, 0 to 100.",
                                   prometheus::MetricType::gauge);
    score.add(87.5);
    exposition.add(std::move(score));
    prometheus::MetricFamily restarts("tau_service_restarts_total", "Restarts of a service.",
                                      prometheus::MetricType::counter);
    restarts.add({{"service", "web \"front\"\\end"}}, 3).add({{"service", "db\nprimary"}}, 0);
    exposition.add(std::move(restarts));
    prometheus::MetricFamily odd("tau_test_odd_values", "Values that need care.",
                                 prometheus::MetricType::gauge);
    odd.add({{"kind", "nan"}}, std::nan(""))
        .add({{"kind", "inf"}}, HUGE_VAL)
        .add({{"kind", "-inf"}}, -HUGE_VAL)
        .add({{"kind", "tiny"}}, 5e-324)
        .add({{"kind", "big"}}, 1e300)
        .add({{"kind", "third"}}, 1.0 / 3);
    exposition.add(std::move(odd));
    return exposition.render();
}

// The server serves from its own thread, so a test makes its requests as blocking calls.
class MetricsHttpServerTest : public testing::Test {
  protected:
    MetricsHttpServer& start(MetricsHttpServer::Limits limits = {}) {
        server_.emplace("127.0.0.1:0", limits);
        server_->publish(body_);
        return *server_;
    }

    test::HttpResponse get(std::string_view method, std::string_view target) {
        return test::httpRequest(server_->port(), method, target);
    }

    std::string body_ = sampleBody();
    std::optional<MetricsHttpServer> server_;
};

// Waits at most `limit` for `fd` to turn readable or be hung up; false when it did not.
bool waitReadable(int fd, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd entry{fd, POLLIN | POLLRDHUP, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
        if (ready > 0) {
            return true;
        }
        if (ready == 0 || errno != EINTR) {
            return false;
        }
    }
}

// A connected TCP socket that sends nothing, or one request it keeps the connection open after.
class SilentClient {
  public:
    explicit SilentClient(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    }
    ~SilentClient() { ::close(fd_); }
    SilentClient(const SilentClient&) = delete;
    SilentClient& operator=(const SilentClient&) = delete;

    // Asks for /metrics on a connection kept alive and reads the answer: the server has then certainly
    // accepted the connection, which stays open and idle afterwards. The status, or -1.
    int askOnceAndLinger(std::chrono::milliseconds limit = 10s) {
        const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
            return -1;
        }
        std::string received;
        char buffer[16384];
        while (waitReadable(fd_, limit)) {
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            received.append(buffer, static_cast<std::size_t>(n));
            const auto head_end = received.find("\r\n\r\n");
            if (head_end == std::string::npos) {
                continue;
            }
            const test::HttpResponse response = test::parseHttpResponse(received);
            const auto length = response.headers.find("content-length");
            if (length != response.headers.end() &&
                received.size() - head_end - 4 >= std::stoul(length->second)) {
                return response.status;
            }
        }
        return -1;
    }

    // Whether the server has closed the connection (end of file, or a reset), without blocking.
    bool closedByServer() const {
        char byte = 0;
        const ssize_t n = ::recv(fd_, &byte, 1, MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }

    // Waits at most `limit` for the server to close the connection.
    bool waitClosedByServer(std::chrono::milliseconds limit) const {
        return waitReadable(fd_, limit) && closedByServer();
    }

  private:
    int fd_;
};

TEST(ListenAddressTest, ParsesIpv4AndBracketedIpv6) {
    const ListenAddress v4 = parseListenAddress("127.0.0.1:9102");
    EXPECT_EQ(v4.host, "127.0.0.1");
    EXPECT_EQ(v4.port, 9102);
    EXPECT_FALSE(v4.ipv6);
    const ListenAddress any = parseListenAddress("0.0.0.0:0");
    EXPECT_EQ(any.host, "0.0.0.0");
    EXPECT_EQ(any.port, 0);
    const ListenAddress v6 = parseListenAddress("[::1]:65535");
    EXPECT_EQ(v6.host, "::1");
    EXPECT_EQ(v6.port, 65535);
    EXPECT_TRUE(v6.ipv6);
}

TEST(ListenAddressTest, BadAddressesAreRejectedByName) {
    for (const char* bad : {"", "9102", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                            "127.0.0.1:91o2", "localhost:9102", "::1:9102", "[::1]9102", "[::1]:", "[::1",
                            "[127.0.0.1]:9102", "256.0.0.1:80", "127.0.0.1:+80", "127.0.0.1:0009102"}) {
        try {
            parseListenAddress(bad);
            ADD_FAILURE() << "accepted \"" << bad << "\"";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("\"" + std::string(bad) + "\""), std::string::npos)
                << e.what();
        }
    }
}

TEST_F(MetricsHttpServerTest, ServesMetricsWithTheExpositionContentType) {
    start();
    EXPECT_NE(server_->port(), 0);
    EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
    const auto response = get("GET", "/metrics");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(response.body, body_);
    EXPECT_EQ(server_->requestsServed(), 1u);
}

TEST_F(MetricsHttpServerTest, QueryStringIsIgnored) {
    start();
    EXPECT_EQ(get("GET", "/metrics?name[]=x").body, body_);
}

TEST_F(MetricsHttpServerTest, HeadGivesTheHeadersWithoutABody) {
    start();
    const auto response = get("HEAD", "/metrics");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(response.headers.at("content-length"), std::to_string(body_.size()));
    EXPECT_EQ(response.body, "");
}

TEST_F(MetricsHttpServerTest, RootLinksToMetrics) {
    start();
    const auto response = get("GET", "/");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.headers.at("content-type"), "text/html; charset=utf-8");
    EXPECT_NE(response.body.find("<a href=\"/metrics\">"), std::string::npos) << response.body;
    EXPECT_EQ(server_->requestsServed(), 0u);
}

TEST_F(MetricsHttpServerTest, OtherPathsAreNotFound) {
    start();
    EXPECT_EQ(get("GET", "/metrics/").status, 404);
    EXPECT_EQ(get("GET", "/favicon.ico").status, 404);
    EXPECT_EQ(get("POST", "/nowhere").status, 404);
    EXPECT_EQ(server_->requestsServed(), 0u);
}

TEST_F(MetricsHttpServerTest, OtherMethodsAreNotAllowed) {
    start();
    for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
        const auto response = get(method, "/metrics");
        EXPECT_EQ(response.status, 405) << method;
        EXPECT_EQ(response.headers.at("allow"), "GET, HEAD") << method;
    }
    const auto with_body = test::parseHttpResponse(test::exchange(
        server_->port(),
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"));
    EXPECT_EQ(with_body.status, 405);
    EXPECT_EQ(server_->requestsServed(), 0u);
}

TEST_F(MetricsHttpServerTest, BeforeTheFirstPublishMetricsIsUnavailable) {
    server_.emplace("127.0.0.1:0");
    const auto response = get("GET", "/metrics");
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(response.body, "no sample yet\n");
    EXPECT_EQ(get("HEAD", "/metrics").status, 503);
    EXPECT_EQ(get("GET", "/").status, 200);
    EXPECT_EQ(server_->requestsServed(), 0u);
    server_->publish(body_);
    EXPECT_EQ(get("GET", "/metrics").body, body_);
    EXPECT_EQ(server_->requestsServed(), 1u);
}

TEST_F(MetricsHttpServerTest, APublishReplacesWhatTheNextRequestSees) {
    start();
    server_->publish("tau_test_value 1\n");
    EXPECT_EQ(get("GET", "/metrics").body, "tau_test_value 1\n");
    server_->publish("tau_test_value 2\n");
    const auto response = get("GET", "/metrics");
    EXPECT_EQ(response.body, "tau_test_value 2\n");
    EXPECT_EQ(response.headers.at("content-length"), "17");
}

TEST_F(MetricsHttpServerTest, PublishingWhileServingGivesWholeTexts) {
    start();
    // Long enough that a torn copy would show.
    const std::string first(200000, 'a');
    const std::string second(100000, 'b');
    std::atomic<bool> done{false};
    std::thread publisher([&] {
        for (int i = 0; !done.load(); ++i) {
            server_->publish(i % 2 == 0 ? first : second);
            std::this_thread::yield();
        }
    });
    for (int i = 0; i < 20; ++i) {
        const auto response = get("GET", "/metrics");
        EXPECT_EQ(response.status, 200);
        EXPECT_TRUE(response.body == first || response.body == second || response.body == body_)
            << response.body.size() << " bytes";
    }
    done = true;
    publisher.join();
    EXPECT_EQ(server_->requestsServed(), 20u);
}

TEST_F(MetricsHttpServerTest, OversizedRequestIsRefusedAndServingGoesOn) {
    // With a single slot, a refused request that kept its slot would leave nothing to serve the next one.
    start(MetricsHttpServer::Limits{.max_connections = 1, .idle_timeout = 30s, .max_request_bytes = 4096});
    const std::string huge = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(64 * 1024, 'a') +
                             "\r\nConnection: close\r\n\r\n";
    test::HttpResponse response;
    // The server may close before reading everything; what it answered first still counts.
    try {
        response = test::parseHttpResponse(test::exchange(server_->port(), huge));
    } catch (const std::runtime_error& e) {
        response = test::HttpResponse{.status = -1, .headers = {}, .body = e.what()};
    }
    EXPECT_TRUE(response.status == -1 || response.status == 400) << response.status << " " << response.body;
    EXPECT_EQ(server_->requestsServed(), 0u);
    EXPECT_EQ(test::httpRequest(server_->port(), "GET", "/metrics", 5s).status, 200);
}

TEST_F(MetricsHttpServerTest, MalformedRequestsAreRefusedAndServingGoesOn) {
    start(MetricsHttpServer::Limits{.max_connections = 1, .idle_timeout = 30s});
    const std::string binary("\x00\xff\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 18);
    for (const std::string& bad :
         {std::string("\r\n\r\n"), std::string("GARBAGE\r\n\r\n"), std::string("GET\r\n\r\n"),
          std::string("FETCH /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
          std::string("GET /metrics HTTP/9.9\r\n\r\n"),
          std::string("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"),
          std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
          std::string("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
          std::string("GET /" + std::string(32 * 1024, 'x') + " HTTP/1.1\r\nHost: x\r\n\r\n"), binary}) {
        SCOPED_TRACE(testing::PrintToString(bad.substr(0, 40)));
        std::string raw;
        try {
            raw = test::exchange(server_->port(), bad, 5s);
        } catch (const std::runtime_error& e) {
            // Closed or reset without an answer is a refusal too; left hanging is not.
            EXPECT_EQ(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
            continue;
        }
        if (!raw.empty()) {
            const auto response = test::parseHttpResponse(raw);
            EXPECT_GE(response.status, 400) << raw;
        }
    }
    EXPECT_EQ(server_->requestsServed(), 0u);
    EXPECT_EQ(test::httpRequest(server_->port(), "GET", "/metrics", 5s).status, 200);
}

TEST_F(MetricsHttpServerTest, SlotsAreFreedWhenConnectionsClose) {
    // A slot that was not given back would make the next request wait for the 30 s timeout, past the 5 s
    // the client waits.
    start(MetricsHttpServer::Limits{.max_connections = 1, .idle_timeout = 30s});
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(test::httpRequest(server_->port(), i % 2 == 0 ? "GET" : "POST", "/metrics", 5s).status,
                  i % 2 == 0 ? 200 : 405)
            << i;
    }
    EXPECT_EQ(test::httpRequest(server_->port(), "GET", "/nowhere", 5s).status, 404);
    EXPECT_EQ(server_->requestsServed(), 10u);
}

TEST_F(MetricsHttpServerTest, SilentClientIsDroppedAfterTheTimeoutWhileOthersAreServed) {
    start(MetricsHttpServer::Limits{.max_connections = 4, .idle_timeout = 1s});
    SilentClient silent(server_->port());
    const auto connected = std::chrono::steady_clock::now();
    // Served while the silent connection is open.
    EXPECT_EQ(get("GET", "/metrics").status, 200);
    EXPECT_FALSE(silent.closedByServer());
    EXPECT_TRUE(silent.waitClosedByServer(10s));
    const auto held = std::chrono::steady_clock::now() - connected;
    EXPECT_GE(held, 900ms);
    EXPECT_EQ(get("GET", "/metrics").status, 200);
}

TEST_F(MetricsHttpServerTest, ConnectionsOverTheLimitWaitForAFreeSlot) {
    start(MetricsHttpServer::Limits{.max_connections = 1, .idle_timeout = 1s});
    // Answered and kept open: it holds the only slot until its idle timeout.
    SilentClient lingering(server_->port());
    ASSERT_EQ(lingering.askOnceAndLinger(), 200);
    EXPECT_FALSE(lingering.closedByServer());
    // Accepted by the kernel at once, answered only once the lingering connection is dropped.
    EXPECT_EQ(test::httpRequest(server_->port(), "GET", "/metrics", 10s).status, 200);
    EXPECT_TRUE(lingering.closedByServer());
    EXPECT_EQ(server_->requestsServed(), 2u);
}

TEST_F(MetricsHttpServerTest, AddressInUseIsAnErrorNamingIt) {
    start();
    const std::string taken = "127.0.0.1:" + std::to_string(server_->port());
    try {
        MetricsHttpServer second(taken);
        FAIL() << "a second server bound " << taken;
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EADDRINUSE);
        EXPECT_NE(std::string(e.what()).find(taken), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::strerror(EADDRINUSE)), std::string::npos) << e.what();
    }
    EXPECT_THROW(MetricsHttpServer("localhost:0"), std::invalid_argument);
    EXPECT_THROW(MetricsHttpServer("127.0.0.1:0", MetricsHttpServer::Limits{.idle_timeout = 0s}),
                 std::invalid_argument);
    EXPECT_THROW(MetricsHttpServer("127.0.0.1:0", MetricsHttpServer::Limits{.max_connections = 0}),
                 std::invalid_argument);
    // The first one goes on serving.
    EXPECT_EQ(get("GET", "/metrics").status, 200);
}

TEST_F(MetricsHttpServerTest, ServesOnIpv6Loopback) {
    try {
        server_.emplace("[::1]:0");
    } catch (const std::system_error& e) {
        GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
    }
    server_->publish(body_);
    EXPECT_EQ(server_->address(), "[::1]:" + std::to_string(server_->port()));
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    const timeval limit{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(server_->port());
    address.sin6_addr = in6addr_loopback;
    std::string received;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
        const std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
        if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
            char buffer[4096];
            for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
                received.append(buffer, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(fd);
    EXPECT_EQ(test::parseHttpResponse(received).body, body_);
}

std::size_t openDescriptors() {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                                  std::filesystem::directory_iterator()));
}

TEST_F(MetricsHttpServerTest, DestructionClosesEverythingAndLeavesNoDescriptorBehind) {
    const std::size_t descriptors_before = openDescriptors();
    start(MetricsHttpServer::Limits{.idle_timeout = 30s});
    const std::uint16_t port = server_->port();
    SilentClient lingering(port);
    ASSERT_EQ(lingering.askOnceAndLinger(), 200);
    SilentClient silent(port);
    server_.reset();
    EXPECT_TRUE(lingering.waitClosedByServer(5s));
    try {
        test::httpRequest(port, "GET", "/metrics", 2s);
        ADD_FAILURE() << "still listening on " << port;
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::strerror(ECONNREFUSED)), std::string::npos) << e.what();
    }
    // The listening socket, the connections' and the wake-up descriptor are closed; only the clients'
    // are left. A connection the server had not yet accepted went with the listening socket.
    EXPECT_TRUE(silent.waitClosedByServer(5s));
    EXPECT_EQ(openDescriptors(), descriptors_before + 2);
}

TEST_F(MetricsHttpServerTest, PromtoolAcceptsTheBody) {
    if (!test::findInPath("promtool")) {
        GTEST_SKIP() << "promtool is not on PATH (Debian package prometheus)";
    }
    start();
    const std::string served = get("GET", "/metrics").body;
    test::TempDir dir;
    test::writeFile(dir.path() / "metrics.txt", served);
    // promtool reads the exposition on its standard input.
    const auto result = test::runCommand(
        {"sh", "-c", "promtool check metrics < \"$0\"", (dir.path() / "metrics.txt").string()});
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    EXPECT_EQ(result.out + result.err, "") << served;
}

TEST_F(MetricsHttpServerTest, RealPrometheusScrapesTheEndpoint) {
    if (!test::PrometheusServer::available()) {
        GTEST_SKIP() << "prometheus is not on PATH (Debian package prometheus)";
    }
    start();
    test::PrometheusServer prometheus({server_->address()});
    const auto started = std::chrono::steady_clock::now();
    std::optional<double> score;
    if (prometheus.waitReady(30s)) {
        score = prometheus.waitForValue("tau_health_score", 60s);
    }
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    ASSERT_TRUE(score) << "no value after " << took.count() << " ms; prometheus said:\n" << prometheus.log();
    EXPECT_EQ(*score, 87.5);
    EXPECT_EQ(prometheus.queryValue(R"(tau_service_restarts_total{service="web \"front\"\\end"})"), 3.0);
    EXPECT_EQ(prometheus.queryValue(R"(up{job="tau"})"), 1.0);
    EXPECT_GE(server_->requestsServed(), 1u);
    EXPECT_EQ(prometheus.stop(), 0) << prometheus.log();
    RecordProperty("scrape_seen_after_ms", std::to_string(took.count()));
}

} // namespace
} // namespace tau
