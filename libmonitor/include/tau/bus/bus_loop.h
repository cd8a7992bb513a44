#pragma once

#include "tau/event_loop.h"

#include <sdbus-c++/IConnection.h>

namespace tau::bus {

// Drives `connection` from `loop`: every D-Bus callback then runs on the loop's thread.
void attachToLoop(EventLoop& loop, sdbus::IConnection& connection);

} // namespace tau::bus
