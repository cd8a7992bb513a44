#include "tau/bus/audit.h"

#include "tau/bus/log_sink.h"

#include <fmt/format.h>

namespace tau::bus {
namespace {
constexpr std::size_t kMaxArgumentsSummary = 512;
}

void writeAuditRecord(const Caller& caller, const std::string& method, const std::string& arguments,
                      const std::string& result) {
    const std::string uid = caller.uid ? std::to_string(*caller.uid) : "unknown";
    const std::string pid = caller.pid ? std::to_string(*caller.pid) : "unknown";
    std::string summary = arguments.substr(0, kMaxArgumentsSummary);
    if (summary.size() < arguments.size()) {
        summary += "...";
    }
    const bool ok = result == "ok";
    logEvent(ok ? spdlog::level::info : spdlog::level::warn, "audit.call",
             {{"caller_uid", uid},
              {"caller_pid", pid},
              {"sender", caller.sender},
              {"method", method},
              {"arguments", summary},
              {"result", result}},
             fmt::format("{}({}) called by uid {} pid {}: {}", method, summary, uid, pid, result));
}

} // namespace tau::bus
