// The session state store on org.tauos.Recovery1: the Recovery service in-process on a private bus, with a
// fake org.tauos.Processes1 that tells it which supervised service a caller's PID belongs to.

#include "recovery_service.h"
#include "service_harness.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/wire.h"
#include "tau/state_store.h"
#include "test_support.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <mutex>
#include <optional>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/mount.h>
#include <unistd.h>

namespace tau::test {
namespace {

using tau::wire::StateEntry;
using Bytes = std::vector<uint8_t>;

constexpr const char* kInterface = "org.tauos.Recovery1";

std::string errorOf(const std::function<void()>& call) {
    try {
        call();
    } catch (const sdbus::Error& e) {
        return e.getName() + ": " + e.getMessage();
    }
    return "no error";
}

bool startsWith(const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0;
}

// Stands in for the supervisor's ServiceOfProcess, on its own connection and loop thread: the Recovery
// service asks it synchronously while the test thread waits for Recovery's answer.
class FakeProcesses {
  public:
    explicit FakeProcesses(const std::string& address)
        : connection_(sdbus::createSessionBusConnectionWithAddress(address)),
          object_(sdbus::createObject(*connection_, "/org/tauos/Processes1")) {
        object_->registerMethod("ServiceOfProcess")
            .onInterface("org.tauos.Processes1")
            .implementedAs([this](int32_t pid) {
                std::lock_guard lock(mutex_);
                ++calls_;
                if (auto found = services_.find(pid); found != services_.end()) {
                    return found->second;
                }
                if (others_) {
                    return *others_;
                }
                throw sdbus::Error("org.tauos.Error.NotFound",
                                   "ServiceOfProcess: no service's process tree holds pid " +
                                       std::to_string(pid));
            });
        object_->finishRegistration();
        connection_->requestName("org.tauos.Processes1");
        connection_->enterEventLoopAsync();
    }
    ~FakeProcesses() { connection_->leaveEventLoop(); }

    // `pid` belongs to `service`.
    void map(pid_t pid, const std::string& service) {
        std::lock_guard lock(mutex_);
        services_[pid] = service;
    }
    // Every PID not mapped belongs to `service` (unset: to none), for clients run as other processes.
    void mapOthers(std::optional<std::string> service) {
        std::lock_guard lock(mutex_);
        others_ = std::move(service);
    }
    int calls() {
        std::lock_guard lock(mutex_);
        return calls_;
    }

  private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IObject> object_;
    std::mutex mutex_;
    std::map<pid_t, std::string> services_;
    std::optional<std::string> others_;
    int calls_ = 0;
};

class StateClient {
  public:
    explicit StateClient(sdbus::IConnection& connection)
        : proxy_(sdbus::createProxy(connection, "org.tauos.Recovery1", "/org/tauos/Recovery1")) {
        proxy_->finishRegistration();
    }
    uint64_t save(const Bytes& data) {
        uint64_t version = 0;
        proxy_->callMethod("SaveState").onInterface(kInterface).withArguments(data).storeResultsTo(version);
        return version;
    }
    std::tuple<Bytes, uint64_t, uint64_t> load() {
        Bytes data;
        uint64_t version = 0;
        uint64_t saved_at = 0;
        proxy_->callMethod("LoadState").onInterface(kInterface).storeResultsTo(data, version, saved_at);
        return {data, version, saved_at};
    }
    std::vector<StateEntry> list() {
        std::vector<StateEntry> entries;
        proxy_->callMethod("ListStates").onInterface(kInterface).storeResultsTo(entries);
        return entries;
    }
    // The reasons of the service's recorded exits, newest first.
    std::vector<std::string> historyReasons(const std::string& service) {
        std::vector<tau::wire::HistoryEntry> entries;
        proxy_->callMethod("GetHistory")
            .onInterface(kInterface)
            .withArguments(service, std::string(), uint64_t{0}, uint32_t{0})
            .storeResultsTo(entries);
        std::vector<std::string> reasons;
        for (const auto& entry : entries) {
            reasons.push_back(entry.get<11>());
        }
        return reasons;
    }
    uint32_t remove(const std::string& name) {
        uint32_t deleted = 0;
        proxy_->callMethod("DeleteState").onInterface(kInterface).withArguments(name).storeResultsTo(deleted);
        return deleted;
    }
    void recordStartFailure(const std::string& service, int32_t pid, uint64_t time) {
        recordExit(service, pid, time, "start", "exited with code 1 during startup");
    }
    // A crash after the startup window: the service had resumed from its state fine.
    void recordLateFailure(const std::string& service, int32_t pid, uint64_t time) {
        recordExit(service, pid, time, "exit", "exited with code 1");
    }

  private:
    void recordExit(const std::string& service, int32_t pid, uint64_t time, const std::string& failure_class,
                    const std::string& reason) {
        proxy_->callMethod("RecordExit")
            .onInterface(kInterface)
            .withArguments(time, service, pid, int32_t{1}, int32_t{0}, failure_class, uint64_t{200'000},
                           uint32_t{1}, std::string("restart"), uint64_t{0}, false, reason);
    }

    std::unique_ptr<sdbus::IProxy> proxy_;
};

Config stateConfig(const TempDir& dir) {
    Config config;
    config.crash_recovery.session_state_path = dir.path() / "state";
    config.logging.log_file_path = dir.path() / "log" / "tau.log";
    config.crash_recovery.state_max_bytes = 16;
    config.crash_recovery.state_versions_kept = 3;
    config.crash_recovery.state_poison_crashes = 2;
    return config;
}

std::vector<std::string> servicesIn(const std::vector<StateEntry>& entries) {
    std::vector<std::string> services;
    for (const auto& entry : entries) {
        services.push_back(entry.get<0>() + ":" + std::to_string(entry.get<1>()));
    }
    return services;
}

class StateStoreBusTest : public ::testing::Test {
  protected:
    StateStoreBusTest()
        : harness_(stateConfig(dir_), makeRecoveryService, "org.tauos.Recovery1"),
          processes_(harness_.address()), client_(harness_.client()) {
        processes_.map(getpid(), "web");
    }

    // Runs dbus-send against the Recovery service as another process (as `user` when set).
    CommandResult dbusSend(const std::vector<std::string>& call, const std::string& user = "") {
        std::vector<std::string> argv;
        if (!user.empty()) {
            argv = {"runuser", "-u", user, "--"};
        }
        for (const std::string& arg :
             {std::string("dbus-send"), "--bus=" + harness_.address(), std::string("--print-reply"),
              std::string("--dest=org.tauos.Recovery1"), std::string("/org/tauos/Recovery1")}) {
            argv.push_back(arg);
        }
        argv.insert(argv.end(), call.begin(), call.end());
        return runCommand(argv);
    }

    TempDir dir_;
    ServiceHarness harness_;
    FakeProcesses processes_;
    StateClient client_;
};

TEST_F(StateStoreBusTest, SavedBytesComeBackWithTheirVersion) {
    const auto missing = errorOf([&] { client_.load(); });
    EXPECT_TRUE(startsWith(missing, "org.tauos.Error.NotFound")) << missing;
    EXPECT_NE(missing.find("web"), std::string::npos) << missing;

    const Bytes first{0, 1, 0, 255, 0};
    EXPECT_EQ(client_.save(first), 1u);
    const auto before = std::chrono::system_clock::now();
    auto [data, version, saved_at] = client_.load();
    EXPECT_EQ(data, first);
    EXPECT_EQ(version, 1u);
    const auto saved = std::chrono::system_clock::time_point(std::chrono::microseconds(saved_at));
    EXPECT_LE(saved, before);
    EXPECT_GT(saved, before - std::chrono::minutes(1));

    const Bytes second{0, 0};
    EXPECT_EQ(client_.save(second), 2u);
    EXPECT_EQ(client_.save({}), 3u);
    std::tie(data, version, saved_at) = client_.load();
    EXPECT_TRUE(data.empty());
    EXPECT_EQ(version, 3u);
}

TEST_F(StateStoreBusTest, EmptyAndLargestStatesArriveWhole) {
    EXPECT_EQ(client_.save({}), 1u);
    EXPECT_TRUE(std::get<0>(client_.load()).empty());
    Bytes largest(16);
    for (std::size_t i = 0; i < largest.size(); ++i) {
        largest[i] = static_cast<uint8_t>(255 - i);
    }
    EXPECT_EQ(client_.save(largest), 2u);
    EXPECT_EQ(std::get<0>(client_.load()), largest);
}

TEST_F(StateStoreBusTest, StateLargerThanTheLimitIsRefusedWithSizeAndLimit) {
    EXPECT_EQ(client_.save(Bytes(16, 7)), 1u);
    const auto error = errorOf([&] { client_.save(Bytes(17, 7)); });
    EXPECT_TRUE(startsWith(error, "org.tauos.Error.InvalidArgument")) << error;
    EXPECT_NE(error.find("17 bytes"), std::string::npos) << error;
    EXPECT_NE(error.find("16 bytes"), std::string::npos) << error;
    EXPECT_EQ(std::get<1>(client_.load()), 1u);
}

TEST(StateStoreBusCallerTest, CallerOutsideEverySupervisedServiceIsRefused) {
    TempDir dir;
    ServiceHarness harness(stateConfig(dir), makeRecoveryService, "org.tauos.Recovery1");
    StateClient client(harness.client());
    // No Processes1 on the bus: no process is a supervised service.
    auto error = errorOf([&] { client.save({1}); });
    EXPECT_TRUE(startsWith(error, "org.tauos.Error.PermissionDenied")) << error;
    EXPECT_NE(error.find("no supervised service"), std::string::npos) << error;

    // A Processes1 that does not know the caller.
    FakeProcesses processes(harness.address());
    error = errorOf([&] { client.load(); });
    EXPECT_TRUE(startsWith(error, "org.tauos.Error.PermissionDenied")) << error;
    EXPECT_EQ(processes.calls(), 1);
    // The test runs as the daemon's user, an administrator: it may list, and there is nothing yet.
    EXPECT_TRUE(client.list().empty());
}

TEST_F(StateStoreBusTest, AnotherServiceSeesOnlyItsOwnState) {
    EXPECT_EQ(client_.save({1, 2, 3}), 1u);
    EXPECT_EQ(client_.save({4}), 2u);
    // dbus-send runs as another process, which the fake places in the service "db".
    processes_.mapOthers("db");
    const auto load = dbusSend({"org.tauos.Recovery1.LoadState"});
    EXPECT_NE(load.exit_code, 0);
    EXPECT_NE(load.err.find("org.tauos.Error.NotFound"), std::string::npos) << load.err;
    EXPECT_NE(load.err.find("db has no session state"), std::string::npos) << load.err;
    const auto save = dbusSend({"org.tauos.Recovery1.SaveState", "array:byte:9,8"});
    EXPECT_EQ(save.exit_code, 0) << save.err;
    EXPECT_NE(save.out.find("uint64 1"), std::string::npos) << save.out;

    EXPECT_EQ(std::get<0>(client_.load()), (Bytes{4}));
    // The test's own client has the daemon's user: an administrator, it sees every service.
    const auto entries = client_.list();
    EXPECT_EQ(servicesIn(entries), (std::vector<std::string>{"db:1", "web:2", "web:1"}));
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].get<2>(), 2u);
    EXPECT_EQ(entries[0].get<4>(), "ok");
    EXPECT_FALSE(entries[0].get<5>());
}

TEST_F(StateStoreBusTest, ListingOthersAndDeletingNeedAdministratorRights) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root to run a client as the user nobody";
    }
    EXPECT_EQ(client_.save({1}), 1u);
    EXPECT_EQ(client_.save({2}), 2u);
    processes_.mapOthers("db");
    EXPECT_EQ(dbusSend({"org.tauos.Recovery1.SaveState", "array:byte:5"}, "nobody").exit_code, 0);

    // A supervised service that is no administrator lists only its own state.
    const auto own = dbusSend({"org.tauos.Recovery1.ListStates"}, "nobody");
    EXPECT_EQ(own.exit_code, 0) << own.err;
    EXPECT_NE(own.out.find("\"db\""), std::string::npos) << own.out;
    EXPECT_EQ(own.out.find("\"web\""), std::string::npos) << own.out;

    const auto remove = dbusSend({"org.tauos.Recovery1.DeleteState", "string:web"}, "nobody");
    EXPECT_NE(remove.exit_code, 0);
    EXPECT_NE(remove.err.find("org.tauos.Error.PermissionDenied"), std::string::npos) << remove.err;

    // Neither an administrator nor a supervised service: nothing to list.
    processes_.mapOthers(std::nullopt);
    const auto stranger = dbusSend({"org.tauos.Recovery1.ListStates"}, "nobody");
    EXPECT_NE(stranger.exit_code, 0);
    EXPECT_NE(stranger.err.find("org.tauos.Error.PermissionDenied"), std::string::npos) << stranger.err;

    EXPECT_EQ(std::get<0>(client_.load()), (Bytes{2}));
    EXPECT_EQ(client_.remove("web"), 2u);
    EXPECT_EQ(client_.remove("web"), 0u);
    const auto gone = errorOf([&] { client_.load(); });
    EXPECT_TRUE(startsWith(gone, "org.tauos.Error.NotFound")) << gone;
    EXPECT_EQ(servicesIn(client_.list()), (std::vector<std::string>{"db:1"}));
    // Numbers start again once everything was deleted.
    EXPECT_EQ(client_.save({3}), 1u);
}

TEST_F(StateStoreBusTest, DeleteStateRefusesAnInvalidName) {
    const auto error = errorOf([&] { client_.remove("no/such"); });
    EXPECT_TRUE(startsWith(error, "org.tauos.Error.InvalidArgument")) << error;
}

TEST_F(StateStoreBusTest, MutatingCallsLeaveAnAuditRecordWhateverTheirOutcome) {
    auto records = std::make_shared<bus::QueueingLogSink>("recovery", 1000);
    bus::configureLogging("recovery", "info", records);
    EXPECT_EQ(client_.save({1}), 1u);
    EXPECT_EQ(client_.remove("web"), 1u);
    EXPECT_NE(errorOf([&] { client_.remove("no/such"); }), "");
    const bool as_nobody = geteuid() == 0;
    if (as_nobody) {
        EXPECT_NE(dbusSend({"org.tauos.Recovery1.DeleteState", "string:web"}, "nobody").exit_code, 0);
    }
    bus::configureLogging("test", "info");

    std::vector<LogRecord> audit;
    for (LogRecord& record : records->take(1000)) {
        if (record.event == "audit.call") {
            audit.push_back(std::move(record));
        }
    }
    ASSERT_EQ(audit.size(), as_nobody ? 3u : 2u) << "SaveState is not audited, DeleteState always is";
    const std::string self_uid = std::to_string(geteuid());
    const std::string self_pid = std::to_string(getpid());
    EXPECT_EQ(audit[0].fields["method"], "DeleteState");
    EXPECT_EQ(audit[0].fields["arguments"], "web");
    EXPECT_EQ(audit[0].fields["result"], "ok");
    EXPECT_EQ(audit[0].fields["caller_uid"], self_uid);
    EXPECT_EQ(audit[0].fields["caller_pid"], self_pid);
    EXPECT_EQ(audit[0].level, LogLevel::Info);
    EXPECT_EQ(audit[1].fields["arguments"], "no/such");
    EXPECT_EQ(audit[1].fields["result"], "org.tauos.Error.InvalidArgument");
    EXPECT_EQ(audit[1].level, LogLevel::Warning);
    if (as_nobody) {
        EXPECT_EQ(audit[2].fields["result"], "org.tauos.Error.PermissionDenied");
        EXPECT_NE(audit[2].fields["caller_uid"], self_uid);
        EXPECT_NE(audit[2].fields["caller_pid"], self_pid);
    }
}

TEST_F(StateStoreBusTest, EarlyCrashesAfterLoadingAVersionQuarantineIt) {
    constexpr uint64_t kTime = 1'700'000'000'000'000ull;
    EXPECT_EQ(client_.save({1}), 1u);
    EXPECT_EQ(client_.save({2}), 2u);
    EXPECT_EQ(std::get<1>(client_.load()), 2u);

    client_.recordStartFailure("web", 101, kTime);
    // The same report delivered twice (its first delivery timed out) counts once.
    client_.recordStartFailure("web", 101, kTime);
    EXPECT_EQ(std::get<1>(client_.load()), 2u); // one crash, the limit is two
    client_.recordStartFailure("web", 102, kTime + 1'000'000);

    auto [data, version, saved_at] = client_.load();
    EXPECT_EQ(version, 1u);
    EXPECT_EQ(data, (Bytes{1}));
    const auto entries = client_.list();
    ASSERT_EQ(servicesIn(entries), (std::vector<std::string>{"web:2", "web:1"}));
    EXPECT_TRUE(entries[0].get<5>());
    EXPECT_FALSE(entries[1].get<5>());
    // Each step is in the crash history, with the exit that caused it.
    const auto reasons = client_.historyReasons("web");
    ASSERT_EQ(reasons.size(), 2u);
    EXPECT_NE(reasons[0].find("session state version 2 quarantined"), std::string::npos) << reasons[0];
    EXPECT_NE(reasons[1].find("early crash 1 of 2 in a row after loading session state version 2"),
              std::string::npos)
        << reasons[1];
    // Early crashes of another service do not count against this one's state.
    for (int32_t pid = 200; pid < 203; ++pid) {
        client_.recordStartFailure("other", pid, kTime + static_cast<uint64_t>(pid));
    }
    EXPECT_EQ(std::get<1>(client_.load()), 1u);
}

TEST_F(StateStoreBusTest, ARunPastTheStartupWindowEndsTheRunOfEarlyCrashes) {
    constexpr uint64_t kTime = 1'700'000'000'000'000ull;
    EXPECT_EQ(client_.save({1}), 1u);
    EXPECT_EQ(client_.save({2}), 2u);
    EXPECT_EQ(std::get<1>(client_.load()), 2u);
    client_.recordStartFailure("web", 101, kTime);
    client_.recordLateFailure("web", 102, kTime + 1'000'000);
    client_.recordStartFailure("web", 103, kTime + 2'000'000);
    EXPECT_EQ(std::get<1>(client_.load()), 2u) << "two early crashes, but not in a row";
    client_.recordStartFailure("web", 104, kTime + 3'000'000);
    EXPECT_EQ(std::get<1>(client_.load()), 1u);
}

TEST(StateStoreBusCallerTest, CorruptStoreIsSetAsideAndTheServiceStartsEmpty) {
    TempDir dir;
    const Config config = stateConfig(dir);
    std::filesystem::create_directories(config.crash_recovery.session_state_path);
    const auto file = config.crash_recovery.session_state_path / kStateStoreFileName;
    std::ofstream(file) << "this is not an SQLite database, and it is long enough to be read as one";
    ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
    FakeProcesses processes(harness.address());
    processes.map(getpid(), "web");
    StateClient client(harness.client());
    EXPECT_TRUE(client.list().empty());
    EXPECT_EQ(client.save({1}), 1u);
    bool set_aside = false;
    for (const auto& entry : std::filesystem::directory_iterator(config.crash_recovery.session_state_path)) {
        set_aside = set_aside || entry.path().filename().string().rfind("session-state.db.corrupt-", 0) == 0;
    }
    EXPECT_TRUE(set_aside);
}

// A small file system of its own for the state, unmounted on the way out.
class SmallFileSystem {
  public:
    explicit SmallFileSystem(const std::filesystem::path& at) : at_(at) {
        std::filesystem::create_directories(at_);
        if (::geteuid() != 0) {
            reason_ = "mounting a small tmpfs needs root";
        } else if (::mount("tau-test", at_.c_str(), "tmpfs", 0, "size=1m") != 0) {
            reason_ = std::string("cannot mount a tmpfs here: ") + std::strerror(errno);
        } else {
            mounted_ = true;
        }
    }
    ~SmallFileSystem() {
        if (mounted_) {
            ::umount2(at_.c_str(), MNT_DETACH);
        }
    }
    bool mounted() const { return mounted_; }
    const std::string& reason() const { return reason_; }

    // Fills what is left with a file; true once a write failed for want of space.
    bool fill() {
        std::FILE* filler = std::fopen((at_ / "filler").c_str(), "w");
        if (filler == nullptr) {
            return false;
        }
        const std::string block(4096, 'f');
        bool full = false;
        for (int i = 0; i < 1024 && !full; ++i) {
            full = std::fwrite(block.data(), 1, block.size(), filler) != block.size() ||
                   std::fflush(filler) != 0;
        }
        std::fclose(filler);
        return full;
    }
    void makeRoom() { std::filesystem::remove(at_ / "filler"); }

  private:
    std::filesystem::path at_;
    bool mounted_ = false;
    std::string reason_;
};

TEST(StateStoreBusCallerTest, AFullDiskFailsTheSaveClearlyAndKeepsThePreviousVersion) {
    TempDir dir;
    Config config = stateConfig(dir);
    config.crash_recovery.state_max_bytes = 512 * 1024;
    SmallFileSystem disk(config.crash_recovery.session_state_path);
    if (!disk.mounted()) {
        GTEST_SKIP() << disk.reason();
    }
    {
        ServiceHarness harness(config, makeRecoveryService, "org.tauos.Recovery1");
        FakeProcesses processes(harness.address());
        processes.map(getpid(), "web");
        StateClient client(harness.client());
        const Bytes first(64 * 1024, 1);
        EXPECT_EQ(client.save(first), 1u);
        ASSERT_TRUE(disk.fill());

        const auto refused = errorOf([&] { client.save(Bytes(256 * 1024, 2)); });
        EXPECT_TRUE(startsWith(refused, "org.tauos.Error.Unavailable")) << refused;
        EXPECT_NE(refused.find("full"), std::string::npos) << refused;
        auto [data, version, saved_at] = client.load();
        EXPECT_EQ(version, 1u);
        EXPECT_EQ(data, first);

        // Writing resumes once there is room again.
        disk.makeRoom();
        EXPECT_EQ(client.save(Bytes(256 * 1024, 3)), 2u);
        EXPECT_EQ(std::get<1>(client.load()), 2u);
    }
}

} // namespace
} // namespace tau::test
