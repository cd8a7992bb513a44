#pragma once
// A real Prometheus server for tests: it scrapes the given targets on loopback and answers instant queries
// on its HTTP API, from a temporary directory that goes with it. Its calls block, so a test whose targets
// are served by its own event loop makes them from another thread.

#include "temp_dir.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau::test {

// Where `program` is found in PATH, if anywhere.
std::optional<std::filesystem::path> findInPath(std::string_view program);

class PrometheusServer {
  public:
    // Whether a prometheus binary is on PATH; without one, tests that need it skip.
    static bool available() { return findInPath("prometheus").has_value(); }

    // Starts prometheus on a free loopback port, scraping every target ("127.0.0.1:9102") at /metrics every
    // `scrape_interval`. Throws std::runtime_error when it cannot be started.
    explicit PrometheusServer(const std::vector<std::string>& targets,
                              std::chrono::seconds scrape_interval = std::chrono::seconds(1));
    // stop(), if not done yet.
    ~PrometheusServer();
    PrometheusServer(const PrometheusServer&) = delete;
    PrometheusServer& operator=(const PrometheusServer&) = delete;

    std::uint16_t port() const { return port_; }
    pid_t pid() const { return pid_; }
    const std::filesystem::path& dir() const { return dir_.path(); }

    // Waits until its /-/ready answers 200; false on timeout or when it exited.
    bool waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
    // The value of the first sample an instant query returns; nullopt when there is none yet, or when the
    // server does not answer.
    std::optional<double> queryValue(const std::string& promql) const;
    // Polls queryValue until it returns a value that `accept` takes (any value when `accept` is empty), for
    // at most `timeout`; the last value seen otherwise, or nullopt.
    std::optional<double> waitForValue(const std::string& promql,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                       const std::function<bool(double)>& accept = {}) const;

    // SIGTERM, then SIGKILL when it has not exited within `grace`; its exit code, -1 when killed.
    int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
    std::string log() const; // what it printed on stdout and stderr

  private:
    TempDir dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = 0;
    int pidfd_ = -1;
    std::optional<int> exit_code_;
};

} // namespace tau::test
