#include "tau/client/state_handoff.h"
#include "tau/state_handoff_files.h"
#include "temp_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace tau {
namespace {

std::optional<client::HandedOverState> readFile(const std::filesystem::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << file;
    auto state = client::readHandedOverState(fd);
    ::close(fd);
    return state;
}

TEST(StateHandoff, AWrittenVersionReadsBackWhole) {
    test::TempDir dir;
    StateHandoffFiles files(dir.path() / "handoff");
    StateVersion version;
    version.version = 7;
    version.data = {0, '\n', 255, 'x'};
    version.saved_at =
        std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
    files.write("web", version);
    const auto state = readFile(files.fileOf("web"));
    ASSERT_TRUE(state.has_value());
    EXPECT_EQ(state->version, 7u);
    EXPECT_EQ(state->saved_at_usec, 1'700'000'000'123'456u);
    EXPECT_EQ(state->data, version.data);

    version.version = 8;
    version.data = {};
    files.write("web", version);
    EXPECT_EQ(readFile(files.fileOf("web"))->version, 8u);
    EXPECT_TRUE(readFile(files.fileOf("web"))->data.empty());
    files.remove("web");
    EXPECT_FALSE(std::filesystem::exists(files.fileOf("web")));
}

TEST(StateHandoff, ACutShortOrForeignFileIsNoState) {
    test::TempDir dir;
    const auto file = dir.path() / "state";
    test::writeFile(file, client::stateHandoffHeader(3, 0, 10) + "12345");
    EXPECT_FALSE(readFile(file).has_value());
    test::writeFile(file, "something else\n12345");
    EXPECT_FALSE(readFile(file).has_value());
    test::writeFile(file, client::stateHandoffHeader(3, 0, 5) + "12345");
    EXPECT_TRUE(readFile(file).has_value());
}

} // namespace
} // namespace tau
