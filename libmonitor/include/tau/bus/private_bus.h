#pragma once
// A dbus-daemon of our own, for machines without a usable system or session bus (containers, CI, a bare
// shell). It lives as long as the PrivateBus object and its address is published under the runtime directory.

#include <filesystem>
#include <string>
#include <sys/types.h>

namespace tau::bus {

class PrivateBus {
  public:
    // Starts dbus-daemon listening on <directory>/bus. Members of the daemon's own user own the org.tauos
    // names; every local user may connect and call. Throws std::runtime_error on failure.
    explicit PrivateBus(std::filesystem::path directory);
    ~PrivateBus();
    PrivateBus(const PrivateBus&) = delete;
    PrivateBus& operator=(const PrivateBus&) = delete;

    const std::string& address() const { return address_; }
    pid_t pid() const { return pid_; }
    int pidfd() const { return pidfd_; }

    // Writes the address to `file` (atomically) so that clients find the bus; removed again on destruction.
    void publishAddress(const std::filesystem::path& file);

  private:
    std::filesystem::path directory_;
    std::filesystem::path published_;
    std::string address_;
    pid_t pid_ = 0;
    int pidfd_ = -1;
};

} // namespace tau::bus
