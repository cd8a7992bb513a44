#pragma once
// Session state for a supervised service written in C++: save your state as bytes whenever it changes, and
// load it back when you start, so that a restart resumes where the crash stopped you. Header-only; needs
// sdbus-c++ and libsystemd (sd-bus), nothing else of tau-monitor.
//
//     auto connection = tau::client::connectToSupervisor();
//     tau::client::SessionState state(*connection);
//     if (auto saved = state.load()) { resume(saved->data); }
//     ...
//     state.save(bytes);   // durable once it returns
//
// The calls are org.tauos.Recovery1 SaveState and LoadState; tau-monitor tells which service calls from
// the caller's process, so a service reads and writes only its own state. Errors are sdbus::Error with
// the names in dbus/errors.md (InvalidArgument for a state over the size limit, Unavailable when the store
// cannot be written, PermissionDenied outside a supervised service).

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include "tau/client/byte_arrays.h"

#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <vector>

namespace tau::client {

// The bus of the tau-monitor that supervises this process: TAU_MONITOR_BUS, which it sets for every service
// ("system", "session" or a D-Bus address), else the system bus.
inline std::unique_ptr<sdbus::IConnection> connectToSupervisor() {
    const char* bus = std::getenv("TAU_MONITOR_BUS");
    const std::string choice = bus != nullptr ? bus : "system";
    if (choice == "system") {
        return sdbus::createSystemBusConnection();
    }
    if (choice == "session") {
        return sdbus::createSessionBusConnection();
    }
    return sdbus::createSessionBusConnectionWithAddress(choice);
}

struct SavedState {
    std::vector<std::uint8_t> data;
    std::uint64_t version = 0;
    std::chrono::system_clock::time_point saved_at;
};

class SessionState {
  public:
    static constexpr const char* kName = "org.tauos.Recovery1";
    static constexpr const char* kPath = "/org/tauos/Recovery1";

    explicit SessionState(sdbus::IConnection& connection,
                          std::chrono::microseconds timeout = std::chrono::seconds(5))
        : proxy_(sdbus::createProxy(connection, kName, kPath)), timeout_(timeout) {
        proxy_->finishRegistration();
    }

    // Stores `data` as the next version and returns its number once it is on disk.
    std::uint64_t save(const std::vector<std::uint8_t>& data) {
        std::uint64_t version = 0;
        proxy_->callMethod("SaveState")
            .onInterface(kName)
            .withTimeout(timeout_)
            .withArguments(data)
            .storeResultsTo(version);
        return version;
    }

    // The newest good version; nullopt when nothing was saved yet (or every version is quarantined).
    std::optional<SavedState> load() {
        SavedState state;
        std::uint64_t saved_at_usec = 0;
        try {
            proxy_->callMethod("LoadState")
                .onInterface(kName)
                .withTimeout(timeout_)
                .storeResultsTo(state.data, state.version, saved_at_usec);
        } catch (const sdbus::Error& e) {
            if (e.getName() == "org.tauos.Error.NotFound") {
                return std::nullopt;
            }
            throw;
        }
        state.saved_at = std::chrono::system_clock::time_point(std::chrono::microseconds(saved_at_usec));
        return state;
    }

  private:
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::chrono::microseconds timeout_;
};

} // namespace tau::client
