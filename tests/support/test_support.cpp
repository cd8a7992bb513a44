#include "test_support.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace tau::test {
namespace {

std::vector<std::string> mergedEnvironment(const std::map<std::string, std::string>& overrides) {
    std::vector<std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string item(*entry);
        const auto eq = item.find('=');
        if (eq != std::string::npos && overrides.contains(item.substr(0, eq))) {
            continue;
        }
        env.push_back(item);
    }
    for (const auto& [key, value] : overrides) {
        if (!value.empty()) {
            env.push_back(key + "=" + value);
        }
    }
    return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> result;
    for (auto& s : strings) {
        result.push_back(s.data());
    }
    result.push_back(nullptr);
    return result;
}

} // namespace

pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env, int out_fd,
            int err_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    auto argv_copy = argv;
    auto env_strings = mergedEnvironment(env);
    auto argv_pointers = pointers(argv_copy);
    auto env_pointers = pointers(env_strings);
    pid_t pid = 0;
    const int rc =
        posix_spawnp(&pid, argv[0].c_str(), &actions, &attributes, argv_pointers.data(), env_pointers.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) {
        throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
    }
    return pid;
}

int pidfdOpen(pid_t pid) {
    return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

std::optional<int> waitExit(pid_t pid, int pidfd, std::chrono::milliseconds timeout) {
    pollfd pfd{pidfd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) {
        return std::nullopt;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        return std::nullopt;
    }
    return status;
}

int exitCodeOf(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

CommandResult runCommand(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                         std::chrono::milliseconds timeout) {
    TempDir capture;
    const auto out_path = capture.path() / "out";
    const auto err_path = capture.path() / "err";
    const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    const int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CommandResult result;
    pid_t pid = 0;
    try {
        pid = spawn(argv, env, out_fd, err_fd);
    } catch (...) {
        close(out_fd);
        close(err_fd);
        throw;
    }
    close(out_fd);
    close(err_fd);
    const int pidfd = pidfdOpen(pid);
    auto status = waitExit(pid, pidfd, timeout);
    if (!status) {
        kill(pid, SIGKILL);
        status = waitExit(pid, pidfd, std::chrono::seconds(10));
        result.err = "[timed out after " + std::to_string(timeout.count()) + " ms] ";
    }
    close(pidfd);
    result.exit_code = status ? exitCodeOf(*status) : -1;
    result.out = readFile(out_path);
    result.err += readFile(err_path);
    return result;
}

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (condition()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
}

bool processExists(pid_t pid) {
    if (pid <= 0) {
        return false;
    }
    // A zombie still has /proc/<pid>, but it is no longer running anything.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return false;
    }
    const auto close_paren = line.rfind(')');
    return close_paren == std::string::npos || close_paren + 2 >= line.size() || line[close_paren + 2] != 'Z';
}

std::string daemonBinary() {
    return TAU_MONITOR_BIN;
}
std::string cliBinary() {
    return TAU_CLI_BIN;
}

RunningDaemon::RunningDaemon(const std::string& config_toml, std::vector<std::string> extra_args) {
    std::string config = config_toml;
    for (auto at = config.find("@DIR@"); at != std::string::npos; at = config.find("@DIR@", at)) {
        config.replace(at, 5, dir_.path().string());
    }
    const auto config_path = dir_.path() / "tau-monitor.toml";
    writeFile(config_path, config);
    argv_ = {daemonBinary(), "--foreground", "--bus", "private", "--config", config_path.string()};
    argv_.insert(argv_.end(), extra_args.begin(), extra_args.end());
    launch();
}

void RunningDaemon::launch() {
    const int out_fd =
        open((dir_.path() / "daemon.out").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pid_ = spawn(argv_, clientEnv(), out_fd, out_fd);
    close(out_fd);
    pidfd_ = pidfdOpen(pid_);
    exit_status_.reset();
}

bool RunningDaemon::killHard() {
    kill(pid_, SIGKILL);
    const auto status = waitExit(pid_, pidfd_, std::chrono::seconds(10));
    if (!status) {
        return false;
    }
    exit_status_ = exitCodeOf(*status);
    return true;
}

void RunningDaemon::relaunch() {
    if (pidfd_ >= 0) {
        close(pidfd_);
    }
    launch();
}

RunningDaemon::~RunningDaemon() {
    if (!exit_status_ && pid_ > 0) {
        if (terminate(std::chrono::seconds(20)) < 0 && !exit_status_) {
            kill(pid_, SIGKILL);
            waitExit(pid_, pidfd_, std::chrono::seconds(10));
        }
    }
    if (pidfd_ >= 0) {
        close(pidfd_);
    }
}

std::map<std::string, std::string> RunningDaemon::clientEnv() const {
    return {{"TAU_MONITOR_RUNTIME_DIR", runtimeDir().string()},
            // Nothing in a test may reach the machine's own buses.
            {"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (dir_.path() / "no-system-bus").string()},
            {"DBUS_SESSION_BUS_ADDRESS", ""},
            {"NOTIFY_SOCKET", ""},
            {"WATCHDOG_USEC", ""}};
}

std::string RunningDaemon::busAddress() const {
    std::string address = readFile(runtimeDir() / "bus-address");
    while (!address.empty() && (address.back() == '\n' || address.back() == ' ')) {
        address.pop_back();
    }
    return address;
}

bool RunningDaemon::waitReady(std::chrono::milliseconds timeout) {
    static const char* names[] = {"org.tauos.Processes1", "org.tauos.Recovery1", "org.tauos.Resources1",
                                  "org.tauos.Health1", "org.tauos.Log1"};
    return waitUntil(
        [&] {
            if (!processExists(pid_) || busAddress().empty()) {
                return false;
            }
            for (const char* name : names) {
                if (busctl({"status", name}).exit_code != 0) {
                    return false;
                }
            }
            return true;
        },
        timeout);
}

CommandResult RunningDaemon::cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {cliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, clientEnv());
}

CommandResult RunningDaemon::busctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"busctl", "--address=" + busAddress()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, clientEnv());
}

int RunningDaemon::terminate(std::chrono::milliseconds timeout) {
    if (exit_status_) {
        return *exit_status_;
    }
    kill(pid_, SIGTERM);
    const auto status = waitExit(pid_, pidfd_, timeout);
    if (!status) {
        return -1;
    }
    exit_status_ = exitCodeOf(*status);
    return *exit_status_;
}

std::string RunningDaemon::output() const {
    return readFile(dir_.path() / "daemon.out");
}

} // namespace tau::test
