#pragma once
// The SQLite plumbing shared by the stores of libmonitor (crash history, session state): a connection opened
// with the durability settings, a corrupt file set aside, the schema version, prepared statements,
// transactions, and failures turned into clear messages. Internal to libmonitor: public headers name no
// SQLite type, and every failure reaches a store's callers as that store's own error type.

#include "tau/set_aside_database.h"

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace tau::sqlite {

// Makes the exception a store throws from the whole message and SQLite's extended result code (0 when the
// failure is not SQLite's, e.g. a newer schema), so that each store keeps its own public error type.
using ErrorFactory = std::function<std::exception_ptr(const std::string& message, int result_code)>;

// Plain words for what a result code means to an operator, e.g. that the disk is full; "" when SQLite's own
// message says it all.
std::string explainResult(int result_code);

// True for a result code that comes from a full file system (SQLITE_FULL).
bool meansFull(int result_code);

struct Schema {
    int version;             // kept in PRAGMA user_version; a file with a higher one is refused, not misread
    std::string_view create; // creates every table and index, run once in a transaction on a new file
};

class Statement;

class Database {
  public:
    // Opens or creates `file` with journal_mode WAL and synchronous FULL, so that a committed transaction
    // survives a crash of the process and a power cut, and creates the schema on a new file. A file SQLite
    // cannot read as a database, or one that fails PRAGMA quick_check, is renamed to
    // <file>.corrupt-<unix time of `now`> (its -wal log with it) and an empty database starts in its place;
    // setAside() tells. Throws through `make_error` when the file cannot be opened or created, or was written
    // with a newer schema (such a file is left where it is).
    Database(std::filesystem::path file, const Schema& schema, ErrorFactory make_error,
             std::chrono::system_clock::time_point now);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    const std::filesystem::path& file() const { return file_; }
    const std::optional<SetAsideDatabase>& setAside() const { return set_aside_; }

    // Throws the store's error with "<file>: <what>: <SQLite's message> (<explanation>)".
    [[noreturn]] void fail(const std::string& what, int result_code) const;

    sqlite3* handle() const { return connection_.get(); }

  private:
    friend class Transaction;

    struct Close {
        void operator()(sqlite3* connection) const;
    };

    std::filesystem::path file_;
    ErrorFactory make_error_;
    std::optional<SetAsideDatabase> set_aside_;
    // Declared before the statements, so that it is closed after they are finalized.
    std::unique_ptr<sqlite3, Close> connection_;
    std::unique_ptr<Statement> begin_;
    std::unique_ptr<Statement> commit_;
};

// A statement prepared once and run many times.
class Statement {
  public:
    Statement(Database& db, std::string_view sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, const std::string& value); // copied
    // Not copied, since a blob may be megabytes: `value` must stay valid until the statement is done().
    Statement& bindBlob(int index, std::span<const std::uint8_t> value);

    // True while there is a row to read; once done, the statement is ready to run again.
    bool step();
    // Runs a statement that returns no rows; the number of rows it changed.
    int run();
    // Makes the statement ready to run again, also when a query stops before its last row.
    void done();

    bool isNull(int column) const;
    std::int64_t integer(int column) const;
    double real(int column) const;
    std::string text(int column) const;
    // Valid until the next step() or done().
    std::span<const std::uint8_t> blob(int column) const;

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
    void check(int result) const;

    Database& db_;
    sqlite3_stmt* statement_ = nullptr;
};

// BEGIN IMMEDIATE, so that the write lock is taken at once rather than at the first write. Rolls back
// unless committed, so that an exception leaves the database as it was.
class Transaction {
  public:
    explicit Transaction(Database& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

  private:
    Database& db_;
    bool committed_ = false;
};

} // namespace tau::sqlite
