// The sampler against fake /proc and /sys trees: exact values, rates between two samples and the edge cases.
#include "fake_clock.h"
#include "tau/resources.h"
#include "temp_dir.h"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <map>
#include <memory>
#include <mutex>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace tau {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::filesystem::path kTestData = TAU_TEST_DATA;

std::uint64_t pageBytes() {
    return static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// statvfs() results by mount point; one mount can be made to hang until the test releases it.
struct FakeFilesystems {
    std::mutex mutex;
    std::condition_variable changed;
    std::map<std::string, FilesystemUsage> usage;
    std::string hanging_mount;
    bool released = false;
    int hanging_calls = 0;

    std::optional<FilesystemUsage> measure(const std::string& mountPoint) {
        std::unique_lock lock(mutex);
        if (mountPoint == hanging_mount) {
            ++hanging_calls;
            changed.wait(lock, [&] { return released; });
        }
        auto found = usage.find(mountPoint);
        if (found == usage.end())
            return std::nullopt;
        return found->second;
    }

    void hang(const std::string& mountPoint) {
        std::lock_guard lock(mutex);
        hanging_mount = mountPoint;
        released = false;
    }

    void release() {
        std::lock_guard lock(mutex);
        released = true;
        changed.notify_all();
    }

    int callsOfHangingMount() {
        std::lock_guard lock(mutex);
        return hanging_calls;
    }
};

// A writable copy of a fake tree, so that a test can move the counters on between two samples.
class FakeTree {
  public:
    explicit FakeTree(const std::string& name) {
        std::filesystem::copy(kTestData / name, root(), std::filesystem::copy_options::recursive);
        filesystems_->usage["/"] = FilesystemUsage{1000, 400, 300, 100, 60};
        filesystems_->usage["/data"] = FilesystemUsage{2000, 1000, 1000, 50, 50};
        filesystems_->usage["/mnt/nfs"] = FilesystemUsage{4000, 1000, 1000, 10, 5};
    }

    std::filesystem::path root() const { return dir_.path() / "tree"; }
    FakeFilesystems& filesystems() { return *filesystems_; }

    ProcFsReader reader() const {
        // The worker thread of a hanging statvfs may outlive the test's stack frame; it owns what it uses.
        std::shared_ptr<FakeFilesystems> filesystems = filesystems_;
        return ProcFsReader(root() / "proc", root() / "sys", [filesystems](const std::string& mountPoint) {
            return filesystems->measure(mountPoint);
        });
    }

    void write(const std::string& relative, const std::string& text) const {
        std::filesystem::create_directories((root() / relative).parent_path());
        test::writeFile(root() / relative, text);
    }

    void remove(const std::string& relative) const { std::filesystem::remove_all(root() / relative); }

  private:
    test::TempDir dir_;
    std::shared_ptr<FakeFilesystems> filesystems_ = std::make_shared<FakeFilesystems>();
};

std::string statLine(pid_t pid, const std::string& name, pid_t ppid, std::uint64_t utime, std::uint64_t stime,
                     unsigned threads, std::uint64_t start, std::uint64_t rssPages) {
    return std::to_string(pid) + " (" + name + ") S " + std::to_string(ppid) + " " + std::to_string(pid) +
           " " + std::to_string(pid) + " 0 -1 4194560 500 0 0 0 " + std::to_string(utime) + " " +
           std::to_string(stime) + " 777 888 20 0 " + std::to_string(threads) + " 0 " +
           std::to_string(start) + " 104857600 " + std::to_string(rssPages) +
           " 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
}

std::string ioFile(std::uint64_t readBytes, std::uint64_t writeBytes) {
    return "rchar: 1\nwchar: 1\nsyscr: 1\nsyscw: 1\nread_bytes: " + std::to_string(readBytes) +
           "\nwrite_bytes: " + std::to_string(writeBytes) + "\ncancelled_write_bytes: 0\n";
}

// Two seconds after the tree as committed: every counter moved by a known amount.
void advanceCounters(const FakeTree& tree) {
    tree.write("proc/stat", "cpu  1300 100 600 8500 250 60 120 70 0 0\n"
                            "cpu0 700 50 300 4200 125 30 60 35 0 0\n"
                            "cpu1 600 50 300 4300 125 30 60 35 0 0\n");
    tree.write("proc/vmstat", "nr_free_pages 1\npswpin 1500\npswpout 2100\n");
    // sdb is gone; sda read 4000 sectors and 200 requests, wrote 1000 sectors and 100 requests, busy 1000 ms.
    tree.write("proc/diskstats",
               "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
               "   8       0 sda 1200 10 24000 500 2100 20 41000 900 0 2500 1400 0 0 0 0 0 0\n"
               "   8       1 sda1 1100 5 22000 450 2000 15 39000 850 0 2400 1300 0 0 0 0 0 0\n");
    // wlan0 was re-created: its receive counters start over.
    tree.write(
        "proc/net/dev",
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo "
        "colls carrier compressed\n"
        "    lo:  999999     999    0    0    0     0          0         0   999999     999    0    0    0   "
        "  "
        "0       0          0\n"
        "  eth0:   16000     300    5    4    0     0          0         0     7000     150    2    1    0   "
        "  "
        "0       0          0\n"
        " wlan0:     100       1    0    0    0     0          0         0     3000      30    0    0    0   "
        "  "
        "0       0          0\n");
    // web: 60 ticks in the main process, 100 in the worker, none in the helper.
    tree.write("proc/100/stat", statLine(100, "web", 1, 150, 60, 4, 1000, 1000));
    tree.write("proc/101/stat", statLine(101, "web worker", 100, 300, 0, 2, 1100, 500));
    tree.write("proc/100/io", ioFile(8192, 2048));
    tree.write("proc/101/io", ioFile(4096, 1000));
    tree.write("proc/100/smaps_rollup", "Rss: 6000 kB\nPss: 3000 kB\n");
    tree.write("cgroup/db/cpu.stat", "usage_usec 6000000\nuser_usec 5000000\nsystem_usec 1000000\n");
    tree.write("cgroup/db/io.stat", "8:0 rbytes=5000 wbytes=2000 rios=3 wios=2 dbytes=0 dios=0\n"
                                    "8:16 rbytes=500 wbytes=500 rios=1 wios=1 dbytes=0 dios=0\n");
}

std::vector<ServiceSampleTarget> fullTreeServices(const FakeTree& tree) {
    return {{"web", 100}, {"db", 200, tree.root() / "cgroup" / "db"}, {"batch", 300}};
}

const ServiceSnapshot& findService(const ResourceSnapshot& snapshot, const std::string& name) {
    for (const ServiceSnapshot& service : snapshot.services) {
        if (service.name == name)
            return service;
    }
    throw std::runtime_error("no service " + name);
}

const NetworkSnapshot& findInterface(const ResourceSnapshot& snapshot, const std::string& name) {
    for (const NetworkSnapshot& interface : snapshot.networks) {
        if (interface.interface == name)
            return interface;
    }
    throw std::runtime_error("no interface " + name);
}

std::vector<std::string> diskIoDevices(const ResourceSnapshot& snapshot) {
    std::vector<std::string> devices;
    for (const DiskIoSnapshot& disk : snapshot.disk_io)
        devices.push_back(disk.device);
    return devices;
}

void expectCollector(const ResourceSnapshot& snapshot, const std::string& name, CollectorState state) {
    const CollectorStatus* status = snapshot.collector(name);
    ASSERT_NE(status, nullptr) << name;
    EXPECT_EQ(status->state, state) << name << ": " << status->message;
}

class ResourceSamplingFullTree : public ::testing::Test {
  protected:
    FakeTree tree{"proc-full"};
    ProcFsReader reader = tree.reader();
    FakeClock clock;
    ResourceSampler sampler{reader, clock, SamplerOptions{200ms, 30s}};
};

TEST_F(ResourceSamplingFullTree, FirstSampleReportsLevelsButNoRates) {
    const ResourceSnapshot snapshot = sampler.sample(fullTreeServices(tree));

    for (const char* collector : {"cgroup", "cpu", "memory", "swap", "load", "filesystems", "disk_io",
                                  "network", "temperature", "pressure", "services"}) {
        expectCollector(snapshot, collector, CollectorState::ok);
    }

    // Since boot: 1800 busy jiffies of 10000.
    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 18.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.user, 10.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.idle, 80.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.steal, 0.5);
    EXPECT_THAT(snapshot.cpu_per_core_percent, ElementsAre(18.0, 18.0));
    EXPECT_DOUBLE_EQ(snapshot.cpu_capacity_cores, 2.0);

    EXPECT_FALSE(snapshot.memory_from_cgroup);
    EXPECT_EQ(snapshot.memory.used_bytes, std::uint64_t{2000000} * 1024);
    EXPECT_DOUBLE_EQ(snapshot.memory.used_percent, 25.0);
    EXPECT_DOUBLE_EQ(snapshot.swap.used_percent, 25.0);
    EXPECT_FALSE(snapshot.swap_in_bytes_per_second.has_value());
    EXPECT_FALSE(snapshot.swap_out_bytes_per_second.has_value());
    EXPECT_DOUBLE_EQ(snapshot.load.five, 0.75);

    ASSERT_EQ(snapshot.disks.size(), 3u);
    EXPECT_EQ(snapshot.disks[0].mount_point, "/");
    EXPECT_EQ(snapshot.disks[0].used_bytes, 600u);
    EXPECT_DOUBLE_EQ(snapshot.disks[0].used_percent, 100.0 * 600 / 900);
    EXPECT_DOUBLE_EQ(snapshot.disks[0].inodesUsedPercent(), 40.0);
    EXPECT_EQ(snapshot.disks[2].mount_point, "/mnt/nfs");
    EXPECT_FALSE(snapshot.disks[2].stale);

    // Partitions and idle loop devices are not disks of their own.
    EXPECT_THAT(diskIoDevices(snapshot), ElementsAre("sda", "sdb"));
    EXPECT_FALSE(snapshot.disk_io[0].has_rates);
    EXPECT_DOUBLE_EQ(snapshot.disk_io[0].read_bytes_per_second, 0.0);

    ASSERT_EQ(snapshot.networks.size(), 2u);
    const NetworkSnapshot& ethernet = findInterface(snapshot, "eth0");
    EXPECT_FALSE(ethernet.has_rates);
    EXPECT_DOUBLE_EQ(ethernet.errors_per_second, 0.0);
    EXPECT_EQ(ethernet.oper_state, "up");
    EXPECT_EQ(findInterface(snapshot, "wlan0").oper_state, "dormant");

    ASSERT_EQ(snapshot.temperatures.size(), 6u);
    EXPECT_EQ(snapshot.temperatures[0].sensor, "acpitz (thermal_zone0)");
    EXPECT_DOUBLE_EQ(snapshot.temperatures[0].celsius, 45.0);
    EXPECT_EQ(snapshot.temperatures[1].sensor, "x86_pkg_temp");
    EXPECT_DOUBLE_EQ(snapshot.temperatures[1].celsius, 52.5);
    EXPECT_EQ(snapshot.temperatures[2].sensor, "acpitz (thermal_zone10)"); // zone 2 has no valid reading
    EXPECT_EQ(snapshot.temperatures[3].sensor, "coretemp Package id 0");
    EXPECT_EQ(snapshot.temperatures[4].sensor, "coretemp temp2");
    EXPECT_EQ(snapshot.temperatures[5].sensor, "nvme Composite");
    EXPECT_DOUBLE_EQ(snapshot.temperatures[5].celsius, 38.85);
    EXPECT_EQ(snapshot.hottest_celsius, 61.0);

    ASSERT_TRUE(snapshot.pressure.cpu.has_value());
    ASSERT_TRUE(snapshot.pressure.cpu->some.has_value());
    EXPECT_DOUBLE_EQ(snapshot.pressure.cpu->some->avg10, 1.5);
    EXPECT_DOUBLE_EQ(snapshot.pressure.cpu->some->avg300, 0.2);
    EXPECT_EQ(snapshot.pressure.cpu->some->total_usec, 123456u);
    ASSERT_TRUE(snapshot.pressure.memory->full.has_value());
    EXPECT_DOUBLE_EQ(snapshot.pressure.memory->full->avg60, 0.6);
    EXPECT_DOUBLE_EQ(snapshot.pressure.io->full->avg10, 2.5);

    ASSERT_EQ(snapshot.services.size(), 3u);
    const ServiceSnapshot& web = snapshot.services[0];
    EXPECT_EQ(web.name, "web");
    EXPECT_TRUE(web.running);
    EXPECT_FALSE(web.from_cgroup);
    EXPECT_EQ(web.processes, 3u);
    EXPECT_EQ(web.threads, 7u);
    EXPECT_EQ(web.rss_bytes, 1750 * pageBytes());
    EXPECT_EQ(web.memory_bytes, web.rss_bytes);
    EXPECT_EQ(web.pss_bytes, 3500u * 1024);
    EXPECT_EQ(web.open_fds, 8u);
    EXPECT_FALSE(web.cpu_percent.has_value());
    EXPECT_FALSE(web.io_read_bytes_per_second.has_value());
    EXPECT_TRUE(web.error.empty()) << web.error;

    const ServiceSnapshot& db = snapshot.services[1];
    EXPECT_TRUE(db.from_cgroup);
    EXPECT_EQ(db.memory_bytes, 104857600u);
    EXPECT_EQ(db.rss_bytes, 4000 * pageBytes());
    EXPECT_EQ(db.processes, 3u); // pids.current counts the threads the tree scan may not see
    EXPECT_EQ(db.threads, 8u);
    EXPECT_FALSE(db.cpu_percent.has_value());

    // No io, smaps_rollup or fd directory to read: unknown, not zero.
    const ServiceSnapshot& batch = snapshot.services[2];
    EXPECT_TRUE(batch.running);
    EXPECT_FALSE(batch.pss_bytes.has_value());
    EXPECT_FALSE(batch.open_fds.has_value());
    EXPECT_FALSE(batch.io_read_bytes_per_second.has_value());
}

TEST_F(ResourceSamplingFullTree, SecondSampleTurnsCountersIntoExactRates) {
    sampler.sample(fullTreeServices(tree));
    advanceCounters(tree);
    clock.advance(2s);

    const ResourceSnapshot snapshot = sampler.sample(fullTreeServices(tree));

    // Of 1000 jiffies: user 300, system 100, idle 500, iowait 50, irq 10, softirq 20, steal 20.
    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 45.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.user, 30.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.nice, 0.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.system, 10.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.idle, 50.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.iowait, 5.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.irq, 1.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.softirq, 2.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_modes.steal, 2.0);
    EXPECT_THAT(snapshot.cpu_per_core_percent, ElementsAre(55.0, 35.0));
    ASSERT_EQ(snapshot.cpu_per_core_modes.size(), 2u);
    EXPECT_DOUBLE_EQ(snapshot.cpu_per_core_modes[0].user, 40.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_per_core_modes[1].idle, 60.0);

    EXPECT_EQ(snapshot.swap_in_bytes_per_second, 250.0 * static_cast<double>(pageBytes()));
    EXPECT_EQ(snapshot.swap_out_bytes_per_second, 50.0 * static_cast<double>(pageBytes()));

    ASSERT_THAT(diskIoDevices(snapshot), ElementsAre("sda"));
    const DiskIoSnapshot& sda = snapshot.disk_io[0];
    EXPECT_TRUE(sda.has_rates);
    EXPECT_DOUBLE_EQ(sda.read_bytes_per_second, 2000.0 * 512);
    EXPECT_DOUBLE_EQ(sda.write_bytes_per_second, 500.0 * 512);
    EXPECT_DOUBLE_EQ(sda.reads_per_second, 100.0);
    EXPECT_DOUBLE_EQ(sda.writes_per_second, 50.0);
    EXPECT_DOUBLE_EQ(sda.utilization_percent, 50.0);

    const NetworkSnapshot& ethernet = findInterface(snapshot, "eth0");
    EXPECT_TRUE(ethernet.has_rates);
    EXPECT_DOUBLE_EQ(ethernet.rx_bytes_per_second, 3000.0);
    EXPECT_DOUBLE_EQ(ethernet.tx_bytes_per_second, 1000.0);
    EXPECT_DOUBLE_EQ(ethernet.rx_packets_per_second, 100.0);
    EXPECT_DOUBLE_EQ(ethernet.tx_packets_per_second, 50.0);
    EXPECT_DOUBLE_EQ(ethernet.errors_per_second, 3.0);
    EXPECT_DOUBLE_EQ(ethernet.drops_per_second, 1.0);
    // The reset counter has no rate this once; the others still count.
    const NetworkSnapshot& wireless = findInterface(snapshot, "wlan0");
    EXPECT_FALSE(wireless.has_rates);
    EXPECT_DOUBLE_EQ(wireless.rx_bytes_per_second, 0.0);
    EXPECT_DOUBLE_EQ(wireless.tx_bytes_per_second, 0.0);

    const double ticks = static_cast<double>(reader.clockTicksPerSecond());
    const ServiceSnapshot& web = findService(snapshot, "web");
    ASSERT_TRUE(web.cpu_percent.has_value());
    EXPECT_DOUBLE_EQ(*web.cpu_percent, 100.0 * 80.0 / ticks); // 160 ticks in 2 s
    EXPECT_EQ(web.io_read_bytes_per_second, 4096.0);          // 4096 + 4096 bytes in 2 s
    EXPECT_EQ(web.io_write_bytes_per_second, 1024.0);
    EXPECT_EQ(web.pss_bytes, 3500u * 1024); // not read again before pss_max_age

    const ServiceSnapshot& db = findService(snapshot, "db");
    EXPECT_EQ(db.cpu_percent, 50.0); // a million microseconds in 2 s
    EXPECT_EQ(db.io_read_bytes_per_second, 2000.0);
    EXPECT_EQ(db.io_write_bytes_per_second, 0.0);

    EXPECT_FALSE(findService(snapshot, "batch").io_read_bytes_per_second.has_value());
}

TEST_F(ResourceSamplingFullTree, ADeviceThatDisappearsStartsAfreshWhenItReturns) {
    sampler.sample();
    advanceCounters(tree); // drops sdb
    clock.advance(2s);
    EXPECT_THAT(diskIoDevices(sampler.sample()), ElementsAre("sda"));

    tree.write("proc/diskstats",
               "   8       0 sda 1300 10 25000 500 2200 20 42000 900 0 3000 1400 0 0 0 0 0 0\n"
               "   8      16 sdb 20 0 160 5 40 0 320 10 0 60 15\n");
    clock.advance(1s);
    const ResourceSnapshot snapshot = sampler.sample();

    ASSERT_THAT(diskIoDevices(snapshot), ElementsAre("sda", "sdb"));
    EXPECT_TRUE(snapshot.disk_io[0].has_rates);
    // sdb's counters grew since it was last seen, but that baseline was forgotten with it.
    EXPECT_FALSE(snapshot.disk_io[1].has_rates);
    EXPECT_DOUBLE_EQ(snapshot.disk_io[1].reads_per_second, 0.0);
}

TEST_F(ResourceSamplingFullTree, PssIsReusedUntilItIsOldEnough) {
    sampler.sample(fullTreeServices(tree));
    tree.write("proc/100/smaps_rollup", "Pss: 3000 kB\n");

    clock.advance(29s);
    EXPECT_EQ(findService(sampler.sample(fullTreeServices(tree)), "web").pss_bytes, 3500u * 1024);

    clock.advance(1s);
    EXPECT_EQ(findService(sampler.sample(fullTreeServices(tree)), "web").pss_bytes, 4500u * 1024);
}

TEST_F(ResourceSamplingFullTree, AServiceThatIsGoneIsNotRunningAndHasNoValues) {
    const ResourceSnapshot snapshot = sampler.sample({{"ghost", 4242}});

    ASSERT_EQ(snapshot.services.size(), 1u);
    const ServiceSnapshot& ghost = snapshot.services[0];
    EXPECT_FALSE(ghost.running);
    EXPECT_EQ(ghost.processes, 0u);
    EXPECT_EQ(ghost.memory_bytes, 0u);
    EXPECT_FALSE(ghost.pss_bytes.has_value());
    EXPECT_FALSE(ghost.open_fds.has_value());
}

// The whole of /proc is scanned for new children only every process_rescan; in between the known members
// are read, and a service under a new main pid is found at once.
TEST_F(ResourceSamplingFullTree, ANewChildJoinsAtTheNextFullScanAndANewMainPidAtOnce) {
    const std::vector<ServiceSampleTarget> web{{"web", 100}};
    EXPECT_EQ(findService(sampler.sample(web), "web").processes, 3u); // web, its worker and the helper
    tree.write("proc/103/stat", statLine(103, "web cache", 100, 10, 0, 1, 1200, 100));
    clock.advance(1s);
    EXPECT_EQ(findService(sampler.sample(web), "web").processes, 3u);
    clock.advance(10s);
    EXPECT_EQ(findService(sampler.sample(web), "web").processes, 4u);

    // Started again under a pid the last scan did not start from.
    clock.advance(1s);
    const ServiceSnapshot restarted = findService(sampler.sample({{"web", 103}}), "web");
    EXPECT_TRUE(restarted.running);
    EXPECT_EQ(restarted.processes, 1u);
}

TEST_F(ResourceSamplingFullTree, AnUnreadableServiceCgroupFallsBackToTheProcessTree) {
    const ResourceSnapshot snapshot = sampler.sample({{"db", 200, tree.root() / "cgroup" / "missing"}});

    const ServiceSnapshot& db = snapshot.services.at(0);
    EXPECT_FALSE(db.from_cgroup);
    EXPECT_TRUE(db.running);
    EXPECT_EQ(db.processes, 1u);
    EXPECT_EQ(db.memory_bytes, 4000 * pageBytes());
    EXPECT_THAT(db.error, HasSubstr("cgroup/missing/cgroup.procs"));
    EXPECT_THAT(snapshot.collector("services")->message, HasSubstr("db: cannot read"));
}

TEST_F(ResourceSamplingFullTree, AProcessReplacedUnderTheSamePidHasNoRate) {
    sampler.sample(fullTreeServices(tree));
    tree.write("proc/100/stat", statLine(100, "web", 1, 5000, 5000, 4, 7777, 1000));
    tree.remove("proc/101");
    tree.remove("proc/102");
    clock.advance(2s);

    const ResourceSnapshot snapshot = sampler.sample(fullTreeServices(tree));

    const ServiceSnapshot& web = findService(snapshot, "web");
    EXPECT_EQ(web.processes, 1u);
    EXPECT_FALSE(web.cpu_percent.has_value());
}

TEST_F(ResourceSamplingFullTree, MissingSensorsAndPressureAreUnavailableNotZero) {
    tree.remove("sys/class/thermal");
    tree.remove("sys/class/hwmon");
    tree.remove("proc/pressure");

    const ResourceSnapshot snapshot = sampler.sample();

    expectCollector(snapshot, "temperature", CollectorState::ok);
    expectCollector(snapshot, "pressure", CollectorState::ok);
    EXPECT_TRUE(snapshot.temperatures.empty());
    EXPECT_FALSE(snapshot.hottest_celsius.has_value());
    EXPECT_FALSE(snapshot.pressure.cpu.has_value());
    EXPECT_FALSE(snapshot.pressure.memory.has_value());
    EXPECT_FALSE(snapshot.pressure.io.has_value());
}

TEST_F(ResourceSamplingFullTree, OldKernelsWithoutFullCpuPressure) {
    tree.write("proc/pressure/cpu", "some avg10=0.25 avg60=0.50 avg300=0.75 total=42\n");

    const ResourceSnapshot snapshot = sampler.sample();

    ASSERT_TRUE(snapshot.pressure.cpu.has_value());
    EXPECT_DOUBLE_EQ(snapshot.pressure.cpu->some->avg60, 0.5);
    EXPECT_FALSE(snapshot.pressure.cpu->full.has_value());
}

TEST_F(ResourceSamplingFullTree, MalformedFilesFailTheirCollectorOnlyAndNameTheFile) {
    tree.write("proc/pressure/io", "some avg10=lots avg60=0.00 avg300=0.00 total=0\n");
    tree.write("proc/stat", "intr 1 2 3\n");
    tree.write("proc/diskstats", "   8       0 sda 12 x\n");

    const ResourceSnapshot snapshot = sampler.sample(fullTreeServices(tree));

    expectCollector(snapshot, "pressure", CollectorState::failed);
    EXPECT_THAT(snapshot.collector("pressure")->message, HasSubstr("proc/pressure/io"));
    ASSERT_TRUE(snapshot.pressure.memory.has_value()); // its neighbours were still read
    expectCollector(snapshot, "cpu", CollectorState::failed);
    EXPECT_THAT(snapshot.collector("cpu")->message, HasSubstr("proc/stat"));
    EXPECT_TRUE(snapshot.cpu_per_core_percent.empty());
    expectCollector(snapshot, "disk_io", CollectorState::failed);
    EXPECT_THAT(snapshot.collector("disk_io")->message, HasSubstr("proc/diskstats"));

    expectCollector(snapshot, "memory", CollectorState::ok);
    expectCollector(snapshot, "network", CollectorState::ok);
    expectCollector(snapshot, "services", CollectorState::ok);
    EXPECT_DOUBLE_EQ(snapshot.memory.used_percent, 25.0);
    EXPECT_EQ(snapshot.services.size(), 3u);
}

TEST_F(ResourceSamplingFullTree, AHangingStatvfsMakesItsMountStaleWithoutBlockingOrPilingUp) {
    const ResourceSnapshot answered = sampler.sample();
    expectCollector(answered, "filesystems", CollectorState::ok);

    tree.filesystems().hang("/mnt/nfs");
    clock.advance(1s);
    const ResourceSnapshot hanging = sampler.sample();

    expectCollector(hanging, "filesystems", CollectorState::stale);
    EXPECT_THAT(hanging.collector("filesystems")->message, HasSubstr("/mnt/nfs"));
    ASSERT_EQ(hanging.disks.size(), 3u);
    EXPECT_FALSE(hanging.disks[0].stale);
    EXPECT_TRUE(hanging.disks[2].stale);
    EXPECT_EQ(hanging.disks[2].used_bytes, 3000u); // the last answer
    expectCollector(hanging, "network", CollectorState::ok);

    clock.advance(1s);
    const ResourceSnapshot stillHanging = sampler.sample();
    expectCollector(stillHanging, "filesystems", CollectorState::stale);
    EXPECT_EQ(tree.filesystems().callsOfHangingMount(), 1); // no second thread on the same mount

    tree.filesystems().release();
    // The released call finishes on its own thread; a cycle that looks just before it does sees it stale
    // once more, so allow a few.
    bool recovered = false;
    for (int attempt = 0; attempt < 50 && !recovered; ++attempt) {
        clock.advance(1s);
        const ResourceSnapshot snapshot = sampler.sample();
        recovered = snapshot.collector("filesystems")->state == CollectorState::ok;
        if (recovered) {
            ASSERT_EQ(snapshot.disks.size(), 3u);
            EXPECT_FALSE(snapshot.disks[2].stale);
        }
    }
    EXPECT_TRUE(recovered);
    EXPECT_EQ(tree.filesystems().callsOfHangingMount(), 2);
}

// A child that waits to be killed; ended by its pid.
class SleepingChild {
  public:
    SleepingChild() : pid_(::fork()) {
        if (pid_ == 0) {
            for (;;)
                ::pause();
        }
    }
    ~SleepingChild() { end(); }
    SleepingChild(const SleepingChild&) = delete;
    SleepingChild& operator=(const SleepingChild&) = delete;

    pid_t pid() const { return pid_; }
    void end() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }

  private:
    pid_t pid_;
};

TEST(ResourceSamplingRealSystem, MeasuresALiveChildAndForgetsItOnceItIsGone) {
    SleepingChild child;
    ASSERT_GT(child.pid(), 0);
    const ProcFsReader reader;
    FakeClock clock;
    ResourceSampler sampler(reader, clock);
    const std::vector<ServiceSampleTarget> targets{{"child", child.pid()}};

    sampler.sample(targets);
    clock.advance(1s);
    const ResourceSnapshot snapshot = sampler.sample(targets);

    for (const CollectorStatus& collector : snapshot.collectors)
        EXPECT_NE(collector.state, CollectorState::failed) << collector.name << ": " << collector.message;
    const ServiceSnapshot& service = snapshot.services.at(0);
    EXPECT_TRUE(service.running);
    EXPECT_EQ(service.processes, 1u);
    EXPECT_GE(service.threads, 1u); // a sanitizer may have started a thread of its own in the child
    EXPECT_GT(service.rss_bytes, 0u);
    ASSERT_TRUE(service.open_fds.has_value());
    EXPECT_GE(*service.open_fds, 3u);
    EXPECT_TRUE(service.cpu_percent.has_value());
    EXPECT_TRUE(service.pss_bytes.has_value());
    EXPECT_EQ(service.io_read_bytes_per_second, 0.0);
    EXPECT_GT(reader.keptOpenProcessFiles(), 0u);

    child.end();
    clock.advance(1s);
    const ResourceSnapshot after = sampler.sample(targets);
    EXPECT_FALSE(after.services.at(0).running);
    EXPECT_FALSE(after.services.at(0).cpu_percent.has_value());
}

TEST(ResourceSamplingRealSystem, KeptOpenFilesOfAnExitedProcessAreClosed) {
    SleepingChild child;
    ASSERT_GT(child.pid(), 0);
    const ProcFsReader reader;
    ASSERT_TRUE(reader.readProcessStat(child.pid()).has_value());
    ASSERT_TRUE(reader.readProcessIo(child.pid()).has_value());
    const std::size_t keptWithChild = reader.keptOpenProcessFiles();
    EXPECT_EQ(keptWithChild, 2u);

    const pid_t exited = child.pid();
    child.end();
    // Read through the kept descriptor: the process it belongs to is gone.
    EXPECT_FALSE(reader.readProcessStat(exited).has_value());
    EXPECT_EQ(reader.keptOpenProcessFiles(), 1u);
    reader.listPids();
    EXPECT_EQ(reader.keptOpenProcessFiles(), 0u);
}

TEST(ResourceSamplingRealSystem, NothingIsKeptOpenWhenTurnedOff) {
    const ProcFsReader reader("/proc", "/sys", {}, 0);
    ASSERT_TRUE(reader.readProcessStat(::getpid()).has_value());
    EXPECT_EQ(reader.keptOpenProcessFiles(), 0u);
}

TEST(ResourceSamplingProcessTable, OneScanGivesEveryTree) {
    const ProcFsReader reader(kTestData / "proc-full" / "proc", kTestData / "proc-full" / "sys");
    const ProcessTable table = ProcessTable::scan(reader);

    EXPECT_EQ(table.size(), 6u);
    EXPECT_THAT(table.treeOf(100), ElementsAre(100, 101, 102));
    EXPECT_THAT(table.treeOf(1), ElementsAre(1, 100, 200, 300, 101, 102));
    EXPECT_THAT(table.treeOf(300), ElementsAre(300));
    EXPECT_TRUE(table.treeOf(4242).empty());
    ASSERT_NE(table.find(102), nullptr);
    EXPECT_EQ(table.find(102)->comm, "web (helper)");
    EXPECT_EQ(table.find(4242), nullptr);
}

class ResourceSamplingContainer : public ::testing::Test {
  protected:
    FakeTree tree{"proc-container"};
    ProcFsReader reader = tree.reader();
    FakeClock clock;
    ResourceSampler sampler{reader, clock};
};

TEST_F(ResourceSamplingContainer, MemoryComesFromTheCgroupBelowMemTotal) {
    const ResourceSnapshot snapshot = sampler.sample();

    expectCollector(snapshot, "cgroup", CollectorState::ok);
    expectCollector(snapshot, "memory", CollectorState::ok);
    EXPECT_TRUE(snapshot.memory_from_cgroup);
    // The tighter of the scope's 1 GiB and its parent's 2 GiB; inactive page cache is not in use.
    EXPECT_EQ(snapshot.memory.total_bytes, 1073741824u);
    EXPECT_EQ(snapshot.memory.used_bytes, 536870912u - 134217728u);
    EXPECT_EQ(snapshot.memory.available_bytes, 1073741824u - 402653184u);
    EXPECT_DOUBLE_EQ(snapshot.memory.used_percent, 37.5);
}

TEST_F(ResourceSamplingContainer, CpuPercentIsOfTheQuota) {
    const ResourceSnapshot first = sampler.sample();
    expectCollector(first, "cpu", CollectorState::ok);
    EXPECT_DOUBLE_EQ(first.cpu_capacity_cores, 1.5);
    EXPECT_DOUBLE_EQ(first.cpu_percent, 0.0); // one reading of the cgroup tells no share yet
    EXPECT_EQ(first.cpu_per_core_percent.size(), 4u);

    tree.write("sys/fs/cgroup/machine/container.scope/cpu.stat", "usage_usec 11500000\n");
    clock.advance(2s);
    const ResourceSnapshot second = sampler.sample();

    // 1.5 CPU seconds in 2 s is 0.75 of the 1.5 cores the quota allows.
    EXPECT_DOUBLE_EQ(second.cpu_percent, 50.0);
}

TEST_F(ResourceSamplingContainer, ALimitAboveMemTotalChangesNothing) {
    tree.write("sys/fs/cgroup/machine/memory.max", "max\n");
    tree.write("sys/fs/cgroup/machine/container.scope/memory.max", "99999999999999\n");
    tree.write("sys/fs/cgroup/machine/container.scope/cpu.max", "max 100000\n");

    const ResourceSnapshot snapshot = sampler.sample();

    EXPECT_FALSE(snapshot.memory_from_cgroup);
    EXPECT_EQ(snapshot.memory.total_bytes, std::uint64_t{8000000} * 1024);
    EXPECT_DOUBLE_EQ(snapshot.cpu_capacity_cores, 4.0);
    EXPECT_DOUBLE_EQ(snapshot.cpu_percent, 37.5); // the machine's counters: 6000 busy of 16000 jiffies
}

TEST_F(ResourceSamplingContainer, AMalformedCpuMaxFailsOnlyTheCgroupCollector) {
    tree.write("sys/fs/cgroup/machine/container.scope/cpu.max", "lots\n");

    const ResourceSnapshot snapshot = sampler.sample();

    expectCollector(snapshot, "cgroup", CollectorState::failed);
    EXPECT_THAT(snapshot.collector("cgroup")->message, HasSubstr("container.scope/cpu.max"));
    expectCollector(snapshot, "cpu", CollectorState::ok);
    expectCollector(snapshot, "memory", CollectorState::ok);
    EXPECT_FALSE(snapshot.memory_from_cgroup);
}

TEST(ResourceCounterRate, FirstValueResetAndElapsedTime) {
    const std::chrono::steady_clock::time_point start{std::chrono::hours(1)};
    CounterRate rate;

    EXPECT_FALSE(rate.update(100, start).has_value());
    EXPECT_EQ(rate.update(300, start + 2s), 100.0);
    EXPECT_FALSE(rate.update(50, start + 3s).has_value()); // reset: the new baseline
    EXPECT_EQ(rate.update(80, start + 4s), 30.0);
    EXPECT_FALSE(rate.update(90, start + 4s).has_value()); // no time passed; the baseline stays
    EXPECT_EQ(rate.update(120, start + 5s), 40.0);
}

TEST(ResourceCounterRate, TableForgetsWhatWasNotSeen) {
    const std::chrono::steady_clock::time_point start{std::chrono::hours(1)};
    CounterRateTable<std::string> table;
    table.update("eth0", 10, start);
    table.update("eth1", 10, start);
    table.dropUnseen();

    EXPECT_EQ(table.update("eth0", 20, start + 1s), 10.0);
    table.dropUnseen();
    EXPECT_FALSE(table.contains("eth1"));
    EXPECT_EQ(table.size(), 1u);
    EXPECT_FALSE(table.update("eth1", 50, start + 2s).has_value());
}

} // namespace
} // namespace tau
