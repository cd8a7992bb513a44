#include "process_launcher.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
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

OutputCapturingLauncher::OutputCapturingLauncher(Reactor& reactor, LineHandler on_line)
    : reactor_(reactor), on_line_(std::move(on_line)) {}

OutputCapturingLauncher::~OutputCapturingLauncher() {
    while (!pipes_.empty()) {
        closePipe(pipes_.begin()->first);
    }
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
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) < 0) {
        throw SpawnError(std::string("pipe: ") + std::strerror(errno));
    }
    if (::pipe2(err, O_CLOEXEC) < 0) {
        const int saved = errno;
        ::close(out[0]);
        ::close(out[1]);
        throw SpawnError(std::string("pipe: ") + std::strerror(saved));
    }
    SpawnRequest captured = request;
    captured.stdout_fd = out[1];
    captured.stderr_fd = err[1];
    captured.output_read_write = true;
    SpawnedProcess process;
    try {
        process = spawnProcess(captured);
    } catch (...) {
        for (const int fd : {out[0], out[1], err[0], err[1]}) {
            ::close(fd);
        }
        throw;
    }
    // The child holds the write ends now; once it and its descendants are gone, the read ends see EOF.
    ::close(out[1]);
    ::close(err[1]);
    watch(out[0], service, process.pid, OutputStream::Stdout);
    watch(err[0], service, process.pid, OutputStream::Stderr);
    return process;
}

void OutputCapturingLauncher::adoptOutput(const std::string& service, pid_t pid) {
    for (const auto stream : {OutputStream::Stdout, OutputStream::Stderr}) {
        // The pipe the previous root read, reached through the service's own descriptor.
        const std::string path =
            "/proc/" + std::to_string(pid) + "/fd/" +
            std::to_string(stream == OutputStream::Stdout ? STDOUT_FILENO : STDERR_FILENO);
        const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        struct stat info {};
        if (::fstat(fd, &info) != 0 || !S_ISFIFO(info.st_mode)) {
            ::close(fd); // it pointed its output elsewhere itself: not ours to read
            continue;
        }
        watch(fd, service, pid, stream);
    }
}

void OutputCapturingLauncher::release(int pidfd) {
    ::close(pidfd);
}

int OutputCapturingLauncher::open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

void OutputCapturingLauncher::watch(int fd, const std::string& service, pid_t pid, OutputStream stream) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    pipes_[fd] = Pipe{service, pid, stream, {}};
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
    pipes_.erase(fd);
    ::close(fd);
}

} // namespace tau
