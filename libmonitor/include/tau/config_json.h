#pragma once

#include <nlohmann/json.hpp>

#include "tau/config.h"

namespace tau {

// The effective configuration as JSON, with the TOML section and key names.
nlohmann::ordered_json configToJson(const Config& config);

}  // namespace tau
