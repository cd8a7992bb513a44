#pragma once
// The one place where domain errors become D-Bus errors. The sdbus-c++ 1.2 dispatcher lets only
// sdbus::Error through: anything else thrown from a handler aborts the process, so every entry point of an
// adaptor runs through guarded().

#include "tau/errors.h"

#include <exception>
#include <sdbus-c++/Error.h>
#include <spdlog/spdlog.h>
#include <string>
#include <utility>

namespace tau::bus {

std::string errorName(ErrorCode code); // "org.tauos.Error.NotFound"

[[noreturn]] void throwError(ErrorCode code, const std::string& message);

template <typename Function> auto guarded(const char* what, Function&& function) -> decltype(function()) {
    try {
        return std::forward<Function>(function)();
    } catch (const sdbus::Error&) {
        throw;
    } catch (const ServiceError& e) {
        throw sdbus::Error(errorName(e.code()), e.what());
    } catch (const std::exception& e) {
        spdlog::error("{}: internal error: {}", what, e.what());
        throw sdbus::Error(errorName(ErrorCode::Internal), std::string(what) + ": " + e.what());
    } catch (...) {
        spdlog::error("{}: unknown internal error", what);
        throw sdbus::Error(errorName(ErrorCode::Internal), std::string(what) + ": unknown error");
    }
}

// For callbacks the dispatcher calls where no error can be returned (signal handlers, async replies):
// logs instead of letting an exception abort the process.
template <typename Function> void logged(const char* what, Function&& function) noexcept {
    try {
        std::forward<Function>(function)();
    } catch (const std::exception& e) {
        spdlog::error("{}: {}", what, e.what());
    } catch (...) {
        spdlog::error("{}: unknown error", what);
    }
}

} // namespace tau::bus
