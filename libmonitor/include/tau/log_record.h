#pragma once
// One structured log record and its JSON line.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace tau {

enum class LogLevel { Trace, Debug, Info, Warning, Error, Critical };

std::string_view toString(LogLevel level);
std::optional<LogLevel> logLevelFromString(std::string_view text);

struct LogRecord {
    std::chrono::system_clock::time_point timestamp;
    LogLevel level = LogLevel::Info;
    std::string service;
    pid_t pid = 0;
    std::string event; // stable event name such as "service.exited"; may be empty
    std::string message;
    std::map<std::string, std::string> fields;
};

// "2026-11-23T15:24:39.123456Z"
std::string formatTimestamp(std::chrono::system_clock::time_point time);

// One line of JSON without the trailing newline; invalid UTF-8 is replaced, never thrown on.
std::string toJsonLine(const LogRecord& record);

// The inverse of toJsonLine; nullopt for a line that is not such a record.
std::optional<LogRecord> parseJsonLine(std::string_view line);

} // namespace tau
