#include "suite_service.h"

#include <chrono>
#include <sdbus-c++/Error.h>
#include <thread>

namespace tau {

void requestNameWithRetry(sdbus::IConnection& connection, const std::string& name) {
    constexpr auto kGiveUpAfter = std::chrono::seconds(5);
    const auto deadline = std::chrono::steady_clock::now() + kGiveUpAfter;
    for (auto pause = std::chrono::milliseconds(20);;
         pause = std::min(pause * 2, std::chrono::milliseconds(500))) {
        try {
            connection.requestName(name);
            return;
        } catch (const sdbus::Error& e) {
            if (e.getName() != "org.freedesktop.DBus.Error.FileExists" ||
                std::chrono::steady_clock::now() + pause > deadline) {
                throw;
            }
        }
        // Startup only, before the loop runs: nothing else waits on this thread yet.
        std::this_thread::sleep_for(pause);
    }
}

} // namespace tau
