#pragma once

#include "tau/config.h"

#include <nlohmann/json.hpp>

namespace tau {

// The effective configuration as JSON, with the TOML section and key names.
nlohmann::ordered_json configToJson(const Config& config);

} // namespace tau
