// Supervision in depth, end to end: readiness and watchdog with a daemon written against libsystemd,
// start timeouts, safe mode, output capture and orphan reaping, with the real tau-monitor.

#include "cli_json.h"
#include "test_support.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/resource.h>

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
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "db")["state"] == "running"; }))
        << daemon.output();
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
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "hangs")["pid"].get<int>() != 0; }));
    const int first = serviceEntry(daemon, "hangs")["pid"];
    ASSERT_TRUE(waitUntil([&] { return logged(daemon, "processes", "service.watchdog_timeout"); }))
        << daemon.output();
    ASSERT_TRUE(waitUntil([&] {
        const auto now = serviceEntry(daemon, "hangs");
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
    EXPECT_TRUE(waitUntil([&] { return serviceEntry(daemon, "slow")["state"] == "failed"; }))
        << daemon.output();
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
    EXPECT_EQ(serviceEntry(daemon, "fragile")["state"], "running");
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

// The history entries of one service, oldest first.
std::vector<json> historyOf(const RunningDaemon& daemon, const std::string& name) {
    std::vector<json> entries;
    for (const auto& entry : cliJson(daemon, {"recovery", "--history", "--service", name})) {
        entries.push_back(entry);
    }
    std::reverse(entries.begin(), entries.end());
    return entries;
}

bool historyHas(const RunningDaemon& daemon, const std::string& name, const std::string& key,
                const std::string& value) {
    const auto entries = historyOf(daemon, name);
    return std::any_of(entries.begin(), entries.end(),
                       [&](const json& entry) { return entry.value(key, "") == value; });
}

TEST(Supervision, ServiceOverItsMemoryLimitIsStoppedAsAResourceLimitFailure) {
    // The shell keeps 64 MiB in a variable, twice its limit, and then idles.
    RunningDaemon daemon(config(R"(
[process_management]
limit_check_interval_seconds = 0.2
limit_violation_samples = 2

[[service]]
name = "hog"
exec = ["/bin/sh", "-c", "hoard=$(head -c 67108864 /dev/zero | tr '\\0' x); sleep 3600"]
memory_limit_mb = 32
recovery = { strategy = "none" }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return historyHas(daemon, "hog", "failure_class", "resource_limit"); },
                          std::chrono::seconds(30)))
        << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return serviceEntry(daemon, "hog")["state"] == "failed"; }))
        << daemon.output();
}

TEST(Supervision, ServicesGetCgroupsWithTheirLimitsWhereTheKernelCanEnforceThem) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "confined"
exec = ["/bin/sleep", "3600"]
memory_limit_mb = 64
cpu_limit_percent = 25
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    const std::string enforced = "memory and CPU limits of the services: enforced by cgroup v2 under ";
    const std::string watched = "memory and CPU limits of the services: watched from /proc (";
    ASSERT_TRUE(waitUntil([&] {
        const auto out = daemon.output();
        return out.find(enforced) != std::string::npos || out.find(watched) != std::string::npos;
    })) << daemon.output();
    const auto out = daemon.output();
    if (const auto at = out.find(watched); at != std::string::npos) {
        GTEST_SKIP() << "no writable delegated cgroup v2 for the daemon here: "
                     << out.substr(at + watched.size(), out.find('\n', at) - at - watched.size() - 1);
    }
    const auto at = out.find(enforced) + enforced.size();
    const std::filesystem::path root = out.substr(at, out.find_first_of(" \n", at) - at);
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "confined")["state"] == "running"; }));
    const int pid = serviceEntry(daemon, "confined")["pid"];
    EXPECT_NE(readFile("/proc/" + std::to_string(pid) + "/cgroup").find("/services/confined\n"),
              std::string::npos);
    EXPECT_EQ(readFile(root / "services" / "confined" / "memory.max"), "67108864\n");
    EXPECT_EQ(readFile(root / "services" / "confined" / "cpu.max"), "25000 100000\n");
}

TEST(Supervision, DependentWaitsForItsDependencyWithoutSpendingItsRetries) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "db"
exec = ["/bin/sleep", "3600"]
recovery = { strategy = "restart_with_delay", delay_seconds = 1.5, jitter = 0, max_attempts = 10 }

[[service]]
name = "web"
exec = ["/bin/sleep", "3600"]
depends_on = ["db"]
recovery = { strategy = "restart", max_attempts = 1 }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "web")["state"] == "running"; }))
        << daemon.output();
    const int db_pid = serviceEntry(daemon, "db")["pid"];
    const int web_pid = serviceEntry(daemon, "web")["pid"];

    ASSERT_EQ(::kill(db_pid, SIGKILL), 0);
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "db")["state"] == "backoff"; }))
        << daemon.output();
    ASSERT_EQ(::kill(web_pid, SIGKILL), 0);
    EXPECT_TRUE(waitUntil([&] { return serviceEntry(daemon, "web")["state"] == "waiting"; }))
        << daemon.output();

    // db comes back after its delay, and web right after it, although its ladder allows a single attempt.
    EXPECT_TRUE(waitUntil([&] {
        const auto web = serviceEntry(daemon, "web");
        return web["state"] == "running" && web["pid"].get<int>() != web_pid;
    })) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return historyHas(daemon, "web", "action", "wait_for_dependency"); }))
        << daemon.output();
}

TEST(Supervision, WarmStandbyTakesOverWhenTheMainInstanceDies) {
    TempDir scratch;
    const auto promoted = scratch.path() / "promoted";
    RunningDaemon daemon(config(R"(
[[service]]
name = "web"
exec = ["/bin/sh", "-c", "if [ \"$TAU_STANDBY\" = 1 ]; then trap 'echo $$ > )" +
                                promoted.string() + R"(' USR1; fi; while :; do sleep 1 & wait $!; done"]
standby = { promote_signal = "SIGUSR1" }
recovery = { strategy = "restart_with_delay", delay_seconds = 0.2, jitter = 0, max_attempts = 10 }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    const auto standbyPid = [&] {
        const auto result =
            daemon.busctl({"get-property", "org.tauos.Processes1", "/org/tauos/Processes1/service/web",
                           "org.tauos.Processes1.Service", "StandbyPID"});
        // "i 1234"
        return result.exit_code == 0 && result.out.size() > 2 ? std::stoi(result.out.substr(2)) : 0;
    };
    ASSERT_TRUE(waitUntil([&] { return standbyPid() != 0; })) << daemon.output();
    const int standby = standbyPid();
    const int main_pid = serviceEntry(daemon, "web")["pid"];

    ASSERT_EQ(::kill(main_pid, SIGKILL), 0);
    EXPECT_TRUE(waitUntil([&] { return serviceEntry(daemon, "web")["pid"].get<int>() == standby; }))
        << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return readFile(promoted) == std::to_string(standby) + "\n"; }))
        << "the standby never got its promote signal\n"
        << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return historyHas(daemon, "web", "action", "promote_standby"); }));
    // And a new standby follows.
    EXPECT_TRUE(waitUntil([&] { return standbyPid() != 0 && standbyPid() != standby; })) << daemon.output();
}

TEST(Supervision, DaemonRaisesItsDescriptorLimitButServicesKeepTheUsualOne) {
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max <= 1024) {
        GTEST_SKIP() << "the hard limit on descriptors is " << saved.rlim_max << ": nothing to raise";
    }
    TempDir scratch;
    const auto reported = scratch.path() / "nofile";
    rlimit lowered = saved;
    lowered.rlim_cur = 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
    RunningDaemon daemon(config(R"(
[[service]]
name = "counter"
exec = ["/bin/sh", "-c", "ulimit -Sn > )" +
                                reported.string() + R"(; exec sleep 3600"]
)"));
    ::setrlimit(RLIMIT_NOFILE, &saved);
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return readFile(reported) == "1024\n"; })) << readFile(reported);
    const auto limits = readFile("/proc/" + std::to_string(daemon.pid()) + "/limits");
    const auto line = limits.substr(limits.find("Max open files"));
    EXPECT_EQ(line.substr(0, line.find('\n')).find(" 1024 "), std::string::npos) << line;
}

TEST(Supervision, ReportedProbeFailureRecoversTheServiceAsAProbeFailure) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "web"
exec = ["/bin/sleep", "3600"]
recovery = { strategy = "restart", max_attempts = 5 }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "web")["state"] == "running"; }));
    const int first = serviceEntry(daemon, "web")["pid"];
    const auto report = [&](const std::string& failure_class) {
        return daemon.busctl({"call", "org.tauos.Processes1", "/org/tauos/Processes1", "org.tauos.Processes1",
                              "ReportFailure", "sss", "web", failure_class, "liveness probe failed 3 times"});
    };
    const auto wrong = report("exit");
    EXPECT_NE(wrong.exit_code, 0);
    EXPECT_NE(wrong.err.find("is not one of probe, resource_limit"), std::string::npos) << wrong.err;

    const auto result = report("probe");
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_TRUE(waitUntil([&] {
        const auto now = serviceEntry(daemon, "web");
        return now["state"] == "running" && now["pid"].get<int>() != first;
    })) << daemon.output();
    EXPECT_TRUE(waitUntil([&] { return historyHas(daemon, "web", "failure_class", "probe"); }))
        << daemon.output();
}

TEST(Supervision, CrashHistorySurvivesARestartOfTheSuite) {
    TempDir state;
    const std::string toml = R"(
[resource_monitoring]
enabled = false

[health_checking]
enabled = false

[crash_recovery]
session_state_path = ")" + state.path().string() +
                             R"("

[logging]
log_file_path = "@DIR@/log/tau.log"

[[service]]
name = "web"
exec = ["/bin/sleep", "3600"]
)";
    int crashed = 0;
    {
        RunningDaemon first(toml);
        ASSERT_TRUE(first.waitReady()) << first.output();
        ASSERT_TRUE(waitUntil([&] { return serviceEntry(first, "web")["state"] == "running"; }));
        crashed = serviceEntry(first, "web")["pid"];
        ASSERT_EQ(::kill(crashed, SIGKILL), 0);
        ASSERT_TRUE(waitUntil([&] {
            const auto entries = historyOf(first, "web");
            return !entries.empty() && entries.back()["pid"] == crashed &&
                   entries.back()["outcome"] == "running";
        })) << first.output();
        EXPECT_EQ(first.terminate(), 0);
    }
    RunningDaemon second(toml);
    ASSERT_TRUE(second.waitReady()) << second.output();
    const auto entries = historyOf(second, "web");
    EXPECT_TRUE(std::any_of(entries.begin(), entries.end(), [&](const json& entry) {
        return entry["pid"] == crashed && entry["signal"] == SIGKILL && entry["outcome"] == "running";
    })) << second.output();
}

TEST(Supervision, ARootKilledAndStartedAgainAdoptsTheServicesThatStillRun) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "ticker"
exec = ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"]

[[service]]
name = "quiet"
exec = ["/bin/sleep", "3600"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(
        waitUntil([&] { return servicePid(daemon, "ticker") != 0 && servicePid(daemon, "quiet") != 0; }));
    const pid_t ticker = servicePid(daemon, "ticker");
    const pid_t quiet = servicePid(daemon, "quiet");

    ASSERT_TRUE(daemon.killHard());
    EXPECT_TRUE(processExists(ticker)) << "a service must outlive the root that supervised it";
    EXPECT_TRUE(processExists(quiet));

    daemon.relaunch();
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_EQ(servicePid(daemon, "ticker"), ticker) << daemon.output();
    EXPECT_EQ(servicePid(daemon, "quiet"), quiet);
    EXPECT_EQ(serviceEntry(daemon, "ticker")["state"], "running");
    EXPECT_EQ(serviceEntry(daemon, "ticker")["restarts"], 0);
    // Its output, written on while no root read it, reaches the new root: the service never got SIGPIPE.
    const auto relaunched_at = daemon.output().size();
    EXPECT_TRUE(waitUntil([&] {
        return daemon.output().find("ticker[stdout]: tick", relaunched_at) != std::string::npos;
    })) << daemon.output();

    // A later crash of an adopted service is noticed and recovered.
    ASSERT_EQ(::kill(ticker, SIGKILL), 0);
    EXPECT_TRUE(waitUntil([&] {
        const auto entry = serviceEntry(daemon, "ticker");
        return entry["state"] == "running" && entry["pid"] != ticker && entry["pid"] != 0;
    })) << daemon.output();
    EXPECT_TRUE(waitUntil([&] {
        const auto entries = historyOf(daemon, "ticker");
        return !entries.empty() && entries.back()["pid"] == ticker && entries.back()["outcome"] == "running";
    })) << daemon.output();
    EXPECT_EQ(servicePid(daemon, "quiet"), quiet);
    EXPECT_EQ(daemon.terminate(), 0);
    EXPECT_FALSE(processExists(quiet));
}

TEST(Supervision, AServiceThatEndedWhileTheRootWasDownIsStartedAgainAndRecorded) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "web"
exec = ["/bin/sleep", "3600"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return servicePid(daemon, "web") != 0; }));
    const pid_t web = servicePid(daemon, "web");
    ASSERT_TRUE(daemon.killHard());
    ASSERT_EQ(::kill(web, SIGKILL), 0);
    ASSERT_TRUE(waitUntil([&] { return !processExists(web); }));

    daemon.relaunch();
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_TRUE(waitUntil([&] {
        const auto entry = serviceEntry(daemon, "web");
        return entry["state"] == "running" && entry["pid"] != web && entry["pid"] != 0;
    })) << daemon.output();
    EXPECT_TRUE(waitUntil([&] {
        const auto entries = historyOf(daemon, "web");
        return !entries.empty() && entries.back()["pid"] == web && entries.back()["outcome"] == "running";
    })) << daemon.output();
}

TEST(Supervision, ServiceOfProcessNamesTheServiceWhoseTreeHoldsAPid) {
    RunningDaemon daemon(config(R"(
[[service]]
name = "parent"
exec = ["/bin/sh", "-c", "sleep 3600 & wait"]
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    const auto treeOf = [&] {
        for (const auto& entry : cliJson(daemon, {"processes", "--tree"})) {
            if (entry["name"] == "parent") {
                return entry["tree"];
            }
        }
        return json::array();
    };
    ASSERT_TRUE(waitUntil([&] { return treeOf().size() == 2; })) << treeOf().dump();
    const auto ask = [&](int pid) {
        return daemon.busctl({"call", "org.tauos.Processes1", "/org/tauos/Processes1", "org.tauos.Processes1",
                              "ServiceOfProcess", "i", std::to_string(pid)});
    };
    for (const auto& process : treeOf()) {
        const auto answer = ask(process["pid"].get<int>());
        EXPECT_EQ(answer.exit_code, 0) << answer.err;
        EXPECT_EQ(answer.out, "s \"parent\"\n") << process.dump();
    }
    const auto stranger = ask(::getpid());
    EXPECT_NE(stranger.exit_code, 0);
    EXPECT_NE(stranger.err.find("belongs to no supervised service"), std::string::npos) << stranger.err;
}

} // namespace
} // namespace tau::test
