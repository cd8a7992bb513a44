#include "process_launcher.h"
#include "service_journal.h"
#include "tau/procfs.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

namespace tau {
namespace {

using namespace std::chrono_literals;

// A real process for the journal to recognise, killed and reaped by its pidfd at the end.
class SleepingProcess {
  public:
    SleepingProcess() {
        SpawnRequest request;
        request.argv = {"/bin/sleep", "3600"};
        process_ = spawnProcess(request);
    }
    ~SleepingProcess() {
        signalPidfd(process_.pidfd, SIGKILL);
        pollfd exited{process_.pidfd, POLLIN, 0};
        ::poll(&exited, 1, 10000);
        reapPidfd(process_.pidfd);
        ::close(process_.pidfd);
    }
    pid_t pid() const { return process_.pid; }

  private:
    SpawnedProcess process_;
};

class ServiceJournalTest : public ::testing::Test {
  protected:
    ServiceStatus runningService(pid_t pid) {
        ServiceSpec spec;
        spec.name = "web";
        spec.standby = ServiceSpec::Standby{};
        ServiceStatus status(spec);
        status.state = ServiceState::Running;
        status.pid = pid;
        status.restarts = 4;
        status.running_safe_mode = true;
        status.status_text = "serving";
        status.started_steady = std::chrono::steady_clock::now() - 5s;
        status.started_at = std::chrono::system_clock::now() - 5s;
        RecoveryTracker::State recovery;
        recovery.failures = 2;
        recovery.escalated = true;
        recovery.starts = {std::chrono::steady_clock::now() - 10s};
        status.recovery.restore(recovery);
        return status;
    }

    std::filesystem::path journalFile() const { return dir_.path() / "journal"; }

    nlohmann::json readSlot(std::size_t slot) {
        const std::string content = test::readFile(journalFile());
        return nlohmann::json::parse(
            content.substr(slot * ServiceJournal::kSlotSize, ServiceJournal::kSlotSize));
    }
    // Writes `text` into the slot as a root would: blank-padded to the slot's size.
    void writeSlot(std::size_t slot, std::string text) {
        std::string content = test::readFile(journalFile());
        text.resize(ServiceJournal::kSlotSize, ' ');
        content.resize(std::max(content.size(), (slot + 1) * ServiceJournal::kSlotSize), ' ');
        content.replace(slot * ServiceJournal::kSlotSize, ServiceJournal::kSlotSize, text);
        test::writeFile(journalFile(), content);
    }

    test::TempDir dir_;
    ProcFsReader reader_;
    EventLoop loop_;
    OutputCapturingLauncher launcher_{loop_, [](auto&&...) {}};
};

TEST_F(ServiceJournalTest, WhatIsRecordedComesBackAndItsProcessIsAdopted) {
    SleepingProcess process;
    ServiceJournal journal(dir_.path(), reader_);
    const auto status = runningService(process.pid());
    journal.record(status);

    const auto entries = ServiceJournal(dir_.path(), reader_).load();
    ASSERT_EQ(entries.size(), 1u);
    const auto& entry = entries.at("web");
    EXPECT_EQ(entry.state, ServiceState::Running);
    ASSERT_TRUE(entry.main.has_value());
    EXPECT_EQ(entry.main->pid, process.pid());
    EXPECT_TRUE(entry.main->ready);
    EXPECT_EQ(entry.restarts, 4u);
    EXPECT_TRUE(entry.running_safe_mode);
    EXPECT_EQ(entry.status_text, "serving");
    EXPECT_EQ(entry.recovery, status.recovery.state());
    EXPECT_EQ(entry.main->started_steady, status.started_steady);
    EXPECT_FALSE(entry.standby.has_value());
    EXPECT_TRUE(entry.standby_recovery.has_value());

    const auto adopted = journal.adoptable(entry, launcher_);
    ASSERT_TRUE(adopted.main.has_value());
    EXPECT_EQ(adopted.main->pid, process.pid());
    EXPECT_GE(adopted.main->pidfd, 0);
    launcher_.release(adopted.main->pidfd);
}

TEST_F(ServiceJournalTest, AProcessWithTheSamePidButAnotherStartTimeIsNotTheService) {
    SleepingProcess process;
    ServiceJournal journal(dir_.path(), reader_);
    journal.record(runningService(process.pid()));
    auto value = readSlot(0);
    value["main"]["start_time"] = value["main"]["start_time"].get<std::uint64_t>() + 1;
    writeSlot(0, value.dump());

    const auto entries = journal.load();
    const auto adopted = journal.adoptable(entries.at("web"), launcher_);
    EXPECT_FALSE(adopted.main.has_value()) << "a reused pid must never be taken for the service";
    EXPECT_EQ(adopted.pid, process.pid());
    EXPECT_EQ(adopted.state, ServiceState::Running);
}

TEST_F(ServiceJournalTest, EntriesOfAnotherBootAndUnreadableOnesAreIgnored) {
    SleepingProcess process;
    ServiceJournal journal(dir_.path(), reader_);
    journal.record(runningService(process.pid()));
    auto value = readSlot(0);
    value["boot_id"] = "another-boot";
    value["name"] = "old";
    writeSlot(1, value.dump());
    writeSlot(2, "{ not json");
    const auto entries = journal.load();
    EXPECT_EQ(entries.size(), 1u);
    EXPECT_TRUE(entries.contains("web"));
}

TEST_F(ServiceJournalTest, EveryRecordFitsItsSlotKeepingTheNewestStarts) {
    SleepingProcess process;
    ServiceSpec spec;
    spec.name = "web";
    spec.policy.start_limit_burst = 1000;
    ServiceStatus busy(spec);
    busy.state = ServiceState::Running;
    busy.pid = process.pid();
    busy.status_text = std::string(10000, 's');
    RecoveryTracker::State many;
    const auto now = std::chrono::steady_clock::now();
    for (int i = 600; i > 0; --i) {
        many.starts.push_back(now - std::chrono::seconds(i));
    }
    busy.recovery.restore(many);
    ServiceJournal journal(dir_.path(), reader_);
    journal.record(busy);
    journal.record(runningService(process.pid())); // the same slot, a shorter record

    busy.recovery.restore(many);
    journal.record(busy);
    const auto entries = journal.load();
    ASSERT_TRUE(entries.contains("web"));
    const auto& starts = entries.at("web").recovery.starts;
    ASSERT_EQ(starts.size(), 64u);
    EXPECT_EQ(starts.back(), many.starts.back());
    EXPECT_EQ(entries.at("web").status_text.size(), 512u);
}

TEST_F(ServiceJournalTest, ServicesHaveASlotEachAndARemovedOneIsForgotten) {
    SleepingProcess process;
    ServiceJournal journal(dir_.path(), reader_);
    auto web = runningService(process.pid());
    journal.record(web);
    ServiceSpec spec;
    spec.name = "db";
    ServiceStatus db(spec);
    journal.record(db);
    EXPECT_EQ(journal.load().size(), 2u);
    journal.remove("web");
    const auto entries = journal.load();
    EXPECT_EQ(entries.size(), 1u);
    EXPECT_TRUE(entries.contains("db"));
}

TEST_F(ServiceJournalTest, AStatusTextThatIsNotUtf8IsKeptReadable) {
    SleepingProcess process;
    auto status = runningService(process.pid());
    status.status_text = "half \xc3 a character, \"quoted\"\n";
    ServiceJournal journal(dir_.path(), reader_);
    journal.record(status);
    const auto entries = journal.load();
    ASSERT_TRUE(entries.contains("web"));
    const std::string text = entries.at("web").status_text;
    EXPECT_NE(text.find("\"quoted\""), std::string::npos) << text;
    EXPECT_EQ(text.find("\xef\xbf\xbd"), 5u) << "the broken byte is replaced by U+FFFD: " << text;
}

TEST_F(ServiceJournalTest, ClearForgetsEveryService) {
    ServiceJournal journal(dir_.path(), reader_);
    SleepingProcess process;
    journal.record(runningService(process.pid()));
    journal.clear();
    EXPECT_TRUE(journal.load().empty());
}

} // namespace
} // namespace tau
