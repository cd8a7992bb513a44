// The real launcher's output capture and the orphan reaper, with real processes and a real loop.

#include "orphan_reaper.h"
#include "process_launcher.h"
#include "run_loop.h"
#include "temp_dir.h"
#include "test_support.h"

#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <gtest/gtest.h>
#include <memory>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

using test::runUntil;

using namespace std::chrono_literals;

struct Line {
    std::string service;
    pid_t pid;
    OutputStream stream;
    std::string text;
};

SpawnRequest shell(const std::string& script) {
    SpawnRequest request;
    request.argv = {"/bin/sh", "-c", script};
    return request;
}

class OutputCaptureTest : public ::testing::Test {
  protected:
    EventLoop loop_;
    test::TempDir files_;
    std::vector<Line> lines_;
    OutputCapturingLauncher::LineHandler collect_ = [this](const std::string& service, pid_t pid,
                                                           OutputStream stream, std::string text) {
        lines_.push_back({service, pid, stream, std::move(text)});
    };
    OutputCapturingLauncher launcher_{loop_, collect_};

    // Spawns, waits for the exit and for both pipes to close, and reaps.
    pid_t runToEnd(const std::string& script, bool capture = true) {
        const auto process = launcher_.spawn("svc", shell(script), capture);
        std::optional<ExitStatus> status;
        runUntil(loop_, [&] {
            if (!status) {
                status = launcher_.reap(process.pidfd);
            }
            return status.has_value() && lines_.size() >= expected_lines_;
        });
        launcher_.release(process.pidfd);
        EXPECT_TRUE(status.has_value());
        return process.pid;
    }
    std::size_t expected_lines_ = 0;
};

TEST_F(OutputCaptureTest, LinesOfBothStreamsArriveTaggedWithServiceAndPid) {
    expected_lines_ = 4;
    const pid_t pid = runToEnd("echo one; echo two >&2; echo three; printf 'no newline at the end'");
    ASSERT_EQ(lines_.size(), 4u);
    std::vector<std::string> out;
    std::vector<std::string> err;
    for (const auto& line : lines_) {
        EXPECT_EQ(line.service, "svc");
        EXPECT_EQ(line.pid, pid);
        (line.stream == OutputStream::Stdout ? out : err).push_back(line.text);
    }
    EXPECT_EQ(out, (std::vector<std::string>{"one", "three", "no newline at the end"}));
    EXPECT_EQ(err, (std::vector<std::string>{"two"}));
}

TEST_F(OutputCaptureTest, OutputWrittenWhileNoSupervisorReadsWaitsForTheNextOne) {
    const auto go = files_.path() / "go";
    const auto end = files_.path() / "end";
    const auto waitFor = [](const std::filesystem::path& file) {
        return "while [ ! -e '" + file.string() + "' ]; do sleep 0.01; done; ";
    };
    auto first = std::make_unique<OutputCapturingLauncher>(loop_, collect_);
    const auto process =
        first->spawn("svc", shell("echo before; " + waitFor(go) + "echo during; " + waitFor(end)), true);
    runUntil(loop_, [&] { return lines_.size() == 1; });
    ASSERT_EQ(lines_.size(), 1u);
    // The supervisor goes away; the service writes on, and must not die of SIGPIPE for it.
    first.reset();
    test::writeFile(go, "");
    OutputCapturingLauncher second(loop_, collect_);
    second.adoptOutput("svc", process.pid);
    runUntil(loop_, [&] { return lines_.size() == 2; });
    test::writeFile(end, "");
    std::optional<ExitStatus> status;
    runUntil(loop_, [&] { return (status = reapPidfd(process.pidfd)).has_value(); });
    ::close(process.pidfd);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success()) << status->describe();
    ASSERT_EQ(lines_.size(), 2u);
    EXPECT_EQ(lines_[0].text, "before");
    EXPECT_EQ(lines_[1].text, "during");
    EXPECT_EQ(lines_[1].pid, process.pid);
}

TEST_F(OutputCaptureTest, AnEndlessLineIsPassedOnInPieces) {
    expected_lines_ = 3;
    runToEnd("head -c 40000 /dev/zero | tr '\\0' x; echo");
    std::size_t total = 0;
    for (const auto& line : lines_) {
        EXPECT_LE(line.text.size(), 16u * 1024);
        total += line.text.size();
    }
    EXPECT_EQ(total, 40000u);
}

TEST_F(OutputCaptureTest, WithoutCaptureNothingIsRead) {
    runToEnd("echo inherited > /dev/null", false);
    EXPECT_TRUE(lines_.empty());
}

TEST(OrphanReaper, ReapsAnOrphanedGrandchildButLeavesManagedChildrenAlone) {
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    test::TempDir dir;
    const auto pid_file = dir.path() / "grandchild";
    // The child starts a grandchild that outlives it and exits; the grandchild becomes ours.
    auto child = spawnProcess(shell("sleep 0.05 & echo $! > '" + pid_file.string() + "'; exit 0"));
    pollfd wait_child{child.pidfd, POLLIN, 0};
    ASSERT_EQ(::poll(&wait_child, 1, 10000), 1);
    ASSERT_TRUE(reapPidfd(child.pidfd).has_value());
    ::close(child.pidfd);
    const pid_t grandchild = std::stoi(test::readFile(pid_file));

    // A managed child must survive a reap even once it has exited.
    auto managed = spawnProcess(shell("exit 7"));
    pollfd wait_managed{managed.pidfd, POLLIN, 0};
    ASSERT_EQ(::poll(&wait_managed, 1, 10000), 1);

    const int grandchild_fd = static_cast<int>(::syscall(SYS_pidfd_open, grandchild, 0));
    ASSERT_GE(grandchild_fd, 0);
    pollfd wait_grandchild{grandchild_fd, POLLIN, 0};
    ASSERT_EQ(::poll(&wait_grandchild, 1, 10000), 1);

    OrphanReaper reaper([&] { return std::vector<pid_t>{managed.pid}; });
    EXPECT_EQ(reaper.reap(), (std::vector<pid_t>{grandchild}));
    EXPECT_NE(::access(("/proc/" + std::to_string(grandchild)).c_str(), F_OK), 0);

    const auto status = reapPidfd(managed.pidfd);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->exit_code, 7);
    ::close(managed.pidfd);
    ::close(grandchild_fd);
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

} // namespace
} // namespace tau
