#pragma once

#include <chrono>
#include <filesystem>
#include <string>

namespace tau::test {

// A fresh directory under the system's temporary directory, removed with everything in it. It is
// world-traversable, so that a test may run a client as another user inside it.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

std::string readFile(const std::filesystem::path& path);

// Waits until `fd` is readable, at most `timeout`; false when it is not by then.
bool waitReadable(int fd, std::chrono::milliseconds timeout);
void writeFile(const std::filesystem::path& path, const std::string& text);

} // namespace tau::test
