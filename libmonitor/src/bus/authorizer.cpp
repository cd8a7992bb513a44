#include "tau/bus/authorizer.h"

#include "tau/bus/errors.h"

#include <grp.h>
#include <pwd.h>
#include <sdbus-c++/Message.h>
#include <sdbus-c++/sdbus-c++.h>

namespace tau::bus {

AccessPolicy::AccessPolicy(uid_t daemon_uid, std::vector<std::string> admin_groups)
    : daemon_uid_(daemon_uid), admin_groups_(std::move(admin_groups)) {}

bool AccessPolicy::allows(uid_t caller) const {
    if (caller == 0 || caller == daemon_uid_) {
        return true;
    }
    if (admin_groups_.empty()) {
        return false;
    }
    const passwd* pw = getpwuid(caller);
    if (pw == nullptr) {
        return false;
    }
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &count) < 0) {
            return false;
        }
    }
    groups.resize(static_cast<std::size_t>(count));
    for (const auto& name : admin_groups_) {
        const group* gr = getgrnam(name.c_str());
        if (gr == nullptr) {
            continue;
        }
        for (const gid_t gid : groups) {
            if (gid == gr->gr_gid) {
                return true;
            }
        }
    }
    return false;
}

Authorizer::Authorizer(sdbus::IConnection& connection, AccessPolicy policy)
    : bus_daemon_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")),
      policy_(std::move(policy)) {
    bus_daemon_->finishRegistration();
}

uid_t Authorizer::callerUid(const std::string& sender) {
    uint32_t uid = 0;
    // A call to the bus daemon cannot call back into us, so it is safe from inside a handler.
    bus_daemon_->callMethod("GetConnectionUnixUser")
        .onInterface("org.freedesktop.DBus")
        .withTimeout(std::chrono::seconds(5))
        .withArguments(sender)
        .storeResultsTo(uid);
    return uid;
}

void Authorizer::requireAdmin(sdbus::IObject& object, const std::string& method) {
    const auto* message = object.getCurrentlyProcessedMessage();
    const std::string sender = message != nullptr ? message->getSender() : std::string{};
    uid_t uid = 0;
    try {
        uid = callerUid(sender);
    } catch (const sdbus::Error& e) {
        // The caller left before we could ask about it: nobody to grant anything to.
        throwError(ErrorCode::PermissionDenied, method + ": cannot identify the caller: " + e.getMessage());
    }
    if (!policy_.allows(uid)) {
        throwError(ErrorCode::PermissionDenied,
                   method + ": user " + std::to_string(uid) +
                       " is not allowed (only root, the daemon's user and security.admin_groups)");
    }
}

} // namespace tau::bus
