// The root's reports to Recovery while Recovery is away: held in order, delivered once it is back.

#include "recovery_reporter.h"
#include "run_loop.h"
#include "tau/bus/bus_loop.h"
#include "tau/bus/private_bus.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

namespace tau {
namespace {

using test::runUntil;

using namespace std::chrono_literals;

// Stands in for org.tauos.Recovery1 and records what it is told.
class FakeRecovery {
  public:
    explicit FakeRecovery(const std::string& address)
        : connection_(sdbus::createSessionBusConnectionWithAddress(address)),
          object_(sdbus::createObject(*connection_, "/org/tauos/Recovery1")) {
        object_->registerMethod("RecordExit")
            .onInterface("org.tauos.Recovery1")
            .implementedAs([this](uint64_t, const std::string& service, int32_t pid, int32_t, int32_t,
                                  const std::string&, uint64_t, uint32_t, const std::string& action, uint64_t,
                                  bool, const std::string&) {
                std::lock_guard lock(mutex_);
                calls_.push_back("exit " + service + " " + std::to_string(pid) + " " + action);
            });
        object_->registerMethod("RecordRecovered")
            .onInterface("org.tauos.Recovery1")
            .implementedAs([this](uint64_t, const std::string& service) {
                std::lock_guard lock(mutex_);
                calls_.push_back("recovered " + service);
            });
        object_->finishRegistration();
        connection_->requestName("org.tauos.Recovery1");
        connection_->enterEventLoopAsync();
    }
    ~FakeRecovery() { connection_->leaveEventLoop(); }
    std::vector<std::string> calls() {
        std::lock_guard lock(mutex_);
        return calls_;
    }

  private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IObject> object_;
    std::mutex mutex_;
    std::vector<std::string> calls_;
};

// Runs the loop until `done` holds or `limit` passes.
ExitReport exitOf(const std::string& service, int32_t pid) {
    ExitReport report;
    report.service = service;
    report.pid = pid;
    report.action = "restart";
    return report;
}

TEST(RecoveryReporter, HoldsReportsWhileRecoveryIsAwayAndDeliversThemInOrder) {
    test::TempDir dir;
    bus::PrivateBus bus(dir.path());
    auto connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
    EventLoop loop;
    bus::attachToLoop(loop, *connection);
    RecoveryReporter reporter(loop, *connection);

    reporter.report(exitOf("web", 10));
    reporter.report(RecoveredReport{1, "web"});
    reporter.report(exitOf("db", 20));
    // Nobody owns org.tauos.Recovery1: the first attempt fails and everything is kept.
    runUntil(
        loop, [] { return false; }, 300ms);
    EXPECT_EQ(reporter.pending(), 3u);

    FakeRecovery recovery(bus.address());
    runUntil(
        loop, [&] { return reporter.pending() == 0; }, 10s);
    EXPECT_EQ(reporter.pending(), 0u);
    EXPECT_EQ(recovery.calls(),
              (std::vector<std::string>{"exit web 10 restart", "recovered web", "exit db 20 restart"}));
    EXPECT_EQ(reporter.dropped(), 0u);
}

TEST(RecoveryReporter, BeyondItsCapacityTheOldestReportsGo) {
    test::TempDir dir;
    bus::PrivateBus bus(dir.path());
    auto connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
    EventLoop loop;
    bus::attachToLoop(loop, *connection);
    RecoveryReporter reporter(loop, *connection, 2);
    for (int pid = 1; pid <= 4; ++pid) {
        reporter.report(exitOf("web", pid));
    }
    EXPECT_EQ(reporter.pending(), 2u);
    EXPECT_EQ(reporter.dropped(), 2u);
}

} // namespace
} // namespace tau
