#pragma once
// Every exit of a supervised service and what was done about it, newest last, kept in a JSON-lines file so
// that it survives restarts of the suite.

#include <chrono>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau {

struct CrashEntry {
    std::chrono::system_clock::time_point time;
    std::string service;
    pid_t pid = 0;
    int exit_code = -1;
    int signal = 0;
    std::chrono::microseconds uptime{0};
    std::string action;
    unsigned attempt = 0;
};

class CrashHistory {
  public:
    // `file` empty: memory only. Reads what the file holds; lines that do not parse are skipped and counted.
    CrashHistory(std::filesystem::path file, std::size_t capacity);

    // Appends to memory and to the file; throws std::runtime_error when the file cannot be written
    // (the entry is kept in memory all the same).
    void record(const CrashEntry& entry);

    // Newest first; `service` empty for all; `limit` 0 for all.
    std::vector<CrashEntry> query(const std::string& service, std::size_t limit) const;

    std::size_t size() const { return entries_.size(); }
    std::size_t skippedLines() const { return skipped_lines_; }

  private:
    void compact();

    std::filesystem::path file_;
    std::size_t capacity_;
    std::deque<CrashEntry> entries_;
    std::size_t skipped_lines_ = 0;
    std::size_t lines_in_file_ = 0;
};

} // namespace tau
