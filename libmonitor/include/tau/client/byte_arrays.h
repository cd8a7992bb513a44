#pragma once
// sdbus-c++ 1.2 moves a byte array (D-Bus "ay") one element at a time, a library call per byte: a 256 KiB
// session state then costs milliseconds to send and as much to receive. These overloads, preferred by
// overload resolution over the library's templates wherever this header is included, move it as one block
// with sd-bus's array calls. The bytes on the wire are the same either way.

#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-bus.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace sdbus {

namespace tau_detail {
// Reaches the sd-bus message inside a Message through a pointer to its protected member.
struct MessageAccess : Message {
    static sd_bus_message* raw(Message& message) {
        return static_cast<sd_bus_message*>(message.*(&MessageAccess::msg_));
    }
    static void fail(Message& message) { message.*(&MessageAccess::ok_) = false; }
};
} // namespace tau_detail

inline Message& operator<<(Message& message, const std::vector<std::uint8_t>& bytes) {
    const int r = sd_bus_message_append_array(tau_detail::MessageAccess::raw(message), 'y', bytes.data(),
                                              bytes.size());
    if (r < 0) {
        throw sdbus::createError(-r, "Failed to serialize a byte array");
    }
    return message;
}

inline Message& operator>>(Message& message, std::vector<std::uint8_t>& bytes) {
    const void* data = nullptr;
    std::size_t size = 0;
    const int r = sd_bus_message_read_array(tau_detail::MessageAccess::raw(message), 'y', &data, &size);
    if (r < 0) {
        throw sdbus::createError(-r, "Failed to deserialize a byte array");
    }
    if (r == 0) {
        tau_detail::MessageAccess::fail(message); // nothing more to read, as the library's own reads report
        return message;
    }
    const auto* begin = static_cast<const std::uint8_t*>(data);
    bytes.assign(begin, begin + size);
    return message;
}

} // namespace sdbus
