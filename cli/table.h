#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace tau::cli {

// A plain text table: columns as wide as their widest cell, numbers aligned right.
class Table {
  public:
    explicit Table(std::vector<std::string> headers);
    void add(std::vector<std::string> row);
    void print(std::ostream& out) const;
    bool empty() const { return rows_.empty(); }

  private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
};

std::string formatBytes(unsigned long long bytes);             // "1.5 GiB"
std::string formatDuration(unsigned long long micros);         // "3d 4h", "5m 12s", "800ms"
std::string formatTime(unsigned long long micros_since_epoch); // local "2026-11-23 15:24:39"

} // namespace tau::cli
