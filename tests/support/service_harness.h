#pragma once
// Runs one service of the suite in-process, on its own loop thread and its own connection, on a private
// dbus-daemon started for the test; the test talks to it through a second connection, as any client would.

#include "suite_service.h"
#include "tau/bus/private_bus.h"
#include "tau/config.h"
#include "test_support.h"

#include <functional>
#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <thread>

namespace tau::test {

class ServiceHarness {
  public:
    using Factory = std::function<std::unique_ptr<SuiteService>(ServiceContext&)>;

    // Starts the bus, then the service, and returns once it owns `bus_name`.
    ServiceHarness(Config config, Factory factory, std::string bus_name);
    ~ServiceHarness();

    const std::string& address() const { return bus_->address(); }
    const TempDir& dir() const { return dir_; }
    // A client connection of the test thread.
    sdbus::IConnection& client() { return *client_; }
    std::unique_ptr<sdbus::IConnection> connect() const;

  private:
    TempDir dir_;
    std::unique_ptr<bus::PrivateBus> bus_;
    Config config_;
    std::unique_ptr<sdbus::IConnection> client_;
    int wakeup_fd_ = -1;
    std::thread server_;
};

} // namespace tau::test
