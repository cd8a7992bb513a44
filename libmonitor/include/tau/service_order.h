#pragma once

#include <vector>

#include "tau/config.h"

namespace tau {

// The configured services in an order that starts every service after the services it depends on (and
// so stops it before them, read backwards); otherwise the order of the configuration. The configuration
// is known to be free of cycles.
std::vector<const ServiceConfig*> startOrder(const Config& config);

}  // namespace tau
