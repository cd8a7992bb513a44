#pragma once
// The files behind state handoff (tau/client/state_handoff.h): one per service with `state_handoff`, in
// <session_state_path>/handoff, always holding the version LoadState would return. Written as durably as
// the store itself (file and directory synced before a save is acknowledged), so that a service never
// resumes from an older version than one it was told was saved.

#include "tau/state_store.h"

#include <filesystem>
#include <string>

namespace tau {

// The directory of the handoff files in crash_recovery.session_state_path.
inline constexpr const char* kStateHandoffDirectory = "handoff";

class StateHandoffFiles {
  public:
    // `directory` is created when needed.
    explicit StateHandoffFiles(std::filesystem::path directory) : directory_(std::move(directory)) {}

    // Replaces the service's file with `state`. Throws StateStoreError (StorageFull, Storage).
    void write(const std::string& service, const StateVersion& state);
    // Deletes it; a service without a file starts without handed-over state.
    void remove(const std::string& service);

    std::filesystem::path fileOf(const std::string& service) const { return directory_ / service; }
    const std::filesystem::path& directory() const { return directory_; }

  private:
    std::filesystem::path directory_;
};

} // namespace tau
