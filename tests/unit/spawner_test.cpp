#include "tau/spawner.h"
#include "temp_dir.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <optional>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Generous: a child that has been told to exit does so in far less, and only a broken test waits this long.
constexpr auto kExitTimeout = 10s;

using test::waitReadable;

using test::readFile;

// Owns a spawned process: waits for it with poll() on its pidfd and, if the test did not, kills its whole
// group and reaps it, so that no test leaves a process behind.
class Child {
  public:
    explicit Child(SpawnedProcess process) : process_(process) {}
    ~Child() {
        if (!reaped_) {
            signalProcessGroup(process_.pid, SIGKILL);
            signalPidfd(process_.pidfd, SIGKILL);
            waitForExit();
        }
        if (process_.pidfd >= 0) {
            ::close(process_.pidfd);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return process_.pid; }
    int pidfd() const { return process_.pidfd; }

    std::optional<ExitStatus> waitForExit() {
        if (!waitReadable(process_.pidfd, kExitTimeout)) {
            ADD_FAILURE() << "process " << process_.pid << " did not exit in time";
            return std::nullopt;
        }
        auto status = reapPidfd(process_.pidfd);
        reaped_ = status.has_value();
        return status;
    }

  private:
    SpawnedProcess process_;
    bool reaped_ = false;
};

// Makes this process the reaper of its orphaned descendants for one test.
class SubreaperScope {
  public:
    SubreaperScope() { EXPECT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
    ~SubreaperScope() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
    SubreaperScope(const SubreaperScope&) = delete;
    SubreaperScope& operator=(const SubreaperScope&) = delete;
};

// A descendant that is not our child yet: it becomes ours (under SubreaperScope) when its parent dies.
class Orphan {
  public:
    explicit Orphan(pid_t pid) : pidfd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))) {}
    ~Orphan() {
        if (pidfd_ < 0) {
            return;
        }
        if (!reaped_) {
            signalPidfd(pidfd_, SIGKILL);
            waitForExit();
        }
        ::close(pidfd_);
    }
    Orphan(const Orphan&) = delete;
    Orphan& operator=(const Orphan&) = delete;

    int pidfd() const { return pidfd_; }

    std::optional<ExitStatus> waitForExit() {
        if (!waitReadable(pidfd_, kExitTimeout)) {
            ADD_FAILURE() << "descendant did not exit in time";
            return std::nullopt;
        }
        auto status = reapPidfd(pidfd_);
        reaped_ = status.has_value();
        return status;
    }

  private:
    int pidfd_;
    bool reaped_ = false;
};

SpawnRequest command(std::vector<std::string> argv) {
    SpawnRequest request;
    request.argv = std::move(argv);
    return request;
}

SpawnRequest shell(const std::string& script) {
    return command({"/bin/sh", "-c", script});
}

// The message of the SpawnError a request throws, or a test failure.
std::string spawnErrorOf(const SpawnRequest& request) {
    try {
        Child child(spawnProcess(request));
        ADD_FAILURE() << "spawnProcess succeeded unexpectedly";
    } catch (const SpawnError& error) {
        return error.what();
    }
    return {};
}

// The descriptors open in this process, once the spawner holds the slots it reserves on its first spawn.
std::size_t openDescriptorCount() {
    static const bool slots_reserved = [] {
        Child(spawnProcess(shell("exit 0"))).waitForExit();
        return true;
    }();
    (void)slots_reserved;
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        ++count;
    }
    return count;
}

// A pipe whose write end a child receives (SpawnRequest::pass_fds), for it to report back through.
class ReportPipe {
  public:
    ReportPipe() {
        if (::pipe(fds_) != 0) {
            ADD_FAILURE() << "pipe failed";
        }
        // Only the write end may reach the child.
        ::fcntl(fds_[0], F_SETFD, FD_CLOEXEC);
    }
    ~ReportPipe() {
        closeWriteEnd();
        ::close(fds_[0]);
    }
    ReportPipe(const ReportPipe&) = delete;
    ReportPipe& operator=(const ReportPipe&) = delete;

    int writeEnd() const { return fds_[1]; }
    void closeWriteEnd() {
        if (fds_[1] >= 0) {
            ::close(fds_[1]);
            fds_[1] = -1;
        }
    }

    // Reads up to the first newline, waiting with poll() for each chunk.
    std::string readLine() {
        std::string line;
        while (line.find('\n') == std::string::npos) {
            if (!waitReadable(fds_[0], kExitTimeout)) {
                ADD_FAILURE() << "nothing arrived on the report pipe";
                break;
            }
            char buffer[128];
            const ssize_t got = ::read(fds_[0], buffer, sizeof buffer);
            if (got <= 0) {
                break;
            }
            line.append(buffer, static_cast<std::size_t>(got));
        }
        return line.substr(0, line.find('\n'));
    }

  private:
    int fds_[2] = {-1, -1};
};

// ---------------------------------------------------------------------------------------------------------
// Exit statuses

TEST(Spawner, ReapsAnExitCodeThroughThePidfd) {
    Child child(spawnProcess(shell("exit 3")));
    EXPECT_GT(child.pid(), 0);
    EXPECT_GE(child.pidfd(), 0);
    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->exit_code, 3);
    EXPECT_EQ(status->signal, 0);
    EXPECT_FALSE(status->core_dumped);
    EXPECT_FALSE(status->success());
    EXPECT_EQ(status->describe(), "exited with status 3");
}

TEST(Spawner, CleanExitIsSuccess) {
    Child child(spawnProcess(shell("exit 0")));
    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success());
    EXPECT_EQ(status->describe(), "exited with status 0");
}

TEST(Spawner, ReportsDeathBySignal) {
    Child child(spawnProcess(shell("kill -9 $$")));
    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->signal, SIGKILL);
    EXPECT_EQ(status->exit_code, -1);
    EXPECT_FALSE(status->core_dumped);
    EXPECT_FALSE(status->success());
    EXPECT_EQ(status->describe(), "killed by SIGKILL");
}

TEST(Spawner, RunningProcessIsNotReapedYet) {
    Child child(spawnProcess(command({"/bin/sleep", "1000"})));
    EXPECT_FALSE(reapPidfd(child.pidfd()).has_value());
    ASSERT_TRUE(signalPidfd(child.pidfd(), SIGTERM));
    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->signal, SIGTERM);
    EXPECT_EQ(status->describe(), "killed by SIGTERM");
}

TEST(Spawner, SignalPidfdFailsOnceTheProcessIsReaped) {
    Child child(spawnProcess(shell("exit 0")));
    ASSERT_TRUE(child.waitForExit().has_value());
    EXPECT_FALSE(signalPidfd(child.pidfd(), SIGTERM));
}

TEST(Spawner, StatusReapedElsewhereIsReportedAsUnknown) {
    Child child(spawnProcess(shell("exit 5")));
    ASSERT_TRUE(waitReadable(child.pidfd(), kExitTimeout));
    int raw_status = 0;
    ASSERT_EQ(::waitpid(child.pid(), &raw_status, 0), child.pid());
    const auto status = reapPidfd(child.pidfd());
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->exit_code, -1);
    EXPECT_EQ(status->signal, 0);
    EXPECT_FALSE(status->success());
}

// ---------------------------------------------------------------------------------------------------------
// What the child gets

TEST(Spawner, EnvironmentOverridesReachTheChild) {
    test::TempDir directory;
    const fs::path output = directory.path() / "environment";
    ASSERT_EQ(::setenv("TAU_SPAWNER_INHERITED", "kept", 1), 0);
    ASSERT_EQ(::setenv("TAU_SPAWNER_REPLACED", "old", 1), 0);

    SpawnRequest request = shell("printf '%s|%s|%s' \"$TAU_SPAWNER_NEW\" \"$TAU_SPAWNER_REPLACED\" "
                                 "\"$TAU_SPAWNER_INHERITED\" > \"$1\"; "
                                 "env | grep -c '^TAU_SPAWNER_REPLACED=' >> \"$1\"");
    request.argv.push_back("sh");
    request.argv.push_back(output.string());
    request.environment = {{"TAU_SPAWNER_NEW", "with space and \"quotes\""}, {"TAU_SPAWNER_REPLACED", "new"}};
    Child child(spawnProcess(request));
    const auto status = child.waitForExit();
    ::unsetenv("TAU_SPAWNER_INHERITED");
    ::unsetenv("TAU_SPAWNER_REPLACED");

    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    // The replaced variable appears exactly once, with the new value.
    EXPECT_EQ(readFile(output), "with space and \"quotes\"|new|kept1\n");
}

TEST(Spawner, UnsetEnvironmentHidesInheritedVariables) {
    test::TempDir directory;
    const fs::path output = directory.path() / "environment";
    ASSERT_EQ(::setenv("TAU_SPAWNER_SECRET", "hidden", 1), 0);
    ASSERT_EQ(::setenv("TAU_SPAWNER_VISIBLE", "shown", 1), 0);

    SpawnRequest request = shell("printf '%s|%s|%s' \"${TAU_SPAWNER_SECRET-unset}\" \"$TAU_SPAWNER_VISIBLE\" "
                                 "\"${TAU_SPAWNER_NOT_THERE-unset}\" > \"$1\"");
    request.argv.push_back("sh");
    request.argv.push_back(output.string());
    // Removing a variable that does not exist is harmless.
    request.unset_environment = {"TAU_SPAWNER_SECRET", "TAU_SPAWNER_NOT_THERE"};
    Child child(spawnProcess(request));
    const auto status = child.waitForExit();
    ::unsetenv("TAU_SPAWNER_SECRET");
    ::unsetenv("TAU_SPAWNER_VISIBLE");

    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    EXPECT_EQ(readFile(output), "unset|shown|unset");
}

// Runs `script` (with "$1" the output file) under `request`'s settings and returns what it wrote.
std::string outputOf(SpawnRequest request, const std::string& script) {
    test::TempDir directory;
    const fs::path output = directory.path() / "output";
    const SpawnRequest base = shell(script);
    request.argv = base.argv;
    request.argv.push_back("sh");
    request.argv.push_back(output.string());
    Child child(spawnProcess(request));
    const auto status = child.waitForExit();
    EXPECT_TRUE(status && status->success()) << (status ? status->describe() : "no exit");
    return readFile(output);
}

TEST(Spawner, AppliesUmaskNiceAndResourceLimits) {
    SpawnRequest request;
    request.umask = 027;
    request.nice = 7; // the nice value itself, as systemd's Nice= sets it
    request.rlimits = {{RLIMIT_NOFILE, 64, 128}, {RLIMIT_CORE, 0, 0}};
    // Run under `nice`, the test starts above 7, and only root may lower it again.
    if (::getpriority(PRIO_PROCESS, 0) > 7 && ::geteuid() != 0)
        GTEST_SKIP() << "running with a nice value above 7, without the privilege to lower it";
    EXPECT_EQ(outputOf(request, "printf '%s %s %s %s' \"$(umask)\" \"$(ulimit -Sn)\" \"$(ulimit -Hn)\" "
                                "\"$(ulimit -c)\" > \"$1\"; cut -d' ' -f19 /proc/self/stat >> \"$1\""),
              "0027 64 128 07\n");
}

TEST(Spawner, PinsTheChildToTheRequestedCpus) {
    SpawnRequest request;
    request.cpu_affinity = {0};
    EXPECT_EQ(outputOf(request, "grep Cpus_allowed_list /proc/self/status | cut -f2 > \"$1\""), "0\n");
}

TEST(Spawner, SetsTheOomScoreAdjustment) {
    SpawnRequest request;
    request.oom_score_adj = 500; // raising it needs no privilege
    EXPECT_EQ(outputOf(request, "cat /proc/self/oom_score_adj > \"$1\""), "500\n");
}

TEST(Spawner, RedirectsStdoutAndStderr) {
    int out[2];
    int err[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
    SpawnRequest request = shell("echo to-out; echo to-err >&2");
    request.stdout_fd = out[1];
    request.stderr_fd = err[1];
    Child child(spawnProcess(request));
    ::close(out[1]);
    ::close(err[1]);
    ASSERT_TRUE(child.waitForExit().has_value());
    char buffer[64] = {};
    EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(::read(out[0], buffer, sizeof buffer))),
              "to-out\n");
    EXPECT_EQ(std::string(buffer, static_cast<std::size_t>(::read(err[0], buffer, sizeof buffer))),
              "to-err\n");
    ::close(out[0]);
    ::close(err[0]);
}

TEST(Spawner, ImpossibleResourceLimitFailsTheSpawnNamingTheStep) {
    SpawnRequest request = shell("exit 0");
    request.rlimits = {{RLIMIT_NOFILE, 128, 64}}; // a soft limit above the hard one: refused even for root
    try {
        spawnProcess(request);
        ADD_FAILURE() << "spawn succeeded";
    } catch (const SpawnError& e) {
        EXPECT_NE(std::string(e.what()).find("set resource limits"), std::string::npos) << e.what();
    }
}

TEST(Spawner, MovesTheChildIntoTheCgroupBeforeExec) {
    // A regular file stands in for cgroup.procs: what the child writes there is what the kernel would get.
    test::TempDir directory;
    const fs::path procs = directory.path() / "cgroup.procs";
    test::writeFile(procs, "");
    const int procs_fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(procs_fd, 0) << std::strerror(errno);
    SpawnRequest request = shell("exit 0");
    request.cgroup_procs_fd = procs_fd;
    Child child(spawnProcess(request));
    const auto status = child.waitForExit();
    ::close(procs_fd);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    EXPECT_EQ(readFile(procs), "0");
}

TEST(Spawner, ACgroupThatCannotBeJoinedFailsTheSpawnNamingIt) {
    test::TempDir directory;
    const fs::path procs = directory.path() / "cgroup.procs";
    test::writeFile(procs, "");
    const int read_only = ::open(procs.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(read_only, 0) << std::strerror(errno);
    const std::size_t descriptors_before = openDescriptorCount();
    SpawnRequest request = shell("exit 0");
    request.cgroup_procs_fd = read_only;
    const std::string message = spawnErrorOf(request);
    EXPECT_EQ(openDescriptorCount(), descriptors_before);
    ::close(read_only);
    EXPECT_NE(message.find("cgroup"), std::string::npos) << message;
    EXPECT_NE(message.find(procs.string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(EBADF)), std::string::npos) << message;
    EXPECT_EQ(readFile(procs), "");
}

TEST(Spawner, RunsInTheWorkingDirectory) {
    test::TempDir directory;
    SpawnRequest request = shell("pwd -P > where; echo here > marker");
    request.working_directory = directory.path();
    Child child(spawnProcess(request));
    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    EXPECT_EQ(readFile(directory.path() / "marker"), "here\n");
    EXPECT_EQ(readFile(directory.path() / "where"), fs::canonical(directory.path()).string() + "\n");
}

TEST(Spawner, InheritsTheWorkingDirectoryWhenNoneIsGiven) {
    test::TempDir directory;
    const fs::path output = directory.path() / "where";
    SpawnRequest request = shell("pwd -P > \"$1\"");
    request.argv.push_back("sh");
    request.argv.push_back(output.string());
    Child child(spawnProcess(request));
    ASSERT_TRUE(child.waitForExit().has_value());
    EXPECT_EQ(readFile(output), fs::canonical(fs::current_path()).string() + "\n");
}

TEST(Spawner, ChildLeadsItsOwnSessionAndProcessGroup) {
    Child child(spawnProcess(command({"/bin/sleep", "1000"})));
    EXPECT_EQ(::getpgid(child.pid()), child.pid());
    EXPECT_EQ(::getsid(child.pid()), child.pid());
    EXPECT_NE(::getpgid(child.pid()), ::getpgrp());
    ASSERT_TRUE(signalPidfd(child.pidfd(), SIGKILL));
    ASSERT_TRUE(child.waitForExit().has_value());
}

TEST(Spawner, ChildStartsWithDefaultSignalDispositionsAndAnEmptyMask) {
    // A daemon blocks its signals for signalfd and may ignore some: none of that may leak into a service.
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigset_t previous_mask;
    ASSERT_EQ(::sigprocmask(SIG_BLOCK, &blocked, &previous_mask), 0);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous_usr1 {};
    ASSERT_EQ(::sigaction(SIGUSR1, &ignore, &previous_usr1), 0);

    std::optional<ExitStatus> term_status;
    std::optional<ExitStatus> usr1_status;
    {
        Child blocked_in_parent(spawnProcess(command({"/bin/sleep", "1000"})));
        Child ignored_in_parent(spawnProcess(command({"/bin/sleep", "1000"})));
        EXPECT_TRUE(signalPidfd(blocked_in_parent.pidfd(), SIGTERM));
        EXPECT_TRUE(signalPidfd(ignored_in_parent.pidfd(), SIGUSR1));
        term_status = blocked_in_parent.waitForExit();
        usr1_status = ignored_in_parent.waitForExit();
    }
    ::sigaction(SIGUSR1, &previous_usr1, nullptr);
    ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);

    ASSERT_TRUE(term_status.has_value());
    EXPECT_EQ(term_status->signal, SIGTERM);
    ASSERT_TRUE(usr1_status.has_value());
    EXPECT_EQ(usr1_status->signal, SIGUSR1);
}

TEST(Spawner, SwitchesToTheRequestedUser) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "switching users needs root";
    }
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    const uid_t nobody_uid = nobody->pw_uid;
    const gid_t nobody_gid = nobody->pw_gid;

    ReportPipe report;
    SpawnRequest request = shell("echo \"$(id -u) $(id -g)\" >&3");
    request.pass_fds = {report.writeEnd()};
    request.user = "nobody";
    Child child(spawnProcess(request));
    report.closeWriteEnd();
    const std::string ids = report.readLine();
    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    EXPECT_EQ(ids, std::to_string(nobody_uid) + " " + std::to_string(nobody_gid));
}

// ---------------------------------------------------------------------------------------------------------
// Failures

TEST(Spawner, MissingExecutableThrowsWithPathAndReason) {
    const std::string path = "/nonexistent-tau-dir/no-such-program";
    const std::string message = spawnErrorOf(command({path}));
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(ENOENT)), std::string::npos) << message;
    EXPECT_NE(message.find("exec"), std::string::npos) << message;
}

TEST(Spawner, NonExecutableFileThrowsPermissionDenied) {
    test::TempDir directory;
    const fs::path script = directory.path() / "not-executable";
    std::ofstream(script) << "#!/bin/sh\nexit 0\n";
    fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
    const std::string message = spawnErrorOf(command({script.string()}));
    EXPECT_NE(message.find(script.string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(EACCES)), std::string::npos) << message;
}

TEST(Spawner, MissingWorkingDirectoryThrowsNamingTheDirectory) {
    test::TempDir directory;
    const fs::path missing = directory.path() / "missing";
    SpawnRequest request = shell("exit 0");
    request.working_directory = missing;
    const std::string message = spawnErrorOf(request);
    EXPECT_NE(message.find("chdir"), std::string::npos) << message;
    EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(ENOENT)), std::string::npos) << message;
}

TEST(Spawner, UnknownUserThrows) {
    SpawnRequest request = shell("exit 0");
    request.user = "tau-no-such-user-x9";
    const std::string message = spawnErrorOf(request);
    EXPECT_NE(message.find("unknown user"), std::string::npos) << message;
    EXPECT_NE(message.find("tau-no-such-user-x9"), std::string::npos) << message;
}

TEST(Spawner, UnknownGroupThrows) {
    SpawnRequest request = shell("exit 0");
    request.group = "tau-no-such-group-x9";
    const std::string message = spawnErrorOf(request);
    EXPECT_NE(message.find("unknown group"), std::string::npos) << message;
    EXPECT_NE(message.find("tau-no-such-group-x9"), std::string::npos) << message;
}

TEST(Spawner, EmptyArgvThrows) {
    EXPECT_THROW(spawnProcess(SpawnRequest{}), SpawnError);
}

TEST(Spawner, FailedExecLeavesNoChildAndNoDescriptorBehind) {
    const std::size_t descriptors_before = openDescriptorCount();
    EXPECT_THROW(spawnProcess(command({"/nonexistent-tau-dir/x"})), SpawnError);
    EXPECT_EQ(openDescriptorCount(), descriptors_before);
    // Every other test reaps what it starts, so no child of this process may be left, not even a zombie.
    siginfo_t info{};
    errno = 0;
    EXPECT_EQ(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(Spawner, SuccessfulSpawnAddsOnlyThePidfd) {
    const std::size_t descriptors_before = openDescriptorCount();
    {
        Child child(spawnProcess(shell("exit 0")));
        EXPECT_EQ(openDescriptorCount(), descriptors_before + 1);
        ASSERT_TRUE(child.waitForExit().has_value());
    }
    EXPECT_EQ(openDescriptorCount(), descriptors_before);
}

TEST(Spawner, ChildGetsOnlyItsStandardAndPassedDescriptors) {
    ReportPipe report;
    ReportPipe second;
    // Inheritable, yet not passed: the child must not see it.
    const int stray = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(stray, 0);
    SpawnRequest request =
        shell("echo \"$(ls /proc/self/fd | sort -n | tr '\\n' ' ')\" >&3; echo second >&4");
    request.pass_fds = {report.writeEnd(), second.writeEnd()};
    Child child(spawnProcess(request));
    report.closeWriteEnd();
    second.closeWriteEnd();
    ::close(stray);
    // 0-2, the two passed ones, and the one ls opens to list them.
    EXPECT_EQ(report.readLine(), "0 1 2 3 4 5 ");
    EXPECT_EQ(second.readLine(), "second");
    ASSERT_TRUE(child.waitForExit().has_value());
}

TEST(Spawner, PassingMoreThanFiveDescriptorsIsRefused) {
    SpawnRequest request = shell("exit 0");
    request.pass_fds = {0, 1, 2, 0, 1, 2};
    EXPECT_THROW(spawnProcess(request), SpawnError);
}

// ---------------------------------------------------------------------------------------------------------
// Process groups

TEST(Spawner, SignalProcessGroupKillsChildAndGrandchild) {
    // As subreaper this process inherits the orphaned grandchild and can reap it through its pidfd.
    SubreaperScope subreaper;
    // Declared before the child so that it is cleaned up after it, once it is ours to reap.
    std::optional<Orphan> grandchild;
    ReportPipe report;
    SpawnRequest request = shell("/bin/sleep 1000 & echo $! >&3; wait");
    request.pass_fds = {report.writeEnd()};
    Child child(spawnProcess(request));
    report.closeWriteEnd();
    const std::string grandchild_text = report.readLine();
    const pid_t grandchild_pid = static_cast<pid_t>(std::atoi(grandchild_text.c_str()));
    ASSERT_GT(grandchild_pid, 0) << "got '" << grandchild_text << "'";
    grandchild.emplace(grandchild_pid);
    ASSERT_GE(grandchild->pidfd(), 0) << std::strerror(errno);
    EXPECT_EQ(::getpgid(grandchild_pid), child.pid());

    EXPECT_TRUE(signalProcessGroup(child.pid(), SIGKILL));

    const auto status = child.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->signal, SIGKILL);
    const auto grandchild_status = grandchild->waitForExit();
    ASSERT_TRUE(grandchild_status.has_value()) << "the grandchild survived";
    EXPECT_EQ(grandchild_status->signal, SIGKILL);
}

TEST(Spawner, SignalProcessGroupRefusesNonPositiveGroups) {
    EXPECT_FALSE(signalProcessGroup(0, 0));
    EXPECT_FALSE(signalProcessGroup(-1, 0));
}

TEST(Spawner, SignalProcessGroupIsFalseOnceTheGroupIsGone) {
    pid_t pid = 0;
    {
        Child child(spawnProcess(shell("exit 0")));
        pid = child.pid();
        // Signal 0 only checks that the group exists.
        EXPECT_TRUE(signalProcessGroup(pid, 0));
        ASSERT_TRUE(child.waitForExit().has_value());
    }
    EXPECT_FALSE(signalProcessGroup(pid, 0));
}

// ---------------------------------------------------------------------------------------------------------
// Names and descriptions

TEST(SignalName, NamesCommonSignals) {
    EXPECT_EQ(signalName(SIGKILL), "SIGKILL");
    EXPECT_EQ(signalName(9), "SIGKILL");
    EXPECT_EQ(signalName(SIGTERM), "SIGTERM");
    EXPECT_EQ(signalName(SIGSEGV), "SIGSEGV");
    EXPECT_EQ(signalName(SIGHUP), "SIGHUP");
}

TEST(SignalName, FallsBackToTheNumberForUnnamedSignals) {
    EXPECT_EQ(signalName(64), "signal 64");
    EXPECT_EQ(signalName(0), "signal 0");
}

TEST(ExitStatusDescribe, DescribesEveryKindOfEnd) {
    EXPECT_EQ((ExitStatus{3, 0, false}).describe(), "exited with status 3");
    EXPECT_EQ((ExitStatus{0, 0, false}).describe(), "exited with status 0");
    EXPECT_EQ((ExitStatus{-1, SIGKILL, false}).describe(), "killed by SIGKILL");
    EXPECT_EQ((ExitStatus{-1, SIGSEGV, true}).describe(), "killed by SIGSEGV (core dumped)");
    EXPECT_EQ((ExitStatus{-1, 64, false}).describe(), "killed by signal 64");
}

TEST(ExitStatusSuccess, OnlyACleanExitIsSuccess) {
    EXPECT_TRUE((ExitStatus{0, 0, false}).success());
    EXPECT_FALSE((ExitStatus{1, 0, false}).success());
    EXPECT_FALSE((ExitStatus{-1, SIGTERM, false}).success());
    EXPECT_FALSE(ExitStatus{}.success());
}

} // namespace
} // namespace tau
