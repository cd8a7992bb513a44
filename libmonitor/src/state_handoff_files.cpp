#include "tau/state_handoff_files.h"

#include "tau/client/state_handoff.h"
#include "tau/fd_io.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace tau {
namespace {

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what, int error) {
    throw StateStoreError(error == ENOSPC || error == EDQUOT ? StateStoreError::Kind::StorageFull
                                                             : StateStoreError::Kind::Storage,
                          file.string() + ": cannot " + what + ": " + std::strerror(error));
}

} // namespace

void StateHandoffFiles::write(const std::string& service, const StateVersion& state) {
    std::error_code error;
    std::filesystem::create_directories(directory_, error);
    if (error) {
        fail(directory_, "create the directory", error.value());
    }
    const auto file = fileOf(service);
    const auto temporary = directory_ / ("." + service + ".new");
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fail(temporary, "create", errno);
    }
    const std::string header = client::stateHandoffHeader(
        state.version,
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(state.saved_at.time_since_epoch()).count()),
        state.data.size());
    if (!writeAll(fd, header.data(), header.size()) || !writeAll(fd, state.data.data(), state.data.size()) ||
        ::fsync(fd) < 0) {
        const int saved = errno;
        ::close(fd);
        ::unlink(temporary.c_str());
        fail(temporary, "write", saved);
    }
    ::close(fd);
    if (::rename(temporary.c_str(), file.c_str()) < 0) {
        const int saved = errno;
        ::unlink(temporary.c_str());
        fail(file, "replace", saved);
    }
    const int directory_fd = ::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory_fd < 0 || ::fsync(directory_fd) < 0) {
        const int saved = errno;
        if (directory_fd >= 0) {
            ::close(directory_fd);
        }
        fail(directory_, "sync", saved);
    }
    ::close(directory_fd);
}

void StateHandoffFiles::remove(const std::string& service) {
    std::error_code ignored;
    std::filesystem::remove(fileOf(service), ignored);
}

} // namespace tau
