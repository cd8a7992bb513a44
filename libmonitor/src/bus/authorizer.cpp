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

Caller Authorizer::identify(sdbus::IObject& object) {
    Caller caller;
    const auto* message = object.getCurrentlyProcessedMessage();
    caller.sender = message != nullptr ? message->getSender() : std::string{};
    try {
        std::map<std::string, sdbus::Variant> credentials;
        bus_daemon_->callMethod("GetConnectionCredentials")
            .onInterface("org.freedesktop.DBus")
            .withTimeout(std::chrono::seconds(5))
            .withArguments(caller.sender)
            .storeResultsTo(credentials);
        if (const auto uid = credentials.find("UnixUserID"); uid != credentials.end()) {
            caller.uid = static_cast<uid_t>(uid->second.get<uint32_t>());
        } else {
            caller.unknown_since = "the bus daemon reports no user";
        }
        if (const auto pid = credentials.find("ProcessID"); pid != credentials.end()) {
            caller.pid = static_cast<pid_t>(pid->second.get<uint32_t>());
        }
    } catch (const sdbus::Error& e) {
        caller.unknown_since = e.getMessage();
    }
    return caller;
}

void Authorizer::require(const Caller& caller, const std::string& method) const {
    if (!caller.uid) {
        // The caller left before we could ask about it: nobody to grant anything to.
        throwError(ErrorCode::PermissionDenied,
                   method + ": cannot identify the caller: " + caller.unknown_since);
    }
    if (!policy_.allows(*caller.uid)) {
        throwError(ErrorCode::PermissionDenied,
                   method + ": user " + std::to_string(*caller.uid) +
                       " is not allowed (only root, the daemon's user and security.admin_groups)");
    }
}

} // namespace tau::bus
