#pragma once

#include <filesystem>
#include <string>

namespace tau {

// A database file that could not be read, moved out of the way so that its store could start again empty.
struct SetAsideDatabase {
    std::filesystem::path moved_to;
    std::string reason; // SQLite's message
};

} // namespace tau
