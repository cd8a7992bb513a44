#include "tau/errors.h"

namespace tau {

std::string_view toString(ErrorCode code) {
    switch (code) {
    case ErrorCode::InvalidArgument:
        return "InvalidArgument";
    case ErrorCode::NotFound:
        return "NotFound";
    case ErrorCode::PermissionDenied:
        return "PermissionDenied";
    case ErrorCode::Busy:
        return "Busy";
    case ErrorCode::Unavailable:
        return "Unavailable";
    case ErrorCode::LimitExceeded:
        return "LimitExceeded";
    case ErrorCode::SpawnFailed:
        return "SpawnFailed";
    case ErrorCode::Internal:
        return "Internal";
    }
    return "Internal";
}

} // namespace tau
