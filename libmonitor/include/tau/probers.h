#pragma once
// The probers that look at a service from the event loop without ever blocking it: a command, a TCP
// connection, an HTTP GET. A dbus probe needs the bus, which lives elsewhere; its prober comes from the
// caller (makeProber).

#include "tau/config.h"
#include "tau/event_loop.h"
#include "tau/probes.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tau {

// Runs a command without a shell, in a process group of its own, with its output going to a pipe of which
// the first line is kept for the message. Exit status 0 is a success. Whatever the command leaves behind in
// its process group is killed when it exits; a cancelled attempt's whole process group is killed with
// SIGKILL and the command reaped.
class ExecProber final : public Prober {
  public:
    ExecProber(Reactor& reactor, std::vector<std::string> command);
    ~ExecProber() override;
    ExecProber(const ExecProber&) = delete;
    ExecProber& operator=(const ExecProber&) = delete;

    void start(std::chrono::steady_clock::duration timeout, Done done) override;
    void cancel() override;

    // The command of the attempt in flight; 0 when there is none.
    pid_t runningPid() const { return running_ ? running_->pid : 0; }

  private:
    struct Running {
        pid_t pid = 0;
        int pidfd = -1;
        int output_fd = -1;
        std::string first_line;
        bool line_complete = false;
    };

    void onExit();
    void readOutput();
    void closeOutput();
    void reapKilled(int pidfd);

    Reactor& reactor_;
    std::vector<std::string> command_;
    std::optional<Running> running_;
    Done done_;
    // Killed commands whose exit has not been seen yet, by pidfd, reaped as soon as they are gone.
    std::vector<int> dying_;
    std::optional<Reactor::TimerId> report_timer_;
};

// What the tcp and http probers share: a non-blocking connect from the reactor and exactly one outcome per
// attempt, reported from a reactor callback.
class SocketProber : public Prober {
  public:
    ~SocketProber() override;
    SocketProber(const SocketProber&) = delete;
    SocketProber& operator=(const SocketProber&) = delete;

    void start(std::chrono::steady_clock::duration timeout, Done done) final;
    void cancel() override;

  protected:
    SocketProber(Reactor& reactor, std::string host, std::uint16_t port);

    // The connect is under way on fd_: watch it for what comes next.
    virtual void connecting() = 0;
    void finish(ProbeOutcome outcome);

    Reactor& reactor_;
    const std::string address_text_; // "127.0.0.1:8080", "[::1]:8080"
    int fd_ = -1;

  private:
    void closeSocket();

    std::string host_;
    std::uint16_t port_;
    Done done_;
    std::optional<Reactor::TimerId> report_timer_;
};

// Connects without blocking to a numeric address or "localhost" (127.0.0.1); a connection established is a
// success.
class TcpProber final : public SocketProber {
  public:
    TcpProber(Reactor& reactor, std::string host, std::uint16_t port);

  private:
    void connecting() override;
    void onWritable();
};

// Sends `GET <path> HTTP/1.1` and reads until the status line is complete: a status from 200 to 399 is a
// success, any other is a failure named "HTTP <status>". At most kMaxStatusLine bytes are read.
class HttpProber final : public SocketProber {
  public:
    static constexpr std::size_t kMaxStatusLine = 4096;

    // `host_header` empty: host:port.
    HttpProber(Reactor& reactor, std::string host, std::uint16_t port, std::string path,
               std::string host_header = {});

    void cancel() override;

  private:
    void connecting() override;
    void onReady();
    void sendRequest();
    void readResponse();

    std::string path_;
    std::string host_header_;
    bool connected_ = false;
    std::string request_;
    std::size_t sent_ = 0;
    std::string response_;
};

// Reads a status line ("HTTP/1.1 503 Service Unavailable") into an outcome; nullopt while more is needed.
// `ended` says that no more will come.
std::optional<ProbeOutcome> parseHttpStatusLine(std::string_view received, bool ended);

// Makes the prober for a dbus probe; it gets the probe's configuration (bus_name, timeout_seconds).
using DbusProberFactory = std::function<std::unique_ptr<Prober>(const ProbeConfig& config)>;

class ProberError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The prober for a probe configuration. Throws ProberError for a dbus probe without `dbus_prober`, or one
// that makes none.
std::unique_ptr<Prober> makeProber(Reactor& reactor, const ProbeConfig& config,
                                   const DbusProberFactory& dbus_prober = {});

} // namespace tau
