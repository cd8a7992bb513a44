// Recovery end to end, with the real tau-monitor: the root recovers crashes on its own while the recovery
// service is away and delivers the held reports once it is back, and the notify hook runs once per incident.

#include "cli_json.h"
#include "test_support.h"

#include <fstream>
#include <gtest/gtest.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sstream>

namespace tau::test {
namespace {

using json = nlohmann::json;

std::string config(const std::string& rest) {
    return R"(
[resource_monitoring]
enabled = false

[health_checking]
enabled = false

[logging]
log_file_path = "@DIR@/log/tau.log"
)" + rest;
}

json history(const RunningDaemon& daemon, const std::string& service_name) {
    return cliJson(daemon, {"recovery", "--history", "--service", service_name, "--count", "0"});
}

// The state letter of /proc/<pid>/stat: R, S, T (stopped), Z, ...; '?' when there is no such process.
char processState(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return '?';
    }
    const auto close_paren = line.rfind(')');
    return close_paren != std::string::npos && close_paren + 2 < line.size() ? line[close_paren + 2] : '?';
}

std::size_t countLines(const std::string& text) {
    std::size_t lines = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        ++lines;
    }
    return lines;
}

// How many records of the structured log have this event and this value in one of their fields.
std::size_t loggedCount(const RunningDaemon& daemon, const std::string& event, const std::string& field,
                        const std::string& value) {
    std::size_t count = 0;
    for (const auto& record : cliJson(daemon, {"logs", "--count", "1000"})) {
        if (record["event"] == event && record.contains("fields") &&
            record["fields"].value(field, "") == value) {
            ++count;
        }
    }
    return count;
}

// Prints what the daemon said when a test fails, to tell what went wrong.
class RecoveryEndToEnd : public ::testing::Test {
  protected:
    void TearDown() override {
        if (HasFailure() && daemon_) {
            std::cerr << "---- tau-monitor output ----\n" << daemon_->output() << "---- end ----\n";
        }
    }
    std::unique_ptr<RunningDaemon> daemon_;
};

TEST_F(RecoveryEndToEnd, CrashWhileRecoveryIsAwayIsRecoveredAndRecordedOnceItIsBack) {
    daemon_ = std::make_unique<RunningDaemon>(config(R"(
[crash_recovery]
session_state_path = "@DIR@/state"

[[service]]
name = "worker"
exec = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
recovery = { strategy = "restart", max_attempts = 3 }
)"));
    auto& daemon = *daemon_;
    ASSERT_TRUE(daemon.waitReady());
    ASSERT_TRUE(waitUntil([&] { return servicePid(daemon, "worker") != 0; }));
    // The recovery service is a child of the root like any configured service, listed by `processes`.
    const pid_t recovery = servicePid(daemon, "recovery");
    ASSERT_GT(recovery, 0);
    ASSERT_EQ(serviceEntry(daemon, "recovery")["state"], "running");
    // Nothing is in the history yet, so whatever shows up later comes from this test.
    ASSERT_TRUE(history(daemon, "worker").empty());

    // The recovery service stops answering: its process is there, its name still has an owner, but
    // nothing it is sent is read.
    ASSERT_EQ(kill(recovery, SIGSTOP), 0);
    ASSERT_TRUE(waitUntil([&] { return processState(recovery) == 'T'; }));

    const pid_t first = servicePid(daemon, "worker");
    ASSERT_GT(first, 0);
    ASSERT_EQ(kill(first, SIGKILL), 0);
    pid_t second = 0;
    ASSERT_TRUE(waitUntil([&] {
        const auto now = serviceEntry(daemon, "worker");
        second = now.value("pid", 0);
        return second != 0 && second != first && now["state"] == "running";
    }));
    // Restarted by the root alone: the recovery service was stopped the whole time, and is still the same
    // process.
    EXPECT_EQ(processState(recovery), 'T');
    EXPECT_EQ(servicePid(daemon, "recovery"), recovery);
    EXPECT_EQ(serviceEntry(daemon, "worker")["restarts"], 1);
    // The root's report of the crash goes unanswered until its call times out; from then on the root holds
    // its reports and tries again now and then, while the recovery service still reads nothing.
    ASSERT_TRUE(waitUntil(
        [&] { return daemon.output().find("keeping reports until it is back") != std::string::npos; }));
    ASSERT_EQ(processState(recovery), 'T');

    // The root brings back the recovery service it sees die. The report of the worker's crash never got
    // out of the stopped process's queue, so only the root's held copy can reach the history.
    ASSERT_EQ(kill(recovery, SIGKILL), 0);
    ASSERT_TRUE(waitUntil([&] {
        const pid_t now = servicePid(daemon, "recovery");
        return now != 0 && now != recovery;
    }));
    ASSERT_TRUE(daemon.waitReady());

    // The reports go out in order: the worker's exit, its recovery, then the exit of the recovery service
    // itself. Once that last one is recorded, everything held before it has been delivered.
    ASSERT_TRUE(waitUntil(
        [&] {
            for (const auto& entry : history(daemon, "recovery")) {
                if (entry["pid"] == recovery) {
                    return true;
                }
            }
            return false;
        },
        std::chrono::seconds(30)));
    const auto worker_history = history(daemon, "worker");
    ASSERT_EQ(worker_history.size(), 1u) << worker_history.dump(2);
    const auto& entry = worker_history[0];
    EXPECT_EQ(entry["pid"], first);
    EXPECT_EQ(entry["signal"], SIGKILL);
    EXPECT_EQ(entry["exit_code"], -1);
    EXPECT_EQ(entry["action"], "restart");
    EXPECT_EQ(entry["attempt"], 1);
    EXPECT_EQ(entry["delay_usec"], 0); // the policy's restart: at once
    EXPECT_EQ(entry["outcome"], "running") << entry.dump(2);

    // The root said it delivered the reports it held.
    EXPECT_NE(daemon.output().find("recovery service is back; delivering"), std::string::npos);
    EXPECT_EQ(servicePid(daemon, "worker"), second);
}

TEST_F(RecoveryEndToEnd, ReportOfAHungRecoveryServiceIsRecordedOnceWhenItResumes) {
    daemon_ = std::make_unique<RunningDaemon>(config(R"(
[crash_recovery]
session_state_path = "@DIR@/state"

[[service]]
name = "worker"
exec = ["/bin/sleep", "3600"]
recovery = { strategy = "restart", max_attempts = 3 }
)"));
    auto& daemon = *daemon_;
    ASSERT_TRUE(daemon.waitReady());
    ASSERT_TRUE(waitUntil([&] { return servicePid(daemon, "worker") != 0; }));
    const pid_t recovery = servicePid(daemon, "recovery");
    ASSERT_GT(recovery, 0);
    ASSERT_EQ(kill(recovery, SIGSTOP), 0);
    ASSERT_TRUE(waitUntil([&] { return processState(recovery) == 'T'; }));
    const pid_t first = servicePid(daemon, "worker");
    ASSERT_EQ(kill(first, SIGKILL), 0);
    // The first delivery times out while the call waits in the hung service's queue; the root will send
    // the report again, so the service resumes with the same report twice in front of it.
    ASSERT_TRUE(waitUntil(
        [&] { return daemon.output().find("keeping reports until it is back") != std::string::npos; }));
    ASSERT_EQ(kill(recovery, SIGCONT), 0);
    ASSERT_TRUE(waitUntil([&] {
        const auto entries = history(daemon, "worker");
        return !entries.empty() && entries[0]["outcome"] == "running";
    })) << history(daemon, "worker").dump(2);
    ASSERT_TRUE(waitUntil(
        [&] { return daemon.output().find("recovery service is back; delivering") != std::string::npos; }));
    // A later crash goes through the usual way: once it is in the history, every earlier report is too.
    const pid_t second = servicePid(daemon, "worker");
    ASSERT_EQ(kill(second, SIGKILL), 0);
    ASSERT_TRUE(waitUntil([&] {
        const auto entries = history(daemon, "worker");
        return !entries.empty() && entries[0]["pid"] == second && entries[0]["outcome"] == "running";
    })) << history(daemon, "worker").dump(2);

    const auto entries = history(daemon, "worker");
    ASSERT_EQ(entries.size(), 2u) << entries.dump(2);
    EXPECT_EQ(entries[1]["pid"], first);
    EXPECT_EQ(entries[1]["outcome"], "running") << "a copy of a report must not mark the restart failed";
    // Announced once per exit; the log is written asynchronously, hence the wait.
    EXPECT_TRUE(waitUntil([&] { return loggedCount(daemon, "recovery.action", "service", "worker") >= 2; }));
    EXPECT_EQ(loggedCount(daemon, "recovery.action", "service", "worker"), 2u);
}

TEST_F(RecoveryEndToEnd, NotifyCommandRunsOncePerIncident) {
    // The hook appends one line with the details it is given to a file of the daemon's directory.
    daemon_ = std::make_unique<RunningDaemon>(config(R"(
[crash_recovery]
session_state_path = "@DIR@/state"
notify_command = [
  "/bin/sh", "-c",
  "echo \"service=$TAU_SERVICE action=$TAU_ACTION attempt=$TAU_ATTEMPT class=$TAU_FAILURE_CLASS exit=$TAU_EXIT_CODE signal=$TAU_SIGNAL\" >> '@DIR@/hook.log'",
]

[[service]]
name = "crasher"
exec = ["/bin/sh", "-c", "exit 1"]

[service.recovery]
ladder = [
  { strategy = "restart", attempts = 2 },
  { strategy = "notify_admin" },
]
)"));
    auto& daemon = *daemon_;
    const auto hook_file = daemon.dir() / "hook.log";
    ASSERT_TRUE(daemon.waitReady());
    // Two restarts, then the third failure escalates and leaves the service failed.
    ASSERT_TRUE(waitUntil([&] { return serviceEntry(daemon, "crasher")["state"] == "failed"; }));
    // The hook runs once the recovery service has the escalation; wait for it to finish.
    ASSERT_TRUE(waitUntil([&] {
        return loggedCount(daemon, "recovery.notify_finished", "service", "crasher") >= 1;
    })) << readFile(hook_file);

    const auto crashes = history(daemon, "crasher");
    ASSERT_EQ(crashes.size(), 3u) << crashes.dump(2);
    // Newest first.
    const std::vector<std::string> actions = {"notify_and_stop", "restart", "restart"};
    for (std::size_t i = 0; i < crashes.size(); ++i) {
        SCOPED_TRACE(crashes[i].dump());
        EXPECT_EQ(crashes[i]["action"], actions[i]);
        EXPECT_EQ(crashes[i]["attempt"], 3 - i);
        EXPECT_EQ(crashes[i]["exit_code"], 1);
        EXPECT_EQ(crashes[i]["signal"], 0);
    }
    const std::string failure_class = crashes[0]["failure_class"];
    EXPECT_FALSE(failure_class.empty());

    const auto hook = readFile(hook_file);
    ASSERT_EQ(countLines(hook), 1u) << hook;
    EXPECT_EQ(hook, "service=crasher action=notify_and_stop attempt=3 class=" + failure_class +
                        " exit=1 signal=0\n");
    EXPECT_EQ(loggedCount(daemon, "recovery.notify_finished", "service", "crasher"), 1u);
    EXPECT_EQ(loggedCount(daemon, "recovery.escalated", "service", "crasher"), 1u);
    EXPECT_EQ(serviceEntry(daemon, "crasher")["restarts"], 2);
}

} // namespace
} // namespace tau::test
