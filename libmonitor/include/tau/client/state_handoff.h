#pragma once
// The session state a service with `state_handoff = true` receives at exec, without a D-Bus round trip, in
// the manner of systemd's file descriptor store: descriptor TAU_STATE_FD (3) is open on a file holding the
// newest good version of its state, in this format:
//
//     tau-state 1 VERSION SAVED_AT_USEC SIZE\n
//     SIZE bytes of state
//
// A service that finds no TAU_STATE_FD has no saved state (or asks LoadState). Header-only, standard
// library and POSIX only.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace tau::client {

inline constexpr const char* kStateHandoffMagic = "tau-state 1";

struct HandedOverState {
    std::uint64_t version = 0;
    std::uint64_t saved_at_usec = 0;
    std::vector<std::uint8_t> data;
};

// The header line for a version of `size` bytes.
inline std::string stateHandoffHeader(std::uint64_t version, std::uint64_t saved_at_usec,
                                      std::uint64_t size) {
    return std::string(kStateHandoffMagic) + " " + std::to_string(version) + " " +
           std::to_string(saved_at_usec) + " " + std::to_string(size) + "\n";
}

// Reads a handed-over state from `fd` (from its start, whatever its offset); nullopt when the file is not
// one, or is cut short.
inline std::optional<HandedOverState> readHandedOverState(int fd) {
    std::string content;
    char buffer[65536];
    for (off_t offset = 0;;) {
        const ssize_t got = ::pread(fd, buffer, sizeof buffer, offset);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            if (got < 0) {
                return std::nullopt;
            }
            break;
        }
        content.append(buffer, static_cast<std::size_t>(got));
        offset += got;
    }
    const auto newline = content.find('\n');
    if (newline == std::string::npos) {
        return std::nullopt;
    }
    HandedOverState state;
    unsigned long long version = 0, saved_at = 0, size = 0;
    char magic[16] = {};
    int format = 0;
    if (std::sscanf(content.substr(0, newline).c_str(), "%9s %d %llu %llu %llu", magic, &format, &version,
                    &saved_at, &size) != 5 ||
        std::string(magic) + " " + std::to_string(format) != kStateHandoffMagic ||
        content.size() - newline - 1 != size) {
        return std::nullopt;
    }
    state.version = version;
    state.saved_at_usec = saved_at;
    state.data.assign(content.begin() + static_cast<std::ptrdiff_t>(newline) + 1, content.end());
    return state;
}

// The state this process was started with: TAU_STATE_FD, read and closed. nullopt when there is none.
inline std::optional<HandedOverState> takeHandedOverState() {
    const char* fd_text = std::getenv("TAU_STATE_FD");
    if (fd_text == nullptr) {
        return std::nullopt;
    }
    const int fd = std::atoi(fd_text);
    ::unsetenv("TAU_STATE_FD");
    if (fd < 3) {
        return std::nullopt;
    }
    auto state = readHandedOverState(fd);
    ::close(fd);
    return state;
}

} // namespace tau::client
