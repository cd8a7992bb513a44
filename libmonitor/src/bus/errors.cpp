#include "tau/bus/errors.h"

namespace tau::bus {

std::string errorName(ErrorCode code) {
    return "org.tauos.Error." + std::string(toString(code));
}

void throwError(ErrorCode code, const std::string& message) {
    throw sdbus::Error(errorName(code), message);
}

} // namespace tau::bus
