#include "tau/notify_socket.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>
#include <unordered_set>
#include <utility>

namespace tau {
namespace {

// Linux's SCM_MAX_FD: the most descriptors one datagram can carry. Room for all of them means the kernel
// never has to discard any, so every one that arrives is one we see, and close.
constexpr std::size_t kMaxPassedFds = 253;

// ERRNO= values beyond this are not errno codes; systemd rejects them the same way.
constexpr int kErrnoMax = 4095;

// Digits only: from_chars alone would accept a leading '-' for signed types, and strtoull would accept
// whitespace and signs, none of which sd_notify senders produce.
template <typename Number> std::optional<Number> parseDecimal(std::string_view text) {
    if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    Number value{};
    const char* const end = text.data() + text.size();
    const auto [stopped_at, error] = std::from_chars(text.data(), end, value);
    if (error != std::errc{} || stopped_at != end) {
        return std::nullopt;
    }
    return value;
}

// Applies one KEY=VALUE assignment; false if the value is not valid for a key we know.
bool applyAssignment(NotifyMessage& message, std::string_view key, std::string_view value,
                     std::string_view line) {
    if (key == "READY") {
        message.ready = value == "1";
        return message.ready;
    }
    if (key == "RELOADING") {
        message.reloading = value == "1";
        return message.reloading;
    }
    if (key == "STOPPING") {
        message.stopping = value == "1";
        return message.stopping;
    }
    if (key == "WATCHDOG") {
        if (value == "1") {
            message.watchdog_ping = true;
        } else if (value == "trigger") {
            message.watchdog_trigger = true;
        } else {
            return false;
        }
        return true;
    }
    if (key == "STATUS") {
        message.status = std::string(value);
        return true;
    }
    if (key == "WATCHDOG_USEC") {
        message.watchdog_usec = parseDecimal<std::uint64_t>(value);
        return message.watchdog_usec.has_value();
    }
    if (key == "EXTEND_TIMEOUT_USEC") {
        message.extend_timeout_usec = parseDecimal<std::uint64_t>(value);
        return message.extend_timeout_usec.has_value();
    }
    if (key == "MAINPID") {
        const auto pid = parseDecimal<pid_t>(value);
        if (!pid || *pid <= 0) {
            return false;
        }
        message.main_pid = *pid;
        return true;
    }
    if (key == "ERRNO") {
        const auto number = parseDecimal<int>(value);
        if (!number || *number > kErrnoMax) {
            return false;
        }
        message.errno_value = *number;
        return true;
    }
    message.unknown.emplace_back(line);
    return true;
}

[[noreturn]] void throwForPath(int error, const std::filesystem::path& path, const std::string& what) {
    throw std::system_error(error, std::generic_category(), "notify socket '" + path.string() + "': " + what);
}

sockaddr_un addressFor(const std::filesystem::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string& name = path.native();
    std::memcpy(address.sun_path, name.data(), name.size());
    return address;
}

// A socket file nobody is bound to any more is what a crashed supervisor leaves behind and can be replaced;
// a live one belongs to someone else, and a file of another kind was never ours to delete.
void removeStaleSocket(const std::filesystem::path& path) {
    struct stat existing {};
    if (::lstat(path.c_str(), &existing) < 0) {
        if (errno == ENOENT) {
            return;
        }
        throwForPath(errno, path, "cannot inspect the existing file");
    }
    if (!S_ISSOCK(existing.st_mode)) {
        throwForPath(EEXIST, path, "a file that is not a socket is in the way");
    }
    const int probe = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        throwForPath(errno, path, "cannot create a socket to probe the existing one");
    }
    // Only a refused connection proves nobody is bound; any other failure (EACCES from someone else's socket,
    // say) proves nothing, and guessing wrong would cut a running daemon off from its supervisor.
    const sockaddr_un address = addressFor(path);
    const int connected = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int connect_error = errno;
    ::close(probe);
    if (connected == 0) {
        throwForPath(EADDRINUSE, path, "another process is still receiving on this socket");
    }
    if (connect_error != ECONNREFUSED && connect_error != ENOENT) {
        throwForPath(connect_error, path, "cannot tell whether the existing socket is still in use");
    }
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
        throwForPath(errno, path, "cannot remove the stale socket");
    }
}

void closePassedDescriptors(const cmsghdr& control) {
    const std::size_t count = (control.cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(&control);
    for (std::size_t i = 0; i < count; ++i) {
        int passed = -1;
        std::memcpy(&passed, data + i * sizeof(int), sizeof(int));
        ::close(passed);
    }
}

} // namespace

NotifyMessage parseNotifyPayload(std::string_view payload) {
    NotifyMessage message;
    std::unordered_set<std::string_view> seen_keys;
    while (!payload.empty()) {
        const std::size_t newline = payload.find('\n');
        const std::string_view line = payload.substr(0, newline);
        payload = newline == std::string_view::npos ? std::string_view{} : payload.substr(newline + 1);
        if (line.empty()) {
            continue;
        }
        const std::size_t equals = line.find('=');
        // sd_notify() sends C strings, so a NUL comes only from a broken or hostile sender, and anything
        // after it would vanish from a log line: the whole line is reported rather than acted on.
        if (equals == std::string_view::npos || equals == 0 || line.find('\0') != std::string_view::npos) {
            message.malformed.emplace_back(line);
            continue;
        }
        const std::string_view key = line.substr(0, equals);
        if (!seen_keys.insert(key).second) {
            message.unknown.emplace_back(line);
            continue;
        }
        if (!applyAssignment(message, key, line.substr(equals + 1), line)) {
            message.malformed.emplace_back(line);
        }
    }
    return message;
}

NotifySocket::NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
    const std::string& name = path_.native();
    if (!path_.is_absolute()) {
        throwForPath(EINVAL, path_, "the path must be absolute, as sd_notify accepts no other");
    }
    if (name.find('\0') != std::string::npos) {
        throwForPath(EINVAL, path_, "the path contains a NUL byte");
    }
    constexpr std::size_t kMaxPathLength = sizeof(sockaddr_un::sun_path) - 1; // room for the terminating NUL
    if (name.size() > kMaxPathLength) {
        throwForPath(ENAMETOOLONG, path_,
                     "the path is " + std::to_string(name.size()) +
                         " bytes long, but an AF_UNIX socket path " + "can be at most " +
                         std::to_string(kMaxPathLength));
    }
    removeStaleSocket(path_);

    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        throwForPath(errno, path_, "cannot create the socket");
    }
    bool bound = false;
    const auto fail = [&](const std::string& what) {
        const int error = errno;
        ::close(fd_);
        if (bound) {
            ::unlink(path_.c_str());
        }
        throwForPath(error, path_, what);
    };
    // Set before bind, so that no datagram can ever arrive without credentials.
    const int enable = 1;
    if (::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &enable, sizeof enable) < 0) {
        fail("cannot enable SO_PASSCRED");
    }
    const sockaddr_un address = addressFor(path_);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        fail("cannot bind");
    }
    bound = true;
    // Sending needs write permission on the socket file; the umask would otherwise decide who may send.
    if (::chmod(path_.c_str(), 0666) < 0) {
        fail("cannot make the socket writable for everyone");
    }
    struct stat created {};
    if (::lstat(path_.c_str(), &created) < 0) {
        fail("cannot inspect the new socket");
    }
    bound_device_ = created.st_dev;
    bound_inode_ = created.st_ino;
}

NotifySocket::~NotifySocket() {
    ::close(fd_);
    struct stat current {};
    if (::lstat(path_.c_str(), &current) == 0 && current.st_dev == bound_device_ &&
        current.st_ino == bound_inode_) {
        ::unlink(path_.c_str());
    }
}

std::vector<NotifyMessage> NotifySocket::receiveAll() {
    std::vector<NotifyMessage> messages;
    std::array<char, kNotifyDatagramMax> payload{};
    alignas(cmsghdr)
        std::array<unsigned char, CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * kMaxPassedFds)>
            control{};
    for (;;) {
        iovec buffer{payload.data(), payload.size()};
        msghdr header{};
        header.msg_iov = &buffer;
        header.msg_iovlen = 1;
        header.msg_control = control.data();
        header.msg_controllen = control.size();
        // MSG_TRUNC makes the result the datagram's real length, so oversized ones are recognised;
        // MSG_CMSG_CLOEXEC keeps passed descriptors out of any child spawned before they are closed.
        const ssize_t length = ::recvmsg(fd_, &header, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
        if (length < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            throwForPath(errno, path_, "cannot receive");
        }

        std::optional<ucred> credentials;
        for (cmsghdr* item = CMSG_FIRSTHDR(&header); item != nullptr; item = CMSG_NXTHDR(&header, item)) {
            if (item->cmsg_level != SOL_SOCKET) {
                continue;
            }
            if (item->cmsg_type == SCM_RIGHTS) {
                closePassedDescriptors(*item);
            } else if (item->cmsg_type == SCM_CREDENTIALS && item->cmsg_len == CMSG_LEN(sizeof(ucred))) {
                ucred received{};
                std::memcpy(&received, CMSG_DATA(item), sizeof received);
                credentials = received;
            }
        }

        const bool oversized =
            (header.msg_flags & MSG_TRUNC) != 0 || static_cast<std::size_t>(length) > kNotifyDatagramMax;
        // A pid of 0 means the sender lives in a pid namespace we cannot see into: it cannot be attributed.
        if (oversized || !credentials || credentials->pid <= 0) {
            ++dropped_;
            continue;
        }
        NotifyMessage message = parseNotifyPayload(std::string_view(payload.data(), length));
        message.sender_pid = credentials->pid;
        message.sender_uid = credentials->uid;
        messages.push_back(std::move(message));
    }
    return messages;
}

} // namespace tau
