#include "prometheus_server.h"

#include "http_client.h"
#include "test_support.h"

#include <cstdlib>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <stdexcept>
#include <unistd.h>

namespace tau::test {

std::optional<std::filesystem::path> findInPath(std::string_view program) {
    const char* path = std::getenv("PATH");
    std::string_view directories = path != nullptr ? path : "";
    while (!directories.empty()) {
        const auto colon = directories.find(':');
        const std::string_view directory = directories.substr(0, colon);
        directories.remove_prefix(colon == std::string_view::npos ? directories.size() : colon + 1);
        if (directory.empty()) {
            continue;
        }
        const std::filesystem::path candidate = std::filesystem::path(directory) / program;
        if (::access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate)) {
            return candidate;
        }
    }
    return std::nullopt;
}

PrometheusServer::PrometheusServer(const std::vector<std::string>& targets,
                                   std::chrono::seconds scrape_interval) {
    const auto binary = findInPath("prometheus");
    if (!binary) {
        throw std::runtime_error("prometheus is not on PATH");
    }
    const std::string interval = std::to_string(scrape_interval.count()) + "s";
    std::string config = "global:\n"
                         "  scrape_interval: " +
                         interval + "\n  scrape_timeout: " + interval +
                         "\nscrape_configs:\n"
                         "  - job_name: tau\n"
                         "    static_configs:\n"
                         "      - targets: [";
    for (std::size_t i = 0; i < targets.size(); ++i) {
        config += (i > 0 ? ", '" : "'") + targets[i] + "'";
    }
    config += "]\n";
    writeFile(dir() / "prometheus.yml", config);

    port_ = freeLoopbackPort();
    const std::vector<std::string> argv = {
        binary->string(),
        "--config.file=" + (dir() / "prometheus.yml").string(),
        "--storage.tsdb.path=" + (dir() / "data").string(),
        "--web.listen-address=127.0.0.1:" + std::to_string(port_),
        // Its start and every compaction are logged at info; warnings and errors are what a test needs.
        "--log.level=warn",
    };
    const int log_fd =
        ::open((dir() / "prometheus.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        throw std::runtime_error("cannot create " + (dir() / "prometheus.log").string());
    }
    try {
        pid_ = spawn(argv, {}, log_fd, log_fd);
    } catch (...) {
        ::close(log_fd);
        throw;
    }
    ::close(log_fd);
    pidfd_ = pidfdOpen(pid_);
}

PrometheusServer::~PrometheusServer() {
    stop();
    if (pidfd_ >= 0) {
        ::close(pidfd_);
    }
}

int PrometheusServer::stop(std::chrono::milliseconds grace) {
    if (exit_code_) {
        return *exit_code_;
    }
    ::kill(pid_, SIGTERM);
    auto status = waitExit(pid_, pidfd_, grace);
    if (!status) {
        ::kill(pid_, SIGKILL);
        status = waitExit(pid_, pidfd_, std::chrono::seconds(10));
    }
    exit_code_ = status ? exitCodeOf(*status) : -1;
    return *exit_code_;
}

bool PrometheusServer::waitReady(std::chrono::milliseconds timeout) const {
    return waitUntil(
               [&] {
                   if (!processExists(pid_)) {
                       return true;
                   }
                   try {
                       return httpRequest(port_, "GET", "/-/ready", std::chrono::seconds(2)).status == 200;
                   } catch (const std::runtime_error&) {
                       return false;
                   }
               },
               timeout) &&
           processExists(pid_);
}

std::optional<double> PrometheusServer::queryValue(const std::string& promql) const {
    HttpResponse response;
    try {
        response =
            httpRequest(port_, "GET", "/api/v1/query?query=" + urlEncode(promql), std::chrono::seconds(5));
    } catch (const std::runtime_error&) {
        return std::nullopt;
    }
    const auto answer = nlohmann::json::parse(response.body, nullptr, false);
    if (response.status != 200 || answer.is_discarded() || answer.value("status", "") != "success") {
        return std::nullopt;
    }
    const auto& result = answer["data"]["result"];
    if (!result.is_array() || result.empty() || !result[0]["value"].is_array() ||
        result[0]["value"].size() != 2 || !result[0]["value"][1].is_string()) {
        return std::nullopt;
    }
    // Values travel as strings, "NaN" and "+Inf" among them, which strtod reads too.
    return std::strtod(result[0]["value"][1].get<std::string>().c_str(), nullptr);
}

std::optional<double> PrometheusServer::waitForValue(const std::string& promql,
                                                     std::chrono::milliseconds timeout,
                                                     const std::function<bool(double)>& accept) const {
    std::optional<double> last;
    waitUntil(
        [&] {
            const auto value = queryValue(promql);
            if (value) {
                last = value;
            }
            return value && (!accept || accept(*value));
        },
        timeout);
    return last;
}

std::string PrometheusServer::log() const {
    return readFile(dir() / "prometheus.log");
}

} // namespace tau::test
