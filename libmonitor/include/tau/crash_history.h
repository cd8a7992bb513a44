#pragma once
// Every exit of a supervised service, the decision taken about it and how that decision turned out, in an
// SQLite database so that the history survives restarts of the suite and power cuts.

#include "tau/set_aside_database.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <vector>

namespace tau {

// What became of the decision taken about an exit.
inline constexpr const char* kOutcomePending = "pending"; // a restart is on its way
inline constexpr const char* kOutcomeRunning = "running"; // the service ran again
inline constexpr const char* kOutcomeFailed = "failed";   // the restart failed: the next exit says why
inline constexpr const char* kOutcomeNone = "none";       // no restart was meant to follow

struct CrashEntry {
    std::chrono::system_clock::time_point time;
    std::string service;
    pid_t pid = 0;
    int exit_code = -1;
    int signal = 0;
    std::string failure_class; // "" for an exit that was no failure
    std::chrono::microseconds uptime{0};
    unsigned attempt = 0;
    std::string action; // restart, restart_safe_mode, give_up, notify_and_stop, none, stopped
    std::chrono::microseconds delay{0};
    bool escalate = false;
    std::string reason;
    // Kept by the store: set on insert from the action, then by later reports.
    std::string outcome;
    std::chrono::microseconds time_to_running{0}; // 0 unless the outcome is running
};

struct ServiceCrashSummary {
    std::string service;
    unsigned failures = 0;                              // exits whose action is neither none nor stopped
    unsigned recovered = 0;                             // failures whose outcome is running
    double success_rate = 0.0;                          // recovered / failures
    std::chrono::microseconds mean_time_to_recovery{0}; // over the recovered ones; 0 when none
    std::chrono::system_clock::time_point last_failure;
};

// Every failure of the store names the database file and carries SQLite's message.
class CrashHistoryError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class CrashHistory {
  public:
    static constexpr std::size_t kDefaultCapacity = 100000;

    // Opens or creates the database `file` (WAL, synchronous FULL). A file that is not a database, or a
    // corrupt one, is renamed to <file>.corrupt-<unix time> and an empty history starts; setAside() tells.
    // Throws CrashHistoryError when the file cannot be opened or created, or was written by a newer schema.
    CrashHistory(std::filesystem::path file, std::size_t capacity = kDefaultCapacity);
    ~CrashHistory();
    CrashHistory(const CrashHistory&) = delete;
    CrashHistory& operator=(const CrashHistory&) = delete;

    // Stores the exit with outcome "pending" for restart and restart_safe_mode, "none" otherwise; an exit of
    // the same service still pending becomes "failed". Drops the oldest exits beyond the capacity.
    // The entry's outcome and time_to_running are ignored. An exit already recorded (same service, pid and
    // time: a report delivered twice because its first delivery timed out) is not recorded again; returns
    // false then. Throws CrashHistoryError.
    bool recordExit(const CrashEntry& entry);

    // Whether the exit of `service`'s process `pid` at `time` is recorded already. Throws CrashHistoryError.
    bool contains(const std::string& service, std::chrono::system_clock::time_point time, int pid) const;

    // Closes the newest pending exit of `service`: outcome "running", time to running = time - its time.
    // Returns false when nothing was pending (a report delivered twice finds nothing the second time,
    // since reports arrive in order). Throws CrashHistoryError.
    bool recordRecovered(const std::string& service, std::chrono::system_clock::time_point time);

    // Newest first. `service` and `failure_class` empty for all; `since` the epoch for all; `limit` 0 for
    // all.
    std::vector<CrashEntry> query(const std::string& service, const std::string& failure_class,
                                  std::chrono::system_clock::time_point since, std::size_t limit) const;

    // One entry per service with at least one failure, sorted by service name.
    std::vector<ServiceCrashSummary> summary() const;

    std::size_t size() const { return size_; }
    std::size_t capacity() const { return capacity_; }
    const std::filesystem::path& file() const { return file_; }
    const std::optional<SetAsideDatabase>& setAside() const { return set_aside_; }

  private:
    class Database;

    void open();
    void pruneToCapacity();

    std::filesystem::path file_;
    std::size_t capacity_;
    std::size_t size_ = 0;
    std::optional<SetAsideDatabase> set_aside_;
    std::unique_ptr<Database> db_;
};

} // namespace tau
