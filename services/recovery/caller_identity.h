#pragma once
// Which supervised service is calling: the session state store must never take a service's name from an
// argument, or any process could read or overwrite another service's state. The bus daemon reports the
// caller's PID, and the supervisor, which knows every service's process tree, maps it to a service.

#include "tau/bus/connection.h"
#include "tau/bus/errors.h"
#include "tau/errors.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IObject.h>
#include <sdbus-c++/IProxy.h>
#include <sdbus-c++/Message.h>
#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <sys/types.h>

namespace tau {

// Maps a PID to the supervised service whose process tree holds it.
class ServiceResolver {
  public:
    virtual ~ServiceResolver() = default;
    // The service's name; unset when no supervised service's tree holds `pid`, or when the supervisor does
    // not run (then no process is a supervised service). Throws ServiceError(Unavailable) when the
    // supervisor runs but does not answer.
    virtual std::optional<std::string> serviceOfProcess(pid_t pid) = 0;
};

// Asks org.tauos.Processes1 ServiceOfProcess. Synchronous from inside a handler: Processes1 never calls
// this service synchronously (its reports to Recovery are asynchronous), so this cannot deadlock, and the
// short timeout bounds how long a hung supervisor can stall this service's loop.
class BusServiceResolver final : public ServiceResolver {
  public:
    static constexpr std::chrono::seconds kTimeout{2};

    explicit BusServiceResolver(sdbus::IConnection& connection)
        : processes_(sdbus::createProxy(connection, bus::kProcessesName, bus::kProcessesPath)) {
        processes_->finishRegistration();
    }

    std::optional<std::string> serviceOfProcess(pid_t pid) override {
        std::string name;
        try {
            processes_->callMethod("ServiceOfProcess")
                .onInterface(bus::kProcessesName)
                .withTimeout(kTimeout)
                .withArguments(static_cast<int32_t>(pid))
                .storeResultsTo(name);
        } catch (const sdbus::Error& e) {
            if (e.getName() == bus::errorName(ErrorCode::NotFound) || isSupervisorAbsent(e.getName())) {
                return std::nullopt;
            }
            throw ServiceError(ErrorCode::Unavailable,
                               "cannot identify the calling service: " + std::string(bus::kProcessesName) +
                                   " ServiceOfProcess(" + std::to_string(pid) + ") failed: " + e.getName() +
                                   ": " + e.getMessage());
        }
        return name;
    }

  private:
    static bool isSupervisorAbsent(const std::string& error_name) {
        // Nobody owns the name, or its owner left between the lookup and the call.
        return error_name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
               error_name == "org.freedesktop.DBus.Error.NameHasNoOwner" ||
               error_name == "org.freedesktop.DBus.Error.UnknownObject";
    }

    std::unique_ptr<sdbus::IProxy> processes_;
};

class CallerIdentity {
  public:
    explicit CallerIdentity(ServiceResolver& resolver) : resolver_(resolver) {}

    // The PID of the sender of the message `object` is processing, as the bus daemon reports it. Throws
    // ServiceError(PermissionDenied) when it cannot be had (the caller has left already).
    static pid_t callerPid(sdbus::IObject& object, const std::string& method) {
        const auto* message = object.getCurrentlyProcessedMessage();
        if (message == nullptr) {
            throw ServiceError(ErrorCode::PermissionDenied, method + ": no caller to identify");
        }
        try {
            // sd-bus asks the bus daemon, which recorded the peer's PID when it connected.
            return message->getCredsPid();
        } catch (const sdbus::Error& e) {
            throw ServiceError(ErrorCode::PermissionDenied,
                               method + ": cannot identify the caller: " + e.getMessage());
        }
    }

    // The supervised service that sent the message `object` is processing; unset when the caller is none.
    std::optional<std::string> findService(sdbus::IObject& object, const std::string& method) {
        return resolve(callerPid(object, method), method);
    }

    // As findService, but a caller that is no supervised service gets ServiceError(PermissionDenied).
    std::string requireService(sdbus::IObject& object, const std::string& method) {
        const pid_t pid = callerPid(object, method);
        auto service = resolve(pid, method);
        if (!service) {
            throw ServiceError(ErrorCode::PermissionDenied,
                               method + ": the caller (pid " + std::to_string(pid) +
                                   ") is in no supervised service's process tree; only a supervised service "
                                   "may keep session state");
        }
        return std::move(*service);
    }

  private:
    std::optional<std::string> resolve(pid_t pid, const std::string& method) {
        try {
            return resolver_.serviceOfProcess(pid);
        } catch (const ServiceError& e) {
            throw ServiceError(e.code(), method + ": " + e.what());
        }
    }

    ServiceResolver& resolver_;
};

} // namespace tau
