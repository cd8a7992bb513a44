// The suite's services in-process on a private bus, with fake peers standing in for the services they talk
// to.

#include "health_service.h"
#include "http_client.h"
#include "log_service.h"
#include "recovery_service.h"
#include "resources_service.h"
#include "run_loop.h"
#include "service_harness.h"
#include "tau/bus/bus_loop.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/log_record.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <mutex>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tau::test {
namespace {

using LogWire = wire::LogEntry;
using HistoryWire = wire::HistoryEntry;
using CheckWire = wire::Check;
using ServiceWire = wire::ServiceEntry;

std::string errorNameOf(const std::function<void()>& call) {
    try {
        call();
    } catch (const sdbus::Error& e) {
        return e.getName() + ": " + e.getMessage();
    }
    return "no error";
}

Config configIn(const TempDir& dir) {
    Config config;
    config.crash_recovery.session_state_path = dir.path() / "state";
    config.logging.log_file_path = dir.path() / "log" / "tau.log";
    config.logging.log_level = "debug";
    config.resource_monitoring.prometheus_listen = "127.0.0.1:0";
    return config;
}

// ---- Log ----

class LogServiceTest : public ::testing::Test {
  protected:
    LogServiceTest() : harness_(configIn(dir_), makeLogService, "org.tauos.Log1") {
        log_ = sdbus::createProxy(harness_.client(), "org.tauos.Log1", "/org/tauos/Log1");
        log_->finishRegistration();
    }
    void submit(const std::vector<LogWire>& records) {
        log_->callMethod("Submit").onInterface("org.tauos.Log1").withArguments(records);
    }
    TempDir dir_;
    ServiceHarness harness_;
    std::unique_ptr<sdbus::IProxy> log_;
};

LogWire record(const std::string& level, const std::string& message) {
    return {1'700'000'000'000'000ull,     level, "tester", 42, "test.event", message,
            {{"key", "value \"quoted\""}}};
}

TEST_F(LogServiceTest, ForwarderSendsWhatIsQueuedAndHasNoTimerWhileIdle) {
    auto connection = harness_.connect();
    EventLoop loop;
    bus::attachToLoop(loop, *connection);
    auto sink = std::make_shared<bus::QueueingLogSink>("forwarded", 100);
    bus::LogForwarder forwarder(loop, *connection, sink);
    EXPECT_EQ(loop.pendingTimers(), 0u) << "nothing to send, nothing to wake up for";

    LogRecord queued;
    queued.service = "forwarded";
    queued.event = "test.forwarded";
    queued.message = "through the forwarder";
    sink->push(queued);
    EXPECT_EQ(loop.pendingTimers(), 1u);
    sink->push(queued);
    EXPECT_EQ(loop.pendingTimers(), 1u) << "one flush for everything queued until then";

    const auto delivered = [&] {
        std::vector<LogWire> recent;
        log_->callMethod("GetRecent").onInterface("org.tauos.Log1").withArguments(10u).storeResultsTo(recent);
        return std::count_if(recent.begin(), recent.end(),
                             [](const LogWire& r) { return r.get<5>() == "through the forwarder"; }) == 2;
    };
    test::runUntil(loop, delivered);
    ASSERT_TRUE(delivered());
    EXPECT_TRUE(sink->empty());
    EXPECT_EQ(loop.pendingTimers(), 0u);
}

TEST_F(LogServiceTest, SubmittedRecordsAreWrittenAsJsonLinesAndReturnedByGetRecent) {
    submit({record("info", "first"), record("error", "second\nline")});
    std::vector<LogWire> recent;
    log_->callMethod("GetRecent").onInterface("org.tauos.Log1").withArguments(10u).storeResultsTo(recent);
    std::vector<std::string> messages;
    for (const auto& r : recent) {
        if (r.get<2>() == "tester") {
            messages.push_back(r.get<5>());
        }
    }
    EXPECT_EQ(messages, (std::vector<std::string>{"first", "second\nline"}));

    std::ifstream file(dir_.path() / "log" / "tau.log");
    std::string line;
    int parsed = 0;
    while (std::getline(file, line)) {
        const auto json = nlohmann::json::parse(line);
        if (json["service"] == "tester") {
            ++parsed;
            EXPECT_EQ(json["timestamp"], "2023-11-14T22:13:20.000000Z");
            EXPECT_EQ(json["pid"], 42);
            EXPECT_EQ(json["event"], "test.event");
            EXPECT_EQ(json["fields"]["key"], "value \"quoted\"");
        }
    }
    EXPECT_EQ(parsed, 2);

    std::map<std::string, uint64_t> stats;
    log_->callMethod("GetStats").onInterface("org.tauos.Log1").storeResultsTo(stats);
    EXPECT_EQ(stats["service_tester"], 2u);
    EXPECT_GE(stats["records_error"], 1u);
}

TEST_F(LogServiceTest, UnknownLevelRefusesTheWholeBatchNamingTheRecord) {
    const auto error = errorNameOf([&] { submit({record("info", "ok"), record("loud", "bad")}); });
    EXPECT_NE(error.find("org.tauos.Error.InvalidArgument"), std::string::npos) << error;
    EXPECT_NE(error.find("records[1].level"), std::string::npos) << error;
    std::map<std::string, uint64_t> stats;
    log_->callMethod("GetStats").onInterface("org.tauos.Log1").storeResultsTo(stats);
    EXPECT_EQ(stats.count("service_tester"), 0u);
}

TEST_F(LogServiceTest, EmptyServiceIsInvalid) {
    auto bad = record("info", "x");
    bad.get<2>() = "";
    const auto error = errorNameOf([&] { submit({bad}); });
    EXPECT_NE(error.find("org.tauos.Error.InvalidArgument"), std::string::npos) << error;
}

// ---- Processes1 stand-in for the services that ask it ----

class FakeProcesses {
  public:
    explicit FakeProcesses(sdbus::IConnection& connection)
        : object_(sdbus::createObject(connection, "/org/tauos/Processes1")) {
        object_->registerMethod("ListServices").onInterface("org.tauos.Processes1").implementedAs([this] {
            return services;
        });
        object_->registerMethod("ReportFailure")
            .onInterface("org.tauos.Processes1")
            .implementedAs(
                [this](const std::string& name, const std::string& failure_class, const std::string& detail) {
                    std::lock_guard lock(mutex_);
                    reported_.push_back(name + " " + failure_class + ": " + detail);
                });
        object_->finishRegistration();
        connection.requestName("org.tauos.Processes1");
    }
    std::vector<ServiceWire> services; // set before the peers' loop starts

    std::vector<std::string> reportedFailures() const {
        std::lock_guard lock(mutex_);
        return reported_;
    }

  private:
    std::unique_ptr<sdbus::IObject> object_;
    mutable std::mutex mutex_;
    std::vector<std::string> reported_;
};

// ---- Recovery, fed by RecordExit and RecordRecovered as the root feeds it ----

constexpr uint64_t kExitTime = 1'700'000'000'000'000ull; // 2023-11-14T22:13:20Z
constexpr uint64_t kSecond = 1'000'000ull;

struct ExitReport {
    uint64_t time = kExitTime;
    std::string service = "web";
    int32_t pid = 100;
    int32_t exit_code = -1;
    int32_t signal = 9;
    std::string failure_class = "signal";
    uint64_t uptime = 1'500'000;
    uint32_t attempt = 1;
    std::string action = "restart";
    uint64_t delay = 0;
    bool escalate = false;
    std::string reason = "killed by SIGKILL";
};

class RecoveryClient {
  public:
    explicit RecoveryClient(ServiceHarness& harness)
        : harness_(harness),
          proxy_(sdbus::createProxy(harness.client(), "org.tauos.Recovery1", "/org/tauos/Recovery1")) {
        proxy_->uponSignal("RecoveryAction")
            .onInterface("org.tauos.Recovery1")
            .call([this](const std::string& service, const std::string& action, uint32_t attempt,
                         const std::string& reason) {
                actions.push_back(service + " " + action + " " + std::to_string(attempt) + " " + reason);
            });
        proxy_->uponSignal("RecoveryEscalated")
            .onInterface("org.tauos.Recovery1")
            .call([this](const std::string& service, const std::string& action, uint32_t attempt,
                         const std::string& failure_class, const std::string& reason) {
                escalations.push_back(service + " " + action + " " + std::to_string(attempt) + " " +
                                      failure_class + " " + reason);
            });
        proxy_->uponSignal("PropertiesChanged")
            .onInterface("org.freedesktop.DBus.Properties")
            .call([this](const std::string& interface, const std::map<std::string, sdbus::Variant>& changed,
                         const std::vector<std::string>& invalidated) {
                if (interface == "org.tauos.Recovery1" &&
                    (changed.count("HistorySize") > 0 ||
                     std::find(invalidated.begin(), invalidated.end(), "HistorySize") != invalidated.end())) {
                    ++size_changes;
                }
            });
        proxy_->finishRegistration();
    }

    void recordExit(const ExitReport& r) {
        proxy_->callMethod("RecordExit")
            .onInterface("org.tauos.Recovery1")
            .withArguments(r.time, r.service, r.pid, r.exit_code, r.signal, r.failure_class, r.uptime,
                           r.attempt, r.action, r.delay, r.escalate, r.reason);
    }
    void recordRecovered(uint64_t time, const std::string& service) {
        proxy_->callMethod("RecordRecovered").onInterface("org.tauos.Recovery1").withArguments(time, service);
    }
    std::vector<HistoryWire> history(const std::string& service = "", const std::string& failure_class = "",
                                     uint64_t since = 0, uint32_t limit = 0) {
        std::vector<HistoryWire> entries;
        proxy_->callMethod("GetHistory")
            .onInterface("org.tauos.Recovery1")
            .withArguments(service, failure_class, since, limit)
            .storeResultsTo(entries);
        return entries;
    }
    std::vector<wire::SummaryEntry> summary() {
        std::vector<wire::SummaryEntry> entries;
        proxy_->callMethod("GetSummary").onInterface("org.tauos.Recovery1").storeResultsTo(entries);
        return entries;
    }
    std::pair<std::vector<wire::ExplainStep>, std::vector<std::string>>
    explain(const std::string& service, const std::string& failure_class = "", uint32_t failures = 0) {
        std::vector<wire::ExplainStep> steps;
        std::vector<std::string> warnings;
        proxy_->callMethod("Explain")
            .onInterface("org.tauos.Recovery1")
            .withArguments(service, failure_class, failures)
            .storeResultsTo(steps, warnings);
        return {steps, warnings};
    }
    uint32_t historySize() {
        return proxy_->getProperty("HistorySize").onInterface("org.tauos.Recovery1").get<uint32_t>();
    }
    // Delivers the signals that have arrived to the handlers above.
    void dispatch() {
        while (harness_.client().processPendingRequest()) {
        }
    }

    std::vector<std::string> actions;
    std::vector<std::string> escalations;
    int size_changes = 0;

  private:
    ServiceHarness& harness_;
    std::unique_ptr<sdbus::IProxy> proxy_;
};

std::vector<int32_t> pidsOf(const std::vector<HistoryWire>& entries) {
    std::vector<int32_t> pids;
    for (const auto& entry : entries) {
        pids.push_back(entry.get<2>());
    }
    return pids;
}

TEST(RecoveryServiceTest, RecordsExitsAnnouncesActionsAndKeepsHistoryAcrossRestarts) {
    TempDir dir;
    const auto config = configIn(dir);
    {
        ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
        RecoveryClient recovery(harness);
        recovery.recordExit({.time = kExitTime, .pid = 100, .delay = 2 * kSecond});
        recovery.recordExit({.time = kExitTime + kSecond,
                             .service = "db",
                             .pid = 200,
                             .exit_code = 3,
                             .signal = 0,
                             .failure_class = "exit",
                             .attempt = 4,
                             .action = "give_up",
                             .reason = "exited with status 3"});
        recovery.recordExit({.time = kExitTime + 2 * kSecond,
                             .pid = 101,
                             .exit_code = 0,
                             .signal = 0,
                             .failure_class = "",
                             .attempt = 0,
                             .action = "stopped",
                             .reason = "exited with status 0 after a requested stop"});
        ASSERT_TRUE(waitUntil([&] {
            recovery.dispatch();
            return recovery.actions.size() == 2 && recovery.size_changes == 3;
        })) << recovery.actions.size()
            << " actions, " << recovery.size_changes << " size changes";
        // A stop on request is history, not a recovery action.
        EXPECT_EQ(recovery.actions, (std::vector<std::string>{"web restart 1 killed by SIGKILL",
                                                              "db give_up 4 exited with status 3"}));
        EXPECT_TRUE(recovery.escalations.empty());
        EXPECT_EQ(recovery.historySize(), 3u);

        const auto entries = recovery.history();
        ASSERT_EQ(entries.size(), 3u);
        EXPECT_EQ(pidsOf(entries), (std::vector<int32_t>{101, 200, 100})); // newest first
        const auto web = wire::crashEntryFromWire(entries[2]);
        EXPECT_EQ(web.time, wire::fromMicros(kExitTime));
        EXPECT_EQ(web.service, "web");
        EXPECT_EQ(web.exit_code, -1);
        EXPECT_EQ(web.signal, 9);
        EXPECT_EQ(web.failure_class, "signal");
        EXPECT_EQ(web.uptime, std::chrono::microseconds(1'500'000));
        EXPECT_EQ(web.attempt, 1u);
        EXPECT_EQ(web.action, "restart");
        EXPECT_EQ(web.delay, std::chrono::seconds(2));
        EXPECT_EQ(web.reason, "killed by SIGKILL");
        // The next exit of web came before it ran again: that restart failed.
        EXPECT_EQ(web.outcome, "failed");
        EXPECT_EQ(entries[1].get<10>(), "none"); // db was given up: no restart meant to follow
    }
    ServiceHarness restarted(config, makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(restarted);
    EXPECT_EQ(recovery.historySize(), 3u);
    EXPECT_EQ(pidsOf(recovery.history()), (std::vector<int32_t>{101, 200, 100}));
    EXPECT_TRUE(std::filesystem::exists(config.crash_recovery.session_state_path / "crash-history.db"));
}

TEST(RecoveryServiceTest, ReportsWithInvalidArgumentsAreRefusedAndNotRecorded) {
    TempDir dir;
    ServiceHarness harness(configIn(dir), makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);
    struct Case {
        ExitReport report;
        std::string argument;
    };
    const std::vector<Case> cases = {
        {{.service = "no/such name"}, "service"},
        {{.service = ""}, "service"},
        {{.service = std::string(65, 'a')}, "service"},
        {{.action = "reboot"}, "action"},
        {{.action = ""}, "action"},
        {{.failure_class = "meteor"}, "failure_class"},
    };
    for (const auto& c : cases) {
        const auto error = errorNameOf([&] { recovery.recordExit(c.report); });
        EXPECT_EQ(error.rfind("org.tauos.Error.InvalidArgument: RecordExit: " + c.argument + ":", 0), 0u)
            << error;
    }
    const auto recovered = errorNameOf([&] { recovery.recordRecovered(kExitTime, "bad name"); });
    EXPECT_EQ(recovered.rfind("org.tauos.Error.InvalidArgument: RecordRecovered: service:", 0), 0u)
        << recovered;
    const auto history = errorNameOf([&] { recovery.history("", "meteor"); });
    EXPECT_EQ(history.rfind("org.tauos.Error.InvalidArgument: GetHistory: failure_class:", 0), 0u) << history;
    const auto bad_service = errorNameOf([&] { recovery.history("no/such name"); });
    EXPECT_EQ(bad_service.rfind("org.tauos.Error.InvalidArgument: GetHistory: service:", 0), 0u)
        << bad_service;

    EXPECT_EQ(recovery.historySize(), 0u);
    EXPECT_TRUE(recovery.history().empty());
    // The longest valid name is fine.
    recovery.recordExit({.service = std::string(64, 'a')});
    EXPECT_EQ(recovery.historySize(), 1u);
}

// Appends the TAU_* variables of each run to `output`, one block per run, in a single write.
std::filesystem::path writeNotifyHook(const TempDir& dir, const std::filesystem::path& output) {
    const auto script = dir.path() / "notify.sh";
    std::string text = "#!/bin/sh\nblock=\"\"\n";
    for (const char* name : {"TAU_ACTION", "TAU_ATTEMPT", "TAU_EXIT_CODE", "TAU_FAILURE_CLASS", "TAU_REASON",
                             "TAU_SERVICE", "TAU_SIGNAL", "TAU_TIME"}) {
        text += std::string("block=\"${block}") + name + "=${" + name + "-(unset)}\n\"\n";
    }
    text += "printf '%send\\n' \"$block\" >> '" + output.string() + "'\n";
    writeFile(script, text);
    std::filesystem::permissions(script, std::filesystem::perms::owner_all);
    return script;
}

int runsIn(const std::filesystem::path& output) {
    if (!std::filesystem::exists(output)) {
        return 0;
    }
    const auto text = readFile(output);
    int runs = 0;
    for (std::size_t at = text.find("end\n"); at != std::string::npos; at = text.find("end\n", at + 1)) {
        ++runs;
    }
    return runs;
}

TEST(RecoveryServiceTest, EscalationIsSignalledAndRunsTheNotifyCommandOnceWithTheDetails) {
    TempDir dir;
    auto config = configIn(dir);
    const auto output = dir.path() / "notified";
    config.crash_recovery.notify_command = {writeNotifyHook(dir, output).string()};
    ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);

    // Only the report that escalates notifies: not a give-up that is not the first escalation of its
    // incident.
    recovery.recordExit({.service = "db",
                         .exit_code = 3,
                         .signal = 0,
                         .failure_class = "exit",
                         .attempt = 4,
                         .action = "give_up",
                         .escalate = true,
                         .reason = "exited with status 3; giving up \"for good\""});
    recovery.recordExit(
        {.time = kExitTime + kSecond, .service = "db", .action = "give_up", .escalate = false});
    recovery.recordExit({.time = kExitTime + 2 * kSecond, .service = "web", .attempt = 2});

    ASSERT_TRUE(waitUntil([&] {
        recovery.dispatch();
        return recovery.escalations.size() == 1 && recovery.actions.size() == 3 && runsIn(output) == 1;
    })) << runsIn(output)
        << " runs";
    EXPECT_EQ(recovery.escalations.front(), "db give_up 4 exit exited with status 3; giving up \"for good\"");
    EXPECT_EQ(readFile(output), "TAU_ACTION=give_up\n"
                                "TAU_ATTEMPT=4\n"
                                "TAU_EXIT_CODE=3\n"
                                "TAU_FAILURE_CLASS=exit\n"
                                "TAU_REASON=exited with status 3; giving up \"for good\"\n"
                                "TAU_SERVICE=db\n"
                                "TAU_SIGNAL=0\n"
                                "TAU_TIME=2023-11-14T22:13:20Z\n"
                                "end\n");
    // Every report is answered after its hook was started, so a second run would show up at once.
    EXPECT_FALSE(waitUntil([&] { return runsIn(output) > 1; }, std::chrono::milliseconds(500)));

    // A second escalation, a second run.
    recovery.recordExit({.time = kExitTime + 3 * kSecond,
                         .service = "web",
                         .failure_class = "oom",
                         .attempt = 3,
                         .action = "notify_and_stop",
                         .escalate = true,
                         .reason = "killed by the OOM killer"});
    ASSERT_TRUE(waitUntil([&] {
        recovery.dispatch();
        return recovery.escalations.size() == 2 && runsIn(output) == 2;
    }));
    EXPECT_EQ(recovery.escalations.back(), "web notify_and_stop 3 oom killed by the OOM killer");
    EXPECT_NE(readFile(output).find("TAU_SERVICE=web\nTAU_SIGNAL=9\nTAU_TIME=2023-11-14T22:13:23Z\nend\n"),
              std::string::npos)
        << readFile(output);
}

TEST(RecoveryServiceTest, ReportDeliveredTwiceIsRecordedAndAnnouncedOnce) {
    TempDir dir;
    auto config = configIn(dir);
    const auto output = dir.path() / "notified";
    config.crash_recovery.notify_command = {writeNotifyHook(dir, output).string()};
    ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);
    // The root sends a report again when its first delivery timed out, e.g. while Recovery was hung.
    const ExitReport escalating{.service = "db", .attempt = 4, .action = "give_up", .escalate = true};
    recovery.recordExit(escalating);
    recovery.recordExit(escalating);
    recovery.recordExit({.time = kExitTime + kSecond, .service = "web"}); // a later report, as a marker
    ASSERT_TRUE(waitUntil([&] {
        recovery.dispatch();
        return recovery.actions.size() >= 2 && runsIn(output) >= 1;
    }));
    EXPECT_EQ(recovery.actions.size(), 2u);
    EXPECT_EQ(recovery.escalations.size(), 1u);
    EXPECT_EQ(recovery.history().size(), 2u);
    EXPECT_FALSE(waitUntil([&] { return runsIn(output) > 1; }, std::chrono::milliseconds(500)));
}

TEST(RecoveryServiceTest, HistoryFiltersAndOutcomes) {
    TempDir dir;
    ServiceHarness harness(configIn(dir), makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);
    recovery.recordExit({.time = kExitTime, .service = "web", .pid = 1, .failure_class = "signal"});
    recovery.recordExit(
        {.time = kExitTime + 10 * kSecond, .service = "db", .pid = 2, .failure_class = "oom"});
    recovery.recordExit(
        {.time = kExitTime + 20 * kSecond, .service = "web", .pid = 3, .failure_class = "oom"});
    recovery.recordExit({.time = kExitTime + 30 * kSecond,
                         .service = "db",
                         .pid = 4,
                         .failure_class = "",
                         .action = "stopped"});
    recovery.recordRecovered(kExitTime + 22 * kSecond, "web");

    EXPECT_EQ(pidsOf(recovery.history()), (std::vector<int32_t>{4, 3, 2, 1}));
    EXPECT_EQ(pidsOf(recovery.history("web")), (std::vector<int32_t>{3, 1}));
    EXPECT_EQ(pidsOf(recovery.history("", "oom")), (std::vector<int32_t>{3, 2}));
    EXPECT_EQ(pidsOf(recovery.history("web", "oom")), (std::vector<int32_t>{3}));
    EXPECT_EQ(pidsOf(recovery.history("", "", kExitTime + 10 * kSecond)), (std::vector<int32_t>{4, 3, 2}));
    EXPECT_EQ(pidsOf(recovery.history("", "", 0, 1)), (std::vector<int32_t>{4}));
    EXPECT_TRUE(recovery.history("nobody").empty());

    const auto entries = recovery.history();
    EXPECT_EQ(entries[0].get<10>(), "none");    // stopped
    EXPECT_EQ(entries[1].get<10>(), "running"); // web came back 2 s after its exit
    EXPECT_EQ(entries[1].get<12>(), 2 * kSecond);
    EXPECT_EQ(entries[2].get<10>(), "failed"); // db exited again before it ran
    EXPECT_EQ(entries[3].get<10>(), "failed");
    EXPECT_EQ(entries[3].get<12>(), 0u);
    // Nothing pending any more: ignored.
    EXPECT_NO_THROW(recovery.recordRecovered(kExitTime + 40 * kSecond, "web"));
}

TEST(RecoveryServiceTest, SummaryCountsFailuresRecoveriesAndMeanTimeToRecovery) {
    TempDir dir;
    ServiceHarness harness(configIn(dir), makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);
    EXPECT_TRUE(recovery.summary().empty());
    recovery.recordExit({.time = kExitTime, .service = "web"});
    recovery.recordRecovered(kExitTime + 1 * kSecond, "web");
    recovery.recordExit({.time = kExitTime + 100 * kSecond, .service = "web"});
    recovery.recordRecovered(kExitTime + 103 * kSecond, "web");
    recovery.recordExit({.time = kExitTime + 200 * kSecond, .service = "web", .action = "give_up"});
    recovery.recordExit(
        {.time = kExitTime + 300 * kSecond, .service = "web", .failure_class = "", .action = "none"});
    recovery.recordExit({.time = kExitTime + 50 * kSecond, .service = "db", .action = "notify_and_stop"});
    recovery.recordExit({.time = kExitTime, .service = "calm", .failure_class = "", .action = "stopped"});

    const auto summary = recovery.summary();
    ASSERT_EQ(summary.size(), 2u); // calm never failed
    const auto db = wire::summaryFromWire(summary[0]);
    EXPECT_EQ(db.service, "db");
    EXPECT_EQ(db.failures, 1u);
    EXPECT_EQ(db.recovered, 0u);
    EXPECT_EQ(db.success_rate, 0.0);
    EXPECT_EQ(db.mean_time_to_recovery, std::chrono::microseconds(0));
    const auto web = wire::summaryFromWire(summary[1]);
    EXPECT_EQ(web.service, "web");
    EXPECT_EQ(web.failures, 3u);
    EXPECT_EQ(web.recovered, 2u);
    EXPECT_DOUBLE_EQ(web.success_rate, 2.0 / 3.0);
    EXPECT_EQ(web.mean_time_to_recovery, std::chrono::seconds(2));
    EXPECT_EQ(web.last_failure, wire::fromMicros(kExitTime + 200 * kSecond));
}

ServiceConfig serviceWithLadder(const std::string& name, std::vector<LadderStep> ladder) {
    ServiceConfig service;
    service.name = name;
    service.exec = {"/bin/true"};
    service.recovery.ladder = std::move(ladder);
    return service;
}

TEST(RecoveryServiceTest, ExplainWalksTheConfiguredLadderAndWarnsAboutTheRestartBudget) {
    TempDir dir;
    auto config = configIn(dir);
    LadderStep backoff;
    backoff.strategy = RecoveryStrategy::RestartWithBackoff;
    backoff.attempts = 3;
    backoff.delay_seconds = 1.0;
    backoff.backoff_factor = 2.0;
    backoff.max_delay_seconds = 3.0;
    backoff.jitter = 0.1;
    LadderStep notify;
    notify.strategy = RecoveryStrategy::NotifyAdmin;
    notify.attempts = std::nullopt;
    LadderStep storm;
    storm.strategy = RecoveryStrategy::Restart;
    storm.attempts = std::nullopt;
    storm.jitter = 0.0;
    config.services.push_back(serviceWithLadder("web", {backoff, notify}));
    config.services.push_back(serviceWithLadder("storm", {storm}));
    config.services.back().recovery.start_limit_burst = 100;
    config.services.back().recovery.start_limit_interval_seconds = 1.0;
    config.crash_recovery.restart_budget_burst = 20;
    config.crash_recovery.restart_budget_interval_seconds = 10.0;
    ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);

    const auto [steps, warnings] = recovery.explain("web", "", 5);
    ASSERT_EQ(steps.size(), 5u);
    using Step = wire::ExplainStep;
    EXPECT_EQ(steps[0], (Step{1, "restart", "restart_with_backoff", kSecond, 900'000, 1'100'000}));
    EXPECT_EQ(steps[1], (Step{2, "restart", "restart_with_backoff", 2 * kSecond, 1'800'000, 2'200'000}));
    EXPECT_EQ(steps[2], (Step{3, "restart", "restart_with_backoff", 3 * kSecond, 2'700'000, 3'300'000}));
    EXPECT_EQ(steps[3], (Step{4, "notify_and_stop", "notify_admin", 0, 0, 0}));
    EXPECT_EQ(steps[4], (Step{5, "notify_and_stop", "notify_admin", 0, 0, 0}));
    for (const auto& warning : warnings) {
        EXPECT_EQ(warning.find("restart budget"), std::string::npos) << warning;
    }
    // 0 failures means 10; a class without its own ladder uses the main one.
    EXPECT_EQ(std::get<0>(recovery.explain("web", "oom", 0)).size(), 10u);

    // Restarting at once without end, paced only by a loose start limit: far more than 20 per 10 s.
    const auto storm_warnings = recovery.explain("storm").second;
    const auto budget =
        std::find_if(storm_warnings.begin(), storm_warnings.end(), [](const std::string& warning) {
            return warning.find("host-wide restart budget") != std::string::npos;
        });
    ASSERT_NE(budget, storm_warnings.end()) << ::testing::PrintToString(storm_warnings);
    EXPECT_NE(budget->find("budget of 20 per 10 s"), std::string::npos) << *budget;

    const auto unknown = errorNameOf([&] { recovery.explain("nosuch"); });
    EXPECT_EQ(unknown.rfind("org.tauos.Error.NotFound:", 0), 0u) << unknown;
    const auto too_many = errorNameOf([&] { recovery.explain("web", "", 1001); });
    EXPECT_EQ(too_many.rfind("org.tauos.Error.InvalidArgument: Explain: failures:", 0), 0u) << too_many;
    const auto bad_class = errorNameOf([&] { recovery.explain("web", "meteor"); });
    EXPECT_EQ(bad_class.rfind("org.tauos.Error.InvalidArgument: Explain: failure_class:", 0), 0u)
        << bad_class;
}

TEST(RecoveryServiceTest, CorruptDatabaseIsSetAsideAndTheServiceStartsEmpty) {
    TempDir dir;
    const auto config = configIn(dir);
    const auto& state = config.crash_recovery.session_state_path;
    std::filesystem::create_directories(state);
    writeFile(state / "crash-history.db", std::string(4096, '#'));
    ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);
    EXPECT_EQ(recovery.historySize(), 0u);
    recovery.recordExit({});
    EXPECT_EQ(recovery.historySize(), 1u);
    int set_aside = 0;
    for (const auto& entry : std::filesystem::directory_iterator(state)) {
        if (entry.path().filename().string().rfind("crash-history.db.corrupt-", 0) == 0) {
            ++set_aside;
            EXPECT_EQ(readFile(entry.path()), std::string(4096, '#'));
        }
    }
    EXPECT_EQ(set_aside, 1);
}

TEST(RecoveryServiceTest, WithoutItsDatabaseTheServiceStillAnnouncesAndAnswersUnavailable) {
    TempDir dir;
    auto config = configIn(dir);
    // A regular file where the state directory should be: nothing can be created under it, even by root.
    writeFile(dir.path() / "occupied", "x");
    config.crash_recovery.session_state_path = dir.path() / "occupied" / "state";
    ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
    RecoveryClient recovery(harness);

    const auto error = errorNameOf([&] { recovery.recordExit({.action = "give_up", .escalate = true}); });
    EXPECT_EQ(error.rfind("org.tauos.Error.Unavailable:", 0), 0u) << error;
    ASSERT_TRUE(waitUntil([&] {
        recovery.dispatch();
        return recovery.actions.size() == 1 && recovery.escalations.size() == 1;
    }));
    const auto history = errorNameOf([&] { recovery.history(); });
    EXPECT_EQ(history.rfind("org.tauos.Error.Unavailable:", 0), 0u) << history;
    EXPECT_NE(history.find("occupied"), std::string::npos) << history;
    EXPECT_EQ(recovery.historySize(), 0u);
}

// ---- Resources ----

TEST(ResourcesServiceTest, SamplesTheMachineAndSignalsACrossedThresholdOnce) {
    TempDir dir;
    auto config = configIn(dir);
    config.resource_monitoring.interval_seconds = 1;
    // Any machine that runs this test uses more memory than this.
    config.resource_monitoring.memory_threshold_percent = 0.001;
    ServiceHarness harness(config, makeResourcesService, "org.tauos.Resources1");
    // A supervised service to measure: this test's own process.
    auto peers = harness.connect();
    FakeProcesses processes(*peers);
    processes.services = {ServiceWire{"self", "running", getpid(), 0, 5, 1.0, 1000, false, "configured"}};
    peers->enterEventLoopAsync();
    auto resources = sdbus::createProxy(harness.client(), "org.tauos.Resources1", "/org/tauos/Resources1");
    std::vector<std::string> crossings;
    resources->uponSignal("ThresholdCrossed")
        .onInterface("org.tauos.Resources1")
        .call([&](const std::string& metric, const std::string& scope, const std::string& level, double value,
                  double limit) {
            EXPECT_GT(value, limit);
            crossings.push_back(metric + " " + scope + " " + level);
        });
    resources->finishRegistration();

    wire::Snapshot snapshot;
    ASSERT_TRUE(waitUntil([&] {
        while (harness.client().processPendingRequest()) {
        }
        try {
            // Deserialising appends to vectors: start from an empty snapshot on every attempt.
            snapshot = {};
            auto& [taken_at, cpu, per_core, memory, swap, load, disks, networks] = snapshot;
            resources->callMethod("GetSnapshot")
                .onInterface("org.tauos.Resources1")
                .storeResultsTo(taken_at, cpu, per_core, memory, swap, load, disks, networks);
        } catch (const sdbus::Error& e) {
            EXPECT_EQ(e.getName(), "org.tauos.Error.Unavailable"); // before the first sample
            return false;
        }
        std::vector<wire::Metric> sampled;
        resources->callMethod("GetMetrics").onInterface("org.tauos.Resources1").storeResultsTo(sampled);
        const bool service_sampled = std::any_of(sampled.begin(), sampled.end(), [](const auto& m) {
            return m.template get<0>() == "service_rss_bytes" && m.template get<1>() == "self";
        });
        return service_sampled && std::find(crossings.begin(), crossings.end(),
                                            "memory_used_percent system warning") != crossings.end();
    }));
    const auto machine = wire::snapshotFromWire(snapshot);
    EXPECT_GT(machine.memory.total_bytes, 0u);
    EXPECT_EQ(machine.cpu_per_core_percent.size(), static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_ONLN)));
    EXPECT_GE(machine.cpu_percent, 0.0);
    EXPECT_LE(machine.cpu_percent, 100.0);
    // Only memory is sure to cross; a busy machine may cross the CPU threshold as well.
    EXPECT_EQ(std::count(crossings.begin(), crossings.end(), "memory_used_percent system warning"), 1);

    const double memory_percent =
        resources->getProperty("MemoryUsedPercent").onInterface("org.tauos.Resources1").get<double>();
    EXPECT_GT(memory_percent, 0.0);

    std::vector<sdbus::Struct<std::string, std::string, double>> metrics;
    resources->callMethod("GetMetrics").onInterface("org.tauos.Resources1").storeResultsTo(metrics);
    auto metric = [&](const std::string& name, const std::string& scope) -> std::optional<double> {
        for (const auto& m : metrics)
            if (m.get<0>() == name && m.get<1>() == scope)
                return m.get<2>();
        return std::nullopt;
    };
    ASSERT_TRUE(metric("memory_used_percent", "system"));
    EXPECT_GT(*metric("memory_used_percent", "system"), 0.0);
    EXPECT_TRUE(metric("cpu_core_percent", "cpu0"));

    std::vector<sdbus::Struct<uint64_t, double, double, double>> points;
    resources->callMethod("GetHistory")
        .onInterface("org.tauos.Resources1")
        .withArguments(std::string("memory_used_percent"), uint64_t{0}, uint32_t{0})
        .storeResultsTo(points);
    ASSERT_FALSE(points.empty());
    EXPECT_LE(points.back().get<2>(), points.back().get<1>());
    EXPECT_GE(points.back().get<3>(), points.back().get<1>());
    EXPECT_EQ(errorNameOf([&] {
                  resources->callMethod("GetHistory")
                      .onInterface("org.tauos.Resources1")
                      .withArguments(std::string("no_such_metric"), uint64_t{0}, uint32_t{0});
              }).substr(0, 24),
              "org.tauos.Error.NotFound");
    EXPECT_EQ(errorNameOf([&] {
                  resources->callMethod("GetHistory")
                      .onInterface("org.tauos.Resources1")
                      .withArguments(std::string("memory_used_percent"), uint64_t{0}, uint32_t{90000});
              }).substr(0, 31),
              "org.tauos.Error.InvalidArgument");

    std::vector<sdbus::Struct<std::string, std::string, std::string, double, double, double, uint64_t>>
        thresholds;
    resources->callMethod("GetThresholds").onInterface("org.tauos.Resources1").storeResultsTo(thresholds);
    const auto memory_alarm = std::find_if(thresholds.begin(), thresholds.end(), [](const auto& t) {
        return t.template get<0>() == "memory_used_percent" && t.template get<1>() == "system";
    });
    ASSERT_NE(memory_alarm, thresholds.end());
    EXPECT_EQ(memory_alarm->get<2>(), "warning");
    EXPECT_DOUBLE_EQ(memory_alarm->get<4>(), 0.001);
    EXPECT_TRUE(std::isnan(memory_alarm->get<5>())); // no critical band configured
    EXPECT_GT(memory_alarm->get<6>(), 0u);

    // Too few points for a fit yet: an empty list, not an error.
    std::vector<sdbus::Struct<std::string, std::string, double, double, double, double, int64_t>> trends;
    resources->callMethod("GetTrends").onInterface("org.tauos.Resources1").storeResultsTo(trends);
    EXPECT_TRUE(trends.empty());

    // The endpoint Prometheus scrapes, on the port the kernel chose.
    const auto address =
        resources->getProperty("MetricsAddress").onInterface("org.tauos.Resources1").get<std::string>();
    ASSERT_TRUE(address.starts_with("127.0.0.1:")) << address;
    const auto port = static_cast<std::uint16_t>(std::stoi(address.substr(address.find(':') + 1)));
    // The exposition is rendered shortly after each sample: the one with the service in it comes soon.
    HttpResponse response;
    EXPECT_TRUE(waitUntil([&] {
        response = httpRequest(port, "GET", "/metrics");
        return response.body.find("\ntau_service_rss_bytes{service=\"self\"} ") != std::string::npos;
    })) << response.body;
    EXPECT_EQ(response.status, 200);
    EXPECT_NE(response.body.find("\nnode_memory_MemTotal_bytes "), std::string::npos) << response.body;
    EXPECT_NE(response.body.find("\ntau_alarm_level{metric=\"memory_used_percent\",scope=\"system\"} 1\n"),
              std::string::npos)
        << response.body;
    EXPECT_NE(response.body.find("\ntau_service_rss_bytes{service=\"self\"} "), std::string::npos)
        << response.body;
    EXPECT_NE(response.body.find("\ntau_service_up{service=\"self\"} 1\n"), std::string::npos)
        << response.body;
    ASSERT_TRUE(metric("service_threads", "self"));
    EXPECT_GE(*metric("service_threads", "self"), 2.0); // the test's thread and the harness' loop thread
    peers->leaveEventLoop();
}

// ---- Health, with fake Resources1 and Processes1 ----

class FakeResources {
  public:
    FakeResources(sdbus::IConnection& connection, double cpu_percent)
        : object_(sdbus::createObject(connection, "/org/tauos/Resources1")) {
        using namespace wire;
        object_->registerMethod("GetSnapshot")
            .onInterface("org.tauos.Resources1")
            .implementedAs([cpu_percent] {
                return Snapshot{1,
                                cpu_percent,
                                {cpu_percent},
                                Memory{100, 50, 50, 50.0},
                                Swap{0, 0, 0.0},
                                Load{0.1, 0.1, 0.1},
                                {Disk{"/", "/dev/x", "ext4", 100, 10, 90, 10.0, 10, 1}},
                                {}};
            });
        object_->finishRegistration();
        connection.requestName("org.tauos.Resources1");
    }

  private:
    std::unique_ptr<sdbus::IObject> object_;
};

TEST(HealthServiceTest, ScoresWhatThePeersReportAndAnnouncesTheChange) {
    TempDir dir;
    auto config = configIn(dir);
    config.health_checking.system_health_checks = {"cpu_usage", "memory_usage", "disk_usage"};
    config.crash_recovery.critical_processes = {};
    ServiceHarness harness(config, makeHealthService, "org.tauos.Health1");
    auto peers = harness.connect();
    FakeProcesses processes(*peers);
    processes.services = {ServiceWire{"db", "failed", 0, 4, 0, 0.0, 0, true, "configured"},
                          ServiceWire{"web", "running", 10, 0, 5, 1.0, 1000, false, "configured"}};
    FakeResources resources(*peers, 95.0);
    peers->enterEventLoopAsync();

    auto health = sdbus::createProxy(harness.client(), "org.tauos.Health1", "/org/tauos/Health1");
    std::vector<std::string> changes;
    health->uponSignal("HealthChanged")
        .onInterface("org.tauos.Health1")
        .call([&](double, const std::string& status, const std::string& previous) {
            changes.push_back(previous + "->" + status);
        });
    health->finishRegistration();
    health->callMethod("Evaluate").onInterface("org.tauos.Health1");

    double score = 0;
    std::string status;
    std::vector<CheckWire> checks;
    ASSERT_TRUE(waitUntil([&] {
        while (harness.client().processPendingRequest()) {
        }
        health->callMethod("GetHealth")
            .onInterface("org.tauos.Health1")
            .storeResultsTo(score, status, checks);
        return status == "critical" && !changes.empty();
    })) << status;
    std::map<std::string, std::string> by_name;
    for (const auto& c : checks) {
        by_name[c.get<0>()] = c.get<1>();
    }
    EXPECT_EQ(by_name["cpu_usage"], "critical"); // 95% is past the critical level of the 80% threshold
    EXPECT_EQ(by_name["memory_usage"], "ok");
    EXPECT_EQ(by_name["disk_usage"], "ok");
    EXPECT_EQ(by_name["service:db"], "critical");
    EXPECT_EQ(by_name.count("service:web"), 0u); // neither critical nor listed
    EXPECT_LT(score, 0.7);
    EXPECT_EQ(changes.front(), "unknown->critical");
    peers->leaveEventLoop();
}

ProbeConfig quickProbe(ProbeType type) {
    ProbeConfig probe;
    probe.type = type;
    probe.period_seconds = 0.2;
    probe.timeout_seconds = 1;
    probe.failure_threshold = 2;
    return probe;
}

std::map<std::string, CheckWire> checksByName(sdbus::IProxy& health) {
    double score = 0;
    std::string status;
    std::vector<CheckWire> checks;
    health.callMethod("GetHealth").onInterface("org.tauos.Health1").storeResultsTo(score, status, checks);
    std::map<std::string, CheckWire> by_name;
    for (const auto& check : checks)
        by_name[check.get<0>()] = check;
    return by_name;
}

TEST(HealthServiceTest, ProbesAndEndpointsDecideTheirChecksAndAFailedLivenessProbeAsksForRecovery) {
    TempDir dir;
    auto config = configIn(dir);
    config.health_checking.system_health_checks = {"network_connectivity"};
    config.health_checking.status_debounce_seconds = 0;
    // A closed port and a listening one.
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(listener, 8), 0);
    socklen_t length = sizeof address;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    const auto open_port = ntohs(address.sin_port);
    const auto closed_port = freeLoopbackPort();
    config.health_checking.network_endpoints = {"127.0.0.1:" + std::to_string(open_port),
                                                "127.0.0.1:" + std::to_string(closed_port)};

    ServiceConfig web;
    web.name = "web";
    web.critical = true;
    web.liveness_probe = quickProbe(ProbeType::Tcp);
    web.liveness_probe->port = closed_port;
    web.readiness_probe = quickProbe(ProbeType::Dbus);
    web.readiness_probe->bus_name = "org.tauos.Resources1"; // owned by the fake below, which answers Ping
    ServiceConfig db;
    db.name = "db";
    db.critical = true;
    db.readiness_probe = quickProbe(ProbeType::Dbus);
    db.readiness_probe->bus_name = "org.tauos.NobodyOwnsThis";
    config.services = {web, db};

    ServiceHarness harness(config, makeHealthService, "org.tauos.Health1");
    auto peers = harness.connect();
    FakeProcesses processes(*peers);
    processes.services = {ServiceWire{"web", "running", 10, 0, 5, 1.0, 1000, true, "configured"},
                          ServiceWire{"db", "running", 11, 0, 5, 1.0, 1000, true, "configured"}};
    FakeResources resources(*peers, 5.0);
    peers->enterEventLoopAsync();
    auto health = sdbus::createProxy(harness.client(), "org.tauos.Health1", "/org/tauos/Health1");
    health->finishRegistration();

    std::map<std::string, CheckWire> checks;
    ASSERT_TRUE(waitUntil([&] {
        health->callMethod("Evaluate").onInterface("org.tauos.Health1");
        checks = checksByName(*health);
        return checks.contains("service:db") && checks["service:db"].get<1>() == "warning" &&
               checks.contains("network_connectivity") && checks["network_connectivity"].get<2>() == 0.5 &&
               !processes.reportedFailures().empty();
    })) << checks["service:db"].get<6>()
        << " / " << checks["network_connectivity"].get<6>();
    EXPECT_NE(checks["service:db"].get<6>().find("org.tauos.NobodyOwnsThis has no owner"), std::string::npos)
        << checks["service:db"].get<6>();
    EXPECT_NE(checks["network_connectivity"].get<6>().find(std::to_string(closed_port)), std::string::npos)
        << checks["network_connectivity"].get<6>();
    // web's liveness probe failed: critical, and recovery was asked for once per failure.
    EXPECT_EQ(checks["service:web"].get<1>(), "critical") << checks["service:web"].get<6>();
    const auto reported = processes.reportedFailures();
    EXPECT_TRUE(reported.front().starts_with("web probe: liveness probe failed: ")) << reported.front();
    peers->leaveEventLoop();
    ::close(listener);
}

} // namespace
} // namespace tau::test
