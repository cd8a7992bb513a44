#include "table.h"

#include <algorithm>
#include <ctime>
#include <fmt/format.h>

namespace tau::cli {
namespace {

// Quantities ("42", "1.5 GiB", "12.3%", "-1") line up on the right; "-" stands for no value.
bool looksNumeric(const std::string& cell) {
    const std::size_t first = cell.size() > 1 && cell[0] == '-' ? 1 : 0;
    return cell == "-" || (!cell.empty() && std::isdigit(static_cast<unsigned char>(cell[first])));
}

} // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add(std::vector<std::string> row) {
    row.resize(headers_.size());
    rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out) const {
    std::vector<std::size_t> widths(headers_.size());
    std::vector<bool> numeric(headers_.size(), true);
    for (std::size_t c = 0; c < headers_.size(); ++c) {
        widths[c] = headers_[c].size();
        for (const auto& row : rows_) {
            widths[c] = std::max(widths[c], row[c].size());
            numeric[c] = numeric[c] && (row[c].empty() || looksNumeric(row[c]));
        }
    }
    auto line = [&](const std::vector<std::string>& cells) {
        std::string text;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            const bool last = c + 1 == cells.size();
            if (numeric[c] && !rows_.empty()) {
                text += fmt::format("{:>{}}", cells[c], widths[c]);
            } else {
                text += last ? cells[c] : fmt::format("{:<{}}", cells[c], widths[c]);
            }
            if (!last) {
                text += "  ";
            }
        }
        while (!text.empty() && text.back() == ' ') {
            text.pop_back();
        }
        out << text << '\n';
    };
    line(headers_);
    for (const auto& row : rows_) {
        line(row);
    }
}

std::string formatBytes(unsigned long long bytes) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 5) {
        value /= 1024.0;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

std::string formatDuration(unsigned long long micros) {
    const unsigned long long seconds = micros / 1'000'000;
    if (seconds == 0) {
        return fmt::format("{}ms", micros / 1000);
    }
    const unsigned long long days = seconds / 86400, hours = seconds / 3600 % 24, minutes = seconds / 60 % 60,
                             secs = seconds % 60;
    if (days > 0) {
        return fmt::format("{}d {}h", days, hours);
    }
    if (hours > 0) {
        return fmt::format("{}h {}m", hours, minutes);
    }
    if (minutes > 0) {
        return fmt::format("{}m {}s", minutes, secs);
    }
    return fmt::format("{}s", secs);
}

std::string formatTime(unsigned long long micros_since_epoch) {
    if (micros_since_epoch == 0) {
        return "-";
    }
    const std::time_t seconds = static_cast<std::time_t>(micros_since_epoch / 1'000'000);
    std::tm local{};
    localtime_r(&seconds, &local);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &local);
    return buffer;
}

} // namespace tau::cli
