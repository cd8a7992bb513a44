#include "tau/log_writer.h"
#include "temp_dir.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace tau {

// Readable names in failure messages; found by argument-dependent lookup, so it lives in namespace tau.
[[maybe_unused]] static void PrintTo(LogLevel level, std::ostream* os) {
    *os << toString(level);
}

} // namespace tau

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

LogRecord makeRecord(LogLevel level, const std::string& service, int sequence) {
    LogRecord record;
    record.timestamp =
        std::chrono::system_clock::time_point(1'795'447'479s + std::chrono::microseconds(sequence));
    record.level = level;
    record.service = service;
    record.pid = 100 + sequence;
    record.event = "test.event";
    record.message = "message " + std::to_string(sequence);
    record.fields = {{"sequence", std::to_string(sequence)}};
    return record;
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

std::string contentsOf(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream contents;
    contents << in.rdbuf();
    return contents.str();
}

std::vector<std::string> messagesOf(const std::vector<LogRecord>& records) {
    std::vector<std::string> messages;
    for (const auto& record : records) {
        messages.push_back(record.message);
    }
    return messages;
}

std::string constructionErrorFor(const fs::path& file) {
    try {
        LogWriter writer(file, LogLevel::Info, 10);
        ADD_FAILURE() << "opening " << file << " succeeded";
    } catch (const std::runtime_error& error) {
        return error.what();
    }
    return {};
}

// ---------------------------------------------------------------------------------------------------------
// Writing

TEST(LogWriter, AppendedLinesParseBack) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Trace, 10);
    const std::vector<LogRecord> records = {makeRecord(LogLevel::Info, "web", 1),
                                            makeRecord(LogLevel::Error, "db", 2),
                                            makeRecord(LogLevel::Trace, "web", 3)};
    writer.append(records);

    const auto lines = linesOf(file);
    ASSERT_EQ(lines.size(), records.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto parsed = parseJsonLine(lines[i]);
        ASSERT_TRUE(parsed.has_value()) << lines[i];
        EXPECT_EQ(parsed->timestamp, records[i].timestamp);
        EXPECT_EQ(parsed->level, records[i].level);
        EXPECT_EQ(parsed->service, records[i].service);
        EXPECT_EQ(parsed->pid, records[i].pid);
        EXPECT_EQ(parsed->event, records[i].event);
        EXPECT_EQ(parsed->message, records[i].message);
        EXPECT_EQ(parsed->fields, records[i].fields);
    }
    EXPECT_EQ(writer.recordsWritten(), 3u);
    EXPECT_EQ(writer.file(), file);
}

TEST(LogWriter, EachRecordIsExactlyItsJsonLinePlusNewline) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Trace, 10);
    const auto first = makeRecord(LogLevel::Info, "web", 1);
    const auto second = makeRecord(LogLevel::Info, "web", 2);
    writer.append({first});
    writer.append({second});
    EXPECT_EQ(contentsOf(file), toJsonLine(first) + "\n" + toJsonLine(second) + "\n");
}

TEST(LogWriter, MessageWithNewlinesStaysOnOneLine) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Trace, 10);
    auto record = makeRecord(LogLevel::Info, "web", 1);
    record.message = "first\nsecond\n";
    writer.append({record});
    const auto lines = linesOf(file);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(parseJsonLine(lines[0])->message, "first\nsecond\n");
}

TEST(LogWriter, AppendsToAnExistingFile) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    std::ofstream(file) << "earlier content\n";
    {
        LogWriter writer(file, LogLevel::Trace, 10);
        writer.append({makeRecord(LogLevel::Info, "web", 1)});
    }
    LogWriter reopened(file, LogLevel::Trace, 10);
    reopened.append({makeRecord(LogLevel::Info, "web", 2)});
    const auto lines = linesOf(file);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "earlier content");
    EXPECT_EQ(parseJsonLine(lines[1])->message, "message 1");
    EXPECT_EQ(parseJsonLine(lines[2])->message, "message 2");
}

TEST(LogWriter, EmptyAppendWritesNothing) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Trace, 10);
    writer.append({});
    EXPECT_EQ(fs::file_size(file), 0u);
    EXPECT_EQ(writer.stats().at("bytes_written"), 0u);
}

TEST(LogWriter, CreatesTheFileAndItsParentDirectories) {
    test::TempDir directory;
    const fs::path file = directory.path() / "a" / "b" / "c" / "tau.log";
    LogWriter writer(file, LogLevel::Info, 10);
    EXPECT_TRUE(fs::is_directory(directory.path() / "a" / "b" / "c"));
    EXPECT_TRUE(fs::is_regular_file(file));
    const mode_t mask = ::umask(022);
    ::umask(mask);
    struct stat info {};
    ASSERT_EQ(::stat(file.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0640 & ~mask);
}

// ---------------------------------------------------------------------------------------------------------
// Failures

TEST(LogWriter, ImpossiblePathThrowsNamingThePath) {
    test::TempDir directory;
    // A regular file where a directory would have to be.
    const fs::path blocker = directory.path() / "not-a-directory";
    std::ofstream(blocker) << "x";
    const fs::path file = blocker / "tau.log";
    const std::string message = constructionErrorFor(file);
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(ENOTDIR)), std::string::npos) << message;
}

TEST(LogWriter, DirectoryAsTheFileThrowsNamingThePath) {
    test::TempDir directory;
    const std::string message = constructionErrorFor(directory.path());
    EXPECT_NE(message.find(directory.path().string()), std::string::npos) << message;
    EXPECT_NE(message.find(std::strerror(EISDIR)), std::string::npos) << message;
}

TEST(LogWriter, WriteErrorThrowsAndIsCounted) {
    // Every write to /dev/full fails with ENOSPC.
    LogWriter writer("/dev/full", LogLevel::Info, 10);
    try {
        writer.append({makeRecord(LogLevel::Info, "web", 1)});
        ADD_FAILURE() << "append() did not throw";
    } catch (const std::runtime_error& error) {
        EXPECT_NE(std::string(error.what()).find("/dev/full"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find(std::strerror(ENOSPC)), std::string::npos) << error.what();
    }
    const auto stats = writer.stats();
    EXPECT_EQ(stats.at("write_errors"), 1u);
    EXPECT_EQ(stats.at("records_total"), 0u);
    EXPECT_EQ(stats.at("bytes_written"), 0u);
    EXPECT_EQ(stats.count("service_web"), 0u);
    EXPECT_TRUE(writer.recent(10).empty());
    EXPECT_EQ(writer.recordsWritten(), 0u);
}

TEST(LogWriter, OnlyFilteredRecordsNeverHitTheDisk) {
    // Nothing is left to write, so not even /dev/full can fail.
    LogWriter writer("/dev/full", LogLevel::Error, 10);
    EXPECT_NO_THROW(writer.append({makeRecord(LogLevel::Info, "web", 1)}));
    EXPECT_EQ(writer.stats().at("write_errors"), 0u);
    EXPECT_EQ(writer.stats().at("filtered"), 1u);
}

// ---------------------------------------------------------------------------------------------------------
// Level filter

TEST(LogWriter, RecordsBelowTheMinimumLevelAreFilteredAndCounted) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Warning, 10);
    writer.append({makeRecord(LogLevel::Debug, "web", 1), makeRecord(LogLevel::Warning, "web", 2),
                   makeRecord(LogLevel::Info, "web", 3), makeRecord(LogLevel::Critical, "web", 4),
                   makeRecord(LogLevel::Trace, "web", 5), makeRecord(LogLevel::Error, "web", 6)});
    const auto lines = linesOf(file);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(parseJsonLine(lines[0])->message, "message 2");
    EXPECT_EQ(parseJsonLine(lines[1])->message, "message 4");
    EXPECT_EQ(parseJsonLine(lines[2])->message, "message 6");
    EXPECT_EQ(writer.stats().at("filtered"), 3u);
    EXPECT_EQ(writer.stats().at("records_total"), 3u);
    EXPECT_EQ(messagesOf(writer.recent(10)),
              (std::vector<std::string>{"message 2", "message 4", "message 6"}));
}

// ---------------------------------------------------------------------------------------------------------
// recent()

TEST(LogWriter, RecentIsOldestFirstAndCappedByCapacity) {
    test::TempDir directory;
    LogWriter writer(directory.path() / "tau.log", LogLevel::Trace, 3);
    EXPECT_TRUE(writer.recent(10).empty());
    for (int i = 1; i <= 5; ++i) {
        writer.append({makeRecord(LogLevel::Info, "web", i)});
    }
    EXPECT_EQ(messagesOf(writer.recent(10)),
              (std::vector<std::string>{"message 3", "message 4", "message 5"}));
    EXPECT_EQ(messagesOf(writer.recent(3)),
              (std::vector<std::string>{"message 3", "message 4", "message 5"}));
    // A smaller count gives the newest ones, still oldest first.
    EXPECT_EQ(messagesOf(writer.recent(2)), (std::vector<std::string>{"message 4", "message 5"}));
    EXPECT_TRUE(writer.recent(0).empty());
    // The file keeps everything.
    EXPECT_EQ(linesOf(directory.path() / "tau.log").size(), 5u);
}

TEST(LogWriter, RecentKeepsWholeRecords) {
    test::TempDir directory;
    LogWriter writer(directory.path() / "tau.log", LogLevel::Trace, 3);
    const auto record = makeRecord(LogLevel::Error, "db", 9);
    writer.append({record});
    const auto recent = writer.recent(1);
    ASSERT_EQ(recent.size(), 1u);
    EXPECT_EQ(recent[0].timestamp, record.timestamp);
    EXPECT_EQ(recent[0].level, record.level);
    EXPECT_EQ(recent[0].service, record.service);
    EXPECT_EQ(recent[0].pid, record.pid);
    EXPECT_EQ(recent[0].event, record.event);
    EXPECT_EQ(recent[0].fields, record.fields);
}

// ---------------------------------------------------------------------------------------------------------
// stats()

TEST(LogWriter, StatsStartAtZero) {
    test::TempDir directory;
    LogWriter writer(directory.path() / "tau.log", LogLevel::Info, 10);
    const std::map<std::string, std::uint64_t> expected{
        {"records_total", 0}, {"bytes_written", 0}, {"filtered", 0}, {"write_errors", 0}};
    EXPECT_EQ(writer.stats(), expected);
}

TEST(LogWriter, StatsCountPerLevelAndPerService) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Info, 10);
    writer.append({makeRecord(LogLevel::Info, "web", 1), makeRecord(LogLevel::Error, "web", 2),
                   makeRecord(LogLevel::Info, "db", 3), makeRecord(LogLevel::Debug, "db", 4)});
    writer.append({makeRecord(LogLevel::Critical, "cache", 5)});

    const std::map<std::string, std::uint64_t> expected{
        {"records_total", 4},    {"bytes_written", fs::file_size(file)},
        {"filtered", 1},         {"write_errors", 0},
        {"records_info", 2},     {"records_error", 1},
        {"records_critical", 1}, {"service_web", 2},
        {"service_db", 1},       {"service_cache", 1}};
    EXPECT_EQ(writer.stats(), expected);
    EXPECT_EQ(writer.recordsWritten(), 4u);
}

TEST(LogWriter, BytesWrittenMatchesTheFileAcrossAppends) {
    test::TempDir directory;
    const fs::path file = directory.path() / "tau.log";
    LogWriter writer(file, LogLevel::Trace, 10);
    std::uint64_t expected = 0;
    for (int i = 1; i <= 3; ++i) {
        const auto record = makeRecord(LogLevel::Info, "web", i);
        expected += toJsonLine(record).size() + 1;
        writer.append({record});
        EXPECT_EQ(writer.stats().at("bytes_written"), expected);
    }
    EXPECT_EQ(fs::file_size(file), expected);
}

} // namespace
} // namespace tau
