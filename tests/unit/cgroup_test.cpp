#include "tau/cgroup.h"
#include "tau/spawner.h"
#include "temp_dir.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <limits>
#include <pwd.h>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::readFile;
using test::writeFile;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::uint64_t kMiB = 1024 * 1024;

// A fake machine in a temporary directory: <dir>/proc for /proc and <dir>/root for the filesystem that the
// mount points in mountinfo refer to.
class FakeMachine {
  public:
    FakeMachine() {
        fs::create_directories(proc() / "self");
        fs::create_directories(root());
    }
    fs::path proc() const { return dir_.path() / "proc"; }
    fs::path root() const { return dir_.path() / "root"; }
    CgroupRoots roots() const { return CgroupRoots{proc(), root()}; }

    void setCgroupMembership(const std::string& content) { writeFile(proc() / "self" / "cgroup", content); }
    void setMountInfo(const std::string& content) { writeFile(proc() / "self" / "mountinfo", content); }

    // A cgroup directory as the kernel would show it, below <root>.
    fs::path addCgroup(const std::string& path, const std::string& controllers) {
        const fs::path directory = root() / fs::path(path).relative_path();
        fs::create_directories(directory);
        writeFile(directory / "cgroup.controllers", controllers + "\n");
        writeFile(directory / "cgroup.procs", "");
        writeFile(directory / "cgroup.subtree_control", "");
        return directory;
    }

  private:
    test::TempDir dir_;
};

const std::string kRootMount = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
const std::string kUnifiedMount =
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
    "cgroup2 rw,nsdelegate,memory_recursiveprot\n";
const std::string kHybridMounts =
    "30 22 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 "
    "rw,nsdelegate\n"
    "32 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "33 30 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,memory\n"
    "34 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup "
    "rw,cpu,cpuacct\n";

// ---------------------------------------------------------------------------------------------------------
// Detection

TEST(CgroupDetection, FindsADelegatedCgroupOnAUnifiedHierarchy) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/system.slice/tau-monitor.service\n");
    machine.setMountInfo(kRootMount + kUnifiedMount);
    const fs::path own =
        machine.addCgroup("/sys/fs/cgroup/system.slice/tau-monitor.service", "cpuset cpu io memory pids");

    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_TRUE(detection.usable()) << detection.unusable_reason;
    EXPECT_EQ(detection.directory, own);
}

TEST(CgroupDetection, ExplainsAHybridHierarchy) {
    FakeMachine machine;
    machine.setCgroupMembership("12:memory:/system.slice/tau-monitor.service\n"
                                "11:cpu,cpuacct:/system.slice/tau-monitor.service\n"
                                "1:name=systemd:/system.slice/tau-monitor.service\n"
                                "0::/system.slice/tau-monitor.service\n");
    machine.setMountInfo(kRootMount + kHybridMounts);
    machine.addCgroup("/sys/fs/cgroup/unified/system.slice/tau-monitor.service", "");

    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_FALSE(detection.usable());
    EXPECT_EQ(detection.unusable_reason, "cgroup v2 is mounted at /sys/fs/cgroup/unified but its memory and "
                                         "cpu controllers are bound to cgroup v1 (hybrid hierarchy)");
}

TEST(CgroupDetection, NamesTheOneControllerBoundToCgroupV1) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/\n");
    machine.setMountInfo(kRootMount + "31 22 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
                                      "33 22 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
    machine.addCgroup("/sys/fs/cgroup/unified", "cpu io pids");

    EXPECT_EQ(
        detectDelegatedCgroup(machine.roots()).unusable_reason,
        "cgroup v2 is mounted at /sys/fs/cgroup/unified but its memory controller is bound to cgroup v1 "
        "(hybrid hierarchy)");
}

TEST(CgroupDetection, CgroupV1OnlyIsUnusable) {
    FakeMachine machine;
    machine.setCgroupMembership("4:memory:/user.slice\n3:cpu,cpuacct:/user.slice\n");
    machine.setMountInfo(kRootMount + "33 22 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");

    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_FALSE(detection.usable());
    EXPECT_THAT(detection.unusable_reason, HasSubstr("cgroup v1 only"));
}

TEST(CgroupDetection, NoCgroup2MountIsUnusable) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/system.slice/tau-monitor.service\n");
    machine.setMountInfo(kRootMount);

    EXPECT_EQ(detectDelegatedCgroup(machine.roots()).unusable_reason, "no cgroup2 mount");
}

TEST(CgroupDetection, UnreadableProcIsUnusable) {
    FakeMachine machine;
    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_FALSE(detection.usable());
    EXPECT_THAT(detection.unusable_reason, HasSubstr((machine.proc() / "self" / "cgroup").string()));
    EXPECT_THAT(detection.unusable_reason, HasSubstr(std::strerror(ENOENT)));
}

TEST(CgroupDetection, ControllersTheParentDidNotDelegateAreNamed) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/user.slice/user-1000.slice/session-2.scope\n");
    machine.setMountInfo(kRootMount + kUnifiedMount);
    const fs::path own =
        machine.addCgroup("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope", "pids");

    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_FALSE(detection.usable());
    EXPECT_EQ(detection.unusable_reason,
              "the cgroup " + own.string() +
                  " does not offer the memory and cpu controllers (its cgroup.controllers: \"pids\"); the "
                  "parent cgroup has not delegated them");
}

TEST(CgroupDetection, ASingleMissingControllerIsNamed) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/tau\n");
    machine.setMountInfo(kRootMount + kUnifiedMount);
    machine.addCgroup("/sys/fs/cgroup/tau", "memory pids");

    EXPECT_THAT(detectDelegatedCgroup(machine.roots()).unusable_reason,
                HasSubstr("does not offer the cpu controller "));
}

TEST(CgroupDetection, ReadsEscapedMountPoints) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/tau\n");
    machine.setMountInfo(kRootMount + "40 22 0:40 / /srv/cgroup\\040two rw - cgroup2 none rw\n");
    const fs::path own = machine.addCgroup("/srv/cgroup two/tau", "memory cpu");

    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_TRUE(detection.usable()) << detection.unusable_reason;
    EXPECT_EQ(detection.directory, own);
}

TEST(CgroupDetection, FollowsAMountOfASubtree) {
    // A container that sees only its own part of the hierarchy, mounted at /sys/fs/cgroup.
    FakeMachine machine;
    machine.setCgroupMembership("0::/system.slice/box.scope/tau\n");
    machine.setMountInfo(kRootMount +
                         "50 22 0:26 /system.slice/box.scope /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    const fs::path own = machine.addCgroup("/sys/fs/cgroup/tau", "memory cpu");

    const CgroupDetection detection = detectDelegatedCgroup(machine.roots());
    EXPECT_TRUE(detection.usable()) << detection.unusable_reason;
    EXPECT_EQ(detection.directory, own);
}

TEST(CgroupDetection, ACgroupOutsideTheMountedSubtreeIsUnusable) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/system.slice/tau-monitor.service\n");
    machine.setMountInfo(kRootMount +
                         "50 22 0:26 /system.slice/box.scope /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");

    EXPECT_EQ(
        detectDelegatedCgroup(machine.roots()).unusable_reason,
        "cgroup v2 is mounted at /sys/fs/cgroup but the cgroup /system.slice/tau-monitor.service of this "
        "process lies outside it");
}

TEST(CgroupDetection, ACgroupAboveTheNamespaceRootIsUnusable) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/../sibling.scope\n");
    machine.setMountInfo(kRootMount + kUnifiedMount);
    machine.addCgroup("/sibling.scope", "memory cpu");

    EXPECT_EQ(detectDelegatedCgroup(machine.roots()).unusable_reason,
              "cgroup v2 is mounted at /sys/fs/cgroup but the cgroup /../sibling.scope of this process lies "
              "outside it");
}

TEST(CgroupDetection, AMissingCgroupDirectoryIsUnusable) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/gone\n");
    machine.setMountInfo(kRootMount + kUnifiedMount);
    fs::create_directories(machine.root() / "sys/fs/cgroup");

    EXPECT_THAT(detectDelegatedCgroup(machine.roots()).unusable_reason,
                HasSubstr("the cgroup /gone of this process is not at " +
                          (machine.root() / "sys/fs/cgroup/gone").string()));
}

// Runs detection as a process that may not write the fake tree: as root, in a child that became nobody.
std::string detectionReasonWithoutWriteAccess(const FakeMachine& machine, const fs::path& own) {
    if (::geteuid() != 0) {
        fs::permissions(own, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                 fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
        return detectDelegatedCgroup(machine.roots()).unusable_reason;
    }
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) {
        ADD_FAILURE() << "no user nobody";
        return {};
    }
    const uid_t uid = nobody->pw_uid;
    const gid_t gid = nobody->pw_gid;
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe: " << std::strerror(errno);
        return {};
    }
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(report[0]);
        if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
            ::_exit(2);
        const std::string reason = detectDelegatedCgroup(machine.roots()).unusable_reason;
        const bool sent =
            ::write(report[1], reason.data(), reason.size()) == static_cast<ssize_t>(reason.size());
        ::_exit(sent ? 0 : 3);
    }
    ::close(report[1]);
    std::string reason;
    char buffer[512];
    ssize_t got;
    while ((got = ::read(report[0], buffer, sizeof buffer)) > 0)
        reason.append(buffer, static_cast<std::size_t>(got));
    ::close(report[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "detection as nobody failed: " << status;
    return reason;
}

TEST(CgroupDetection, ACgroupThatIsNotWritableIsUnusable) {
    FakeMachine machine;
    machine.setCgroupMembership("0::/system.slice/tau-monitor.service\n");
    machine.setMountInfo(kRootMount + kUnifiedMount);
    const fs::path own =
        machine.addCgroup("/sys/fs/cgroup/system.slice/tau-monitor.service", "cpuset cpu io memory pids");

    const std::string reason = detectionReasonWithoutWriteAccess(machine, own);
    EXPECT_THAT(reason, HasSubstr(own.string() + " is not writable"));
}

// ---------------------------------------------------------------------------------------------------------
// Service cgroups, on a fake delegated directory. The kernel fills a new cgroup directory with its files;
// a plain directory does not, so the fake creates the files mkdir would bring.

class FakeDelegatedCgroup {
  public:
    FakeDelegatedCgroup() {
        writeFile(own() / "cgroup.procs", "4242\n");
        writeFile(own() / "cgroup.subtree_control", "");
        fs::create_directories(own() / "supervisor");
        writeFile(own() / "supervisor" / "cgroup.procs", "");
        fs::create_directories(own() / "services");
        writeFile(own() / "services" / "cgroup.subtree_control", "");
    }
    const fs::path& own() const { return dir_.path(); }
    fs::path service(const std::string& name) const { return own() / "services" / name; }

    fs::path addService(const std::string& name, bool swapAccounting = true) {
        const fs::path directory = service(name);
        fs::create_directories(directory);
        for (const char* file :
             {"cgroup.procs", "memory.max", "cpu.max", "memory.events", "memory.oom.group"})
            writeFile(directory / file, "");
        if (swapAccounting)
            writeFile(directory / "memory.swap.max", "max\n");
        return directory;
    }

  private:
    test::TempDir dir_;
};

TEST(ServiceCgroups, PrepareMovesThisProcessToALeafAndEnablesTheControllers) {
    FakeDelegatedCgroup fake;
    ServiceCgroups cgroups(fake.own());
    cgroups.prepare();
    EXPECT_EQ(readFile(fake.own() / "supervisor" / "cgroup.procs"), "0");
    EXPECT_EQ(readFile(fake.own() / "cgroup.subtree_control"), "+memory +cpu");
    EXPECT_EQ(readFile(fake.own() / "services" / "cgroup.subtree_control"), "+memory +cpu");
    EXPECT_EQ(readFile(fake.own() / "cgroup.procs"), "4242\n");
    // Again, as after a re-exec: the directories exist already.
    EXPECT_NO_THROW(cgroups.prepare());
}

TEST(ServiceCgroups, AFailedPrepareMovesThisProcessBackAndNamesTheFile) {
    FakeDelegatedCgroup fake;
    fs::remove(fake.own() / "cgroup.subtree_control");
    ServiceCgroups cgroups(fake.own());
    try {
        cgroups.prepare();
        ADD_FAILURE() << "prepare succeeded";
    } catch (const CgroupError& error) {
        EXPECT_THAT(error.what(), HasSubstr((fake.own() / "cgroup.subtree_control").string()));
        EXPECT_THAT(error.what(), HasSubstr(std::strerror(ENOENT)));
    }
    EXPECT_EQ(readFile(fake.own() / "cgroup.procs"), "0");
}

TEST(ServiceCgroups, GroupOpensCgroupProcsWriteOnlyAndCloseOnExec) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web");
    ServiceCgroups cgroups(fake.own());
    CgroupProcsFd procs = cgroups.group("web");
    ASSERT_GE(procs.get(), 0);
    EXPECT_EQ(::fcntl(procs.get(), F_GETFL) & O_ACCMODE, O_WRONLY);
    EXPECT_EQ(::fcntl(procs.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ASSERT_EQ(::write(procs.get(), "123", 3), 3);
    EXPECT_EQ(readFile(directory / "cgroup.procs"), "123");

    CgroupProcsFd moved = std::move(procs);
    EXPECT_EQ(procs.get(), -1);
    EXPECT_GE(moved.get(), 0);
}

TEST(ServiceCgroups, GroupCreatesTheDirectoryAndNamesWhatItCannotOpen) {
    FakeDelegatedCgroup fake;
    ServiceCgroups cgroups(fake.own());
    try {
        cgroups.group("new");
        ADD_FAILURE() << "group succeeded without a cgroup.procs";
    } catch (const CgroupError& error) {
        EXPECT_THAT(error.what(), HasSubstr((fake.service("new") / "cgroup.procs").string()));
        EXPECT_THAT(error.what(), HasSubstr(std::strerror(ENOENT)));
    }
    EXPECT_TRUE(fs::is_directory(fake.service("new")));
}

TEST(ServiceCgroups, NamesThatCouldLeaveTheServicesDirectoryAreRefused) {
    FakeDelegatedCgroup fake;
    ServiceCgroups cgroups(fake.own());
    const std::vector<std::string> names = {
        "", ".", "..", "a/b", "../escape", "/etc", std::string("nul\0x", 5)};
    for (const std::string& name : names) {
        EXPECT_THROW(cgroups.group(name), std::invalid_argument) << name;
        EXPECT_THROW(cgroups.setLimits(name, kMiB, 10.0), std::invalid_argument) << name;
        EXPECT_THROW(cgroups.remove(name), std::invalid_argument) << name;
        EXPECT_THROW(cgroups.processes(name), std::invalid_argument) << name;
        EXPECT_THROW(cgroups.oomKills(name), std::invalid_argument) << name;
    }
    EXPECT_FALSE(fs::exists(fake.own() / "escape"));
    // Dots inside a name are fine.
    fake.addService("web.v2");
    EXPECT_NO_THROW(cgroups.group("web.v2"));
}

TEST(ServiceCgroups, SetLimitsWritesMemoryAndCpuMaximums) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web");
    ServiceCgroups cgroups(fake.own());

    cgroups.setLimits("web", 512 * kMiB, 150.0);
    EXPECT_EQ(readFile(directory / "memory.max"), "536870912");
    EXPECT_EQ(readFile(directory / "memory.swap.max"), "0");
    EXPECT_EQ(readFile(directory / "cpu.max"), "150000 100000");
    EXPECT_EQ(readFile(directory / "memory.oom.group"), "1") << "an OOM kill takes the whole service";

    cgroups.setLimits("web", std::nullopt, std::nullopt);
    EXPECT_EQ(readFile(directory / "memory.max"), "max");
    EXPECT_EQ(readFile(directory / "memory.swap.max"), "max");
    EXPECT_EQ(readFile(directory / "cpu.max"), "max 100000");

    cgroups.setLimits("web", std::nullopt, 12.5);
    EXPECT_EQ(readFile(directory / "cpu.max"), "12500 100000");
}

TEST(ServiceCgroups, TinyCpuLimitsAreRaisedToTheKernelMinimum) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web");
    ServiceCgroups cgroups(fake.own());
    cgroups.setLimits("web", std::nullopt, 0.5);
    EXPECT_EQ(readFile(directory / "cpu.max"), "1000 100000");
}

TEST(ServiceCgroups, WithoutSwapAccountingNoSwapFileIsCreated) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web", false);
    ServiceCgroups cgroups(fake.own());
    cgroups.setLimits("web", 64 * kMiB, std::nullopt);
    EXPECT_EQ(readFile(directory / "memory.max"), "67108864");
    EXPECT_FALSE(fs::exists(directory / "memory.swap.max"));
}

TEST(ServiceCgroups, InvalidLimitsAreRefused) {
    FakeDelegatedCgroup fake;
    fake.addService("web");
    ServiceCgroups cgroups(fake.own());
    EXPECT_THROW(cgroups.setLimits("web", 0, std::nullopt), std::invalid_argument);
    EXPECT_THROW(cgroups.setLimits("web", std::nullopt, 0.0), std::invalid_argument);
    EXPECT_THROW(cgroups.setLimits("web", std::nullopt, -5.0), std::invalid_argument);
    EXPECT_THROW(cgroups.setLimits("web", std::nullopt, std::numeric_limits<double>::quiet_NaN()),
                 std::invalid_argument);
    EXPECT_THROW(cgroups.setLimits("web", std::nullopt, std::numeric_limits<double>::infinity()),
                 std::invalid_argument);
}

TEST(ServiceCgroups, AFailedWriteNamesTheFileAndTheReason) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web");
    fs::remove(directory / "cpu.max");
    ServiceCgroups cgroups(fake.own());
    try {
        cgroups.setLimits("web", kMiB, 50.0);
        ADD_FAILURE() << "setLimits succeeded";
    } catch (const CgroupError& error) {
        EXPECT_EQ(std::string(error.what()), "cannot write \"50000 100000\" to " +
                                                 (directory / "cpu.max").string() + ": " +
                                                 std::strerror(ENOENT));
    }
}

TEST(ServiceCgroups, CountsOomKills) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web");
    ServiceCgroups cgroups(fake.own());
    writeFile(directory / "memory.events", "low 0\nhigh 4\nmax 17\noom 3\noom_kill 2\noom_group_kill 0\n");
    EXPECT_EQ(cgroups.oomKills("web"), 2u);
    // Kernels before 4.13 have no oom_kill line.
    writeFile(directory / "memory.events", "low 0\nhigh 0\nmax 0\noom 0\n");
    EXPECT_EQ(cgroups.oomKills("web"), 0u);

    fs::remove(directory / "memory.events");
    try {
        cgroups.oomKills("web");
        ADD_FAILURE() << "oomKills succeeded without memory.events";
    } catch (const CgroupError& error) {
        EXPECT_THAT(error.what(), HasSubstr((directory / "memory.events").string()));
        EXPECT_THAT(error.what(), HasSubstr(std::strerror(ENOENT)));
    }
}

TEST(ServiceCgroups, ListsTheProcessesOfAService) {
    FakeDelegatedCgroup fake;
    const fs::path directory = fake.addService("web");
    ServiceCgroups cgroups(fake.own());
    EXPECT_TRUE(cgroups.processes("web").empty());
    writeFile(directory / "cgroup.procs", "12\n3456\n");
    EXPECT_THAT(cgroups.processes("web"), ElementsAre(12, 3456));
    writeFile(directory / "cgroup.procs", "12\nnot-a-pid\n");
    EXPECT_THROW(cgroups.processes("web"), CgroupError);
}

TEST(ServiceCgroups, RemovesAnEmptyServiceCgroup) {
    FakeDelegatedCgroup fake;
    ServiceCgroups cgroups(fake.own());
    fs::create_directories(fake.service("web"));
    EXPECT_TRUE(cgroups.remove("web"));
    EXPECT_FALSE(fs::exists(fake.service("web")));
    EXPECT_TRUE(cgroups.remove("never-created"));

    // On cgroupfs the files go with the directory; elsewhere they keep it, and the error says where.
    fake.addService("db");
    try {
        cgroups.remove("db");
        ADD_FAILURE() << "remove succeeded";
    } catch (const CgroupError& error) {
        EXPECT_THAT(error.what(), HasSubstr(fake.service("db").string()));
    }
}

// ---------------------------------------------------------------------------------------------------------
// The real machine

std::vector<pid_t> pidsIn(const fs::path& procs) {
    std::vector<pid_t> pids;
    std::istringstream lines(readFile(procs));
    for (pid_t pid; lines >> pid;)
        pids.push_back(pid);
    return pids;
}

bool controllerEnabled(const fs::path& subtreeControl, const std::string& controller) {
    std::istringstream words(readFile(subtreeControl));
    for (std::string word; words >> word;) {
        if (word == controller)
            return true;
    }
    return false;
}

// prepare() moves this very process into <own>/supervisor and enables controllers in <own>: undone here,
// whatever the test's outcome, in the reverse order (the kernel refuses a process in a cgroup that hands
// controllers down, so the controllers go before the process moves back).
class OwnCgroupRestorer {
  public:
    explicit OwnCgroupRestorer(fs::path own) : own_(std::move(own)) {
        for (const std::string controller : {"memory", "cpu"}) {
            if (!controllerEnabled(own_ / "cgroup.subtree_control", controller))
                enabled_by_test_ += (enabled_by_test_.empty() ? "-" : " -") + controller;
        }
    }
    ~OwnCgroupRestorer() {
        const fs::path services = own_ / "services";
        std::error_code ignored;
        for (const auto& entry : fs::directory_iterator(services, ignored)) {
            if (entry.is_directory(ignored))
                expectRemoved(entry.path());
        }
        expectRemoved(services);
        if (!enabled_by_test_.empty())
            expectWritten(own_ / "cgroup.subtree_control", enabled_by_test_);
        expectWritten(own_ / "cgroup.procs", "0");
        expectRemoved(own_ / "supervisor");
    }
    OwnCgroupRestorer(const OwnCgroupRestorer&) = delete;
    OwnCgroupRestorer& operator=(const OwnCgroupRestorer&) = delete;

  private:
    static void expectRemoved(const fs::path& directory) {
        if (::rmdir(directory.c_str()) != 0 && errno != ENOENT)
            ADD_FAILURE() << "cannot remove " << directory << ": " << std::strerror(errno);
    }
    static void expectWritten(const fs::path& file, const std::string& text) {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
            ADD_FAILURE() << "cannot write \"" << text << "\" to " << file << ": " << std::strerror(errno);
        if (fd >= 0)
            ::close(fd);
    }

    fs::path own_;
    std::string enabled_by_test_;
};

// Kills and reaps a spawned process however the test ends.
class SpawnedChild {
  public:
    explicit SpawnedChild(SpawnedProcess process) : process_(process) {}
    ~SpawnedChild() {
        signalPidfd(process_.pidfd, SIGKILL);
        if (test::waitReadable(process_.pidfd, 10s))
            reapPidfd(process_.pidfd);
        else
            ADD_FAILURE() << "process " << process_.pid << " did not die";
        ::close(process_.pidfd);
    }
    SpawnedChild(const SpawnedChild&) = delete;
    SpawnedChild& operator=(const SpawnedChild&) = delete;
    pid_t pid() const { return process_.pid; }

  private:
    SpawnedProcess process_;
};

TEST(CgroupOnThisMachine, ConfinesASpawnedServiceAndCleansUp) {
    const CgroupDetection detection = detectDelegatedCgroup();
    if (!detection.usable())
        GTEST_SKIP() << "no usable delegated cgroup v2: " << detection.unusable_reason;
    const fs::path own = detection.directory;
    if (fs::exists(own / "supervisor") || fs::exists(own / "services"))
        GTEST_SKIP() << own << " already has service cgroups; a running tau-monitor may own them";
    // Controllers can only be enabled in a cgroup without processes. Only this process is ours to move
    // (and to move back): with others, e.g. the shell or ctest that started the test, the test cannot run.
    std::vector<pid_t> others = pidsIn(own / "cgroup.procs");
    others.erase(std::remove(others.begin(), others.end(), ::getpid()), others.end());
    if (!others.empty())
        GTEST_SKIP() << own << " holds other processes besides this test (e.g. " << others.front()
                     << "); run the test binary alone in a delegated cgroup";

    OwnCgroupRestorer restorer(own);
    ServiceCgroups cgroups(own);
    ASSERT_NO_THROW(cgroups.prepare());
    EXPECT_THAT(pidsIn(own / "supervisor" / "cgroup.procs"), Contains(::getpid()));

    const std::string service = "tau-cgroup-test-" + std::to_string(::getpid());
    const fs::path directory = cgroups.serviceDirectory(service);
    {
        CgroupProcsFd procs = cgroups.group(service);
        cgroups.setLimits(service, 64 * kMiB, 50.0);
        EXPECT_EQ(readFile(directory / "memory.max"), "67108864\n");
        EXPECT_EQ(readFile(directory / "cpu.max"), "50000 100000\n");
        if (fs::exists(directory / "memory.swap.max")) {
            EXPECT_EQ(readFile(directory / "memory.swap.max"), "0\n");
        }

        SpawnRequest request;
        request.argv = {"/bin/sleep", "1000"};
        request.cgroup_procs_fd = procs.get();
        SpawnedChild child(spawnProcess(request));
        EXPECT_THAT(cgroups.processes(service), ElementsAre(child.pid()));
        EXPECT_EQ(cgroups.oomKills(service), 0u);
        EXPECT_FALSE(cgroups.remove(service)) << "a cgroup with a process in it cannot go";
    }
    EXPECT_TRUE(cgroups.processes(service).empty());
    EXPECT_TRUE(cgroups.remove(service));
    EXPECT_FALSE(fs::exists(directory));
}

} // namespace
} // namespace tau
