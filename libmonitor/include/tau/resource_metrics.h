#pragma once
// A resource snapshot as (metric, scope, value) samples, the form thresholds, history and exporters share.

#include "tau/resource_monitor.h"
#include "tau/resources.h"

#include <vector>

namespace tau {

// Names follow kThresholdMetrics where one applies; scopes are kSystemScope, a mount point, a device, an
// interface, a sensor, a core ("cpu0") or a service name. What was not measured (a rate on the first sample,
// a stale mount, the values of a failed collector, a service that is not running) is left out rather than
// reported as 0, so that consumers see missing data instead of a false reading.
std::vector<MetricSample> toMetricSamples(const ResourceSnapshot& snapshot);

} // namespace tau
