#include "tau/sha256.h"

#include <cstdint>
#include <gtest/gtest.h>
#include <string>
#include <vector>

namespace tau {
namespace {

std::string hexOf(std::string_view message) {
    return toHex(Sha256::of(message));
}

// ---------------------------------------------------------------------------------------------------------
// FIPS 180-2 (Appendix B) and NIST CAVS test vectors

TEST(Sha256, EmptyMessage) {
    EXPECT_EQ(hexOf(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, OneBlockMessageAbc) {
    EXPECT_EQ(hexOf("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, MultiBlockMessageOf448Bits) {
    // 56 bytes: the padding no longer fits into the message's block and needs a second one.
    EXPECT_EQ(hexOf("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, MessageOf896Bits) {
    EXPECT_EQ(
        hexOf(
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
            "mnopqrstnopqrstu"),
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, OneMillionTimesTheLetterA) {
    const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    EXPECT_EQ(hexOf(std::string(1'000'000, 'a')), expected);

    // The same message fed in pieces that do not line up with the 64-byte blocks.
    Sha256 hash;
    const std::string piece(997, 'a');
    std::size_t fed = 0;
    for (; fed + piece.size() <= 1'000'000; fed += piece.size()) {
        hash.update(piece);
    }
    hash.update(std::string(1'000'000 - fed, 'a'));
    EXPECT_EQ(toHex(hash.finish()), expected);
}

// ---------------------------------------------------------------------------------------------------------
// Padding at the block boundaries (expected digests from sha256sum)

struct BoundaryCase {
    std::size_t length;
    const char* digest;
};

class Sha256Boundary : public testing::TestWithParam<BoundaryCase> {};

TEST_P(Sha256Boundary, MessageOfThatManyBytes) {
    const auto& [length, digest] = GetParam();
    const std::string message(length, 'x');
    EXPECT_EQ(hexOf(message), digest);
    // Byte by byte, through the buffer of a partial block every time.
    Sha256 hash;
    for (const char byte : message) {
        hash.update(std::string_view(&byte, 1));
    }
    EXPECT_EQ(toHex(hash.finish()), digest);
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, Sha256Boundary,
    testing::Values(BoundaryCase{55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
                    BoundaryCase{56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
                    BoundaryCase{63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
                    BoundaryCase{64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
                    BoundaryCase{65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
                    BoundaryCase{119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
                    BoundaryCase{120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
                    BoundaryCase{127, "70156a14adbabf98cff3a71c7084b417abf057a8efd27329ca36b7202c87d81f"},
                    BoundaryCase{128, "24da1b81d0b16df6428eee73c69fcb2a93c76bc6df706f0c6670fe6bfe800464"}),
    [](const testing::TestParamInfo<BoundaryCase>& info) {
        return "Bytes" + std::to_string(info.param.length);
    });

// ---------------------------------------------------------------------------------------------------------
// Interface

TEST(Sha256, EveryByteValueCountsAsBinaryData) {
    std::vector<std::uint8_t> bytes;
    for (int round = 0; round < 4; ++round) {
        for (int value = 0; value < 256; ++value) {
            bytes.push_back(static_cast<std::uint8_t>(value));
        }
    }
    EXPECT_EQ(toHex(Sha256::of(bytes)), "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9");
}

TEST(Sha256, FinishStartsANewMessage) {
    Sha256 hash;
    hash.update("abc");
    EXPECT_EQ(toHex(hash.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(toHex(hash.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hash.update("ab").update("c");
    EXPECT_EQ(toHex(hash.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, HexIsLowerCaseAndSixtyFourCharacters) {
    Sha256Digest digest{};
    digest[0] = 0xAB;
    digest[31] = 0x0F;
    const auto hex = toHex(digest);
    EXPECT_EQ(hex.size(), 64u);
    EXPECT_EQ(hex.substr(0, 2), "ab");
    EXPECT_EQ(hex.substr(62), "0f");
}

} // namespace
} // namespace tau
