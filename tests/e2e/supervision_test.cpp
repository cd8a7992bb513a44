// Supervision in depth, end to end: readiness and watchdog with a daemon written against libsystemd,
// start timeouts, safe mode, output capture and orphan reaping, with the real tau-monitor.

#include "test_support.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

namespace tau::test {
namespace {

using json = nlohmann::json;

std::string config(const std::string& services) {
    return R"(
[resource_monitoring]
enabled = false

[health_checking]
enabled = false

[crash_recovery]
session_state_path = "@DIR@/state"

[logging]
log_file_path = "@DIR@/log/tau.log"
)" + services;
}

json cliJson(const RunningDaemon& daemon, std::vector<std::string> args) {
    args.insert(args.begin(), {"--format", "json"});
    const auto result = daemon.cli(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return json::parse(result.out);
}

json service(const RunningDaemon& daemon, const std::string& name) {
    for (const auto& entry : cliJson(daemon, {"processes"})) {
        if (entry["name"] == name) {
            return entry;
        }
    }
    return json::object();
}

// Whether the structured log holds a record of `service` with this event (and message, when given).
bool logged(const RunningDaemon& daemon, const std::string& service_name, const std::string& event,
            const std::string& message = "") {
    for (const auto& record : cliJson(daemon, {"logs", "--count", "500"})) {
        if (record["service"] == service_name && record["event"] == event &&
            (message.empty() || record["message"] == message)) {
            return true;
        }
    }
    return false;
}

std::string notifyService() {
    return TAU_TEST_NOTIFY_SERVICE;
}

TEST(Supervision, NotifyServiceIsRunningOnlyOnceItSaysReady) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "db"
type = "notify"
start_timeout_seconds = 20
exec = [")" + notifyService() + R"(", "--ready-after-ms", "400", "--status", "serving"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return service(daemon, "db")["state"] == "running"; })) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return logged(daemon, "processes", "service.ready"); })) << daemon.output();
}

TEST(Supervision, MissedWatchdogIsAbortedAndRecoveredLikeACrash) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "hangs"
type = "notify"
watchdog_seconds = 0.5
exec = [")" + notifyService() + R"(", "--watchdog", "--hang-after-ms", "300"]
recovery = { strategy = "restart", max_attempts = 100 }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return service(daemon, "hangs")["pid"].get<int>() != 0; }));
    const int first = service(daemon, "hangs")["pid"];
    ASSERT_TRUE(waitUntil([&] { return logged(daemon, "processes", "service.watchdog_timeout"); }))
        << daemon.output();
    ASSERT_TRUE(waitUntil([&] {
        const auto now = service(daemon, "hangs");
        return now["pid"].get<int>() != 0 && now["pid"].get<int>() != first;
    })) << daemon.output();
    // Aborted (SIGABRT) while pinging no more, and counted as a watchdog failure.
    EXPECT_TRUE(waitUntil([&] {
        for (const auto& entry : cliJson(daemon, {"recovery", "--history"})) {
            if (entry["service"] == "hangs" && entry["pid"] == first) {
                return entry["signal"] == SIGABRT && entry.value("failure_class", "") == "watchdog";
            }
        }
        return false;
    })) << daemon.output();
}

TEST(Supervision, ServiceThatNeverGetsReadyIsStoppedAfterItsStartTimeout) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "slow"
type = "notify"
start_timeout_seconds = 0.5
exec = [")" + notifyService() + R"(", "--no-ready"]
recovery = { strategy = "none" }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return service(daemon, "slow")["state"] == "failed"; })) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return logged(daemon, "processes", "service.start_timeout"); }))
        << daemon.output();
}

TEST(Supervision, LadderEntersSafeMode) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "fragile"
exec = ["/bin/sh", "-c", "exit 1"]

[service.recovery]
ladder = [
  { strategy = "restart", attempts = 1 },
  { strategy = "safe_mode", attempts = 3, delay_seconds = 0.1, jitter = 0.0 },
]

[service.safe_mode]
exec = ["/bin/sh", "-c", "echo running-in-safe-mode; exec sleep 3600"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] {
        return logged(daemon, "fragile", "service.output", "running-in-safe-mode");
    })) << daemon.output();
    EXPECT_EQ(service(daemon, "fragile")["state"], "running");
}

TEST(Supervision, OutputOfServicesIsCapturedIntoTheLog) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "talker"
exec = ["/bin/sh", "-c", "echo hello on stdout; echo trouble on stderr >&2; exec sleep 3600"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return logged(daemon, "talker", "service.output", "hello on stdout"); }))
        << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return logged(daemon, "talker", "service.output", "trouble on stderr"); }));
}

TEST(Supervision, OrphanedGrandchildrenAreReaped) {
    TempDir scratch;
    const auto pid_file = scratch.path() / "grandchild";
    RunningDaemon daemon(config(R"(
[[service]]
name = "forker"
exec = ["/bin/sh", "-c", "(sleep 0.3 & echo $! > ')" +
                                pid_file.string() + R"('); exec sleep 3600"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return !readFile(pid_file).empty(); }));
    const pid_t grandchild = std::stoi(readFile(pid_file));
    // Its parent exited at once, so it became the daemon's; once it exits, nothing may stay a zombie.
    EXPECT_TRUE(waitUntil([&] { return !std::filesystem::exists("/proc/" + std::to_string(grandchild)); }))
        << "pid " << grandchild << " is still there\n"
        << readFile("/proc/" + std::to_string(grandchild) + "/stat");
}

} // namespace
} // namespace tau::test
