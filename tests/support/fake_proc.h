#pragma once
// A fake /proc for the samplers: one <pid>/stat per process, written on demand.

#include "temp_dir.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <sys/types.h>

namespace tau::test {

// One line of /proc/<pid>/stat; cutime and cstime (the ticks of reaped children) are set too, and must
// not count.
inline std::string statLine(pid_t pid, const std::string& name, pid_t ppid, std::uint64_t utime,
                            std::uint64_t stime, std::uint64_t start, std::uint64_t rss_pages) {
    return std::to_string(pid) + " (" + name + ") S " + std::to_string(ppid) + " " + std::to_string(pid) +
           " " + std::to_string(pid) + " 0 -1 4194560 500 0 0 0 " + std::to_string(utime) + " " +
           std::to_string(stime) + " 777 888 20 0 1 0 " + std::to_string(start) + " 104857600 " +
           std::to_string(rss_pages) +
           " 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
}

class FakeProc {
  public:
    FakeProc() { std::filesystem::create_directories(root()); }
    std::filesystem::path root() const { return dir_.path() / "proc"; }

    void add(pid_t pid, const std::string& name, pid_t ppid, std::uint64_t utime, std::uint64_t stime,
             std::uint64_t start, std::uint64_t rss_pages) {
        std::filesystem::create_directories(root() / std::to_string(pid));
        writeFile(root() / std::to_string(pid) / "stat",
                  statLine(pid, name, ppid, utime, stime, start, rss_pages));
    }
    void remove(pid_t pid) { std::filesystem::remove_all(root() / std::to_string(pid)); }

  private:
    TempDir dir_;
};

} // namespace tau::test
