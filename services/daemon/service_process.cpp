// One service of the suite in its own process, so that a fault in it cannot take down the supervisor.

#include "daemon.h"
#include "health_service.h"
#include "log_service.h"
#include "recovery_service.h"
#include "resources_service.h"
#include "tau/bus/bus_loop.h"
#include "tau/bus/log_sink.h"
#include "tau/signals.h"
#include "tau/spawner.h"

#include <functional>
#include <map>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace tau {
namespace {

constexpr std::size_t kLogQueueCapacity = 10000;

struct ServiceKind {
    const char* bus_name;
    std::function<std::unique_ptr<SuiteService>(ServiceContext&)> make;
};

const std::map<std::string, ServiceKind>& serviceKinds() {
    static const std::map<std::string, ServiceKind> kinds{
        {"log", {bus::kLogName, makeLogService}},
        {"recovery", {bus::kRecoveryName, makeRecoveryService}},
        {"resources", {bus::kResourcesName, makeResourcesService}},
        {"health", {bus::kHealthName, makeHealthService}},
    };
    return kinds;
}

} // namespace

int runServiceProcess(const std::string& name, const DaemonOptions& options) {
    const auto& kinds = serviceKinds();
    const auto kind = kinds.find(name);
    if (kind == kinds.end()) {
        spdlog::critical("unknown service '{}'", name);
        return 64;
    }
    // A service of the suite does not outlive its supervisor.
    const pid_t parent = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) {
        return 1;
    }

    const auto config = loadConfigFor(options);
    if (!config) {
        return kExitConfigError;
    }
    ::signal(SIGPIPE, SIG_IGN);
    SignalFd signals{SIGTERM, SIGINT};
    std::shared_ptr<bus::QueueingLogSink> log_queue;
    if (name != "log") {
        log_queue = std::make_shared<bus::QueueingLogSink>(name, kLogQueueCapacity);
    }
    bus::configureLogging(name, config->logging.log_level, log_queue);

    try {
        std::unique_ptr<sdbus::IConnection> connection;
        if (options.bus.kind == bus::BusChoice::Kind::Auto ||
            options.bus.kind == bus::BusChoice::Kind::Private) {
            connection = bus::connectToDaemon(options.bus).connection;
        } else {
            connection = bus::openConnection(options.bus);
        }
        EventLoop loop;
        bus::attachToLoop(loop, *connection);
        bus::Authorizer authorizer(*connection,
                                   bus::AccessPolicy(::geteuid(), config->security.admin_groups));
        ServiceContext context{*config, *connection, loop, authorizer};
        auto service = kind->second.make(context);
        requestNameWithRetry(*connection, kind->second.bus_name);
        std::optional<bus::LogForwarder> log_forwarder;
        if (log_queue) {
            log_forwarder.emplace(loop, *connection, log_queue);
        }
        loop.watchFd(signals.fd(), POLLIN, [&](short) {
            if (const int sig = signals.read()) {
                spdlog::info("{}: stopping", signalName(sig));
                loop.quit();
            }
        });
        spdlog::info("serving {}", kind->second.bus_name);
        loop.run();
        log_forwarder.reset();
        service.reset();
        connection->releaseName(kind->second.bus_name);
    } catch (const sdbus::Error& e) {
        spdlog::critical("{} service: {}: {}", name, e.getName(), e.getMessage());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("{} service: {}", name, e.what());
        return 1;
    }
    return 0;
}

std::optional<Config> loadConfigFor(const DaemonOptions& options) {
    try {
        if (!options.config_given && !std::filesystem::exists(options.config_path)) {
            return Config{};
        }
        return loadConfig(options.config_path);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "tau-monitor: %s\n", e.what());
        return std::nullopt;
    }
}

} // namespace tau
