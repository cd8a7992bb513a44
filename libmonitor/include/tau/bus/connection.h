#pragma once
// Which bus to use and how to reach it: the daemon and the CLI share these rules.

#include <memory>
#include <sdbus-c++/IConnection.h>
#include <string>
#include <string_view>
#include <vector>

namespace tau::bus {

inline constexpr const char* kProcessesName = "org.tauos.Processes1";
inline constexpr const char* kProcessesPath = "/org/tauos/Processes1";
inline constexpr const char* kRecoveryName = "org.tauos.Recovery1";
inline constexpr const char* kRecoveryPath = "/org/tauos/Recovery1";
inline constexpr const char* kResourcesName = "org.tauos.Resources1";
inline constexpr const char* kResourcesPath = "/org/tauos/Resources1";
inline constexpr const char* kHealthName = "org.tauos.Health1";
inline constexpr const char* kHealthPath = "/org/tauos/Health1";
inline constexpr const char* kLogName = "org.tauos.Log1";
inline constexpr const char* kLogPath = "/org/tauos/Log1";

struct BusChoice {
    enum class Kind { Auto, System, Session, Private, Address };
    Kind kind = Kind::Auto;
    std::string address; // for Address

    // "auto", "system", "session", "private", or a D-Bus address such as "unix:path=/run/x".
    // Throws std::invalid_argument naming the value.
    static BusChoice parse(std::string_view text);
    // The text parse() turns back into this choice.
    std::string toString() const;
};

// Opens a connection to a system, session or address bus. Throws sdbus::Error when unreachable.
std::unique_ptr<sdbus::IConnection> openConnection(const BusChoice& choice);

bool systemBusReachable();
bool sessionBusConfigured();

// Whether a name has an owner on the bus (org.freedesktop.DBus.NameHasOwner).
bool nameHasOwner(sdbus::IConnection& connection, const std::string& name);

// A connection to the bus where the daemon runs, for clients. Auto tries, in order, the private bus whose
// address the daemon wrote under the runtime directory, the system bus and the session bus, and takes the
// first where org.tauos.Processes1 has an owner. Throws DaemonNotFound with what was tried.
struct DaemonConnection {
    std::unique_ptr<sdbus::IConnection> connection;
    std::string description; // "private bus unix:path=...", "system bus", ...
};

class DaemonNotFound : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

DaemonConnection connectToDaemon(const BusChoice& choice);

// Encodes a service name as an object path below /org/tauos/Processes1/service.
std::string serviceObjectPath(const std::string& serviceName);

} // namespace tau::bus
