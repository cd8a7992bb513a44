#include "tau/notify_socket.h"
#include "temp_dir.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <memory>
#include <optional>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;

// Generous: every wait below ends as soon as its event happens, and only a broken test waits this long.
constexpr auto kEventTimeout = 10s;

using test::waitReadable;

// Gathers messages until `enough` is satisfied with what has arrived, or the timeout passes; the caller
// asserts on the result either way.
template <typename Predicate>
std::vector<NotifyMessage> receiveUntil(NotifySocket& socket, Predicate enough,
                                        std::chrono::milliseconds timeout = kEventTimeout) {
    std::vector<NotifyMessage> received;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        for (NotifyMessage& message : socket.receiveAll()) {
            received.push_back(std::move(message));
        }
        if (enough(received)) {
            return received;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) {
            return received;
        }
        waitReadable(socket.fd(), left);
    }
}

auto anyMessage(bool (*matches)(const NotifyMessage&)) {
    return [matches](const std::vector<NotifyMessage>& received) {
        return std::any_of(received.begin(), received.end(), matches);
    };
}

bool isReady(const NotifyMessage& message) {
    return message.ready;
}
bool isStopping(const NotifyMessage& message) {
    return message.stopping;
}

std::size_t countWatchdogPings(const std::vector<NotifyMessage>& received) {
    return static_cast<std::size_t>(
        std::count_if(received.begin(), received.end(),
                      [](const NotifyMessage& message) { return message.watchdog_ping; }));
}

sockaddr_un addressOf(const fs::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    return address;
}

// Sends one datagram the way sd_notify() does, optionally with descriptors and with explicit credentials.
void sendDatagram(const fs::path& to, std::string_view payload, const std::vector<int>& passed_fds = {},
                  bool explicit_credentials = false) {
    const int sender = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(sender, 0) << std::strerror(errno);
    sockaddr_un address = addressOf(to);
    iovec data{const_cast<char*>(payload.data()), payload.size()};
    msghdr header{};
    header.msg_name = &address;
    header.msg_namelen = sizeof address;
    header.msg_iov = &data;
    header.msg_iovlen = 1;

    alignas(cmsghdr) std::array<unsigned char, CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 8)>
        control{};
    std::size_t control_length = 0;
    if (explicit_credentials) {
        control_length += CMSG_SPACE(sizeof(ucred));
    }
    if (!passed_fds.empty()) {
        control_length += CMSG_SPACE(sizeof(int) * passed_fds.size());
    }
    if (control_length > 0) {
        header.msg_control = control.data();
        header.msg_controllen = control_length;
        cmsghdr* item = CMSG_FIRSTHDR(&header);
        if (explicit_credentials) {
            const ucred credentials{::getpid(), ::getuid(), ::getgid()};
            item->cmsg_level = SOL_SOCKET;
            item->cmsg_type = SCM_CREDENTIALS;
            item->cmsg_len = CMSG_LEN(sizeof credentials);
            std::memcpy(CMSG_DATA(item), &credentials, sizeof credentials);
            item = CMSG_NXTHDR(&header, item);
        }
        if (!passed_fds.empty()) {
            item->cmsg_level = SOL_SOCKET;
            item->cmsg_type = SCM_RIGHTS;
            item->cmsg_len = CMSG_LEN(sizeof(int) * passed_fds.size());
            std::memcpy(CMSG_DATA(item), passed_fds.data(), sizeof(int) * passed_fds.size());
        }
    }
    const ssize_t sent = ::sendmsg(sender, &header, MSG_NOSIGNAL);
    const int error = errno;
    ::close(sender);
    ASSERT_EQ(sent, static_cast<ssize_t>(payload.size())) << std::strerror(error);
}

std::size_t countOpenDescriptors() {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        ++count;
    }
    return count;
}

std::uint64_t monotonicNanoseconds() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000U + static_cast<std::uint64_t>(now.tv_nsec);
}

// The test service, started with posix_spawn in a process group of its own. A test ends it by its pid
// with SIGTERM and reaps it; if the test did not get that far, the whole group is killed and reaped here.
class ServiceProcess {
  public:
    ServiceProcess(const std::vector<std::string>& arguments, const std::vector<std::string>& environment) {
        std::vector<std::string> argv_storage{TAU_TEST_NOTIFY_SERVICE};
        argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
        std::vector<char*> argv;
        for (std::string& argument : argv_storage) {
            argv.push_back(argument.data());
        }
        argv.push_back(nullptr);
        std::vector<std::string> environment_storage = environment;
        std::vector<char*> envp;
        for (std::string& variable : environment_storage) {
            envp.push_back(variable.data());
        }
        envp.push_back(nullptr);

        // Whatever other tests in this process did to signals, the service starts with a clean slate.
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        sigset_t no_signals;
        sigemptyset(&no_signals);
        sigset_t default_signals;
        sigemptyset(&default_signals);
        sigaddset(&default_signals, SIGTERM);
        posix_spawnattr_setsigmask(&attributes, &no_signals);
        posix_spawnattr_setsigdefault(&attributes, &default_signals);
        posix_spawnattr_setpgroup(&attributes, 0);
        posix_spawnattr_setflags(&attributes,
                                 POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        const int result = ::posix_spawn(&pid_, argv[0], nullptr, &attributes, argv.data(), envp.data());
        posix_spawnattr_destroy(&attributes);
        if (result != 0) {
            pid_ = 0;
            throw std::system_error(result, std::generic_category(), "posix_spawn " + argv_storage[0]);
        }
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    }
    ~ServiceProcess() {
        if (pid_ > 0 && !reaped_) {
            ::kill(-pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (pidfd_ >= 0) {
            ::close(pidfd_);
        }
    }
    ServiceProcess(const ServiceProcess&) = delete;
    ServiceProcess& operator=(const ServiceProcess&) = delete;

    pid_t pid() const { return pid_; }
    void terminate() const { ASSERT_EQ(::kill(pid_, SIGTERM), 0) << std::strerror(errno); }

    // The raw wait status, or nothing if the service did not exit in time.
    std::optional<int> waitForExit() {
        if (pidfd_ < 0 || !waitReadable(pidfd_, kEventTimeout)) {
            ADD_FAILURE() << "service " << pid_ << " did not exit in time";
            return std::nullopt;
        }
        int status = 0;
        if (::waitpid(pid_, &status, 0) != pid_) {
            ADD_FAILURE() << "waitpid: " << std::strerror(errno);
            return std::nullopt;
        }
        reaped_ = true;
        return status;
    }

  private:
    pid_t pid_ = 0;
    int pidfd_ = -1;
    bool reaped_ = false;
};

std::string notifySocketVariable(const NotifySocket& socket) {
    return "NOTIFY_SOCKET=" + socket.path().string();
}

void expectCleanExit(const std::optional<int>& status) {
    ASSERT_TRUE(status.has_value());
    ASSERT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
    EXPECT_EQ(WEXITSTATUS(*status), 0);
}

// ---------------------------------------------------------------------------------------------------------
// parseNotifyPayload

TEST(NotifyPayload, ParsesEveryKnownKey) {
    const NotifyMessage message = parseNotifyPayload("READY=1\nRELOADING=1\nSTOPPING=1\nWATCHDOG=1\n"
                                                     "STATUS=Serving 3 clients\nWATCHDOG_USEC=250000\n"
                                                     "MAINPID=4242\nEXTEND_TIMEOUT_USEC=9000000\nERRNO=2\n");
    EXPECT_TRUE(message.ready);
    EXPECT_TRUE(message.reloading);
    EXPECT_TRUE(message.stopping);
    EXPECT_TRUE(message.watchdog_ping);
    EXPECT_FALSE(message.watchdog_trigger);
    EXPECT_EQ(message.status, "Serving 3 clients");
    EXPECT_EQ(message.watchdog_usec, 250000U);
    EXPECT_EQ(message.main_pid, 4242);
    EXPECT_EQ(message.extend_timeout_usec, 9000000U);
    EXPECT_EQ(message.errno_value, 2);
    EXPECT_TRUE(message.unknown.empty());
    EXPECT_TRUE(message.malformed.empty());
}

TEST(NotifyPayload, ParsesWatchdogTrigger) {
    const NotifyMessage message = parseNotifyPayload("WATCHDOG=trigger");
    EXPECT_TRUE(message.watchdog_trigger);
    EXPECT_FALSE(message.watchdog_ping);
    EXPECT_TRUE(message.malformed.empty());
}

TEST(NotifyPayload, NothingIsSetByAnEmptyPayload) {
    const NotifyMessage message = parseNotifyPayload("");
    EXPECT_FALSE(message.ready || message.reloading || message.stopping || message.watchdog_ping ||
                 message.watchdog_trigger);
    EXPECT_FALSE(message.status || message.watchdog_usec || message.main_pid || message.extend_timeout_usec ||
                 message.errno_value);
    EXPECT_TRUE(message.unknown.empty());
    EXPECT_TRUE(message.malformed.empty());
}

TEST(NotifyPayload, TrailingNewlineAndBlankLinesMakeNoDifference) {
    for (const std::string_view payload :
         {"READY=1\nSTATUS=up", "READY=1\nSTATUS=up\n", "\nREADY=1\n\n\nSTATUS=up\n\n"}) {
        SCOPED_TRACE(payload);
        const NotifyMessage message = parseNotifyPayload(payload);
        EXPECT_TRUE(message.ready);
        EXPECT_EQ(message.status, "up");
        EXPECT_TRUE(message.unknown.empty());
        EXPECT_TRUE(message.malformed.empty());
    }
}

TEST(NotifyPayload, StatusKeepsEverythingAfterTheFirstEqualsSign) {
    EXPECT_EQ(parseNotifyPayload("STATUS=a=b = c ").status, "a=b = c ");
    // An empty STATUS= is how a daemon clears its status, so it is a value, not an absence.
    EXPECT_EQ(parseNotifyPayload("STATUS=").status, "");
}

TEST(NotifyPayload, KeepsUnknownAssignmentsInOrder) {
    const NotifyMessage message = parseNotifyPayload("FDSTORE=1\nREADY=1\nFDNAME=listener\nX_CUSTOM=");
    EXPECT_TRUE(message.ready);
    EXPECT_EQ(message.unknown, (std::vector<std::string>{"FDSTORE=1", "FDNAME=listener", "X_CUSTOM="}));
    EXPECT_TRUE(message.malformed.empty());
}

TEST(NotifyPayload, FirstAssignmentOfAKeyWins) {
    const NotifyMessage message = parseNotifyPayload("STATUS=first\nMAINPID=10\nSTATUS=second\nMAINPID=20");
    EXPECT_EQ(message.status, "first");
    EXPECT_EQ(message.main_pid, 10);
    EXPECT_EQ(message.unknown, (std::vector<std::string>{"STATUS=second", "MAINPID=20"}));
}

TEST(NotifyPayload, LinesThatAreNotAssignmentsAreMalformed) {
    const NotifyMessage message = parseNotifyPayload("READY\n=1\nhello world\nSTOPPING=1");
    EXPECT_FALSE(message.ready);
    EXPECT_TRUE(message.stopping);
    EXPECT_EQ(message.malformed, (std::vector<std::string>{"READY", "=1", "hello world"}));
}

TEST(NotifyPayload, FlagsAcceptOnlyTheirDocumentedValues) {
    for (const std::string_view line : {"READY=0", "READY=yes", "READY=", "RELOADING=2", "STOPPING=true",
                                        "WATCHDOG=0", "WATCHDOG=TRIGGER", "READY=1\r"}) {
        SCOPED_TRACE(line);
        const NotifyMessage message = parseNotifyPayload(line);
        EXPECT_FALSE(message.ready || message.reloading || message.stopping || message.watchdog_ping ||
                     message.watchdog_trigger);
        EXPECT_EQ(message.malformed, std::vector<std::string>{std::string(line)});
    }
}

TEST(NotifyPayload, NumbersAtTheEdgesOfTheirRangesAreAccepted) {
    const NotifyMessage message =
        parseNotifyPayload("WATCHDOG_USEC=18446744073709551615\nEXTEND_TIMEOUT_USEC=0\nMAINPID=2147483647\n"
                           "ERRNO=4095");
    EXPECT_EQ(message.watchdog_usec, 18446744073709551615U);
    EXPECT_EQ(message.extend_timeout_usec, 0U);
    EXPECT_EQ(message.main_pid, 2147483647);
    EXPECT_EQ(message.errno_value, 4095);
    EXPECT_TRUE(message.malformed.empty());
    EXPECT_EQ(parseNotifyPayload("ERRNO=0").errno_value, 0);
}

TEST(NotifyPayload, BadOrOutOfRangeNumbersAreMalformed) {
    for (const std::string_view line :
         {"WATCHDOG_USEC=18446744073709551616", "WATCHDOG_USEC=-1", "WATCHDOG_USEC=+5", "WATCHDOG_USEC= 5",
          "WATCHDOG_USEC=5 ", "WATCHDOG_USEC=0x10", "WATCHDOG_USEC=", "WATCHDOG_USEC=1.5",
          "EXTEND_TIMEOUT_USEC=99999999999999999999", "EXTEND_TIMEOUT_USEC=ten", "MAINPID=0", "MAINPID=-1",
          "MAINPID=2147483648", "MAINPID=", "MAINPID=self", "ERRNO=4096", "ERRNO=-2", "ERRNO=ENOENT",
          "ERRNO=99999999999"}) {
        SCOPED_TRACE(line);
        const NotifyMessage message = parseNotifyPayload(line);
        EXPECT_FALSE(message.watchdog_usec || message.extend_timeout_usec || message.main_pid ||
                     message.errno_value);
        EXPECT_EQ(message.malformed, std::vector<std::string>{std::string(line)});
    }
}

TEST(NotifyPayload, EmbeddedNulMakesItsLineMalformed) {
    using namespace std::string_view_literals;
    const NotifyMessage message = parseNotifyPayload("STATUS=ok\0READY=1\nSTOPPING=1"sv);
    EXPECT_FALSE(message.status.has_value());
    EXPECT_FALSE(message.ready);
    EXPECT_TRUE(message.stopping);
    EXPECT_EQ(message.malformed, std::vector<std::string>{std::string("STATUS=ok\0READY=1"sv)});
}

TEST(NotifyPayload, PayloadCannotNameItsSender) {
    const NotifyMessage message = parseNotifyPayload("MAINPID=1\nSENDER_PID=1\nUID=0");
    EXPECT_EQ(message.sender_pid, 0);
    EXPECT_EQ(message.main_pid, 1);
}

// ---------------------------------------------------------------------------------------------------------
// NotifySocket

TEST(NotifySocket, DatagramCarriesTheSendersPidAndUid) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    sendDatagram(socket.path(), "READY=1\nSTATUS=hello", {}, /*explicit_credentials=*/true);

    const auto received = receiveUntil(socket, anyMessage(isReady));
    ASSERT_EQ(received.size(), 1U);
    EXPECT_EQ(received[0].sender_pid, ::getpid());
    EXPECT_EQ(received[0].sender_uid, ::getuid());
    EXPECT_TRUE(received[0].ready);
    EXPECT_EQ(received[0].status, "hello");
    EXPECT_EQ(socket.droppedDatagrams(), 0U);
}

TEST(NotifySocket, SenderPidComesFromTheKernelNotFromThePayload) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    const sockaddr_un address = addressOf(socket.path());
    static constexpr std::string_view kLie = "MAINPID=1\nREADY=1";

    // Another process, sending without any control message: the kernel attaches its credentials anyway.
    const pid_t sender = ::fork();
    ASSERT_GE(sender, 0);
    if (sender == 0) {
        const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const bool sent =
            fd >= 0 && ::sendto(fd, kLie.data(), kLie.size(), 0, reinterpret_cast<const sockaddr*>(&address),
                                sizeof address) == static_cast<ssize_t>(kLie.size());
        ::_exit(sent ? 0 : 1);
    }
    const auto received = receiveUntil(socket, anyMessage(isReady));
    int status = 0;
    ASSERT_EQ(::waitpid(sender, &status, 0), sender);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    ASSERT_EQ(received.size(), 1U);
    EXPECT_EQ(received[0].sender_pid, sender);
    EXPECT_EQ(received[0].sender_uid, ::getuid());
    EXPECT_EQ(received[0].main_pid, 1);
}

TEST(NotifySocket, ReceiveAllReadsEveryPendingDatagramInOrder) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    // Sending on a local datagram socket queues the datagram before sendmsg returns: no waiting needed.
    sendDatagram(socket.path(), "STATUS=one");
    sendDatagram(socket.path(), "STATUS=two");
    sendDatagram(socket.path(), "STATUS=three");

    const auto received = socket.receiveAll();
    ASSERT_EQ(received.size(), 3U);
    EXPECT_EQ(received[0].status, "one");
    EXPECT_EQ(received[1].status, "two");
    EXPECT_EQ(received[2].status, "three");
    EXPECT_TRUE(socket.receiveAll().empty());
}

TEST(NotifySocket, ReceiveAllReturnsAtOnceWhenNothingIsPending) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    EXPECT_TRUE(socket.receiveAll().empty());
    EXPECT_EQ(socket.droppedDatagrams(), 0U);
}

TEST(NotifySocket, PassedDescriptorsAreClosed) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    int pipe_ends[2];
    ASSERT_EQ(::pipe2(pipe_ends, O_CLOEXEC), 0);
    const int null_device = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(null_device, 0);

    const std::size_t before = countOpenDescriptors();
    sendDatagram(socket.path(), "FDSTORE=1\nFDNAME=stash", {pipe_ends[0], pipe_ends[1], null_device});
    const auto received = socket.receiveAll();
    const std::size_t after = countOpenDescriptors();
    ::close(pipe_ends[0]);
    ::close(pipe_ends[1]);
    ::close(null_device);

    EXPECT_EQ(after, before);
    ASSERT_EQ(received.size(), 1U);
    EXPECT_EQ(received[0].unknown, (std::vector<std::string>{"FDSTORE=1", "FDNAME=stash"}));
}

TEST(NotifySocket, DescriptorsPassedWithAnOversizedDatagramAreClosedToo) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    const int null_device = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(null_device, 0);

    const std::size_t before = countOpenDescriptors();
    sendDatagram(socket.path(), std::string(kNotifyDatagramMax + 1, 'x'), {null_device});
    EXPECT_TRUE(socket.receiveAll().empty());
    const std::size_t after = countOpenDescriptors();
    ::close(null_device);

    EXPECT_EQ(after, before);
    EXPECT_EQ(socket.droppedDatagrams(), 1U);
}

TEST(NotifySocket, OversizedDatagramIsDroppedAndCounted) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    // The limit itself is accepted; one byte more is not, even though it would parse.
    const std::string at_limit = "STATUS=" + std::string(kNotifyDatagramMax - 7, 'a');
    const std::string over_limit = "READY=1\nSTATUS=" + std::string(kNotifyDatagramMax, 'b');
    sendDatagram(socket.path(), at_limit);
    sendDatagram(socket.path(), over_limit);
    sendDatagram(socket.path(), "STOPPING=1");

    const auto received = socket.receiveAll();
    ASSERT_EQ(received.size(), 2U);
    EXPECT_EQ(received[0].status, std::string(kNotifyDatagramMax - 7, 'a'));
    EXPECT_FALSE(received[0].ready || received[1].ready);
    EXPECT_TRUE(received[1].stopping);
    EXPECT_EQ(socket.droppedDatagrams(), 1U);
}

TEST(NotifySocket, DescriptorIsNonBlockingAndCloseOnExec) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    EXPECT_EQ(socket.path(), dir.path() / "notify");
    EXPECT_NE(::fcntl(socket.fd(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(socket.fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(NotifySocket, SocketFileIsWritableByEveryoneWhateverTheUmask) {
    TempDir dir;
    const mode_t previous = ::umask(077);
    std::optional<NotifySocket> socket;
    try {
        socket.emplace(dir.path() / "notify");
    } catch (...) {
        ::umask(previous);
        throw;
    }
    ::umask(previous);

    struct stat info {};
    ASSERT_EQ(::lstat(socket->path().c_str(), &info), 0);
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
    EXPECT_EQ(info.st_mode & 07777, 0666U);
}

TEST(NotifySocket, SocketFileIsRemovedOnDestruction) {
    TempDir dir;
    const fs::path path = dir.path() / "notify";
    {
        NotifySocket socket(path);
        EXPECT_TRUE(fs::is_socket(path));
    }
    EXPECT_FALSE(fs::exists(fs::symlink_status(path)));
}

TEST(NotifySocket, DestructionLeavesASocketThatReplacedOursAlone) {
    TempDir dir;
    const fs::path path = dir.path() / "notify";
    auto first = std::make_unique<NotifySocket>(path);
    fs::remove(path);
    NotifySocket second(path);
    first.reset();

    ASSERT_TRUE(fs::is_socket(path));
    sendDatagram(path, "READY=1");
    EXPECT_EQ(second.receiveAll().size(), 1U);
}

TEST(NotifySocket, StaleSocketFileIsReplaced) {
    TempDir dir;
    const fs::path path = dir.path() / "notify";
    // What a crashed supervisor leaves behind: a socket file nobody is bound to any more.
    {
        const int leftover = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(leftover, 0);
        const sockaddr_un address = addressOf(path);
        ASSERT_EQ(::bind(leftover, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
        ::close(leftover);
    }
    ASSERT_TRUE(fs::is_socket(path));

    NotifySocket socket(path);
    sendDatagram(path, "READY=1");
    EXPECT_EQ(socket.receiveAll().size(), 1U);
}

TEST(NotifySocket, LiveSocketIsNotTakenOver) {
    TempDir dir;
    const fs::path path = dir.path() / "notify";
    NotifySocket owner(path);
    try {
        NotifySocket intruder(path);
        FAIL() << "a second socket took over a live one";
    } catch (const std::system_error& error) {
        EXPECT_EQ(error.code().value(), EADDRINUSE);
        EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos) << error.what();
    }
    sendDatagram(path, "READY=1");
    EXPECT_EQ(owner.receiveAll().size(), 1U);
}

TEST(NotifySocket, FileThatIsNotASocketIsNotDeleted) {
    TempDir dir;
    const fs::path path = dir.path() / "precious.txt";
    test::writeFile(path, "keep me");
    EXPECT_THROW(NotifySocket{path}, std::system_error);
    EXPECT_EQ(test::readFile(path), "keep me");
}

TEST(NotifySocket, LongestPathThatFitsIsAccepted) {
    TempDir dir;
    const std::size_t limit = sizeof(sockaddr_un::sun_path) - 1;
    const std::size_t prefix = dir.path().string().size() + 1;
    ASSERT_LT(prefix, limit) << "the temporary directory's path is too long for this test";
    const fs::path path = dir.path() / std::string(limit - prefix, 'n');
    ASSERT_EQ(path.string().size(), limit);

    NotifySocket socket(path);
    sendDatagram(path, "READY=1");
    EXPECT_EQ(socket.receiveAll().size(), 1U);
}

TEST(NotifySocket, TooLongPathThrowsNamingThePath) {
    TempDir dir;
    const std::size_t limit = sizeof(sockaddr_un::sun_path) - 1;
    const fs::path path = dir.path() / std::string(limit + 1 - dir.path().string().size() - 1, 'n');
    ASSERT_EQ(path.string().size(), limit + 1);
    try {
        NotifySocket socket(path);
        FAIL() << "a path of " << path.string().size() << " bytes was accepted";
    } catch (const std::system_error& error) {
        EXPECT_EQ(error.code().value(), ENAMETOOLONG);
        EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos) << error.what();
    }
    EXPECT_FALSE(fs::exists(fs::symlink_status(path)));
}

TEST(NotifySocket, RelativePathIsRefused) {
    try {
        NotifySocket socket("relative/notify");
        FAIL() << "a relative path was accepted";
    } catch (const std::system_error& error) {
        EXPECT_EQ(error.code().value(), EINVAL);
        EXPECT_NE(std::string(error.what()).find("relative/notify"), std::string::npos) << error.what();
    }
}

TEST(NotifySocket, MissingDirectoryThrowsNamingThePath) {
    TempDir dir;
    const fs::path path = dir.path() / "missing" / "notify";
    try {
        NotifySocket socket(path);
        FAIL() << "bound in a directory that does not exist";
    } catch (const std::system_error& error) {
        EXPECT_EQ(error.code().value(), ENOENT);
        EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos) << error.what();
    }
}

// ---------------------------------------------------------------------------------------------------------
// The real tau-test-notify-service, which speaks through libsystemd's own sd_notify().

TEST(NotifyService, ReadyAndStatusArriveWithTheServicesPidAndStoppingFollowsSigterm) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--status", "serving requests"}, {notifySocketVariable(socket)});

    auto received = receiveUntil(socket, [](const std::vector<NotifyMessage>& so_far) {
        return std::any_of(so_far.begin(), so_far.end(),
                           [](const NotifyMessage& message) { return message.status == "serving requests"; });
    });
    ASSERT_EQ(received.size(), 2U);
    EXPECT_TRUE(received[0].ready);
    EXPECT_EQ(received[0].status, "ready");
    EXPECT_FALSE(received[1].ready);
    EXPECT_EQ(received[1].status, "serving requests");
    for (const NotifyMessage& message : received) {
        EXPECT_EQ(message.sender_pid, service.pid());
        EXPECT_EQ(message.sender_uid, ::getuid());
        EXPECT_TRUE(message.malformed.empty());
    }

    service.terminate();
    received = receiveUntil(socket, anyMessage(isStopping));
    ASSERT_EQ(received.size(), 1U);
    EXPECT_TRUE(received[0].stopping);
    EXPECT_EQ(received[0].sender_pid, service.pid());
    expectCleanExit(service.waitForExit());
}

TEST(NotifyService, WatchdogPingsArriveWhenTheWatchdogIsEnabled) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--watchdog"}, {notifySocketVariable(socket), "WATCHDOG_USEC=100000"});

    const auto received = receiveUntil(
        socket, [](const std::vector<NotifyMessage>& so_far) { return countWatchdogPings(so_far) >= 3; });
    EXPECT_GE(countWatchdogPings(received), 3U);
    for (const NotifyMessage& message : received) {
        EXPECT_EQ(message.sender_pid, service.pid());
    }

    service.terminate();
    EXPECT_TRUE(anyMessage(isStopping)(receiveUntil(socket, anyMessage(isStopping))));
    expectCleanExit(service.waitForExit());
}

TEST(NotifyService, NoWatchdogPingsWithoutWatchdogUsec) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--watchdog", "--exit-after-ms", "300"}, {notifySocketVariable(socket)});
    expectCleanExit(service.waitForExit());

    // Every datagram the service sent is queued by the time it has exited.
    const auto received = socket.receiveAll();
    EXPECT_TRUE(anyMessage(isReady)(received));
    EXPECT_EQ(countWatchdogPings(received), 0U);
}

TEST(NotifyService, WatchdogPingsStopWhenTheServiceHangs) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    // Pings every 20 ms until 200 ms in, then silence until the exit at 400 ms. A service that ignored
    // --hang-after-ms would ping about 20 times; one that honours it cannot ping more than 10.
    ServiceProcess service({"--watchdog", "--hang-after-ms", "200", "--exit-after-ms", "400"},
                           {notifySocketVariable(socket), "WATCHDOG_USEC=40000"});
    expectCleanExit(service.waitForExit());

    const auto received = socket.receiveAll();
    EXPECT_LE(countWatchdogPings(received), 10U);
    EXPECT_FALSE(anyMessage(isStopping)(received)) << "STOPPING=1 is only for SIGTERM";
}

TEST(NotifyService, ExtendTimeoutArrivesBeforeReady) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--extend-usec", "5000000", "--ready-after-ms", "50"},
                           {notifySocketVariable(socket)});

    const auto received = receiveUntil(socket, anyMessage(isReady));
    ASSERT_EQ(received.size(), 2U);
    EXPECT_EQ(received[0].extend_timeout_usec, 5000000U);
    EXPECT_FALSE(received[0].ready);
    EXPECT_TRUE(received[1].ready);
    service.terminate();
    expectCleanExit(service.waitForExit());
}

TEST(NotifyService, NoReadyStillReportsStatus) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--no-ready", "--status", "warming up"}, {notifySocketVariable(socket)});

    auto received =
        receiveUntil(socket, [](const std::vector<NotifyMessage>& so_far) { return !so_far.empty(); });
    ASSERT_EQ(received.size(), 1U);
    EXPECT_EQ(received[0].status, "warming up");
    EXPECT_FALSE(received[0].ready);

    service.terminate();
    received = receiveUntil(socket, anyMessage(isStopping));
    EXPECT_FALSE(anyMessage(isReady)(received));
    expectCleanExit(service.waitForExit());
}

TEST(NotifyService, MainPidNamesTheForkedChild) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--mainpid-child"}, {notifySocketVariable(socket)});

    const auto received = receiveUntil(socket, anyMessage(isReady));
    ASSERT_EQ(received.size(), 2U);
    ASSERT_TRUE(received[0].main_pid.has_value());
    const pid_t worker = *received[0].main_pid;
    EXPECT_NE(worker, service.pid());
    EXPECT_EQ(received[0].sender_pid, service.pid());
    EXPECT_TRUE(received[1].ready);

    // The worker is the service's child and sleeps; a pidfd lets us end it without racing pid reuse.
    const int worker_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, worker, 0));
    ASSERT_GE(worker_pidfd, 0) << std::strerror(errno);
    std::ifstream stat_file("/proc/" + std::to_string(worker) + "/stat");
    std::string stat_line;
    std::getline(stat_file, stat_line);
    std::istringstream fields(stat_line.substr(stat_line.rfind(')') + 2));
    char state = 0;
    pid_t parent = 0;
    fields >> state >> parent;
    EXPECT_EQ(parent, service.pid());

    EXPECT_EQ(::syscall(SYS_pidfd_send_signal, worker_pidfd, SIGTERM, nullptr, 0), 0) << std::strerror(errno);
    EXPECT_TRUE(waitReadable(worker_pidfd, kEventTimeout)) << "the worker ignored SIGTERM";
    ::close(worker_pidfd);
    service.terminate();
    expectCleanExit(service.waitForExit());
}

TEST(NotifyService, StampRecordsPidAndStartTime) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    const fs::path stamp = dir.path() / "stamps";
    const std::uint64_t before = monotonicNanoseconds();
    ServiceProcess service({"--stamp", stamp.string()}, {notifySocketVariable(socket)});
    // The stamp is written before anything is sent, so readiness means it is there.
    ASSERT_TRUE(anyMessage(isReady)(receiveUntil(socket, anyMessage(isReady))));
    const std::uint64_t after = monotonicNanoseconds();

    std::istringstream line(test::readFile(stamp));
    pid_t pid = 0;
    std::uint64_t started = 0;
    ASSERT_TRUE(static_cast<bool>(line >> pid >> started)) << test::readFile(stamp);
    EXPECT_EQ(pid, service.pid());
    EXPECT_GE(started, before);
    EXPECT_LE(started, after);
    service.terminate();
    expectCleanExit(service.waitForExit());
}

TEST(NotifyService, ExitAfterEndsCleanlyWithoutStopping) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--exit-after-ms", "50"}, {notifySocketVariable(socket)});
    expectCleanExit(service.waitForExit());

    const auto received = socket.receiveAll();
    EXPECT_TRUE(anyMessage(isReady)(received));
    EXPECT_FALSE(anyMessage(isStopping)(received));
}

TEST(NotifyService, RefusesAnInvalidNumber) {
    TempDir dir;
    NotifySocket socket(dir.path() / "notify");
    ServiceProcess service({"--ready-after-ms", "-5"}, {notifySocketVariable(socket)});
    const auto status = service.waitForExit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << "wait status " << *status;
    EXPECT_TRUE(socket.receiveAll().empty());
}

} // namespace
} // namespace tau
