#pragma once
// The session state of supervised services: a critical service saves its state as bytes and, once
// restarted, loads the newest good version to resume where it stopped.
//
// Kept in an SQLite database (session-state.db in crash_recovery.session_state_path) with WAL and
// synchronous FULL, so that an acknowledged save survives a SIGKILL of the process and a power cut; every
// save is one transaction, so that a failed one leaves the versions before it as they were. Each version
// carries the SHA-256 of its bytes, checked whenever it is read: a damaged version is reported and passed
// over.
//
// Poisoned state: a service that keeps crashing within its startup window after loading the same version
// gets that version quarantined (kept, flagged, never loaded again), so that its next start resumes from
// the version before instead of crashing on the same state again.

#include "tau/clock.h"
#include "tau/config.h"
#include "tau/set_aside_database.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tau {

// The name of the database file in crash_recovery.session_state_path.
inline constexpr const char* kStateStoreFileName = "session-state.db";

struct StateStoreSettings {
    unsigned versions_kept = 3;        // per service; a save deletes the versions beyond, oldest first
    std::uint64_t max_bytes = 1048576; // the largest state one save may hold
    unsigned poison_crashes = 3;       // early crashes in a row after loading one version that quarantine it

    // crash_recovery.state_versions_kept, state_max_bytes and state_poison_crashes.
    static StateStoreSettings fromConfig(const CrashRecoveryConfig& config);
};

using StateBytes = std::vector<std::uint8_t>;

// One version of a service's state, as loaded.
struct StateVersion {
    std::uint64_t version = 0;
    StateBytes data;
    std::chrono::system_clock::time_point saved_at;
};

struct LoadResult {
    // The newest version that is neither corrupt nor quarantined; unset when there is none.
    std::optional<StateVersion> state;
    // Newer versions passed over because their bytes no longer match their checksum, newest first.
    std::vector<std::uint64_t> corrupt_skipped;
    // One line for the log when versions were passed over; "" otherwise.
    std::string warning;
};

enum class ChecksumStatus { Ok, Corrupt };
std::string_view toString(ChecksumStatus status); // "ok", "corrupt"

struct StateVersionInfo {
    std::uint64_t version = 0;
    std::uint64_t size = 0; // bytes, as saved
    std::chrono::system_clock::time_point saved_at;
    ChecksumStatus checksum = ChecksumStatus::Ok;
    bool quarantined = false;
};

struct ServiceStateInfo {
    std::string service;
    std::vector<StateVersionInfo> versions; // newest first
    // The version the service last said it loaded (recordLoaded); unset when none, or once it is quarantined.
    std::optional<std::uint64_t> loaded_version;
    unsigned early_crashes = 0; // in a row, since loaded_version was loaded
};

// A version taken out of use; meant for the crash history.
struct QuarantineEvent {
    std::string service;
    std::uint64_t version = 0;
    std::string reason;
    // What load() returns from now on; unset when no version is left to load.
    std::optional<std::uint64_t> next_version;
};

struct EarlyCrashResult {
    // The version the crash counts against; unset when the service loaded none, and nothing was counted.
    std::optional<std::uint64_t> loaded_version;
    unsigned crashes_in_a_row = 0; // this one included
    // Set when this crash reached crash_recovery.state_poison_crashes; the count then starts again.
    std::optional<QuarantineEvent> quarantined;
};

class StateStoreError : public std::runtime_error {
  public:
    enum class Kind {
        InvalidService, // an empty service name
        TooLarge,       // the state is larger than crash_recovery.state_max_bytes
        NoSuchVersion,  // recordLoaded() of a version that is not stored, or quarantined
        StorageFull,    // the file system holding the database is full
        Storage,        // any other failure of the database: I/O error, permissions, a newer schema, ...
    };

    StateStoreError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

// Not thread-safe: meant to be owned by one service loop. Every failure throws StateStoreError, naming the
// service or the database file.
class StateStore {
  public:
    // Opens or creates the database `file`. A file that is not a database, or a corrupt one, is renamed to
    // <file>.corrupt-<unix time> (its -wal log with it) and an empty store starts; setAside() tells.
    // Settings of 0 count as 1. Versions beyond settings.versions_kept (a file written with a larger
    // setting) are deleted at once. `clock` (wall time: saved_at, the set-aside name) must outlive the store.
    StateStore(std::filesystem::path file, StateStoreSettings settings, const Clock& clock);
    StateStore(std::filesystem::path file, StateStoreSettings settings = {});
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    // Stores `data` as the service's next version and returns its number (1 for the first, counting up;
    // numbers start again at 1 only after remove()). Deletes the versions beyond versions_kept, oldest
    // first, in the same transaction. When it throws (too large, disk full, ...), nothing changed.
    std::uint64_t save(const std::string& service, std::span<const std::uint8_t> data);

    // The newest version whose checksum matches and that is not quarantined.
    LoadResult load(const std::string& service) const;

    // Every service with saved state, by name; each version's checksum is verified.
    std::vector<ServiceStateInfo> list() const;

    // Deletes every version of the service and its crash count; the number of versions deleted.
    std::size_t remove(const std::string& service);

    // The service resumed from `version` (one load() returned). Further early crashes count against it;
    // loading the same version again keeps the count, another version starts it from zero.
    void recordLoaded(const std::string& service, std::uint64_t version);

    // The service crashed within its startup window. Counts against the version it loaded; at
    // poison_crashes in a row, that version is quarantined and the event returned.
    EarlyCrashResult recordEarlyCrash(const std::string& service);

    // The service ran stably: its count of early crashes starts again from zero.
    void recordStable(const std::string& service);

    const std::filesystem::path& file() const { return file_; }
    const StateStoreSettings& settings() const { return settings_; }
    const std::optional<SetAsideDatabase>& setAside() const;

  private:
    class Database;

    std::optional<StateVersion> newestLoadable(const std::string& service,
                                               std::vector<std::uint64_t>& corrupt_skipped) const;

    std::filesystem::path file_;
    StateStoreSettings settings_;
    const Clock& clock_;
    std::unique_ptr<Database> db_;
};

} // namespace tau
