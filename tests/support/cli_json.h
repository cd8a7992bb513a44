#pragma once
// The CLI's JSON answers, for the end-to-end tests.

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau::test {

// `tau-monitor-cli --format json ARGS...`; a failed call fails the test, and an answer that does not parse
// throws (and so fails it too).
inline nlohmann::json cliJson(const RunningDaemon& daemon, std::vector<std::string> args) {
    args.insert(args.begin(), {"--format", "json"});
    const auto result = daemon.cli(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out);
}

// The entry of `processes` for this service (the suite's own services are listed too); an empty object
// when there is none.
inline nlohmann::json serviceEntry(const RunningDaemon& daemon, const std::string& name) {
    for (const auto& entry : cliJson(daemon, {"processes"})) {
        if (entry["name"] == name) {
            return entry;
        }
    }
    return nlohmann::json::object();
}

// Its main pid; 0 when it is not running or not there.
inline pid_t servicePid(const RunningDaemon& daemon, const std::string& name) {
    return serviceEntry(daemon, name).value("pid", 0);
}

} // namespace tau::test
