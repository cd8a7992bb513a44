#include "tau/log_record.h"

#include <chrono>
#include <gtest/gtest.h>
#include <ostream>
#include <string>
#include <string_view>

namespace tau {

// Readable names in failure messages; found by argument-dependent lookup, so it lives in namespace tau.
[[maybe_unused]] static void PrintTo(LogLevel level, std::ostream* os) {
    *os << toString(level);
}

} // namespace tau

namespace tau {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::system_clock::time_point;

// 2026-11-23T15:24:39Z
constexpr std::chrono::seconds kSampleSecond{1795447479};

LogRecord sampleRecord() {
    LogRecord record;
    record.timestamp = TimePoint(kSampleSecond + 123456us);
    record.level = LogLevel::Warning;
    record.service = "web";
    record.pid = 4242;
    record.event = "service.exited";
    record.message = "exited with status 3";
    record.fields = {{"exit_code", "3"}, {"attempt", "2"}};
    return record;
}

void expectSameRecord(const LogRecord& actual, const LogRecord& expected) {
    EXPECT_EQ(actual.timestamp, expected.timestamp);
    EXPECT_EQ(actual.level, expected.level);
    EXPECT_EQ(actual.service, expected.service);
    EXPECT_EQ(actual.pid, expected.pid);
    EXPECT_EQ(actual.event, expected.event);
    EXPECT_EQ(actual.message, expected.message);
    EXPECT_EQ(actual.fields, expected.fields);
}

// A line as toJsonLine writes it, with one value replaced by raw JSON text.
std::string lineWith(std::string_view timestamp_json, std::string_view level_json = "\"info\"") {
    return std::string("{\"timestamp\":") + std::string(timestamp_json) +
           ",\"level\":" + std::string(level_json) +
           ",\"service\":\"web\",\"pid\":1,\"event\":\"\",\"message\":\"m\",\"fields\":{}}";
}

// ---------------------------------------------------------------------------------------------------------
// Timestamps

TEST(FormatTimestamp, UsesUtcWithMicrosecondsAndZ) {
    EXPECT_EQ(formatTimestamp(TimePoint(kSampleSecond + 123456us)), "2026-11-23T15:24:39.123456Z");
}

TEST(FormatTimestamp, PadsEveryField) {
    EXPECT_EQ(formatTimestamp(TimePoint(0s)), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(formatTimestamp(TimePoint(3661s + 7us)), "1970-01-01T01:01:01.000007Z");
}

TEST(FormatTimestamp, DropsNanosecondsWithoutRounding) {
    EXPECT_EQ(formatTimestamp(TimePoint(kSampleSecond + 999999999ns)), "2026-11-23T15:24:39.999999Z");
}

TEST(FormatTimestamp, HandlesALeapDay) {
    // 2000-02-29T23:59:59Z
    EXPECT_EQ(formatTimestamp(TimePoint(951868799s + 500000us)), "2000-02-29T23:59:59.500000Z");
}

TEST(FormatTimestamp, TimesBeforeTheEpochCountBackwards) {
    EXPECT_EQ(formatTimestamp(TimePoint(-1us)), "1969-12-31T23:59:59.999999Z");
}

// ---------------------------------------------------------------------------------------------------------
// Levels

TEST(LogLevelNames, RoundTripEveryLevel) {
    const std::pair<LogLevel, std::string_view> levels[] = {
        {LogLevel::Trace, "trace"},     {LogLevel::Debug, "debug"}, {LogLevel::Info, "info"},
        {LogLevel::Warning, "warning"}, {LogLevel::Error, "error"}, {LogLevel::Critical, "critical"}};
    for (const auto& [level, name] : levels) {
        EXPECT_EQ(toString(level), name);
        EXPECT_EQ(logLevelFromString(name), level) << name;
    }
}

TEST(LogLevelNames, RejectsUnknownOrMiscasedNames) {
    EXPECT_FALSE(logLevelFromString("").has_value());
    EXPECT_FALSE(logLevelFromString("warn").has_value());
    EXPECT_FALSE(logLevelFromString("INFO").has_value());
    EXPECT_FALSE(logLevelFromString("info ").has_value());
    EXPECT_FALSE(logLevelFromString("fatal").has_value());
}

TEST(LogLevelNames, LevelsAreOrderedBySeverity) {
    // The writer's level filter relies on this order.
    EXPECT_LT(LogLevel::Trace, LogLevel::Debug);
    EXPECT_LT(LogLevel::Debug, LogLevel::Info);
    EXPECT_LT(LogLevel::Info, LogLevel::Warning);
    EXPECT_LT(LogLevel::Warning, LogLevel::Error);
    EXPECT_LT(LogLevel::Error, LogLevel::Critical);
}

// ---------------------------------------------------------------------------------------------------------
// toJsonLine

TEST(ToJsonLine, WritesEveryFieldInAFixedOrder) {
    EXPECT_EQ(toJsonLine(sampleRecord()),
              "{\"timestamp\":\"2026-11-23T15:24:39.123456Z\",\"level\":\"warning\",\"service\":\"web\","
              "\"pid\":4242,\"event\":\"service.exited\",\"message\":\"exited with status 3\","
              "\"fields\":{\"attempt\":\"2\",\"exit_code\":\"3\"}}");
}

TEST(ToJsonLine, EmptyEventAndFieldsAreStillWritten) {
    LogRecord record;
    record.timestamp = TimePoint(0s);
    record.service = "log";
    record.message = "hi";
    EXPECT_EQ(
        toJsonLine(record),
        "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"level\":\"info\",\"service\":\"log\",\"pid\":0,"
        "\"event\":\"\",\"message\":\"hi\",\"fields\":{}}");
}

TEST(ToJsonLine, HasNoTrailingNewline) {
    const std::string line = toJsonLine(sampleRecord());
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '}');
}

TEST(ToJsonLine, EscapesQuotesBackslashesNewlinesAndControlCharacters) {
    LogRecord record = sampleRecord();
    record.message = std::string("say \"hi\"\\ now\nnext\tcol\r") + '\x01' + '\x1f';
    record.fields = {{"key\"with\nnewline", "value\x02"}};
    const std::string line = toJsonLine(record);
    EXPECT_NE(line.find(R"("message":"say \"hi\"\\ now\nnext\tcol\r\u0001\u001f")"), std::string::npos)
        << line;
    EXPECT_NE(line.find(R"("fields":{"key\"with\nnewline":"value\u0002"})"), std::string::npos) << line;
    // One record is one line, whatever its message holds.
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_EQ(line.find('\r'), std::string::npos);
    for (const char c : line) {
        EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "raw control character in " << line;
    }
}

TEST(ToJsonLine, KeepsValidUtf8AsIs) {
    LogRecord record = sampleRecord();
    record.message = "Grüße \xe2\x9c\x93";
    EXPECT_NE(toJsonLine(record).find("\"message\":\"Grüße \xe2\x9c\x93\""), std::string::npos);
}

TEST(ToJsonLine, ReplacesInvalidUtf8InsteadOfThrowing) {
    LogRecord record = sampleRecord();
    record.message = "bad \xff\xfe byte";
    record.service = "svc\xc3"; // a truncated two-byte sequence
    record.fields = {{"raw", "\x80"}};
    std::string line;
    ASSERT_NO_THROW(line = toJsonLine(record));
    EXPECT_EQ(line.find('\xff'), std::string::npos);
    EXPECT_NE(line.find("\xef\xbf\xbd"), std::string::npos) << "no U+FFFD replacement in " << line;
    const auto parsed = parseJsonLine(line);
    ASSERT_TRUE(parsed.has_value()) << line;
    EXPECT_EQ(parsed->message.rfind("bad ", 0), 0u);
    EXPECT_NE(parsed->message.find(" byte"), std::string::npos);
    EXPECT_EQ(parsed->service.rfind("svc", 0), 0u);
}

// ---------------------------------------------------------------------------------------------------------
// parseJsonLine

TEST(ParseJsonLine, RoundTripsARecord) {
    const LogRecord record = sampleRecord();
    const auto parsed = parseJsonLine(toJsonLine(record));
    ASSERT_TRUE(parsed.has_value());
    expectSameRecord(*parsed, record);
}

TEST(ParseJsonLine, RoundTripsEveryLevelAndTrickyText) {
    for (int level = 0; level <= static_cast<int>(LogLevel::Critical); ++level) {
        LogRecord record = sampleRecord();
        record.level = static_cast<LogLevel>(level);
        record.message = "line one\nline \"two\"\t\\ \x01 ünï";
        record.event = "";
        record.fields = {};
        const auto parsed = parseJsonLine(toJsonLine(record));
        ASSERT_TRUE(parsed.has_value()) << level;
        expectSameRecord(*parsed, record);
    }
}

TEST(ParseJsonLine, RoundTripsTimesAtTheEdges) {
    for (const TimePoint time :
         {TimePoint(0s), TimePoint(-1us), TimePoint(951868799s + 999999us), TimePoint(kSampleSecond)}) {
        LogRecord record = sampleRecord();
        record.timestamp = time;
        const auto parsed = parseJsonLine(toJsonLine(record));
        ASSERT_TRUE(parsed.has_value());
        EXPECT_EQ(parsed->timestamp, time) << formatTimestamp(time);
    }
}

TEST(ParseJsonLine, AcceptsATrailingNewline) {
    EXPECT_TRUE(parseJsonLine(toJsonLine(sampleRecord()) + "\n").has_value());
}

TEST(ParseJsonLine, EventAndFieldsAreOptional) {
    const auto parsed = parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000001Z","level":"error",)"
                                      R"("service":"db","pid":7,"message":"m"})");
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->event, "");
    EXPECT_TRUE(parsed->fields.empty());
    EXPECT_EQ(parsed->level, LogLevel::Error);
    EXPECT_EQ(parsed->pid, 7);
    EXPECT_EQ(parsed->timestamp, TimePoint(kSampleSecond + 1us));
}

TEST(ParseJsonLine, NonStringFieldValuesBecomeTheirJsonText) {
    const auto parsed = parseJsonLine(
        R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":"s","pid":1,"message":"m",)"
        R"("fields":{"count":5,"ok":true,"list":[1,2],"text":"t"}})");
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->fields.at("count"), "5");
    EXPECT_EQ(parsed->fields.at("ok"), "true");
    EXPECT_EQ(parsed->fields.at("list"), "[1,2]");
    EXPECT_EQ(parsed->fields.at("text"), "t");
}

TEST(ParseJsonLine, RejectsLinesThatAreNotJsonObjects) {
    EXPECT_FALSE(parseJsonLine("").has_value());
    EXPECT_FALSE(parseJsonLine("not json at all").has_value());
    EXPECT_FALSE(parseJsonLine("[1,2,3]").has_value());
    EXPECT_FALSE(parseJsonLine("42").has_value());
    EXPECT_FALSE(parseJsonLine("\"text\"").has_value());
    EXPECT_FALSE(parseJsonLine("{\"timestamp\":").has_value());
    const std::string line = toJsonLine(sampleRecord());
    EXPECT_FALSE(parseJsonLine(line.substr(0, line.size() - 1)).has_value());
}

TEST(ParseJsonLine, RejectsMissingRequiredMembers) {
    const std::string complete = R"("timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":"s",)"
                                 R"("pid":1,"message":"m")";
    EXPECT_TRUE(parseJsonLine("{" + complete + "}").has_value());
    EXPECT_FALSE(parseJsonLine(R"({"level":"info","service":"s","pid":1,"message":"m"})").has_value());
    EXPECT_FALSE(
        parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000000Z","service":"s","pid":1,"message":"m"})")
            .has_value());
    EXPECT_FALSE(
        parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","pid":1,"message":"m"})")
            .has_value());
    EXPECT_FALSE(
        parseJsonLine(
            R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":"s","message":"m"})")
            .has_value());
    EXPECT_FALSE(
        parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":"s","pid":1})")
            .has_value());
}

TEST(ParseJsonLine, RejectsMembersOfTheWrongType) {
    EXPECT_FALSE(parseJsonLine(lineWith("12345")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39.000000Z\"", "3")).has_value());
    EXPECT_FALSE(parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":5,)"
                               R"("pid":1,"message":"m"})")
                     .has_value());
    EXPECT_FALSE(parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":"s",)"
                               R"("pid":"1","message":"m"})")
                     .has_value());
    EXPECT_FALSE(parseJsonLine(R"({"timestamp":"2026-11-23T15:24:39.000000Z","level":"info","service":"s",)"
                               R"("pid":1,"message":null})")
                     .has_value());
}

TEST(ParseJsonLine, RejectsUnknownLevels) {
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39.000000Z\"", "\"loud\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39.000000Z\"", "\"INFO\"")).has_value());
}

TEST(ParseJsonLine, RejectsTimestampsThatAreNotTimestamps) {
    EXPECT_FALSE(parseJsonLine(lineWith("\"yesterday\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39Z\"")).has_value());
}

TEST(ParseJsonLine, RejectsTimestampsThatDifferFromTheWrittenFormat) {
    // Each of these would otherwise be read as a different moment than it names.
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39.5Z\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39.123456+02:00\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-11-23T15:24:39.123456\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-13-45T15:24:39.123456Z\"")).has_value());
    EXPECT_FALSE(parseJsonLine(lineWith("\"2026-02-29T15:24:39.123456Z\"")).has_value());
    EXPECT_TRUE(parseJsonLine(lineWith("\"2028-02-29T15:24:39.123456Z\"")).has_value());
}

} // namespace
} // namespace tau
