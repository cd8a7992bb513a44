#include "fake_proc.h"
#include "tau/procfs.h"
#include "tau/resource_limits.h"
#include "temp_dir.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace tau {
namespace {

using test::FakeProc;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr long kTicksPerSecond = 100;
constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr pid_t kMainPid = 100;

ResourceLimitWatcher::TimePoint at(std::chrono::milliseconds since_start) {
    return ResourceLimitWatcher::TimePoint{} + 1h + since_start;
}

ProcessTreeSample tree(pid_t root, std::uint64_t rss_bytes, std::vector<ProcessCpuSample> processes = {}) {
    ProcessTreeSample sample;
    sample.root = root;
    sample.found = true;
    sample.rss_bytes = rss_bytes;
    for (const ProcessCpuSample& process : processes)
        sample.cpu_ticks += process.cpu_ticks;
    sample.processes = std::move(processes);
    return sample;
}

// A tree of one process, the main one, that has used `ticks` since it started.
ProcessTreeSample busy(std::uint64_t ticks, pid_t root = kMainPid) {
    return tree(root, 10 * kMiB, {{root, 5000, ticks}});
}

ResourceLimits memoryLimit(std::uint64_t bytes) {
    return ResourceLimits{bytes, std::nullopt};
}

ResourceLimits cpuLimit(double percent) {
    return ResourceLimits{std::nullopt, percent};
}

// ---------------------------------------------------------------------------------------------------------
// Memory

TEST(ResourceLimitWatcher, MemoryExactlyAtTheLimitIsNotOver) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    const ProcessTreeSample atLimit = tree(kMainPid, 512 * kMiB);
    for (int second = 0; second < 10; ++second) {
        EXPECT_FALSE(watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &atLimit, at(second * 1s)));
    }
}

TEST(ResourceLimitWatcher, MemoryOverForOneSampleFewerThanRequiredIsNoViolation) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    const ProcessTreeSample over = tree(kMainPid, 612 * kMiB);
    EXPECT_FALSE(watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &over, at(0s)));
    EXPECT_FALSE(watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &over, at(1s)));

    const auto violation = watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &over, at(2s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->kind, ResourceViolation::Kind::Memory);
    EXPECT_EQ(violation->main_pid, kMainPid);
    EXPECT_EQ(violation->detail, "memory 612 MiB over its limit of 512 MiB for 3 samples");
}

TEST(ResourceLimitWatcher, OneByteOverTheLimitIsOver) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample over = tree(kMainPid, 512 * kMiB + 1);
    const auto violation = watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &over, at(0s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "memory 512.0 MiB over its limit of 512 MiB for 1 sample");
}

TEST(ResourceLimitWatcher, ADipBelowTheMemoryLimitResetsTheCount) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    const ResourceLimits limits = memoryLimit(512 * kMiB);
    const ProcessTreeSample over = tree(kMainPid, 700 * kMiB);
    const ProcessTreeSample under = tree(kMainPid, 400 * kMiB);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(0s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(1s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &under, at(2s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(3s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(4s)));
    EXPECT_TRUE(watcher.observe("web", limits, kMainPid, &over, at(5s)));
}

TEST(ResourceLimitWatcher, MissingDataNeitherCountsNorResets) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    const ResourceLimits limits = memoryLimit(512 * kMiB);
    const ProcessTreeSample over = tree(kMainPid, 700 * kMiB);
    ProcessTreeSample gone;
    gone.root = kMainPid;
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(0s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, nullptr, at(1s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(2s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &gone, at(3s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, nullptr, at(4s)));
    const auto violation = watcher.observe("web", limits, kMainPid, &over, at(5s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "memory 700 MiB over its limit of 512 MiB for 3 samples");
}

TEST(ResourceLimitWatcher, ARestartStartsAfresh) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    const ResourceLimits limits = memoryLimit(512 * kMiB);
    const ProcessTreeSample oldOver = tree(kMainPid, 700 * kMiB);
    const ProcessTreeSample newOver = tree(kMainPid + 1, 700 * kMiB);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &oldOver, at(0s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &oldOver, at(1s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid + 1, &newOver, at(2s)));
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid + 1, &newOver, at(3s)));
    const auto violation = watcher.observe("web", limits, kMainPid + 1, &newOver, at(4s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->main_pid, kMainPid + 1);
}

TEST(ResourceLimitWatcher, AViolationIsReportedOnceUntilTheServiceRestarts) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const ResourceLimits limits = memoryLimit(512 * kMiB);
    const ProcessTreeSample over = tree(kMainPid, 700 * kMiB);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(0s)));
    EXPECT_TRUE(watcher.observe("web", limits, kMainPid, &over, at(1s)));
    for (int second = 2; second < 8; ++second) {
        EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(second * 1s)));
    }

    const ProcessTreeSample restarted = tree(kMainPid + 7, 700 * kMiB);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid + 7, &restarted, at(8s)));
    EXPECT_TRUE(watcher.observe("web", limits, kMainPid + 7, &restarted, at(9s)));
}

TEST(ResourceLimitWatcher, ServicesAreCountedApart) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const ResourceLimits limits = memoryLimit(512 * kMiB);
    const ProcessTreeSample webOver = tree(kMainPid, 700 * kMiB);
    const ProcessTreeSample dbUnder = tree(kMainPid + 1, 100 * kMiB);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &webOver, at(0s)));
    EXPECT_FALSE(watcher.observe("db", limits, kMainPid + 1, &dbUnder, at(0s)));
    EXPECT_FALSE(watcher.observe("db", limits, kMainPid + 1, &dbUnder, at(1s)));
    EXPECT_TRUE(watcher.observe("web", limits, kMainPid, &webOver, at(1s)));
}

TEST(ResourceLimitWatcher, NewLimitsRestartTheCount) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const ProcessTreeSample usage = tree(kMainPid, 700 * kMiB);
    EXPECT_FALSE(watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &usage, at(0s)));
    EXPECT_FALSE(watcher.observe("web", memoryLimit(600 * kMiB), kMainPid, &usage, at(1s)));
    const auto violation = watcher.observe("web", memoryLimit(600 * kMiB), kMainPid, &usage, at(2s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "memory 700 MiB over its limit of 600 MiB for 2 samples");
}

TEST(ResourceLimitWatcher, NoLimitNoViolation) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    for (int second = 0; second < 5; ++second) {
        const ProcessTreeSample huge = tree(kMainPid, 900'000 * kMiB, {{kMainPid, 1, second * 10'000ull}});
        EXPECT_FALSE(watcher.observe("web", ResourceLimits{}, kMainPid, &huge, at(second * 1s)));
    }
}

TEST(ResourceLimitWatcher, ForgettingAServiceDropsItsCount) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const ResourceLimits limits = memoryLimit(512 * kMiB);
    const ProcessTreeSample over = tree(kMainPid, 700 * kMiB);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(0s)));
    watcher.forget("web");
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &over, at(1s)));
    EXPECT_TRUE(watcher.observe("web", limits, kMainPid, &over, at(2s)));
}

TEST(ResourceLimitWatcher, TheRequiredCountIsAtLeastOne) {
    ResourceLimitWatcher watcher(0, kTicksPerSecond);
    const ProcessTreeSample over = tree(kMainPid, 700 * kMiB);
    EXPECT_TRUE(watcher.observe("web", memoryLimit(512 * kMiB), kMainPid, &over, at(0s)));
}

// ---------------------------------------------------------------------------------------------------------
// CPU

TEST(ResourceLimitWatcher, TheFirstSampleGivesNoCpuVerdict) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample first = busy(1'000'000);
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &first, at(0s)));
    EXPECT_FALSE(watcher.lastCpuPercent("web").has_value());
    EXPECT_FALSE(watcher.lastCpuPercent("unknown").has_value());
}

TEST(ResourceLimitWatcher, CpuExactlyAtTheLimitIsNotOver) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    for (int second = 0; second < 10; ++second) {
        // 50 ticks of 1/100 s every second: half a CPU.
        const ProcessTreeSample sample = busy(1000 + second * 50ull);
        EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &sample, at(second * 1s)));
    }
    ASSERT_TRUE(watcher.lastCpuPercent("web").has_value());
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 50.0);
}

TEST(ResourceLimitWatcher, CpuOverForTheRequiredSamplesIsAViolation) {
    ResourceLimitWatcher watcher(3, kTicksPerSecond);
    // The first sample is only the baseline: three measured intervals need four samples.
    for (int second = 0; second < 3; ++second) {
        const ProcessTreeSample sample = busy(second * 187ull);
        EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &sample, at(second * 1s)));
    }
    const ProcessTreeSample last = busy(3 * 187ull);
    const auto violation = watcher.observe("web", cpuLimit(50), kMainPid, &last, at(3s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->kind, ResourceViolation::Kind::Cpu);
    EXPECT_EQ(violation->detail, "CPU 187 % over its limit of 50 % for 3 samples");
}

TEST(ResourceLimitWatcher, CpuUsageIsPerSecondOfTheActualInterval) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample first = busy(0);
    const ProcessTreeSample later = busy(100);
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &first, at(0s)));
    // 100 ticks in 2.5 s: 40 % of a CPU.
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &later, at(2500ms)));
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 40.0);
}

TEST(ResourceLimitWatcher, CpuLimitsAboveOneCpuAreShares) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const ResourceLimits limits = cpuLimit(150);
    for (int second = 0; second < 5; ++second) {
        const ProcessTreeSample sample = busy(second * 150ull);
        EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &sample, at(second * 1s)));
    }
    const ProcessTreeSample faster = busy(4 * 150ull + 160);
    const ProcessTreeSample fasterStill = busy(4 * 150ull + 320);
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &faster, at(5s)));
    const auto violation = watcher.observe("web", limits, kMainPid, &fasterStill, at(6s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "CPU 160 % over its limit of 150 % for 2 samples");
}

TEST(ResourceLimitWatcher, ADipBelowTheCpuLimitResetsTheCount) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const std::vector<std::uint64_t> ticks = {0, 80, 160, 170, 250, 330};
    std::vector<bool> reported;
    for (std::size_t second = 0; second < ticks.size(); ++second) {
        const ProcessTreeSample sample = busy(ticks[second]);
        reported.push_back(
            watcher.observe("web", cpuLimit(50), kMainPid, &sample, at(std::chrono::seconds(second)))
                .has_value());
    }
    // 80 %, 80 % (reported), and once reported nothing more until a restart.
    EXPECT_THAT(reported, ElementsAre(false, false, true, false, false, false));

    ResourceLimitWatcher dipping(2, kTicksPerSecond);
    const std::vector<std::uint64_t> withDip = {0, 80, 90, 170, 250};
    reported.clear();
    for (std::size_t second = 0; second < withDip.size(); ++second) {
        const ProcessTreeSample sample = busy(withDip[second]);
        reported.push_back(
            dipping.observe("web", cpuLimit(50), kMainPid, &sample, at(std::chrono::seconds(second)))
                .has_value());
    }
    EXPECT_THAT(reported, ElementsAre(false, false, false, false, true));
}

TEST(ResourceLimitWatcher, AnExitedChildDoesNotMakeTheUsageBogus) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    // The child has used 5000 ticks over its life; once it is gone, the tree's total drops by that much.
    const ProcessTreeSample withChild =
        tree(kMainPid, kMiB, {{kMainPid, 10, 1000}, {kMainPid + 1, 20, 5000}});
    const ProcessTreeSample childGone = tree(kMainPid, kMiB, {{kMainPid, 10, 1010}});
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &withChild, at(0s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &childGone, at(1s)));
    ASSERT_TRUE(watcher.lastCpuPercent("web").has_value());
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 10.0);
}

TEST(ResourceLimitWatcher, ANewChildCountsWithAllItsTicks) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample alone = tree(kMainPid, kMiB, {{kMainPid, 10, 1000}});
    const ProcessTreeSample withChild = tree(kMainPid, kMiB, {{kMainPid, 10, 1010}, {kMainPid + 1, 900, 30}});
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &alone, at(0s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &withChild, at(1s)));
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 40.0);
}

TEST(ResourceLimitWatcher, APidReusedInsideTheTreeIsANewProcess) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample before = tree(kMainPid, kMiB, {{kMainPid, 10, 1000}, {300, 20, 4000}});
    // Pid 300 exited and a new process got the same pid: its start time tells them apart.
    const ProcessTreeSample after = tree(kMainPid, kMiB, {{kMainPid, 10, 1000}, {300, 500, 25}});
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &before, at(0s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &after, at(1s)));
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 25.0);
}

TEST(ResourceLimitWatcher, ProcessesInAnyOrderAreMatchedByPid) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample before =
        tree(kMainPid, kMiB, {{400, 30, 100}, {kMainPid, 10, 1000}, {200, 20, 50}});
    const ProcessTreeSample after =
        tree(kMainPid, kMiB, {{200, 20, 60}, {400, 30, 110}, {kMainPid, 10, 1010}});
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &before, at(0s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &after, at(1s)));
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 30.0);
}

TEST(ResourceLimitWatcher, AGapInTheDataIsMeasuredAcrossAsOneInterval) {
    ResourceLimitWatcher watcher(2, kTicksPerSecond);
    const ProcessTreeSample first = busy(0);
    const ProcessTreeSample second = busy(80);
    const ProcessTreeSample afterGap = busy(320);
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &first, at(0s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &second, at(1s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, nullptr, at(2s)));
    // 240 ticks over the 3 s since the last sample with data: 80 %, the second interval over in a row.
    const auto violation = watcher.observe("web", cpuLimit(50), kMainPid, &afterGap, at(4s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "CPU 80 % over its limit of 50 % for 2 samples");
}

TEST(ResourceLimitWatcher, ASampleWithoutTimePassingIsIgnored) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample first = busy(0);
    const ProcessTreeSample same = busy(500);
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &first, at(1s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &same, at(1s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &same, at(0s)));
    EXPECT_FALSE(watcher.lastCpuPercent("web").has_value());
}

TEST(ResourceLimitWatcher, ARestartTakesANewCpuBaseline) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample old = busy(100'000);
    const ProcessTreeSample restarted = busy(5, kMainPid + 1);
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid, &old, at(0s)));
    EXPECT_FALSE(watcher.observe("web", cpuLimit(50), kMainPid + 1, &restarted, at(1s)));
    EXPECT_FALSE(watcher.lastCpuPercent("web").has_value());
}

TEST(ResourceLimitWatcher, MemoryIsReportedFirstWhenBothLimitsAreExceeded) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ResourceLimits limits{512 * kMiB, 50.0};
    const ProcessTreeSample first = tree(kMainPid, 100 * kMiB, {{kMainPid, 1, 0}});
    const ProcessTreeSample both = tree(kMainPid, 1024 * kMiB, {{kMainPid, 1, 90}});
    EXPECT_FALSE(watcher.observe("web", limits, kMainPid, &first, at(0s)));
    const auto violation = watcher.observe("web", limits, kMainPid, &both, at(1s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->kind, ResourceViolation::Kind::Memory);
    EXPECT_EQ(violation->detail, "memory 1024 MiB over its limit of 512 MiB for 1 sample");
}

TEST(ResourceLimitWatcher, FractionalCpuIsShownWithOneDecimal) {
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ProcessTreeSample first = busy(0);
    const ProcessTreeSample second = busy(100);
    EXPECT_FALSE(watcher.observe("web", cpuLimit(12.5), kMainPid, &first, at(0s)));
    const auto violation = watcher.observe("web", cpuLimit(12.5), kMainPid, &second, at(3s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "CPU 33.3 % over its limit of 12.5 % for 1 sample");
}

// ---------------------------------------------------------------------------------------------------------
// Sampling a fake /proc

std::uint64_t pages(std::uint64_t count) {
    return count * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::vector<pid_t> pidsOf(const ProcessTreeSample& tree) {
    std::vector<pid_t> pids;
    for (const ProcessCpuSample& process : tree.processes)
        pids.push_back(process.pid);
    return pids;
}

// init, a service (100) with a child and a grandchild, an unrelated process and a second service.
void addServiceTree(FakeProc& proc) {
    proc.add(1, "init", 0, 500, 500, 1, 1000);
    proc.add(100, "my ) (weird proc", 1, 150, 75, 12345, 2560);
    proc.add(101, "worker", 100, 5, 5, 12400, 100);
    proc.add(1020, "grand child", 101, 30, 20, 12500, 50);
    proc.add(200, "unrelated", 1, 9000, 9000, 200, 7777);
    proc.add(300, "other", 1, 1, 2, 300, 10);
    proc.add(301, "other-child", 300, 3, 4, 301, 20);
}

TEST(ProcessTreeSampler, SumsTheTreeOfEachRootAndNothingElse) {
    FakeProc proc;
    addServiceTree(proc);
    // Not processes: ignored.
    fs::create_directories(proc.root() / "self");
    fs::create_directories(proc.root() / "sys");
    test::writeFile(proc.root() / "stat", "cpu 1 2 3 4\n");
    test::writeFile(proc.root() / "42", "a file, not a process directory\n");

    ProcessTreeSampler sampler(proc.root());
    std::vector<ProcessTreeSample> trees;
    sampler.sample({100, 300}, trees);

    ASSERT_EQ(trees.size(), 2u);
    const ProcessTreeSample& service = trees[0];
    EXPECT_EQ(service.root, 100);
    EXPECT_TRUE(service.found);
    EXPECT_EQ(service.rss_bytes, pages(2560 + 100 + 50));
    EXPECT_EQ(service.cpu_ticks, 225u + 10u + 50u);
    EXPECT_THAT(pidsOf(service), ElementsAre(100, 101, 1020));
    EXPECT_EQ(service.processes[0].start_time_ticks, 12345u);
    EXPECT_EQ(service.processes[0].cpu_ticks, 225u);
    EXPECT_EQ(service.processes[2].cpu_ticks, 50u);

    const ProcessTreeSample& other = trees[1];
    EXPECT_EQ(other.root, 300);
    EXPECT_TRUE(other.found);
    EXPECT_EQ(other.rss_bytes, pages(30));
    EXPECT_EQ(other.cpu_ticks, 10u);
    EXPECT_THAT(pidsOf(other), ElementsAre(300, 301));
}

TEST(ProcessTreeSampler, AMissingRootIsNotFound) {
    FakeProc proc;
    addServiceTree(proc);
    ProcessTreeSampler sampler(proc.root());
    std::vector<ProcessTreeSample> trees;
    sampler.sample({999, 100}, trees);
    ASSERT_EQ(trees.size(), 2u);
    EXPECT_EQ(trees[0].root, 999);
    EXPECT_FALSE(trees[0].found);
    EXPECT_EQ(trees[0].rss_bytes, 0u);
    EXPECT_TRUE(trees[0].processes.empty());
    EXPECT_TRUE(trees[1].found);
}

TEST(ProcessTreeSampler, AProcessCountsTowardsItsNearestRoot) {
    FakeProc proc;
    addServiceTree(proc);
    ProcessTreeSampler sampler(proc.root());
    std::vector<ProcessTreeSample> trees;
    sampler.sample({100, 101, 100}, trees);
    ASSERT_EQ(trees.size(), 3u);
    EXPECT_THAT(pidsOf(trees[0]), ElementsAre(100));
    EXPECT_THAT(pidsOf(trees[1]), ElementsAre(101, 1020));
    EXPECT_EQ(trees[1].cpu_ticks, 60u);
    EXPECT_FALSE(trees[2].found) << "a root listed twice counts at its first place only";
}

TEST(ProcessTreeSampler, EachRoundSeesTheProcessesOfThatRound) {
    FakeProc proc;
    addServiceTree(proc);
    ProcessTreeSampler sampler(proc.root());
    std::vector<ProcessTreeSample> trees;
    sampler.sample({100}, trees);
    ASSERT_EQ(trees[0].processes.size(), 3u);

    proc.remove(1020);
    proc.add(105, "new", 100, 7, 0, 13000, 5);
    proc.add(101, "worker", 100, 50, 50, 12400, 400);
    sampler.sample({100}, trees);
    ASSERT_EQ(trees.size(), 1u);
    EXPECT_THAT(pidsOf(trees[0]), ElementsAre(100, 101, 105));
    EXPECT_EQ(trees[0].cpu_ticks, 225u + 100u + 7u);
    EXPECT_EQ(trees[0].rss_bytes, pages(2560 + 400 + 5));

    sampler.sample({}, trees);
    EXPECT_TRUE(trees.empty());
}

TEST(ProcessTreeSampler, SkipsStatFilesItCannotParse) {
    FakeProc proc;
    addServiceTree(proc);
    fs::create_directories(proc.root() / "400");
    test::writeFile(proc.root() / "400" / "stat", "400 (truncated");
    fs::create_directories(proc.root() / "401");
    test::writeFile(proc.root() / "401" / "stat", "401 (short) S 100 1 2\n");
    fs::create_directories(proc.root() / "402"); // gone before its stat was read
    ProcessTreeSampler sampler(proc.root());
    std::vector<ProcessTreeSample> trees;
    sampler.sample({100}, trees);
    EXPECT_THAT(pidsOf(trees[0]), ElementsAre(100, 101, 1020));
}

TEST(ProcessTreeSampler, AParentLoopInASnapshotEndsTheWalk) {
    FakeProc proc;
    proc.add(10, "a", 11, 1, 1, 1, 1);
    proc.add(11, "b", 10, 1, 1, 1, 1);
    proc.add(12, "service", 1, 1, 1, 1, 1);
    ProcessTreeSampler sampler(proc.root());
    std::vector<ProcessTreeSample> trees;
    sampler.sample({12}, trees);
    EXPECT_THAT(pidsOf(trees[0]), ElementsAre(12));
}

TEST(ProcessTreeSampler, AMissingProcRootThrows) {
    test::TempDir dir;
    ProcessTreeSampler sampler(dir.path() / "no-proc");
    std::vector<ProcessTreeSample> trees;
    try {
        sampler.sample({1}, trees);
        ADD_FAILURE() << "sampling succeeded";
    } catch (const ProcReadError& error) {
        EXPECT_THAT(error.what(), HasSubstr((dir.path() / "no-proc").string()));
    }
}

TEST(ProcessTreeSampler, FeedsTheWatcher) {
    FakeProc proc;
    addServiceTree(proc);
    ProcessTreeSampler sampler(proc.root());
    ResourceLimitWatcher watcher(1, kTicksPerSecond);
    const ResourceLimits limits = cpuLimit(100);
    std::vector<ProcessTreeSample> trees;

    sampler.sample({100}, trees);
    EXPECT_FALSE(watcher.observe("web", limits, 100, &trees[0], at(0s)));
    // In one second: the worker spends 90 more ticks and the grandchild, with its 50, exits.
    proc.remove(1020);
    proc.add(101, "worker", 100, 95, 5, 12400, 100);
    sampler.sample({100}, trees);
    EXPECT_FALSE(watcher.observe("web", limits, 100, &trees[0], at(1s)));
    EXPECT_DOUBLE_EQ(*watcher.lastCpuPercent("web"), 90.0);

    // And 120 more in the next second: over one CPU.
    proc.add(101, "worker", 100, 215, 5, 12400, 100);
    sampler.sample({100}, trees);
    const auto violation = watcher.observe("web", limits, 100, &trees[0], at(2s));
    ASSERT_TRUE(violation.has_value());
    EXPECT_EQ(violation->detail, "CPU 120 % over its limit of 100 % for 1 sample");
}

TEST(ProcessTreeSampler, MeasuresThisProcessOnTheRealProc) {
    ProcessTreeSampler sampler;
    std::vector<ProcessTreeSample> trees;
    sampler.sample({::getpid()}, trees);
    ASSERT_EQ(trees.size(), 1u);
    ASSERT_TRUE(trees[0].found);
    EXPECT_GT(trees[0].rss_bytes, 0u);
    ASSERT_FALSE(trees[0].processes.empty());
    EXPECT_EQ(trees[0].processes[0].pid, ::getpid());
}

} // namespace
} // namespace tau
