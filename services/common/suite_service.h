#pragma once
// What every service process of the suite shares: its bus connection, its loop, the configuration and the
// authorization of callers.

#include "tau/bus/authorizer.h"
#include "tau/config.h"
#include "tau/event_loop.h"

#include <memory>
#include <sdbus-c++/IConnection.h>
#include <string>

namespace tau {

struct ServiceContext {
    const Config& config;
    sdbus::IConnection& connection;
    EventLoop& loop;
    bus::Authorizer& authorizer;
};

// A service's objects, alive while its process serves.
class SuiteService {
  public:
    virtual ~SuiteService() = default;
};

// Claims a well-known name, retrying for a while when a previous owner (a predecessor that is still
// exiting) holds it. Throws the last sdbus::Error when the name stays taken.
void requestNameWithRetry(sdbus::IConnection& connection, const std::string& name);

} // namespace tau
