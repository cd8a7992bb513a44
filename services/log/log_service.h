#pragma once

#include "suite_service.h"

#include <memory>

namespace tau {

// Writes the suite's records to logging.log_file_path and serves org.tauos.Log1. The log service's own
// records go straight to the file, not over the bus.
std::unique_ptr<SuiteService> makeLogService(ServiceContext& context);

} // namespace tau
