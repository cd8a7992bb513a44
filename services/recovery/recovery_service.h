#pragma once

#include "suite_service.h"

#include <memory>

namespace tau {

// Records every ServiceExited of org.tauos.Processes1 in the crash history and serves org.tauos.Recovery1.
std::unique_ptr<SuiteService> makeRecoveryService(ServiceContext& context);

} // namespace tau
