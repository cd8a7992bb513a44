#include "fake_clock.h"
#include "tau/fd_io.h"
#include "tau/sha256.h"
#include "tau/state_store.h"
#include "temp_dir.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <sched.h>
#include <sqlite3.h>
#include <string>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Kind = StateStoreError::Kind;

StateBytes bytesOf(std::string_view text) {
    return StateBytes(text.begin(), text.end());
}

std::string textOf(const StateBytes& bytes) {
    return std::string(bytes.begin(), bytes.end());
}

std::string fileBytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The text of the newest loadable version, "" when there is none.
std::string loadedText(const StateStore& store, const std::string& service) {
    const auto result = store.load(service);
    return result.state ? textOf(result.state->data) : "";
}

std::vector<std::uint64_t> versionNumbers(const ServiceStateInfo& service) {
    std::vector<std::uint64_t> numbers;
    for (const auto& version : service.versions) {
        numbers.push_back(version.version);
    }
    return numbers;
}

const ServiceStateInfo* find(const std::vector<ServiceStateInfo>& services, const std::string& name) {
    for (const auto& service : services) {
        if (service.service == name) {
            return &service;
        }
    }
    return nullptr;
}

template <typename Operation> StateStoreError expectError(Operation&& operation) {
    try {
        operation();
    } catch (const StateStoreError& error) {
        return error;
    }
    ADD_FAILURE() << "expected a StateStoreError";
    return StateStoreError(Kind::Storage, "no error");
}

// Changes the stored bytes of one version behind the store's back, the way a damaged disk would: through
// SQLite's incremental blob I/O, so that the database itself stays sound and only the checksum can tell.
void flipFirstByte(const fs::path& file, const std::string& service, std::uint64_t version) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT id FROM versions WHERE service = ?1 AND version = ?2", -1,
                                 &statement, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_bind_text(statement, 1, service.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(statement, 2, static_cast<sqlite3_int64>(version));
    ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW) << "no version " << version << " of " << service;
    const sqlite3_int64 row = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);

    sqlite3_blob* blob = nullptr;
    ASSERT_EQ(sqlite3_blob_open(db, "main", "versions", "data", row, 1, &blob), SQLITE_OK)
        << sqlite3_errmsg(db);
    unsigned char byte = 0;
    ASSERT_EQ(sqlite3_blob_read(blob, &byte, 1, 0), SQLITE_OK);
    byte ^= 0x01;
    ASSERT_EQ(sqlite3_blob_write(blob, &byte, 1, 0), SQLITE_OK);
    sqlite3_blob_close(blob);
    sqlite3_close(db);
}

// Runs an SQL statement on the store's file from outside the store.
void execute(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
}

class StateStoreTest : public ::testing::Test {
  protected:
    StateStore open(StateStoreSettings settings = {}) { return StateStore(file_, settings, clock_); }

    test::TempDir dir_;
    fs::path file_ = dir_.path() / kStateStoreFileName;
    test::FakeClock clock_;
};

// ---------------------------------------------------------------------------------------------------------
// Saving and loading

TEST_F(StateStoreTest, SavedStateComesBackWithItsVersionAndTime) {
    auto store = open();
    const auto data = bytesOf(std::string("cursor=42\0binary\xff\x00 tail", 23));
    EXPECT_EQ(store.save("web", data), 1u);

    const auto result = store.load("web");
    ASSERT_TRUE(result.state);
    EXPECT_EQ(result.state->version, 1u);
    EXPECT_EQ(result.state->data, data);
    EXPECT_EQ(result.state->saved_at, clock_.wallNow());
    EXPECT_TRUE(result.corrupt_skipped.empty());
    EXPECT_EQ(result.warning, "");
}

TEST_F(StateStoreTest, LoadGivesTheNewestVersionAndNumbersCountUp) {
    auto store = open();
    EXPECT_EQ(store.save("web", bytesOf("one")), 1u);
    clock_.advance(5s);
    EXPECT_EQ(store.save("web", bytesOf("two")), 2u);
    clock_.advance(5s);
    EXPECT_EQ(store.save("web", bytesOf("three")), 3u);
    const auto result = store.load("web");
    ASSERT_TRUE(result.state);
    EXPECT_EQ(result.state->version, 3u);
    EXPECT_EQ(textOf(result.state->data), "three");
    EXPECT_EQ(result.state->saved_at, clock_.wallNow());
}

TEST_F(StateStoreTest, EmptyStateIsAStateToo) {
    auto store = open();
    EXPECT_EQ(store.save("web", {}), 1u);
    const auto result = store.load("web");
    ASSERT_TRUE(result.state);
    EXPECT_TRUE(result.state->data.empty());
    EXPECT_EQ(store.list().at(0).versions.at(0).checksum, ChecksumStatus::Ok);
}

TEST_F(StateStoreTest, UnknownServiceHasNothingToLoad) {
    auto store = open();
    const auto result = store.load("nobody");
    EXPECT_FALSE(result.state);
    EXPECT_TRUE(result.corrupt_skipped.empty());
    EXPECT_EQ(result.warning, "");
}

TEST_F(StateStoreTest, EverythingSurvivesANewInstance) {
    {
        auto store = open();
        store.save("web", bytesOf("first"));
        store.save("web", bytesOf("second"));
        store.recordLoaded("web", 2);
        store.recordEarlyCrash("web");
    }
    auto reopened = open();
    EXPECT_FALSE(reopened.setAside());
    EXPECT_EQ(loadedText(reopened, "web"), "second");
    const auto services = reopened.list();
    ASSERT_EQ(services.size(), 1u);
    EXPECT_EQ(services[0].loaded_version, 2u);
    EXPECT_EQ(services[0].early_crashes, 1u);
    EXPECT_EQ(reopened.save("web", bytesOf("third")), 3u);
}

TEST_F(StateStoreTest, EmptyServiceNameIsRefused) {
    auto store = open();
    EXPECT_EQ(expectError([&] { store.save("", bytesOf("x")); }).kind(), Kind::InvalidService);
    EXPECT_EQ(expectError([&] { store.load(""); }).kind(), Kind::InvalidService);
    EXPECT_EQ(expectError([&] { store.remove(""); }).kind(), Kind::InvalidService);
    EXPECT_EQ(expectError([&] { store.recordEarlyCrash(""); }).kind(), Kind::InvalidService);
}

// ---------------------------------------------------------------------------------------------------------
// Versions kept

TEST_F(StateStoreTest, OnlyTheNewestVersionsAreKept) {
    auto store = open({.versions_kept = 3});
    for (int round = 1; round <= 7; ++round) {
        EXPECT_EQ(store.save("web", bytesOf("state " + std::to_string(round))),
                  static_cast<std::uint64_t>(round));
        const auto services = store.list();
        ASSERT_EQ(services.size(), 1u);
        EXPECT_EQ(services[0].versions.size(), std::min(round, 3)) << "after save " << round;
    }
    EXPECT_EQ(versionNumbers(store.list().at(0)), (std::vector<std::uint64_t>{7, 6, 5}));
    EXPECT_EQ(loadedText(store, "web"), "state 7");
}

TEST_F(StateStoreTest, OneVersionKeptKeepsOnlyTheLastSave) {
    auto store = open({.versions_kept = 1});
    store.save("web", bytesOf("a"));
    store.save("web", bytesOf("b"));
    EXPECT_EQ(versionNumbers(store.list().at(0)), (std::vector<std::uint64_t>{2}));
}

TEST_F(StateStoreTest, ReopeningWithFewerVersionsKeptPrunesAtOnce) {
    {
        auto store = open({.versions_kept = 10});
        for (int round = 1; round <= 6; ++round) {
            store.save("web", bytesOf(std::to_string(round)));
            store.save("db", bytesOf(std::to_string(round)));
        }
    }
    auto smaller = open({.versions_kept = 2});
    const auto services = smaller.list();
    ASSERT_EQ(services.size(), 2u);
    EXPECT_EQ(versionNumbers(services[0]), (std::vector<std::uint64_t>{6, 5}));
    EXPECT_EQ(versionNumbers(services[1]), (std::vector<std::uint64_t>{6, 5}));
}

// ---------------------------------------------------------------------------------------------------------
// Size limit

TEST_F(StateStoreTest, StateOverTheLimitIsRefusedAndTheSavedVersionsStay) {
    auto store = open({.versions_kept = 3, .max_bytes = 16});
    EXPECT_EQ(store.save("web", StateBytes(16, 'a')), 1u) << "exactly the limit is allowed";
    const auto error = expectError([&] { store.save("web", StateBytes(17, 'b')); });
    EXPECT_EQ(error.kind(), Kind::TooLarge);
    const std::string message = error.what();
    EXPECT_NE(message.find("web"), std::string::npos) << message;
    EXPECT_NE(message.find("17 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("limit of 16 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("crash_recovery.state_max_bytes"), std::string::npos) << message;

    const auto result = store.load("web");
    ASSERT_TRUE(result.state);
    EXPECT_EQ(result.state->version, 1u);
    EXPECT_EQ(result.state->data, StateBytes(16, 'a'));
    EXPECT_EQ(versionNumbers(store.list().at(0)), (std::vector<std::uint64_t>{1}));
    EXPECT_EQ(store.save("web", StateBytes(3, 'c')), 2u) << "the refused save used up no version number";
}

TEST_F(StateStoreTest, DefaultLimitIsOneMebibyte) {
    auto store = open();
    EXPECT_EQ(store.settings().max_bytes, 1048576u);
    EXPECT_EQ(store.save("web", StateBytes(1048576, 'x')), 1u);
    EXPECT_EQ(expectError([&] { store.save("web", StateBytes(1048577, 'x')); }).kind(), Kind::TooLarge);
    EXPECT_EQ(store.load("web").state->data.size(), 1048576u);
}

TEST(StateStoreSettings, ComeFromTheCrashRecoveryConfig) {
    CrashRecoveryConfig config;
    config.state_versions_kept = 7;
    config.state_max_bytes = 4096;
    config.state_poison_crashes = 2;
    const auto settings = StateStoreSettings::fromConfig(config);
    EXPECT_EQ(settings.versions_kept, 7u);
    EXPECT_EQ(settings.max_bytes, 4096u);
    EXPECT_EQ(settings.poison_crashes, 2u);

    const auto defaults = StateStoreSettings::fromConfig(CrashRecoveryConfig{});
    EXPECT_EQ(defaults.versions_kept, 3u);
    EXPECT_EQ(defaults.max_bytes, 1048576u);
    EXPECT_EQ(defaults.poison_crashes, 3u);
}

// ---------------------------------------------------------------------------------------------------------
// Checksums

TEST_F(StateStoreTest, CorruptVersionIsReportedAndLoadFallsBackToTheOlderOne) {
    {
        auto store = open();
        store.save("web", bytesOf("one"));
        store.save("web", bytesOf("two"));
        store.save("web", bytesOf("three"));
    }
    flipFirstByte(file_, "web", 3);

    auto store = open();
    EXPECT_FALSE(store.setAside()) << "the database itself is sound";
    const auto result = store.load("web");
    ASSERT_TRUE(result.state);
    EXPECT_EQ(result.state->version, 2u);
    EXPECT_EQ(textOf(result.state->data), "two");
    EXPECT_EQ(result.corrupt_skipped, (std::vector<std::uint64_t>{3}));
    EXPECT_NE(result.warning.find("web: version 3 is corrupt"), std::string::npos) << result.warning;
    EXPECT_NE(result.warning.find("loaded version 2 instead"), std::string::npos) << result.warning;

    const auto versions = store.list().at(0).versions;
    ASSERT_EQ(versions.size(), 3u);
    EXPECT_EQ(versions[0].checksum, ChecksumStatus::Corrupt);
    EXPECT_EQ(versions[1].checksum, ChecksumStatus::Ok);
    EXPECT_EQ(versions[2].checksum, ChecksumStatus::Ok);
    EXPECT_EQ(toString(versions[0].checksum), "corrupt");
    EXPECT_EQ(toString(versions[1].checksum), "ok");
}

TEST_F(StateStoreTest, EveryVersionCorruptLeavesNothingToLoadAndSaysSo) {
    {
        auto store = open();
        store.save("web", bytesOf("one"));
        store.save("web", bytesOf("two"));
    }
    flipFirstByte(file_, "web", 1);
    flipFirstByte(file_, "web", 2);
    // A version cut short is caught as well: its size no longer matches.
    auto store = open();
    store.save("web", bytesOf("three"));
    execute(file_, "UPDATE versions SET data = substr(data, 1, 2) WHERE service = 'web' AND version = 3");

    const auto result = store.load("web");
    EXPECT_FALSE(result.state);
    EXPECT_EQ(result.corrupt_skipped, (std::vector<std::uint64_t>{3, 2, 1}));
    EXPECT_NE(result.warning.find("versions 3, 2, 1 are corrupt"), std::string::npos) << result.warning;
    EXPECT_NE(result.warning.find("no older version is left to load"), std::string::npos) << result.warning;
    // A new save is good again.
    EXPECT_EQ(store.save("web", bytesOf("four")), 4u);
    EXPECT_EQ(loadedText(store, "web"), "four");
}

TEST_F(StateStoreTest, ChecksumIsTheSha256OfTheData) {
    auto store = open();
    store.save("web", bytesOf("abc"));
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT hex(sha256) FROM versions", -1, &statement, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
    const std::string stored = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    sqlite3_finalize(statement);
    sqlite3_close(db);
    EXPECT_EQ(stored, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
}

// ---------------------------------------------------------------------------------------------------------
// The database file

TEST_F(StateStoreTest, FileIsAWalDatabaseWithASchemaVersion) {
    {
        auto store = open();
        store.save("web", bytesOf("x"));
    }
    const auto header = fileBytes(file_);
    ASSERT_GE(header.size(), 100u);
    EXPECT_EQ(header.substr(0, 16), std::string("SQLite format 3\0", 16));
    EXPECT_EQ(header[18], 2) << "file format write version 2 means WAL";
    EXPECT_EQ(header[19], 2) << "file format read version 2 means WAL";
    EXPECT_EQ(header.substr(60, 4), std::string("\0\0\0\1", 4)) << "user_version";
}

TEST_F(StateStoreTest, FileThatIsNotADatabaseIsSetAsideAndAnEmptyStoreStarts) {
    const std::string garbage(8192, 'x');
    std::ofstream(file_, std::ios::binary) << garbage;
    std::ofstream(fs::path(file_.string() + "-wal"), std::ios::binary) << "stale log";

    auto store = open();
    ASSERT_TRUE(store.setAside());
    const auto moved_to = store.setAside()->moved_to;
    // Named after the injected clock's time, next to the file.
    EXPECT_EQ(moved_to, fs::path(file_.string() + ".corrupt-1700000000"));
    EXPECT_EQ(fileBytes(moved_to), garbage);
    EXPECT_EQ(fileBytes(moved_to.string() + "-wal"), "stale log") << "the log goes with its database";
    EXPECT_NE(store.setAside()->reason.find("not a database"), std::string::npos) << store.setAside()->reason;

    EXPECT_TRUE(store.list().empty());
    EXPECT_FALSE(store.load("web").state);
    EXPECT_EQ(store.save("web", bytesOf("fresh")), 1u);

    auto reopened = open();
    EXPECT_FALSE(reopened.setAside());
    EXPECT_EQ(loadedText(reopened, "web"), "fresh");
}

TEST_F(StateStoreTest, DatabaseWithDamagedPagesIsSetAsideAndAnEmptyStoreStarts) {
    {
        auto store = open();
        for (int round = 0; round < 3; ++round) {
            store.save("web", StateBytes(20000, static_cast<std::uint8_t>('a' + round)));
        }
    } // closing the last connection checkpoints the log into the file
    const auto size = fs::file_size(file_);
    ASSERT_GT(size, 8192u);
    {
        // Page 2 is the root of the first table: garbage there breaks the b-tree.
        std::fstream file(file_, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(4096);
        const std::string garbage(4096, '\xa5');
        file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    }
    auto store = open();
    ASSERT_TRUE(store.setAside());
    EXPECT_NE(store.setAside()->reason.find(file_.string()), std::string::npos) << store.setAside()->reason;
    EXPECT_TRUE(store.list().empty());
    EXPECT_EQ(store.save("web", bytesOf("fresh")), 1u);
}

TEST_F(StateStoreTest, SecondCorruptFileInTheSameSecondGetsItsOwnName) {
    for (int round = 0; round < 2; ++round) {
        std::ofstream(file_, std::ios::binary) << std::string(4096, static_cast<char>('a' + round));
        auto store = open();
        ASSERT_TRUE(store.setAside());
    }
    EXPECT_TRUE(fs::exists(file_.string() + ".corrupt-1700000000"));
    EXPECT_TRUE(fs::exists(file_.string() + ".corrupt-1700000000.1"));
}

TEST_F(StateStoreTest, DatabaseFromANewerSchemaIsRefusedAndLeftInPlace) {
    {
        auto store = open();
        store.save("web", bytesOf("x"));
    }
    execute(file_, "PRAGMA user_version = 7");
    const auto error = expectError([&] { open(); });
    EXPECT_EQ(error.kind(), Kind::Storage);
    EXPECT_NE(std::string(error.what()).find(file_.string()), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("schema version 7"), std::string::npos) << error.what();
    EXPECT_TRUE(fs::exists(file_));
}

TEST_F(StateStoreTest, DirectoryThatCannotHoldTheFileIsAClearError) {
    const auto not_a_directory = dir_.path() / "plain-file";
    std::ofstream(not_a_directory) << "x";
    const auto error = expectError([&] { StateStore store(not_a_directory / kStateStoreFileName); });
    EXPECT_EQ(error.kind(), Kind::Storage);
    EXPECT_NE(std::string(error.what()).find(not_a_directory.string() + " is not a directory"),
              std::string::npos)
        << error.what();
}

// ---------------------------------------------------------------------------------------------------------
// Quarantine of poisoned state

TEST_F(StateStoreTest, RepeatedEarlyCrashesQuarantineVersionAfterVersionUntilNoneIsLeft) {
    auto store = open({.versions_kept = 3, .max_bytes = 1024, .poison_crashes = 3});
    store.save("web", bytesOf("old"));
    store.save("web", bytesOf("new"));

    // Version 2 is loaded and the service keeps crashing during its start.
    for (unsigned crash = 1; crash <= 2; ++crash) {
        const auto loaded = store.load("web");
        ASSERT_TRUE(loaded.state);
        ASSERT_EQ(loaded.state->version, 2u);
        store.recordLoaded("web", 2);
        const auto result = store.recordEarlyCrash("web");
        EXPECT_EQ(result.loaded_version, 2u);
        EXPECT_EQ(result.crashes_in_a_row, crash);
        EXPECT_FALSE(result.quarantined);
    }
    store.recordLoaded("web", 2);
    auto result = store.recordEarlyCrash("web");
    EXPECT_EQ(result.crashes_in_a_row, 3u);
    ASSERT_TRUE(result.quarantined);
    EXPECT_EQ(result.quarantined->service, "web");
    EXPECT_EQ(result.quarantined->version, 2u);
    EXPECT_EQ(result.quarantined->next_version, 1u);
    EXPECT_EQ(result.quarantined->reason, "crashed 3 times in a row within its startup window after loading "
                                          "version 2; the next start loads version 1");

    // N-1 next, and the count starts again for it.
    auto loaded = store.load("web");
    ASSERT_TRUE(loaded.state);
    EXPECT_EQ(loaded.state->version, 1u);
    EXPECT_EQ(loaded.warning, "") << "a quarantined version is no damage";
    store.recordLoaded("web", 1);
    EXPECT_FALSE(store.recordEarlyCrash("web").quarantined);
    EXPECT_FALSE(store.recordEarlyCrash("web").quarantined);
    result = store.recordEarlyCrash("web");
    ASSERT_TRUE(result.quarantined);
    EXPECT_EQ(result.quarantined->version, 1u);
    EXPECT_FALSE(result.quarantined->next_version);
    EXPECT_NE(result.quarantined->reason.find("no version is left to load"), std::string::npos)
        << result.quarantined->reason;

    // Then none; both versions are kept and flagged.
    EXPECT_FALSE(store.load("web").state);
    const auto services = store.list();
    ASSERT_EQ(services.size(), 1u);
    ASSERT_EQ(services[0].versions.size(), 2u);
    EXPECT_TRUE(services[0].versions[0].quarantined);
    EXPECT_TRUE(services[0].versions[1].quarantined);
    EXPECT_EQ(services[0].versions[0].checksum, ChecksumStatus::Ok);
    EXPECT_FALSE(services[0].loaded_version) << "nothing loaded since the quarantine";

    // Further crashes count against nothing, and a new save is loadable again.
    EXPECT_FALSE(store.recordEarlyCrash("web").loaded_version);
    EXPECT_EQ(store.save("web", bytesOf("fixed")), 3u);
    EXPECT_EQ(loadedText(store, "web"), "fixed");
}

TEST_F(StateStoreTest, StableRunResetsTheCountOfEarlyCrashes) {
    auto store = open({.versions_kept = 3, .max_bytes = 1024, .poison_crashes = 3});
    store.save("web", bytesOf("one"));
    store.save("web", bytesOf("two"));
    store.recordLoaded("web", 2);
    store.recordEarlyCrash("web");
    store.recordEarlyCrash("web");
    store.recordStable("web");
    EXPECT_EQ(store.list().at(0).early_crashes, 0u);
    EXPECT_EQ(store.list().at(0).loaded_version, 2u) << "a stable run does not change what was loaded";
    EXPECT_EQ(store.recordEarlyCrash("web").crashes_in_a_row, 1u);
    EXPECT_EQ(store.recordEarlyCrash("web").crashes_in_a_row, 2u);
    EXPECT_TRUE(store.recordEarlyCrash("web").quarantined) << "three in a row after the stable run";
}

TEST_F(StateStoreTest, LoadingAnotherVersionStartsTheCountAgain) {
    auto store = open({.versions_kept = 3, .max_bytes = 1024, .poison_crashes = 2});
    store.save("web", bytesOf("one"));
    store.save("web", bytesOf("two"));
    store.recordLoaded("web", 2);
    EXPECT_EQ(store.recordEarlyCrash("web").crashes_in_a_row, 1u);
    store.recordLoaded("web", 2); // the restart loads the same version: the count goes on
    EXPECT_EQ(store.list().at(0).early_crashes, 1u);
    store.recordLoaded("web", 1); // another version: it starts again
    EXPECT_EQ(store.list().at(0).early_crashes, 0u);
    const auto result = store.recordEarlyCrash("web");
    EXPECT_EQ(result.loaded_version, 1u);
    EXPECT_EQ(result.crashes_in_a_row, 1u);
    EXPECT_FALSE(result.quarantined);
}

TEST_F(StateStoreTest, EarlyCrashWithoutALoadedVersionCountsNothing) {
    auto store = open();
    store.save("web", bytesOf("one"));
    const auto result = store.recordEarlyCrash("web");
    EXPECT_FALSE(result.loaded_version);
    EXPECT_EQ(result.crashes_in_a_row, 0u);
    EXPECT_FALSE(result.quarantined);
    EXPECT_FALSE(store.recordEarlyCrash("nobody").loaded_version);
    store.recordStable("nobody"); // nothing to reset, and no error
}

TEST_F(StateStoreTest, RecordLoadedOfAVersionNotStoredOrQuarantinedIsRefused) {
    auto store = open({.versions_kept = 3, .max_bytes = 1024, .poison_crashes = 1});
    store.save("web", bytesOf("one"));
    store.save("web", bytesOf("two"));
    auto error = expectError([&] { store.recordLoaded("web", 9); });
    EXPECT_EQ(error.kind(), Kind::NoSuchVersion);
    EXPECT_NE(std::string(error.what()).find("no saved version 9"), std::string::npos) << error.what();
    EXPECT_EQ(expectError([&] { store.recordLoaded("db", 1); }).kind(), Kind::NoSuchVersion);

    store.recordLoaded("web", 2);
    ASSERT_TRUE(store.recordEarlyCrash("web").quarantined);
    error = expectError([&] { store.recordLoaded("web", 2); });
    EXPECT_EQ(error.kind(), Kind::NoSuchVersion);
    EXPECT_NE(std::string(error.what()).find("quarantined"), std::string::npos) << error.what();
}

TEST_F(StateStoreTest, CountOfEarlyCrashesSurvivesANewInstance) {
    {
        auto store = open();
        store.save("web", bytesOf("one"));
        store.recordLoaded("web", 1);
        store.recordEarlyCrash("web");
        store.recordEarlyCrash("web");
    }
    auto reopened = open();
    const auto result = reopened.recordEarlyCrash("web");
    EXPECT_EQ(result.crashes_in_a_row, 3u);
    ASSERT_TRUE(result.quarantined);
    EXPECT_EQ(result.quarantined->version, 1u);
}

TEST_F(StateStoreTest, LoadedVersionPrunedMeanwhileQuarantinesNothing) {
    auto store = open({.versions_kept = 1, .max_bytes = 1024, .poison_crashes = 1});
    store.save("web", bytesOf("one"));
    store.recordLoaded("web", 1);
    store.save("web", bytesOf("two")); // saved after the load; version 1 is gone
    const auto result = store.recordEarlyCrash("web");
    EXPECT_EQ(result.loaded_version, 1u);
    EXPECT_FALSE(result.quarantined);
    EXPECT_EQ(loadedText(store, "web"), "two");
}

// ---------------------------------------------------------------------------------------------------------
// Remove, list, and many services

TEST_F(StateStoreTest, RemoveDeletesEveryVersionAndTheCountOfOneService) {
    auto store = open();
    store.save("web", bytesOf("one"));
    store.save("web", bytesOf("two"));
    store.save("db", bytesOf("db state"));
    store.recordLoaded("web", 2);
    store.recordEarlyCrash("web");

    EXPECT_EQ(store.remove("web"), 2u);
    EXPECT_FALSE(store.load("web").state);
    const auto services = store.list();
    ASSERT_EQ(services.size(), 1u);
    EXPECT_EQ(services[0].service, "db");
    EXPECT_EQ(loadedText(store, "db"), "db state");
    EXPECT_EQ(store.remove("web"), 0u) << "nothing left to remove";
    EXPECT_EQ(store.remove("nobody"), 0u);

    // A new start: numbers from 1, no crashes counted.
    EXPECT_EQ(store.save("web", bytesOf("again")), 1u);
    EXPECT_FALSE(find(store.list(), "web")->loaded_version);
    EXPECT_EQ(find(store.list(), "web")->early_crashes, 0u);
}

TEST_F(StateStoreTest, ListShowsEveryServiceByNameWithItsVersionsNewestFirst) {
    auto store = open({.versions_kept = 2, .max_bytes = 1024, .poison_crashes = 3});
    const auto first_time = clock_.wallNow();
    store.save("web", bytesOf("12345"));
    clock_.advance(1500ms);
    store.save("web", bytesOf("1234567"));
    clock_.advance(2s);
    store.save("api", bytesOf(""));
    store.recordLoaded("web", 2);
    store.recordEarlyCrash("web");

    const auto services = store.list();
    ASSERT_EQ(services.size(), 2u);
    EXPECT_EQ(services[0].service, "api");
    ASSERT_EQ(services[0].versions.size(), 1u);
    EXPECT_EQ(services[0].versions[0].version, 1u);
    EXPECT_EQ(services[0].versions[0].size, 0u);
    EXPECT_EQ(services[0].versions[0].saved_at, first_time + 3500ms);
    EXPECT_FALSE(services[0].loaded_version);
    EXPECT_EQ(services[0].early_crashes, 0u);

    EXPECT_EQ(services[1].service, "web");
    ASSERT_EQ(services[1].versions.size(), 2u);
    const auto& newest = services[1].versions[0];
    EXPECT_EQ(newest.version, 2u);
    EXPECT_EQ(newest.size, 7u);
    EXPECT_EQ(newest.saved_at, first_time + 1500ms);
    EXPECT_EQ(newest.checksum, ChecksumStatus::Ok);
    EXPECT_FALSE(newest.quarantined);
    const auto& oldest = services[1].versions[1];
    EXPECT_EQ(oldest.version, 1u);
    EXPECT_EQ(oldest.size, 5u);
    EXPECT_EQ(oldest.saved_at, first_time);
    EXPECT_EQ(services[1].loaded_version, 2u);
    EXPECT_EQ(services[1].early_crashes, 1u);
}

TEST_F(StateStoreTest, ManyServicesAreKeptApart) {
    auto store = open({.versions_kept = 3, .max_bytes = 4096, .poison_crashes = 1});
    const int kServices = 25;
    auto nameOf = [](int index) { return "service-" + std::to_string(index); };
    // Interleaved: each round saves once for every service, with content that names both.
    for (int round = 1; round <= 4; ++round) {
        for (int index = 0; index < kServices; ++index) {
            if (index % 5 == 0 && round > 1) {
                continue; // some services save only once
            }
            store.save(nameOf(index), bytesOf(nameOf(index) + " round " + std::to_string(round)));
        }
    }
    // One service saving a lot prunes only its own versions.
    for (int extra = 0; extra < 10; ++extra) {
        store.save("chatty", bytesOf("chatty " + std::to_string(extra)));
    }
    // A quarantine of one touches no other.
    store.recordLoaded(nameOf(1), 4);
    ASSERT_TRUE(store.recordEarlyCrash(nameOf(1)).quarantined);
    store.remove(nameOf(2));

    const auto services = store.list();
    ASSERT_EQ(services.size(), static_cast<std::size_t>(kServices)); // 25 - removed one + chatty
    for (int index = 0; index < kServices; ++index) {
        const auto name = nameOf(index);
        const auto* listed = find(services, name);
        if (index == 2) {
            EXPECT_FALSE(listed);
            EXPECT_FALSE(store.load(name).state);
            continue;
        }
        ASSERT_TRUE(listed) << name;
        if (index % 5 == 0) {
            EXPECT_EQ(versionNumbers(*listed), (std::vector<std::uint64_t>{1})) << name;
            EXPECT_EQ(loadedText(store, name), name + " round 1");
        } else if (index == 1) {
            EXPECT_EQ(loadedText(store, name), name + " round 3");
        } else {
            EXPECT_EQ(versionNumbers(*listed), (std::vector<std::uint64_t>{4, 3, 2})) << name;
            EXPECT_EQ(loadedText(store, name), name + " round 4");
        }
    }
    EXPECT_EQ(versionNumbers(*find(services, "chatty")), (std::vector<std::uint64_t>{10, 9, 8}));
}

// ---------------------------------------------------------------------------------------------------------
// Crash safety

// What the saving child writes as version `version`: its size and every byte follow from the number, so
// that the reader can tell a complete version from anything else.
StateBytes contentOf(std::uint64_t version) {
    StateBytes data(4096 + (version * 7919) % (160 * 1024));
    auto value = static_cast<std::uint32_t>(version * 2654435761u);
    for (auto& byte : data) {
        value = value * 1664525u + 1013904223u;
        byte = static_cast<std::uint8_t>(value >> 24);
    }
    return data;
}

// In a child: saves the versions after the newest one stored, without end, and writes each number to
// `acknowledged` once save() has returned it.
[[noreturn]] void saveForever(const fs::path& file, StateStoreSettings settings, int acknowledged) {
    try {
        StateStore store(file, settings);
        const auto services = store.list();
        std::uint64_t next = services.empty() ? 1 : services[0].versions.at(0).version + 1;
        for (;; ++next) {
            const auto version = store.save("web", contentOf(next));
            if (version != next || !writeAll(acknowledged, &version, sizeof version)) {
                ::_exit(2);
            }
        }
    } catch (...) {
        ::_exit(3);
    }
}

TEST_F(StateStoreTest, AcknowledgedSavesSurviveSigkillAndTheNewestVersionIsComplete) {
    const StateStoreSettings settings{.versions_kept = 3, .max_bytes = 1024 * 1024, .poison_crashes = 3};
    std::uint64_t last_acknowledged = 0;
    // Several rounds, each killed after another number of acknowledgements, so that the kill lands at
    // different points of a save; every round continues from what the previous one left.
    for (const int acknowledgements_before_kill : {3, 8, 13, 21, 34}) {
        SCOPED_TRACE("killed after " + std::to_string(acknowledgements_before_kill) + " acknowledgements");
        int pipe_fds[2];
        ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0) << std::strerror(errno);
        const pid_t child = ::fork();
        ASSERT_GE(child, 0) << std::strerror(errno);
        if (child == 0) {
            ::close(pipe_fds[0]);
            saveForever(file_, settings, pipe_fds[1]);
        }
        ::close(pipe_fds[1]);
        const std::uint64_t first_of_round = last_acknowledged + 1;
        bool child_gone = false;
        for (int count = 0; count < acknowledgements_before_kill; ++count) {
            std::uint64_t version = 0;
            if (!test::waitReadable(pipe_fds[0], 60s) || !readAll(pipe_fds[0], &version, sizeof version)) {
                child_gone = true;
                break;
            }
            last_acknowledged = version;
        }
        ::kill(child, SIGKILL);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_FALSE(child_gone) << "the saving child stopped early, status " << status;
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
        // Acknowledgements written between the last read and the kill.
        for (std::uint64_t version = 0; readAll(pipe_fds[0], &version, sizeof version);) {
            last_acknowledged = version;
        }
        ::close(pipe_fds[0]);
        ASSERT_GE(last_acknowledged, first_of_round + acknowledgements_before_kill - 1);

        StateStore store(file_, settings, clock_);
        EXPECT_FALSE(store.setAside()) << "a killed writer leaves no damage";
        const auto services = store.list();
        ASSERT_EQ(services.size(), 1u);
        const auto& versions = services[0].versions;
        ASSERT_FALSE(versions.empty());
        const auto newest = versions[0].version;
        // Every acknowledged save is there; one more may be, committed just before its acknowledgement.
        EXPECT_TRUE(newest == last_acknowledged || newest == last_acknowledged + 1)
            << "newest " << newest << ", last acknowledged " << last_acknowledged;
        // Kept: the newest versions_kept numbers without a gap, each complete; older ones only by that rule.
        const auto kept = std::min<std::uint64_t>(newest, settings.versions_kept);
        ASSERT_EQ(versions.size(), kept);
        for (std::uint64_t index = 0; index < kept; ++index) {
            EXPECT_EQ(versions[index].version, newest - index);
            EXPECT_EQ(versions[index].checksum, ChecksumStatus::Ok) << "version " << versions[index].version;
            EXPECT_EQ(versions[index].size, contentOf(newest - index).size());
        }
        const auto loaded = store.load("web");
        ASSERT_TRUE(loaded.state);
        EXPECT_EQ(loaded.state->version, newest);
        EXPECT_TRUE(loaded.state->data == contentOf(newest))
            << "version " << newest << " is not what was saved";
        EXPECT_TRUE(loaded.corrupt_skipped.empty());
        last_acknowledged = newest;
    }
}

// ---------------------------------------------------------------------------------------------------------
// A full disk

// Exit statuses of the child that tries a full file system.
constexpr int kChildPassed = 0;
constexpr int kChildFailed = 1;
constexpr int kChildCannotMount = 77;

// In a child with its own mount namespace: a tiny tmpfs at `mount_point`, then a store on it that runs out
// of space. "" when everything held, otherwise what did not.
std::string saveOnAFullFileSystem(const fs::path& mount_point) {
    StateStore store(mount_point / kStateStoreFileName, {.versions_kept = 3, .max_bytes = 64 * 1024 * 1024});
    const StateBytes first(4096, 'a');
    if (store.save("web", first) != 1) {
        return "the first save did not get version 1";
    }
    try {
        store.save("web", StateBytes(1024 * 1024, 'b'));
        return "saving 1 MiB on a 256 KiB file system succeeded";
    } catch (const StateStoreError& error) {
        const std::string message = error.what();
        if (error.kind() != StateStoreError::Kind::StorageFull) {
            return "the error is not StorageFull: " + message;
        }
        for (const char* part : {"web: cannot save the state", "database or disk is full", "no space left"}) {
            if (message.find(part) == std::string::npos) {
                return "the error lacks \"" + std::string(part) + "\": " + message;
            }
        }
    }
    const auto result = store.load("web");
    if (!result.state || result.state->version != 1 || result.state->data != first) {
        return "version 1 did not stay intact after the failed save";
    }
    if (store.list().at(0).versions.size() != 1) {
        return "the failed save left a version behind";
    }
    // A restarted service still gets its state while the disk stays full: opening writes nothing.
    {
        StateStore reopened(mount_point / kStateStoreFileName, {.versions_kept = 3});
        const auto reloaded = reopened.load("web");
        if (!reloaded.state || reloaded.state->data != first) {
            return "version 1 could not be loaded by a new instance on the full file system";
        }
    }
    // The space the failed save took in the log is reused: a small save still fits.
    if (store.save("web", StateBytes(1024, 'c')) != 2) {
        return "a small save after the failed one did not get version 2";
    }
    StateStore reopened(mount_point / kStateStoreFileName,
                        {.versions_kept = 3, .max_bytes = 64 * 1024 * 1024});
    if (reopened.load("web").state->data != StateBytes(1024, 'c')) {
        return "version 2 did not survive reopening";
    }
    return "";
}

TEST_F(StateStoreTest, FullDiskFailsTheSaveClearlyAndTheSavedVersionStays) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "mounting a small tmpfs needs root";
    }
    const auto mount_point = dir_.path() / "small-fs";
    fs::create_directory(mount_point);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0) << std::strerror(errno);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0) << std::strerror(errno);
    if (child == 0) {
        ::close(pipe_fds[0]);
        auto report = [&](int status, const std::string& message) {
            writeAll(pipe_fds[1], message.data(), message.size());
            ::_exit(status);
        };
        // The mount lives in the child's own namespace, so it goes away with the child whatever happens.
        if (::unshare(CLONE_NEWNS) != 0) {
            report(kChildCannotMount, std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno));
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            report(kChildCannotMount, std::string("making mounts private: ") + std::strerror(errno));
        }
        if (::mount("tmpfs", mount_point.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") != 0) {
            report(kChildCannotMount, std::string("mount -t tmpfs: ") + std::strerror(errno));
        }
        try {
            const auto problem = saveOnAFullFileSystem(mount_point);
            report(problem.empty() ? kChildPassed : kChildFailed, problem);
        } catch (const std::exception& error) {
            report(kChildFailed, std::string("unexpected exception: ") + error.what());
        }
    }
    ::close(pipe_fds[1]);
    std::string message;
    char buffer[512];
    for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) {
        message.append(buffer, static_cast<std::size_t>(got));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died, status " << status;
    if (WEXITSTATUS(status) == kChildCannotMount) {
        GTEST_SKIP() << "no private tmpfs for a full disk: " << message;
    }
    EXPECT_EQ(WEXITSTATUS(status), kChildPassed) << message;
}

} // namespace
} // namespace tau
