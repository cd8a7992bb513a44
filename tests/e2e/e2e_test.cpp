// End-to-end: the real tau-monitor on its own private bus, driven through tau-monitor-cli, busctl and
// dbus-send, as a user would.

#include "cli_json.h"
#include "test_support.h"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <regex>
#include <set>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace tau::test {
namespace {

using json = nlohmann::json;

constexpr const char* kConfig = R"(
[resource_monitoring]
interval_seconds = 1
prometheus_listen = "127.0.0.1:0"

[crash_recovery]
max_recovery_attempts = 5
session_state_path = "@DIR@/state"
critical_processes = ["worker"]

[health_checking]
check_interval_seconds = 1

[logging]
log_file_path = "@DIR@/log/tau.log"

[[service]]
name = "worker"
exec = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]

[[service]]
name = "helper"
exec = ["/bin/sh", "-c", "sleep 3600 & sleep 3600 & wait"]
stop_timeout_seconds = 2
)";

std::optional<json> findService(const json& services, const std::string& name) {
    for (const auto& service : services) {
        if (service["name"] == name) {
            return service;
        }
    }
    return std::nullopt;
}

// SIGKILLs the service's main process and waits until the supervisor runs it again under another PID.
void killAndAwaitNewPid(const RunningDaemon& daemon, const std::string& name) {
    const pid_t first = servicePid(daemon, name);
    ASSERT_GT(first, 0);
    ASSERT_EQ(kill(first, SIGKILL), 0);
    ASSERT_TRUE(waitUntil([&] {
        const pid_t now = servicePid(daemon, name);
        return now != 0 && now != first;
    })) << daemon.output();
}

class EndToEnd : public ::testing::Test {
  protected:
    void SetUp() override {
        daemon_ = std::make_unique<RunningDaemon>(kConfig);
        ASSERT_TRUE(daemon_->waitReady()) << daemon_->output();
        // The configured services are spawned right after the names are claimed.
        ASSERT_TRUE(waitUntil([&] {
            return servicePid(*daemon_, "worker") != 0 && servicePid(*daemon_, "helper") != 0;
        })) << daemon_->output();
    }
    std::unique_ptr<RunningDaemon> daemon_;
};

// The members of one interface in introspection XML, each as "kind name signature": methods with their in
// and out argument types, signals with theirs, properties with type and access. Comments and annotations
// do not count, so the documented XML of dbus/ and what a live object reports compare equal when the API is
// the same.
std::set<std::string> membersOf(const std::string& xml, const std::string& interface) {
    const auto start = xml.find("<interface name=\"" + interface + "\"");
    EXPECT_NE(start, std::string::npos) << interface;
    if (start == std::string::npos) {
        return {};
    }
    const std::string block = xml.substr(start, xml.find("</interface>", start) - start);
    const std::regex element(R"re(<(method|signal) name="([A-Za-z0-9_]+)"\s*(/>|>([\s\S]*?)</\1>))re");
    const std::regex argument(R"re(<arg\b([^>]*)>)re");
    const std::regex type(R"re(type="([^"]+)")re");
    const std::regex direction(R"re(direction="([^"]+)")re");
    const std::regex property(R"re(<property\b[^>]*name="([A-Za-z0-9_]+)"[^>]*>)re");
    const std::regex access(R"re(access="([^"]+)")re");
    std::set<std::string> members;
    for (std::sregex_iterator it(block.begin(), block.end(), element), end; it != end; ++it) {
        const std::string kind = (*it)[1];
        std::string in, out;
        const std::string body = (*it)[4];
        for (std::sregex_iterator arg(body.begin(), body.end(), argument); arg != end; ++arg) {
            const std::string attributes = (*arg)[1];
            std::smatch t, d;
            std::regex_search(attributes, t, type);
            const bool is_out = std::regex_search(attributes, d, direction) && d[1] == "out";
            (is_out ? out : in) += t[1].str();
        }
        members.insert(kind + " " + (*it)[2].str() + " (" + in + ")" +
                       (kind == "method" ? "(" + out + ")" : ""));
    }
    for (std::sregex_iterator it(block.begin(), block.end(), property), end; it != end; ++it) {
        const std::string tag = (*it)[0];
        std::smatch t, a;
        std::regex_search(tag, t, type);
        std::regex_search(tag, a, access);
        members.insert("property " + (*it)[1].str() + " " + t[1].str() + " " + a[1].str());
    }
    return members;
}

TEST_F(EndToEnd, FiveNamesAreIntrospectableAndMatchTheContract) {
    const std::vector<std::tuple<std::string, std::string, std::string>> objects = {
        {"org.tauos.Processes1", "/org/tauos/Processes1", "org.tauos.Processes1"},
        {"org.tauos.Processes1", "/org/tauos/Processes1/service/worker", "org.tauos.Processes1.Service"},
        {"org.tauos.Recovery1", "/org/tauos/Recovery1", "org.tauos.Recovery1"},
        {"org.tauos.Resources1", "/org/tauos/Resources1", "org.tauos.Resources1"},
        {"org.tauos.Health1", "/org/tauos/Health1", "org.tauos.Health1"},
        {"org.tauos.Log1", "/org/tauos/Log1", "org.tauos.Log1"},
    };
    for (const auto& [name, path, interface] : objects) {
        const auto declared =
            membersOf(readFile(std::string(TAU_DBUS_XML_DIR) + "/" + interface + ".xml"), interface);
        ASSERT_FALSE(declared.empty()) << interface;
        // busctl lists what the live object reports to Introspect.
        const auto listed = daemon_->busctl({"introspect", "--no-legend", name, path, interface});
        ASSERT_EQ(listed.exit_code, 0) << listed.err;
        const auto live = daemon_->busctl({"introspect", "--xml-interface", name, path});
        ASSERT_EQ(live.exit_code, 0) << live.err;
        EXPECT_EQ(membersOf(live.out, interface), declared) << interface;
        for (const auto& member : declared) {
            const auto name_start = member.find(' ') + 1;
            const auto member_name =
                member.substr(name_start, member.find_first_of(" (", name_start) - name_start);
            EXPECT_NE(listed.out.find("." + member_name + " "), std::string::npos) << member << "\n"
                                                                                   << listed.out;
        }
    }
}

TEST_F(EndToEnd, ObjectManagerListsOneObjectPerService) {
    const auto tree = daemon_->busctl({"tree", "--list", "org.tauos.Processes1"});
    ASSERT_EQ(tree.exit_code, 0) << tree.err;
    for (const char* service : {"log", "recovery", "resources", "health", "worker", "helper"}) {
        EXPECT_NE(tree.out.find(std::string("/org/tauos/Processes1/service/") + service), std::string::npos)
            << tree.out;
    }
    const auto managed = daemon_->busctl({"call", "org.tauos.Processes1", "/org/tauos/Processes1",
                                          "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"});
    ASSERT_EQ(managed.exit_code, 0) << managed.err;
    EXPECT_NE(managed.out.find("org.tauos.Processes1.Service"), std::string::npos);
    const auto state =
        daemon_->busctl({"get-property", "org.tauos.Processes1", "/org/tauos/Processes1/service/worker",
                         "org.tauos.Processes1.Service", "State"});
    EXPECT_EQ(state.out, "s \"running\"\n");
}

TEST_F(EndToEnd, EveryCliCommandPrintsJsonThatParses) {
    // Health and resources have data once the first sample and evaluation are done.
    ASSERT_TRUE(waitUntil([&] { return daemon_->cli({"resources"}).exit_code == 0; }));
    ASSERT_TRUE(waitUntil([&] { return cliJson(*daemon_, {"health"})["status"] != "unknown"; }));
    const std::vector<std::vector<std::string>> commands = {
        {"health"},
        {"health", "--detailed"},
        {"resources"},
        {"resources", "--cpu"},
        {"resources", "--memory"},
        {"resources", "--disk"},
        {"resources", "--network"},
        {"resources", "--metrics"},
        {"resources", "--thresholds"},
        {"resources", "--trends"},
        {"processes"},
        {"processes", "--critical"},
        {"processes", "--tree"},
        {"recovery"},
        {"recovery", "--history"},
        {"recovery", "--history", "--service", "worker", "--class", "signal", "--since", "3600", "--count",
         "5"},
        {"recovery", "--session"},
        {"recovery", "--summary"},
        {"recovery", "--explain", "worker"},
        {"recovery", "--explain", "worker", "--class", "oom", "--failures", "3"},
        {"logs"},
        {"logs", "--stats"},
        {"logs", "--recent", "--count", "5"},
        {"config"},
        {"config", "--monitoring"},
        {"config", "--resources"},
        {"config", "--recovery"},
    };
    for (const auto& command : commands) {
        SCOPED_TRACE(command.front() + (command.size() > 1 ? " " + command[1] : ""));
        EXPECT_NO_THROW(cliJson(*daemon_, command));
    }
    const auto health = cliJson(*daemon_, {"health", "--detailed"});
    EXPECT_GE(health["score"].get<double>(), 0.0);
    EXPECT_LE(health["score"].get<double>(), 1.0);
    EXPECT_FALSE(health["checks"].empty());
    const auto resources = cliJson(*daemon_, {"resources"});
    EXPECT_GT(resources["memory"]["total_bytes"].get<uint64_t>(), 0u);
    const auto critical = cliJson(*daemon_, {"processes", "--critical"});
    EXPECT_TRUE(findService(critical, "worker"));
    EXPECT_FALSE(findService(critical, "helper"));
    const auto tree = cliJson(*daemon_, {"processes", "--tree"});
    const auto helper = findService(tree, "helper");
    ASSERT_TRUE(helper);
    EXPECT_GE((*helper)["tree"].size(), 3u) << helper->dump(); // the shell and its two sleeps
    const auto config = cliJson(*daemon_, {"config", "--recovery"});
    EXPECT_EQ(config["crash_recovery"]["max_recovery_attempts"], 5);
}

TEST_F(EndToEnd, TablesAreAligned) {
    const auto result = daemon_->cli({"processes"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    std::istringstream lines(result.out);
    std::string header, row;
    std::getline(lines, header);
    const auto state_column = header.find("STATE");
    ASSERT_NE(state_column, std::string::npos);
    while (std::getline(lines, row)) {
        EXPECT_TRUE(row.compare(state_column, 7, "running") == 0) << header << "\n" << row;
    }
}

TEST_F(EndToEnd, KilledServiceIsRestartedAndTheExitIsInTheHistory) {
    const pid_t first = servicePid(*daemon_, "worker");
    ASSERT_NO_FATAL_FAILURE(killAndAwaitNewPid(*daemon_, "worker"));
    json entry;
    ASSERT_TRUE(waitUntil([&] {
        for (const auto& e : cliJson(*daemon_, {"recovery", "--history"})) {
            if (e["service"] == "worker" && e["pid"] == first) {
                entry = e;
                return true;
            }
        }
        return false;
    })) << daemon_->output();
    EXPECT_EQ(entry["signal"], SIGKILL);
    EXPECT_EQ(entry["exit_code"], -1);
    EXPECT_EQ(entry["action"], "restart");
    EXPECT_EQ(entry["attempt"], 1);
    const auto worker = findService(cliJson(*daemon_, {"processes"}), "worker");
    EXPECT_EQ((*worker)["restarts"], 1);
    EXPECT_EQ((*worker)["state"], "running");
}

TEST_F(EndToEnd, KilledResourcesServiceIsRestartedAndAnswersAgain) {
    ASSERT_NO_FATAL_FAILURE(killAndAwaitNewPid(*daemon_, "resources"));
    ASSERT_TRUE(waitUntil([&] {
        return daemon_->cli({"resources", "--memory"}).exit_code == 0;
    })) << daemon_->output();
    const auto snapshot = cliJson(*daemon_, {"resources", "--memory"});
    EXPECT_GT(snapshot["memory"]["total_bytes"].get<uint64_t>(), 0u);
}

TEST_F(EndToEnd, UnknownServiceIsNotFound) {
    const auto cli = daemon_->cli({"restart", "no-such-service"});
    EXPECT_NE(cli.exit_code, 0);
    EXPECT_NE(cli.err.find("org.tauos.Error.NotFound"), std::string::npos) << cli.err;
    const auto raw = runCommand({"dbus-send", "--bus=" + daemon_->busAddress(), "--print-reply",
                                 "--dest=org.tauos.Processes1", "/org/tauos/Processes1",
                                 "org.tauos.Processes1.GetProcessTree", "string:no-such-service"},
                                daemon_->clientEnv());
    EXPECT_NE(raw.exit_code, 0);
    EXPECT_NE(raw.err.find("org.tauos.Error.NotFound"), std::string::npos) << raw.err;
}

TEST_F(EndToEnd, StopAndStartThroughTheCli) {
    ASSERT_EQ(daemon_->cli({"stop", "worker"}).exit_code, 0);
    ASSERT_TRUE(waitUntil(
        [&] { return (*findService(cliJson(*daemon_, {"processes"}), "worker"))["state"] == "stopped"; }));
    const auto again = daemon_->cli({"stop", "worker"});
    EXPECT_NE(again.err.find("org.tauos.Error.Busy"), std::string::npos) << again.err;
    ASSERT_EQ(daemon_->cli({"start", "worker"}).exit_code, 0);
    EXPECT_GT(servicePid(*daemon_, "worker"), 0);
}

TEST_F(EndToEnd, UnprivilegedUserMayReadButNotRestart) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root to run a client as the user nobody";
    }
    const auto env = daemon_->clientEnv();
    const auto read =
        runCommand({"runuser", "-u", "nobody", "--", "busctl", "--address=" + daemon_->busAddress(), "call",
                    "org.tauos.Processes1", "/org/tauos/Processes1", "org.tauos.Processes1", "ListServices"},
                   env);
    EXPECT_EQ(read.exit_code, 0) << read.err;
    EXPECT_NE(read.out.find("worker"), std::string::npos);
    const auto restart =
        runCommand({"runuser", "-u", "nobody", "--", "dbus-send", "--bus=" + daemon_->busAddress(),
                    "--print-reply", "--dest=org.tauos.Processes1", "/org/tauos/Processes1",
                    "org.tauos.Processes1.Restart", "string:worker"},
                   env);
    EXPECT_NE(restart.exit_code, 0);
    EXPECT_NE(restart.err.find("org.tauos.Error.PermissionDenied"), std::string::npos) << restart.err;
    // The daemon's own user still may.
    EXPECT_EQ(daemon_->cli({"restart", "worker"}).exit_code, 0);
}

TEST_F(EndToEnd, SigtermLeavesNoProcessBehind) {
    std::vector<pid_t> pids;
    for (const auto& service : cliJson(*daemon_, {"processes", "--tree"})) {
        for (const auto& process : service["tree"]) {
            pids.push_back(process["pid"].get<pid_t>());
        }
    }
    ASSERT_GE(pids.size(), 8u); // four suite services, the worker, the helper and its two children
    const auto runtime_dir = daemon_->runtimeDir();
    EXPECT_EQ(daemon_->terminate(), 0) << daemon_->output();
    for (const pid_t pid : pids) {
        EXPECT_FALSE(processExists(pid)) << "pid " << pid << " survived\n" << daemon_->output();
    }
    EXPECT_FALSE(std::filesystem::exists(runtime_dir / "bus-address"));
    EXPECT_FALSE(std::filesystem::exists(runtime_dir / "bus"));
    // Stopped in reverse start order: configured services first, the log service last.
    const auto output = daemon_->output();
    const auto helper_stop = output.find("info: helper (pid");
    const auto worker_stop = output.find("info: worker (pid");
    const auto log_stop = output.find("info: log (pid");
    ASSERT_NE(helper_stop, std::string::npos);
    EXPECT_LT(helper_stop, worker_stop);
    EXPECT_LT(worker_stop, log_stop);
}

TEST_F(EndToEnd, CheckAsksTheRunningDaemon) {
    ASSERT_TRUE(waitUntil([&] { return cliJson(*daemon_, {"health"})["status"] != "unknown"; }));
    const auto result =
        runCommand({daemonBinary(), "--check", "--config", (daemon_->dir() / "tau-monitor.toml").string()},
                   daemon_->clientEnv());
    EXPECT_GE(result.exit_code, 0);
    EXPECT_LE(result.exit_code, 2);
    EXPECT_EQ(result.out.rfind("TAU-MONITOR ", 0), 0u) << result.out;
    EXPECT_NE(result.out.find("daemon on the private bus"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("service:worker"), std::string::npos) << result.out;
}

// A configuration that keeps every file of the daemon inside `dir`.
std::filesystem::path writeMinimalConfig(const TempDir& dir) {
    const auto config = dir.path() / "tau.toml";
    writeFile(config, "[logging]\nlog_file_path = \"" + (dir.path() / "tau.log").string() +
                          "\"\n[crash_recovery]\nsession_state_path = \"" + (dir.path() / "state").string() +
                          "\"\n");
    return config;
}

// The runtime directory inside `dir`, and no way to the machine's own buses.
std::map<std::string, std::string> isolatedEnvironment(const TempDir& dir) {
    return {{"TAU_MONITOR_RUNTIME_DIR", (dir.path() / "rt").string()},
            {"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (dir.path() / "none").string()},
            {"DBUS_SESSION_BUS_ADDRESS", ""}};
}

TEST(EndToEndWithoutDaemon, CliSaysNotRunningQuickly) {
    TempDir dir;
    const auto env = isolatedEnvironment(dir);
    const auto started = std::chrono::steady_clock::now();
    const auto result = runCommand({cliBinary(), "health"}, env);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
    EXPECT_EQ(result.exit_code, 69);
    EXPECT_NE(result.err.find("not running"), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(EndToEndWithoutDaemon, CheckMeasuresLocally) {
    TempDir dir;
    auto env = isolatedEnvironment(dir);
    env["TAU_MONITOR_CONFIG"] = (dir.path() / "absent.toml").string();
    const auto result = runCommand({daemonBinary(), "--check"}, env);
    EXPECT_GE(result.exit_code, 0);
    EXPECT_LE(result.exit_code, 2) << result.out << result.err;
    EXPECT_NE(result.out.find("local measurement"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("memory_usage"), std::string::npos) << result.out;
}

TEST(EndToEndWithoutDaemon, InvalidConfigExits78NamingLineAndColumn) {
    TempDir dir;
    const auto config = dir.path() / "bad.toml";
    writeFile(config, "[resource_monitoring]\ninterval_seconds = 30\ncpu_threshold_percent = \"high\"\n");
    for (const std::vector<std::string>& mode :
         {std::vector<std::string>{"--validate-config"}, std::vector<std::string>{"--foreground"}}) {
        std::vector<std::string> argv = {daemonBinary(), "--bus", "private", "--config", config.string()};
        argv.insert(argv.end(), mode.begin(), mode.end());
        const auto result = runCommand(argv, {{"TAU_MONITOR_RUNTIME_DIR", (dir.path() / "rt").string()}});
        EXPECT_EQ(result.exit_code, 78) << result.err;
        EXPECT_NE(result.err.find(config.string() + ":3:25"), std::string::npos) << result.err;
        EXPECT_NE(result.err.find("resource_monitoring.cpu_threshold_percent"), std::string::npos)
            << result.err;
    }
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "rt" / "bus-address"));
}

TEST(EndToEndWithoutDaemon, ShippedConfigurationsAreValid) {
    for (const char* file : {"config/tau-monitor.toml", "config/examples/demo.toml"}) {
        const auto result = runCommand(
            {daemonBinary(), "--validate-config", "--config", std::string(TAU_SOURCE_DIR) + "/" + file});
        EXPECT_EQ(result.exit_code, 0) << file << ": " << result.err;
    }
}

// A systemd-style notification socket: what the daemon reports under a service manager.
class NotifySocket {
  public:
    explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    }
    ~NotifySocket() { close(fd_); }
    // Waits for a datagram that contains `needle`.
    bool waitFor(const std::string& needle) {
        return waitUntil([&] {
            char buffer[4096];
            pollfd pfd{fd_, POLLIN, 0};
            while (poll(&pfd, 1, 0) > 0) {
                const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
                if (got > 0) {
                    received_ += std::string(buffer, static_cast<std::size_t>(got)) + "\n";
                }
            }
            return received_.find(needle) != std::string::npos;
        });
    }
    const std::string& received() const { return received_; }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::string received_;
};

TEST(EndToEndUnderServiceManager, NotifiesReadyWatchdogAndStopping) {
    TempDir dir;
    NotifySocket notify(dir.path() / "notify");
    const auto config = writeMinimalConfig(dir);
    auto env = isolatedEnvironment(dir);
    env["NOTIFY_SOCKET"] = (dir.path() / "notify").string();
    env["WATCHDOG_USEC"] = "200000";
    const auto first =
        runCommand({daemonBinary(), "--daemon", "--bus", "private", "--config", config.string()}, env);
    ASSERT_EQ(first.exit_code, 0) << first.err;
    const pid_t pid = std::stoi(readFile(dir.path() / "rt" / "tau-monitor.pid"));
    EXPECT_TRUE(notify.waitFor("READY=1")) << notify.received();
    EXPECT_TRUE(notify.waitFor("WATCHDOG=1")) << notify.received();
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    EXPECT_TRUE(notify.waitFor("STOPPING=1")) << notify.received();
    EXPECT_TRUE(waitUntil([&] { return !processExists(pid); }));
}

TEST(EndToEndDaemonMode, DetachesWritesPidFileAndRefusesASecondInstance) {
    TempDir dir;
    const auto config = writeMinimalConfig(dir);
    const auto env = isolatedEnvironment(dir);
    const std::vector<std::string> argv = {daemonBinary(), "--daemon", "--bus",
                                           "private",      "--config", config.string()};
    const auto first = runCommand(argv, env);
    ASSERT_EQ(first.exit_code, 0) << first.err;
    const auto pid_file = dir.path() / "rt" / "tau-monitor.pid";
    const pid_t pid = std::stoi(readFile(pid_file));
    ASSERT_TRUE(processExists(pid));

    const auto second = runCommand(argv, env);
    EXPECT_NE(second.exit_code, 0);
    EXPECT_NE(second.err.find("already running"), std::string::npos) << second.err;

    ASSERT_EQ(kill(pid, SIGTERM), 0);
    EXPECT_TRUE(waitUntil([&] { return !processExists(pid); }));
    EXPECT_FALSE(std::filesystem::exists(pid_file));
}

} // namespace
} // namespace tau::test
