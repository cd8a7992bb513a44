#pragma once

#include <sdbus-c++/IConnection.h>

#include "tau/event_loop.h"

namespace tau::bus {

// Drives `connection` from `loop`: every D-Bus callback then runs on the loop's thread.
void attachToLoop(EventLoop& loop, sdbus::IConnection& connection);

}  // namespace tau::bus
