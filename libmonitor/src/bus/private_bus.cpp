#include "tau/bus/private_bus.h"

#include "tau/spawner.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdexcept>
#include <unistd.h>

namespace tau::bus {
namespace {

std::string currentUserName() {
    const passwd* pw = getpwuid(geteuid());
    return pw != nullptr ? pw->pw_name : std::to_string(geteuid());
}

std::string busConfig(const std::filesystem::path& socket) {
    // Anyone may connect and call (methods authorize callers themselves); only the daemon's user may own
    // the suite's names, so another user cannot impersonate a service.
    return "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
           "<busconfig>\n"
           "  <type>session</type>\n"
           "  <listen>unix:path=" +
           socket.string() +
           "</listen>\n"
           "  <auth>EXTERNAL</auth>\n"
           "  <policy context=\"default\">\n"
           "    <allow user=\"*\"/>\n"
           "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
           "    <allow eavesdrop=\"true\"/>\n"
           "    <allow own=\"*\"/>\n"
           "    <deny own_prefix=\"org.tauos\"/>\n"
           "  </policy>\n"
           "  <policy user=\"" +
           currentUserName() +
           "\">\n"
           "    <allow own_prefix=\"org.tauos\"/>\n"
           "  </policy>\n"
           "</busconfig>\n";
}

} // namespace

PrivateBus::PrivateBus(std::filesystem::path directory) : directory_(std::move(directory)) {
    std::filesystem::create_directories(directory_);
    const auto socket = directory_ / "bus";
    const auto config = directory_ / "bus.conf";
    std::filesystem::remove(socket);
    {
        std::ofstream out(config, std::ios::trunc);
        out << busConfig(socket);
        if (!out) {
            throw std::runtime_error("cannot write " + config.string());
        }
    }

    int address_pipe[2];
    if (pipe2(address_pipe, O_CLOEXEC) < 0) {
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    SpawnRequest request;
    request.argv = {"/usr/bin/dbus-daemon", "--config-file=" + config.string(), "--nofork", "--nopidfile",
                    "--print-address=3"};
    request.pass_fds = {address_pipe[1]};
    // The bus is the daemon's own: it must not outlive a daemon that was killed.
    request.parent_death_signal = SIGTERM;
    SpawnedProcess process;
    try {
        process = spawnProcess(request);
    } catch (...) {
        close(address_pipe[1]);
        close(address_pipe[0]);
        throw;
    }
    close(address_pipe[1]);
    pid_ = process.pid;
    pidfd_ = process.pidfd;

    std::string address;
    char buffer[512];
    for (;;) {
        pollfd pfd{address_pipe[0], POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0) {
            break;
        }
        const ssize_t got = read(address_pipe[0], buffer, sizeof buffer);
        if (got <= 0) {
            break;
        }
        address.append(buffer, static_cast<std::size_t>(got));
        if (address.find('\n') != std::string::npos) {
            break;
        }
    }
    close(address_pipe[0]);
    if (const auto newline = address.find('\n'); newline != std::string::npos) {
        address.resize(newline);
    }
    if (address.empty()) {
        signalPidfd(pidfd_, SIGKILL);
        while (!reapPidfd(pidfd_)) {
            pollfd pfd{pidfd_, POLLIN, 0};
            poll(&pfd, 1, 1000);
        }
        close(pidfd_);
        throw std::runtime_error("dbus-daemon did not report its address");
    }
    address_ = address;
}

PrivateBus::~PrivateBus() {
    if (!published_.empty()) {
        std::error_code ignored;
        std::filesystem::remove(published_, ignored);
    }
    if (pidfd_ >= 0) {
        signalPidfd(pidfd_, SIGTERM);
        for (int waited = 0; waited < 50 && !reapPidfd(pidfd_); ++waited) {
            pollfd pfd{pidfd_, POLLIN, 0};
            poll(&pfd, 1, 100);
        }
        if (signalPidfd(pidfd_, SIGKILL)) {
            pollfd pfd{pidfd_, POLLIN, 0};
            poll(&pfd, 1, 1000);
            reapPidfd(pidfd_);
        }
        close(pidfd_);
    }
    std::error_code ignored;
    std::filesystem::remove(directory_ / "bus", ignored);
    std::filesystem::remove(directory_ / "bus.conf", ignored);
}

void PrivateBus::publishAddress(const std::filesystem::path& file) {
    const auto temporary = file.string() + ".tmp";
    {
        std::ofstream out(temporary, std::ios::trunc);
        out << address_ << '\n';
        if (!out) {
            throw std::runtime_error("cannot write " + temporary);
        }
    }
    std::filesystem::rename(temporary, file);
    published_ = file;
}

} // namespace tau::bus
