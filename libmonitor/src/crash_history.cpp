#include "tau/crash_history.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unistd.h>

namespace tau {
namespace {

std::string toLine(const CrashEntry& entry) {
    nlohmann::ordered_json json = {
        {"time_usec",
         std::chrono::duration_cast<std::chrono::microseconds>(entry.time.time_since_epoch()).count()},
        {"service", entry.service},
        {"pid", entry.pid},
        {"exit_code", entry.exit_code},
        {"signal", entry.signal},
        {"uptime_usec", entry.uptime.count()},
        {"action", entry.action},
        {"attempt", entry.attempt}};
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::optional<CrashEntry> fromLine(const std::string& line) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
        return std::nullopt;
    }
    try {
        CrashEntry entry;
        entry.time = std::chrono::system_clock::time_point(
            std::chrono::microseconds(json.at("time_usec").get<int64_t>()));
        entry.service = json.at("service").get<std::string>();
        entry.pid = json.at("pid").get<pid_t>();
        entry.exit_code = json.at("exit_code").get<int>();
        entry.signal = json.at("signal").get<int>();
        entry.uptime = std::chrono::microseconds(json.at("uptime_usec").get<int64_t>());
        entry.action = json.at("action").get<std::string>();
        entry.attempt = json.at("attempt").get<unsigned>();
        return entry;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

void writeAll(int fd, const std::string& data, const std::filesystem::path& file) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(errno));
        }
        done += static_cast<std::size_t>(n);
    }
}

} // namespace

CrashHistory::CrashHistory(std::filesystem::path file, std::size_t capacity)
    : file_(std::move(file)), capacity_(capacity) {
    if (file_.empty()) {
        return;
    }
    std::ifstream in(file_);
    std::string line;
    while (std::getline(in, line)) {
        ++lines_in_file_;
        if (auto entry = fromLine(line)) {
            entries_.push_back(std::move(*entry));
            if (entries_.size() > capacity_) {
                entries_.pop_front();
            }
        } else {
            ++skipped_lines_;
        }
    }
}

void CrashHistory::record(const CrashEntry& entry) {
    entries_.push_back(entry);
    if (entries_.size() > capacity_) {
        entries_.pop_front();
    }
    if (file_.empty()) {
        return;
    }
    const int fd = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        throw std::runtime_error("cannot open " + file_.string() + ": " + std::strerror(errno));
    }
    try {
        writeAll(fd, toLine(entry), file_);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    if (++lines_in_file_ > 2 * capacity_) {
        compact();
    }
}

void CrashHistory::compact() {
    // Rewrite to a new file and rename over the old one, so a crash in between loses nothing.
    const auto temporary = file_.string() + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        throw std::runtime_error("cannot open " + temporary + ": " + std::strerror(errno));
    }
    std::string data;
    for (const auto& entry : entries_) {
        data += toLine(entry);
    }
    try {
        writeAll(fd, data, temporary);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::fsync(fd);
    ::close(fd);
    std::filesystem::rename(temporary, file_);
    lines_in_file_ = entries_.size();
}

std::vector<CrashEntry> CrashHistory::query(const std::string& service, std::size_t limit) const {
    std::vector<CrashEntry> result;
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
        if (!service.empty() && it->service != service) {
            continue;
        }
        result.push_back(*it);
        if (limit != 0 && result.size() >= limit) {
            break;
        }
    }
    return result;
}

} // namespace tau
