#include "process_launcher.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <set>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tau {
namespace {

// A line longer than this is passed on in pieces, so one service cannot make the supervisor buffer without
// end.
constexpr std::size_t kMaxLine = 16 * 1024;

} // namespace

std::string_view toString(OutputStream stream) {
    return stream == OutputStream::Stdout ? "stdout" : "stderr";
}

OutputCapturingLauncher::OutputCapturingLauncher(Reactor& reactor, std::filesystem::path directory,
                                                 LineHandler on_line)
    : reactor_(reactor), directory_(std::move(directory)), on_line_(std::move(on_line)) {
    // Without it every spawn that captures output fails, naming the FIFO it could not make.
    std::error_code ignored;
    std::filesystem::create_directories(directory_, ignored);
}

OutputCapturingLauncher::~OutputCapturingLauncher() {
    // The FIFOs stay: services that outlive this supervisor keep writing into them for the next one.
    while (!pipes_.empty()) {
        const int fd = pipes_.begin()->first;
        reactor_.unwatchFd(fd);
        ::close(fd);
        pipes_.erase(fd);
    }
}

std::filesystem::path OutputCapturingLauncher::fifoPath(const std::string& service, pid_t pid,
                                                        OutputStream stream) const {
    return directory_ / (service + "." + std::to_string(pid) + "." + std::string(toString(stream)));
}

SpawnedProcess OutputCapturingLauncher::spawn(const std::string& service, const SpawnRequest& request,
                                              bool capture_output) {
    if (const auto handoff = handoffs_.find(service); handoff != handoffs_.end()) {
        const int fd = ::open(handoff->second.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            SpawnRequest with_state = request;
            with_state.pass_fds.insert(with_state.pass_fds.begin(), fd);
            with_state.environment["TAU_STATE_FD"] = "3";
            try {
                auto process = spawnCapturing(service, with_state, capture_output);
                ::close(fd);
                return process;
            } catch (...) {
                ::close(fd);
                throw;
            }
        }
    }
    return spawnCapturing(service, request, capture_output);
}

SpawnedProcess OutputCapturingLauncher::spawnCapturing(const std::string& service,
                                                       const SpawnRequest& request, bool capture_output) {
    if (!capture_output) {
        return spawnProcess(request);
    }
    // Each stream: our read end, and the child's end, open for reading too, so that it never sees EPIPE.
    struct Fifo {
        std::filesystem::path path;
        int ours = -1;
        int child = -1;
    };
    std::array<Fifo, 2> fifos;
    const auto closeAll = [&fifos] {
        for (auto& fifo : fifos) {
            for (const int fd : {fifo.ours, fifo.child}) {
                if (fd >= 0) {
                    ::close(fd);
                }
            }
            std::error_code ignored;
            std::filesystem::remove(fifo.path, ignored);
        }
    };
    for (std::size_t i = 0; i < fifos.size(); ++i) {
        auto& fifo = fifos[i];
        fifo.path = directory_ / ("." + service + (i == 0 ? ".stdout" : ".stderr") + ".new");
        ::unlink(fifo.path.c_str());
        if (::mkfifo(fifo.path.c_str(), 0600) < 0 ||
            (fifo.ours = ::open(fifo.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 ||
            (fifo.child = ::open(fifo.path.c_str(), O_RDWR | O_CLOEXEC)) < 0) {
            const std::string message = fifo.path.string() + ": " + std::strerror(errno);
            closeAll();
            throw SpawnError(message);
        }
    }
    SpawnRequest captured = request;
    captured.stdout_fd = fifos[0].child;
    captured.stderr_fd = fifos[1].child;
    SpawnedProcess process;
    try {
        process = spawnProcess(captured);
    } catch (...) {
        closeAll();
        throw;
    }
    for (std::size_t i = 0; i < fifos.size(); ++i) {
        ::close(fifos[i].child);
        const auto stream = i == 0 ? OutputStream::Stdout : OutputStream::Stderr;
        const auto path = fifoPath(service, process.pid, stream);
        std::error_code error;
        std::filesystem::rename(fifos[i].path, path, error);
        watch(fifos[i].ours, service, process.pid, stream, error ? fifos[i].path : path);
    }
    return process;
}

void OutputCapturingLauncher::adoptOutput(const std::string& service, pid_t pid) {
    for (const auto stream : {OutputStream::Stdout, OutputStream::Stderr}) {
        auto path = fifoPath(service, pid, stream);
        const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            watch(fd, service, pid, stream, std::move(path));
        }
    }
}

void OutputCapturingLauncher::removeStaleOutput() {
    std::set<std::filesystem::path> read;
    for (const auto& [fd, pipe] : pipes_) {
        read.insert(pipe.fifo);
    }
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(directory_, error)) {
        if (!read.contains(entry.path())) {
            std::error_code ignored;
            std::filesystem::remove(entry.path(), ignored);
        }
    }
}

void OutputCapturingLauncher::release(int pidfd) {
    ::close(pidfd);
}

int OutputCapturingLauncher::open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

void OutputCapturingLauncher::watch(int fd, const std::string& service, pid_t pid, OutputStream stream,
                                    std::filesystem::path fifo) {
    pipes_[fd] = Pipe{service, pid, stream, {}, std::move(fifo)};
    reactor_.watchFd(fd, POLLIN, [this, fd](short) { drain(fd); });
}

void OutputCapturingLauncher::drain(int fd) {
    char buffer[8192];
    for (;;) {
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        auto& pipe = pipes_.at(fd);
        if (got <= 0) {
            if (!pipe.partial.empty()) {
                on_line_(pipe.service, pipe.pid, pipe.stream, std::move(pipe.partial));
            }
            closePipe(fd);
            return;
        }
        pipe.partial.append(buffer, static_cast<std::size_t>(got));
        std::size_t start = 0;
        for (auto newline = pipe.partial.find('\n'); newline != std::string::npos;
             newline = pipe.partial.find('\n', start)) {
            on_line_(pipe.service, pipe.pid, pipe.stream, pipe.partial.substr(start, newline - start));
            start = newline + 1;
        }
        pipe.partial.erase(0, start);
        while (pipe.partial.size() >= kMaxLine) {
            on_line_(pipe.service, pipe.pid, pipe.stream, pipe.partial.substr(0, kMaxLine));
            pipe.partial.erase(0, kMaxLine);
        }
    }
}

void OutputCapturingLauncher::closePipe(int fd) {
    reactor_.unwatchFd(fd);
    std::error_code ignored;
    std::filesystem::remove(pipes_.at(fd).fifo, ignored);
    pipes_.erase(fd);
    ::close(fd);
}

} // namespace tau
