#include "tau/log_writer.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <unistd.h>

namespace tau {

LogWriter::LogWriter(std::filesystem::path file, LogLevel min_level, std::size_t recent_capacity)
    : file_(std::move(file)), min_level_(min_level), recent_capacity_(recent_capacity) {
    std::error_code ec;
    if (file_.has_parent_path()) {
        std::filesystem::create_directories(file_.parent_path(), ec);
    }
    fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) {
        throw std::runtime_error("cannot open log file " + file_.string() + ": " + std::strerror(errno));
    }
}

LogWriter::~LogWriter() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void LogWriter::append(const std::vector<LogRecord>& records) {
    std::string data;
    std::vector<const LogRecord*> written;
    for (const auto& record : records) {
        if (record.level < min_level_) {
            ++filtered_;
            continue;
        }
        data += toJsonLine(record);
        data += '\n';
        written.push_back(&record);
    }
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            ++write_errors_;
            throw std::runtime_error("cannot write log file " + file_.string() + ": " + std::strerror(errno));
        }
        done += static_cast<std::size_t>(n);
    }
    bytes_written_ += data.size();
    for (const auto* record : written) {
        ++records_written_;
        ++per_level_[std::string(toString(record->level))];
        ++per_service_[record->service];
        recent_.push_back(*record);
        if (recent_.size() > recent_capacity_) {
            recent_.pop_front();
        }
    }
}

std::vector<LogRecord> LogWriter::recent(std::size_t count) const {
    const std::size_t first = recent_.size() > count ? recent_.size() - count : 0;
    return {recent_.begin() + static_cast<std::ptrdiff_t>(first), recent_.end()};
}

std::map<std::string, std::uint64_t> LogWriter::stats() const {
    std::map<std::string, std::uint64_t> result{{"records_total", records_written_},
                                                {"bytes_written", bytes_written_},
                                                {"filtered", filtered_},
                                                {"write_errors", write_errors_}};
    for (const auto& [level, count] : per_level_) {
        result["records_" + level] = count;
    }
    for (const auto& [service, count] : per_service_) {
        result["service_" + service] = count;
    }
    return result;
}

} // namespace tau
