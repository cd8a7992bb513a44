#pragma once
// Who may call mutating methods: root, the daemon's own user, and members of the configured admin groups.
// The caller's UID comes from the bus daemon (GetConnectionUnixUser), which recorded it when the peer
// connected, not from /proc, whose PID may have been reused.

#include <map>
#include <memory>
#include <optional>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IObject.h>
#include <sdbus-c++/IProxy.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau::bus {

// The policy alone, so that it can be tested without a bus.
class AccessPolicy {
  public:
    AccessPolicy(uid_t daemon_uid, std::vector<std::string> admin_groups);
    bool allows(uid_t caller) const;

  private:
    uid_t daemon_uid_;
    std::vector<std::string> admin_groups_;
};

// The sender of a method call as the bus daemon knows it.
struct Caller {
    std::string sender;        // its unique name, ":1.42"
    std::optional<uid_t> uid;  // unset when the bus daemon could not say (the caller already left)
    std::optional<pid_t> pid;  // unset as well when the caller's PID is unknown to the bus daemon
    std::string unknown_since; // why uid is unset
};

class Authorizer {
  public:
    Authorizer(sdbus::IConnection& connection, AccessPolicy policy);

    // Who sent the message being processed by `object`. A call to the bus daemon, which cannot call back into
    // us, so it is safe from inside a handler.
    Caller identify(sdbus::IObject& object);
    // Throws org.tauos.Error.PermissionDenied unless `caller` may call `method`.
    void require(const Caller& caller, const std::string& method) const;
    void requireAdmin(sdbus::IObject& object, const std::string& method) {
        require(identify(object), method);
    }

  private:
    std::unique_ptr<sdbus::IProxy> bus_daemon_;
    AccessPolicy policy_;
};

} // namespace tau::bus
