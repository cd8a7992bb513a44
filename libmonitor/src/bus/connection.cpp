#include "tau/bus/connection.h"

#include "tau/paths.h"

#include <cstdlib>
#include <fstream>
#include <sdbus-c++/IProxy.h>
#include <sdbus-c++/sdbus-c++.h>
#include <stdexcept>
#include <systemd/sd-bus.h>
#include <unistd.h>

namespace tau::bus {
namespace {
const std::filesystem::path kRootBusAddressFile = "/run/tau-monitor/bus-address";
}

BusChoice BusChoice::parse(std::string_view text) {
    if (text == "auto") {
        return {Kind::Auto, {}};
    }
    if (text == "system") {
        return {Kind::System, {}};
    }
    if (text == "session") {
        return {Kind::Session, {}};
    }
    if (text == "private") {
        return {Kind::Private, {}};
    }
    // Every D-Bus address is transport:key=value[,...].
    const auto colon = text.find(':');
    if (colon != std::string_view::npos && colon > 0 && text.find('=', colon) != std::string_view::npos) {
        return {Kind::Address, std::string(text)};
    }
    throw std::invalid_argument("--bus: '" + std::string(text) +
                                "' is neither auto, system, session, private nor a D-Bus address");
}

std::string BusChoice::toString() const {
    switch (kind) {
    case Kind::Auto:
        return "auto";
    case Kind::System:
        return "system";
    case Kind::Session:
        return "session";
    case Kind::Private:
        return "private";
    case Kind::Address:
        return address;
    }
    return "auto";
}

std::unique_ptr<sdbus::IConnection> openConnection(const BusChoice& choice) {
    switch (choice.kind) {
    case BusChoice::Kind::System:
        return sdbus::createSystemBusConnection();
    case BusChoice::Kind::Session:
        return sdbus::createSessionBusConnection();
    case BusChoice::Kind::Address:
        return sdbus::createSessionBusConnectionWithAddress(choice.address);
    case BusChoice::Kind::Auto:
    case BusChoice::Kind::Private:
        break;
    }
    throw std::logic_error("openConnection needs a resolved bus, not " + choice.toString());
}

bool systemBusReachable() {
    const char* address = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
    if (address != nullptr && *address != '\0') {
        return true;
    }
    return access("/run/dbus/system_bus_socket", F_OK) == 0;
}

bool sessionBusConfigured() {
    const char* address = std::getenv("DBUS_SESSION_BUS_ADDRESS");
    return address != nullptr && *address != '\0';
}

bool nameHasOwner(sdbus::IConnection& connection, const std::string& name) {
    auto proxy = sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bool has_owner = false;
    proxy->callMethod("NameHasOwner")
        .onInterface("org.freedesktop.DBus")
        .withTimeout(std::chrono::seconds(2))
        .withArguments(name)
        .storeResultsTo(has_owner);
    return has_owner;
}

DaemonConnection connectToDaemon(const BusChoice& choice) {
    std::vector<std::pair<BusChoice, std::string>> candidates;
    if (choice.kind == BusChoice::Kind::Auto || choice.kind == BusChoice::Kind::Private) {
        // Our own runtime directory first, then that of a daemon run by root, which any user may query
        // (unless a runtime directory was named explicitly).
        std::vector<std::filesystem::path> files{busAddressFile()};
        const char* explicit_dir = std::getenv("TAU_MONITOR_RUNTIME_DIR");
        if (files.front() != kRootBusAddressFile && (explicit_dir == nullptr || *explicit_dir == '\0')) {
            files.emplace_back(kRootBusAddressFile);
        }
        for (const auto& file : files) {
            std::ifstream address_file(file);
            std::string address;
            if (address_file && std::getline(address_file, address) && !address.empty()) {
                candidates.push_back(
                    {BusChoice{BusChoice::Kind::Address, address}, "private bus " + address});
            }
        }
        if (candidates.empty() && choice.kind == BusChoice::Kind::Private) {
            throw DaemonNotFound("tau-monitor is not running: no private bus address in " +
                                 busAddressFile().string());
        }
    }
    if (choice.kind == BusChoice::Kind::Auto) {
        if (systemBusReachable()) {
            candidates.push_back({BusChoice{BusChoice::Kind::System, {}}, "system bus"});
        }
        if (sessionBusConfigured()) {
            candidates.push_back({BusChoice{BusChoice::Kind::Session, {}}, "session bus"});
        }
    } else if (choice.kind != BusChoice::Kind::Private) {
        candidates.push_back({choice, choice.kind == BusChoice::Kind::Address ? "bus " + choice.address
                                                                              : choice.toString() + " bus"});
    }

    std::string tried;
    for (auto& [candidate, description] : candidates) {
        try {
            auto connection = openConnection(candidate);
            if (nameHasOwner(*connection, kProcessesName)) {
                return {std::move(connection), description};
            }
            tried += (tried.empty() ? "" : "; ") + description + ": no " + kProcessesName;
        } catch (const sdbus::Error& e) {
            tried += (tried.empty() ? "" : "; ") + description + ": " + e.getMessage();
        }
    }
    if (tried.empty()) {
        tried = "no bus to try (no private bus address in " + busAddressFile().string() +
                ", no system bus, no session bus)";
    }
    throw DaemonNotFound("tau-monitor is not running (" + tried + ")");
}

std::string serviceObjectPath(const std::string& serviceName) {
    char* path = nullptr;
    if (sd_bus_path_encode("/org/tauos/Processes1/service", serviceName.c_str(), &path) < 0 ||
        path == nullptr) {
        throw std::runtime_error("cannot encode object path for service '" + serviceName + "'");
    }
    std::string result(path);
    std::free(path);
    return result;
}

} // namespace tau::bus
