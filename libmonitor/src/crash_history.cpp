#include "tau/crash_history.h"

#include "tau/recovery_policy.h"

#include <cerrno>
#include <cmath>
#include <map>
#include <sqlite3.h>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace tau {
namespace {

// Version 1: the table `exits`. A database from a newer version is refused rather than misread.
constexpr int kSchemaVersion = 1;

// Another reader (an administrator's sqlite3 shell) may hold a lock for a moment.
constexpr int kBusyTimeoutMs = 2000;

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

// Carries SQLite's result code, so that opening can tell a corrupt file from other failures.
class SqliteFailure : public CrashHistoryError {
  public:
    SqliteFailure(const std::string& message, int code) : CrashHistoryError(message), code_(code) {}
    // A file SQLite cannot read as a database at all, or whose pages do not hold together.
    bool meansCorrupt() const {
        const int primary = code_ & 0xff;
        return primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT;
    }

  private:
    int code_;
};

// Why a database file cannot be created, when the directory it should go to says so; "" otherwise.
std::string whyNotCreatable(const std::filesystem::path& file) {
    std::error_code error;
    if (std::filesystem::exists(file, error)) {
        return {};
    }
    const auto directory = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    const auto status = std::filesystem::status(directory, error);
    if (!std::filesystem::exists(status)) {
        return directory.string() + " does not exist";
    }
    if (!std::filesystem::is_directory(status)) {
        return directory.string() + " is not a directory";
    }
    if (::access(directory.c_str(), W_OK | X_OK) != 0) {
        return "cannot create files in " + directory.string() + ": " + std::system_category().message(errno);
    }
    return {};
}

[[noreturn]] void fail(const std::filesystem::path& file, sqlite3* db, const std::string& what, int code) {
    std::string message =
        file.string() + ": " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
    if ((code & 0xff) == SQLITE_CANTOPEN) {
        // SQLite's message does not say why. Its system error does not either when it comes from the
        // read-only open SQLite retries with after a failed read-write one; the directory does.
        std::string why = whyNotCreatable(file);
        const int system_error = db != nullptr ? sqlite3_system_errno(db) : 0;
        if (why.empty() && system_error != 0) {
            why = std::system_category().message(system_error);
        }
        if (!why.empty()) {
            message += " (" + why + ")";
        }
    }
    throw SqliteFailure(message, code);
}

// Owns a connection; closes it after every statement made on it is gone.
struct Connection {
    sqlite3* handle = nullptr;
    Connection() = default;
    explicit Connection(sqlite3* db) : handle(db) {}
    Connection(Connection&& other) noexcept : handle(std::exchange(other.handle, nullptr)) {}
    Connection& operator=(Connection&& other) noexcept {
        if (this != &other) {
            sqlite3_close_v2(handle);
            handle = std::exchange(other.handle, nullptr);
        }
        return *this;
    }
    ~Connection() { sqlite3_close_v2(handle); }
};

void exec(const std::filesystem::path& file, sqlite3* db, const char* sql, const std::string& what) {
    const int result = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (result != SQLITE_OK) {
        fail(file, db, what, result);
    }
}

// The first column of the first row of a statement such as a PRAGMA.
std::string firstValue(const std::filesystem::path& file, sqlite3* db, const char* sql,
                       const std::string& what) {
    sqlite3_stmt* statement = nullptr;
    int result = sqlite3_prepare_v2(db, sql, -1, &statement, nullptr);
    if (result != SQLITE_OK) {
        fail(file, db, what, result);
    }
    result = sqlite3_step(statement);
    std::string value;
    if (result == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(statement, 0);
        value = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    }
    sqlite3_finalize(statement);
    if (result != SQLITE_ROW && result != SQLITE_DONE) {
        fail(file, db, what, result);
    }
    return value;
}

// Opens the file and makes sure SQLite can read it: a file that is something else fails here with
// SQLITE_NOTADB, a damaged one with SQLITE_CORRUPT or a failed quick check.
Connection openAndCheck(const std::filesystem::path& file) {
    Connection connection;
    const int result =
        sqlite3_open_v2(file.c_str(), &connection.handle,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (result != SQLITE_OK) {
        fail(file, connection.handle, "cannot open", result);
    }
    sqlite3* db = connection.handle;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    if (const auto check = firstValue(file, db, "PRAGMA quick_check", "cannot read"); check != "ok") {
        throw SqliteFailure(file.string() + ": the database is corrupt: " + check, SQLITE_CORRUPT);
    }
    if (const auto mode = firstValue(file, db, "PRAGMA journal_mode = WAL", "cannot use WAL");
        mode != "wal") {
        throw CrashHistoryError(file.string() + ": cannot use WAL: the journal mode stays " + mode);
    }
    exec(file, db, "PRAGMA synchronous = FULL", "cannot set synchronous FULL");
    return connection;
}

void createOrCheckSchema(const std::filesystem::path& file, sqlite3* db) {
    const int version =
        std::stoi(firstValue(file, db, "PRAGMA user_version", "cannot read the schema version"));
    if (version == kSchemaVersion) {
        return;
    }
    if (version > kSchemaVersion) {
        throw CrashHistoryError(file.string() + ": written with schema version " + std::to_string(version) +
                                ", newer than this program's " + std::to_string(kSchemaVersion));
    }
    exec(file, db, "BEGIN IMMEDIATE", "cannot create the schema");
    try {
        exec(file, db, kCreateSchema, "cannot create the schema");
        exec(file, db, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
             "cannot create the schema");
        exec(file, db, "COMMIT", "cannot create the schema");
    } catch (...) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

std::filesystem::path withSuffix(const std::filesystem::path& file, const std::string& suffix) {
    return file.string() + suffix;
}

// Moves the database and its write-ahead log out of the way, under a name not taken yet.
std::filesystem::path setAsideFiles(const std::filesystem::path& file) {
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    std::string suffix = ".corrupt-" + std::to_string(now);
    for (int extra = 1; std::filesystem::exists(withSuffix(file, suffix)); ++extra) {
        suffix = ".corrupt-" + std::to_string(now) + "." + std::to_string(extra);
    }
    const auto moved_to = withSuffix(file, suffix);
    std::error_code error;
    std::filesystem::rename(file, moved_to, error);
    if (error) {
        throw CrashHistoryError(file.string() + ": cannot move the corrupt database aside to " +
                                moved_to.string() + ": " + error.message());
    }
    // The log belongs to the damaged file and goes with it; the shared-memory index is rebuilt from a log.
    if (std::filesystem::exists(withSuffix(file, "-wal"), error)) {
        std::filesystem::rename(withSuffix(file, "-wal"), withSuffix(moved_to, "-wal"), error);
    }
    std::filesystem::remove(withSuffix(file, "-shm"), error);
    return moved_to;
}

} // namespace

class CrashHistory::Database {
  public:
    class Statement {
      public:
        Statement(Database& db, const std::string& sql) : db_(db) {
            const int result =
                sqlite3_prepare_v3(db.connection_.handle, sql.c_str(), static_cast<int>(sql.size()),
                                   SQLITE_PREPARE_PERSISTENT, &statement_, nullptr);
            if (result != SQLITE_OK) {
                db.fail("cannot prepare a statement", result);
            }
        }
        ~Statement() { sqlite3_finalize(statement_); }
        Statement(const Statement&) = delete;
        Statement& operator=(const Statement&) = delete;

        Statement& bind(int index, int64_t value) {
            check(sqlite3_bind_int64(statement_, index, value));
            return *this;
        }
        Statement& bind(int index, const std::string& value) {
            check(sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()),
                                    SQLITE_TRANSIENT));
            return *this;
        }
        // True while there is a row to read; once done, the statement is ready to run again.
        bool step() {
            const int result = sqlite3_step(statement_);
            if (result == SQLITE_ROW) {
                return true;
            }
            done();
            if (result != SQLITE_DONE) {
                db_.fail("cannot run a statement", result);
            }
            return false;
        }
        // Runs a statement that returns no rows; the number of rows it changed.
        int run() {
            while (step()) {
            }
            return sqlite3_changes(db_.connection_.handle);
        }
        // Makes the statement ready to run again, also when a query stops before its last row.
        void done() {
            sqlite3_reset(statement_);
            sqlite3_clear_bindings(statement_);
        }
        int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
        double real(int column) const { return sqlite3_column_double(statement_, column); }
        std::string text(int column) const {
            const auto* data = sqlite3_column_text(statement_, column);
            if (data == nullptr) {
                return {};
            }
            return std::string(reinterpret_cast<const char*>(data),
                               static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
        }

        // Makes the statement ready again however the reading of its rows ends, by an exception included.
        class Reading {
          public:
            explicit Reading(Statement& statement) : statement_(statement) {}
            ~Reading() { statement_.done(); }
            Reading(const Reading&) = delete;
            Reading& operator=(const Reading&) = delete;

          private:
            Statement& statement_;
        };

      private:
        void check(int result) {
            if (result != SQLITE_OK) {
                db_.fail("cannot bind a value", result);
            }
        }

        Database& db_;
        sqlite3_stmt* statement_ = nullptr;
    };

    // Rolls back unless committed, so that an exception leaves the database as it was.
    class Transaction {
      public:
        explicit Transaction(Database& db) : db_(db) { db_.begin_.run(); }
        ~Transaction() {
            if (!committed_) {
                // Nothing more to do when the rollback fails: SQLite has then rolled back on its own.
                sqlite3_exec(db_.connection_.handle, "ROLLBACK", nullptr, nullptr, nullptr);
            }
        }
        Transaction(const Transaction&) = delete;
        Transaction& operator=(const Transaction&) = delete;
        void commit() {
            db_.commit_.run();
            committed_ = true;
        }

      private:
        Database& db_;
        bool committed_ = false;
    };

    Database(std::filesystem::path file, Connection connection)
        : file_(std::move(file)), connection_(std::move(connection)), begin_(*this, "BEGIN IMMEDIATE"),
          commit_(*this, "COMMIT"),
          fail_pending_(*this,
                        "UPDATE exits SET outcome = 'failed' WHERE service = ?1 AND outcome = 'pending'"),
          insert_(*this, std::string("INSERT INTO exits (") + kColumns +
                             ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0)"),
          recover_(*this,
                   "UPDATE exits SET outcome = 'running', time_to_running_usec = MAX(0, ?2 - time_usec) "
                   "WHERE id = (SELECT id FROM exits WHERE service = ?1 AND outcome = 'pending' "
                   "ORDER BY id DESC LIMIT 1)"),
          count_same_(*this, "SELECT COUNT(*) FROM exits WHERE service = ?1 AND time_usec = ?2 AND pid = ?3"),
          prune_(*this, "DELETE FROM exits WHERE id IN (SELECT id FROM exits ORDER BY id LIMIT ?1)"),
          count_(*this, "SELECT COUNT(*) FROM exits"),
          summary_(*this,
                   "SELECT service, COUNT(*), SUM(outcome = 'running'), "
                   "AVG(CASE WHEN outcome = 'running' THEN time_to_running_usec END), MAX(time_usec) "
                   "FROM exits WHERE action NOT IN ('none', 'stopped') GROUP BY service ORDER BY service") {}

    [[noreturn]] void fail(const std::string& what, int code) const {
        tau::fail(file_, connection_.handle, what, code);
    }

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
        return *queries_.emplace(key, std::make_unique<Statement>(*this, sql)).first->second;
    }

    std::filesystem::path file_;
    // Declared before the statements, so that it is closed after they are finalized.
    Connection connection_;
    Statement begin_;
    Statement commit_;
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
    Connection connection;
    try {
        connection = openAndCheck(file_);
    } catch (const SqliteFailure& failure) {
        if (!failure.meansCorrupt()) {
            throw;
        }
        set_aside_ = SetAsideDatabase{setAsideFiles(file_), failure.what()};
        connection = openAndCheck(file_);
    }
    createOrCheckSchema(file_, connection.handle);
    db_ = std::make_unique<Database>(file_, std::move(connection));
    {
        Database::Statement::Reading reading(db_->count_);
        db_->count_.step();
        size_ = static_cast<std::size_t>(db_->count_.integer(0));
    }
    if (size_ > capacity_) {
        // A smaller capacity than the one the file was written with.
        Database::Transaction transaction(*db_);
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

bool CrashHistory::recordExit(const CrashEntry& entry) {
    const std::size_t size_before = size_;
    try {
        Database::Transaction transaction(*db_);
        {
            Database::Statement::Reading reading(db_->count_same_);
            db_->count_same_.bind(1, entry.service).bind(2, toMicros(entry.time)).bind(3, entry.pid).step();
            if (db_->count_same_.integer(0) > 0) {
                return false;
            }
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
    Database::Transaction transaction(*db_);
    const int changed = db_->recover_.bind(1, service).bind(2, toMicros(time)).run();
    transaction.commit();
    return changed > 0;
}

std::vector<CrashEntry> CrashHistory::query(const std::string& service, const std::string& failure_class,
                                            std::chrono::system_clock::time_point since,
                                            std::size_t limit) const {
    auto& statement = db_->query(!service.empty(), !failure_class.empty());
    Database::Statement::Reading reading(statement);
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
    Database::Statement::Reading reading(statement);
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
