#pragma once

#include "suite_service.h"

#include <memory>

namespace tau {

// Scores the system every health_checking.check_interval_seconds from what org.tauos.Resources1 and
// org.tauos.Processes1 report, and serves org.tauos.Health1.
std::unique_ptr<SuiteService> makeHealthService(ServiceContext& context);

} // namespace tau
