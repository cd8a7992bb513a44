#include "http_client.h"
#include "prometheus_server.h"
#include "run_loop.h"
#include "tau/event_loop.h"
#include "tau/metrics_http_server.h"
#include "tau/prometheus.h"
#include "test_support.h"

#include <arpa/inet.h>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <gtest/gtest.h>
#include <iterator>
#include <netinet/in.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <system_error>
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

// A server on a real loop; a client in another thread, since it blocks while the loop must keep serving.
class MetricsHttpServerTest : public testing::Test {
  protected:
    MetricsHttpServer& start(MetricsHttpServer::Limits limits = {}) {
        server_.emplace(
            loop_, "127.0.0.1:0",
            [this] {
                ++renders_;
                if (fail_render_) {
                    throw std::runtime_error("collector broke");
                }
                return body_;
            },
            limits);
        return *server_;
    }

    // Runs the loop until `request` (a blocking call) returns, at most `limit`.
    template <typename Request> auto whileServing(Request request, std::chrono::milliseconds limit = 15s) {
        auto result = std::async(std::launch::async, std::move(request));
        test::runUntil(
            loop_, [&] { return result.wait_for(0s) == std::future_status::ready; }, limit);
        if (result.wait_for(0s) != std::future_status::ready) {
            ADD_FAILURE() << "the request did not finish while the loop ran";
        }
        return result.get();
    }

    test::HttpResponse get(std::string_view method, std::string_view target) {
        const std::uint16_t port = server_->port();
        const std::string method_text(method);
        const std::string target_text(target);
        return whileServing([=] { return test::httpRequest(port, method_text, target_text); });
    }

    EventLoop loop_;
    std::string body_ = sampleBody();
    int renders_ = 0;
    bool fail_render_ = false;
    std::optional<MetricsHttpServer> server_;
};

// A connected TCP socket that sends nothing.
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

    // Whether the server has closed the connection (end of file, or a reset), without blocking.
    bool closedByServer() const {
        char byte = 0;
        const ssize_t n = ::recv(fd_, &byte, 1, MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
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
    const auto response = get("GET", "/metrics");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(response.body, body_);
    EXPECT_EQ(renders_, 1);
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
    EXPECT_EQ(renders_, 0);
}

TEST_F(MetricsHttpServerTest, OtherPathsAreNotFound) {
    start();
    EXPECT_EQ(get("GET", "/metrics/").status, 404);
    EXPECT_EQ(get("GET", "/favicon.ico").status, 404);
    EXPECT_EQ(get("POST", "/nowhere").status, 404);
    EXPECT_EQ(renders_, 0);
}

TEST_F(MetricsHttpServerTest, OtherMethodsAreNotAllowed) {
    start();
    for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
        const auto response = get(method, "/metrics");
        EXPECT_EQ(response.status, 405) << method;
        EXPECT_EQ(response.headers.at("allow"), "GET, HEAD") << method;
    }
    const auto with_body = whileServing([port = server_->port()] {
        return test::parseHttpResponse(test::exchange(
            port,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"));
    });
    EXPECT_EQ(with_body.status, 405);
    EXPECT_EQ(renders_, 0);
}

TEST_F(MetricsHttpServerTest, RenderFailureIsAServerError) {
    start();
    fail_render_ = true;
    EXPECT_EQ(get("GET", "/metrics").status, 500);
    fail_render_ = false;
    EXPECT_EQ(get("GET", "/metrics").status, 200);
}

TEST_F(MetricsHttpServerTest, OversizedRequestIsRefusedAndServingGoesOn) {
    start(MetricsHttpServer::Limits{.max_request_bytes = 4096});
    const std::string huge = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(64 * 1024, 'a') +
                             "\r\nConnection: close\r\n\r\n";
    const auto response = whileServing([port = server_->port(), huge] {
        // The server may close before reading everything; what it answered first still counts.
        try {
            return test::parseHttpResponse(test::exchange(port, huge));
        } catch (const std::runtime_error& e) {
            return test::HttpResponse{.status = -1, .headers = {}, .body = e.what()};
        }
    });
    EXPECT_TRUE(response.status == -1 || (response.status >= 400 && response.status < 500))
        << response.status << " " << response.body;
    EXPECT_EQ(renders_, 0);
    EXPECT_EQ(get("GET", "/metrics").status, 200);
}

TEST_F(MetricsHttpServerTest, SilentClientIsDroppedAfterTheTimeoutWhileOthersAreServed) {
    start(MetricsHttpServer::Limits{.max_connections = 4, .idle_timeout = 1s});
    SilentClient silent(server_->port());
    const auto connected = std::chrono::steady_clock::now();
    // Served while the silent connection is open.
    EXPECT_EQ(get("GET", "/metrics").status, 200);
    EXPECT_FALSE(silent.closedByServer());
    test::runUntil(
        loop_, [&] { return silent.closedByServer(); }, 10s);
    const auto held = std::chrono::steady_clock::now() - connected;
    EXPECT_TRUE(silent.closedByServer());
    EXPECT_GE(held, 900ms);
    EXPECT_LT(held, 5s);
    EXPECT_EQ(get("GET", "/metrics").status, 200);
}

TEST_F(MetricsHttpServerTest, ConnectionsOverTheLimitWaitForAFreeSlot) {
    start(MetricsHttpServer::Limits{.max_connections = 1, .idle_timeout = 1s});
    SilentClient silent(server_->port());
    // Let the server accept the silent client first, so that it holds the only slot.
    test::runUntil(
        loop_, [] { return false; }, 200ms);
    const auto asked = std::chrono::steady_clock::now();
    EXPECT_EQ(get("GET", "/metrics").status, 200);
    EXPECT_GE(std::chrono::steady_clock::now() - asked, 500ms);
    EXPECT_TRUE(silent.closedByServer());
}

TEST_F(MetricsHttpServerTest, AddressInUseIsAnErrorNamingIt) {
    start();
    const std::string taken = "127.0.0.1:" + std::to_string(server_->port());
    try {
        MetricsHttpServer second(loop_, taken, [] { return std::string(); });
        FAIL() << "a second server bound " << taken;
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EADDRINUSE);
        EXPECT_NE(std::string(e.what()).find(taken), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::strerror(EADDRINUSE)), std::string::npos) << e.what();
    }
    EXPECT_THROW(MetricsHttpServer(loop_, "localhost:0", [] { return std::string(); }),
                 std::invalid_argument);
    EXPECT_THROW(MetricsHttpServer(
                     loop_, "127.0.0.1:0", [] { return std::string(); },
                     MetricsHttpServer::Limits{.idle_timeout = 0s}),
                 std::invalid_argument);
}

TEST_F(MetricsHttpServerTest, ServesOnIpv6Loopback) {
    try {
        server_.emplace(loop_, "[::1]:0", [this] { return body_; });
    } catch (const std::system_error& e) {
        GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
    }
    const std::uint16_t port = server_->port();
    const auto raw = whileServing([port] {
        const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in6 address{};
        address.sin6_family = AF_INET6;
        address.sin6_port = htons(port);
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
        return received;
    });
    EXPECT_EQ(test::parseHttpResponse(raw).body, body_);
}

std::size_t openDescriptors() {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                                  std::filesystem::directory_iterator()));
}

TEST_F(MetricsHttpServerTest, DestructionLeavesNothingInTheLoop) {
    const std::size_t descriptors_before = openDescriptors();
    start(MetricsHttpServer::Limits{.idle_timeout = 30s});
    const std::uint16_t port = server_->port();
    SilentClient silent(port);
    test::runUntil(
        loop_, [] { return false; }, 100ms);
    server_.reset();
    EXPECT_EQ(loop_.pendingTimers(), 0u);
    EXPECT_TRUE(silent.closedByServer());
    try {
        test::httpRequest(port, "GET", "/metrics", 2s);
        ADD_FAILURE() << "still listening on " << port;
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::strerror(ECONNREFUSED)), std::string::npos) << e.what();
    }
    // The listening socket and libmicrohttpd's epoll descriptor are closed; only the client's is left.
    EXPECT_EQ(openDescriptors(), descriptors_before + 1);
    // The loop still runs with the server gone.
    test::runUntil(
        loop_, [] { return true; }, 1s);
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
    test::PrometheusServer prometheus({"127.0.0.1:" + std::to_string(server_->port())});
    const auto started = std::chrono::steady_clock::now();
    struct Seen {
        std::optional<double> score;
        std::optional<double> restarts;
        std::optional<double> up;
    };
    const Seen seen = whileServing(
        [&prometheus] {
            Seen result;
            if (!prometheus.waitReady(30s)) {
                return result;
            }
            result.score = prometheus.waitForValue("tau_health_score", 60s);
            result.restarts =
                prometheus.queryValue(R"(tau_service_restarts_total{service="web \"front\"\\end"})");
            result.up = prometheus.queryValue(R"(up{job="tau"})");
            return result;
        },
        100s);
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    ASSERT_TRUE(seen.score) << "no value after " << took.count() << " ms; prometheus said:\n"
                            << prometheus.log();
    EXPECT_EQ(*seen.score, 87.5);
    EXPECT_EQ(seen.restarts, 3.0);
    EXPECT_EQ(seen.up, 1.0);
    EXPECT_GE(renders_, 1);
    EXPECT_EQ(prometheus.stop(), 0) << prometheus.log();
    RecordProperty("scrape_seen_after_ms", std::to_string(took.count()));
}

} // namespace
} // namespace tau
