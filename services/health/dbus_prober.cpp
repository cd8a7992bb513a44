#include "dbus_prober.h"

#include <sdbus-c++/sdbus-c++.h>

namespace tau {
namespace {

constexpr const char* kBusName = "org.freedesktop.DBus";
constexpr const char* kBusPath = "/org/freedesktop/DBus";
constexpr const char* kPeerInterface = "org.freedesktop.DBus.Peer";

std::chrono::microseconds asMicros(std::chrono::steady_clock::duration timeout) {
    return std::chrono::duration_cast<std::chrono::microseconds>(timeout);
}

} // namespace

DbusProber::DbusProber(Reactor& reactor, sdbus::IConnection& connection, std::string busName)
    : reactor_(reactor), bus_name_(std::move(busName)),
      bus_(sdbus::createProxy(connection, kBusName, kBusPath)),
      peer_(sdbus::createProxy(connection, bus_name_, "/")) {
    bus_->finishRegistration();
    peer_->finishRegistration();
}

DbusProber::~DbusProber() {
    cancel();
}

void DbusProber::start(std::chrono::steady_clock::duration timeout, Done done) {
    done_ = std::move(done);
    try {
        pending_ = bus_->callMethodAsync("NameHasOwner")
                       .onInterface(kBusName)
                       .withTimeout(asMicros(timeout))
                       .withArguments(bus_name_)
                       .uponReplyInvoke([this, timeout](const sdbus::Error* error, bool owned) {
                           if (error != nullptr)
                               finish(ProbeOutcome::failed("NameHasOwner: " + error->getMessage()));
                           else if (!owned)
                               finish(ProbeOutcome::failed(bus_name_ + " has no owner on the bus"));
                           else
                               ping(timeout);
                       });
    } catch (const sdbus::Error& e) {
        finishLater(ProbeOutcome::failed("NameHasOwner: " + e.getMessage()));
    }
}

void DbusProber::ping(std::chrono::steady_clock::duration timeout) {
    try {
        pending_ = peer_->callMethodAsync("Ping")
                       .onInterface(kPeerInterface)
                       .withTimeout(asMicros(timeout))
                       .uponReplyInvoke([this](const sdbus::Error* error) {
                           if (error != nullptr)
                               finish(ProbeOutcome::failed("Peer.Ping: " + error->getName() + ": " +
                                                           error->getMessage()));
                           else
                               finish(ProbeOutcome::succeeded(bus_name_ + " answered Peer.Ping"));
                       });
    } catch (const sdbus::Error& e) {
        // Inside a reply callback already: reporting now is from the loop, as the contract asks.
        finish(ProbeOutcome::failed("Peer.Ping: " + e.getMessage()));
    }
}

void DbusProber::finish(ProbeOutcome outcome) {
    if (!done_)
        return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(outcome));
}

void DbusProber::finishLater(ProbeOutcome outcome) {
    report_timer_ = reactor_.addTimer(std::chrono::steady_clock::duration::zero(),
                                      [this, outcome = std::move(outcome)]() mutable {
                                          report_timer_.reset();
                                          finish(std::move(outcome));
                                      });
}

void DbusProber::cancel() {
    pending_.cancel();
    if (report_timer_) {
        reactor_.cancelTimer(*report_timer_);
        report_timer_.reset();
    }
    done_ = nullptr;
}

} // namespace tau
