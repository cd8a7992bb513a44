#include "tau/crash_history.h"

#include "sqlite_store.h"
#include "tau/recovery_policy.h"

#include <cmath>
#include <exception>
#include <map>
#include <utility>

namespace tau {
namespace {

// Version 1: the table `exits`. A database from a newer version is refused rather than misread.
constexpr int kSchemaVersion = 1;

constexpr const char* kCreateSchema = R"sql(
CREATE TABLE IF NOT EXISTS exits (
    id INTEGER PRIMARY KEY,
    time_usec INTEGER NOT NULL,
    service TEXT NOT NULL,
    pid INTEGER NOT NULL,
    exit_code INTEGER NOT NULL,
    signal INTEGER NOT NULL,
    failure_class TEXT NOT NULL,
    uptime_usec INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    action TEXT NOT NULL,
    delay_usec INTEGER NOT NULL,
    escalate INTEGER NOT NULL,
    reason TEXT NOT NULL,
    outcome TEXT NOT NULL,
    time_to_running_usec INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS exits_by_time ON exits (time_usec);
CREATE INDEX IF NOT EXISTS exits_by_service ON exits (service, time_usec);
-- Every report looks for the pending exit of its service: that must not scan the service's whole history.
CREATE INDEX IF NOT EXISTS exits_pending ON exits (service) WHERE outcome = 'pending';
)sql";

constexpr const char* kColumns =
    "time_usec, service, pid, exit_code, signal, failure_class, uptime_usec, "
    "attempt, action, delay_usec, escalate, reason, outcome, time_to_running_usec";

int64_t toMicros(std::chrono::system_clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

std::chrono::system_clock::time_point fromMicros(int64_t micros) {
    return std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
}

bool restartFollows(const std::string& action) {
    const auto known = recoveryActionFromString(action);
    return known && bringsBack(*known);
}

sqlite::ErrorFactory crashHistoryErrors() {
    return
        [](const std::string& message, int) { return std::make_exception_ptr(CrashHistoryError(message)); };
}

} // namespace

class CrashHistory::Database {
  public:
    using Statement = sqlite::Statement;

    explicit Database(const std::filesystem::path& file)
        : db_(file, sqlite::Schema{kSchemaVersion, kCreateSchema}, crashHistoryErrors(),
              std::chrono::system_clock::now()),
          fail_pending_(db_,
                        "UPDATE exits SET outcome = 'failed' WHERE service = ?1 AND outcome = 'pending'"),
          insert_(db_, std::string("INSERT INTO exits (") + kColumns +
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0)"),
          recover_(db_, "UPDATE exits SET outcome = 'running', time_to_running_usec = MAX(0, ?2 - time_usec) "
                        "WHERE id = (SELECT id FROM exits WHERE service = ?1 AND outcome = 'pending' "
                        "ORDER BY id DESC LIMIT 1)"),
          count_same_(db_, "SELECT COUNT(*) FROM exits WHERE service = ?1 AND time_usec = ?2 AND pid = ?3"),
          prune_(db_, "DELETE FROM exits WHERE id IN (SELECT id FROM exits ORDER BY id LIMIT ?1)"),
          count_(db_, "SELECT COUNT(*) FROM exits"),
          summary_(db_,
                   "SELECT service, COUNT(*), SUM(outcome = 'running'), "
                   "AVG(CASE WHEN outcome = 'running' THEN time_to_running_usec END), MAX(time_usec) "
                   "FROM exits WHERE action NOT IN ('none', 'stopped') GROUP BY service ORDER BY service") {}

    // The query for one combination of filters, prepared the first time it is needed.
    Statement& query(bool by_service, bool by_class) {
        const int key = (by_service ? 1 : 0) | (by_class ? 2 : 0);
        if (auto found = queries_.find(key); found != queries_.end()) {
            return *found->second;
        }
        std::string sql = std::string("SELECT ") + kColumns + " FROM exits WHERE time_usec >= ?3";
        if (by_service) {
            sql += " AND service = ?1";
        }
        if (by_class) {
            sql += " AND failure_class = ?2";
        }
        sql += " ORDER BY time_usec DESC, id DESC LIMIT ?4";
        return *queries_.emplace(key, std::make_unique<Statement>(db_, sql)).first->second;
    }

    // Declared before the statements, so that it is closed after they are finalized.
    sqlite::Database db_;
    Statement fail_pending_;
    Statement insert_;
    Statement recover_;
    Statement count_same_;
    Statement prune_;
    Statement count_;
    Statement summary_;
    std::map<int, std::unique_ptr<Statement>> queries_;
};

CrashHistory::CrashHistory(std::filesystem::path file, std::size_t capacity)
    : file_(std::move(file)), capacity_(capacity == 0 ? 1 : capacity) {
    open();
}

CrashHistory::~CrashHistory() = default;

void CrashHistory::open() {
    db_ = std::make_unique<Database>(file_);
    set_aside_ = db_->db_.setAside();
    {
        sqlite::Statement::Reading reading(db_->count_);
        db_->count_.step();
        size_ = static_cast<std::size_t>(db_->count_.integer(0));
    }
    if (size_ > capacity_) {
        // A smaller capacity than the one the file was written with.
        sqlite::Transaction transaction(db_->db_);
        pruneToCapacity();
        transaction.commit();
    }
}

void CrashHistory::pruneToCapacity() {
    if (size_ <= capacity_) {
        return;
    }
    const auto removed = db_->prune_.bind(1, static_cast<int64_t>(size_ - capacity_)).run();
    size_ -= static_cast<std::size_t>(removed);
}

bool CrashHistory::contains(const std::string& service, std::chrono::system_clock::time_point time,
                            int pid) const {
    sqlite::Statement::Reading reading(db_->count_same_);
    db_->count_same_.bind(1, service).bind(2, toMicros(time)).bind(3, pid).step();
    return db_->count_same_.integer(0) > 0;
}

bool CrashHistory::recordExit(const CrashEntry& entry) {
    const std::size_t size_before = size_;
    try {
        sqlite::Transaction transaction(db_->db_);
        if (contains(entry.service, entry.time, entry.pid)) {
            return false;
        }
        db_->fail_pending_.bind(1, entry.service).run();
        db_->insert_.bind(1, toMicros(entry.time))
            .bind(2, entry.service)
            .bind(3, entry.pid)
            .bind(4, entry.exit_code)
            .bind(5, entry.signal)
            .bind(6, entry.failure_class)
            .bind(7, entry.uptime.count())
            .bind(8, entry.attempt)
            .bind(9, entry.action)
            .bind(10, entry.delay.count())
            .bind(11, entry.escalate ? 1 : 0)
            .bind(12, entry.reason)
            .bind(13, std::string(restartFollows(entry.action) ? kOutcomePending : kOutcomeNone))
            .run();
        ++size_;
        pruneToCapacity();
        transaction.commit();
        return true;
    } catch (...) {
        size_ = size_before;
        throw;
    }
}

bool CrashHistory::recordRecovered(const std::string& service, std::chrono::system_clock::time_point time) {
    sqlite::Transaction transaction(db_->db_);
    const int changed = db_->recover_.bind(1, service).bind(2, toMicros(time)).run();
    transaction.commit();
    return changed > 0;
}

std::vector<CrashEntry> CrashHistory::query(const std::string& service, const std::string& failure_class,
                                            std::chrono::system_clock::time_point since,
                                            std::size_t limit) const {
    auto& statement = db_->query(!service.empty(), !failure_class.empty());
    sqlite::Statement::Reading reading(statement);
    if (!service.empty()) {
        statement.bind(1, service);
    }
    if (!failure_class.empty()) {
        statement.bind(2, failure_class);
    }
    // A negative LIMIT means no limit to SQLite.
    statement.bind(3, toMicros(since)).bind(4, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
    std::vector<CrashEntry> entries;
    while (statement.step()) {
        CrashEntry entry;
        entry.time = fromMicros(statement.integer(0));
        entry.service = statement.text(1);
        entry.pid = static_cast<pid_t>(statement.integer(2));
        entry.exit_code = static_cast<int>(statement.integer(3));
        entry.signal = static_cast<int>(statement.integer(4));
        entry.failure_class = statement.text(5);
        entry.uptime = std::chrono::microseconds(statement.integer(6));
        entry.attempt = static_cast<unsigned>(statement.integer(7));
        entry.action = statement.text(8);
        entry.delay = std::chrono::microseconds(statement.integer(9));
        entry.escalate = statement.integer(10) != 0;
        entry.reason = statement.text(11);
        entry.outcome = statement.text(12);
        entry.time_to_running = std::chrono::microseconds(statement.integer(13));
        entries.push_back(std::move(entry));
    }
    return entries;
}

std::vector<ServiceCrashSummary> CrashHistory::summary() const {
    auto& statement = db_->summary_;
    sqlite::Statement::Reading reading(statement);
    std::vector<ServiceCrashSummary> summaries;
    while (statement.step()) {
        ServiceCrashSummary summary;
        summary.service = statement.text(0);
        summary.failures = static_cast<unsigned>(statement.integer(1));
        summary.recovered = static_cast<unsigned>(statement.integer(2));
        summary.success_rate =
            summary.failures == 0 ? 0.0 : static_cast<double>(summary.recovered) / summary.failures;
        // AVG over no recovered exit is NULL, which reads as 0.
        summary.mean_time_to_recovery = std::chrono::microseconds(std::llround(statement.real(3)));
        summary.last_failure = fromMicros(statement.integer(4));
        summaries.push_back(std::move(summary));
    }
    return summaries;
}

} // namespace tau
