#include "tau/crash_history.h"
#include "temp_dir.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::system_clock;

const system_clock::time_point kEpoch{};
const system_clock::time_point kStart{1'700'000'000s};

// Times carry microseconds on purpose: that is the precision the database keeps.
CrashEntry exitOf(const std::string& service, int second, const std::string& action = "restart",
                  const std::string& failure_class = "signal") {
    CrashEntry entry;
    entry.time = kStart + std::chrono::seconds(second) + 123456us;
    entry.service = service;
    entry.pid = 1000 + second;
    entry.exit_code = failure_class == "signal" ? -1 : 1;
    entry.signal = failure_class == "signal" ? 9 : 0;
    entry.failure_class = failure_class;
    entry.uptime = std::chrono::microseconds(2'500'000 + second);
    entry.attempt = 1;
    entry.action = action;
    entry.delay = 1500ms;
    entry.reason = "killed by SIGKILL; restarting in 1.5 s";
    return entry;
}

std::vector<int> pidsOf(const std::vector<CrashEntry>& entries) {
    std::vector<int> pids;
    for (const auto& entry : entries) {
        pids.push_back(entry.pid);
    }
    return pids;
}

std::vector<CrashEntry> all(const CrashHistory& history) {
    return history.query("", "", kEpoch, 0);
}

std::string outcomeOf(const CrashHistory& history, pid_t pid) {
    for (const auto& entry : all(history)) {
        if (entry.pid == pid) {
            return entry.outcome;
        }
    }
    return "not found";
}

std::string bytesOf(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class CrashHistoryTest : public ::testing::Test {
  protected:
    test::TempDir dir_;
    fs::path file_ = dir_.path() / "crash-history.db";
};

// ---------------------------------------------------------------------------------------------------------
// Recording and querying

TEST_F(CrashHistoryTest, AnExitComesBackWithEveryField) {
    CrashHistory history(file_);
    auto exit = exitOf("web", 1, "give_up", "exit");
    exit.escalate = true;
    exit.attempt = 4;
    exit.reason = "exited with status 1; \"quoted\", and a newline\nin the reason";
    history.recordExit(exit);

    const auto entries = all(history);
    ASSERT_EQ(entries.size(), 1u);
    const auto& back = entries.front();
    EXPECT_EQ(back.time, exit.time);
    EXPECT_EQ(back.service, "web");
    EXPECT_EQ(back.pid, exit.pid);
    EXPECT_EQ(back.exit_code, 1);
    EXPECT_EQ(back.signal, 0);
    EXPECT_EQ(back.failure_class, "exit");
    EXPECT_EQ(back.uptime, exit.uptime);
    EXPECT_EQ(back.attempt, 4u);
    EXPECT_EQ(back.action, "give_up");
    EXPECT_EQ(back.delay, 1500ms);
    EXPECT_TRUE(back.escalate);
    EXPECT_EQ(back.reason, exit.reason);
    EXPECT_EQ(back.outcome, kOutcomeNone);
    EXPECT_EQ(back.time_to_running, 0us);
    EXPECT_EQ(history.size(), 1u);
}

TEST_F(CrashHistoryTest, QueryIsNewestFirstByTheTimeOfTheExit) {
    CrashHistory history(file_);
    history.recordExit(exitOf("a", 2));
    history.recordExit(exitOf("b", 1)); // reported late: its exit came earlier
    history.recordExit(exitOf("c", 3));
    EXPECT_EQ(pidsOf(all(history)), (std::vector<int>{1003, 1002, 1001}));
}

TEST_F(CrashHistoryTest, QueryFiltersByServiceClassSinceAndLimit) {
    CrashHistory history(file_);
    history.recordExit(exitOf("web", 1, "restart", "signal"));
    history.recordExit(exitOf("db", 2, "restart", "oom"));
    history.recordExit(exitOf("web", 3, "restart", "oom"));
    history.recordExit(exitOf("web", 4, "stopped", ""));
    history.recordExit(exitOf("db", 5, "restart", "signal"));

    EXPECT_EQ(pidsOf(history.query("web", "", kEpoch, 0)), (std::vector<int>{1004, 1003, 1001}));
    EXPECT_EQ(pidsOf(history.query("", "oom", kEpoch, 0)), (std::vector<int>{1003, 1002}));
    EXPECT_EQ(pidsOf(history.query("web", "oom", kEpoch, 0)), (std::vector<int>{1003}));
    // `since` includes an exit at exactly that time.
    EXPECT_EQ(pidsOf(history.query("", "", exitOf("x", 3).time, 0)), (std::vector<int>{1005, 1004, 1003}));
    EXPECT_EQ(pidsOf(history.query("", "", kEpoch, 2)), (std::vector<int>{1005, 1004}));
    EXPECT_EQ(pidsOf(history.query("db", "signal", exitOf("x", 2).time, 1)), (std::vector<int>{1005}));
    EXPECT_TRUE(history.query("nobody", "", kEpoch, 0).empty());
    // The same filters again: the prepared statements are reused from a clean state.
    EXPECT_EQ(pidsOf(history.query("web", "", kEpoch, 0)), (std::vector<int>{1004, 1003, 1001}));
}

// ---------------------------------------------------------------------------------------------------------
// Outcomes

TEST_F(CrashHistoryTest, OnlyARestartIsPendingOnInsert) {
    CrashHistory history(file_);
    history.recordExit(exitOf("a", 1, "restart"));
    history.recordExit(exitOf("b", 2, "restart_safe_mode"));
    history.recordExit(exitOf("c", 3, "give_up"));
    history.recordExit(exitOf("d", 4, "notify_and_stop"));
    history.recordExit(exitOf("e", 5, "none", ""));
    history.recordExit(exitOf("f", 6, "stopped", ""));
    EXPECT_EQ(outcomeOf(history, 1001), kOutcomePending);
    EXPECT_EQ(outcomeOf(history, 1002), kOutcomePending);
    EXPECT_EQ(outcomeOf(history, 1003), kOutcomeNone);
    EXPECT_EQ(outcomeOf(history, 1004), kOutcomeNone);
    EXPECT_EQ(outcomeOf(history, 1005), kOutcomeNone);
    EXPECT_EQ(outcomeOf(history, 1006), kOutcomeNone);
}

TEST_F(CrashHistoryTest, RecoveredClosesTheNewestPendingExitOfThatServiceOnly) {
    CrashHistory history(file_);
    history.recordExit(exitOf("web", 1));
    history.recordExit(exitOf("db", 2));
    ASSERT_TRUE(history.recordRecovered("web", exitOf("web", 1).time + 2500ms));

    const auto web = history.query("web", "", kEpoch, 0).front();
    EXPECT_EQ(web.outcome, kOutcomeRunning);
    EXPECT_EQ(web.time_to_running, 2500ms);
    EXPECT_EQ(outcomeOf(history, 1002), kOutcomePending);
    // Nothing is pending for web any more, and nothing ever was for an unknown service.
    EXPECT_FALSE(history.recordRecovered("web", kStart + 10s));
    EXPECT_FALSE(history.recordRecovered("nobody", kStart + 10s));
    EXPECT_EQ(history.query("web", "", kEpoch, 0).front().time_to_running, 2500ms);
}

TEST_F(CrashHistoryTest, AnExitReportedTwiceIsRecordedOnce) {
    CrashHistory history(file_);
    EXPECT_TRUE(history.recordExit(exitOf("web", 1)));
    EXPECT_FALSE(history.recordExit(exitOf("web", 1))) << "the same report, delivered again";
    EXPECT_EQ(history.size(), 1u);
    EXPECT_EQ(outcomeOf(history, 1001), kOutcomePending) << "not failed by its own copy";
    ASSERT_TRUE(history.recordRecovered("web", kStart + 5s));
    EXPECT_FALSE(history.recordRecovered("web", kStart + 5s));
    EXPECT_EQ(outcomeOf(history, 1001), kOutcomeRunning);

    auto same_pid_later = exitOf("web", 1);
    same_pid_later.time += 1us;
    EXPECT_TRUE(history.recordExit(same_pid_later)) << "another exit of the same pid is another exit";
    EXPECT_EQ(history.size(), 2u);
}

TEST_F(CrashHistoryTest, RecoveredBeforeTheExitTimeCountsAsAtOnce) {
    CrashHistory history(file_);
    history.recordExit(exitOf("web", 5));
    ASSERT_TRUE(history.recordRecovered("web", kStart)); // the clock stepped back in between
    EXPECT_EQ(all(history).front().time_to_running, 0us);
    EXPECT_EQ(all(history).front().outcome, kOutcomeRunning);
}

TEST_F(CrashHistoryTest, ANewExitWhileARestartIsPendingMeansTheRestartFailed) {
    CrashHistory history(file_);
    history.recordExit(exitOf("web", 1));
    history.recordExit(exitOf("db", 2));
    history.recordExit(exitOf("web", 3, "give_up", "start"));
    EXPECT_EQ(outcomeOf(history, 1001), kOutcomeFailed);
    EXPECT_EQ(outcomeOf(history, 1002), kOutcomePending); // another service's restart is not affected
    EXPECT_EQ(outcomeOf(history, 1003), kOutcomeNone);
    // A closed exit stays closed.
    history.recordExit(exitOf("db", 4));
    EXPECT_TRUE(history.recordRecovered("db", kStart + 5s));
    EXPECT_EQ(outcomeOf(history, 1002), kOutcomeFailed);
    EXPECT_EQ(outcomeOf(history, 1004), kOutcomeRunning);
}

// ---------------------------------------------------------------------------------------------------------
// Summary

TEST_F(CrashHistoryTest, SummaryCountsFailuresRecoveriesAndMeanTimeToRecovery) {
    CrashHistory history(file_);
    history.recordExit(exitOf("web", 10));
    history.recordRecovered("web", exitOf("web", 10).time + 1s);
    history.recordExit(exitOf("web", 20));
    history.recordRecovered("web", exitOf("web", 20).time + 3s);
    history.recordExit(exitOf("web", 30));                // pending
    history.recordExit(exitOf("web", 40, "stopped", "")); // the pending restart failed; a stop is no failure
    history.recordExit(exitOf("db", 5, "give_up", "exit"));
    history.recordExit(exitOf("quiet", 6, "none", "")); // only clean exits: not in the summary

    const auto summary = history.summary();
    ASSERT_EQ(summary.size(), 2u);
    EXPECT_EQ(summary[0].service, "db"); // sorted by name
    EXPECT_EQ(summary[0].failures, 1u);
    EXPECT_EQ(summary[0].recovered, 0u);
    EXPECT_EQ(summary[0].success_rate, 0.0);
    EXPECT_EQ(summary[0].mean_time_to_recovery, 0us);
    EXPECT_EQ(summary[0].last_failure, exitOf("db", 5).time);

    EXPECT_EQ(summary[1].service, "web");
    EXPECT_EQ(summary[1].failures, 3u);
    EXPECT_EQ(summary[1].recovered, 2u);
    EXPECT_DOUBLE_EQ(summary[1].success_rate, 2.0 / 3.0);
    EXPECT_EQ(summary[1].mean_time_to_recovery, 2s);
    EXPECT_EQ(summary[1].last_failure, exitOf("web", 30).time); // the stop at 40 is no failure
}

TEST_F(CrashHistoryTest, EmptyHistoryHasAnEmptySummary) {
    CrashHistory history(file_);
    EXPECT_TRUE(history.summary().empty());
    EXPECT_EQ(history.size(), 0u);
}

// ---------------------------------------------------------------------------------------------------------
// Capacity and persistence

TEST_F(CrashHistoryTest, PruningKeepsTheNewestRows) {
    CrashHistory history(file_, 3);
    for (int second = 1; second <= 8; ++second) {
        history.recordExit(exitOf("web", second, "give_up"));
        EXPECT_EQ(history.size(), std::min(second, 3));
    }
    EXPECT_EQ(pidsOf(all(history)), (std::vector<int>{1008, 1007, 1006}));
}

TEST_F(CrashHistoryTest, ReopeningWithASmallerCapacityPrunesAtOnce) {
    {
        CrashHistory history(file_, 10);
        for (int second = 1; second <= 6; ++second) {
            history.recordExit(exitOf("web", second, "give_up"));
        }
    }
    CrashHistory smaller(file_, 2);
    EXPECT_EQ(smaller.size(), 2u);
    EXPECT_EQ(pidsOf(all(smaller)), (std::vector<int>{1006, 1005}));
}

TEST_F(CrashHistoryTest, DefaultCapacityIsTheContractsHundredThousand) {
    CrashHistory history(file_);
    EXPECT_EQ(history.capacity(), 100000u);
}

TEST_F(CrashHistoryTest, EverythingSurvivesANewInstance) {
    {
        CrashHistory history(file_);
        history.recordExit(exitOf("web", 1));
        history.recordExit(exitOf("web", 2));
        history.recordRecovered("web", exitOf("web", 2).time + 750ms);
        history.recordExit(exitOf("db", 3, "notify_and_stop", "watchdog"));
    }
    CrashHistory reopened(file_);
    EXPECT_FALSE(reopened.setAside());
    EXPECT_EQ(reopened.size(), 3u);
    const auto entries = all(reopened);
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].service, "db");
    EXPECT_EQ(entries[0].failure_class, "watchdog");
    EXPECT_EQ(entries[0].time, exitOf("db", 3).time);
    EXPECT_EQ(entries[1].outcome, kOutcomeRunning);
    EXPECT_EQ(entries[1].time_to_running, 750ms);
    EXPECT_EQ(entries[2].outcome, kOutcomeFailed);
    // Pending state survives as well: a report after the restart still closes the right exit.
    reopened.recordExit(exitOf("web", 4));
    {
        CrashHistory again(file_);
        EXPECT_TRUE(again.recordRecovered("web", exitOf("web", 4).time + 1s));
        EXPECT_EQ(again.size(), 4u);
    }
}

TEST_F(CrashHistoryTest, FileIsAWalDatabaseWithASchemaVersion) {
    {
        CrashHistory history(file_);
        history.recordExit(exitOf("web", 1));
    }
    const auto header = bytesOf(file_);
    ASSERT_GE(header.size(), 100u);
    EXPECT_EQ(header.substr(0, 16), std::string("SQLite format 3\0", 16));
    // File format read and write versions: 2 means WAL.
    EXPECT_EQ(header[18], 2);
    EXPECT_EQ(header[19], 2);
    // user_version, big-endian at offset 60.
    EXPECT_EQ(header.substr(60, 4), std::string("\0\0\0\1", 4));
}

TEST_F(CrashHistoryTest, DatabaseFromANewerSchemaIsRefused) {
    {
        CrashHistory history(file_);
        history.recordExit(exitOf("web", 1));
    }
    // user_version lives in the header, outside any checksum: raise it as a newer program would.
    {
        std::fstream file(file_, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(60);
        file.write("\0\0\0\7", 4);
    }
    try {
        CrashHistory history(file_);
        FAIL() << "a database of schema 7 was accepted";
    } catch (const CrashHistoryError& e) {
        EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("schema version 7"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(fs::exists(file_)); // a newer database is not corrupt: it stays where it is
}

// ---------------------------------------------------------------------------------------------------------
// Damage and errors

TEST_F(CrashHistoryTest, FileThatIsNotADatabaseIsSetAsideAndAnEmptyHistoryStarts) {
    const std::string garbage(8192, 'x');
    {
        std::ofstream out(file_, std::ios::binary);
        out << garbage;
    }
    CrashHistory history(file_);
    ASSERT_TRUE(history.setAside());
    const auto moved_to = history.setAside()->moved_to;
    EXPECT_EQ(moved_to.parent_path(), file_.parent_path());
    EXPECT_EQ(moved_to.filename().string().rfind("crash-history.db.corrupt-", 0), 0u) << moved_to;
    EXPECT_EQ(bytesOf(moved_to), garbage); // kept as it was, for whoever wants to look
    EXPECT_NE(history.setAside()->reason.find("not a database"), std::string::npos)
        << history.setAside()->reason;

    EXPECT_EQ(history.size(), 0u);
    history.recordExit(exitOf("web", 1));
    EXPECT_EQ(history.size(), 1u);

    CrashHistory reopened(file_);
    EXPECT_FALSE(reopened.setAside());
    EXPECT_EQ(reopened.size(), 1u);
}

TEST_F(CrashHistoryTest, SecondCorruptFileInTheSameSecondGetsItsOwnName) {
    for (int round = 0; round < 2; ++round) {
        std::ofstream(file_, std::ios::binary) << std::string(4096, static_cast<char>('a' + round));
        CrashHistory history(file_);
        ASSERT_TRUE(history.setAside());
    }
    int set_aside = 0;
    for (const auto& entry : fs::directory_iterator(dir_.path())) {
        set_aside += entry.path().filename().string().find(".corrupt-") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(set_aside, 2);
}

TEST_F(CrashHistoryTest, DirectoryThatCannotHoldTheFileIsAClearError) {
    // A regular file where the directory should be: fails for root as well.
    const auto not_a_directory = dir_.path() / "plain-file";
    std::ofstream(not_a_directory) << "x";
    const auto file = not_a_directory / "crash-history.db";
    try {
        CrashHistory history(file);
        FAIL() << "opened " << file;
    } catch (const CrashHistoryError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(file.string()), std::string::npos) << message;
        EXPECT_NE(message.find("unable to open database file"), std::string::npos) << message; // SQLite's
        EXPECT_NE(message.find(not_a_directory.string() + " is not a directory"), std::string::npos)
            << message;
    }
}

TEST_F(CrashHistoryTest, UnwritableDirectoryIsAClearError) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "root writes into any directory";
    }
    const auto locked = dir_.path() / "locked";
    fs::create_directory(locked);
    ::chmod(locked.c_str(), 0555);
    try {
        CrashHistory history(locked / "crash-history.db");
        ADD_FAILURE() << "opened a database in a read-only directory";
    } catch (const CrashHistoryError& e) {
        EXPECT_NE(std::string(e.what()).find((locked / "crash-history.db").string()), std::string::npos)
            << e.what();
    }
    ::chmod(locked.c_str(), 0755);
}

} // namespace
} // namespace tau
