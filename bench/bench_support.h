// What the benchmark drivers share: clocks, interruption handling, started processes ended by their pid,
// stamp FIFOs, a supervisor with its designated stamp child, tau-monitor-cli, the configuration of
// tau-monitor, and the statistics and tables of latency samples.
//
// crash_restart_bench (one service, tau-monitor against the baseline) and many_services_bench (many
// services) include it; each is a single translation unit, so everything here is inline.

#pragma once

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace bench {

using Nanoseconds = std::int64_t;

constexpr Nanoseconds kNanosecondsPerMillisecond = 1'000'000;
constexpr Nanoseconds kNanosecondsPerSecond = 1'000 * kNanosecondsPerMillisecond;
// A daemon that has to start its own bus and services gets longer for its first child than for a restart.
constexpr Nanoseconds kFirstStampTimeout = 30'000 * kNanosecondsPerMillisecond;
constexpr Nanoseconds kReadinessTimeout = 30'000 * kNanosecondsPerMillisecond;
constexpr Nanoseconds kReadinessPollInterval = 100 * kNanosecondsPerMillisecond;
constexpr Nanoseconds kCliTimeout = 10'000 * kNanosecondsPerMillisecond;
constexpr Nanoseconds kStopGracePeriod = 20'000 * kNanosecondsPerMillisecond;
// The services tau-monitor runs besides the configured ones (log, recovery, resources, health).
constexpr std::size_t kSuiteServices = 4;

constexpr int kExitPass = 0;
constexpr int kExitFail = 1;
constexpr int kExitError = 2;

inline Nanoseconds monotonicNow() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<Nanoseconds>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

inline double toMilliseconds(Nanoseconds duration) {
    return static_cast<double>(duration) / static_cast<double>(kNanosecondsPerMillisecond);
}

inline timespec toTimespec(Nanoseconds duration) {
    duration = std::max<Nanoseconds>(duration, 0);
    return timespec{static_cast<time_t>(duration / 1'000'000'000),
                    static_cast<long>(duration % 1'000'000'000)};
}

inline std::string errnoText(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

// Termination signals stay blocked except inside ppoll(), so a Ctrl-C is noticed at the next wait and
// every process the driver started is still ended in order by the destructors.
inline volatile sig_atomic_t interrupting_signal = 0;
inline sigset_t mask_while_waiting;

inline void rememberInterruption(int signal_number) {
    interrupting_signal = signal_number;
}

inline void installInterruptionHandling() {
    struct sigaction action {};
    action.sa_handler = rememberInterruption;
    sigemptyset(&action.sa_mask);
    sigset_t termination_signals;
    sigemptyset(&termination_signals);
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
        sigaction(signal_number, &action, nullptr);
        sigaddset(&termination_signals, signal_number);
    }
    sigprocmask(SIG_BLOCK, &termination_signals, &mask_while_waiting);
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
        sigdelset(&mask_while_waiting, signal_number);
    }
    ::signal(SIGPIPE, SIG_IGN);
}

class Interrupted : public std::runtime_error {
  public:
    Interrupted()
        : std::runtime_error("interrupted by SIG" + std::string(sigabbrev_np(interrupting_signal))) {}
};

class SupervisorExited : public std::runtime_error {
  public:
    SupervisorExited() : std::runtime_error("the supervisor exited") {}
};

// Waits for events on `fds` until `deadline`; returns false on timeout. Throws when interrupted.
inline bool waitForEvents(std::vector<pollfd>& fds, Nanoseconds deadline) {
    for (;;) {
        const timespec timeout = toTimespec(deadline - monotonicNow());
        const int ready = ::ppoll(fds.data(), fds.size(), &timeout, &mask_while_waiting);
        if (ready < 0 && errno != EINTR) {
            throw std::runtime_error(errnoText("ppoll"));
        }
        if (interrupting_signal != 0) {
            throw Interrupted();
        }
        if (ready > 0) {
            return true;
        }
        if (ready == 0 && monotonicNow() >= deadline) {
            return false;
        }
    }
}

inline std::string readWholeFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

inline std::string lastLines(const std::string& text, std::size_t count) {
    std::size_t start = text.size();
    for (std::size_t found = 0; start > 0 && found <= count;) {
        --start;
        if (text[start] == '\n') {
            ++found;
        }
    }
    return text.substr(start == 0 ? 0 : start + 1);
}

inline std::string tomlString(const std::string& text) {
    std::string quoted = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            quoted += '\\';
        }
        quoted += c;
    }
    return quoted + "\"";
}

inline unsigned parseCount(const std::string& option, const std::string& text, unsigned minimum) {
    unsigned value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < minimum) {
        throw std::invalid_argument(option + ": '" + text +
                                    "' is not an integer >= " + std::to_string(minimum));
    }
    return value;
}

// How the designated child of each system is killed and its restart measured.
struct KillPlan {
    unsigned kills = 200; // measured kills per system
    unsigned blocks = 4;  // blocks per system, alternating between the systems
    unsigned warmup_kills = 5;
    Nanoseconds settle = 20 * kNanosecondsPerMillisecond;
    Nanoseconds restart_timeout = 5000 * kNanosecondsPerMillisecond;
};

// The options both drivers take.
struct CommonOptions {
    std::filesystem::path tau_monitor;
    std::filesystem::path tau_cli;
    std::filesystem::path baseline;
    std::filesystem::path stamp_child;
    KillPlan plan;
    std::filesystem::path json_output;
    bool keep_temporary_directory = false;
};

// The usage lines of the options in CommonOptions, for a driver's usage text.
constexpr const char* kCommonUsage =
    R"(  --tau-monitor PATH   the tau-monitor executable
  --baseline PATH      the baseline_restarter executable
  --stamp-child PATH   the stamp_child executable, the supervised service of both
  --tau-cli PATH       tau-monitor-cli: wait until every tau-monitor service runs before measuring, and
                       cross-check the restart count at the end
  --kills N            kills per system (default 200)
  --blocks N           blocks per system, alternating between the systems (default 4)
  --warmup N           unmeasured kills per system before the first block (default 5)
  --settle-ms N        least time between a child's stamp and its kill (default 20)
  --timeout-ms N       longest wait for a restart before the run is abandoned (default 5000)
  --json FILE          write the raw latencies to FILE
  --keep-temp          keep the temporary directory (configuration, FIFOs, supervisor output)
)";

// Takes the driver's own option `option` with `value`; false when it is not one of them.
using OwnOptionParser = std::function<bool(const std::string& option, const std::string& value)>;

// Parses the command line: the options in CommonOptions, and every other option with a value through
// `own`. --help prints `usage` and exits. Throws std::invalid_argument on a bad command line.
inline CommonOptions parseCommandLine(int argc, char** argv, const std::string& usage,
                                      const OwnOptionParser& own) {
    CommonOptions options;
    const std::vector<std::string> arguments(argv + 1, argv + argc);
    for (std::size_t i = 0; i < arguments.size(); ++i) {
        const std::string& option = arguments[i];
        if (option == "--help" || option == "-h") {
            std::cout << usage;
            std::exit(kExitPass);
        }
        if (option == "--keep-temp") {
            options.keep_temporary_directory = true;
            continue;
        }
        if (i + 1 >= arguments.size()) {
            throw std::invalid_argument(option + ": unknown option or missing value");
        }
        const std::string& value = arguments[++i];
        if (option == "--tau-monitor") {
            options.tau_monitor = std::filesystem::absolute(value);
        } else if (option == "--tau-cli") {
            options.tau_cli = std::filesystem::absolute(value);
        } else if (option == "--baseline") {
            options.baseline = std::filesystem::absolute(value);
        } else if (option == "--stamp-child") {
            options.stamp_child = std::filesystem::absolute(value);
        } else if (option == "--kills") {
            options.plan.kills = parseCount(option, value, 1);
        } else if (option == "--blocks") {
            options.plan.blocks = parseCount(option, value, 1);
        } else if (option == "--warmup") {
            options.plan.warmup_kills = parseCount(option, value, 0);
        } else if (option == "--settle-ms") {
            options.plan.settle = parseCount(option, value, 0) * kNanosecondsPerMillisecond;
        } else if (option == "--timeout-ms") {
            options.plan.restart_timeout = parseCount(option, value, 1) * kNanosecondsPerMillisecond;
        } else if (option == "--json") {
            options.json_output = value;
        } else if (!own || !own(option, value)) {
            throw std::invalid_argument(option + ": unknown option");
        }
    }
    if (options.tau_monitor.empty() || options.baseline.empty() || options.stamp_child.empty()) {
        throw std::invalid_argument("--tau-monitor, --baseline and --stamp-child are required");
    }
    for (const auto* path : {&options.tau_monitor, &options.baseline, &options.stamp_child}) {
        if (::access(path->c_str(), X_OK) != 0) {
            throw std::invalid_argument(errnoText("cannot execute " + path->string()));
        }
    }
    if (!options.tau_cli.empty() && ::access(options.tau_cli.c_str(), X_OK) != 0) {
        throw std::invalid_argument(errnoText("cannot execute " + options.tau_cli.string()));
    }
    options.plan.blocks = std::min(options.plan.blocks, options.plan.kills);
    return options;
}

class TemporaryDirectory {
  public:
    explicit TemporaryDirectory(bool keep) : keep_(keep) {
        const char* base = std::getenv("TMPDIR");
        std::string pattern =
            (std::filesystem::path(base != nullptr && *base != '\0' ? base : "/tmp") / "crash-bench.XXXXXX")
                .string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error(errnoText("mkdtemp " + pattern));
        }
        path_ = pattern;
    }
    ~TemporaryDirectory() {
        if (keep_) {
            std::cerr << "kept " << path_.string() << '\n';
            return;
        }
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TemporaryDirectory(const TemporaryDirectory&) = delete;
    TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
    bool keep_;
};

// Variables to set for a started process; an empty value removes the variable.
using EnvironmentChanges = std::map<std::string, std::string>;

inline std::vector<std::string> environmentWith(const EnvironmentChanges& changes) {
    std::vector<std::string> result;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view item(*entry);
        if (changes.contains(std::string(item.substr(0, item.find('='))))) {
            continue;
        }
        result.emplace_back(item);
    }
    for (const auto& [name, value] : changes) {
        if (!value.empty()) {
            result.push_back(name + "=" + value);
        }
    }
    return result;
}

inline std::vector<char*> pointersTo(std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    for (auto& s : strings) {
        pointers.push_back(s.data());
    }
    pointers.push_back(nullptr);
    return pointers;
}

// A process started by the driver. It is ended by its PID (through its pidfd) and reaped, whatever path
// the driver leaves by.
class StartedProcess {
  public:
    StartedProcess(std::vector<std::string> argv, const EnvironmentChanges& environment,
                   const std::filesystem::path& output) {
        posix_spawn_file_actions_t files;
        posix_spawn_file_actions_init(&files);
        posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, output.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                         0644);
        posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        sigset_t nothing_blocked;
        sigemptyset(&nothing_blocked);
        posix_spawnattr_setsigmask(&attributes, &nothing_blocked);
        // SIGPIPE is ignored here; an ignored signal would stay ignored across exec.
        sigset_t default_handling;
        sigemptyset(&default_handling);
        sigaddset(&default_handling, SIGPIPE);
        posix_spawnattr_setsigdefault(&attributes, &default_handling);
        // A process group of its own: a Ctrl-C reaches only the driver, which then stops it in order.
        posix_spawnattr_setpgroup(&attributes, 0);
        posix_spawnattr_setflags(&attributes,
                                 POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        auto environment_strings = environmentWith(environment);
        auto argv_pointers = pointersTo(argv);
        auto environment_pointers = pointersTo(environment_strings);
        const int rc = posix_spawn(&pid_, argv[0].c_str(), &files, &attributes, argv_pointers.data(),
                                   environment_pointers.data());
        posix_spawn_file_actions_destroy(&files);
        posix_spawnattr_destroy(&attributes);
        if (rc != 0) {
            throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
        }
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
        if (pidfd_ < 0) {
            const std::string reason = errnoText("pidfd_open");
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            throw std::runtime_error(reason);
        }
    }
    ~StartedProcess() {
        if (!exit_status_) {
            end(SIGKILL, 0);
        }
        ::close(pidfd_);
    }
    StartedProcess(const StartedProcess&) = delete;
    StartedProcess& operator=(const StartedProcess&) = delete;

    pid_t pid() const { return pid_; }
    int pidfd() const { return pidfd_; }
    bool running() const { return !exit_status_ && !hasExited(); }

    // Sends `signal`, waits up to `grace` for the exit, then SIGKILLs; returns the wait status.
    int end(int signal, Nanoseconds grace) {
        if (exit_status_) {
            return *exit_status_;
        }
        ::syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0);
        pollfd exit_event{pidfd_, POLLIN, 0};
        const auto milliseconds = static_cast<int>(grace / kNanosecondsPerMillisecond);
        if (signal != SIGKILL && ::poll(&exit_event, 1, milliseconds) <= 0) {
            ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
        }
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        exit_status_ = status;
        return status;
    }

    // Waits up to `timeout` for the process to exit by itself; SIGKILLs it and returns nullopt on timeout.
    std::optional<int> waitForExit(Nanoseconds timeout) {
        std::vector<pollfd> exit_event{{pidfd_, POLLIN, 0}};
        if (!waitForEvents(exit_event, monotonicNow() + timeout)) {
            end(SIGKILL, 0);
            return std::nullopt;
        }
        return end(SIGKILL, 0);
    }

    std::optional<int> exitStatus() const { return exit_status_; }

  private:
    bool hasExited() const {
        pollfd exit_event{pidfd_, POLLIN, 0};
        return ::poll(&exit_event, 1, 0) > 0;
    }

    pid_t pid_ = 0;
    int pidfd_ = -1;
    std::optional<int> exit_status_;
};

inline std::string describeWaitStatus(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string("killed by SIG") + sigabbrev_np(WTERMSIG(status));
    }
    return "ended with wait status " + std::to_string(status);
}

struct Stamp {
    pid_t pid = 0;
    Nanoseconds written_at = 0; // the child's clock reading when it started
    Nanoseconds read_at = 0;    // when the driver read the line
};

// The FIFO the children report to. The driver holds it open for reading and writing, so a child's open()
// never blocks and the driver never sees end-of-file between two children.
class StampFifo {
  public:
    explicit StampFifo(std::filesystem::path path) : path_(std::move(path)) {
        if (::mkfifo(path_.c_str(), 0600) < 0) {
            throw std::runtime_error(errnoText("mkfifo " + path_.string()));
        }
        fd_ = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd_ < 0) {
            throw std::runtime_error(errnoText("open " + path_.string()));
        }
    }
    ~StampFifo() { ::close(fd_); }
    StampFifo(const StampFifo&) = delete;
    StampFifo& operator=(const StampFifo&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // The next stamp that arrives before `deadline`, or nullopt. Throws if `supervisor` exits first.
    std::optional<Stamp> next(Nanoseconds deadline, const StartedProcess& supervisor) {
        while (pending_.empty()) {
            std::vector<pollfd> events{{fd_, POLLIN, 0}, {supervisor.pidfd(), POLLIN, 0}};
            if (!waitForEvents(events, deadline)) {
                return std::nullopt;
            }
            if (events[0].revents & POLLIN) {
                drain();
            } else if (events[1].revents != 0) {
                throw SupervisorExited();
            }
        }
        const Stamp stamp = pending_.front();
        pending_.pop_front();
        return stamp;
    }

  private:
    void drain() {
        char chunk[4096];
        for (;;) {
            const ssize_t got = ::read(fd_, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got <= 0) {
                break;
            }
            partial_line_.append(chunk, static_cast<std::size_t>(got));
        }
        const Nanoseconds read_at = monotonicNow();
        for (auto newline = partial_line_.find('\n'); newline != std::string::npos;
             newline = partial_line_.find('\n')) {
            pending_.push_back(parse(partial_line_.substr(0, newline), read_at));
            partial_line_.erase(0, newline + 1);
        }
    }

    static Stamp parse(const std::string& line, Nanoseconds read_at) {
        Stamp stamp;
        stamp.read_at = read_at;
        const char* const end = line.data() + line.size();
        auto [after_pid, pid_error] = std::from_chars(line.data(), end, stamp.pid);
        if (pid_error == std::errc() && after_pid != end && *after_pid == ' ') {
            auto [after_time, time_error] = std::from_chars(after_pid + 1, end, stamp.written_at);
            if (time_error == std::errc() && after_time == end && stamp.pid > 0) {
                return stamp;
            }
        }
        throw std::runtime_error("malformed stamp line '" + line + "'");
    }

    std::filesystem::path path_;
    int fd_ = -1;
    std::string partial_line_;
    std::deque<Stamp> pending_;
};

struct Sample {
    Nanoseconds latency;
    unsigned block;
};

// The message of a failed run of supervisor `name`: the problem, how the supervisor ended if it did, and
// the last lines it printed.
inline std::string supervisorFailure(const std::string& name, const std::string& problem,
                                     const StartedProcess* supervisor, const std::filesystem::path& output) {
    std::string message = name + ": " + problem;
    if (supervisor != nullptr && !supervisor->running() && !problem.starts_with("the supervisor")) {
        message += " (the supervisor " +
                   (supervisor->exitStatus() ? describeWaitStatus(*supervisor->exitStatus())
                                             : std::string("exited")) +
                   ")";
    }
    const std::string printed = lastLines(readWholeFile(output), 15);
    if (!printed.empty()) {
        message += "\nlast output of " + name + ":\n" + printed;
    }
    return message;
}

// A supervisor that could not be stopped in order may leave children running. One is ended by its pid,
// and only while that pid still runs `executable` (canonical), so a reused pid is left alone.
inline void endIfStillRunning(pid_t pid, const std::filesystem::path& executable) {
    if (pid <= 0) {
        return;
    }
    std::error_code error;
    const auto running = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error);
    if (!error && running == executable) {
        ::kill(pid, SIGKILL);
    }
}

// One supervisor under test, with the stamp child it supervises (with several services: the designated
// one, which the driver kills).
class SupervisedSystem {
  public:
    using ReadinessCheck = std::function<bool(pid_t current_child)>;

    SupervisedSystem(std::string name, std::filesystem::path fifo_path)
        : name_(std::move(name)), fifo_(fifo_path) {}

    const std::string& name() const { return name_; }
    const std::filesystem::path& fifoPath() const { return fifo_.path(); }
    const std::vector<Sample>& samples() const { return samples_; }
    unsigned killsSent() const { return kills_sent_; }
    pid_t currentChild() const { return current_.pid; }
    std::optional<pid_t> supervisorPid() const {
        return supervisor_ ? std::optional<pid_t>(supervisor_->pid()) : std::nullopt;
    }
    // Only once started.
    StartedProcess& supervisor() { return *supervisor_; }
    const std::filesystem::path& outputPath() const { return output_; }

    // Starts the supervisor and waits for the first stamp of its child, then until `ready` (when given);
    // each wait takes at most `timeout`.
    void start(std::vector<std::string> argv, const EnvironmentChanges& environment,
               const std::filesystem::path& output, const std::filesystem::path& child_executable,
               const ReadinessCheck& ready, Nanoseconds timeout = kFirstStampTimeout) {
        output_ = output;
        child_executable_ = std::filesystem::weakly_canonical(child_executable);
        supervisor_ = std::make_unique<StartedProcess>(std::move(argv), environment, output);
        const auto first = nextStamp(monotonicNow() + timeout);
        if (!first) {
            fail("no child started within " + std::to_string(timeout / kNanosecondsPerMillisecond) + " ms");
        }
        current_ = *first;
        if (ready) {
            const Nanoseconds deadline = monotonicNow() + std::max(timeout, kReadinessTimeout);
            while (!ready(current_.pid)) {
                if (monotonicNow() >= deadline) {
                    fail("not ready within " +
                         std::to_string(std::max(timeout, kReadinessTimeout) / kNanosecondsPerMillisecond) +
                         " ms");
                }
                expectNoStampUntil(monotonicNow() + kReadinessPollInterval);
            }
        }
    }

    // Kills the current child once it has settled and waits for its replacement; records the latency
    // when `block` is given.
    void crashOnce(const KillPlan& plan, std::optional<unsigned> block) {
        expectNoStampUntil(current_.read_at + plan.settle);
        const pid_t victim = current_.pid;
        const Nanoseconds killed_at = monotonicNow();
        if (::kill(victim, SIGKILL) < 0) {
            fail(errnoText("kill " + std::to_string(victim)));
        }
        ++kills_sent_;
        const Nanoseconds deadline = killed_at + plan.restart_timeout;
        std::optional<Stamp> replacement;
        do {
            replacement = nextStamp(deadline);
        } while (replacement && replacement->pid == victim);
        if (!replacement) {
            fail("no restart within " + std::to_string(plan.restart_timeout / kNanosecondsPerMillisecond) +
                 " ms of killing pid " + std::to_string(victim));
        }
        current_ = *replacement;
        if (block) {
            samples_.push_back({replacement->written_at - killed_at, *block});
        }
    }

    // SIGTERM by pid, then reaped; returns how it ended.
    std::string stop() {
        if (!supervisor_) {
            return "not started";
        }
        const std::string how = describeWaitStatus(supervisor_->end(SIGTERM, kStopGracePeriod));
        endIfStillRunning(current_.pid, child_executable_);
        return how;
    }

    [[noreturn]] void fail(const std::string& problem) const {
        throw std::runtime_error(supervisorFailure(name_, problem, supervisor_.get(), output_));
    }

    // Lets time pass while watching the FIFO: a stamp now would mean a restart nobody asked for.
    void expectNoStampUntil(Nanoseconds deadline) {
        if (const auto unexpected = nextStamp(deadline)) {
            fail("a child (pid " + std::to_string(unexpected->pid) + ") started while pid " +
                 std::to_string(current_.pid) + " was alive and not killed");
        }
    }

  private:
    std::optional<Stamp> nextStamp(Nanoseconds deadline) {
        try {
            return fifo_.next(deadline, *supervisor_);
        } catch (const SupervisorExited&) {
            fail("the supervisor " + describeWaitStatus(supervisor_->end(SIGKILL, 0)));
        }
    }

    std::string name_;
    StampFifo fifo_;
    std::filesystem::path output_;
    std::filesystem::path child_executable_;
    std::unique_ptr<StartedProcess> supervisor_;
    Stamp current_;
    std::vector<Sample> samples_;
    unsigned kills_sent_ = 0;
};

struct ListedService {
    std::string name;
    std::string kind; // "configured" or "internal" (one of the suite's own services)
    std::string state;
    long pid = 0;
    long restarts = 0;
};

// Reads the services out of `tau-monitor-cli --format json processes`: an array of flat objects, whose
// keys may come in any order.
inline std::vector<ListedService> parseServiceList(const std::string& json) {
    std::vector<ListedService> services;
    for (auto open = json.find('{'); open != std::string::npos;) {
        const auto close = json.find('}', open);
        if (close == std::string::npos) {
            break;
        }
        const std::string_view object(json.data() + open, close - open);
        auto valueOf = [&](const std::string& key) {
            const std::string marker = "\"" + key + "\": ";
            const auto at = object.find(marker);
            return at == std::string_view::npos ? std::string_view() : object.substr(at + marker.size());
        };
        auto stringOf = [&](const std::string& key) {
            const auto value = valueOf(key);
            if (!value.starts_with('"')) {
                return std::string();
            }
            return std::string(value.substr(1, value.find('"', 1) - 1));
        };
        auto numberOf = [&](const std::string& key) {
            const auto value = valueOf(key);
            long number = -1;
            std::from_chars(value.data(), value.data() + value.size(), number);
            return number;
        };
        services.push_back(
            {stringOf("name"), stringOf("kind"), stringOf("state"), numberOf("pid"), numberOf("restarts")});
        open = json.find('{', close);
    }
    return services;
}

class TauCli {
  public:
    TauCli(std::filesystem::path executable, EnvironmentChanges environment, std::filesystem::path scratch)
        : executable_(std::move(executable)), environment_(std::move(environment)),
          scratch_(std::move(scratch)) {}

    bool available() const { return !executable_.empty(); }

    std::optional<std::vector<ListedService>> processes() const {
        std::filesystem::remove(scratch_);
        StartedProcess cli({executable_.string(), "--format", "json", "processes"}, environment_, scratch_);
        const auto status = cli.waitForExit(kCliTimeout);
        if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
            return std::nullopt;
        }
        return parseServiceList(readWholeFile(scratch_));
    }

  private:
    std::filesystem::path executable_;
    EnvironmentChanges environment_;
    std::filesystem::path scratch_;
};

struct Summary {
    std::size_t count = 0;
    double p50 = 0, p99 = 0, max = 0, mean = 0, stddev = 0; // milliseconds
};

// Nearest-rank percentile of sorted values.
inline double percentile(const std::vector<double>& sorted, double percent) {
    const auto rank =
        static_cast<std::size_t>(std::ceil(percent / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

inline Summary summarize(const std::vector<Sample>& samples,
                         std::optional<unsigned> only_block = std::nullopt) {
    std::vector<double> values;
    for (const auto& sample : samples) {
        if (!only_block || sample.block == *only_block) {
            values.push_back(toMilliseconds(sample.latency));
        }
    }
    Summary summary;
    summary.count = values.size();
    if (values.empty()) {
        return summary;
    }
    std::sort(values.begin(), values.end());
    summary.p50 = percentile(values, 50);
    summary.p99 = percentile(values, 99);
    summary.max = values.back();
    double sum = 0;
    for (const double v : values) {
        sum += v;
    }
    summary.mean = sum / static_cast<double>(values.size());
    double squares = 0;
    for (const double v : values) {
        squares += (v - summary.mean) * (v - summary.mean);
    }
    summary.stddev = values.size() > 1 ? std::sqrt(squares / static_cast<double>(values.size() - 1)) : 0.0;
    return summary;
}

inline std::string formatRow(const std::string& label, const Summary& s, bool with_spread) {
    char row[200];
    if (with_spread) {
        std::snprintf(row, sizeof row, "%-22s %5zu %9.3f %9.3f %9.3f %9.3f %9.3f", label.c_str(), s.count,
                      s.p50, s.p99, s.max, s.mean, s.stddev);
    } else {
        std::snprintf(row, sizeof row, "%-22s %5zu %9.3f %9.3f %9.3f", label.c_str(), s.count, s.p50, s.p99,
                      s.max);
    }
    return row;
}

// Writes the plan and every latency sample of `systems`; `leading_members` (JSON object members, each
// line indented by two and ending in ",\n") go before "systems".
inline void writeLatencyJson(const std::filesystem::path& path, const KillPlan& plan,
                             const std::vector<const SupervisedSystem*>& systems,
                             const std::string& leading_members = "") {
    std::ofstream out(path);
    out << "{\n  \"kills_per_system\": " << plan.kills << ",\n  \"blocks\": " << plan.blocks
        << ",\n  \"warmup_kills\": " << plan.warmup_kills << ",\n  \"settle_ns\": " << plan.settle << ",\n"
        << leading_members << "  \"systems\": {";
    for (std::size_t i = 0; i < systems.size(); ++i) {
        const auto& samples = systems[i]->samples();
        out << (i == 0 ? "\n" : ",\n") << "    \"" << systems[i]->name()
            << "\": {\n      \"latencies_ns\": [";
        for (std::size_t k = 0; k < samples.size(); ++k) {
            out << (k == 0 ? "" : ", ") << samples[k].latency;
        }
        out << "],\n      \"block\": [";
        for (std::size_t k = 0; k < samples.size(); ++k) {
            out << (k == 0 ? "" : ", ") << samples[k].block;
        }
        out << "]\n    }";
    }
    out << "\n  }\n}\n";
    if (!out) {
        throw std::runtime_error("cannot write " + path.string());
    }
}

// The environment of a tau-monitor daemon and of its CLI: nothing they do may reach the machine's own
// buses or service manager. `runtime` is the daemon's runtime directory (its private bus among others).
inline EnvironmentChanges isolatedEnvironment(const std::filesystem::path& runtime,
                                              const std::filesystem::path& directory) {
    return {{"TAU_MONITOR_RUNTIME_DIR", runtime.string()},
            {"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (directory / "no-system-bus").string()},
            {"DBUS_SESSION_BUS_ADDRESS", ""},
            {"NOTIFY_SOCKET", ""},
            {"WATCHDOG_USEC", ""},
            {"WATCHDOG_PID", ""}};
}

// A configured service of tau-monitor: stamp_child reporting to `fifo`.
struct StampService {
    std::string name;
    std::filesystem::path fifo;
};

// The configuration of tau-monitor for the benchmarks: `services`, all of them running stamp_child, with
// restarts that nothing delays; session state and log file in `directory`.
inline std::string tauConfiguration(const std::filesystem::path& stamp_child,
                                    const std::filesystem::path& directory,
                                    const std::vector<StampService>& services) {
    std::ostringstream config;
    config << "[resource_monitoring]\nenabled = false\n\n"
           << "[health_checking]\nenabled = false\n\n"
           << "[process_management]\n"
           << "# Every configured service runs at once (never below the default of 100).\n"
           << "max_concurrent_processes = " << std::max<std::size_t>(services.size(), 100) << "\n\n"
           << "[crash_recovery]\n"
           << "# A child killed within this many seconds of its start counts as a consecutive failure.\n"
           << "recovery_timeout_seconds = 1\n"
           << "# The benchmark kills far faster than any sane restart budget allows: measure the bare path.\n"
           << "restart_budget_burst = 1000000\n"
           << "session_state_path = " << tomlString((directory / "state").string()) << "\n\n"
           << "[logging]\nlog_file_path = " << tomlString((directory / "tau-monitor.log").string()) << "\n";
    for (std::size_t i = 0; i < services.size(); ++i) {
        config << "\n[[service]]\nname = " << tomlString(services[i].name) << "\n"
               << "exec = [" << tomlString(stamp_child.string()) << ", "
               << tomlString(services[i].fifo.string()) << "]\n"
               << "[service.recovery]\nstrategy = \"restart\"\nmax_attempts = 1000000\n"
               << (i == 0
                       ? "# Nor does the start limit: it would stretch the delays the benchmark measures.\n"
                       : "")
               << "start_limit_burst = 1000000\n";
    }
    return config.str();
}

// Measuring while the suite's own services still start would charge their start-up to the restarts: ready
// once tau-monitor-cli lists the `configured` services and the suite's own, all running, with `designated`
// running as the child the driver saw last. `cli` must outlive the check.
inline SupervisedSystem::ReadinessCheck tauReadiness(const TauCli& cli, std::size_t configured,
                                                     std::string designated) {
    return [&cli, configured, designated = std::move(designated)](pid_t current_child) {
        const auto services = cli.processes();
        if (!services || services->size() < configured + kSuiteServices) {
            return false;
        }
        return std::all_of(services->begin(), services->end(), [&](const ListedService& s) {
            return s.state == "running" && (s.name != designated || s.pid == current_child);
        });
    };
}

// Kills the designated child of each system: first plan.warmup_kills unmeasured ones, then plan.kills
// measured ones in plan.blocks blocks, alternating the systems and which of them goes first in a block, so
// that load from elsewhere on the machine falls on all of them alike.
inline void measureInInterleavedBlocks(const std::vector<SupervisedSystem*>& systems, const KillPlan& plan) {
    for (auto* system : systems) {
        for (unsigned i = 0; i < plan.warmup_kills; ++i) {
            system->crashOnce(plan, std::nullopt);
        }
    }
    for (unsigned block = 0; block < plan.blocks; ++block) {
        const unsigned kills = plan.kills / plan.blocks + (block < plan.kills % plan.blocks ? 1 : 0);
        // Alternating which system goes first keeps any drift within a round from favouring one of them.
        auto order = systems;
        if (block % 2 == 1) {
            std::reverse(order.begin(), order.end());
        }
        for (auto* system : order) {
            for (unsigned i = 0; i < kills; ++i) {
                system->crashOnce(plan, block);
            }
        }
    }
}

// Prints the latencies of `systems` per block, then per system with their spread.
inline void printLatencyTables(const std::vector<SupervisedSystem*>& systems, unsigned blocks) {
    std::printf("%-22s %5s %9s %9s %9s\n", "block", "kills", "p50 ms", "p99 ms", "max ms");
    for (unsigned block = 0; block < blocks; ++block) {
        for (const auto* system : systems) {
            std::printf("%s\n", formatRow(std::to_string(block + 1) + " " + system->name(),
                                          summarize(system->samples(), block), false)
                                    .c_str());
        }
    }
    std::printf("\n%-22s %5s %9s %9s %9s %9s %9s\n", "system", "kills", "p50 ms", "p99 ms", "max ms",
                "mean ms", "stddev ms");
    for (const auto* system : systems) {
        std::printf("%s\n", formatRow(system->name(), summarize(system->samples()), true).c_str());
    }
}

} // namespace bench
