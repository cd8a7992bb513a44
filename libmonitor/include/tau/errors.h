#pragma once
// Errors of the domain logic, each with a code that the D-Bus layer maps to one org.tauos.Error name.

#include <stdexcept>
#include <string>
#include <string_view>

namespace tau {

enum class ErrorCode {
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Busy,
    Unavailable,
    LimitExceeded,
    SpawnFailed,
    Internal
};

std::string_view toString(ErrorCode code); // "InvalidArgument", ...

class ServiceError : public std::runtime_error {
  public:
    ServiceError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

  private:
    ErrorCode code_;
};

} // namespace tau
