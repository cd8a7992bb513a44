// Session state end to end: a real service keeps a count through the C++ client header under the real
// tau-monitor, and the count survives its crashes, crashes of the recovery service in the middle of its
// saves, and a damaged state database.

#include "cli_json.h"
#include "test_support.h"

#include <algorithm>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sstream>

namespace tau::test {
namespace {

using json = nlohmann::json;

// `crash_recovery`: more keys of [crash_recovery].
std::string suiteConfig(const std::string& services, const std::string& crash_recovery = "") {
    return R"(
[resource_monitoring]
enabled = false

[health_checking]
enabled = false

[crash_recovery]
session_state_path = "@DIR@/state"
critical_processes = ["counter"]
)" + crash_recovery +
           R"(
[logging]
log_file_path = "@DIR@/log/tau.log"
)" + services;
}

std::string counterConfig(bool state_handoff = false) {
    return suiteConfig(R"(
[[service]]
name = "counter"
exec = [")" + std::string(TAU_TEST_STATE_COUNTER) +
                       R"(", "@DIR@/counter.log"]
state_handoff = )" + (state_handoff ? std::string("true") : std::string("false")) +
                       R"(
[service.recovery]
strategy = "restart"
max_attempts = 100
start_limit_burst = 100
)");
}

// What the counter wrote: the counts it resumed from and the counts whose save was acknowledged.
struct CounterLog {
    std::vector<std::uint64_t> resumed;
    std::vector<std::uint64_t> saved;
    std::vector<std::uint64_t> handed;   // resumed from the state handed over at exec
    std::vector<std::uint64_t> poisoned; // crashed at once on the state it loaded

    std::uint64_t lastSaved() const { return saved.empty() ? 0 : saved.back(); }
};

CounterLog readCounterLog(const RunningDaemon& daemon) {
    CounterLog log;
    std::istringstream in(readFile(daemon.dir() / "counter.log"));
    std::string word;
    std::uint64_t count = 0;
    while (in >> word >> count) {
        (word == "saved"      ? log.saved
         : word == "handed"   ? log.handed
         : word == "poisoned" ? log.poisoned
                              : log.resumed)
            .push_back(count);
    }
    return log;
}

pid_t internalPid(const RunningDaemon& daemon, const std::string& name) {
    return servicePid(daemon, name);
}

// The counter is killed and comes back: it resumes from at least every count whose save was acknowledged.
void crashCounterAndExpectItResumes(RunningDaemon& daemon) {
    const pid_t counter = servicePid(daemon, "counter");
    ASSERT_NE(counter, 0);
    const std::size_t starts = readCounterLog(daemon).resumed.size();
    ASSERT_EQ(::kill(counter, SIGKILL), 0);
    const std::uint64_t acknowledged = readCounterLog(daemon).lastSaved();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).resumed.size() > starts; })) << daemon.output();
    const std::uint64_t resumed = readCounterLog(daemon).resumed.back();
    EXPECT_GE(resumed, acknowledged) << "an acknowledged save was lost";
    // A save may have been acknowledged in the moment before the kill, before the log line was written.
    EXPECT_LE(resumed, acknowledged + 1);
}

TEST(SessionState, ACrashedServiceResumesFromItsLastSave) {
    RunningDaemon daemon(counterConfig());
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).lastSaved() >= 5; })) << daemon.output();
    EXPECT_EQ(readCounterLog(daemon).resumed, (std::vector<std::uint64_t>{0}));
    crashCounterAndExpectItResumes(daemon);

    // recovery --session shows its versions, all with a good checksum.
    const json session = cliJson(daemon, {"recovery", "--session"});
    const auto counter = std::find_if(session.begin(), session.end(),
                                      [](const json& entry) { return entry["name"] == "counter"; });
    ASSERT_NE(counter, session.end()) << session.dump();
    ASSERT_FALSE((*counter)["state_versions"].empty()) << session.dump();
    for (const auto& version : (*counter)["state_versions"]) {
        EXPECT_EQ(version["checksum"], "ok");
        EXPECT_EQ(version["quarantined"], false);
        EXPECT_EQ(version["size"], 8);
    }
    const auto table = daemon.cli({"recovery", "--session"});
    EXPECT_NE(table.out.find("QUARANTINED"), std::string::npos) << table.out;
}

TEST(SessionState, AServiceWithStateHandoffGetsItsLastSaveAtExec) {
    RunningDaemon daemon(counterConfig(true));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).lastSaved() >= 5; })) << daemon.output();
    EXPECT_TRUE(readCounterLog(daemon).handed.empty()) << "nothing was saved before its first start";
    for (int crash = 0; crash < 3; ++crash) {
        const pid_t counter = servicePid(daemon, "counter");
        const std::size_t handed = readCounterLog(daemon).handed.size();
        ASSERT_EQ(::kill(counter, SIGKILL), 0);
        const std::uint64_t acknowledged = readCounterLog(daemon).lastSaved();
        ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).handed.size() > handed; }))
            << daemon.output();
        const std::uint64_t resumed = readCounterLog(daemon).handed.back();
        EXPECT_GE(resumed, acknowledged);
        EXPECT_LE(resumed, acknowledged + 1);
        ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).lastSaved() > resumed + 2; }));
    }
    EXPECT_EQ(readCounterLog(daemon).resumed, (std::vector<std::uint64_t>{0}))
        << "after its first start it never needed LoadState";
}

TEST(SessionState, AStateThatCrashesTheServiceAtEveryStartIsQuarantined) {
    // Counts of 5 and more are poison: once the newest versions all hold one, only quarantining them lets
    // the service start again, from the last version without poison or from nothing.
    RunningDaemon daemon(suiteConfig(R"(
[[service]]
name = "counter"
exec = [")" + std::string(TAU_TEST_STATE_COUNTER) +
                                         R"(", "@DIR@/counter.log", "5"]
[service.recovery]
strategy = "restart"
max_attempts = 100
start_limit_burst = 100
)",
                                     "state_versions_kept = 3\nstate_poison_crashes = 2\n"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).lastSaved() >= 8; })) << daemon.output();
    ASSERT_EQ(::kill(servicePid(daemon, "counter"), SIGKILL), 0);
    // Each of the three poisoned versions crashes it (twice, or more), then it starts from nothing.
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).resumed.size() >= 2; })) << daemon.output();
    const auto log = readCounterLog(daemon);
    EXPECT_EQ(log.resumed, (std::vector<std::uint64_t>{0, 0}));
    // Two crashes per version at least; one more when a restart loads a version whose quarantine is still
    // on its way to the recovery service.
    EXPECT_GE(log.poisoned.size(), 6u);
    std::size_t quarantines = 0;
    for (const auto& entry : cliJson(daemon, {"recovery", "--history", "--service", "counter"})) {
        const std::string reason = entry["reason"];
        quarantines += reason.find("quarantined") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(quarantines, 3u);
}

TEST(SessionState, KillingTheRecoveryServiceDuringSavesLosesNoAcknowledgedSave) {
    RunningDaemon daemon(counterConfig());
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(daemon).lastSaved() >= 3; })) << daemon.output();
    for (int round = 0; round < 3; ++round) {
        const pid_t recovery = internalPid(daemon, "recovery");
        ASSERT_NE(recovery, 0);
        const std::uint64_t before = readCounterLog(daemon).lastSaved();
        ASSERT_EQ(::kill(recovery, SIGKILL), 0);
        // The recovery service comes back, and the counter (which may have crashed on a refused save) saves
        // on.
        ASSERT_TRUE(waitUntil([&] {
            const pid_t now = internalPid(daemon, "recovery");
            return now != 0 && now != recovery && readCounterLog(daemon).lastSaved() > before + 3;
        })) << daemon.output();
    }
    crashCounterAndExpectItResumes(daemon);
    for (const auto& entry : cliJson(daemon, {"recovery", "--session"})) {
        for (const auto& version : entry.value("state_versions", json::array())) {
            EXPECT_EQ(version["checksum"], "ok") << "a torn version: " << entry.dump();
        }
    }
}

TEST(SessionState, ADamagedStateDatabaseIsSetAsideAndTheSuiteRunsOn) {
    RunningDaemon first(counterConfig());
    ASSERT_TRUE(first.waitReady()) << first.output();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(first).lastSaved() >= 3; })) << first.output();
    EXPECT_EQ(first.terminate(), 0);
    const auto database = first.dir() / "state" / "session-state.db";
    ASSERT_TRUE(std::filesystem::exists(database));
    writeFile(database, std::string(8192, 'x'));
    std::filesystem::remove(database.string() + "-wal");

    first.relaunch();
    ASSERT_TRUE(first.waitReady()) << first.output();
    ASSERT_TRUE(waitUntil([&] { return readCounterLog(first).resumed.size() == 2; })) << first.output();
    EXPECT_EQ(readCounterLog(first).resumed.back(), 0u) << "the service starts with empty state";
    EXPECT_TRUE(waitUntil([&] { return first.output().find("could not be read") != std::string::npos; }))
        << first.output();
    bool set_aside = false;
    for (const auto& file : std::filesystem::directory_iterator(first.dir() / "state")) {
        set_aside = set_aside || file.path().filename().string().starts_with("session-state.db.corrupt-");
    }
    EXPECT_TRUE(set_aside);
    EXPECT_EQ(serviceEntry(first, "counter")["state"], "running");
}

TEST(SessionState, TheDemoCounterWrittenWithBusctlGoesOnAfterItsCrashes) {
    RunningDaemon daemon(suiteConfig(R"(
[[service]]
name = "counter"
exec = [")" + std::string(TAU_SOURCE_DIR) +
                                     R"(/config/examples/demo-services/counter.sh"]
environment = { COUNTER_STEPS_BEFORE_CRASH = "4", COUNTER_INTERVAL = "0.05" }
)"));
    ASSERT_TRUE(daemon.waitReady()) << daemon.output();
    EXPECT_TRUE(waitUntil([&] {
        return daemon.output().find("counter: resuming at 8") != std::string::npos;
    })) << daemon.output();
    EXPECT_NE(daemon.output().find("counter: resuming at 0"), std::string::npos);
    EXPECT_NE(daemon.output().find("counter: resuming at 4"), std::string::npos);
}

} // namespace
} // namespace tau::test
