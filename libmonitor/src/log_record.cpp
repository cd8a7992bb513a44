#include "tau/log_record.h"

#include <ctime>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tau {

namespace {
constexpr std::string_view kLevelNames[] = {"trace", "debug", "info", "warning", "error", "critical"};
}

std::string_view toString(LogLevel level) {
    return kLevelNames[static_cast<int>(level)];
}

std::optional<LogLevel> logLevelFromString(std::string_view text) {
    for (int i = 0; i < static_cast<int>(std::size(kLevelNames)); ++i) {
        if (kLevelNames[i] == text) {
            return static_cast<LogLevel>(i);
        }
    }
    return std::nullopt;
}

std::string formatTimestamp(std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto since_epoch = duration_cast<microseconds>(time.time_since_epoch());
    const auto whole = floor<seconds>(since_epoch);
    const std::time_t seconds_part = static_cast<std::time_t>(whole.count());
    const long fraction = static_cast<long>((since_epoch - whole).count());
    std::tm utc{};
    gmtime_r(&seconds_part, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                       utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, fraction);
}

std::string toJsonLine(const LogRecord& record) {
    nlohmann::ordered_json json;
    json["timestamp"] = formatTimestamp(record.timestamp);
    json["level"] = toString(record.level);
    json["service"] = record.service;
    json["pid"] = record.pid;
    json["event"] = record.event;
    json["message"] = record.message;
    json["fields"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : record.fields) {
        json["fields"][key] = value;
    }
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// Exactly the form formatTimestamp() writes: "YYYY-MM-DDTHH:MM:SS.uuuuuuZ".
std::optional<std::chrono::system_clock::time_point> parseTimestamp(const std::string& stamp) {
    std::tm utc{};
    long micros = 0;
    int consumed = 0;
    if (stamp.size() != 27 ||
        std::sscanf(stamp.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ%n", &utc.tm_year, &utc.tm_mon, &utc.tm_mday,
                    &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &micros, &consumed) != 7 ||
        consumed != 27 || stamp[19] != '.') {
        return std::nullopt;
    }
    const int days_in_month[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (utc.tm_mon < 1 || utc.tm_mon > 12 || utc.tm_mday < 1 || utc.tm_mday > days_in_month[utc.tm_mon - 1] ||
        utc.tm_hour > 23 || utc.tm_min > 59 || utc.tm_sec > 60 || micros < 0) {
        return std::nullopt;
    }
    utc.tm_year -= 1900;
    utc.tm_mon -= 1;
    const std::time_t seconds = timegm(&utc);
    // timegm() normalises 29 February of a common year into March; such a date was not written by us.
    if (utc.tm_mday != std::stoi(stamp.substr(8, 2))) {
        return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(seconds) + std::chrono::microseconds(micros);
}

} // namespace

std::optional<LogRecord> parseJsonLine(std::string_view line) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
        return std::nullopt;
    }
    try {
        LogRecord record;
        const auto level = logLevelFromString(json.at("level").get<std::string>());
        if (!level) {
            return std::nullopt;
        }
        record.level = *level;
        const auto timestamp = parseTimestamp(json.at("timestamp").get<std::string>());
        if (!timestamp) {
            return std::nullopt;
        }
        record.timestamp = *timestamp;
        record.service = json.at("service").get<std::string>();
        record.pid = json.at("pid").get<pid_t>();
        record.event = json.value("event", "");
        record.message = json.at("message").get<std::string>();
        if (json.contains("fields") && json["fields"].is_object()) {
            for (const auto& [key, value] : json["fields"].items()) {
                record.fields[key] = value.is_string() ? value.get<std::string>() : value.dump();
            }
        }
        return record;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

} // namespace tau
