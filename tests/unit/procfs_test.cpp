#include "tau/procfs.h"
#include "temp_dir.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace tau {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::filesystem::path kTestData = TAU_TEST_DATA;

ProcFsReader treeReader(const std::string& tree) {
    return ProcFsReader(kTestData / tree / "proc", kTestData / tree / "sys");
}

std::uint64_t kilobytes(std::uint64_t count) {
    return count * 1024;
}

TEST(ProcFsCpu, ReadsTheTotalAndEveryCoreInOrder) {
    const CpuStat stat = treeReader("proc-basic").readCpuStat();

    EXPECT_EQ(stat.total.user, 4705u);
    EXPECT_EQ(stat.total.nice, 150u);
    EXPECT_EQ(stat.total.system, 1120u);
    EXPECT_EQ(stat.total.idle, 16250u);
    EXPECT_EQ(stat.total.iowait, 520u);
    EXPECT_EQ(stat.total.irq, 0u);
    EXPECT_EQ(stat.total.softirq, 25u);
    EXPECT_EQ(stat.total.steal, 10u);
    EXPECT_EQ(stat.total.idleAll(), 16770u);
    EXPECT_EQ(stat.total.total(), 22780u);

    ASSERT_EQ(stat.cores.size(), 3u);
    EXPECT_EQ(stat.cores[0].user, 2350u);
    EXPECT_EQ(stat.cores[1].softirq, 15u);
}

TEST(ProcFsCpu, MissingTrailingColumnsAreZero) {
    const CpuStat stat = treeReader("proc-basic").readCpuStat();

    const CpuTimes& shortLine = stat.cores.at(2);
    EXPECT_EQ(shortLine.user, 1335u);
    EXPECT_EQ(shortLine.nice, 0u);
    EXPECT_EQ(shortLine.system, 50u);
    EXPECT_EQ(shortLine.idle, 0u);
    EXPECT_EQ(shortLine.iowait, 0u);
    EXPECT_EQ(shortLine.steal, 0u);
    EXPECT_EQ(shortLine.total(), 1385u);
}

TEST(ProcFsMemory, ConvertsKilobytesToBytes) {
    const MemInfo info = treeReader("proc-basic").readMemInfo();

    EXPECT_EQ(info.total_bytes, kilobytes(8000000));
    EXPECT_EQ(info.free_bytes, kilobytes(1000000));
    EXPECT_EQ(info.available_bytes, kilobytes(3000000));
    EXPECT_EQ(info.swap_total_bytes, kilobytes(2000000));
    EXPECT_EQ(info.swap_free_bytes, kilobytes(1500000));
}

TEST(ProcFsMemory, EstimatesAvailableMemoryOnKernelsWithoutMemAvailable) {
    const MemInfo info = treeReader("proc-legacy").readMemInfo();

    EXPECT_EQ(info.total_bytes, kilobytes(4000000));
    EXPECT_EQ(info.available_bytes, kilobytes(500000 + 100000 + 1000000));
    EXPECT_EQ(info.swap_total_bytes, 0u);
    EXPECT_EQ(info.swap_free_bytes, 0u);
}

TEST(ProcFsLoad, ReadsTheThreeAverages) {
    const LoadAverage load = treeReader("proc-basic").readLoadAverage();

    EXPECT_DOUBLE_EQ(load.one, 0.50);
    EXPECT_DOUBLE_EQ(load.five, 1.25);
    EXPECT_DOUBLE_EQ(load.fifteen, 2.75);
}

TEST(ProcFsLoad, GarbageIsAReadErrorNamingTheFile) {
    try {
        treeReader("proc-legacy").readLoadAverage();
        FAIL() << "expected ProcReadError";
    } catch (const ProcReadError& error) {
        EXPECT_THAT(error.what(), HasSubstr("proc-legacy/proc/loadavg"));
    }
}

TEST(ProcFsNetDev, SkipsTheHeaderAndSplitsNamesGluedToTheColon) {
    const std::vector<NetDevCounters> interfaces = treeReader("proc-basic").readNetDev();

    ASSERT_EQ(interfaces.size(), 3u);
    EXPECT_EQ(interfaces[0].interface, "lo");
    EXPECT_EQ(interfaces[0].rx_bytes, 123456u);

    const NetDevCounters& ethernet = interfaces[1];
    EXPECT_EQ(ethernet.interface, "eth0");
    EXPECT_EQ(ethernet.rx_bytes, 987654321u);
    EXPECT_EQ(ethernet.rx_packets, 654321u);
    EXPECT_EQ(ethernet.rx_errors, 1u);
    EXPECT_EQ(ethernet.rx_drops, 2u);
    EXPECT_EQ(ethernet.tx_bytes, 123456789u);
    EXPECT_EQ(ethernet.tx_packets, 98765u);
    EXPECT_EQ(ethernet.tx_errors, 3u);
    EXPECT_EQ(ethernet.tx_drops, 4u);

    EXPECT_EQ(interfaces[2].interface, "wlan0");
    EXPECT_EQ(interfaces[2].rx_bytes, 5000u);
    EXPECT_EQ(interfaces[2].tx_bytes, 6000u);
}

TEST(ProcFsMounts, ReadsEveryMountAndUnescapesMountPoints) {
    const std::vector<MountEntry> mounts = treeReader("proc-basic").readMounts();

    ASSERT_EQ(mounts.size(), 8u);
    EXPECT_EQ(mounts[0].device, "sysfs");
    EXPECT_EQ(mounts[0].mount_point, "/sys");
    EXPECT_EQ(mounts[0].fstype, "sysfs");
    EXPECT_EQ(mounts[3].device, "/dev/sda1");
    EXPECT_EQ(mounts[3].mount_point, "/");
    EXPECT_EQ(mounts[3].fstype, "ext4");
    EXPECT_EQ(mounts[5].mount_point, "/media/My Disk");
    EXPECT_EQ(mounts[5].fstype, "vfat");
    EXPECT_EQ(mounts[7].fstype, "overlay");
}

TEST(ProcFsMounts, PseudoFilesystemsAreRecognisedButOverlayIsNot) {
    for (const char* pseudo :
         {"proc",     "sysfs",   "devtmpfs", "devpts",      "tmpfs",      "cgroup", "cgroup2",
          "pstore",   "bpf",     "tracefs",  "debugfs",     "securityfs", "mqueue", "hugetlbfs",
          "configfs", "fusectl", "autofs",   "binfmt_misc", "rpc_pipefs", "nsfs",   "efivarfs",
          "squashfs", "ramfs",   "devfs",    "selinuxfs"}) {
        EXPECT_TRUE(isPseudoFilesystem(pseudo)) << pseudo;
    }
    for (const char* real : {"overlay", "ext4", "xfs", "btrfs", "vfat", "nfs4", "zfs", ""}) {
        EXPECT_FALSE(isPseudoFilesystem(real)) << real;
    }
}

TEST(ProcFsFilesystemUsage, MeasuresARealMountPoint) {
    const std::optional<FilesystemUsage> usage = ProcFsReader().readFilesystemUsage("/");

    ASSERT_TRUE(usage.has_value());
    EXPECT_GT(usage->total_bytes, 0u);
    EXPECT_LE(usage->free_bytes, usage->total_bytes);
    EXPECT_LE(usage->available_bytes, usage->free_bytes);
}

TEST(ProcFsFilesystemUsage, AMissingMountPointIsNullopt) {
    EXPECT_FALSE(ProcFsReader().readFilesystemUsage("/this/path/does/not/exist").has_value());
}

TEST(ProcFsProcess, FindsTheCommandNameUpToTheLastParenthesis) {
    const std::optional<ProcessStat> stat = treeReader("proc-basic").readProcessStat(100);

    ASSERT_TRUE(stat.has_value());
    EXPECT_EQ(stat->pid, 100);
    EXPECT_EQ(stat->comm, "my ) (weird proc");
    EXPECT_EQ(stat->state, 'R');
    EXPECT_EQ(stat->ppid, 42);
    EXPECT_EQ(stat->utime_ticks, 150u);
    EXPECT_EQ(stat->stime_ticks, 75u);
    EXPECT_EQ(stat->start_time_ticks, 12345u);
    EXPECT_EQ(stat->num_threads, 3u);
    EXPECT_EQ(stat->rss_bytes, 2560u * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)));
}

TEST(ProcFsProcess, AVanishedProcessIsNulloptNotAnError) {
    const ProcFsReader reader = treeReader("proc-basic");

    EXPECT_FALSE(reader.readProcessStat(4242).has_value());
    // An exiting process can leave an empty stat behind while we read it.
    EXPECT_FALSE(reader.readProcessStat(555).has_value());
    EXPECT_FALSE(reader.readProcessStat(0).has_value());
    EXPECT_FALSE(reader.readProcessStat(-1).has_value());
}

TEST(ProcFsProcess, ListsOnlyNumericDirectories) {
    EXPECT_THAT(treeReader("proc-basic").listPids(), ElementsAre(1, 42, 100, 101, 102, 555));
}

TEST(ProcFsProcess, TreeIsRootThenDescendantsBreadthFirst) {
    const ProcFsReader reader = treeReader("proc-basic");

    EXPECT_THAT(processTree(reader, 42), ElementsAre(42, 100, 102, 101));
    EXPECT_THAT(processTree(reader, 1), ElementsAre(1, 42, 100, 102, 101));
    EXPECT_THAT(processTree(reader, 101), ElementsAre(101));
}

TEST(ProcFsProcess, TreeOfAMissingRootIsEmpty) {
    EXPECT_TRUE(processTree(treeReader("proc-basic"), 4242).empty());
    EXPECT_TRUE(processTree(treeReader("proc-basic"), 555).empty());
}

TEST(ProcFsRoute, PicksTheUpDefaultRouteWithTheLowestMetric) {
    // tun0 has metric 0 but is not up; wlan0 is up with a worse metric than eth0.
    EXPECT_EQ(treeReader("proc-basic").defaultRouteInterface(), "eth0");
}

TEST(ProcFsRoute, NoDefaultRouteIsNullopt) {
    EXPECT_FALSE(treeReader("proc-sparse").defaultRouteInterface().has_value());
    EXPECT_FALSE(treeReader("no-such-tree").defaultRouteInterface().has_value());
}

TEST(ProcFsOperState, ReadsAndTrimsTheState) {
    const ProcFsReader reader = treeReader("proc-basic");

    EXPECT_EQ(reader.interfaceOperState("eth0"), "up");
    EXPECT_EQ(reader.interfaceOperState("wlan0"), "down");
    EXPECT_EQ(reader.interfaceOperState("tun0"), "unknown");
    EXPECT_FALSE(reader.interfaceOperState("eth9").has_value());
    EXPECT_FALSE(reader.interfaceOperState("../net/eth0").has_value());
    EXPECT_FALSE(reader.interfaceOperState("").has_value());
}

TEST(ProcFsErrors, AMissingRequiredFileThrowsNamingThePath) {
    const ProcFsReader reader = treeReader("proc-sparse");
    const std::string root = (kTestData / "proc-sparse" / "proc").string();

    auto expectNamedError = [](auto read, const std::string& path) {
        try {
            read();
            ADD_FAILURE() << "expected ProcReadError for " << path;
        } catch (const ProcReadError& error) {
            EXPECT_THAT(error.what(), HasSubstr(path));
        }
    };
    expectNamedError([&] { reader.readCpuStat(); }, root + "/stat");
    expectNamedError([&] { reader.readMemInfo(); }, root + "/meminfo");
    expectNamedError([&] { reader.readLoadAverage(); }, root + "/loadavg");
    expectNamedError([&] { reader.readNetDev(); }, root + "/net/dev");
    expectNamedError([&] { reader.readMounts(); }, root + "/self/mounts");

    const ProcFsReader missingRoot = treeReader("no-such-tree");
    EXPECT_THROW(missingRoot.listPids(), ProcReadError);
}

TEST(ProcFsRealSystem, ReportsSaneValues) {
    const ProcFsReader reader;

    const CpuStat cpu = reader.readCpuStat();
    EXPECT_GE(cpu.cores.size(), 1u);
    EXPECT_GT(cpu.total.total(), 0u);

    const MemInfo memory = reader.readMemInfo();
    EXPECT_GT(memory.total_bytes, 0u);
    EXPECT_LE(memory.available_bytes, memory.total_bytes);

    const LoadAverage load = reader.readLoadAverage();
    EXPECT_GE(load.one, 0.0);

    EXPECT_FALSE(reader.readMounts().empty());
    EXPECT_GT(reader.clockTicksPerSecond(), 0);

    const std::vector<pid_t> pids = reader.listPids();
    EXPECT_NE(std::find(pids.begin(), pids.end(), getpid()), pids.end());

    const std::optional<ProcessStat> self = reader.readProcessStat(getpid());
    ASSERT_TRUE(self.has_value());
    EXPECT_EQ(self->ppid, getppid());
    EXPECT_GT(self->rss_bytes, 0u);
    EXPECT_GE(self->num_threads, 1u);
}

TEST(ProcFsVmStat, ReadsTheSwapCounters) {
    const VmStat stat = treeReader("proc-full").readVmStat();

    EXPECT_EQ(stat.swap_in_pages, 1000u);
    EXPECT_EQ(stat.swap_out_pages, 2000u);
}

TEST(ProcFsDiskStats, ReadsEveryLineAndTellsDisksFromPartitions) {
    const ProcFsReader reader = treeReader("proc-full");
    const std::vector<DiskStatCounters> disks = reader.readDiskStats();

    ASSERT_EQ(disks.size(), 4u);
    EXPECT_EQ(disks[1].device, "sda");
    EXPECT_EQ(disks[1].reads_completed, 1000u);
    EXPECT_EQ(disks[1].sectors_read, 20000u);
    EXPECT_EQ(disks[1].writes_completed, 2000u);
    EXPECT_EQ(disks[1].sectors_written, 40000u);
    EXPECT_EQ(disks[1].io_ticks_ms, 1500u);
    EXPECT_EQ(disks[3].device, "sdb"); // an old kernel's shorter line
    EXPECT_EQ(disks[3].io_ticks_ms, 30u);

    EXPECT_TRUE(reader.isWholeDiskDevice("sda"));
    EXPECT_TRUE(reader.isWholeDiskDevice("loop0"));
    EXPECT_FALSE(reader.isWholeDiskDevice("sda1"));
    EXPECT_FALSE(reader.isWholeDiskDevice(".."));
    EXPECT_FALSE(reader.isWholeDiskDevice(""));
}

TEST(ProcFsPressure, ReadsSomeAndFullOrNothingWithoutPsi) {
    const std::optional<PressureInfo> memory = treeReader("proc-full").readPressure(PressureResource::memory);

    ASSERT_TRUE(memory.has_value());
    ASSERT_TRUE(memory->some.has_value());
    ASSERT_TRUE(memory->full.has_value());
    EXPECT_DOUBLE_EQ(memory->some->avg10, 2.25);
    EXPECT_DOUBLE_EQ(memory->some->avg60, 1.25);
    EXPECT_DOUBLE_EQ(memory->some->avg300, 0.5);
    EXPECT_EQ(memory->some->total_usec, 2000u);
    EXPECT_DOUBLE_EQ(memory->full->avg10, 1.1);

    EXPECT_FALSE(treeReader("proc-basic").readPressure(PressureResource::cpu).has_value());
}

TEST(ProcFsTemperatures, NoSensorsIsAnEmptyList) {
    EXPECT_TRUE(treeReader("proc-basic").readTemperatures().empty());
    EXPECT_EQ(treeReader("proc-full").readTemperatures().size(), 6u);
}

TEST(ProcFsProcess, ReadsIoPssAndOpenDescriptors) {
    const ProcFsReader reader = treeReader("proc-full");

    const std::optional<ProcessIo> io = reader.readProcessIo(101);
    ASSERT_TRUE(io.has_value());
    EXPECT_EQ(io->read_bytes, 0u);
    EXPECT_EQ(io->write_bytes, 1000u);
    EXPECT_EQ(reader.readProcessPss(100), 2000u * 1024);
    EXPECT_EQ(reader.countOpenFds(100), 4u);

    // Nothing to read is "unknown", never zero.
    EXPECT_FALSE(reader.readProcessIo(300).has_value());
    EXPECT_FALSE(reader.readProcessPss(300).has_value());
    EXPECT_FALSE(reader.countOpenFds(300).has_value());
    EXPECT_FALSE(reader.readProcessIo(4242).has_value());
}

TEST(ProcFsCgroup, SumsIoOfEveryDeviceAndListsTheProcesses) {
    const CgroupUsage usage =
        treeReader("proc-full").readCgroupUsage(kTestData / "proc-full" / "cgroup" / "db");

    EXPECT_EQ(usage.cpu_usage_usec, 5000000u);
    EXPECT_EQ(usage.memory_current_bytes, 104857600u);
    EXPECT_EQ(usage.pids_current, 3u);
    EXPECT_EQ(usage.io_read_bytes, 1500u);
    EXPECT_EQ(usage.io_write_bytes, 2500u);
    ASSERT_TRUE(usage.processes.has_value());
    EXPECT_THAT(*usage.processes, ElementsAre(200));

    const CgroupUsage missing =
        treeReader("proc-full").readCgroupUsage(kTestData / "proc-full" / "cgroup" / "none");
    EXPECT_FALSE(missing.cpu_usage_usec.has_value());
    EXPECT_FALSE(missing.processes.has_value());
}

TEST(ProcFsCgroup, FindsTheTightestLimitsOfTheOwnCgroup) {
    const std::optional<OwnCgroupLimits> limits = treeReader("proc-container").readOwnCgroupLimits();

    ASSERT_TRUE(limits.has_value());
    EXPECT_EQ(limits->memory_max_bytes, 1073741824u);
    EXPECT_EQ(limits->memory_current_bytes, 536870912u);
    EXPECT_EQ(limits->memory_inactive_file_bytes, 134217728u);
    EXPECT_EQ(limits->cpu_limit_cores, 1.5);
    ASSERT_TRUE(limits->cpu_limit_directory.has_value());
    EXPECT_EQ(limits->cpu_limit_directory->filename(), "container.scope");

    // No cgroup2 hierarchy at all.
    EXPECT_FALSE(treeReader("proc-full").readOwnCgroupLimits().has_value());
}

TEST(ProcFsErrors, NewRequiredFilesThrowNamingThePath) {
    const ProcFsReader reader = treeReader("proc-sparse");
    const std::string root = (kTestData / "proc-sparse" / "proc").string();
    try {
        reader.readVmStat();
        ADD_FAILURE() << "expected ProcReadError";
    } catch (const ProcReadError& error) {
        EXPECT_THAT(error.what(), HasSubstr(root + "/vmstat"));
    }
    try {
        reader.readDiskStats();
        ADD_FAILURE() << "expected ProcReadError";
    } catch (const ProcReadError& error) {
        EXPECT_THAT(error.what(), HasSubstr(root + "/diskstats"));
    }
}

TEST(ProcFsRealSystem, ReadsTheNewSourcesWithoutFailing) {
    const ProcFsReader reader;

    EXPECT_NO_THROW(reader.readVmStat());
    EXPECT_NO_THROW(reader.readDiskStats());
    EXPECT_NO_THROW(reader.readTemperatures());
    EXPECT_NO_THROW(reader.readOwnCgroupLimits());
    const std::optional<std::uint64_t> fds = reader.countOpenFds(getpid());
    ASSERT_TRUE(fds.has_value());
    EXPECT_GE(*fds, 3u);
    const ProcessTable table = ProcessTable::scan(reader);
    EXPECT_NE(table.find(getpid()), nullptr);
}

TEST(ProcFsParallel, EveryItemIsVisitedOnceWhateverTheWorkers) {
    for (unsigned workers : {1U, 2U, 4U}) {
        for (std::size_t count : {std::size_t{0}, std::size_t{5}, std::size_t{1000}}) {
            std::vector<int> visits(count, 0);
            forEachInParallel(count, workers, [&](std::size_t index) { ++visits[index]; });
            EXPECT_TRUE(std::all_of(visits.begin(), visits.end(), [](int visited) { return visited == 1; }))
                << count << " items on " << workers << " workers";
        }
    }
}

TEST(ProcFsParallel, AFailureIsRethrownAfterEveryWorkerIsDone) {
    std::atomic<int> visited{0};
    EXPECT_THROW(forEachInParallel(1000, 4,
                                   [&](std::size_t index) {
                                       ++visited;
                                       if (index == 500)
                                           throw std::runtime_error("unreadable");
                                   }),
                 std::runtime_error);
    EXPECT_GE(visited.load(), 1);
}

TEST(ProcFsParallel, AScanOnSeveralWorkersFindsTheSameProcesses) {
    const ProcFsReader reader;
    const ProcessTable single = ProcessTable::scan(reader, 1);
    const ProcessTable parallel = ProcessTable::scan(reader, 4);

    ASSERT_NE(parallel.find(getpid()), nullptr);
    EXPECT_EQ(parallel.find(getpid())->ppid, getppid());
    EXPECT_EQ(single.treeOf(getpid()), parallel.treeOf(getpid()));
    EXPECT_GE(defaultSamplingWorkers(), 1u);
}

} // namespace
TEST(ProcFsCgroup, AProcessCgroupIsItsUnifiedHierarchyDirectory) {
    test::TempDir dir;
    for (const char* pid : {"42", "43", "44"})
        std::filesystem::create_directories(dir.path() / "proc" / pid);
    test::writeFile(dir.path() / "proc" / "42" / "cgroup", "1:name=systemd:/old\n0::/tau/services/web\n");
    test::writeFile(dir.path() / "proc" / "43" / "cgroup", "0::/../../outside\n");
    test::writeFile(dir.path() / "proc" / "44" / "cgroup", "1:cpu:/only-v1\n");
    const ProcFsReader reader(dir.path() / "proc", dir.path() / "sys");
    EXPECT_EQ(reader.cgroupDirectoryOf("42"),
              dir.path() / "sys" / "fs" / "cgroup" / "tau" / "services" / "web");
    // Above a cgroup namespace's visible root: the root is what can be read.
    EXPECT_EQ(reader.cgroupDirectoryOf("43"), dir.path() / "sys" / "fs" / "cgroup");
    EXPECT_EQ(reader.cgroupDirectoryOf("44"), std::nullopt);
    EXPECT_EQ(reader.cgroupDirectoryOf("45"), std::nullopt);
}

} // namespace tau
