// End-to-end monitoring: the real tau-monitor measuring the real machine, scraped by a real Prometheus, and
// a liveness probe that drives a real recovery.

#include "cli_json.h"
#include "prometheus_server.h"
#include "test_support.h"

#include <cmath>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>

namespace tau::test {
namespace {

using json = nlohmann::json;

constexpr const char* kConfig = R"(
[resource_monitoring]
interval_seconds = 1
prometheus_listen = "127.0.0.1:0"

[crash_recovery]
session_state_path = "@DIR@/state"

[health_checking]
check_interval_seconds = 1
status_debounce_seconds = 0

[logging]
log_file_path = "@DIR@/log/tau.log"

[[service]]
name = "web"
exec = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
# Alive while the file exists.
liveness_probe = { type = "exec", command = ["/bin/test", "-e", "@DIR@/alive"], period_seconds = 1, failure_threshold = 2 }
)";

class Monitoring : public ::testing::Test {
  protected:
    void SetUp() override {
        daemon_ = std::make_unique<RunningDaemon>(kConfig);
        writeFile(daemon_->dir() / "alive", "");
        ASSERT_TRUE(daemon_->waitReady()) << daemon_->output();
        ASSERT_TRUE(waitUntil([&] { return servicePid(*daemon_, "web") != 0; })) << daemon_->output();
    }

    std::string metricsAddress() const {
        const auto property =
            daemon_->busctl({"get-property", "org.tauos.Resources1", "/org/tauos/Resources1",
                             "org.tauos.Resources1", "MetricsAddress"});
        EXPECT_EQ(property.exit_code, 0) << property.err;
        // s "127.0.0.1:40123"
        const auto open = property.out.find('"');
        return property.out.substr(open + 1, property.out.rfind('"') - open - 1);
    }

    std::unique_ptr<RunningDaemon> daemon_;
};

TEST_F(Monitoring, RealPrometheusScrapesTheDaemonAndQueriesTheHealthScore) {
    if (!PrometheusServer::available()) {
        GTEST_SKIP() << "prometheus is not on PATH (Debian package prometheus)";
    }
    const auto address = metricsAddress();
    ASSERT_TRUE(address.starts_with("127.0.0.1:")) << address;
    PrometheusServer prometheus({address});
    ASSERT_TRUE(prometheus.waitReady()) << prometheus.log();
    const auto score = prometheus.waitForValue("tau_health_score");
    ASSERT_TRUE(score) << prometheus.log();
    EXPECT_GE(*score, 0.0);
    EXPECT_LE(*score, 1.0);
    const auto health = cliJson(*daemon_, {"health"});
    EXPECT_NEAR(*score, health["score"].get<double>(),
                0.5); // both are recent evaluations of the same machine
    EXPECT_EQ(prometheus.waitForValue(R"(tau_service_up{service="web"})"), 1.0);
    const auto total = prometheus.waitForValue("node_memory_MemTotal_bytes");
    ASSERT_TRUE(total);
    EXPECT_EQ(*total, cliJson(*daemon_, {"resources", "--memory"})["memory"]["total_bytes"].get<double>());
}

// `free -b`: "Mem:  total used free shared buff/cache available".
TEST_F(Monitoring, MemoryAndDiskAgreeWithFreeAndDf) {
    ASSERT_TRUE(waitUntil([&] { return daemon_->cli({"resources"}).exit_code == 0; }));
    const auto resources = cliJson(*daemon_, {"resources"});
    const auto free = runCommand({"free", "-b"});
    ASSERT_EQ(free.exit_code, 0) << free.err;
    std::istringstream lines(free.out);
    std::string line;
    double total = 0, available = 0;
    while (std::getline(lines, line)) {
        if (line.starts_with("Mem:")) {
            std::istringstream fields(line.substr(4));
            double used = 0, unused = 0, shared = 0, cache = 0;
            fields >> total >> used >> unused >> shared >> cache >> available;
        }
    }
    ASSERT_GT(total, 0) << free.out;
    EXPECT_EQ(resources["memory"]["total_bytes"].get<double>(), total);
    const double free_used_percent = 100.0 * (total - available) / total;
    // Samples a second apart on a machine that runs other tests: a few points apart at most.
    EXPECT_NEAR(resources["memory"]["used_percent"].get<double>(), free_used_percent, 5.0);

    const auto df = runCommand({"df", "-B1", "--output=target,size,used,avail", "/"});
    ASSERT_EQ(df.exit_code, 0) << df.err;
    std::istringstream df_lines(df.out);
    std::getline(df_lines, line); // header
    std::string target;
    double size = 0, used = 0, avail = 0;
    df_lines >> target >> size >> used >> avail;
    ASSERT_EQ(target, "/") << df.out;
    bool found = false;
    for (const auto& disk : resources["disks"]) {
        if (disk["mount_point"] == "/") {
            found = true;
            EXPECT_EQ(disk["total_bytes"].get<double>(), size);
            EXPECT_NEAR(disk["used_percent"].get<double>(), 100.0 * used / (used + avail), 1.0);
        }
    }
    EXPECT_TRUE(found) << resources["disks"].dump();
}

TEST_F(Monitoring, AFailingLivenessProbeRestartsTheService) {
    const pid_t first = servicePid(*daemon_, "web");
    std::filesystem::remove(daemon_->dir() / "alive");
    ASSERT_TRUE(waitUntil(
        [&] {
            const pid_t now = servicePid(*daemon_, "web");
            return now != 0 && now != first;
        },
        std::chrono::seconds(30)))
        << daemon_->output();
    // Alive again, so that the new process is left alone.
    writeFile(daemon_->dir() / "alive", "");
    json probe_exit;
    ASSERT_TRUE(waitUntil([&] {
        for (const auto& entry : cliJson(*daemon_, {"recovery", "--history", "--service", "web"})) {
            if (entry["failure_class"] == "probe") {
                probe_exit = entry;
                return true;
            }
        }
        return false;
    })) << daemon_->output();
    EXPECT_NE(probe_exit.dump().find("liveness probe failed"), std::string::npos) << probe_exit.dump();
}

TEST_F(Monitoring, HistoryThresholdsAndTrendsAreServedAsJson) {
    // The series exists from the first sample on.
    ASSERT_TRUE(waitUntil([&] {
        return daemon_->cli({"resources", "--history", "memory_used_percent"}).exit_code == 0;
    }));
    const auto points = cliJson(*daemon_, {"resources", "--history", "memory_used_percent", "--since", "60"});
    for (const auto& point : points) {
        EXPECT_LE(point["min"].get<double>(), point["mean"].get<double>());
        EXPECT_LE(point["mean"].get<double>(), point["max"].get<double>());
    }
    const auto metrics = cliJson(*daemon_, {"resources", "--metrics"});
    EXPECT_FALSE(metrics.empty());
    const auto thresholds = cliJson(*daemon_, {"resources", "--thresholds"});
    bool memory_watched = false;
    for (const auto& threshold : thresholds)
        memory_watched |= threshold["metric"] == "memory_used_percent";
    EXPECT_TRUE(memory_watched) << thresholds.dump();
    EXPECT_TRUE(cliJson(*daemon_, {"resources", "--trends"}).is_array());
    const auto unknown = daemon_->cli({"resources", "--history", "no_such_series"});
    EXPECT_NE(unknown.exit_code, 0);
    EXPECT_NE(unknown.err.find("org.tauos.Error.NotFound"), std::string::npos) << unknown.err;
}

} // namespace
} // namespace tau::test
