#pragma once
// SHA-256 as FIPS 180-4 defines it: the checksum of every saved version of a service's session state, and
// the link of the log's hash chain. Small and dependency-free, so that no crypto library is needed.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tau {

using Sha256Digest = std::array<std::uint8_t, 32>;

// Incremental: feed the message in pieces of any size with update(), then finish().
class Sha256 {
  public:
    Sha256() { reset(); }

    Sha256& update(std::span<const std::uint8_t> data);
    Sha256& update(std::string_view data);

    // The digest of everything fed since construction or the last finish(); starts a new message.
    Sha256Digest finish();

    // The digest of one message given whole.
    static Sha256Digest of(std::string_view data);
    static Sha256Digest of(std::span<const std::uint8_t> data);

  private:
    static constexpr std::size_t kBlockSize = 64;

    void reset();
    void compress(const std::uint8_t* block);

    std::array<std::uint32_t, 8> state_{};
    std::array<std::uint8_t, kBlockSize> pending_{}; // the start of a block not complete yet
    std::size_t pending_size_ = 0;
    std::uint64_t message_bytes_ = 0;
};

// Lower-case hexadecimal, 64 characters: the form sha256sum prints.
std::string toHex(const Sha256Digest& digest);

} // namespace tau
