// The client side of state_store_bench: runs as a service supervised by tau-monitor and times SaveState and
// LoadState through the C++ client header, for each size given. Writes one line per round trip to the
// result file, "SIZE SAVE_NS LOAD_NS", then "done", and waits to be stopped.
//
// usage: state_client RESULT-FILE ROUNDS WARMUP SIZE...

#include "tau/client/session_state.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

long long nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s RESULT-FILE ROUNDS WARMUP SIZE...\n", argv[0]);
        return 64;
    }
    const int rounds = std::atoi(argv[2]);
    const int warmup = std::atoi(argv[3]);
    auto connection = tau::client::connectToSupervisor();
    tau::client::SessionState state(*connection, std::chrono::seconds(30));
    // The recovery service may still be starting.
    for (int attempt = 0;; ++attempt) {
        try {
            state.load();
            break;
        } catch (const sdbus::Error& e) {
            if (attempt == 400) {
                std::fprintf(stderr, "state_client: %s\n", e.getMessage().c_str());
                return 1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
    }
    const std::string temporary = std::string(argv[1]) + ".partial";
    FILE* out = std::fopen(temporary.c_str(), "w");
    if (out == nullptr) {
        return 1;
    }
    for (int s = 4; s < argc; ++s) {
        const auto size = static_cast<std::size_t>(std::atoll(argv[s]));
        std::vector<std::uint8_t> data(size);
        for (int round = -warmup; round < rounds; ++round) {
            // Every version differs, as real state would.
            for (std::size_t i = 0; i < data.size(); i += 64) {
                data[i] = static_cast<std::uint8_t>(round + static_cast<int>(i));
            }
            const long long before_save = nowNs();
            state.save(data);
            const long long before_load = nowNs();
            const auto loaded = state.load();
            const long long after = nowNs();
            if (!loaded || loaded->data != data) {
                std::fprintf(stderr, "state_client: the state loaded is not the state saved\n");
                return 1;
            }
            if (round >= 0) {
                std::fprintf(out, "%zu %lld %lld\n", size, before_load - before_save, after - before_load);
            }
        }
    }
    std::fprintf(out, "done\n");
    std::fclose(out);
    std::rename(temporary.c_str(), argv[1]);
    for (;;) {
        std::this_thread::sleep_for(std::chrono::hours(1));
    }
}
