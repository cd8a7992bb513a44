#pragma once
// The receiving end of systemd's sd_notify protocol, so that a daemon written for systemd can report
// readiness, status and watchdog pings to tau-monitor unchanged: the supervisor binds one NotifySocket per
// daemon and passes NOTIFY_SOCKET=<path> to it.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau {

// The largest datagram accepted; anything longer is dropped whole rather than acted on in part.
inline constexpr std::size_t kNotifyDatagramMax = 4096;

struct NotifyMessage {
    pid_t sender_pid = 0; // from SCM_CREDENTIALS, never from the payload
    uid_t sender_uid = 0;
    bool ready = false;                               // READY=1
    bool reloading = false;                           // RELOADING=1
    bool stopping = false;                            // STOPPING=1
    bool watchdog_ping = false;                       // WATCHDOG=1
    bool watchdog_trigger = false;                    // WATCHDOG=trigger
    std::optional<std::string> status;                // STATUS=... (may be empty: the daemon cleared it)
    std::optional<std::uint64_t> watchdog_usec;       // WATCHDOG_USEC=...
    std::optional<pid_t> main_pid;                    // MAINPID=... (always > 0)
    std::optional<std::uint64_t> extend_timeout_usec; // EXTEND_TIMEOUT_USEC=...
    std::optional<int> errno_value;                   // ERRNO=... (0..4095)
    std::vector<std::string>
        unknown; // other assignments, and repeats of a key already seen, kept for logging
    std::vector<std::string> malformed; // lines that are not KEY=VALUE or whose value is invalid for the key
};

// Parses one datagram's payload: newline-separated KEY=VALUE lines (a trailing newline optional, empty lines
// ignored). As in systemd, the first assignment of a key in a datagram is the one that counts. Numbers are
// plain decimal digits; a value out of range for its field makes the line malformed.
NotifyMessage parseNotifyPayload(std::string_view payload);

// A bound AF_UNIX SOCK_DGRAM socket with SO_PASSCRED, so that every datagram carries the sender's pid and uid
// as vouched for by the kernel.
class NotifySocket {
  public:
    // The path must be absolute (sd_notify refuses anything else) and fit in sun_path. A stale socket left
    // at the path is removed first; any other kind of file there is an error rather than something to
    // delete. The socket file is made 0666 so that services that dropped privileges can still send.
    // Throws std::system_error whose message names the path.
    explicit NotifySocket(std::filesystem::path path);
    // Closes the socket and removes its file, unless the file has since been replaced by someone else's.
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    int fd() const { return fd_; } // non-blocking, close-on-exec: for a poll loop
    const std::filesystem::path& path() const { return path_; }

    // Reads every pending datagram without blocking. Dropped and counted: datagrams without credentials (or
    // from a sender invisible in our pid namespace) and datagrams over kNotifyDatagramMax bytes. File
    // descriptors passed along (FDSTORE) are always closed, never leaked. Throws std::system_error if the
    // socket itself fails.
    std::vector<NotifyMessage> receiveAll();
    std::uint64_t droppedDatagrams() const { return dropped_; }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    dev_t bound_device_ = 0;
    ino_t bound_inode_ = 0;
    std::uint64_t dropped_ = 0;
};

} // namespace tau
