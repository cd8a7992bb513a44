#include "tau/state_store.h"

#include "sqlite_store.h"
#include "tau/sha256.h"

#include <algorithm>
#include <exception>
#include <utility>

namespace tau {
namespace {

// Version 1: the tables `versions` and `services`. A database from a newer version is refused rather than
// misread.
constexpr int kSchemaVersion = 1;

constexpr std::string_view kCreateSchema = R"sql(
-- One row per kept version. A rowid table rather than WITHOUT ROWID, since its rows hold blobs of up to
-- megabytes; UNIQUE gives the index every query of a service goes through.
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    version INTEGER NOT NULL,
    saved_at_usec INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    data BLOB NOT NULL,
    quarantined INTEGER NOT NULL DEFAULT 0,
    UNIQUE (service, version)
);
-- The version each service last loaded and how many times in a row it crashed early since.
CREATE TABLE IF NOT EXISTS services (
    service TEXT PRIMARY KEY,
    loaded_version INTEGER,
    early_crashes INTEGER NOT NULL DEFAULT 0
);
)sql";

std::int64_t toMicros(std::chrono::system_clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

std::chrono::system_clock::time_point fromMicros(std::int64_t micros) {
    return std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
}

const Clock& systemClock() {
    static const SystemClock clock;
    return clock;
}

sqlite::ErrorFactory stateStoreErrors() {
    return [](const std::string& message, int result_code) {
        const auto kind = sqlite::meansFull(result_code) ? StateStoreError::Kind::StorageFull
                                                         : StateStoreError::Kind::Storage;
        return std::make_exception_ptr(StateStoreError(kind, message));
    };
}

// Whether the bytes read back are the ones saved: same size, same SHA-256.
bool intact(std::span<const std::uint8_t> data, std::int64_t saved_size,
            std::span<const std::uint8_t> checksum) {
    if (saved_size < 0 || static_cast<std::uint64_t>(saved_size) != data.size() ||
        checksum.size() != std::tuple_size_v<Sha256Digest>) {
        return false;
    }
    const auto digest = Sha256::of(data);
    return std::equal(digest.begin(), digest.end(), checksum.begin());
}

std::string joined(const std::vector<std::uint64_t>& versions) {
    std::string text;
    for (const auto version : versions) {
        text += (text.empty() ? "" : ", ") + std::to_string(version);
    }
    return text;
}

std::string corruptWarning(const std::string& service, const std::vector<std::uint64_t>& skipped,
                           const std::optional<StateVersion>& loaded) {
    std::string text = service + ": " +
                       (skipped.size() == 1 ? "version " + joined(skipped) + " is"
                                            : "versions " + joined(skipped) + " are") +
                       " corrupt (the bytes no longer match their SHA-256); ";
    text += loaded ? "loaded version " + std::to_string(loaded->version) + " instead"
                   : "no older version is left to load";
    return text;
}

void requireService(const std::string& service) {
    if (service.empty()) {
        throw StateStoreError(StateStoreError::Kind::InvalidService, "the service name is empty");
    }
}

// Runs one operation of the store; a failure of the database then says which service and operation it
// interrupted, besides the file and SQLite's message.
template <typename Operation>
auto withContext(const std::string& context, Operation&& operation) -> decltype(operation()) {
    try {
        return operation();
    } catch (const StateStoreError& error) {
        if (error.kind() != StateStoreError::Kind::Storage &&
            error.kind() != StateStoreError::Kind::StorageFull) {
            throw;
        }
        throw StateStoreError(error.kind(), context + ": " + error.what());
    }
}

} // namespace

std::string_view toString(ChecksumStatus status) {
    switch (status) {
    case ChecksumStatus::Ok:
        return "ok";
    case ChecksumStatus::Corrupt:
        return "corrupt";
    }
    return "corrupt";
}

StateStoreSettings StateStoreSettings::fromConfig(const CrashRecoveryConfig& config) {
    return StateStoreSettings{config.state_versions_kept, config.state_max_bytes,
                              config.state_poison_crashes};
}

class StateStore::Database {
  public:
    using Statement = sqlite::Statement;

    Database(const std::filesystem::path& file, std::chrono::system_clock::time_point now)
        : db_(file, sqlite::Schema{kSchemaVersion, kCreateSchema}, stateStoreErrors(), now),
          next_version_(db_, "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE service = ?1"),
          insert_(db_, "INSERT INTO versions (service, version, saved_at_usec, size, sha256, data) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
          // Everything from the (versions_kept + 1)-th newest version down; nothing when there are fewer.
          prune_(db_,
                 "DELETE FROM versions WHERE service = ?1 AND version <= "
                 "(SELECT version FROM versions WHERE service = ?1 ORDER BY version DESC LIMIT 1 OFFSET ?2)"),
          over_limit_(db_, "SELECT EXISTS (SELECT 1 FROM versions GROUP BY service HAVING COUNT(*) > ?1)"),
          prune_all_(
              db_, "DELETE FROM versions WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
                   "(PARTITION BY service ORDER BY version DESC) AS newer FROM versions) WHERE newer > ?1)"),
          loadable_(db_, "SELECT version, saved_at_usec, size, sha256, data FROM versions "
                         "WHERE service = ?1 AND quarantined = 0 ORDER BY version DESC"),
          list_versions_(db_, "SELECT service, version, size, saved_at_usec, sha256, data, quarantined "
                              "FROM versions ORDER BY service, version DESC"),
          list_services_(db_, "SELECT service, loaded_version, early_crashes FROM services"),
          remove_versions_(db_, "DELETE FROM versions WHERE service = ?1"),
          remove_service_(db_, "DELETE FROM services WHERE service = ?1"),
          version_quarantined_(db_, "SELECT quarantined FROM versions WHERE service = ?1 AND version = ?2"),
          // The same version again keeps the count of early crashes; every expression sees the old row.
          record_loaded_(db_,
                         "INSERT INTO services (service, loaded_version, early_crashes) VALUES (?1, ?2, 0) "
                         "ON CONFLICT (service) DO UPDATE SET loaded_version = ?2, early_crashes = "
                         "CASE WHEN loaded_version IS ?2 THEN early_crashes ELSE 0 END"),
          loaded_(db_, "SELECT loaded_version, early_crashes FROM services WHERE service = ?1"),
          set_early_crashes_(db_, "UPDATE services SET early_crashes = ?2 WHERE service = ?1"),
          quarantine_(db_, "UPDATE versions SET quarantined = 1 WHERE service = ?1 AND version = ?2"),
          forget_loaded_(db_,
                         "UPDATE services SET loaded_version = NULL, early_crashes = 0 WHERE service = ?1"),
          reset_early_crashes_(db_, "UPDATE services SET early_crashes = 0 WHERE service = ?1") {}

    // Declared before the statements, so that it is closed after they are finalized.
    sqlite::Database db_;
    Statement next_version_;
    Statement insert_;
    Statement prune_;
    Statement over_limit_;
    Statement prune_all_;
    Statement loadable_;
    Statement list_versions_;
    Statement list_services_;
    Statement remove_versions_;
    Statement remove_service_;
    Statement version_quarantined_;
    Statement record_loaded_;
    Statement loaded_;
    Statement set_early_crashes_;
    Statement quarantine_;
    Statement forget_loaded_;
    Statement reset_early_crashes_;
};

StateStore::StateStore(std::filesystem::path file, StateStoreSettings settings, const Clock& clock)
    : file_(std::move(file)), settings_(settings), clock_(clock) {
    settings_.versions_kept = std::max(settings_.versions_kept, 1U);
    settings_.max_bytes = std::max<std::uint64_t>(settings_.max_bytes, 1);
    settings_.poison_crashes = std::max(settings_.poison_crashes, 1U);
    db_ = std::make_unique<Database>(file_, clock_.wallNow());
    // A file written with a larger versions_kept: the rule holds from the start, not from each next save.
    // Looked for first, so that opening writes nothing otherwise: a store on a full disk still loads.
    withContext("cannot keep only the newest " + std::to_string(settings_.versions_kept) + " versions", [&] {
        bool over_limit = false;
        {
            sqlite::Statement::Reading reading(db_->over_limit_);
            over_limit =
                db_->over_limit_.bind(1, settings_.versions_kept).step() && db_->over_limit_.integer(0) != 0;
        }
        if (over_limit) {
            sqlite::Transaction transaction(db_->db_);
            db_->prune_all_.bind(1, settings_.versions_kept).run();
            transaction.commit();
        }
    });
}

StateStore::StateStore(std::filesystem::path file, StateStoreSettings settings)
    : StateStore(std::move(file), settings, systemClock()) {}

StateStore::~StateStore() = default;

const std::optional<SetAsideDatabase>& StateStore::setAside() const {
    return db_->db_.setAside();
}

std::uint64_t StateStore::save(const std::string& service, std::span<const std::uint8_t> data) {
    requireService(service);
    if (data.size() > settings_.max_bytes) {
        throw StateStoreError(
            StateStoreError::Kind::TooLarge,
            service + ": the state of " + std::to_string(data.size()) +
                " bytes is larger than the limit of " + std::to_string(settings_.max_bytes) +
                " bytes (crash_recovery.state_max_bytes); the saved versions stay as they were");
    }
    // Hashed before the transaction, so that the write lock is not held for it.
    const auto checksum = Sha256::of(data);
    const auto saved_at = clock_.wallNow();
    return withContext(service + ": cannot save the state", [&] {
        sqlite::Transaction transaction(db_->db_);
        std::int64_t version = 0;
        {
            sqlite::Statement::Reading reading(db_->next_version_);
            db_->next_version_.bind(1, service).step();
            version = db_->next_version_.integer(0);
        }
        db_->insert_.bind(1, service)
            .bind(2, version)
            .bind(3, toMicros(saved_at))
            .bind(4, static_cast<std::int64_t>(data.size()))
            .bindBlob(5, checksum)
            .bindBlob(6, data)
            .run();
        db_->prune_.bind(1, service).bind(2, settings_.versions_kept).run();
        transaction.commit();
        return static_cast<std::uint64_t>(version);
    });
}

std::optional<StateVersion> StateStore::newestLoadable(const std::string& service,
                                                       std::vector<std::uint64_t>& corrupt_skipped) const {
    auto& statement = db_->loadable_;
    sqlite::Statement::Reading reading(statement);
    statement.bind(1, service);
    while (statement.step()) {
        const auto version = static_cast<std::uint64_t>(statement.integer(0));
        const auto data = statement.blob(4);
        if (!intact(data, statement.integer(2), statement.blob(3))) {
            corrupt_skipped.push_back(version);
            continue;
        }
        return StateVersion{version, StateBytes(data.begin(), data.end()), fromMicros(statement.integer(1))};
    }
    return std::nullopt;
}

LoadResult StateStore::load(const std::string& service) const {
    requireService(service);
    return withContext(service + ": cannot load the state", [&] {
        LoadResult result;
        result.state = newestLoadable(service, result.corrupt_skipped);
        if (!result.corrupt_skipped.empty()) {
            result.warning = corruptWarning(service, result.corrupt_skipped, result.state);
        }
        return result;
    });
}

std::vector<ServiceStateInfo> StateStore::list() const {
    return withContext("cannot list the saved states", [&] {
        std::vector<ServiceStateInfo> services;
        {
            auto& statement = db_->list_versions_;
            sqlite::Statement::Reading reading(statement);
            while (statement.step()) {
                auto service = statement.text(0);
                if (services.empty() || services.back().service != service) {
                    services.push_back(ServiceStateInfo{std::move(service), {}, std::nullopt, 0});
                }
                StateVersionInfo info;
                info.version = static_cast<std::uint64_t>(statement.integer(1));
                info.size = static_cast<std::uint64_t>(std::max<std::int64_t>(statement.integer(2), 0));
                info.saved_at = fromMicros(statement.integer(3));
                info.checksum = intact(statement.blob(5), statement.integer(2), statement.blob(4))
                                    ? ChecksumStatus::Ok
                                    : ChecksumStatus::Corrupt;
                info.quarantined = statement.integer(6) != 0;
                services.back().versions.push_back(info);
            }
        }
        auto& statement = db_->list_services_;
        sqlite::Statement::Reading reading(statement);
        while (statement.step()) {
            const auto name = statement.text(0);
            const auto found =
                std::lower_bound(services.begin(), services.end(), name,
                                 [](const ServiceStateInfo& service, const std::string& wanted) {
                                     return service.service < wanted;
                                 });
            if (found == services.end() || found->service != name) {
                continue; // crash counts outlive no version of their own; nothing to show without one
            }
            if (!statement.isNull(1)) {
                found->loaded_version = static_cast<std::uint64_t>(statement.integer(1));
            }
            found->early_crashes = static_cast<unsigned>(statement.integer(2));
        }
        return services;
    });
}

std::size_t StateStore::remove(const std::string& service) {
    requireService(service);
    return withContext(service + ": cannot remove the state", [&] {
        sqlite::Transaction transaction(db_->db_);
        const int removed = db_->remove_versions_.bind(1, service).run();
        db_->remove_service_.bind(1, service).run();
        transaction.commit();
        return static_cast<std::size_t>(removed);
    });
}

void StateStore::recordLoaded(const std::string& service, std::uint64_t version) {
    requireService(service);
    withContext(service + ": cannot record the loaded version", [&] {
        sqlite::Transaction transaction(db_->db_);
        {
            auto& statement = db_->version_quarantined_;
            sqlite::Statement::Reading reading(statement);
            if (!statement.bind(1, service).bind(2, static_cast<std::int64_t>(version)).step()) {
                throw StateStoreError(StateStoreError::Kind::NoSuchVersion,
                                      service + ": has no saved version " + std::to_string(version));
            }
            if (statement.integer(0) != 0) {
                throw StateStoreError(StateStoreError::Kind::NoSuchVersion,
                                      service + ": version " + std::to_string(version) +
                                          " is quarantined and cannot have been loaded");
            }
        }
        db_->record_loaded_.bind(1, service).bind(2, static_cast<std::int64_t>(version)).run();
        transaction.commit();
    });
}

EarlyCrashResult StateStore::recordEarlyCrash(const std::string& service) {
    requireService(service);
    return withContext(service + ": cannot record an early crash", [&] {
        EarlyCrashResult result;
        sqlite::Transaction transaction(db_->db_);
        {
            auto& statement = db_->loaded_;
            sqlite::Statement::Reading reading(statement);
            if (!statement.bind(1, service).step() || statement.isNull(0)) {
                // Nothing loaded, so no state to blame.
                return result;
            }
            result.loaded_version = static_cast<std::uint64_t>(statement.integer(0));
            result.crashes_in_a_row = static_cast<unsigned>(statement.integer(1)) + 1;
        }
        const auto version = *result.loaded_version;
        if (result.crashes_in_a_row < settings_.poison_crashes) {
            db_->set_early_crashes_.bind(1, service).bind(2, result.crashes_in_a_row).run();
            transaction.commit();
            return result;
        }
        // Quarantined versions are never loaded, so the next start must begin with a fresh count.
        const int quarantined =
            db_->quarantine_.bind(1, service).bind(2, static_cast<std::int64_t>(version)).run();
        db_->forget_loaded_.bind(1, service).run();
        if (quarantined > 0) {
            std::vector<std::uint64_t> corrupt_skipped;
            const auto next = newestLoadable(service, corrupt_skipped);
            QuarantineEvent event;
            event.service = service;
            event.version = version;
            event.next_version = next ? std::optional(next->version) : std::nullopt;
            event.reason = "crashed " + std::to_string(result.crashes_in_a_row) +
                           " times in a row within its startup window after loading version " +
                           std::to_string(version) + "; " +
                           (next ? "the next start loads version " + std::to_string(next->version)
                                 : std::string("no version is left to load"));
            result.quarantined = std::move(event);
        }
        // else: saves since the load pruned that version; there is nothing left to quarantine.
        transaction.commit();
        return result;
    });
}

void StateStore::recordStable(const std::string& service) {
    requireService(service);
    withContext(service + ": cannot record a stable run", [&] {
        sqlite::Transaction transaction(db_->db_);
        db_->reset_early_crashes_.bind(1, service).run();
        transaction.commit();
    });
}

} // namespace tau
