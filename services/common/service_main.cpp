#include "service_main.h"

#include "tau/bus/bus_loop.h"
#include "tau/bus/connection.h"
#include "tau/bus/log_sink.h"
#include "tau/signals.h"
#include "tau/spawner.h"

#include <cstdio>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <sys/prctl.h>
#include <unistd.h>

namespace tau {
namespace {

constexpr std::size_t kLogQueueCapacity = 10000;

int serve(const SuiteServiceKind& kind, const Config& config, const bus::BusChoice& bus_choice) {
    ::signal(SIGPIPE, SIG_IGN);
    SignalFd signals{SIGTERM, SIGINT};
    const std::string name = kind.name;
    std::shared_ptr<bus::QueueingLogSink> log_queue;
    if (name != "log") {
        log_queue = std::make_shared<bus::QueueingLogSink>(name, kLogQueueCapacity);
    }
    bus::configureLogging(name, config.logging.log_level, log_queue);

    try {
        std::unique_ptr<sdbus::IConnection> connection;
        if (bus_choice.kind == bus::BusChoice::Kind::Auto ||
            bus_choice.kind == bus::BusChoice::Kind::Private) {
            connection = bus::connectToDaemon(bus_choice).connection;
        } else {
            connection = bus::openConnection(bus_choice);
        }
        EventLoop loop;
        bus::attachToLoop(loop, *connection);
        bus::Authorizer authorizer(*connection, bus::AccessPolicy(::geteuid(), config.security.admin_groups));
        ServiceContext context{config, *connection, loop, authorizer};
        auto service = kind.make(context);
        requestNameWithRetry(*connection, kind.bus_name);
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
        spdlog::info("serving {}", kind.bus_name);
        loop.run();
        log_forwarder.reset();
        service.reset();
        connection->releaseName(kind.bus_name);
    } catch (const sdbus::Error& e) {
        spdlog::critical("{} service: {}: {}", name, e.getName(), e.getMessage());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("{} service: {}", name, e.what());
        return 1;
    }
    return 0;
}

} // namespace

int serviceMain(int argc, char** argv, const SuiteServiceKind& kind) {
    // Two options only, given by the root: parsed by hand, since an argument parser library would add more
    // code to every service process than the rest of this file.
    const std::string program = std::string("tau-monitor-") + kind.name;
    std::string bus = "auto";
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::printf("usage: %s [--bus auto|system|session|private|ADDRESS] [--config FILE]\n"
                        "Serves %s for the tau-monitor root process that starts it.\n",
                        program.c_str(), kind.bus_name);
            return 0;
        }
        if (arg == "--version") {
            std::printf("%s %s\n", program.c_str(), TAU_VERSION);
            return 0;
        }
        if ((arg == "--bus" || arg == "--config") && i + 1 < argc) {
            (arg == "--bus" ? bus : config_path) = argv[++i];
            continue;
        }
        std::fprintf(stderr, "%s: %s: %.*s (try --help)\n", program.c_str(),
                     arg == "--bus" || arg == "--config" ? "option needs a value" : "unknown argument",
                     static_cast<int>(arg.size()), arg.data());
        return 64;
    }

    // A service of the suite does not outlive its supervisor.
    const pid_t parent = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) {
        return 1;
    }

    bus::BusChoice bus_choice;
    try {
        bus_choice = bus::BusChoice::parse(bus);
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
        return 64;
    }
    Config config;
    if (!config_path.empty()) {
        try {
            config = loadConfig(config_path);
        } catch (const ConfigError& e) {
            std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
            return kExitConfigError;
        }
    }
    return serve(kind, config, bus_choice);
}

} // namespace tau
