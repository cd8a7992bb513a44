#pragma once
// The audit trail of the suite: every mutating D-Bus call leaves one record saying who called (UID and PID
// as the bus daemon knows them), what (the method and a summary of its arguments) and how it ended (ok, or
// the D-Bus error name). The records carry the event name "audit.call"; the Log service writes them to
// the audit log, whose hash chain makes an edit, an insertion or a deletion visible.

#include "tau/bus/authorizer.h"
#include "tau/bus/errors.h"

#include <sdbus-c++/Error.h>
#include <sdbus-c++/IObject.h>
#include <string>
#include <type_traits>

namespace tau::bus {

void writeAuditRecord(const Caller& caller, const std::string& method, const std::string& arguments,
                      const std::string& result);

// Runs `function` as guarded() does and audits the call, whatever its outcome.
template <typename Function>
auto auditing(const Caller& caller, const char* method, const std::string& arguments, Function&& function)
    -> decltype(function()) {
    try {
        if constexpr (std::is_void_v<decltype(function())>) {
            guarded(method, std::forward<Function>(function));
            writeAuditRecord(caller, method, arguments, "ok");
        } else {
            auto result = guarded(method, std::forward<Function>(function));
            writeAuditRecord(caller, method, arguments, "ok");
            return result;
        }
    } catch (const sdbus::Error& error) {
        writeAuditRecord(caller, method, arguments, error.getName());
        throw;
    }
}

// A mutating method that only administrators may call: authorized, run and audited, refused or not.
template <typename Function>
auto audited(Authorizer& authorizer, sdbus::IObject& object, const char* method, const std::string& arguments,
             Function&& function) -> decltype(function()) {
    const Caller caller = authorizer.identify(object);
    return auditing(caller, method, arguments, [&]() -> decltype(function()) {
        authorizer.require(caller, method);
        return function();
    });
}

} // namespace tau::bus
