// A supervised service that counts, keeping its count in tau-monitor's session state through the C++
// client header: killed and restarted, it goes on from the last count it saved. It appends what it does to
// the file named by argv[1]: "resumed N" once at start (0 when nothing was saved), or "handed N" when the
// supervisor handed it its state at exec (state_handoff), then "saved N" after each acknowledged save.
// With argv[2] = P, a count of P or more found at start is poison: it writes "poisoned N" and exits 1 at
// once, as a service would crash on a state it cannot handle.

#include "tau/client/session_state.h"
#include "tau/client/state_handoff.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

std::vector<std::uint8_t> encode(std::uint64_t count) {
    std::vector<std::uint8_t> bytes(8);
    for (int i = 0; i < 8; ++i) {
        bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(count >> (8 * i));
    }
    return bytes;
}

std::uint64_t decode(const std::vector<std::uint8_t>& bytes) {
    std::uint64_t count = 0;
    for (std::size_t i = 0; i < bytes.size() && i < 8; ++i) {
        count |= static_cast<std::uint64_t>(bytes[i]) << (8 * i);
    }
    return count;
}

void append(const char* file, const std::string& line) {
    if (FILE* out = std::fopen(file, "a")) {
        std::fprintf(out, "%s\n", line.c_str());
        std::fclose(out);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s LOG-FILE [POISON]\n", argv[0]);
        return 64;
    }
    const auto handed = tau::client::takeHandedOverState();
    auto connection = tau::client::connectToSupervisor();
    tau::client::SessionState state(*connection);
    // The suite may still be starting its recovery service: try for a while.
    std::optional<tau::client::SavedState> saved;
    for (int attempt = 0; !handed; ++attempt) {
        try {
            saved = state.load();
            break;
        } catch (const sdbus::Error& e) {
            if (attempt == 200) {
                std::fprintf(stderr, "LoadState: %s: %s\n", e.getName().c_str(), e.getMessage().c_str());
                return 1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    std::uint64_t count = handed ? decode(handed->data) : saved ? decode(saved->data) : 0;
    if (argc > 2 && count >= std::stoull(argv[2])) {
        append(argv[1], "poisoned " + std::to_string(count));
        return 1;
    }
    append(argv[1], (handed ? "handed " : "resumed ") + std::to_string(count));
    for (;;) {
        ++count;
        state.save(encode(count));
        append(argv[1], "saved " + std::to_string(count));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}
