#include "tau/crash_history.h"
#include "temp_dir.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Times carry microseconds on purpose: that is the precision the file keeps.
CrashEntry makeEntry(const std::string& service, int sequence) {
    CrashEntry entry;
    entry.time =
        std::chrono::system_clock::time_point(1'700'000'000s + std::chrono::seconds(sequence) + 123456us);
    entry.service = service;
    entry.pid = 1000 + sequence;
    entry.exit_code = sequence % 2 == 0 ? 1 : -1;
    entry.signal = sequence % 2 == 0 ? 0 : 9;
    entry.uptime = std::chrono::microseconds(2'500'000 + sequence);
    entry.action = sequence % 3 == 0 ? "give_up" : "restart";
    entry.attempt = static_cast<unsigned>(sequence);
    return entry;
}

void expectSameEntry(const CrashEntry& actual, const CrashEntry& expected) {
    EXPECT_EQ(actual.time, expected.time);
    EXPECT_EQ(actual.service, expected.service);
    EXPECT_EQ(actual.pid, expected.pid);
    EXPECT_EQ(actual.exit_code, expected.exit_code);
    EXPECT_EQ(actual.signal, expected.signal);
    EXPECT_EQ(actual.uptime, expected.uptime);
    EXPECT_EQ(actual.action, expected.action);
    EXPECT_EQ(actual.attempt, expected.attempt);
}

std::vector<int> pidsOf(const std::vector<CrashEntry>& entries) {
    std::vector<int> pids;
    for (const auto& entry : entries) {
        pids.push_back(entry.pid);
    }
    return pids;
}

std::vector<std::string> linesOf(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) {
        lines.push_back(line);
    }
    return lines;
}

// ---------------------------------------------------------------------------------------------------------
// Memory

TEST(CrashHistory, MemoryOnlyWithEmptyPath) {
    CrashHistory history("", 10);
    EXPECT_EQ(history.size(), 0u);
    EXPECT_TRUE(history.query("", 0).empty());
    history.record(makeEntry("web", 1));
    history.record(makeEntry("web", 2));
    EXPECT_EQ(history.size(), 2u);
    EXPECT_EQ(history.skippedLines(), 0u);
}

TEST(CrashHistory, QueryIsNewestFirst) {
    CrashHistory history("", 10);
    for (int i = 1; i <= 4; ++i) {
        history.record(makeEntry("web", i));
    }
    EXPECT_EQ(pidsOf(history.query("", 0)), (std::vector<int>{1004, 1003, 1002, 1001}));
}

TEST(CrashHistory, QueryFiltersByService) {
    CrashHistory history("", 10);
    history.record(makeEntry("web", 1));
    history.record(makeEntry("db", 2));
    history.record(makeEntry("web", 3));
    history.record(makeEntry("cache", 4));
    EXPECT_EQ(pidsOf(history.query("web", 0)), (std::vector<int>{1003, 1001}));
    EXPECT_EQ(pidsOf(history.query("db", 0)), (std::vector<int>{1002}));
    EXPECT_TRUE(history.query("unknown", 0).empty());
}

TEST(CrashHistory, QueryLimitKeepsTheNewest) {
    CrashHistory history("", 10);
    for (int i = 1; i <= 5; ++i) {
        history.record(makeEntry(i % 2 == 0 ? "db" : "web", i));
    }
    EXPECT_EQ(pidsOf(history.query("", 2)), (std::vector<int>{1005, 1004}));
    // The limit counts matching entries, not entries looked at.
    EXPECT_EQ(pidsOf(history.query("web", 2)), (std::vector<int>{1005, 1003}));
    EXPECT_EQ(pidsOf(history.query("db", 10)), (std::vector<int>{1004, 1002}));
}

TEST(CrashHistory, CapacityDropsTheOldest) {
    CrashHistory history("", 3);
    for (int i = 1; i <= 5; ++i) {
        history.record(makeEntry("web", i));
    }
    EXPECT_EQ(history.size(), 3u);
    EXPECT_EQ(pidsOf(history.query("", 0)), (std::vector<int>{1005, 1004, 1003}));
}

TEST(CrashHistory, QueryReturnsEveryField) {
    CrashHistory history("", 10);
    const auto entry = makeEntry("web", 7);
    history.record(entry);
    const auto result = history.query("web", 1);
    ASSERT_EQ(result.size(), 1u);
    expectSameEntry(result[0], entry);
}

// ---------------------------------------------------------------------------------------------------------
// File

TEST(CrashHistory, MissingFileStartsEmpty) {
    test::TempDir directory;
    CrashHistory history(directory.path() / "history.jsonl", 10);
    EXPECT_EQ(history.size(), 0u);
    EXPECT_EQ(history.skippedLines(), 0u);
    EXPECT_FALSE(fs::exists(directory.path() / "history.jsonl"));
}

TEST(CrashHistory, EntriesSurviveANewInstance) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    std::vector<CrashEntry> recorded;
    {
        CrashHistory history(file, 10);
        for (int i = 1; i <= 3; ++i) {
            recorded.push_back(makeEntry(i == 2 ? "db" : "web", i));
            history.record(recorded.back());
        }
    }
    EXPECT_EQ(linesOf(file).size(), 3u);

    CrashHistory reloaded(file, 10);
    EXPECT_EQ(reloaded.size(), 3u);
    EXPECT_EQ(reloaded.skippedLines(), 0u);
    const auto entries = reloaded.query("", 0);
    ASSERT_EQ(entries.size(), 3u);
    expectSameEntry(entries[0], recorded[2]);
    expectSameEntry(entries[1], recorded[1]);
    expectSameEntry(entries[2], recorded[0]);
    EXPECT_EQ(pidsOf(reloaded.query("db", 0)), (std::vector<int>{1002}));
}

TEST(CrashHistory, NewInstanceAppendsToWhatTheFileHolds) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    {
        CrashHistory history(file, 10);
        history.record(makeEntry("web", 1));
    }
    {
        CrashHistory history(file, 10);
        history.record(makeEntry("web", 2));
        EXPECT_EQ(history.size(), 2u);
    }
    CrashHistory reloaded(file, 10);
    EXPECT_EQ(pidsOf(reloaded.query("", 0)), (std::vector<int>{1002, 1001}));
}

TEST(CrashHistory, LoadingKeepsOnlyTheNewestUpToCapacity) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    {
        CrashHistory history(file, 10);
        for (int i = 1; i <= 5; ++i) {
            history.record(makeEntry("web", i));
        }
    }
    CrashHistory smaller(file, 2);
    EXPECT_EQ(smaller.size(), 2u);
    EXPECT_EQ(pidsOf(smaller.query("", 0)), (std::vector<int>{1005, 1004}));
}

TEST(CrashHistory, UnreadableLinesAreSkippedAndCounted) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    {
        CrashHistory history(file, 10);
        history.record(makeEntry("web", 1));
    }
    {
        std::ofstream out(file, std::ios::app);
        out << "this is not json\n";
        out << "[1, 2, 3]\n";
        out << "{\"service\": \"web\"}\n"; // fields missing
        out << "{\"time_usec\": \"soon\", \"service\": \"web\", \"pid\": 1, \"exit_code\": 1, \"signal\": 0, "
               "\"uptime_usec\": 1, \"action\": \"restart\", \"attempt\": 1}\n"; // a field of the wrong type
        out << "{\"time_usec\": 1\n";                                            // cut off mid-line
    }
    {
        CrashHistory history(file, 10);
        history.record(makeEntry("web", 2));
    }

    CrashHistory reloaded(file, 10);
    EXPECT_EQ(reloaded.skippedLines(), 5u);
    EXPECT_EQ(pidsOf(reloaded.query("", 0)), (std::vector<int>{1002, 1001}));
}

TEST(CrashHistory, CompactionKeepsTheNewestEntriesAndTheFileReadable) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    constexpr std::size_t kCapacity = 3;
    CrashHistory history(file, kCapacity);
    // The file may grow to twice the capacity before it is rewritten.
    for (int i = 1; i <= 6; ++i) {
        history.record(makeEntry("web", i));
    }
    EXPECT_EQ(linesOf(file).size(), 2 * kCapacity);

    history.record(makeEntry("web", 7));
    EXPECT_EQ(linesOf(file).size(), kCapacity);
    EXPECT_FALSE(fs::exists(file.string() + ".tmp"));

    CrashHistory reloaded(file, kCapacity);
    EXPECT_EQ(reloaded.skippedLines(), 0u);
    EXPECT_EQ(pidsOf(reloaded.query("", 0)), (std::vector<int>{1007, 1006, 1005}));
    expectSameEntry(reloaded.query("", 1).at(0), makeEntry("web", 7));

    // Appending goes on normally after a compaction.
    history.record(makeEntry("web", 8));
    EXPECT_EQ(linesOf(file).size(), kCapacity + 1);
    EXPECT_EQ(pidsOf(CrashHistory(file, kCapacity).query("", 0)), (std::vector<int>{1008, 1007, 1006}));
}

TEST(CrashHistory, CompactionDropsUnreadableLines) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    {
        std::ofstream out(file);
        for (int i = 0; i < 5; ++i) {
            out << "garbage " << i << "\n";
        }
    }
    CrashHistory history(file, 3);
    EXPECT_EQ(history.skippedLines(), 5u);
    history.record(makeEntry("web", 1)); // 6 lines: not more than twice the capacity yet
    EXPECT_EQ(linesOf(file).size(), 6u);
    history.record(makeEntry("web", 2)); // 7 lines: rewritten
    EXPECT_EQ(linesOf(file).size(), 2u);

    CrashHistory reloaded(file, 3);
    EXPECT_EQ(reloaded.skippedLines(), 0u);
    EXPECT_EQ(pidsOf(reloaded.query("", 0)), (std::vector<int>{1002, 1001}));
}

TEST(CrashHistory, FileIsCreatedWithoutWorldAccess) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    const mode_t mask = ::umask(022);
    ::umask(mask);
    CrashHistory history(file, 10);
    history.record(makeEntry("web", 1));
    struct stat info {};
    ASSERT_EQ(::stat(file.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0640 & ~mask);
}

TEST(CrashHistory, WriteFailureThrowsButKeepsTheEntryInMemory) {
    test::TempDir directory;
    const fs::path file = directory.path() / "no-such-directory" / "history.jsonl";
    CrashHistory history(file, 10);
    try {
        history.record(makeEntry("web", 1));
        ADD_FAILURE() << "record() did not throw";
    } catch (const std::runtime_error& error) {
        EXPECT_NE(std::string(error.what()).find(file.string()), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find(std::strerror(ENOENT)), std::string::npos) << error.what();
    }
    EXPECT_EQ(history.size(), 1u);
    EXPECT_EQ(pidsOf(history.query("web", 0)), (std::vector<int>{1001}));
    EXPECT_FALSE(fs::exists(file));
}

TEST(CrashHistory, ServiceNamesWithSpecialCharactersRoundTrip) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    CrashEntry entry = makeEntry("we\"b\n\\säge", 1);
    {
        CrashHistory history(file, 10);
        history.record(entry);
    }
    EXPECT_EQ(linesOf(file).size(), 1u);
    CrashHistory reloaded(file, 10);
    ASSERT_EQ(reloaded.size(), 1u);
    expectSameEntry(reloaded.query("", 0).at(0), entry);
}

TEST(CrashHistory, InvalidUtf8InAServiceNameIsWrittenNotThrown) {
    test::TempDir directory;
    const fs::path file = directory.path() / "history.jsonl";
    {
        CrashHistory history(file, 10);
        EXPECT_NO_THROW(history.record(makeEntry(std::string("bad\xff") + "name", 1)));
    }
    CrashHistory reloaded(file, 10);
    EXPECT_EQ(reloaded.skippedLines(), 0u);
    ASSERT_EQ(reloaded.size(), 1u);
    const std::string service = reloaded.query("", 0).at(0).service;
    EXPECT_EQ(service.rfind("bad", 0), 0u);
    EXPECT_NE(service.find("name"), std::string::npos);
    EXPECT_EQ(service.find('\xff'), std::string::npos);
}

} // namespace
} // namespace tau
