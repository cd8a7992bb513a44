#pragma once
// Appends log records as JSON lines to a file and keeps what GetRecent and GetStats report.

#include "tau/log_record.h"

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tau {

class LogWriter {
  public:
    // Creates the file's directory if needed. Throws std::runtime_error when the file cannot be opened.
    LogWriter(std::filesystem::path file, LogLevel min_level, std::size_t recent_capacity);
    ~LogWriter();
    LogWriter(const LogWriter&) = delete;
    LogWriter& operator=(const LogWriter&) = delete;

    // Writes the records that pass the level filter in one write; throws std::runtime_error on a write
    // error (counted in write_errors).
    void append(const std::vector<LogRecord>& records);

    // Oldest first, at most `count`.
    std::vector<LogRecord> recent(std::size_t count) const;
    std::map<std::string, std::uint64_t> stats() const;
    std::uint64_t recordsWritten() const { return records_written_; }
    const std::filesystem::path& file() const { return file_; }

  private:
    std::filesystem::path file_;
    LogLevel min_level_;
    std::size_t recent_capacity_;
    int fd_ = -1;
    std::deque<LogRecord> recent_;
    std::uint64_t records_written_ = 0;
    std::uint64_t bytes_written_ = 0;
    std::uint64_t filtered_ = 0;
    std::uint64_t write_errors_ = 0;
    std::map<std::string, std::uint64_t> per_level_;
    std::map<std::string, std::uint64_t> per_service_;
};

} // namespace tau
