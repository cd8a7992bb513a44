// The bus layer's pure parts: choosing a bus, naming objects, and the access policy. No bus is opened here.

#include "tau/bus/authorizer.h"
#include "tau/bus/connection.h"
#include "tau/bus/log_sink.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <optional>
#include <ostream>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace tau::bus {

// Readable names in failure messages; found by argument-dependent lookup, so it lives with BusChoice.
[[maybe_unused]] static void PrintTo(BusChoice::Kind kind, std::ostream* os) {
    *os << BusChoice{kind, "<address>"}.toString();
}

} // namespace tau::bus

namespace tau::bus {
namespace {

// ---------------------------------------------------------------------------------------------------------
// BusChoice

TEST(BusChoice, DefaultIsAuto) {
    const BusChoice choice;
    EXPECT_EQ(choice.kind, BusChoice::Kind::Auto);
    EXPECT_EQ(choice.toString(), "auto");
}

TEST(BusChoice, ParsesTheNamedBuses) {
    EXPECT_EQ(BusChoice::parse("auto").kind, BusChoice::Kind::Auto);
    EXPECT_EQ(BusChoice::parse("system").kind, BusChoice::Kind::System);
    EXPECT_EQ(BusChoice::parse("session").kind, BusChoice::Kind::Session);
    EXPECT_EQ(BusChoice::parse("private").kind, BusChoice::Kind::Private);
    for (const char* name : {"auto", "system", "session", "private"}) {
        EXPECT_TRUE(BusChoice::parse(name).address.empty()) << name;
    }
}

TEST(BusChoice, ParsesAddresses) {
    for (const char* address : {"unix:path=/run/tau-monitor/bus", "unix:abstract=tau,guid=0123456789abcdef",
                                "tcp:host=localhost,port=4711", "unix:path=/tmp/with:colon=and,equals"}) {
        const auto choice = BusChoice::parse(address);
        EXPECT_EQ(choice.kind, BusChoice::Kind::Address) << address;
        EXPECT_EQ(choice.address, address);
    }
}

TEST(BusChoice, RejectsGarbageNamingTheValue) {
    for (const char* text : {"", "garbage", "AUTO", " system", "session ", "unix", "unix:", ":path=/run/x",
                             "unix:path", "path=/run/x", "=unix:path"}) {
        try {
            BusChoice::parse(text);
            ADD_FAILURE() << "'" << text << "' was accepted";
        } catch (const std::invalid_argument& error) {
            EXPECT_NE(std::string(error.what()).find("'" + std::string(text) + "'"), std::string::npos)
                << error.what();
        }
    }
}

TEST(BusChoice, ToStringRoundTrips) {
    for (const char* text : {"auto", "system", "session", "private", "unix:path=/run/tau-monitor/bus",
                             "tcp:host=127.0.0.1,port=1"}) {
        const auto choice = BusChoice::parse(text);
        EXPECT_EQ(choice.toString(), text);
        const auto again = BusChoice::parse(choice.toString());
        EXPECT_EQ(again.kind, choice.kind) << text;
        EXPECT_EQ(again.address, choice.address) << text;
    }
}

TEST(BusChoice, AddressKindPrintsItsAddress) {
    const BusChoice choice{BusChoice::Kind::Address, "unix:path=/x"};
    EXPECT_EQ(choice.toString(), "unix:path=/x");
}

// ---------------------------------------------------------------------------------------------------------
// Object paths

TEST(ServiceObjectPath, EncodesNamesBelowTheServiceSubtree) {
    EXPECT_EQ(serviceObjectPath("my-app"), "/org/tauos/Processes1/service/my_2dapp");
    EXPECT_EQ(serviceObjectPath("web"), "/org/tauos/Processes1/service/web");
    EXPECT_EQ(serviceObjectPath("a.b"), "/org/tauos/Processes1/service/a_2eb");
    EXPECT_EQ(serviceObjectPath("under_score"), "/org/tauos/Processes1/service/under_5fscore");
    // An object path element may not start with a digit.
    EXPECT_EQ(serviceObjectPath("1st"), "/org/tauos/Processes1/service/_31st");
}

TEST(ServiceObjectPath, DistinctNamesGetDistinctPaths) {
    // '_' itself is escaped, so a literal "_2d" cannot collide with an encoded '-'.
    EXPECT_NE(serviceObjectPath("my-app"), serviceObjectPath("my_2dapp"));
    EXPECT_NE(serviceObjectPath("a.b"), serviceObjectPath("a-b"));
}

TEST(ServiceObjectPath, StartsWithTheProcessesPath) {
    const std::string path = serviceObjectPath("anything");
    EXPECT_EQ(path.rfind(std::string(kProcessesPath) + "/service/", 0), 0u) << path;
}

// ---------------------------------------------------------------------------------------------------------
// AccessPolicy

// "nobody" with its primary group, as the system defines them.
struct Nobody {
    uid_t uid;
    std::string primary_group;
};

std::optional<Nobody> findNobody() {
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) {
        return std::nullopt;
    }
    const uid_t uid = pw->pw_uid;
    const group* gr = ::getgrgid(pw->pw_gid);
    if (gr == nullptr) {
        return std::nullopt;
    }
    return Nobody{uid, gr->gr_name};
}

TEST(AccessPolicy, RootIsAlwaysAllowed) {
    EXPECT_TRUE(AccessPolicy(1000, {}).allows(0));
    EXPECT_TRUE(AccessPolicy(1000, {"no-such-group-tau"}).allows(0));
}

TEST(AccessPolicy, TheDaemonsOwnUserIsAllowed) {
    EXPECT_TRUE(AccessPolicy(4321, {}).allows(4321));
    EXPECT_TRUE(AccessPolicy(::getuid(), {}).allows(::getuid()));
}

TEST(AccessPolicy, AnotherUserIsRefusedWithoutAdminGroups) {
    EXPECT_FALSE(AccessPolicy(0, {}).allows(4321));
    EXPECT_FALSE(AccessPolicy(1000, {}).allows(1001));
    const auto nobody = findNobody();
    ASSERT_TRUE(nobody.has_value()) << "the system has no user 'nobody' with a group";
    EXPECT_FALSE(AccessPolicy(0, {}).allows(nobody->uid));
}

TEST(AccessPolicy, MemberOfAnAdminGroupIsAllowed) {
    const auto nobody = findNobody();
    ASSERT_TRUE(nobody.has_value()) << "the system has no user 'nobody' with a group";
    EXPECT_TRUE(AccessPolicy(0, {nobody->primary_group}).allows(nobody->uid));
    // Unknown group names are skipped, not fatal.
    EXPECT_TRUE(AccessPolicy(0, {"no-such-group-tau", nobody->primary_group}).allows(nobody->uid));
}

TEST(AccessPolicy, AdminGroupsTheUserIsNotInDoNotHelp) {
    const auto nobody = findNobody();
    ASSERT_TRUE(nobody.has_value()) << "the system has no user 'nobody' with a group";
    EXPECT_FALSE(AccessPolicy(0, {"no-such-group-tau"}).allows(nobody->uid));
    // Root's group: nobody is neither in it by default nor listed as a member on a sane system.
    const group* root_group = ::getgrgid(0);
    ASSERT_NE(root_group, nullptr);
    const std::string root_group_name = root_group->gr_name;
    if (root_group_name != nobody->primary_group) {
        EXPECT_FALSE(AccessPolicy(0, {root_group_name}).allows(nobody->uid));
    }
}

TEST(AccessPolicy, UidWithoutAPasswdEntryIsRefused) {
    // No account means no groups to check, whatever admin_groups says.
    const uid_t unknown = 3'999'999'123u;
    ASSERT_EQ(::getpwuid(unknown), nullptr);
    const group* root_group = ::getgrgid(0);
    ASSERT_NE(root_group, nullptr);
    EXPECT_FALSE(AccessPolicy(0, {root_group->gr_name}).allows(unknown));
}

// ---- QueueingLogSink

std::shared_ptr<spdlog::logger> loggerInto(const std::shared_ptr<QueueingLogSink>& sink) {
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
    return logger;
}

std::vector<std::string> messagesOf(const std::vector<LogRecord>& records) {
    std::vector<std::string> messages;
    for (const auto& record : records) {
        messages.push_back(record.message);
    }
    return messages;
}

TEST(QueueingLogSink, QueuesRecordsWithTheServiceNameLevelAndPid) {
    auto sink = std::make_shared<QueueingLogSink>("svc", 10);
    auto logger = loggerInto(sink);
    logger->warn("careful {}", 1);
    const auto batch = sink->take(10);
    ASSERT_EQ(batch.size(), 1u);
    EXPECT_EQ(batch[0].service, "svc");
    EXPECT_EQ(batch[0].level, LogLevel::Warning);
    EXPECT_EQ(batch[0].pid, ::getpid());
    EXPECT_EQ(batch[0].message, "careful 1");
    EXPECT_TRUE(sink->take(10).empty());
}

TEST(QueueingLogSink, OverflowIsCountedAndReportedFirst) {
    auto sink = std::make_shared<QueueingLogSink>("svc", 2);
    auto logger = loggerInto(sink);
    for (int i = 0; i < 5; ++i) {
        logger->info("record {}", i);
    }
    const auto batch = sink->take(10);
    ASSERT_EQ(batch.size(), 3u);
    EXPECT_EQ(batch[0].event, "log.dropped");
    EXPECT_EQ(batch[0].fields.at("dropped"), "3");
    EXPECT_EQ(batch[1].message, "record 0");
    EXPECT_EQ(batch[2].message, "record 1");
}

TEST(QueueingLogSink, PutBackRecordsComeFirstAndInOrder) {
    auto sink = std::make_shared<QueueingLogSink>("svc", 10);
    auto logger = loggerInto(sink);
    logger->info("a");
    logger->info("b");
    auto undelivered = sink->take(10);
    logger->info("c");
    sink->putBack(std::move(undelivered));
    EXPECT_EQ(messagesOf(sink->take(10)), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(QueueingLogSink, EventAndFieldsComeFromLogEvent) {
    auto sink = std::make_shared<QueueingLogSink>("svc", 10);
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(loggerInto(sink));
    logEvent(spdlog::level::info, "service.started", {{"pid", "7"}}, "started");
    spdlog::info("plain");
    spdlog::set_default_logger(previous);
    const auto batch = sink->take(10);
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0].event, "service.started");
    EXPECT_EQ(batch[0].fields.at("pid"), "7");
    EXPECT_TRUE(batch[1].event.empty());
    EXPECT_TRUE(batch[1].fields.empty());
}

} // namespace
} // namespace tau::bus
