// The suite's services in-process on a private bus, with fake peers standing in for the services they talk
// to.

#include "health_service.h"
#include "log_service.h"
#include "recovery_service.h"
#include "resources_service.h"
#include "service_harness.h"
#include "tau/bus/wire.h"
#include "tau/log_record.h"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
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

// ---- Recovery, with a fake Processes1 that emits ServiceExited ----

class FakeProcesses {
  public:
    explicit FakeProcesses(sdbus::IConnection& connection)
        : object_(sdbus::createObject(connection, "/org/tauos/Processes1")) {
        object_->registerSignal("ServiceExited")
            .onInterface("org.tauos.Processes1")
            .withParameters<std::string, int32_t, int32_t, int32_t, uint64_t, std::string, uint32_t>();
        object_->registerMethod("ListServices").onInterface("org.tauos.Processes1").implementedAs([this] {
            return services;
        });
        object_->finishRegistration();
        connection.requestName("org.tauos.Processes1");
    }
    void exited(const std::string& name, int32_t pid, int32_t code, int32_t signal, const std::string& action,
                uint32_t attempt) {
        object_->emitSignal("ServiceExited")
            .onInterface("org.tauos.Processes1")
            .withArguments(name, pid, code, signal, uint64_t{1'500'000}, action, attempt);
    }
    std::vector<ServiceWire> services;

  private:
    std::unique_ptr<sdbus::IObject> object_;
};

std::vector<HistoryWire> history(sdbus::IProxy& recovery, const std::string& service = "") {
    std::vector<HistoryWire> entries;
    recovery.callMethod("GetHistory")
        .onInterface("org.tauos.Recovery1")
        .withArguments(service, 0u)
        .storeResultsTo(entries);
    return entries;
}

TEST(RecoveryServiceTest, RecordsExitsAnnouncesActionsAndKeepsHistoryAcrossRestarts) {
    TempDir dir;
    const auto config = configIn(dir);
    {
        ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
        auto peers = harness.connect();
        FakeProcesses processes(*peers);
        auto recovery = sdbus::createProxy(harness.client(), "org.tauos.Recovery1", "/org/tauos/Recovery1");
        std::vector<std::string> actions;
        recovery->uponSignal("RecoveryAction")
            .onInterface("org.tauos.Recovery1")
            .call([&](const std::string& service, const std::string& action, uint32_t attempt,
                      const std::string& reason) {
                actions.push_back(service + " " + action + " " + std::to_string(attempt) + " " + reason);
            });
        recovery->finishRegistration();

        processes.exited("web", 100, -1, 9, "restart", 1);
        processes.exited("db", 200, 3, 0, "give_up", 4);
        processes.exited("web", 101, 0, 0, "stopped", 0);
        ASSERT_TRUE(waitUntil([&] {
            while (harness.client().processPendingRequest()) {
            }
            return history(*recovery).size() == 3 && actions.size() == 2;
        }));
        const auto entries = history(*recovery);
        EXPECT_EQ(entries[0].get<1>(), "web"); // newest first
        EXPECT_EQ(entries[0].get<6>(), "stopped");
        EXPECT_EQ(entries[2].get<2>(), 100);
        EXPECT_EQ(entries[2].get<4>(), 9);
        EXPECT_EQ(history(*recovery, "db").size(), 1u);
        // A stop on request is history, not a recovery action.
        EXPECT_EQ(actions, (std::vector<std::string>{"web restart 1 killed by SIGKILL",
                                                     "db give_up 4 exited with status 3"}));
        const auto error = errorNameOf([&] { history(*recovery, "no/such name"); });
        EXPECT_NE(error.find("org.tauos.Error.InvalidArgument"), std::string::npos) << error;
    }
    ServiceHarness restarted(config, makeRecoveryService, "org.tauos.Recovery1");
    auto recovery = sdbus::createProxy(restarted.client(), "org.tauos.Recovery1", "/org/tauos/Recovery1");
    recovery->finishRegistration();
    EXPECT_EQ(history(*recovery).size(), 3u);
}

// ---- Resources ----

TEST(ResourcesServiceTest, SamplesTheMachineAndSignalsACrossedThresholdOnce) {
    TempDir dir;
    auto config = configIn(dir);
    config.resource_monitoring.interval_seconds = 1;
    // Any machine that runs this test uses more memory than this.
    config.resource_monitoring.memory_threshold_percent = 0.001;
    ServiceHarness harness(config, makeResourcesService, "org.tauos.Resources1");
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
        return std::find(crossings.begin(), crossings.end(), "memory system warning") != crossings.end();
    }));
    const auto machine = wire::snapshotFromWire(snapshot);
    EXPECT_GT(machine.memory.total_bytes, 0u);
    EXPECT_EQ(machine.cpu_per_core_percent.size(), static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_ONLN)));
    EXPECT_GE(machine.cpu_percent, 0.0);
    EXPECT_LE(machine.cpu_percent, 100.0);
    // Only memory is sure to cross; a busy machine may cross the CPU threshold as well.
    EXPECT_EQ(std::count(crossings.begin(), crossings.end(), "memory system warning"), 1);

    const double memory_percent =
        resources->getProperty("MemoryUsedPercent").onInterface("org.tauos.Resources1").get<double>();
    EXPECT_GT(memory_percent, 0.0);
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

} // namespace
} // namespace tau::test
