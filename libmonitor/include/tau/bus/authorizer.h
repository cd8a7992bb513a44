#pragma once
// Who may call mutating methods: root, the daemon's own user, and members of the configured admin groups.
// The caller's UID comes from the bus daemon (GetConnectionUnixUser), which recorded it when the peer
// connected, not from /proc, whose PID may have been reused.

#include <map>
#include <memory>
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

class Authorizer {
  public:
    Authorizer(sdbus::IConnection& connection, AccessPolicy policy);

    // Throws org.tauos.Error.PermissionDenied unless the sender of the message being processed by `object`
    // may call `method`.
    void requireAdmin(sdbus::IObject& object, const std::string& method);

    uid_t callerUid(const std::string& sender);

  private:
    std::unique_ptr<sdbus::IProxy> bus_daemon_;
    AccessPolicy policy_;
};

} // namespace tau::bus
