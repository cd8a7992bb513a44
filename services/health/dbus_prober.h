#pragma once
// The dbus probe: the service's well-known name has an owner, and that owner answers
// org.freedesktop.DBus.Peer.Ping, both asked without blocking the loop.

#include "tau/event_loop.h"
#include "tau/probes.h"

#include <memory>
#include <optional>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <string>

namespace tau {

class DbusProber final : public Prober {
  public:
    DbusProber(Reactor& reactor, sdbus::IConnection& connection, std::string busName);
    ~DbusProber() override;
    DbusProber(const DbusProber&) = delete;
    DbusProber& operator=(const DbusProber&) = delete;

    void start(std::chrono::steady_clock::duration timeout, Done done) override;
    void cancel() override;

  private:
    void ping(std::chrono::steady_clock::duration timeout);
    void finish(ProbeOutcome outcome);
    // A call that could not even be sent ends the attempt from a timer, as the contract asks.
    void finishLater(ProbeOutcome outcome);

    Reactor& reactor_;
    std::string bus_name_;
    std::unique_ptr<sdbus::IProxy> bus_;
    std::unique_ptr<sdbus::IProxy> peer_;
    Done done_;
    sdbus::PendingAsyncCall pending_;
    std::optional<Reactor::TimerId> report_timer_;
};

} // namespace tau
