#include "fake_clock.h"
#include "tau/resources.h"

#include <chrono>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <map>
#include <stdexcept>
#include <string>

namespace tau {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

using test::FakeClock;

class FakeSystemReader final : public SystemReader {
  public:
    CpuStat cpu;
    MemInfo memory;
    LoadAverage load;
    std::vector<NetDevCounters> network;
    std::vector<MountEntry> mounts;
    std::map<std::string, FilesystemUsage> usage_by_mount_point;
    bool fail_network = false;

    CpuStat readCpuStat() const override { return cpu; }
    MemInfo readMemInfo() const override { return memory; }
    LoadAverage readLoadAverage() const override { return load; }
    std::vector<NetDevCounters> readNetDev() const override {
        if (fail_network)
            throw ProcReadError("cannot read fake net/dev");
        return network;
    }
    std::vector<MountEntry> readMounts() const override { return mounts; }
    std::optional<FilesystemUsage> readFilesystemUsage(const std::string& mountPoint) const override {
        auto found = usage_by_mount_point.find(mountPoint);
        if (found == usage_by_mount_point.end())
            return std::nullopt;
        return found->second;
    }
    std::optional<ProcessStat> readProcessStat(pid_t) const override { return std::nullopt; }
    std::vector<pid_t> listPids() const override { return {}; }
    std::optional<std::string> defaultRouteInterface() const override { return std::nullopt; }
    std::optional<std::string> interfaceOperState(const std::string&) const override { return std::nullopt; }
    long clockTicksPerSecond() const override { return 100; }
    VmStat readVmStat() const override { return {}; }
    std::vector<DiskStatCounters> readDiskStats() const override { return {}; }
    bool isWholeDiskDevice(const std::string&) const override { return false; }
    std::optional<PressureInfo> readPressure(PressureResource) const override { return std::nullopt; }
    std::vector<TemperatureReading> readTemperatures() const override { return {}; }
    std::optional<ProcessIo> readProcessIo(pid_t) const override { return std::nullopt; }
    std::optional<std::uint64_t> readProcessPss(pid_t) const override { return std::nullopt; }
    std::optional<std::uint64_t> countOpenFds(pid_t) const override { return std::nullopt; }
    CgroupUsage readCgroupUsage(const std::filesystem::path&) const override { return {}; }
    std::optional<OwnCgroupLimits> readOwnCgroupLimits() const override { return std::nullopt; }
};

CpuTimes cpuTimes(std::uint64_t user, std::uint64_t system, std::uint64_t idle, std::uint64_t iowait = 0) {
    CpuTimes times;
    times.user = user;
    times.system = system;
    times.idle = idle;
    times.iowait = iowait;
    return times;
}

NetDevCounters interfaceCounters(const std::string& name, std::uint64_t rxBytes, std::uint64_t txBytes) {
    NetDevCounters counters;
    counters.interface = name;
    counters.rx_bytes = rxBytes;
    counters.tx_bytes = txBytes;
    return counters;
}

const NetworkSnapshot& findInterface(const ResourceSnapshot& snapshot, const std::string& name) {
    for (const NetworkSnapshot& interface : snapshot.networks) {
        if (interface.interface == name)
            return interface;
    }
    throw std::runtime_error("no interface " + name);
}

class ResourceSamplerTest : public ::testing::Test {
  protected:
    FakeSystemReader reader;
    FakeClock clock;
    ResourceSampler sampler{reader, clock};
};

TEST_F(ResourceSamplerTest, FirstSampleMeasuresCpuSinceBoot) {
    reader.cpu.total = cpuTimes(200, 100, 600, 100); // 300 busy of 1000
    reader.cpu.cores = {cpuTimes(50, 0, 50), cpuTimes(0, 0, 0)};

    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 30.0);
    EXPECT_THAT(snapshot.cpu_per_core_percent, ElementsAre(50.0, 0.0));
    EXPECT_EQ(snapshot.taken_at, clock.wallNow());
}

TEST_F(ResourceSamplerTest, LaterSamplesMeasureCpuSinceThePreviousOne) {
    reader.cpu.total = cpuTimes(200, 100, 600, 100);
    reader.cpu.cores = {cpuTimes(100, 50, 300, 50), cpuTimes(100, 50, 300, 50)};
    sampler.sample();

    // Total: 60 busy and 40 idle (iowait included) of 100 jiffies.
    reader.cpu.total = cpuTimes(250, 110, 630, 110);
    // Core 0 fully busy, core 1 fully idle.
    reader.cpu.cores = {cpuTimes(140, 60, 300, 50), cpuTimes(100, 50, 350, 50)};
    clock.advance(1s);
    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 60.0);
    EXPECT_THAT(snapshot.cpu_per_core_percent, ElementsAre(100.0, 0.0));
}

TEST_F(ResourceSamplerTest, CountersGoingBackwardsOrStandingStillReportZero) {
    reader.cpu.total = cpuTimes(500, 100, 400);
    reader.cpu.cores = {cpuTimes(300, 50, 200), cpuTimes(200, 50, 200)};
    sampler.sample();

    reader.cpu.total = cpuTimes(500, 100, 400);                       // no jiffy elapsed
    reader.cpu.cores = {cpuTimes(10, 5, 20), cpuTimes(260, 50, 240)}; // core 0 was reset
    clock.advance(1s);
    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 0.0);
    EXPECT_THAT(snapshot.cpu_per_core_percent, ElementsAre(0.0, 60.0));
}

TEST_F(ResourceSamplerTest, MemoryAndSwapUsage) {
    reader.memory.total_bytes = 1000;
    reader.memory.free_bytes = 100;
    reader.memory.available_bytes = 250;
    reader.memory.swap_total_bytes = 400;
    reader.memory.swap_free_bytes = 100;
    reader.load = LoadAverage{1.5, 1.0, 0.5};

    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_EQ(snapshot.memory.total_bytes, 1000u);
    EXPECT_EQ(snapshot.memory.available_bytes, 250u);
    EXPECT_EQ(snapshot.memory.used_bytes, 750u);
    EXPECT_DOUBLE_EQ(snapshot.memory.used_percent, 75.0);
    EXPECT_EQ(snapshot.swap.total_bytes, 400u);
    EXPECT_EQ(snapshot.swap.used_bytes, 300u);
    EXPECT_DOUBLE_EQ(snapshot.swap.used_percent, 75.0);
    EXPECT_DOUBLE_EQ(snapshot.load.one, 1.5);
    EXPECT_DOUBLE_EQ(snapshot.load.fifteen, 0.5);
}

TEST_F(ResourceSamplerTest, NoSwapAndNoMemoryAreZeroPercent) {
    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_DOUBLE_EQ(snapshot.memory.used_percent, 0.0);
    EXPECT_EQ(snapshot.swap.used_bytes, 0u);
    EXPECT_DOUBLE_EQ(snapshot.swap.used_percent, 0.0);
}

TEST_F(ResourceSamplerTest, DisksAreRealFilesystemsOnePerMountPoint) {
    reader.mounts = {
        {"proc", "/proc", "proc"},
        {"/dev/sda1", "/", "ext4"},
        {"/dev/sda2", "/boot", "ext2"},
        {"/dev/sdc1", "/boot", "ext4"}, // mounted over the first /boot: only this one is visible
        {"/dev/sdd1", "/mnt", "ext4"},
        {"tmpfs", "/mnt", "tmpfs"}, // hides the disk below it
        {"overlay", "/containers/root", "overlay"},
        {"/dev/sde1", "/gone", "xfs"},  // statvfs fails
        {"/dev/sdf1", "/empty", "xfs"}, // reports no blocks
        {"tmpfs", "/run", "tmpfs"},
    };
    reader.usage_by_mount_point["/"] = FilesystemUsage{1000, 300, 200, 50, 20};
    reader.usage_by_mount_point["/boot"] = FilesystemUsage{500, 250, 250, 10, 10};
    reader.usage_by_mount_point["/mnt"] = FilesystemUsage{100, 0, 0, 1, 0};
    reader.usage_by_mount_point["/containers/root"] = FilesystemUsage{2000, 1000, 1000, 0, 0};
    reader.usage_by_mount_point["/empty"] = FilesystemUsage{0, 0, 0, 0, 0};
    reader.usage_by_mount_point["/run"] = FilesystemUsage{100, 100, 100, 10, 10};

    const ResourceSnapshot snapshot = sampler.sample();

    ASSERT_EQ(snapshot.disks.size(), 3u);
    const DiskSnapshot& root = snapshot.disks[0];
    EXPECT_EQ(root.mount_point, "/");
    EXPECT_EQ(root.device, "/dev/sda1");
    EXPECT_EQ(root.fstype, "ext4");
    EXPECT_EQ(root.total_bytes, 1000u);
    EXPECT_EQ(root.used_bytes, 700u);
    EXPECT_EQ(root.available_bytes, 200u);
    EXPECT_DOUBLE_EQ(root.used_percent, 100.0 * 700.0 / 900.0);
    EXPECT_EQ(root.inodes_total, 50u);
    EXPECT_EQ(root.inodes_used, 30u);

    EXPECT_EQ(snapshot.disks[1].mount_point, "/boot");
    EXPECT_EQ(snapshot.disks[1].device, "/dev/sdc1");
    EXPECT_DOUBLE_EQ(snapshot.disks[1].used_percent, 50.0);

    EXPECT_EQ(snapshot.disks[2].mount_point, "/containers/root");
    EXPECT_EQ(snapshot.disks[2].fstype, "overlay");
}

TEST_F(ResourceSamplerTest, FirstSampleHasZeroRatesAndSkipsLoopback) {
    reader.network = {interfaceCounters("lo", 999, 999), interfaceCounters("eth0", 5000, 7000)};

    const ResourceSnapshot snapshot = sampler.sample();

    ASSERT_EQ(snapshot.networks.size(), 1u);
    const NetworkSnapshot& ethernet = snapshot.networks[0];
    EXPECT_EQ(ethernet.interface, "eth0");
    EXPECT_EQ(ethernet.rx_bytes, 5000u);
    EXPECT_EQ(ethernet.tx_bytes, 7000u);
    EXPECT_DOUBLE_EQ(ethernet.rx_bytes_per_second, 0.0);
    EXPECT_DOUBLE_EQ(ethernet.tx_bytes_per_second, 0.0);
}

TEST_F(ResourceSamplerTest, RatesAreBytesPerSecondOfTheClock) {
    reader.network = {interfaceCounters("eth0", 5000, 7000)};
    reader.network[0].rx_errors = 1;
    reader.network[0].tx_drops = 2;
    sampler.sample();

    reader.network = {interfaceCounters("eth0", 7000, 7500)};
    clock.advance(2s);
    const ResourceSnapshot snapshot = sampler.sample();

    const NetworkSnapshot& ethernet = findInterface(snapshot, "eth0");
    EXPECT_DOUBLE_EQ(ethernet.rx_bytes_per_second, 1000.0);
    EXPECT_DOUBLE_EQ(ethernet.tx_bytes_per_second, 250.0);
    EXPECT_EQ(snapshot.taken_at, clock.wallNow());
}

TEST_F(ResourceSamplerTest, ACounterResetOrANewInterfaceGivesZeroRates) {
    reader.network = {interfaceCounters("eth0", 10000, 10000)};
    sampler.sample();

    reader.network = {interfaceCounters("eth0", 300, 12000), interfaceCounters("wlan0", 4000, 4000)};
    clock.advance(500ms);
    const ResourceSnapshot snapshot = sampler.sample();

    const NetworkSnapshot& ethernet = findInterface(snapshot, "eth0");
    EXPECT_DOUBLE_EQ(ethernet.rx_bytes_per_second, 0.0);    // reset
    EXPECT_DOUBLE_EQ(ethernet.tx_bytes_per_second, 4000.0); // still counting
    const NetworkSnapshot& wireless = findInterface(snapshot, "wlan0");
    EXPECT_DOUBLE_EQ(wireless.rx_bytes_per_second, 0.0);
    EXPECT_DOUBLE_EQ(wireless.tx_bytes_per_second, 0.0);

    // After the reset the new value is the baseline.
    reader.network = {interfaceCounters("eth0", 800, 12000), interfaceCounters("wlan0", 4100, 4000)};
    clock.advance(1s);
    const ResourceSnapshot next = sampler.sample();
    EXPECT_DOUBLE_EQ(findInterface(next, "eth0").rx_bytes_per_second, 500.0);
    EXPECT_DOUBLE_EQ(findInterface(next, "wlan0").rx_bytes_per_second, 100.0);
}

TEST_F(ResourceSamplerTest, NoElapsedTimeGivesZeroRates) {
    reader.network = {interfaceCounters("eth0", 100, 100)};
    sampler.sample();
    reader.network = {interfaceCounters("eth0", 200, 200)};

    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_DOUBLE_EQ(findInterface(snapshot, "eth0").rx_bytes_per_second, 0.0);
}

TEST_F(ResourceSamplerTest, AFailingCollectorIsReportedAndKeepsItsBaselineWhileTheOthersGoOn) {
    reader.cpu.total = cpuTimes(100, 0, 100);
    reader.network = {interfaceCounters("eth0", 1000, 1000)};
    sampler.sample();

    reader.cpu.total = cpuTimes(190, 0, 110);
    reader.fail_network = true;
    clock.advance(1s);
    const ResourceSnapshot failed = sampler.sample();

    ASSERT_NE(failed.collector("network"), nullptr);
    EXPECT_EQ(failed.collector("network")->state, CollectorState::failed);
    EXPECT_THAT(failed.collector("network")->message, ::testing::HasSubstr("fake net/dev"));
    EXPECT_TRUE(failed.networks.empty());
    EXPECT_EQ(failed.collector("cpu")->state, CollectorState::ok);
    EXPECT_DOUBLE_EQ(failed.cpu_percent, 90.0);

    reader.fail_network = false;
    reader.cpu.total = cpuTimes(200, 0, 200);
    reader.network = {interfaceCounters("eth0", 3000, 1000)};
    clock.advance(1s);
    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_EQ(snapshot.collector("network")->state, CollectorState::ok);
    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 10.0);                                  // since the middle sample
    EXPECT_DOUBLE_EQ(findInterface(snapshot, "eth0").rx_bytes_per_second, 1000.0); // 2000 bytes over 2 s
}

ProcessStat processTimes(std::uint64_t userTicks, std::uint64_t systemTicks) {
    ProcessStat stat;
    stat.pid = 1234;
    stat.start_time_ticks = 5000;
    stat.utime_ticks = userTicks;
    stat.stime_ticks = systemTicks;
    return stat;
}

TEST(ProcessCpuPercent, IsCpuSecondsPerElapsedSecond) {
    // 200 ticks at 100 per second is 2 CPU seconds in 4 seconds.
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(100, 50), processTimes(250, 100), 4s, 100), 50.0);
    // A process using two cores goes past 100%.
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(0, 0), processTimes(300, 100), 2s, 100), 200.0);
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(10, 10), processTimes(10, 10), 1s, 100), 0.0);
}

TEST(ProcessCpuPercent, IsZeroWithoutElapsedTimeOrForAnotherProcess) {
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(0, 0), processTimes(100, 0), 0s, 100), 0.0);
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(0, 0), processTimes(100, 0), -1s, 100), 0.0);
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(500, 500), processTimes(100, 0), 1s, 100), 0.0);
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(0, 0), processTimes(100, 0), 1s, 0), 0.0);

    ProcessStat reusedPid = processTimes(900, 900);
    reusedPid.start_time_ticks = 9000;
    EXPECT_DOUBLE_EQ(processCpuPercent(processTimes(100, 0), reusedPid, 1s, 100), 0.0);
}

} // namespace
} // namespace tau
