#include "tau/signals.h"

#include <cerrno>
#include <signal.h>
#include <sys/signalfd.h>
#include <system_error>
#include <unistd.h>

namespace tau {

SignalFd::SignalFd(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (const int sig : signals) {
        sigaddset(&set, sig);
    }
    if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0) {
        throw std::system_error(errno, std::generic_category(), "sigprocmask");
    }
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "signalfd");
    }
}

SignalFd::~SignalFd() {
    if (fd_ >= 0) {
        close(fd_);
    }
}

int SignalFd::read() {
    signalfd_siginfo info{};
    const ssize_t got = ::read(fd_, &info, sizeof info);
    return got == static_cast<ssize_t>(sizeof info) ? static_cast<int>(info.ssi_signo) : 0;
}

} // namespace tau
