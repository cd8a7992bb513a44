#include "tau/resource_limits.h"

#include "tau/procfs.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <unistd.h>

namespace tau {

namespace {

// Markers in the tree-of-entry table besides a tree's index.
constexpr int kNoTree = -1;
constexpr int kVisiting = -2;
constexpr int kUnresolved = -3;

// Fields of /proc/<pid>/stat counted from the state, the first one after the command name: the name may
// hold blanks and parentheses, so parsing starts after its last ')'.
constexpr std::size_t kParentField = 1;
constexpr std::size_t kUserTimeField = 11;
constexpr std::size_t kSystemTimeField = 12;
constexpr std::size_t kStartTimeField = 19;
constexpr std::size_t kResidentPagesField = 21;

constexpr std::uint64_t kBytesPerMebibyte = 1024 * 1024;

bool isPid(const char* name) {
    if (*name < '1' || *name > '9')
        return false;
    for (const char* c = name; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9')
            return false;
    }
    return true;
}

template <typename Number> bool parseField(std::string_view text, Number& value) {
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    return error == std::errc{} && end == text.data() + text.size();
}

struct StatFields {
    pid_t ppid = 0;
    std::uint64_t cpu_ticks = 0;
    std::uint64_t start_time_ticks = 0;
    std::uint64_t rss_pages = 0;
};

bool parseStat(std::string_view stat, StatFields& fields) {
    const std::size_t nameEnd = stat.rfind(')');
    if (nameEnd == std::string_view::npos)
        return false;
    std::string_view rest = stat.substr(nameEnd + 1);
    std::uint64_t userTicks = 0;
    std::uint64_t systemTicks = 0;
    long long residentPages = 0;
    std::size_t field = 0;
    bool complete = false;
    while (!complete) {
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\n'))
            rest.remove_prefix(1);
        if (rest.empty())
            return false;
        const std::size_t length = std::min(rest.find_first_of(" \n"), rest.size());
        const std::string_view text = rest.substr(0, length);
        rest.remove_prefix(length);
        bool parsed = true;
        switch (field) {
        case kParentField:
            parsed = parseField(text, fields.ppid);
            break;
        case kUserTimeField:
            parsed = parseField(text, userTicks);
            break;
        case kSystemTimeField:
            parsed = parseField(text, systemTicks);
            break;
        case kStartTimeField:
            parsed = parseField(text, fields.start_time_ticks);
            break;
        case kResidentPagesField:
            parsed = parseField(text, residentPages);
            complete = true;
            break;
        default:
            break;
        }
        if (!parsed)
            return false;
        ++field;
    }
    fields.cpu_ticks = userTicks + systemTicks;
    fields.rss_pages = static_cast<std::uint64_t>(std::max(0LL, residentPages));
    return true;
}

// One decimal, none for whole numbers: "512", "612.4".
std::string formatAmount(double value) {
    std::array<char, 64> text{};
    const bool whole = std::floor(value) == value;
    std::snprintf(text.data(), text.size(), whole ? "%.0f" : "%.1f", value);
    return text.data();
}

std::string formatMebibytes(std::uint64_t bytes) {
    return formatAmount(static_cast<double>(bytes) / kBytesPerMebibyte) + " MiB";
}

// Ticks spent between two samples of one tree, both sorted by pid. A process is the same only with the
// same pid and start time; anything else in `current` was born since `previous` and all its ticks are new.
std::uint64_t ticksBetween(const std::vector<ProcessCpuSample>& previous,
                           const std::vector<ProcessCpuSample>& current) {
    std::uint64_t ticks = 0;
    std::size_t before = 0;
    for (const ProcessCpuSample& process : current) {
        while (before < previous.size() && previous[before].pid < process.pid)
            ++before;
        const bool same = before < previous.size() && previous[before].pid == process.pid &&
                          previous[before].start_time_ticks == process.start_time_ticks;
        if (!same)
            ticks += process.cpu_ticks;
        else if (process.cpu_ticks > previous[before].cpu_ticks)
            ticks += process.cpu_ticks - previous[before].cpu_ticks;
    }
    return ticks;
}

bool byPid(const ProcessCpuSample& left, const ProcessCpuSample& right) {
    return left.pid < right.pid;
}

bool sameLimits(const ResourceLimits& left, const ResourceLimits& right) {
    return left.memory_bytes == right.memory_bytes && left.cpu_percent == right.cpu_percent;
}

} // namespace

ProcessTreeSampler::ProcessTreeSampler(std::filesystem::path procRoot)
    : proc_(std::move(procRoot)),
      page_size_(static_cast<std::uint64_t>(std::max(::sysconf(_SC_PAGESIZE), 1L))) {}

ProcessTreeSampler::~ProcessTreeSampler() {
    if (directory_ != nullptr)
        ::closedir(directory_);
}

void ProcessTreeSampler::scan() {
    entries_.clear();
    // Kept open between rounds: rewinding lists the processes of now and saves an open per round.
    if (directory_ == nullptr) {
        directory_ = ::opendir(proc_.c_str());
        if (directory_ == nullptr)
            throw ProcReadError("cannot list " + proc_.string() + ": " + std::strerror(errno));
    } else {
        ::rewinddir(directory_);
    }
    const int procFd = ::dirfd(directory_);
    std::array<char, 64> path{};
    std::array<char, 2048> stat{};
    while (const dirent* entry = ::readdir(directory_)) {
        if ((entry->d_type != DT_DIR && entry->d_type != DT_UNKNOWN) || !isPid(entry->d_name))
            continue;
        const std::size_t nameLength = std::strlen(entry->d_name);
        constexpr std::string_view kStat = "/stat";
        if (nameLength + kStat.size() >= path.size())
            continue;
        std::memcpy(path.data(), entry->d_name, nameLength);
        std::memcpy(path.data() + nameLength, kStat.data(), kStat.size());
        path[nameLength + kStat.size()] = '\0';

        // A process may exit at any point here; it is then simply not part of this round.
        const int fd = ::openat(procFd, path.data(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        std::size_t length = 0;
        while (length < stat.size()) {
            const ssize_t count = ::read(fd, stat.data() + length, stat.size() - length);
            if (count < 0 && errno == EINTR)
                continue;
            if (count <= 0)
                break;
            length += static_cast<std::size_t>(count);
        }
        ::close(fd);

        StatFields fields;
        pid_t pid = 0;
        if (!parseField(std::string_view(entry->d_name, nameLength), pid) ||
            !parseStat(std::string_view(stat.data(), length), fields)) {
            continue;
        }
        entries_.push_back(
            ProcessEntry{pid, fields.ppid, fields.start_time_ticks, fields.cpu_ticks, fields.rss_pages});
    }
    // The kernel lists processes in pid order; a fake tree on another filesystem may not.
    if (!std::is_sorted(
            entries_.begin(), entries_.end(),
            [](const ProcessEntry& left, const ProcessEntry& right) { return left.pid < right.pid; })) {
        std::sort(entries_.begin(), entries_.end(),
                  [](const ProcessEntry& left, const ProcessEntry& right) { return left.pid < right.pid; });
    }
}

std::optional<std::size_t> ProcessTreeSampler::indexOf(pid_t pid) const {
    const auto found =
        std::lower_bound(entries_.begin(), entries_.end(), pid,
                         [](const ProcessEntry& entry, pid_t wanted) { return entry.pid < wanted; });
    if (found == entries_.end() || found->pid != pid)
        return std::nullopt;
    return static_cast<std::size_t>(found - entries_.begin());
}

// Walks up the parents until a process whose tree is known, then writes the answer along the way, so that
// every process is walked over once per round.
int ProcessTreeSampler::treeOf(std::size_t entry) {
    chain_.clear();
    std::size_t current = entry;
    int tree = kNoTree;
    while (true) {
        const int known = tree_of_entry_[current];
        if (known >= kNoTree) {
            tree = known;
            break;
        }
        // A snapshot taken while pids are reused can in theory contain a loop.
        if (known == kVisiting)
            break;
        tree_of_entry_[current] = kVisiting;
        chain_.push_back(current);
        const std::optional<std::size_t> parent = indexOf(entries_[current].ppid);
        if (!parent)
            break;
        current = *parent;
    }
    for (const std::size_t walked : chain_)
        tree_of_entry_[walked] = tree;
    return tree;
}

void ProcessTreeSampler::sample(const std::vector<pid_t>& roots, std::vector<ProcessTreeSample>& trees) {
    if (roots.empty()) {
        trees.clear();
        return;
    }
    scan();
    tree_of_entry_.assign(entries_.size(), kUnresolved);
    trees.resize(roots.size());
    for (std::size_t index = 0; index < roots.size(); ++index) {
        ProcessTreeSample& tree = trees[index];
        tree.root = roots[index];
        tree.found = false;
        tree.rss_bytes = 0;
        tree.cpu_ticks = 0;
        tree.processes.clear();
        const std::optional<std::size_t> entry = indexOf(roots[index]);
        // A root given twice is counted at its first place only.
        if (entry && tree_of_entry_[*entry] == kUnresolved) {
            tree_of_entry_[*entry] = static_cast<int>(index);
            tree.found = true;
        }
    }
    for (std::size_t entry = 0; entry < entries_.size(); ++entry) {
        const int tree = treeOf(entry);
        if (tree < 0)
            continue;
        const ProcessEntry& process = entries_[entry];
        ProcessTreeSample& sample = trees[static_cast<std::size_t>(tree)];
        sample.rss_bytes += process.rss_pages * page_size_;
        sample.cpu_ticks += process.cpu_ticks;
        sample.processes.push_back(
            ProcessCpuSample{process.pid, process.start_time_ticks, process.cpu_ticks});
    }
}

ResourceLimitWatcher::ResourceLimitWatcher(unsigned consecutive_samples, long ticks_per_second)
    : consecutive_samples_(std::max(consecutive_samples, 1u)) {
    long ticks = ticks_per_second > 0 ? ticks_per_second : ::sysconf(_SC_CLK_TCK);
    // USER_HZ has been 100 on every Linux architecture for decades.
    ticks_per_second_ = static_cast<double>(ticks > 0 ? ticks : 100);
}

std::optional<ResourceViolation> ResourceLimitWatcher::observe(const std::string& service,
                                                               const ResourceLimits& limits, pid_t main_pid,
                                                               const ProcessTreeSample* tree, TimePoint at) {
    ServiceState& state = services_[service];
    if (state.main_pid != main_pid) {
        state = ServiceState{};
        state.main_pid = main_pid;
        state.limits = limits;
    } else if (!sameLimits(state.limits, limits)) {
        state.limits = limits;
        state.memory_over = 0;
        state.cpu_over = 0;
    }
    if (state.reported || tree == nullptr || !tree->found)
        return std::nullopt;
    // Without time passing there is no rate; such a sample is no data either.
    if (state.previous_at && at <= *state.previous_at)
        return std::nullopt;

    const std::vector<ProcessCpuSample>* current = &tree->processes;
    std::vector<ProcessCpuSample> sorted;
    if (!std::is_sorted(current->begin(), current->end(), byPid)) {
        sorted = *current;
        std::sort(sorted.begin(), sorted.end(), byPid);
        current = &sorted;
    }
    bool cpuMeasured = false;
    if (state.previous_at) {
        const double seconds = std::chrono::duration<double>(at - *state.previous_at).count();
        const auto ticks = static_cast<double>(ticksBetween(state.previous_processes, *current));
        state.cpu_percent = ticks * 100.0 / (ticks_per_second_ * seconds);
        cpuMeasured = true;
    }
    state.previous_at = at;
    state.previous_processes.assign(current->begin(), current->end());

    if (limits.memory_bytes && tree->rss_bytes > *limits.memory_bytes)
        ++state.memory_over;
    else
        state.memory_over = 0;
    if (cpuMeasured) {
        if (limits.cpu_percent && *state.cpu_percent > *limits.cpu_percent)
            ++state.cpu_over;
        else
            state.cpu_over = 0;
    }

    auto forSamples = [this] {
        return " for " + std::to_string(consecutive_samples_) +
               (consecutive_samples_ == 1 ? " sample" : " samples");
    };
    if (state.memory_over >= consecutive_samples_) {
        state.reported = true;
        return ResourceViolation{ResourceViolation::Kind::Memory, main_pid,
                                 "memory " + formatMebibytes(tree->rss_bytes) + " over its limit of " +
                                     formatMebibytes(*limits.memory_bytes) + forSamples()};
    }
    if (state.cpu_over >= consecutive_samples_) {
        state.reported = true;
        return ResourceViolation{ResourceViolation::Kind::Cpu, main_pid,
                                 "CPU " + formatAmount(*state.cpu_percent) + " % over its limit of " +
                                     formatAmount(*limits.cpu_percent) + " %" + forSamples()};
    }
    return std::nullopt;
}

void ResourceLimitWatcher::forget(const std::string& service) {
    services_.erase(service);
}

std::optional<double> ResourceLimitWatcher::lastCpuPercent(const std::string& service) const {
    const auto found = services_.find(service);
    if (found == services_.end())
        return std::nullopt;
    return found->second.cpu_percent;
}

} // namespace tau
