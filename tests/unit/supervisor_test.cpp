#include "fake_clock.h"
#include "fake_proc.h"
#include "limit_enforcer.h"
#include "supervisor.h"
#include "tau/errors.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <optional>
#include <ostream>
#include <poll.h>
#include <set>
#include <signal.h>
#include <string>
#include <utility>
#include <vector>

namespace tau {

// Readable names in failure messages; found by argument-dependent lookup, so they live in namespace tau.
[[maybe_unused]] static void PrintTo(RecoveryAction action, std::ostream* os) {
    *os << toString(action);
}
[[maybe_unused]] static void PrintTo(FailureClass failure_class, std::ostream* os) {
    *os << toString(failure_class);
}
[[maybe_unused]] static void PrintTo(ServiceState state, std::ostream* os) {
    *os << toString(state);
}

} // namespace tau

namespace tau {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------------------
// Fakes

// Records timers and descriptors; nothing fires until the test says so.
class FakeReactor final : public Reactor {
  public:
    struct Timer {
        std::chrono::steady_clock::duration delay;
        std::function<void()> callback;
    };

    void watchFd(int fd, short events, FdCallback callback) override {
        EXPECT_EQ(events, POLLIN);
        fds_[fd] = std::move(callback);
    }
    void unwatchFd(int fd) override {
        fds_.erase(fd);
        unwatched_.push_back(fd);
    }
    TimerId addTimer(std::chrono::steady_clock::duration delay, std::function<void()> callback) override {
        const TimerId id = next_id_++;
        timers_[id] = Timer{delay, std::move(callback)};
        return id;
    }
    void cancelTimer(TimerId id) override {
        if (timers_.erase(id) > 0) {
            cancelled_.insert(id);
        }
    }

    bool watching(int fd) const { return fds_.contains(fd); }
    std::size_t watchedCount() const { return fds_.size(); }
    const std::vector<int>& unwatched() const { return unwatched_; }

    // As the real loop does: the callback is taken out before it runs, and the descriptor stays watched.
    void fireFd(int fd) {
        auto it = fds_.find(fd);
        ASSERT_NE(it, fds_.end()) << "fd " << fd << " is not watched";
        auto callback = it->second;
        callback(POLLIN);
    }

    std::vector<TimerId> pendingTimers() const {
        std::vector<TimerId> ids;
        for (const auto& [id, timer] : timers_) {
            ids.push_back(id);
        }
        return ids;
    }
    bool pending(TimerId id) const { return timers_.contains(id); }
    bool wasCancelled(TimerId id) const { return cancelled_.contains(id); }
    std::chrono::steady_clock::duration delayOf(TimerId id) const { return timers_.at(id).delay; }

    // The only pending timer; fails the test when there is not exactly one.
    TimerId onlyTimer() const {
        EXPECT_EQ(timers_.size(), 1u);
        return timers_.empty() ? 0 : timers_.begin()->first;
    }

    void fireTimer(TimerId id) {
        auto it = timers_.find(id);
        ASSERT_NE(it, timers_.end()) << "timer " << id << " is not pending";
        auto callback = std::move(it->second.callback);
        timers_.erase(it);
        callback();
    }

  private:
    std::map<int, FdCallback> fds_;
    std::vector<int> unwatched_;
    std::map<TimerId, Timer> timers_;
    std::set<TimerId> cancelled_;
    TimerId next_id_ = 1;
};

// Hands out made-up pids and pidfds; a process "exits" when the test scripts a status for it.
class FakeLauncher final : public ProcessLauncher {
  public:
    struct Signal {
        pid_t group;
        int signal;
        bool operator==(const Signal&) const = default;
    };

    SpawnedProcess spawn(const std::string&, const SpawnRequest& request, bool) override {
        spawned_.push_back(request.argv.empty() ? std::string() : request.argv[0]);
        requests_.push_back(request);
        if (auto it = failures_.find(request.argv.at(0)); it != failures_.end()) {
            throw SpawnError(it->second);
        }
        const SpawnedProcess process{next_pid_++, next_pidfd_++};
        live_[process.pidfd] = std::nullopt;
        return process;
    }
    std::optional<ExitStatus> reap(int pidfd) override {
        auto it = live_.find(pidfd);
        EXPECT_NE(it, live_.end()) << "reap of unknown or released pidfd " << pidfd;
        return it == live_.end() ? std::nullopt : it->second;
    }
    void signalGroup(pid_t process_group, int signal) override {
        signals_.push_back({process_group, signal});
    }
    void signalProcess(int pidfd, int signal) override { process_signals_.push_back({pidfd, signal}); }
    int open(pid_t pid) override {
        const int pidfd = next_pidfd_++;
        live_[pidfd] = std::nullopt;
        adopted_[pidfd] = pid;
        return pidfd;
    }
    const std::vector<Signal>& processSignals() const { return process_signals_; }
    void release(int pidfd) override {
        EXPECT_TRUE(live_.contains(pidfd)) << "release of unknown pidfd " << pidfd;
        live_.erase(pidfd);
        released_.push_back(pidfd);
    }

    void failSpawnOf(const std::string& executable, const std::string& reason) {
        failures_[executable] = reason;
    }
    void allowSpawnOf(const std::string& executable) { failures_.erase(executable); }
    void scriptExit(int pidfd, ExitStatus status) {
        ASSERT_TRUE(live_.contains(pidfd)) << "pidfd " << pidfd << " is not a live process";
        live_[pidfd] = status;
    }

    const std::vector<std::string>& spawned() const { return spawned_; }
    const std::vector<SpawnRequest>& requests() const { return requests_; }
    const std::vector<Signal>& signals() const { return signals_; }
    const std::vector<int>& released() const { return released_; }
    std::size_t liveCount() const { return live_.size(); }
    void clearSignals() { signals_.clear(); }

  private:
    std::vector<std::string> spawned_;
    std::vector<SpawnRequest> requests_;
    std::vector<Signal> process_signals_; // {pidfd, signal}
    std::map<int, pid_t> adopted_;
    std::map<std::string, std::string> failures_;
    std::map<int, std::optional<ExitStatus>> live_;
    std::vector<Signal> signals_;
    std::vector<int> released_;
    pid_t next_pid_ = 1001;
    int next_pidfd_ = 501;
};

using test::FakeClock;

class RecordingListener final : public SupervisorListener {
  public:
    struct Started {
        std::string name;
        pid_t pid;
    };
    struct Exited {
        std::string name;
        pid_t pid;
        ExitStatus status;
        RecoveryDecision decision;
        std::chrono::steady_clock::duration uptime;
        ServiceState state_after;
    };
    struct Changed {
        std::string name;
        ServiceState state;
        pid_t pid;
        unsigned restarts;
    };
    struct SpawnFailure {
        std::string name;
        std::string reason;
        ServiceState state;
    };

    void serviceStarted(const ServiceStatus& service) override {
        started.push_back({service.spec.name, service.pid});
        events.push_back("started " + service.spec.name);
    }
    void serviceExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                       const RecoveryDecision& decision,
                       std::chrono::steady_clock::duration uptime) override {
        exited.push_back({service.spec.name, pid, status, decision, uptime, service.state});
        events.push_back("exited " + service.spec.name);
    }
    void serviceChanged(const ServiceStatus& service) override {
        changed.push_back({service.spec.name, service.state, service.pid, service.restarts});
    }
    void spawnFailed(const ServiceStatus& service, const std::string& reason) override {
        spawn_failures.push_back({service.spec.name, reason, service.state});
        events.push_back("spawn failed " + service.spec.name);
    }
    void serviceRunning(const ServiceStatus& service) override {
        events.push_back("running " + service.spec.name);
    }
    void serviceKilled(const ServiceStatus& service, KillReason reason) override {
        static const std::map<KillReason, std::string> names = {{KillReason::Watchdog, "watchdog"},
                                                                {KillReason::StartTimeout, "start timeout"},
                                                                {KillReason::ResourceLimit, "resource limit"},
                                                                {KillReason::Probe, "probe"}};
        events.push_back(names.at(reason) + " " + service.spec.name);
    }
    void safeModeLeft(const ServiceStatus& service) override {
        events.push_back("safe mode left " + service.spec.name);
    }
    void restartDeferred(const ServiceStatus& service, std::chrono::milliseconds wait) override {
        events.push_back("deferred " + service.spec.name + " " + std::to_string(wait.count()) + "ms");
    }
    void systemSafeModeChanged(bool active, const ServiceStatus& service) override {
        events.push_back(std::string(active ? "system safe mode entered by " : "system safe mode left by ") +
                         service.spec.name);
    }
    void serviceWaiting(const ServiceStatus& service, const ServiceStatus& dependency) override {
        events.push_back("waiting " + service.spec.name + " for " + dependency.spec.name);
    }
    void standbyStarted(const ServiceStatus& service) override {
        events.push_back("standby started " + service.spec.name + " " + std::to_string(service.standby.pid));
    }
    void standbyExited(const ServiceStatus& service, pid_t pid, const ExitStatus&,
                       const RecoveryDecision& decision) override {
        events.push_back("standby exited " + service.spec.name + " " + std::to_string(pid) + " " +
                         std::string(toString(decision.action)));
    }

    // The states a service was reported in, in order.
    std::vector<ServiceState> statesOf(const std::string& name) const {
        std::vector<ServiceState> states;
        for (const auto& change : changed) {
            if (change.name == name) {
                states.push_back(change.state);
            }
        }
        return states;
    }

    std::vector<Started> started;
    std::vector<Exited> exited;
    std::vector<Changed> changed;
    std::vector<SpawnFailure> spawn_failures;
    std::vector<std::string> events;
};

ExitStatus exitedWith(int code) {
    ExitStatus status;
    status.exit_code = code;
    return status;
}

ExitStatus killedBy(int signal) {
    ExitStatus status;
    status.signal = signal;
    return status;
}

std::string executableOf(const std::string& name) {
    return "/usr/bin/" + name;
}

ServiceSpec makeSpec(const std::string& name) {
    ServiceSpec spec;
    spec.name = name;
    spec.spawn.argv = {executableOf(name), "--flag"};
    // Restarts through a timer, so that tests see the service in backoff; immediate restarts have tests of
    // their own.
    LadderStep step;
    step.strategy = RecoveryStrategy::RestartWithDelay;
    step.delay_seconds = 0.1;
    step.attempts = 3;
    step.jitter = 0;
    spec.policy.ladder = {step};
    spec.policy.stability_window = 60s;
    spec.policy.start_limit_burst = 0; // tests restart faster than any start limit allows
    spec.stop_timeout = 5000ms;
    return spec;
}

// Expects `function` to throw a ServiceError with `code` whose message names `name`.
template <typename Function>
void expectServiceError(Function&& function, ErrorCode code, const std::string& name) {
    try {
        function();
        ADD_FAILURE() << "no ServiceError (" << toString(code) << ") was thrown";
    } catch (const ServiceError& error) {
        EXPECT_EQ(error.code(), code) << toString(error.code()) << ": " << error.what();
        EXPECT_NE(std::string(error.what()).find("'" + name + "'"), std::string::npos) << error.what();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fixture

class SupervisorTest : public testing::Test {
  protected:
    static constexpr unsigned kNoLimit = 100;

    Supervisor& supervisor(unsigned max_concurrent_configured = kNoLimit) {
        if (!supervisor_) {
            supervisor_.emplace(reactor_, launcher_, clock_, listener_, max_concurrent_configured);
        }
        return *supervisor_;
    }

    const ServiceStatus& status(const std::string& name) {
        const ServiceStatus* found = supervisor().find(name);
        EXPECT_NE(found, nullptr) << name;
        return *found;
    }

    // The service's main process ends with `exit`, and the loop notices it through its pidfd.
    void exitService(const std::string& name, ExitStatus exit) {
        const int pidfd = status(name).pidfd;
        ASSERT_GE(pidfd, 0) << name << " has no process";
        launcher_.scriptExit(pidfd, exit);
        reactor_.fireFd(pidfd);
    }

    FakeReactor reactor_;
    FakeLauncher launcher_;
    FakeClock clock_;
    RecordingListener listener_;
    std::optional<Supervisor> supervisor_;
};

// ---------------------------------------------------------------------------------------------------------
// Starting

TEST_F(SupervisorTest, ServiceStateNames) {
    EXPECT_EQ(toString(ServiceState::Running), "running");
    EXPECT_EQ(toString(ServiceState::Stopping), "stopping");
    EXPECT_EQ(toString(ServiceState::Stopped), "stopped");
    EXPECT_EQ(toString(ServiceState::Backoff), "backoff");
    EXPECT_EQ(toString(ServiceState::Failed), "failed");
}

TEST_F(SupervisorTest, AddedServicesStartStopped) {
    supervisor().add(makeSpec("web"));
    const auto& web = status("web");
    EXPECT_EQ(web.state, ServiceState::Stopped);
    EXPECT_EQ(web.pid, 0);
    EXPECT_EQ(web.pidfd, -1);
    EXPECT_EQ(supervisor().find("nothing"), nullptr);
    EXPECT_EQ(supervisor().runningCount(), 0u);
    EXPECT_TRUE(launcher_.spawned().empty());
}

TEST_F(SupervisorTest, StartAllSpawnsInOrderAndReportsEachStart) {
    for (const char* name : {"db", "web", "cache"}) {
        supervisor().add(makeSpec(name));
    }
    supervisor().startAll();

    EXPECT_EQ(launcher_.spawned(),
              (std::vector<std::string>{executableOf("db"), executableOf("web"), executableOf("cache")}));
    ASSERT_EQ(listener_.started.size(), 3u);
    EXPECT_EQ(listener_.started[0].name, "db");
    EXPECT_EQ(listener_.started[1].name, "web");
    EXPECT_EQ(listener_.started[2].name, "cache");
    EXPECT_EQ(supervisor().runningCount(), 3u);
    for (const char* name : {"db", "web", "cache"}) {
        const auto& service = status(name);
        EXPECT_EQ(service.state, ServiceState::Running) << name;
        EXPECT_GT(service.pid, 0) << name;
        EXPECT_TRUE(reactor_.watching(service.pidfd)) << name;
        EXPECT_EQ(service.started_at, clock_.wallNow());
        EXPECT_EQ(service.started_steady, clock_.now());
        EXPECT_EQ(listener_.statesOf(name), (std::vector<ServiceState>{ServiceState::Running}));
    }
    EXPECT_EQ(listener_.started[1].pid, status("web").pid);
}

TEST_F(SupervisorTest, StartAllLeavesRunningServicesAlone) {
    supervisor().add(makeSpec("db"));
    supervisor().add(makeSpec("web"));
    supervisor().start("db");
    supervisor().startAll();
    EXPECT_EQ(launcher_.spawned(), (std::vector<std::string>{executableOf("db"), executableOf("web")}));
}

TEST_F(SupervisorTest, UptimeCountsOnlyWhileRunning) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    clock_.advance(42s);
    EXPECT_EQ(status("web").uptime(clock_.now()), 42s);
    exitService("web", exitedWith(0));
    EXPECT_EQ(status("web").uptime(clock_.now()), 0s);
}

// ---------------------------------------------------------------------------------------------------------
// Exits and restarts

TEST_F(SupervisorTest, FailedExitIsRestartedThroughATimer) {
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    const pid_t first_pid = status("web").pid;
    const int first_pidfd = status("web").pidfd;
    clock_.advance(3s);

    exitService("web", exitedWith(1));

    // The old process is let go of entirely, and whatever it left in its group is killed.
    EXPECT_FALSE(reactor_.watching(first_pidfd));
    EXPECT_EQ(launcher_.released(), (std::vector<int>{first_pidfd}));
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{first_pid, SIGKILL}}));
    const auto& web = status("web");
    EXPECT_EQ(web.state, ServiceState::Backoff);
    EXPECT_EQ(web.pid, 0);
    EXPECT_EQ(web.pidfd, -1);
    EXPECT_EQ(web.recovery.failures(), 1u);
    EXPECT_EQ(web.restarts, 0u);
    ASSERT_TRUE(web.last_exit.has_value());
    EXPECT_EQ(web.last_exit->exit_code, 1);

    ASSERT_EQ(listener_.exited.size(), 1u);
    const auto& exit = listener_.exited[0];
    EXPECT_EQ(exit.name, "web");
    EXPECT_EQ(exit.pid, first_pid);
    EXPECT_EQ(exit.status.exit_code, 1);
    EXPECT_EQ(exit.decision.action, RecoveryAction::Restart);
    EXPECT_EQ(exit.decision.attempt, 1u);
    EXPECT_EQ(exit.uptime, 3s);
    EXPECT_EQ(exit.state_after, ServiceState::Backoff);

    const auto timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(timer), 100ms);
    EXPECT_EQ(launcher_.spawned().size(), 1u) << "restarted before the timer fired";

    reactor_.fireTimer(timer);
    EXPECT_EQ(launcher_.spawned().size(), 2u);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(status("web").restarts, 1u);
    EXPECT_NE(status("web").pid, first_pid);
    EXPECT_TRUE(reactor_.watching(status("web").pidfd));
    EXPECT_EQ(listener_.started.size(), 2u);
    EXPECT_EQ(
        listener_.statesOf("web"),
        (std::vector<ServiceState>{ServiceState::Running, ServiceState::Backoff, ServiceState::Running}));
    EXPECT_EQ(listener_.changed.back().restarts, 1u);
}

TEST_F(SupervisorTest, SignalDeathIsAFailureToo) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    exitService("web", killedBy(SIGSEGV));
    EXPECT_EQ(status("web").state, ServiceState::Backoff);
    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].status.signal, SIGSEGV);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::Restart);
}

TEST_F(SupervisorTest, RestartWithDelayWaitsForTheDelay) {
    auto spec = makeSpec("web");
    spec.policy.ladder.front().strategy = RecoveryStrategy::RestartWithDelay;
    spec.policy.ladder.front().delay_seconds = 2.5;
    supervisor().add(spec);
    supervisor().start("web");

    exitService("web", exitedWith(2));
    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::Restart);
    EXPECT_EQ(listener_.exited[0].decision.delay, 2500ms);
    const auto timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(timer), 2500ms);
    EXPECT_EQ(status("web").state, ServiceState::Backoff);

    reactor_.fireTimer(timer);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(status("web").restarts, 1u);
}

TEST_F(SupervisorTest, GivesUpAfterMaxAttempts) {
    auto spec = makeSpec("web");
    spec.policy.ladder.front().attempts = 2;
    supervisor().add(spec);
    supervisor().start("web");

    for (int attempt = 1; attempt <= 2; ++attempt) {
        exitService("web", exitedWith(1));
        ASSERT_EQ(status("web").state, ServiceState::Backoff) << "attempt " << attempt;
        reactor_.fireTimer(reactor_.onlyTimer());
        ASSERT_EQ(status("web").state, ServiceState::Running) << "attempt " << attempt;
    }
    exitService("web", exitedWith(1));

    EXPECT_EQ(status("web").state, ServiceState::Failed);
    EXPECT_EQ(status("web").restarts, 2u);
    EXPECT_EQ(status("web").recovery.failures(), 3u);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    ASSERT_EQ(listener_.exited.size(), 3u);
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::GiveUp);
    EXPECT_EQ(listener_.exited.back().state_after, ServiceState::Failed);
    EXPECT_EQ(launcher_.spawned().size(), 3u);
}

TEST_F(SupervisorTest, StableRunForgivesEarlierFailures) {
    auto spec = makeSpec("web");
    spec.policy.ladder.front().attempts = 1;
    spec.policy.stability_window = 60s;
    supervisor().add(spec);
    supervisor().start("web");

    clock_.advance(1s);
    exitService("web", exitedWith(1));
    EXPECT_EQ(status("web").recovery.failures(), 1u);
    reactor_.fireTimer(reactor_.onlyTimer());

    // Up for longer than the window: this failure counts as the first again.
    clock_.advance(61s);
    exitService("web", exitedWith(1));
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Restart);
    EXPECT_EQ(listener_.exited.back().uptime, 61s);
    EXPECT_EQ(status("web").recovery.failures(), 1u);
    reactor_.fireTimer(reactor_.onlyTimer());

    // A quick failure right after is the second in a row, one too many.
    clock_.advance(1s);
    exitService("web", exitedWith(1));
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::GiveUp);
    EXPECT_EQ(status("web").state, ServiceState::Failed);
}

TEST_F(SupervisorTest, CleanExitStopsWithoutRestart) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    exitService("web", exitedWith(0));

    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    EXPECT_EQ(status("web").recovery.failures(), 0u);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::None);
    EXPECT_EQ(listener_.exited[0].state_after, ServiceState::Stopped);
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

TEST_F(SupervisorTest, FailureWithoutRecoveryIsFailed) {
    auto spec = makeSpec("web");
    spec.policy.ladder.front().strategy = RecoveryStrategy::None;
    supervisor().add(spec);
    supervisor().start("web");
    exitService("web", exitedWith(1));

    EXPECT_EQ(status("web").state, ServiceState::Failed);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::None);
}

TEST_F(SupervisorTest, SpuriousWakeupChangesNothing) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    const int pidfd = status("web").pidfd;
    reactor_.fireFd(pidfd); // nothing scripted: the process is still running
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_TRUE(reactor_.watching(pidfd));
    EXPECT_TRUE(listener_.exited.empty());
    EXPECT_TRUE(launcher_.released().empty());
}

TEST_F(SupervisorTest, ManualStartResetsTheFailureCountAndCancelsThePendingRestart) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    exitService("web", exitedWith(1));
    const auto restart_timer = reactor_.onlyTimer();
    ASSERT_EQ(status("web").recovery.failures(), 1u);

    supervisor().start("web");
    EXPECT_TRUE(reactor_.wasCancelled(restart_timer));
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(status("web").recovery.failures(), 0u);
    EXPECT_EQ(status("web").restarts, 0u);
    EXPECT_EQ(launcher_.spawned().size(), 2u);
}

// ---------------------------------------------------------------------------------------------------------
// Stopping

TEST_F(SupervisorTest, StopSendsSigtermToTheGroupAndArmsAKillTimer) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    const pid_t pid = status("web").pid;

    supervisor().stop("web");
    EXPECT_EQ(status("web").state, ServiceState::Stopping);
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{pid, SIGTERM}}));
    const auto kill_timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(kill_timer), 5000ms);
    EXPECT_EQ(listener_.statesOf("web"),
              (std::vector<ServiceState>{ServiceState::Running, ServiceState::Stopping}));
    EXPECT_EQ(supervisor().runningCount(), 1u) << "a stopping service still counts as running";

    // The service ignores SIGTERM: the timer escalates.
    reactor_.fireTimer(kill_timer);
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{pid, SIGTERM}, {pid, SIGKILL}}));
    EXPECT_EQ(status("web").state, ServiceState::Stopping);

    exitService("web", killedBy(SIGKILL));
    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Stopped);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

TEST_F(SupervisorTest, ExitBeforeTheKillTimerCancelsItAndKillsStragglers) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    const pid_t pid = status("web").pid;
    supervisor().stop("web");
    const auto kill_timer = reactor_.onlyTimer();

    exitService("web", killedBy(SIGTERM));
    EXPECT_TRUE(reactor_.wasCancelled(kill_timer));
    EXPECT_FALSE(reactor_.pending(kill_timer));
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    // SIGTERM to stop it; SIGKILL afterwards for anything of its group still around.
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{pid, SIGTERM}, {pid, SIGKILL}}));
    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    EXPECT_EQ(status("web").recovery.failures(), 0u);
    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::Stopped);
    EXPECT_EQ(listener_.exited[0].state_after, ServiceState::Stopped);
}

TEST_F(SupervisorTest, StoppingTwiceSendsSigtermOnce) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    supervisor().stop("web");
    supervisor().stop("web");
    EXPECT_EQ(launcher_.signals().size(), 1u);
    EXPECT_EQ(reactor_.pendingTimers().size(), 1u);
}

TEST_F(SupervisorTest, StopOfAStoppedServiceIsBusy) {
    supervisor().add(makeSpec("web"));
    expectServiceError([&] { supervisor().stop("web"); }, ErrorCode::Busy, "web");

    supervisor().start("web");
    exitService("web", exitedWith(0));
    expectServiceError([&] { supervisor().stop("web"); }, ErrorCode::Busy, "web");
    EXPECT_EQ(launcher_.signals().size(), 1u) << "only the straggler kill after the exit";
}

TEST_F(SupervisorTest, StopOfAFailedServiceIsBusy) {
    auto spec = makeSpec("web");
    spec.policy.ladder.front().strategy = RecoveryStrategy::None;
    supervisor().add(spec);
    supervisor().start("web");
    exitService("web", exitedWith(1));
    expectServiceError([&] { supervisor().stop("web"); }, ErrorCode::Busy, "web");
}

TEST_F(SupervisorTest, StopDuringBackoffCancelsThePendingRestart) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    exitService("web", exitedWith(1));
    const auto restart_timer = reactor_.onlyTimer();

    supervisor().stop("web");
    EXPECT_TRUE(reactor_.wasCancelled(restart_timer));
    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    EXPECT_EQ(listener_.statesOf("web").back(), ServiceState::Stopped);
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

// ---------------------------------------------------------------------------------------------------------
// Errors of start, stop and restart

TEST_F(SupervisorTest, UnknownNameIsNotFound) {
    supervisor().add(makeSpec("web"));
    expectServiceError([&] { supervisor().start("nope"); }, ErrorCode::NotFound, "nope");
    expectServiceError([&] { supervisor().stop("nope"); }, ErrorCode::NotFound, "nope");
    expectServiceError([&] { supervisor().restart("nope"); }, ErrorCode::NotFound, "nope");
    EXPECT_TRUE(launcher_.spawned().empty());
}

TEST_F(SupervisorTest, StartWhileRunningOrStoppingIsBusy) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    expectServiceError([&] { supervisor().start("web"); }, ErrorCode::Busy, "web");
    supervisor().stop("web");
    expectServiceError([&] { supervisor().start("web"); }, ErrorCode::Busy, "web");
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

// ---------------------------------------------------------------------------------------------------------
// restart()

TEST_F(SupervisorTest, RestartOfARunningServiceStopsThenStartsIt) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    exitService("web", exitedWith(1));
    reactor_.fireTimer(reactor_.onlyTimer());
    ASSERT_EQ(status("web").restarts, 1u);
    ASSERT_EQ(status("web").recovery.failures(), 1u);
    const pid_t old_pid = status("web").pid;
    launcher_.clearSignals();

    supervisor().restart("web");
    EXPECT_EQ(status("web").state, ServiceState::Stopping);
    EXPECT_EQ(status("web").recovery.failures(), 0u);
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{old_pid, SIGTERM}}));
    EXPECT_EQ(launcher_.spawned().size(), 2u) << "started again before the old process ended";
    const auto kill_timer = reactor_.onlyTimer();

    exitService("web", killedBy(SIGTERM));
    EXPECT_TRUE(reactor_.wasCancelled(kill_timer));
    EXPECT_EQ(launcher_.spawned().size(), 3u);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_NE(status("web").pid, old_pid);
    EXPECT_TRUE(reactor_.watching(status("web").pidfd));
    // A requested restart is not an automatic one.
    EXPECT_EQ(status("web").restarts, 1u);
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Stopped);
    EXPECT_EQ(listener_.events.back(), "running web");
    EXPECT_TRUE(reactor_.pendingTimers().empty());
}

TEST_F(SupervisorTest, RestartOfAStoppedServiceStartsIt) {
    supervisor().add(makeSpec("web"));
    supervisor().restart("web");
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(launcher_.spawned().size(), 1u);
    EXPECT_TRUE(launcher_.signals().empty());
}

TEST_F(SupervisorTest, StopAfterRestartCancelsTheRestart) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    supervisor().restart("web");
    supervisor().stop("web");
    exitService("web", killedBy(SIGTERM));
    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

// ---------------------------------------------------------------------------------------------------------
// Spawn failures and limits

TEST_F(SupervisorTest, SpawnFailureAtStartupIsAFailedStartAndTheLadderApplies) {
    supervisor().add(makeSpec("broken"));
    supervisor().add(makeSpec("web"));
    launcher_.failSpawnOf(executableOf("broken"), "exec '/usr/bin/broken': No such file or directory");

    supervisor().startAll();
    EXPECT_EQ(status("broken").state, ServiceState::Backoff);
    EXPECT_EQ(status("broken").pid, 0);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    ASSERT_EQ(listener_.spawn_failures.size(), 1u);
    EXPECT_EQ(listener_.spawn_failures[0].reason, "exec '/usr/bin/broken': No such file or directory");
    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].decision.failure_class, FailureClass::Start);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::Restart);
    EXPECT_NE(listener_.exited[0].decision.reason.find("No such file or directory"), std::string::npos);
    // Never a tight loop: at least a second between attempts, whatever the ladder says.
    EXPECT_GE(reactor_.delayOf(reactor_.onlyTimer()), 1s);

    // Every retry fails the same way until the ladder gives up.
    for (int retry = 0; retry < 3; ++retry) {
        reactor_.fireTimer(reactor_.onlyTimer());
    }
    EXPECT_EQ(status("broken").state, ServiceState::Failed);
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::GiveUp);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
}

TEST_F(SupervisorTest, StartOfAnUnspawnableServiceThrowsSpawnFailed) {
    supervisor().add(makeSpec("broken"));
    launcher_.failSpawnOf(executableOf("broken"), "unknown user 'ghost'");
    try {
        supervisor().start("broken");
        ADD_FAILURE() << "start() did not throw";
    } catch (const ServiceError& error) {
        EXPECT_EQ(error.code(), ErrorCode::SpawnFailed);
        EXPECT_NE(std::string(error.what()).find("'broken'"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("unknown user 'ghost'"), std::string::npos) << error.what();
    }
    EXPECT_EQ(status("broken").state, ServiceState::Failed);
    EXPECT_EQ(listener_.spawn_failures.size(), 1u);
    EXPECT_EQ(reactor_.watchedCount(), 0u);

    // Once the cause is gone a manual start works.
    launcher_.allowSpawnOf(executableOf("broken"));
    supervisor().start("broken");
    EXPECT_EQ(status("broken").state, ServiceState::Running);
}

TEST_F(SupervisorTest, SpawnFailureOnAnAutomaticRestartIsRetriedNoFasterThanOncePerSecond) {
    supervisor().add(makeSpec("web"));
    supervisor().start("web");
    exitService("web", exitedWith(1));
    launcher_.failSpawnOf(executableOf("web"), "exec '/usr/bin/web': Permission denied");

    EXPECT_NO_THROW(reactor_.fireTimer(reactor_.onlyTimer()));
    EXPECT_EQ(status("web").state, ServiceState::Backoff);
    EXPECT_EQ(listener_.spawn_failures.size(), 1u);
    EXPECT_EQ(listener_.exited.back().decision.failure_class, FailureClass::Start);
    EXPECT_EQ(listener_.exited.back().decision.attempt, 2u);
    EXPECT_EQ(reactor_.delayOf(reactor_.onlyTimer()), 1s);

    launcher_.allowSpawnOf(executableOf("web"));
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(status("web").state, ServiceState::Running);
}

TEST_F(SupervisorTest, ConfiguredServicesAreLimitedButInternalOnesAreExempt) {
    auto internal = makeSpec("log");
    internal.internal = true;
    supervisor(2).add(internal);
    supervisor().add(makeSpec("a"));
    supervisor().add(makeSpec("b"));
    supervisor().add(makeSpec("c"));
    auto late_internal = makeSpec("health");
    late_internal.internal = true;
    supervisor().add(late_internal);

    supervisor().startAll();
    EXPECT_EQ(status("log").state, ServiceState::Running);
    EXPECT_EQ(status("a").state, ServiceState::Running);
    EXPECT_EQ(status("b").state, ServiceState::Running);
    EXPECT_EQ(status("c").state, ServiceState::Failed);
    EXPECT_EQ(status("health").state, ServiceState::Running);
    ASSERT_EQ(listener_.spawn_failures.size(), 1u);
    EXPECT_EQ(listener_.spawn_failures[0].name, "c");
    EXPECT_NE(listener_.spawn_failures[0].reason.find("max_concurrent_processes (2)"), std::string::npos)
        << listener_.spawn_failures[0].reason;
    EXPECT_EQ(launcher_.spawned(), (std::vector<std::string>{executableOf("log"), executableOf("a"),
                                                             executableOf("b"), executableOf("health")}));

    expectServiceError([&] { supervisor().start("c"); }, ErrorCode::LimitExceeded, "c");

    // A slot frees up when a configured service ends.
    exitService("a", exitedWith(0));
    supervisor().start("c");
    EXPECT_EQ(status("c").state, ServiceState::Running);
}

TEST_F(SupervisorTest, ServiceInBackoffDoesNotHoldASlot) {
    supervisor(1).add(makeSpec("a"));
    supervisor().add(makeSpec("b"));
    supervisor().start("a");
    exitService("a", exitedWith(1));
    ASSERT_EQ(status("a").state, ServiceState::Backoff);
    supervisor().start("b");
    EXPECT_EQ(status("b").state, ServiceState::Running);

    // Now the restart of "a" finds the limit reached.
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(status("a").state, ServiceState::Failed);
    ASSERT_EQ(listener_.spawn_failures.size(), 1u);
    EXPECT_EQ(listener_.spawn_failures[0].name, "a");
}

// ---------------------------------------------------------------------------------------------------------
// Shutdown

TEST_F(SupervisorTest, ShutdownStopsOneAtATimeInReverseOrder) {
    for (const char* name : {"a", "b", "c"}) {
        supervisor().add(makeSpec(name));
    }
    supervisor().startAll();
    const pid_t a = status("a").pid;
    const pid_t b = status("b").pid;
    const pid_t c = status("c").pid;
    int done_calls = 0;

    supervisor().shutdown([&] { ++done_calls; });
    EXPECT_TRUE(supervisor().shuttingDown());
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{c, SIGTERM}}));
    EXPECT_EQ(status("c").state, ServiceState::Stopping);
    EXPECT_EQ(status("b").state, ServiceState::Running);
    EXPECT_EQ(status("a").state, ServiceState::Running);

    exitService("c", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 0);
    EXPECT_EQ(status("b").state, ServiceState::Stopping);
    EXPECT_EQ(status("a").state, ServiceState::Running);

    exitService("b", exitedWith(0));
    EXPECT_EQ(done_calls, 0);
    EXPECT_EQ(status("a").state, ServiceState::Stopping);

    exitService("a", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 1);

    EXPECT_EQ(launcher_.signals(),
              (std::vector<FakeLauncher::Signal>{
                  {c, SIGTERM}, {c, SIGKILL}, {b, SIGTERM}, {b, SIGKILL}, {a, SIGTERM}, {a, SIGKILL}}));
    for (const char* name : {"a", "b", "c"}) {
        EXPECT_EQ(status(name).state, ServiceState::Stopped) << name;
    }
    EXPECT_EQ(launcher_.spawned().size(), 3u);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    EXPECT_EQ(reactor_.watchedCount(), 0u);
    EXPECT_EQ(launcher_.liveCount(), 0u);
}

TEST_F(SupervisorTest, ShutdownWithNothingRunningIsDoneAtOnce) {
    supervisor().add(makeSpec("a"));
    int done_calls = 0;
    supervisor().shutdown([&] { ++done_calls; });
    EXPECT_EQ(done_calls, 1);
    EXPECT_TRUE(launcher_.signals().empty());
}

TEST_F(SupervisorTest, ShutdownSkipsServicesThatAreNotRunning) {
    supervisor().add(makeSpec("a"));
    supervisor().add(makeSpec("idle"));
    supervisor().start("a");
    const pid_t a = status("a").pid;
    int done_calls = 0;
    supervisor().shutdown([&] { ++done_calls; });
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{a, SIGTERM}}));
    exitService("a", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 1);
}

TEST_F(SupervisorTest, ShutdownWaitsForAServiceAlreadyStopping) {
    supervisor().add(makeSpec("a"));
    supervisor().add(makeSpec("b"));
    supervisor().startAll();
    supervisor().stop("a");
    int done_calls = 0;
    supervisor().shutdown([&] { ++done_calls; });
    // "b" is stopped first; "a" is already on its way.
    EXPECT_EQ(status("b").state, ServiceState::Stopping);
    exitService("b", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 0);
    exitService("a", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 1);
}

TEST_F(SupervisorTest, ShutdownCancelsPendingRestarts) {
    supervisor().add(makeSpec("a"));
    supervisor().add(makeSpec("b"));
    supervisor().startAll();
    exitService("a", exitedWith(1));
    const auto restart_timer = reactor_.onlyTimer();
    ASSERT_EQ(status("a").state, ServiceState::Backoff);

    int done_calls = 0;
    supervisor().shutdown([&] { ++done_calls; });
    EXPECT_TRUE(reactor_.wasCancelled(restart_timer));
    EXPECT_EQ(status("a").state, ServiceState::Stopped);
    exitService("b", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 1);
    EXPECT_EQ(launcher_.spawned().size(), 2u);
}

TEST_F(SupervisorTest, KillAllSendsSigkillToEveryRunningGroupOnly) {
    for (const char* name : {"a", "b", "c"}) {
        supervisor().add(makeSpec(name));
    }
    supervisor().startAll();
    supervisor().stop("b");
    exitService("b", killedBy(SIGTERM));
    const pid_t a = status("a").pid;
    const pid_t c = status("c").pid;
    const auto before = launcher_.signals().size();

    supervisor().killAll();
    const std::vector<FakeLauncher::Signal> sent(
        launcher_.signals().begin() + static_cast<std::ptrdiff_t>(before), launcher_.signals().end());
    EXPECT_EQ(sent, (std::vector<FakeLauncher::Signal>{{a, SIGKILL}, {c, SIGKILL}}));
}

TEST_F(SupervisorTest, ShutdownReportsTheCancelledRestartAsAChange) {
    supervisor().add(makeSpec("a"));
    supervisor().start("a");
    exitService("a", exitedWith(1));
    ASSERT_EQ(status("a").state, ServiceState::Backoff);

    supervisor().shutdown([] {});
    EXPECT_EQ(listener_.statesOf("a").back(), ServiceState::Stopped);
}

TEST_F(SupervisorTest, ExitsDuringShutdownAreNotRestarted) {
    for (const char* name : {"a", "b", "c"}) {
        supervisor().add(makeSpec(name));
    }
    supervisor().startAll();
    int done_calls = 0;
    supervisor().shutdown([&] { ++done_calls; });
    ASSERT_EQ(status("c").state, ServiceState::Stopping);

    // "a" crashes on its own while "c" is being stopped: no restart, and nothing more to stop for it.
    exitService("a", exitedWith(1));
    EXPECT_EQ(status("a").state, ServiceState::Stopped);
    EXPECT_EQ(listener_.exited.back().name, "a");
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Stopped);
    EXPECT_EQ(reactor_.pendingTimers().size(), 1u) << "only the kill timer of c";
    EXPECT_EQ(status("b").state, ServiceState::Running) << "b waits until c is gone";

    exitService("c", killedBy(SIGTERM));
    exitService("b", killedBy(SIGTERM));
    EXPECT_EQ(done_calls, 1);
    EXPECT_EQ(launcher_.spawned().size(), 3u);
}

TEST_F(SupervisorTest, RestartRequestedBeforeShutdownIsDropped) {
    supervisor().add(makeSpec("a"));
    supervisor().start("a");
    supervisor().restart("a");
    int done_calls = 0;
    supervisor().shutdown([&] { ++done_calls; });
    exitService("a", killedBy(SIGTERM));
    EXPECT_EQ(status("a").state, ServiceState::Stopped);
    EXPECT_EQ(launcher_.spawned().size(), 1u);
    EXPECT_EQ(done_calls, 1);
}

TEST_F(SupervisorTest, StartAndRestartAreRefusedDuringShutdown) {
    supervisor().add(makeSpec("a"));
    supervisor().add(makeSpec("idle"));
    supervisor().start("a");
    supervisor().shutdown([] {});
    expectServiceError([&] { supervisor().start("idle"); }, ErrorCode::Busy, "idle");
    expectServiceError([&] { supervisor().restart("a"); }, ErrorCode::Busy, "a");
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

// ---------------------------------------------------------------------------------------------------------
// Teardown

TEST_F(SupervisorTest, DestructorReleasesDescriptorsAndCancelsTimers) {
    supervisor().add(makeSpec("a"));
    supervisor().add(makeSpec("b"));
    supervisor().add(makeSpec("c"));
    supervisor().startAll();
    const int b_pidfd = status("b").pidfd;
    const int c_pidfd = status("c").pidfd;
    exitService("a", exitedWith(1)); // a restart timer
    supervisor().stop("b");          // a kill timer
    ASSERT_EQ(reactor_.pendingTimers().size(), 2u);

    supervisor_.reset();
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    EXPECT_EQ(reactor_.watchedCount(), 0u);
    EXPECT_EQ(launcher_.liveCount(), 0u);
    const auto& released = launcher_.released();
    EXPECT_NE(std::find(released.begin(), released.end(), b_pidfd), released.end());
    EXPECT_NE(std::find(released.begin(), released.end(), c_pidfd), released.end());
}

} // namespace
} // namespace tau

namespace tau {
namespace {

TEST_F(SupervisorTest, RestartBudgetHoldsBackRestartsBeyondTheBurstAndSpreadsThem) {
    supervisor().useRestartBudget(2, 10s);
    for (const char* name : {"a", "b", "c", "d"}) {
        supervisor().add(makeSpec(name));
    }
    auto internal = makeSpec("suite");
    internal.internal = true;
    supervisor().add(internal);
    supervisor().startAll();
    for (const char* name : {"a", "b", "c", "d", "suite"}) {
        exitService(name, exitedWith(1));
    }
    // Five restarts are due at once; fire them in the order they were scheduled.
    for (const auto id : reactor_.pendingTimers()) {
        reactor_.fireTimer(id);
    }
    EXPECT_EQ(status("a").state, ServiceState::Running);
    EXPECT_EQ(status("b").state, ServiceState::Running);
    EXPECT_EQ(status("suite").state, ServiceState::Running) << "the suite's own services are exempt";
    EXPECT_EQ(status("c").state, ServiceState::Backoff);
    EXPECT_EQ(status("d").state, ServiceState::Backoff);
    const auto deferred = std::count_if(listener_.events.begin(), listener_.events.end(),
                                        [](const std::string& e) { return e.rfind("deferred ", 0) == 0; });
    EXPECT_EQ(deferred, 2);
    EXPECT_NE(std::find(listener_.events.begin(), listener_.events.end(), "deferred c 10000ms"),
              listener_.events.end());
    EXPECT_NE(std::find(listener_.events.begin(), listener_.events.end(), "deferred d 15000ms"),
              listener_.events.end());

    // When the held-back timers fire, the restarts go through without asking the budget again.
    clock_.advance(15s);
    for (const auto id : reactor_.pendingTimers()) {
        reactor_.fireTimer(id);
    }
    EXPECT_EQ(status("c").state, ServiceState::Running);
    EXPECT_EQ(status("d").state, ServiceState::Running);
}

} // namespace
} // namespace tau

namespace tau {
namespace {

TEST_F(SupervisorTest, ImmediateRestartHappensBeforeTheExitIsReported) {
    auto spec = makeSpec("web");
    spec.policy.ladder.front().strategy = RecoveryStrategy::Restart;
    supervisor().add(spec);
    supervisor().startAll();
    const pid_t first = status("web").pid;
    listener_.events.clear();

    exitService("web", killedBy(SIGKILL));

    // No timer: the new process exists by the time anybody hears of the exit.
    EXPECT_TRUE(reactor_.pendingTimers().empty());
    EXPECT_EQ(launcher_.spawned().size(), 2u);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_NE(status("web").pid, first);
    EXPECT_EQ(status("web").restarts, 1u);
    EXPECT_EQ(listener_.events, (std::vector<std::string>{"exited web", "started web", "running web"}));
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Restart);
}

TEST_F(SupervisorTest, ImmediateRestartBeyondTheBudgetWaitsForItsSlot) {
    supervisor().useRestartBudget(1, 10s);
    for (const char* name : {"a", "b"}) {
        auto spec = makeSpec(name);
        spec.policy.ladder.front().strategy = RecoveryStrategy::Restart;
        supervisor().add(spec);
    }
    supervisor().startAll();
    exitService("a", exitedWith(1));
    exitService("b", exitedWith(1));
    EXPECT_EQ(status("a").state, ServiceState::Running);
    EXPECT_EQ(status("b").state, ServiceState::Backoff);
    const auto timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(timer), 10s);
    EXPECT_EQ(listener_.exited.back().decision.delay, 10s);
    clock_.advance(10s);
    reactor_.fireTimer(timer);
    EXPECT_EQ(status("b").state, ServiceState::Running);
}

} // namespace
} // namespace tau

namespace tau {
namespace {

NotifyMessage message(const std::string& payload) {
    return parseNotifyPayload(payload);
}

ServiceSpec notifySpec(const std::string& name) {
    auto spec = makeSpec(name);
    spec.notify = true;
    spec.start_timeout = 30s;
    return spec;
}

TEST_F(SupervisorTest, NotifyServiceIsStartingUntilReady) {
    supervisor().add(notifySpec("db"));
    supervisor().startAll();
    EXPECT_EQ(status("db").state, ServiceState::Starting);
    const auto start_timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(start_timer), 30s);
    EXPECT_EQ(std::count(listener_.events.begin(), listener_.events.end(), "running db"), 0);

    supervisor().notify({"db"}, message("STATUS=loading tables\nREADY=1"));
    EXPECT_EQ(status("db").state, ServiceState::Running);
    EXPECT_EQ(status("db").status_text, "loading tables");
    EXPECT_TRUE(reactor_.wasCancelled(start_timer));
    EXPECT_EQ(listener_.events.back(), "running db");
}

TEST_F(SupervisorTest, StartTimeoutStopsTheServiceAndCountsAsAFailure) {
    supervisor().add(notifySpec("db"));
    supervisor().startAll();
    const pid_t pid = status("db").pid;
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(status("db").state, ServiceState::Stopping);
    EXPECT_EQ(status("db").kill_reason, KillReason::StartTimeout);
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{pid, SIGTERM}}));
    EXPECT_NE(std::find(listener_.events.begin(), listener_.events.end(), "start timeout db"),
              listener_.events.end());

    exitService("db", killedBy(SIGTERM));
    // Not a requested stop: the ladder applies.
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Restart);
    EXPECT_EQ(status("db").state, ServiceState::Backoff);
}

TEST_F(SupervisorTest, ExtendTimeoutPushesTheStartDeadline) {
    supervisor().add(notifySpec("db"));
    supervisor().startAll();
    const auto first = reactor_.onlyTimer();
    clock_.advance(20s);
    supervisor().notify({"db"}, message("EXTEND_TIMEOUT_USEC=60000000"));
    EXPECT_TRUE(reactor_.wasCancelled(first));
    const auto extended = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(extended), 60s);
    // A shorter extension than what is left changes nothing.
    supervisor().notify({"db"}, message("EXTEND_TIMEOUT_USEC=1000000"));
    EXPECT_TRUE(reactor_.pending(extended));
}

TEST_F(SupervisorTest, WatchdogPingsKeepTheServiceAliveAndSilenceAbortsIt) {
    auto spec = makeSpec("web");
    spec.watchdog = 2s;
    supervisor().add(spec);
    supervisor().startAll();
    const auto first = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(first), 2s);
    supervisor().notify({"web"}, message("WATCHDOG=1"));
    EXPECT_TRUE(reactor_.wasCancelled(first));
    const auto second = reactor_.onlyTimer();

    reactor_.fireTimer(second);
    const auto& web = status("web");
    EXPECT_EQ(web.kill_reason, KillReason::Watchdog);
    EXPECT_EQ(web.state, ServiceState::Stopping);
    EXPECT_EQ(launcher_.processSignals(), (std::vector<FakeLauncher::Signal>{{web.pidfd, SIGABRT}}));
    EXPECT_TRUE(launcher_.signals().empty()) << "the group is killed only after the grace period";
    const auto kill_timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(kill_timer), 5000ms);
    reactor_.fireTimer(kill_timer);
    EXPECT_EQ(launcher_.signals().back().signal, SIGKILL);

    exitService("web", killedBy(SIGABRT));
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Restart);
}

TEST_F(SupervisorTest, WatchdogIntervalCanBeChangedAndTriggered) {
    auto spec = makeSpec("web");
    spec.watchdog = 2s;
    supervisor().add(spec);
    supervisor().startAll();
    supervisor().notify({"web"}, message("WATCHDOG_USEC=500000"));
    EXPECT_EQ(reactor_.delayOf(reactor_.onlyTimer()), 500ms);
    supervisor().notify({"web"}, message("WATCHDOG=trigger"));
    EXPECT_EQ(status("web").kill_reason, KillReason::Watchdog);
}

TEST_F(SupervisorTest, MainPidMovesSupervisionToTheNewProcess) {
    supervisor().add(makeSpec("forking"));
    supervisor().startAll();
    const int old_pidfd = status("forking").pidfd;
    supervisor().notify({"forking"}, message("MAINPID=4242"));
    EXPECT_EQ(status("forking").pid, 4242);
    EXPECT_NE(status("forking").pidfd, old_pidfd);

    // The original process exits as forking daemons do: no failure, nothing restarted.
    launcher_.scriptExit(old_pidfd, exitedWith(0));
    reactor_.fireFd(old_pidfd);
    EXPECT_TRUE(listener_.exited.empty());
    EXPECT_EQ(status("forking").state, ServiceState::Running);

    // The new main process's exit is the service's exit.
    exitService("forking", exitedWith(1));
    EXPECT_EQ(listener_.exited.back().pid, 4242);
}

TEST_F(SupervisorTest, ServiceOfProcessWalksUpToAMainProcess) {
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    const pid_t main = status("web").pid;
    const std::map<pid_t, pid_t> parents = {{9001, 9000}, {9000, main}, {main, 1}, {7000, 1}};
    const auto parent_of = [&](pid_t pid) {
        const auto it = parents.find(pid);
        return it == parents.end() ? 0 : it->second;
    };
    EXPECT_EQ(supervisor().serviceOfProcess(main, parent_of), (ProcessOwner{"web", false}));
    EXPECT_EQ(supervisor().serviceOfProcess(9001, parent_of), (ProcessOwner{"web", false}));
    EXPECT_EQ(supervisor().serviceOfProcess(7000, parent_of), std::nullopt);
}

} // namespace
} // namespace tau

namespace tau {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Dependencies

bool happened(const RecordingListener& listener, const std::string& event) {
    return std::find(listener.events.begin(), listener.events.end(), event) != listener.events.end();
}

class DependencyTest : public SupervisorTest {
  protected:
    // db, and web that depends on it; both restart after 100 ms up to three times.
    void addDbAndWeb(bool db_notify = false) {
        auto db = makeSpec("db");
        db.notify = db_notify;
        supervisor().add(db);
        auto web = makeSpec("web");
        web.depends_on = {"db"};
        supervisor().add(web);
    }
    // Fires the only pending restart timer.
    void fireRestart() { reactor_.fireTimer(reactor_.onlyTimer()); }
};

TEST_F(DependencyTest, DependentWaitsUntilItsDependencyIsReady) {
    addDbAndWeb(true);
    supervisor().startAll();
    EXPECT_EQ(status("db").state, ServiceState::Starting);
    EXPECT_EQ(status("web").state, ServiceState::Waiting);
    EXPECT_EQ(status("web").waiting_for, "db");
    EXPECT_EQ(toString(ServiceState::Waiting), "waiting");
    EXPECT_TRUE(happened(listener_, "waiting web for db"));
    EXPECT_EQ(launcher_.spawned(), (std::vector<std::string>{executableOf("db")}));

    supervisor().notify({"db"}, message("READY=1"));
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(status("web").restarts, 0u) << "a first start is not a restart";
    EXPECT_EQ(launcher_.spawned(), (std::vector<std::string>{executableOf("db"), executableOf("web")}));
}

TEST_F(DependencyTest, CrashWhileTheDependencyIsDownWaitsWithoutSpendingARetry) {
    addDbAndWeb();
    supervisor().startAll();
    clock_.advance(5s);
    exitService("db", exitedWith(1));
    ASSERT_EQ(status("db").state, ServiceState::Backoff);
    const auto db_restart = reactor_.onlyTimer();

    exitService("web", exitedWith(1));
    const auto& decision = listener_.exited.back().decision;
    EXPECT_EQ(decision.action, RecoveryAction::WaitForDependency);
    EXPECT_EQ(decision.failure_class, FailureClass::Exit);
    EXPECT_EQ(decision.attempt, 0u);
    EXPECT_NE(decision.reason.find("its dependency 'db' is backoff"), std::string::npos) << decision.reason;
    EXPECT_EQ(status("web").state, ServiceState::Waiting);
    EXPECT_EQ(status("web").recovery.failures(), 0u);
    EXPECT_EQ(reactor_.pendingTimers(), (std::vector<Reactor::TimerId>{db_restart})) << "no timer of web's";

    reactor_.fireTimer(db_restart);
    EXPECT_EQ(status("db").state, ServiceState::Running);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(status("web").restarts, 1u);
    EXPECT_EQ(status("web").recovery.failures(), 0u);
}

TEST_F(DependencyTest, DueRestartWaitsWhileTheDependencyIsDown) {
    addDbAndWeb();
    supervisor().startAll();
    clock_.advance(5s);
    exitService("web", exitedWith(1)); // db is up: this one counts
    const auto web_restart = reactor_.onlyTimer();
    exitService("db", exitedWith(1));
    EXPECT_EQ(status("web").recovery.failures(), 1u);

    reactor_.fireTimer(web_restart);
    EXPECT_EQ(status("web").state, ServiceState::Waiting);
    EXPECT_EQ(launcher_.spawned().size(), 2u) << "web was not spawned while db is down";

    fireRestart(); // db's
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(launcher_.spawned().back(), executableOf("web"));
}

TEST_F(DependencyTest, DependentsOfARecoveredDependencyRestartWithinTheBudget) {
    supervisor().useRestartBudget(1, 10s);
    supervisor().add(makeSpec("db"));
    for (const char* name : {"a", "b"}) {
        auto spec = makeSpec(name);
        spec.depends_on = {"db"};
        supervisor().add(spec);
    }
    supervisor().startAll();
    clock_.advance(5s);
    exitService("db", exitedWith(1));
    exitService("a", exitedWith(1));
    exitService("b", exitedWith(1));
    clock_.advance(10s);
    fireRestart(); // db's restart takes the only slot of this interval
    EXPECT_EQ(status("db").state, ServiceState::Running);
    EXPECT_EQ(status("a").state, ServiceState::Backoff);
    EXPECT_EQ(status("b").state, ServiceState::Backoff);
    EXPECT_TRUE(happened(listener_, "deferred a 10000ms"));
    EXPECT_TRUE(happened(listener_, "deferred b 20000ms"));
}

TEST_F(DependencyTest, StartingADependentStartsItsStoppedDependency) {
    addDbAndWeb();
    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    supervisor().start("web");
    EXPECT_EQ(status("db").state, ServiceState::Running);
    EXPECT_EQ(status("web").state, ServiceState::Running);
}

TEST_F(DependencyTest, WaitingServiceCanBeStoppedAndIsStoppedAtShutdown) {
    addDbAndWeb(true);
    auto api = makeSpec("api");
    api.depends_on = {"db"};
    supervisor().add(api);
    supervisor().startAll();
    ASSERT_EQ(status("web").state, ServiceState::Waiting);
    expectServiceError([&] { supervisor().start("web"); }, ErrorCode::Busy, "web");

    supervisor().stop("web");
    EXPECT_EQ(status("web").state, ServiceState::Stopped);
    supervisor().notify({"db"}, message("READY=1"));
    EXPECT_EQ(status("web").state, ServiceState::Stopped) << "a stopped service is not woken";
    EXPECT_EQ(status("api").state, ServiceState::Running);

    exitService("api", exitedWith(0));
    bool done = false;
    exitService("db", exitedWith(1));
    supervisor().shutdown([&] { done = true; });
    EXPECT_TRUE(done);
    EXPECT_EQ(status("db").state, ServiceState::Stopped);
}

// ---------------------------------------------------------------------------------------------------------
// Hot standby

class StandbyTest : public SupervisorTest {
  protected:
    ServiceSpec standbySpec(const std::string& name) {
        auto spec = makeSpec(name);
        spec.standby = ServiceSpec::Standby{SIGUSR2};
        return spec;
    }
    // A notify service "db" that is ready, with its standby spawned; returns the standby's pid.
    pid_t startReadyNotifyServiceWithStandby() {
        auto spec = standbySpec("db");
        spec.notify = true;
        supervisor().add(spec);
        supervisor().startAll();
        supervisor().notify({"db"}, message("READY=1"));
        return status("db").standby.pid;
    }
    void exitStandby(const std::string& name, ExitStatus exit) {
        const int pidfd = status(name).standby.pidfd;
        ASSERT_GE(pidfd, 0) << name << " has no standby";
        launcher_.scriptExit(pidfd, exit);
        reactor_.fireFd(pidfd);
    }
};

TEST_F(StandbyTest, StandbyStartsOnceTheMainInstanceRuns) {
    supervisor().add(standbySpec("web"));
    supervisor().startAll();
    ASSERT_EQ(launcher_.requests().size(), 2u);
    EXPECT_FALSE(launcher_.requests()[0].environment.contains("TAU_STANDBY"));
    EXPECT_EQ(launcher_.requests()[1].environment.at("TAU_STANDBY"), "1");
    const auto& web = status("web");
    EXPECT_NE(web.standby.pid, 0);
    EXPECT_NE(web.standby.pid, web.pid);
    EXPECT_TRUE(web.standby.ready) << "a simple service's standby is ready once spawned";
    EXPECT_TRUE(reactor_.watching(web.standby.pidfd));
    const auto owned = supervisor().ownedProcesses();
    EXPECT_NE(std::find(owned.begin(), owned.end(), web.standby.pid), owned.end());
}

TEST_F(StandbyTest, FailureOfTheMainInstancePromotesTheStandbyAtOnce) {
    supervisor().add(standbySpec("web"));
    supervisor().startAll();
    const pid_t standby_pid = status("web").standby.pid;
    const int standby_pidfd = status("web").standby.pidfd;
    clock_.advance(5s);

    exitService("web", killedBy(SIGSEGV));
    const auto& web = status("web");
    EXPECT_EQ(web.state, ServiceState::Running);
    EXPECT_EQ(web.pid, standby_pid);
    EXPECT_EQ(web.pidfd, standby_pidfd);
    EXPECT_EQ(web.standby.pid, 0);
    EXPECT_EQ(web.restarts, 1u);
    EXPECT_EQ(launcher_.processSignals(), (std::vector<FakeLauncher::Signal>{{standby_pidfd, SIGUSR2}}));
    const auto& decision = listener_.exited.back().decision;
    EXPECT_EQ(decision.action, RecoveryAction::PromoteStandby);
    EXPECT_EQ(decision.attempt, 1u) << "the failure counts in the incident";
    EXPECT_NE(decision.reason.find("standby (pid " + std::to_string(standby_pid) + ")"), std::string::npos);
    EXPECT_EQ(listener_.started.back().pid, standby_pid);

    // A new standby follows after the ladder's delay.
    const auto timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(timer), 100ms);
    reactor_.fireTimer(timer);
    EXPECT_NE(status("web").standby.pid, 0);
    EXPECT_EQ(launcher_.spawned().size(), 3u);

    // The promoted process is the main one now: its exit is the service's.
    exitService("web", exitedWith(1));
    EXPECT_EQ(listener_.exited.back().pid, standby_pid);
}

TEST_F(StandbyTest, StandbyTakingOverFromAHungServiceStartsWithACleanSlate) {
    auto spec = standbySpec("web");
    spec.watchdog = 1s;
    supervisor().add(spec);
    supervisor().startAll();
    const pid_t standby_pid = status("web").standby.pid;
    clock_.advance(5s);
    supervisor().notify({"web"}, message("WATCHDOG=trigger"));
    exitService("web", killedBy(SIGABRT));
    EXPECT_EQ(listener_.exited.back().decision.failure_class, FailureClass::Watchdog);
    ASSERT_EQ(status("web").pid, standby_pid);
    EXPECT_FALSE(status("web").kill_reason.has_value());

    // The promoted process's own exit says nothing about the watchdog of its predecessor.
    clock_.advance(5s);
    exitService("web", exitedWith(3));
    EXPECT_EQ(listener_.exited.back().decision.failure_class, FailureClass::Exit);
}

TEST_F(StandbyTest, NotifyStandbyIsPromotedOnlyOnceReady) {
    const pid_t standby_pid = startReadyNotifyServiceWithStandby();
    ASSERT_NE(standby_pid, 0);
    EXPECT_FALSE(status("db").standby.ready);
    const std::map<pid_t, pid_t> parents = {{standby_pid, 1}};
    const auto parent_of = [&](pid_t pid) { return parents.contains(pid) ? parents.at(pid) : 0; };
    EXPECT_EQ(supervisor().serviceOfProcess(standby_pid, parent_of), (ProcessOwner{"db", true}));

    clock_.advance(5s);
    exitService("db", exitedWith(1));
    EXPECT_EQ(status("db").state, ServiceState::Backoff) << "a standby not yet ready cannot take over";
    EXPECT_EQ(listener_.exited.back().decision.action, RecoveryAction::Restart);
}

TEST_F(StandbyTest, ReadyNotifyStandbyTakesOver) {
    const pid_t standby_pid = startReadyNotifyServiceWithStandby();
    supervisor().notify({"db", true}, message("READY=1"));
    EXPECT_TRUE(status("db").standby.ready);
    EXPECT_EQ(status("db").state, ServiceState::Running);

    exitService("db", exitedWith(1));
    EXPECT_EQ(status("db").pid, standby_pid);
    EXPECT_EQ(status("db").state, ServiceState::Running);
}

TEST_F(StandbyTest, FailingStandbyIsRestartedWithoutCostingTheServiceARetry) {
    supervisor().add(standbySpec("web"));
    supervisor().startAll();
    const pid_t first_standby = status("web").standby.pid;
    exitStandby("web", exitedWith(1));
    EXPECT_EQ(status("web").standby.pid, 0);
    EXPECT_TRUE(happened(listener_, "standby exited web " + std::to_string(first_standby) + " restart"));
    EXPECT_EQ(status("web").recovery.failures(), 0u);
    EXPECT_EQ(status("web").state, ServiceState::Running);
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_NE(status("web").standby.pid, 0);
    EXPECT_NE(status("web").standby.pid, first_standby);
}

TEST_F(StandbyTest, StopAndShutdownStopTheStandbyToo) {
    supervisor().add(standbySpec("web"));
    supervisor().startAll();
    const pid_t main_pid = status("web").pid;
    const pid_t standby_pid = status("web").standby.pid;
    bool done = false;
    supervisor().shutdown([&] { done = true; });
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{standby_pid, SIGTERM}}))
        << "the standby goes first";
    exitStandby("web", killedBy(SIGTERM));
    EXPECT_TRUE(happened(listener_, "standby exited web " + std::to_string(standby_pid) + " stopped"));
    EXPECT_EQ(launcher_.signals().back(), (FakeLauncher::Signal{main_pid, SIGTERM}));
    EXPECT_FALSE(done);
    exitService("web", killedBy(SIGTERM));
    EXPECT_TRUE(done);
    EXPECT_TRUE(reactor_.pendingTimers().empty());
}

TEST_F(StandbyTest, GivingUpStopsTheStandby) {
    auto spec = standbySpec("web");
    spec.policy.ladder.front().strategy = RecoveryStrategy::None;
    supervisor().add(spec);
    supervisor().startAll();
    const pid_t standby_pid = status("web").standby.pid;
    exitService("web", exitedWith(1));
    EXPECT_EQ(status("web").state, ServiceState::Failed);
    EXPECT_NE(std::find(launcher_.signals().begin(), launcher_.signals().end(),
                        FakeLauncher::Signal{standby_pid, SIGTERM}),
              launcher_.signals().end());
}

// ---------------------------------------------------------------------------------------------------------
// Failures reported from outside

TEST_F(SupervisorTest, ReportedFailureStopsTheServiceAndRecoversItAsThatClass) {
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    const pid_t pid = status("web").pid;
    clock_.advance(5s);
    supervisor().recoverFailing("web", KillReason::Probe, "liveness probe failed 3 times");
    EXPECT_EQ(status("web").state, ServiceState::Stopping);
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{pid, SIGTERM}}));
    EXPECT_TRUE(happened(listener_, "probe web"));

    exitService("web", killedBy(SIGTERM));
    const auto& decision = listener_.exited.back().decision;
    EXPECT_EQ(decision.failure_class, FailureClass::Probe);
    EXPECT_EQ(decision.action, RecoveryAction::Restart);
    EXPECT_EQ(decision.reason.rfind("liveness probe failed 3 times: ", 0), 0u) << decision.reason;
    EXPECT_EQ(status("web").state, ServiceState::Backoff);

    expectServiceError([&] { supervisor().recoverFailing("web", KillReason::ResourceLimit, "x"); },
                       ErrorCode::Busy, "web");
    expectServiceError([&] { supervisor().recoverFailing("nope", KillReason::Probe, "x"); },
                       ErrorCode::NotFound, "nope");
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_TRUE(status("web").kill_detail.empty());
}

TEST_F(SupervisorTest, KillReasonsMapToFailureClasses) {
    EXPECT_EQ(failureClassOf(KillReason::Watchdog), FailureClass::Watchdog);
    EXPECT_EQ(failureClassOf(KillReason::StartTimeout), FailureClass::Start);
    EXPECT_EQ(failureClassOf(KillReason::ResourceLimit), FailureClass::ResourceLimit);
    EXPECT_EQ(failureClassOf(KillReason::Probe), FailureClass::Probe);
}

} // namespace
} // namespace tau

namespace tau {
namespace {

// ---------------------------------------------------------------------------------------------------------
// System safe mode

class SystemSafeModeTest : public SupervisorTest {
  protected:
    // A critical "db" that is given up after one failure, and two ordinary services.
    void addServices() {
        auto db = makeSpec("db");
        db.critical = true;
        db.policy.ladder.front().attempts = 1;
        supervisor().add(db);
        supervisor().add(makeSpec("web"));
        supervisor().add(makeSpec("batch"));
        auto internal = makeSpec("log");
        internal.internal = true;
        supervisor().add(internal);
    }
};

TEST_F(SystemSafeModeTest, LosingACriticalServiceStopsTheOthersUntilItIsBack) {
    supervisor().useSystemSafeMode(true);
    addServices();
    supervisor().startAll();
    clock_.advance(5s);
    exitService("batch", exitedWith(1)); // in backoff: its restart is cancelled too
    exitService("db", exitedWith(1));
    reactor_.fireTimer(reactor_.pendingTimers().back()); // db's first and only restart
    exitService("db", exitedWith(1));
    ASSERT_EQ(status("db").state, ServiceState::Failed);

    EXPECT_TRUE(supervisor().inSystemSafeMode());
    EXPECT_TRUE(happened(listener_, "system safe mode entered by db"));
    EXPECT_EQ(status("web").state, ServiceState::Stopping);
    EXPECT_EQ(status("batch").state, ServiceState::Stopped);
    EXPECT_EQ(status("log").state, ServiceState::Running) << "the suite's own services stay";
    exitService("web", killedBy(SIGTERM));
    EXPECT_EQ(status("web").state, ServiceState::Stopped);

    supervisor().start("db");
    EXPECT_FALSE(supervisor().inSystemSafeMode());
    EXPECT_TRUE(happened(listener_, "system safe mode left by db"));
    EXPECT_EQ(status("web").state, ServiceState::Running);
    EXPECT_EQ(status("batch").state, ServiceState::Running);
}

TEST_F(SystemSafeModeTest, OffByDefault) {
    addServices();
    supervisor().startAll();
    exitService("db", exitedWith(1));
    reactor_.fireTimer(reactor_.onlyTimer());
    exitService("db", exitedWith(1));
    EXPECT_EQ(status("db").state, ServiceState::Failed);
    EXPECT_FALSE(supervisor().inSystemSafeMode());
    EXPECT_EQ(status("web").state, ServiceState::Running);
}

TEST_F(SystemSafeModeTest, CriticalServiceInSafeModeHoldsTheSystemUntilItLeavesSafeMode) {
    supervisor().useSystemSafeMode(true);
    auto db = makeSpec("db");
    db.critical = true;
    LadderStep safe;
    safe.strategy = RecoveryStrategy::SafeMode;
    safe.delay_seconds = 0;
    safe.jitter = 0;
    db.policy.ladder = {safe};
    db.safe_mode = ServiceSpec::SafeMode{db.spawn, 30s};
    db.safe_mode->spawn.argv = {"/usr/bin/db-safe"};
    supervisor().add(db);
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    clock_.advance(5s);

    exitService("db", exitedWith(1));
    EXPECT_TRUE(status("db").running_safe_mode);
    EXPECT_TRUE(supervisor().inSystemSafeMode());
    exitService("web", killedBy(SIGTERM));
    EXPECT_EQ(status("web").state, ServiceState::Stopped);

    // Stable in safe mode: db goes back to its normal command, and once that runs the system is back too.
    const auto safe_mode_timer = reactor_.pendingTimers().front();
    EXPECT_EQ(reactor_.delayOf(safe_mode_timer), 30s);
    reactor_.fireTimer(safe_mode_timer);
    exitService("db", killedBy(SIGTERM));
    EXPECT_FALSE(status("db").running_safe_mode);
    EXPECT_EQ(status("db").state, ServiceState::Running);
    EXPECT_FALSE(supervisor().inSystemSafeMode());
    EXPECT_EQ(status("web").state, ServiceState::Running);
}

} // namespace
} // namespace tau

namespace tau {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Resource limits watched from /proc

TEST(NextSampleInterval, KeepsSamplingWithinItsShareOfACpu) {
    EXPECT_EQ(nextSampleInterval(0ns, 5000ms, 0.0005), 5000ms);
    EXPECT_EQ(nextSampleInterval(1ms, 5000ms, 0.0005), 5000ms) << "1 ms every 5 s is 0.02 %";
    EXPECT_EQ(nextSampleInterval(20ms, 5000ms, 0.0005), 40000ms) << "20 ms every 40 s is 0.05 %";
    EXPECT_EQ(nextSampleInterval(20ms, 5000ms, 0), 5000ms);
}

class LimitEnforcerTest : public SupervisorTest {
  protected:
    static constexpr std::uint64_t kMiB = 1024 * 1024;

    LimitEnforcer& enforcer(std::map<std::string, ResourceLimits> limits) {
        enforcer_.emplace(reactor_, supervisor(), sampler_, clock_, std::move(limits), LimitWatchOptions{},
                          [this] { return cpu_time_ += cpu_time_per_call_; });
        return *enforcer_;
    }
    // The service's main process as the fake /proc shows it, with `rss` bytes resident.
    void showInProc(const std::string& name, std::uint64_t rss, std::uint64_t cpu_ticks = 0) {
        const pid_t pid = status(name).pid;
        proc_.add(pid, name, 1, cpu_ticks, 0, 100, rss / static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
    }

    test::FakeProc proc_;
    ProcessTreeSampler sampler_{proc_.root()};
    std::chrono::nanoseconds cpu_time_{0};
    std::chrono::nanoseconds cpu_time_per_call_{0};
    std::optional<LimitEnforcer> enforcer_;
};

TEST_F(LimitEnforcerTest, ServiceOverItsMemoryLimitForThreeSamplesIsStoppedAndRecovered) {
    supervisor().add(makeSpec("web"));
    supervisor().add(makeSpec("db"));
    supervisor().startAll();
    auto& watch = enforcer({{"web", {64 * kMiB, std::nullopt}}});
    const pid_t pid = status("web").pid;
    showInProc("web", 100 * kMiB);
    showInProc("db", 500 * kMiB); // no limits of its own here: not watched

    watch.start();
    const auto timer = reactor_.onlyTimer();
    EXPECT_EQ(reactor_.delayOf(timer), 5s);
    reactor_.fireTimer(timer);
    clock_.advance(5s);
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(status("web").state, ServiceState::Running) << "two samples over are not enough";
    clock_.advance(5s);
    reactor_.fireTimer(reactor_.onlyTimer());

    EXPECT_EQ(status("web").state, ServiceState::Stopping);
    EXPECT_EQ(status("db").state, ServiceState::Running);
    EXPECT_TRUE(happened(listener_, "resource limit web"));
    EXPECT_EQ(status("web").kill_detail, "memory 100 MiB over its limit of 64 MiB for 3 samples");
    EXPECT_EQ(launcher_.signals(), (std::vector<FakeLauncher::Signal>{{pid, SIGTERM}}));

    exitService("web", killedBy(SIGTERM));
    EXPECT_EQ(listener_.exited.back().decision.failure_class, FailureClass::ResourceLimit);
    EXPECT_EQ(status("web").state, ServiceState::Backoff);
}

TEST_F(LimitEnforcerTest, ServiceWithinItsLimitsIsLeftAlone) {
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    auto& watch = enforcer({{"web", {64 * kMiB, 50.0}}});
    showInProc("web", 64 * kMiB);
    for (int round = 0; round < 5; ++round) {
        watch.sampleOnce();
        clock_.advance(5s);
    }
    EXPECT_EQ(status("web").state, ServiceState::Running);
}

TEST_F(LimitEnforcerTest, ExpensiveRoundsSpaceTheNextOnesOut) {
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    auto& watch = enforcer({{"web", {64 * kMiB, std::nullopt}}});
    showInProc("web", kMiB);
    cpu_time_per_call_ = 20ms; // every round costs 20 ms of CPU time
    watch.start();
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(watch.interval(), 40s);
    EXPECT_EQ(reactor_.delayOf(reactor_.onlyTimer()), 40s);
}

// ---------------------------------------------------------------------------------------------------------
// Adopting what a previous supervisor left running

class RecordingJournal final : public SupervisorJournal {
  public:
    void record(const ServiceStatus& service) override {
        records.push_back({service.spec.name, service.state, service.pid});
    }
    struct Record {
        std::string name;
        ServiceState state;
        pid_t pid;
    };
    std::vector<Record> records;
};

class AdoptionTest : public SupervisorTest {
  protected:
    // A process the previous supervisor started, still running: the pidfd is one the test opens.
    AdoptedProcess stillRunning(pid_t pid) {
        return AdoptedProcess{pid, launcher_.open(pid), true, clock_.now() - 30s,
                              std::chrono::system_clock::now() - 30s};
    }
};

TEST_F(AdoptionTest, ARunningServiceKeepsItsPidAndIsNotStartedAgain) {
    supervisor().add(makeSpec("web"));
    AdoptedService adopted;
    adopted.state = ServiceState::Running;
    adopted.pid = 4242;
    adopted.main = stillRunning(4242);
    adopted.restarts = 7;
    adopted.recovery.failures = 2;
    supervisor().adopt("web", adopted);
    supervisor().startAll();

    EXPECT_TRUE(launcher_.spawned().empty());
    const auto& web = status("web");
    EXPECT_EQ(web.state, ServiceState::Running);
    EXPECT_EQ(web.pid, 4242);
    EXPECT_EQ(web.restarts, 7u);
    EXPECT_EQ(web.recovery.failures(), 2u);
    EXPECT_TRUE(reactor_.watching(web.pidfd));
    EXPECT_EQ(web.uptime(clock_.now()), 30s);
}

TEST_F(AdoptionTest, AnAdoptedProcessThatExitsLaterIsRecoveredOnItsLadder) {
    supervisor().add(makeSpec("web"));
    AdoptedService adopted;
    adopted.state = ServiceState::Running;
    adopted.pid = 4242;
    adopted.main = stillRunning(4242);
    adopted.recovery.failures = 2; // one more failure is the last of the three attempts of the ladder
    adopted.main->started_steady = clock_.now();
    supervisor().adopt("web", adopted);

    ExitStatus unknown;
    unknown.known = false;
    exitService("web", unknown);
    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].pid, 4242);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::Restart);
    EXPECT_EQ(listener_.exited[0].decision.attempt, 3u);
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(launcher_.spawned(), (std::vector<std::string>{executableOf("web")}));
    EXPECT_EQ(status("web").state, ServiceState::Running);
}

TEST_F(AdoptionTest, AServiceThatEndedUnseenIsRecoveredAtOnce) {
    supervisor().add(makeSpec("web"));
    AdoptedService adopted;
    adopted.state = ServiceState::Running;
    adopted.pid = 4242; // gone: no main process to adopt
    adopted.started_steady = clock_.now() - 10s;
    supervisor().adopt("web", adopted);
    supervisor().startAll();

    ASSERT_EQ(listener_.exited.size(), 1u);
    EXPECT_EQ(listener_.exited[0].pid, 4242);
    EXPECT_FALSE(listener_.exited[0].status.known);
    EXPECT_EQ(listener_.exited[0].decision.action, RecoveryAction::Restart);
    EXPECT_EQ(status("web").state, ServiceState::Backoff);
    EXPECT_TRUE(launcher_.spawned().empty()) << "startAll() must not start it a second time";
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

TEST_F(AdoptionTest, StoppedAndFailedServicesStaySo) {
    supervisor().add(makeSpec("stopped"));
    supervisor().add(makeSpec("failed"));
    AdoptedService stopped;
    stopped.state = ServiceState::Stopped;
    supervisor().adopt("stopped", stopped);
    AdoptedService failed;
    failed.state = ServiceState::Failed;
    supervisor().adopt("failed", failed);
    supervisor().startAll();
    EXPECT_TRUE(launcher_.spawned().empty());
    EXPECT_EQ(status("stopped").state, ServiceState::Stopped);
    EXPECT_EQ(status("failed").state, ServiceState::Failed);
}

TEST_F(AdoptionTest, APendingRestartKeepsItsTime) {
    supervisor().add(makeSpec("web"));
    AdoptedService adopted;
    adopted.state = ServiceState::Backoff;
    adopted.restart_due = clock_.now() + 40s;
    supervisor().adopt("web", adopted);
    supervisor().startAll();
    EXPECT_TRUE(launcher_.spawned().empty());
    EXPECT_EQ(reactor_.delayOf(reactor_.onlyTimer()), 40s);
    reactor_.fireTimer(reactor_.onlyTimer());
    EXPECT_EQ(launcher_.spawned().size(), 1u);
}

TEST_F(AdoptionTest, ANotifyServiceThatWasNotReadyYetGetsAFreshStartTimeout) {
    auto spec = makeSpec("web");
    spec.notify = true;
    spec.start_timeout = 20s;
    supervisor().add(spec);
    AdoptedService adopted;
    adopted.state = ServiceState::Starting;
    adopted.pid = 4242;
    adopted.main = stillRunning(4242);
    adopted.main->ready = false;
    supervisor().adopt("web", adopted);
    EXPECT_EQ(status("web").state, ServiceState::Starting);
    EXPECT_EQ(reactor_.delayOf(reactor_.onlyTimer()), 20s);
}

TEST_F(AdoptionTest, AnAdoptedStandbyKeepsItsRoleAndTakesOverWhenTheMainInstanceFails) {
    auto spec = makeSpec("web");
    spec.standby = ServiceSpec::Standby{SIGUSR2};
    supervisor().add(spec);
    AdoptedService adopted;
    adopted.state = ServiceState::Running;
    adopted.pid = 4242;
    adopted.main = stillRunning(4242);
    adopted.standby = stillRunning(4343);
    supervisor().adopt("web", adopted);
    supervisor().startAll();
    EXPECT_TRUE(launcher_.spawned().empty()) << "neither instance is started again";
    EXPECT_EQ(status("web").standby.pid, 4343);

    exitService("web", killedBy(SIGKILL));
    EXPECT_EQ(status("web").pid, 4343) << "the adopted standby took over";
    EXPECT_EQ(status("web").state, ServiceState::Running);
    ASSERT_FALSE(launcher_.processSignals().empty());
    EXPECT_EQ(launcher_.processSignals().back().signal, SIGUSR2);
}

TEST_F(AdoptionTest, EveryChangeOfAConfiguredServiceIsJournaled) {
    RecordingJournal journal;
    supervisor().useJournal(journal);
    auto internal = makeSpec("log");
    internal.internal = true;
    supervisor().add(internal);
    supervisor().add(makeSpec("web"));
    supervisor().startAll();
    exitService("web", killedBy(SIGKILL));
    std::vector<ServiceState> states;
    for (const auto& record : journal.records) {
        EXPECT_EQ(record.name, "web") << "the suite's own services are not journaled";
        states.push_back(record.state);
    }
    EXPECT_EQ(states, (std::vector<ServiceState>{ServiceState::Running, ServiceState::Backoff}));
}

} // namespace
} // namespace tau
