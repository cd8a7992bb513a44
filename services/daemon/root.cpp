// The root process: Processes1 on the bus, supervisor of the suite's other services and of the configured
// ones.

#include "daemon.h"
#include "limit_enforcer.h"
#include "orphan_reaper.h"
#include "process_launcher.h"
#include "processes_dbus.h"
#include "recovery_reporter.h"
#include "service_journal.h"
#include "supervisor.h"
#include "tau/bus/bus_loop.h"
#include "tau/bus/errors.h"
#include "tau/bus/log_sink.h"
#include "tau/bus/private_bus.h"
#include "tau/cgroup.h"
#include "tau/notify_socket.h"
#include "tau/paths.h"
#include "tau/service_order.h"
#include "tau/signals.h"
#include "tau/state_handoff_files.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <malloc.h>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace tau {
namespace {

constexpr std::size_t kLogQueueCapacity = 10000;
// The suite's own services are always brought back; a short pause keeps a service that cannot start from
// spinning.
constexpr auto kInternalRestartDelay = std::chrono::milliseconds(500);
constexpr auto kOrphanReapDelay = std::chrono::milliseconds(100);
// The service manager's protocol variables are meant for tau-monitor, not for the services it starts.
const std::vector<std::string> kManagerVariables = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                                    "LISTEN_FDS",    "LISTEN_PID",    "LISTEN_FDNAMES",
                                                    "TAU_STATE_FD"};

// Holds the pid file locked for the daemon's life, so a second daemon notices the first.
class PidFile {
  public:
    explicit PidFile(std::filesystem::path path) : path_(std::move(path)) {
        std::error_code ec;
        std::filesystem::create_directories(path_.parent_path(), ec);
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            throw std::runtime_error("cannot open pid file " + path_.string() + ": " + std::strerror(errno));
        }
        if (::flock(fd_, LOCK_EX | LOCK_NB) < 0) {
            std::string other;
            std::ifstream(path_) >> other;
            ::close(fd_);
            fd_ = -1;
            throw std::runtime_error("tau-monitor is already running" +
                                     (other.empty() ? std::string() : " (pid " + other + ")") + ": " +
                                     path_.string() + " is locked");
        }
    }
    void write(pid_t pid) {
        const std::string text = std::to_string(pid) + "\n";
        if (::ftruncate(fd_, 0) < 0 || ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
            throw std::runtime_error("cannot write pid file " + path_.string() + ": " + std::strerror(errno));
        }
    }
    ~PidFile() {
        if (fd_ >= 0) {
            std::error_code ec;
            std::filesystem::remove(path_, ec);
            ::close(fd_);
        }
    }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// Forks into the background. Returns in the daemon; the original process waits until the daemon reports
// "ready" (or fails) through `ready_fd` and exits with the daemon's verdict.
int detachFromTerminal() {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) {
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    const pid_t first = ::fork();
    if (first < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (first > 0) {
        ::close(pipe_fds[1]);
        char verdict = 1;
        const ssize_t got = ::read(pipe_fds[0], &verdict, 1);
        ::waitpid(first, nullptr, 0);
        std::exit(got == 1 ? verdict : 1);
    }
    ::close(pipe_fds[0]);
    ::setsid();
    const pid_t second = ::fork();
    if (second < 0) {
        std::_Exit(1);
    }
    if (second > 0) {
        std::_Exit(0);
    }
    ::umask(022);
    if (::chdir("/") < 0) {
        std::_Exit(1);
    }
    const int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        ::dup2(null_fd, STDIN_FILENO);
        ::dup2(null_fd, STDOUT_FILENO);
        ::dup2(null_fd, STDERR_FILENO);
        if (null_fd > STDERR_FILENO) {
            ::close(null_fd);
        }
    }
    return pipe_fds[1];
}

void reportToStarter(int& ready_fd, char verdict) {
    if (ready_fd >= 0) {
        [[maybe_unused]] auto ignored = ::write(ready_fd, &verdict, 1);
        ::close(ready_fd);
        ready_fd = -1;
    }
}

// Next to tau-monitor in a build tree, in the package's libexec directory once installed.
std::filesystem::path serviceExecutable(const std::string& name) {
    const std::string file = "tau-monitor-" + name;
    std::error_code ec;
    const auto beside = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / file;
    if (!ec && ::access(beside.c_str(), X_OK) == 0) {
        return beside;
    }
    return std::filesystem::path(TAU_SERVICE_DIR) / file;
}

ServiceSpec internalSpec(const std::string& name, const DaemonOptions& options, const std::string& bus) {
    ServiceSpec spec;
    spec.name = name;
    spec.internal = true;
    spec.critical = true;
    spec.capture_output = false;
    spec.spawn.argv = {serviceExecutable(name).string(), "--bus", bus};
    spec.spawn.unset_environment = kManagerVariables;
    if (options.config_given || std::filesystem::exists(options.config_path)) {
        spec.spawn.argv.push_back("--config");
        spec.spawn.argv.push_back(options.config_path.string());
    }
    LadderStep always;
    always.strategy = RecoveryStrategy::RestartWithDelay;
    always.delay_seconds = kInternalRestartDelay.count() / 1000.0;
    always.jitter = 0;
    spec.policy.ladder = {always};
    return spec;
}

// What a priority level means to the scheduler and to the OOM killer: a critical service gets CPU first and
// is killed last when memory runs out; a background one the other way round.
std::pair<int, int> schedulingFor(Priority priority) {
    switch (priority) {
    case Priority::Critical:
        return {-10, -900};
    case Priority::High:
        return {-5, -500};
    case Priority::Normal:
        return {0, 0};
    case Priority::Low:
        return {5, 300};
    case Priority::Background:
        return {10, 800};
    }
    return {0, 0};
}

std::chrono::milliseconds milliseconds(double seconds) {
    return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

int rlimitResource(const std::string& name) {
    static const std::map<std::string, int> resources = {
        {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},
        {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
        {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
        {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE},
        {"nice", RLIMIT_NICE},       {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
        {"rtprio", RLIMIT_RTPRIO},   {"sigpending", RLIMIT_SIGPENDING},
        {"stack", RLIMIT_STACK}};
    return resources.at(name); // the configuration admits only these names
}

// `bus`: the bus the suite runs on, as --bus takes it; services find org.tauos.Recovery1 there.
ServiceSpec configuredSpec(const ServiceConfig& service, const Config& config,
                           const std::filesystem::path& notify_socket, const std::string& bus) {
    ServiceSpec spec;
    spec.name = service.name;
    spec.critical = config.isCritical(service.name);
    spec.spawn.argv = service.exec;
    spec.spawn.environment = service.environment;
    spec.spawn.unset_environment = kManagerVariables;
    if (!notify_socket.empty()) {
        spec.spawn.environment["NOTIFY_SOCKET"] = notify_socket.string();
    }
    spec.spawn.environment["TAU_MONITOR_BUS"] = bus;
    if (service.watchdog_seconds > 0) {
        spec.spawn.environment["WATCHDOG_USEC"] =
            std::to_string(std::llround(service.watchdog_seconds * 1'000'000.0));
    }
    spec.spawn.working_directory = service.working_directory;
    spec.spawn.user = service.user;
    spec.spawn.group = service.group;
    spec.spawn.umask = service.umask;
    if (const auto [nice, oom_score_adj] = schedulingFor(service.priority); nice != 0 || oom_score_adj != 0) {
        spec.spawn.nice = nice;
        spec.spawn.oom_score_adj = oom_score_adj;
    }
    spec.spawn.cpu_affinity = service.cpu_affinity;
    for (const auto& [name, limit] : service.rlimits) {
        spec.spawn.rlimits.push_back({rlimitResource(name), limit.soft, limit.hard});
    }
    spec.policy = recoveryPolicyFor(service, config.crash_recovery);
    if (service.safe_mode) {
        ServiceSpec::SafeMode safe_mode;
        safe_mode.spawn = spec.spawn;
        if (!service.safe_mode->exec.empty()) {
            safe_mode.spawn.argv = service.safe_mode->exec;
        }
        for (const auto& [key, value] : service.safe_mode->environment) {
            safe_mode.spawn.environment[key] = value;
        }
        safe_mode.stability = milliseconds(service.safe_mode->stability_seconds);
        spec.safe_mode = std::move(safe_mode);
    }
    spec.stop_timeout = milliseconds(service.stop_timeout_seconds);
    spec.stop_signal = service.stop_signal;
    spec.notify = service.type == ServiceType::Notify;
    spec.start_timeout = milliseconds(service.start_timeout_seconds);
    spec.watchdog = milliseconds(service.watchdog_seconds);
    spec.depends_on = service.depends_on;
    if (service.standby) {
        spec.standby = ServiceSpec::Standby{service.standby->promote_signal};
    }
    return spec;
}

// Every service costs the daemon descriptors (a pidfd and two output pipes), so with a thousand services the
// usual soft limit of 1024 is far too low: it goes up to the hard limit, as systemd does for itself. The
// services get the original limit back, since select() fails with descriptors above 1023. Returns it.
rlimit raiseDescriptorLimit() {
    rlimit original{};
    if (::getrlimit(RLIMIT_NOFILE, &original) == 0 && original.rlim_cur < original.rlim_max) {
        rlimit raised = original;
        raised.rlim_cur = original.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
            spdlog::warn("cannot raise the descriptor limit to {}: {}", original.rlim_max,
                         std::strerror(errno));
        }
    }
    return original;
}

// Where the kernel can enforce memory_limit_mb and cpu_limit_percent (a delegated cgroup v2, with
// process_isolation on), each configured service gets a cgroup of its own with memory.max and cpu.max; the
// limits of the others are watched from /proc by a LimitEnforcer.
class ServiceLimits {
  public:
    explicit ServiceLimits(const ProcessManagementConfig& config) : config_(config) {
        if (!config.process_isolation) {
            unavailable_ = "process_management.process_isolation is off";
            return;
        }
        const auto detection = detectDelegatedCgroup();
        if (!detection.usable()) {
            unavailable_ = detection.unusable_reason;
            return;
        }
        try {
            cgroups_.emplace(detection.directory);
            cgroups_->prepare();
        } catch (const std::exception& e) {
            unavailable_ = e.what();
            cgroups_.reset();
        }
    }

    static constexpr std::uint64_t kMiB = 1024 * 1024;

    // Confines the service to its cgroup when there is one; otherwise its limits are to be watched.
    void apply(const ServiceConfig& service, ServiceSpec& spec) {
        const ResourceLimits limits{service.memory_limit_mb.value_or(config_.memory_limit_mb) * kMiB,
                                    service.cpu_limit_percent.value_or(config_.cpu_limit_percent)};
        if (cgroups_) {
            try {
                auto procs = cgroups_->group(spec.name);
                cgroups_->setLimits(spec.name, limits.memory_bytes, limits.cpu_percent);
                oom_kills_[spec.name] = cgroups_->oomKills(spec.name);
                spec.spawn.cgroup_procs_fd = procs.get();
                confined_.emplace(spec.name, std::move(procs));
                return;
            } catch (const std::exception& e) {
                spdlog::error("{}: {}; its limits are watched from /proc instead", spec.name, e.what());
            }
        }
        watched_[spec.name] = limits;
    }

    // A SIGKILL while the service's cgroup counted one more OOM kill: its memory limit was hit.
    std::optional<FailureClass> classify(const ServiceStatus& service, const ExitStatus& status) {
        const auto it = oom_kills_.find(service.spec.name);
        if (it == oom_kills_.end()) {
            return std::nullopt;
        }
        std::uint64_t now = it->second;
        try {
            now = cgroups_->oomKills(service.spec.name);
        } catch (const std::exception& e) {
            spdlog::warn("{}", e.what());
        }
        const bool hit = status.signal == SIGKILL && now > it->second;
        it->second = now;
        return hit ? std::optional(FailureClass::ResourceLimit) : std::nullopt;
    }

    const std::map<std::string, ResourceLimits>& watched() const { return watched_; }

    std::string describe() const {
        if (cgroups_) {
            return "enforced by cgroup v2 under " + cgroups_->root().string() +
                   (watched_.empty() ? std::string()
                                     : " (" + std::to_string(watched_.size()) + " watched from /proc)");
        }
        return "watched from /proc (" + unavailable_ + ")";
    }

  private:
    const ProcessManagementConfig& config_;
    std::optional<ServiceCgroups> cgroups_;
    std::string unavailable_;
    std::map<std::string, CgroupProcsFd> confined_; // open for every respawn
    std::map<std::string, std::uint64_t> oom_kills_;
    std::map<std::string, ResourceLimits> watched_;
};

// The kernel counts its OOM kills in /proc/vmstat; a SIGKILL nobody asked for while that count went up was
// most likely one of them.
class OomKillCounter {
  public:
    OomKillCounter() : last_(read()) {}
    std::optional<FailureClass> classify(const ExitStatus& status) {
        const auto now = read();
        const bool oom = status.signal == SIGKILL && now > last_;
        last_ = now;
        return oom ? std::optional(FailureClass::Oom) : std::nullopt;
    }

  private:
    static std::uint64_t read() {
        std::ifstream vmstat("/proc/vmstat");
        std::string key;
        std::uint64_t value = 0;
        while (vmstat >> key >> value) {
            if (key == "oom_kill") {
                return value;
            }
        }
        return 0;
    }
    std::uint64_t last_;
};

struct ResolvedBus {
    std::unique_ptr<bus::PrivateBus> private_bus; // declared first: it outlives the connection
    std::unique_ptr<sdbus::IConnection> connection;
    std::string child_option; // what the children get as --bus
    std::string description;
};

// Takes over the services that a previous root, which died, left running: each keeps its pid, its counters
// and its place on the recovery ladder; one that ended meanwhile is recovered.
void adoptServices(Supervisor& supervisor, ServiceJournal& journal, OutputCapturingLauncher& launcher) {
    const auto entries = journal.load();
    // From here on the journal is this root's: every service is written into it anew as it is adopted or
    // started.
    journal.clear();
    for (const auto& [name, entry] : entries) {
        const auto* service = supervisor.find(name);
        if (service == nullptr || service->spec.internal) {
            if (entry.main) {
                spdlog::warn(
                    "{} (pid {}) was supervised by the previous tau-monitor but is not configured any "
                    "more; leaving it alone",
                    name, entry.main->pid);
            }
            continue;
        }
        auto adopted = journal.adoptable(entry, launcher);
        for (const auto& process : {adopted.main, adopted.standby}) {
            if (process) {
                launcher.adoptOutput(name, process->pid);
            }
        }
        if (adopted.main) {
            bus::logEvent(spdlog::level::info, "service.adopted",
                          {{"service", name}, {"pid", std::to_string(adopted.main->pid)}},
                          fmt::format("{} (pid {}) still runs: adopted from the previous tau-monitor", name,
                                      adopted.main->pid));
        } else if (hasProcess(adopted.state) && adopted.pid != 0) {
            bus::logEvent(spdlog::level::warn, "service.lost",
                          {{"service", name}, {"pid", std::to_string(adopted.pid)}},
                          fmt::format("{} (pid {}) ended while no tau-monitor watched it; recovering it",
                                      name, adopted.pid));
        }
        supervisor.adopt(name, std::move(adopted));
    }
}

ResolvedBus resolveBus(const bus::BusChoice& choice) {
    ResolvedBus result;
    auto kind = choice.kind;
    if (kind == bus::BusChoice::Kind::Auto) {
        if (geteuid() == 0 && bus::systemBusReachable()) {
            kind = bus::BusChoice::Kind::System;
        } else if (bus::sessionBusConfigured()) {
            kind = bus::BusChoice::Kind::Session;
        } else {
            kind = bus::BusChoice::Kind::Private;
        }
    }
    if (kind == bus::BusChoice::Kind::Private) {
        const auto dir = runtimeDirectory();
        std::filesystem::create_directories(dir);
        // Unprivileged users may connect to the bus (reads are open to everybody).
        ::chmod(dir.c_str(), 0755);
        result.private_bus = std::make_unique<bus::PrivateBus>(dir);
        result.private_bus->publishAddress(busAddressFile());
        result.child_option = result.private_bus->address();
        result.description = "private bus " + result.private_bus->address();
        result.connection = bus::openConnection({bus::BusChoice::Kind::Address, result.child_option});
        return result;
    }
    const bus::BusChoice resolved{kind, choice.address};
    result.child_option = resolved.toString();
    result.description =
        kind == bus::BusChoice::Kind::Address ? "bus " + choice.address : resolved.toString() + " bus";
    result.connection = bus::openConnection(resolved);
    return result;
}

} // namespace

int runRoot(const DaemonOptions& options) {
    const auto config = loadConfigFor(options);
    if (!config) {
        return kExitConfigError;
    }
    // The lock is taken before detaching, so that "already running" reaches the terminal; the daemon
    // inherits the locked descriptor.
    std::optional<PidFile> pid_file;
    int ready_fd = -1;
    try {
        pid_file.emplace(options.pid_file);
        if (options.detach) {
            ready_fd = detachFromTerminal();
        }
        pid_file->write(::getpid());
    } catch (const std::exception& e) {
        std::cerr << "tau-monitor: " << e.what() << '\n';
        return 1;
    }

    ::signal(SIGPIPE, SIG_IGN);
    SignalFd signals{SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    auto log_queue = std::make_shared<bus::QueueingLogSink>("processes", kLogQueueCapacity);
    bus::configureLogging("processes", config->logging.log_level, log_queue);

    const rlimit service_nofile = raiseDescriptorLimit();
    // Before any child exists: moving into a cgroup of its own needs the daemon alone in its cgroup.
    ServiceLimits limits(config->process_management);
    ResolvedBus resolved;
    try {
        if (config->process_management.auto_cleanup_zombies) {
            OrphanReaper::becomeSubreaper();
        }
        resolved = resolveBus(options.bus);
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        reportToStarter(ready_fd, 1);
        return 1;
    }
    auto& connection = *resolved.connection;

    EventLoop loop;
    bus::attachToLoop(loop, connection);
    bus::Authorizer authorizer(connection, bus::AccessPolicy(::geteuid(), config->security.admin_groups));
    ProcFsReader reader;
    SystemClock clock;
    OutputCapturingLauncher launcher(
        loop, [&log_queue](const std::string& service, pid_t pid, OutputStream stream, std::string line) {
            // Shown on the daemon's own stderr as well, as when the service ran in a terminal.
            std::fprintf(stderr, "%s[%s]: %s\n", service.c_str(), std::string(toString(stream)).c_str(),
                         line.c_str());
            LogRecord record;
            record.timestamp = std::chrono::system_clock::now();
            record.service = service;
            record.pid = pid;
            record.event = "service.output";
            record.fields["stream"] = toString(stream);
            record.message = std::move(line);
            log_queue->push(std::move(record));
        });
    RecoveryReporter recovery_reporter(loop, connection);
    ProcessesAdaptor adaptor(connection, *config, authorizer, reader, recovery_reporter);
    // Readiness and watchdog pings of the services, in systemd's sd_notify protocol.
    std::optional<NotifySocket> notify_socket;
    try {
        std::filesystem::create_directories(runtimeDirectory());
        notify_socket.emplace(runtimeDirectory() / "notify");
    } catch (const std::exception& e) {
        spdlog::error("{}: services cannot report readiness or watchdog pings", e.what());
    }
    Supervisor supervisor(loop, launcher, clock, adaptor,
                          config->process_management.max_concurrent_processes);

    supervisor.reserve(std::size(kInternalServiceNames) + config->services.size());
    for (const auto& name : kInternalServiceNames) {
        supervisor.add(internalSpec(std::string(name), options, resolved.child_option));
    }
    if (config->process_management.enabled) {
        for (const auto* service : startOrder(*config)) {
            auto spec = configuredSpec(*service, *config, notify_socket ? notify_socket->path() : "",
                                       resolved.child_option);
            if (!service->rlimits.contains("nofile")) {
                spec.spawn.rlimits.push_back(
                    {RLIMIT_NOFILE, service_nofile.rlim_cur, service_nofile.rlim_max});
            }
            limits.apply(*service, spec);
            supervisor.add(std::move(spec));
            if (service->state_handoff) {
                launcher.handOffStateOf(service->name, config->crash_recovery.session_state_path /
                                                           kStateHandoffDirectory / service->name);
            }
        }
    }
    adaptor.attach(supervisor);
    supervisor.useSystemSafeMode(config->crash_recovery.system_safe_mode);
    supervisor.useRestartBudget(config->crash_recovery.restart_budget_burst,
                                milliseconds(config->crash_recovery.restart_budget_interval_seconds));
    OomKillCounter oom_kills;
    supervisor.useCauseClassifier([&](const ServiceStatus& service, const ExitStatus& status) {
        // Both counters are read on every exit, so that each only ever sees its own new kills.
        const auto host_oom = oom_kills.classify(status);
        const auto limit_hit = limits.classify(service, status);
        return limit_hit ? limit_hit : host_oom;
    });
    ProcessTreeSampler tree_sampler;
    LimitEnforcer limit_enforcer(
        loop, supervisor, tree_sampler, clock, limits.watched(),
        LimitWatchOptions{config->process_management.limit_violation_samples,
                          milliseconds(config->process_management.limit_check_interval_seconds)});

    try {
        connection.requestName(bus::kProcessesName);
    } catch (const sdbus::Error& e) {
        if (e.getName() == "org.freedesktop.DBus.Error.FileExists") {
            spdlog::critical("tau-monitor is already running on the {}: {} has an owner",
                             resolved.description, bus::kProcessesName);
        } else if (e.getName() == "org.freedesktop.DBus.Error.AccessDenied") {
            spdlog::critical("the {} does not let this user own {}: install config/dbus/org.tauos.conf in "
                             "/etc/dbus-1/system.d, or run with --bus private ({})",
                             resolved.description, bus::kProcessesName, e.getMessage());
        } else {
            spdlog::critical("cannot own {} on the {}: {}", bus::kProcessesName, resolved.description,
                             e.getMessage());
        }
        reportToStarter(ready_fd, 1);
        return 1;
    }
    bus::LogForwarder log_forwarder(loop, connection, log_queue);

    bool stopping = false;
    auto beginShutdown = [&](const std::string& why) {
        if (stopping) {
            return;
        }
        stopping = true;
        spdlog::info("shutting down: {}", why);
        sd_notify(0, "STOPPING=1");
        supervisor.shutdown([&loop] { loop.quit(); });
    };
    // Orphans are reaped a moment after SIGCHLD, off the path of a supervised service's restart.
    OrphanReaper reaper([&] {
        auto managed = supervisor.ownedProcesses();
        if (resolved.private_bus) {
            managed.push_back(resolved.private_bus->pid());
        }
        return managed;
    });
    EventLoop::TimerId reap_timer = 0;
    auto reapOrphans = [&] {
        reap_timer = 0;
        for (const pid_t pid : reaper.reap()) {
            spdlog::debug("reaped orphaned process {}", pid);
        }
    };
    loop.watchFd(signals.fd(), POLLIN, [&](short) {
        while (const int sig = signals.read()) {
            if (sig == SIGCHLD) {
                if (reap_timer == 0 && config->process_management.auto_cleanup_zombies) {
                    reap_timer = loop.addTimer(kOrphanReapDelay, reapOrphans);
                }
                continue;
            }
            if (sig == SIGHUP) {
                spdlog::warn(
                    "SIGHUP: reloading the configuration at run time is not supported; restart tau-monitor "
                    "to apply changes");
                continue;
            }
            beginShutdown(signalName(sig));
        }
    });
    if (notify_socket) {
        const auto parent_of = [&reader](pid_t pid) { return parentPid(reader, pid); };
        loop.watchFd(notify_socket->fd(), POLLIN, [&, parent_of](short) {
            bus::logged("service notification", [&] {
                for (const auto& message : notify_socket->receiveAll()) {
                    // Only a process of a service's own tree may speak for it.
                    const auto sender = supervisor.serviceOfProcess(message.sender_pid, parent_of);
                    if (!sender) {
                        spdlog::debug("ignored a notification from pid {}, which belongs to no service",
                                      message.sender_pid);
                        continue;
                    }
                    supervisor.notify(*sender, message);
                }
            });
        });
    }
    if (resolved.private_bus) {
        loop.watchFd(resolved.private_bus->pidfd(), POLLIN, [&](short) {
            loop.unwatchFd(resolved.private_bus->pidfd());
            spdlog::critical("the private bus daemon exited");
            beginShutdown("private bus lost");
        });
    }
    uint64_t watchdog_usec = 0;
    std::function<void()> pet_watchdog = [&] {
        sd_notify(0, "WATCHDOG=1");
        loop.addTimer(std::chrono::microseconds(watchdog_usec / 2), pet_watchdog);
    };
    if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
        pet_watchdog();
    }

    // What the previous root left running is adopted first; startAll() starts the rest.
    ServiceJournal journal(runtimeDirectory() / "services", reader);
    supervisor.useJournal(journal);
    adoptServices(supervisor, journal, launcher);
    supervisor.startAll();
    limit_enforcer.start();
    // Parsing the configuration and starting every service leave freed heap behind; give it back, it is
    // not needed again while the daemon runs.
    ::malloc_trim(0);
    if (config->process_management.enabled && !config->services.empty()) {
        spdlog::info("memory and CPU limits of the services: {}", limits.describe());
    }
    bus::logEvent(spdlog::level::info, "daemon.started",
                  {{"bus", resolved.description},
                   {"config", config->source.string()},
                   {"services", std::to_string(config->services.size())}},
                  "tau-monitor " + std::string(TAU_VERSION) + " supervising " +
                      std::to_string(supervisor.services().size()) + " services on the " +
                      resolved.description);
    sd_notify(0, "READY=1");
    reportToStarter(ready_fd, 0);

    try {
        loop.run();
    } catch (const std::exception& e) {
        spdlog::critical("event loop failed: {}; killing every service", e.what());
        supervisor.killAll();
        journal.clear();
        return 1;
    }
    // Every service has stopped: the next root starts them all afresh.
    journal.clear();
    spdlog::info("stopped");
    return 0;
}

} // namespace tau
