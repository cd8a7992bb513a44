#pragma once

#include "suite_service.h"

#include <memory>

namespace tau {

// Samples the machine every resource_monitoring.interval_seconds and serves org.tauos.Resources1.
std::unique_ptr<SuiteService> makeResourcesService(ServiceContext& context);

} // namespace tau
