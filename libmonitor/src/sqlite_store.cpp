#include "sqlite_store.h"

#include <cerrno>
#include <sqlite3.h>
#include <stdexcept>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace tau::sqlite {
namespace {

// Another reader (an administrator's sqlite3 shell) may hold a lock for a moment.
constexpr int kBusyTimeoutMs = 2000;

// A failure met while opening, before the store's error factory is used: carries the result code, so that
// opening can tell a corrupt file from other failures.
class OpenFailure : public std::runtime_error {
  public:
    OpenFailure(const std::string& message, int code) : std::runtime_error(message), code_(code) {}
    int code() const { return code_; }
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

std::string describeFailure(const std::filesystem::path& file, sqlite3* db, const std::string& what,
                            int code) {
    std::string message =
        file.string() + ": " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
    const int system_error = db != nullptr ? sqlite3_system_errno(db) : 0;
    std::string why;
    if ((code & 0xff) == SQLITE_CANTOPEN) {
        // SQLite's message does not say why. Its system error does not either when it comes from the
        // read-only open SQLite retries with after a failed read-write one; the directory does.
        why = whyNotCreatable(file);
        if (why.empty() && system_error != 0) {
            why = std::system_category().message(system_error);
        }
    } else {
        why = explainResult(code);
        if ((code & 0xff) == SQLITE_IOERR && system_error != 0) {
            why += ": " + std::system_category().message(system_error);
        }
    }
    if (!why.empty()) {
        message += " (" + why + ")";
    }
    return message;
}

void exec(const std::filesystem::path& file, sqlite3* db, const std::string& sql, const std::string& what) {
    const int result = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    if (result != SQLITE_OK) {
        throw OpenFailure(describeFailure(file, db, what, result), result);
    }
}

// The first column of the first row of a statement such as a PRAGMA.
std::string firstValue(const std::filesystem::path& file, sqlite3* db, const char* sql,
                       const std::string& what) {
    sqlite3_stmt* statement = nullptr;
    int result = sqlite3_prepare_v2(db, sql, -1, &statement, nullptr);
    if (result != SQLITE_OK) {
        throw OpenFailure(describeFailure(file, db, what, result), result);
    }
    result = sqlite3_step(statement);
    std::string value;
    if (result == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(statement, 0);
        value = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    }
    sqlite3_finalize(statement);
    if (result != SQLITE_ROW && result != SQLITE_DONE) {
        throw OpenFailure(describeFailure(file, db, what, result), result);
    }
    return value;
}

// Opens the file and makes sure SQLite can read it: a file that is something else fails here with
// SQLITE_NOTADB, a damaged one with SQLITE_CORRUPT or a failed quick check.
sqlite3* openAndCheck(const std::filesystem::path& file) {
    sqlite3* db = nullptr;
    const int result = sqlite3_open_v2(
        file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    // Closed again on any failure below; once returned, the caller owns it.
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> connection(db, sqlite3_close_v2);
    if (result != SQLITE_OK) {
        throw OpenFailure(describeFailure(file, db, "cannot open", result), result);
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    // Closing the last connection checkpoints the log into the file and deletes it. Not while the file may
    // be damaged: a file set aside is kept as it was found, its log beside it.
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    if (const auto check = firstValue(file, db, "PRAGMA quick_check", "cannot read"); check != "ok") {
        throw OpenFailure(file.string() + ": the database is corrupt: " + check, SQLITE_CORRUPT);
    }
    if (const auto mode = firstValue(file, db, "PRAGMA journal_mode = WAL", "cannot use WAL");
        mode != "wal") {
        throw OpenFailure(file.string() + ": cannot use WAL: the journal mode stays " + mode, 0);
    }
    exec(file, db, "PRAGMA synchronous = FULL", "cannot set synchronous FULL");
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    return connection.release();
}

void createOrCheckSchema(const std::filesystem::path& file, sqlite3* db, const Schema& schema) {
    const int version =
        std::stoi(firstValue(file, db, "PRAGMA user_version", "cannot read the schema version"));
    if (version == schema.version) {
        return;
    }
    if (version > schema.version) {
        throw OpenFailure(file.string() + ": written with schema version " + std::to_string(version) +
                              ", newer than this program's " + std::to_string(schema.version),
                          0);
    }
    exec(file, db, "BEGIN IMMEDIATE", "cannot create the schema");
    try {
        exec(file, db, std::string(schema.create), "cannot create the schema");
        exec(file, db, "PRAGMA user_version = " + std::to_string(schema.version), "cannot create the schema");
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
std::filesystem::path setAsideFiles(const std::filesystem::path& file,
                                    std::chrono::system_clock::time_point now) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    std::string suffix = ".corrupt-" + std::to_string(seconds);
    for (int extra = 1; std::filesystem::exists(withSuffix(file, suffix)); ++extra) {
        suffix = ".corrupt-" + std::to_string(seconds) + "." + std::to_string(extra);
    }
    const auto moved_to = withSuffix(file, suffix);
    std::error_code error;
    std::filesystem::rename(file, moved_to, error);
    if (error) {
        throw OpenFailure(file.string() + ": cannot move the corrupt database aside to " + moved_to.string() +
                              ": " + error.message(),
                          0);
    }
    // The log belongs to the damaged file and goes with it; the shared-memory index is rebuilt from a log.
    if (std::filesystem::exists(withSuffix(file, "-wal"), error)) {
        std::filesystem::rename(withSuffix(file, "-wal"), withSuffix(moved_to, "-wal"), error);
    }
    std::filesystem::remove(withSuffix(file, "-shm"), error);
    return moved_to;
}

} // namespace

std::string explainResult(int result_code) {
    switch (result_code & 0xff) {
    case SQLITE_FULL:
        return "no space left on the file system that holds it";
    case SQLITE_IOERR:
        return "the file system reported an input/output error";
    case SQLITE_READONLY:
        return "it cannot be written: check the permissions of the file, of its -wal and -shm files and of "
               "their directory, and whether the file system is mounted read-only";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "another process holds a lock on it";
    case SQLITE_CORRUPT:
        return "the file is damaged";
    case SQLITE_NOTADB:
        return "the file is no SQLite database, or its header is damaged";
    case SQLITE_NOMEM:
        return "out of memory";
    case SQLITE_TOOBIG:
        return "the value is larger than SQLite accepts";
    default:
        return {};
    }
}

bool meansFull(int result_code) {
    return (result_code & 0xff) == SQLITE_FULL;
}

void Database::Close::operator()(sqlite3* connection) const {
    sqlite3_close_v2(connection);
}

Database::Database(std::filesystem::path file, const Schema& schema, ErrorFactory make_error,
                   std::chrono::system_clock::time_point now)
    : file_(std::move(file)), make_error_(std::move(make_error)) {
    try {
        try {
            connection_.reset(openAndCheck(file_));
        } catch (const OpenFailure& failure) {
            if (!failure.meansCorrupt()) {
                throw;
            }
            set_aside_ = SetAsideDatabase{setAsideFiles(file_, now), failure.what()};
            connection_.reset(openAndCheck(file_));
        }
        createOrCheckSchema(file_, connection_.get(), schema);
    } catch (const OpenFailure& failure) {
        std::rethrow_exception(make_error_(failure.what(), failure.code()));
    }
    begin_ = std::make_unique<Statement>(*this, "BEGIN IMMEDIATE");
    commit_ = std::make_unique<Statement>(*this, "COMMIT");
}

// The statements are finalized before the connection closes: they are declared after it.
Database::~Database() = default;

void Database::fail(const std::string& what, int result_code) const {
    std::rethrow_exception(
        make_error_(describeFailure(file_, connection_.get(), what, result_code), result_code));
}

Statement::Statement(Database& db, std::string_view sql) : db_(db) {
    const int result = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &statement_, nullptr);
    if (result != SQLITE_OK) {
        db.fail("cannot prepare a statement", result);
    }
}

Statement::~Statement() {
    sqlite3_finalize(statement_);
}

Statement& Statement::bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(statement_, index, value));
    return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
    check(sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
}

Statement& Statement::bindBlob(int index, std::span<const std::uint8_t> value) {
    if (value.empty()) {
        // A null pointer would bind NULL rather than an empty blob.
        check(sqlite3_bind_zeroblob(statement_, index, 0));
    } else {
        check(sqlite3_bind_blob64(statement_, index, value.data(), value.size(), SQLITE_STATIC));
    }
    return *this;
}

bool Statement::step() {
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

int Statement::run() {
    while (step()) {
    }
    return sqlite3_changes(db_.handle());
}

void Statement::done() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
}

bool Statement::isNull(int column) const {
    return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

std::int64_t Statement::integer(int column) const {
    return sqlite3_column_int64(statement_, column);
}

double Statement::real(int column) const {
    return sqlite3_column_double(statement_, column);
}

std::string Statement::text(int column) const {
    const auto* data = sqlite3_column_text(statement_, column);
    if (data == nullptr) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(data),
                       static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
}

std::span<const std::uint8_t> Statement::blob(int column) const {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(statement_, column));
    // Asked after the data, as SQLite's documentation says: the size of what was just fetched.
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement_, column));
    if (data == nullptr) {
        return {};
    }
    return {data, size};
}

void Statement::check(int result) const {
    if (result != SQLITE_OK) {
        db_.fail("cannot bind a value", result);
    }
}

Transaction::Transaction(Database& db) : db_(db) {
    db_.begin_->run();
}

Transaction::~Transaction() {
    if (!committed_) {
        // Nothing more to do when the rollback fails: SQLite has then rolled back on its own.
        sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

void Transaction::commit() {
    db_.commit_->run();
    committed_ = true;
}

} // namespace tau::sqlite
