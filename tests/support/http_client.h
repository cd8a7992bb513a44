#pragma once
// A blocking HTTP/1.1 client for tests, on loopback only: one request per connection, read to the end.
// It blocks its thread, so a test whose server runs in an event loop calls it from another thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace tau::test {

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers; // names in lower case
    std::string body;
};

// Sends `request` as it is to 127.0.0.1:`port` and returns every byte received until the server closes
// the connection. Throws std::runtime_error when it cannot connect, or when `timeout` passes first.
std::string exchange(std::uint16_t port, std::string_view request,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Throws std::runtime_error on something that is not an HTTP/1.x response.
HttpResponse parseHttpResponse(std::string_view raw);

// `method` `target` with "Connection: close".
HttpResponse httpRequest(std::uint16_t port, std::string_view method, std::string_view target,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Percent-encodes everything but RFC 3986's unreserved characters, for a query string.
std::string urlEncode(std::string_view text);

// A port nobody listens on at this moment: bound to 127.0.0.1 with port 0, then released.
std::uint16_t freeLoopbackPort();

} // namespace tau::test
