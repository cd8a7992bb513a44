#include "tau/procfs.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <limits>
#include <map>
#include <net/route.h>
#include <set>
#include <string_view>
#include <sys/statvfs.h>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace tau {

namespace {

constexpr std::uint64_t kBytesPerKilobyte = 1024;

// Reads a whole file with plain read(2): /proc files report a size of 0, and a process that exits while
// we read makes read fail with ESRCH, which must look like "gone" rather than like an empty file.
std::optional<std::string> tryReadFile(const std::filesystem::path& path, int* errorNumber = nullptr) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errorNumber != nullptr)
            *errorNumber = errno;
        return std::nullopt;
    }
    std::string content;
    std::array<char, 8192> buffer{};
    while (true) {
        ssize_t count = ::read(fd, buffer.data(), buffer.size());
        if (count < 0) {
            if (errno == EINTR)
                continue;
            if (errorNumber != nullptr)
                *errorNumber = errno;
            ::close(fd);
            return std::nullopt;
        }
        if (count == 0)
            break;
        content.append(buffer.data(), static_cast<std::size_t>(count));
    }
    ::close(fd);
    return content;
}

std::string readRequiredFile(const std::filesystem::path& path) {
    int errorNumber = 0;
    std::optional<std::string> content = tryReadFile(path, &errorNumber);
    if (!content) {
        throw ProcReadError("cannot read " + path.string() + ": " + std::strerror(errorNumber));
    }
    return std::move(*content);
}

[[noreturn]] void throwMalformed(const std::filesystem::path& path, std::string_view problem) {
    throw ProcReadError("malformed " + path.string() + ": " + std::string(problem));
}

std::vector<std::string_view> splitLines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        std::size_t end = text.find('\n');
        if (end == std::string_view::npos) {
            lines.push_back(text);
            break;
        }
        lines.push_back(text.substr(0, end));
        text.remove_prefix(end + 1);
    }
    return lines;
}

bool isBlank(char character) {
    return character == ' ' || character == '\t' || character == '\n' || character == '\r' ||
           character == '\v' || character == '\f';
}

std::vector<std::string_view> splitFields(std::string_view text) {
    std::vector<std::string_view> fields;
    std::size_t position = 0;
    while (position < text.size()) {
        while (position < text.size() && isBlank(text[position]))
            ++position;
        std::size_t start = position;
        while (position < text.size() && !isBlank(text[position]))
            ++position;
        if (position > start)
            fields.push_back(text.substr(start, position - start));
    }
    return fields;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && isBlank(text.front()))
        text.remove_prefix(1);
    while (!text.empty() && isBlank(text.back()))
        text.remove_suffix(1);
    return text;
}

template <typename Number> std::optional<Number> parseNumber(std::string_view text, int base = 10) {
    Number value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (error != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

std::optional<double> parseDouble(std::string_view text) {
    double value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

bool isAllDigits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

CpuTimes parseCpuLine(const std::vector<std::string_view>& fields, const std::filesystem::path& path) {
    std::array<std::uint64_t, 8> values{};
    // Older kernels print fewer columns; whatever is missing has simply never been counted.
    std::size_t available = std::min(values.size(), fields.size() - 1);
    for (std::size_t index = 0; index < available; ++index) {
        std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[index + 1]);
        if (!value)
            throwMalformed(path, "bad number in line " + std::string(fields[0]));
        values[index] = *value;
    }
    CpuTimes times;
    times.user = values[0];
    times.nice = values[1];
    times.system = values[2];
    times.idle = values[3];
    times.iowait = values[4];
    times.irq = values[5];
    times.softirq = values[6];
    times.steal = values[7];
    return times;
}

} // namespace

std::string unescapeMountField(std::string_view field) {
    auto isOctal = [](char c) { return c >= '0' && c <= '7'; };
    std::string result;
    result.reserve(field.size());
    for (std::size_t index = 0; index < field.size(); ++index) {
        if (field[index] == '\\' && index + 3 < field.size() && isOctal(field[index + 1]) &&
            isOctal(field[index + 2]) && isOctal(field[index + 3])) {
            int code =
                (field[index + 1] - '0') * 64 + (field[index + 2] - '0') * 8 + (field[index + 3] - '0');
            result.push_back(static_cast<char>(code));
            index += 3;
        } else {
            result.push_back(field[index]);
        }
    }
    return result;
}

ProcFsReader::ProcFsReader(std::filesystem::path procRoot, std::filesystem::path sysRoot)
    : proc_(std::move(procRoot)), sys_(std::move(sysRoot)) {}

CpuStat ProcFsReader::readCpuStat() const {
    const std::filesystem::path path = proc_ / "stat";
    const std::string content = readRequiredFile(path);
    CpuStat stat;
    bool sawTotal = false;
    for (std::string_view line : splitLines(content)) {
        if (!line.starts_with("cpu"))
            continue;
        std::vector<std::string_view> fields = splitFields(line);
        if (fields.empty())
            continue;
        std::string_view label = fields[0];
        if (label == "cpu") {
            stat.total = parseCpuLine(fields, path);
            sawTotal = true;
        } else if (isAllDigits(label.substr(3))) {
            stat.cores.push_back(parseCpuLine(fields, path));
        }
    }
    if (!sawTotal)
        throwMalformed(path, "no cpu line");
    return stat;
}

MemInfo ProcFsReader::readMemInfo() const {
    const std::filesystem::path path = proc_ / "meminfo";
    const std::string content = readRequiredFile(path);
    std::map<std::string_view, std::uint64_t, std::less<>> bytesByKey;
    for (std::string_view line : splitLines(content)) {
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        std::vector<std::string_view> fields = splitFields(line.substr(colon + 1));
        if (fields.empty())
            continue;
        std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[0]);
        if (!value)
            continue;
        bool inKilobytes = fields.size() > 1 && fields[1] == "kB";
        bytesByKey[trim(line.substr(0, colon))] = inKilobytes ? *value * kBytesPerKilobyte : *value;
    }
    auto lookup = [&](std::string_view key) -> std::optional<std::uint64_t> {
        auto found = bytesByKey.find(key);
        if (found == bytesByKey.end())
            return std::nullopt;
        return found->second;
    };
    std::optional<std::uint64_t> total = lookup("MemTotal");
    std::optional<std::uint64_t> free = lookup("MemFree");
    if (!total || !free)
        throwMalformed(path, "no MemTotal or MemFree");

    MemInfo info;
    info.total_bytes = *total;
    info.free_bytes = *free;
    // Kernels before 3.14 lack MemAvailable; free plus page cache is the estimate tools used then.
    info.available_bytes =
        lookup("MemAvailable").value_or(*free + lookup("Buffers").value_or(0) + lookup("Cached").value_or(0));
    info.swap_total_bytes = lookup("SwapTotal").value_or(0);
    info.swap_free_bytes = lookup("SwapFree").value_or(0);
    return info;
}

LoadAverage ProcFsReader::readLoadAverage() const {
    const std::filesystem::path path = proc_ / "loadavg";
    const std::string content = readRequiredFile(path);
    std::vector<std::string_view> fields = splitFields(content);
    if (fields.size() < 3)
        throwMalformed(path, "fewer than three averages");
    std::optional<double> one = parseDouble(fields[0]);
    std::optional<double> five = parseDouble(fields[1]);
    std::optional<double> fifteen = parseDouble(fields[2]);
    if (!one || !five || !fifteen)
        throwMalformed(path, "bad number");
    return LoadAverage{*one, *five, *fifteen};
}

std::vector<NetDevCounters> ProcFsReader::readNetDev() const {
    const std::filesystem::path path = proc_ / "net" / "dev";
    const std::string content = readRequiredFile(path);
    std::vector<std::string_view> lines = splitLines(content);
    std::vector<NetDevCounters> interfaces;
    constexpr std::size_t kHeaderLines = 2;
    constexpr std::size_t kCounterColumns = 16;
    for (std::size_t index = kHeaderLines; index < lines.size(); ++index) {
        std::string_view line = lines[index];
        // Long names run straight into the counters ("eth0:123"), so split at the colon, not at blanks.
        // The last colon, because the counters never contain one while a name might.
        std::size_t colon = line.rfind(':');
        if (colon == std::string_view::npos)
            continue;
        std::vector<std::string_view> fields = splitFields(line.substr(colon + 1));
        if (fields.size() < kCounterColumns)
            throwMalformed(path, "short line for " + std::string(line));
        std::array<std::uint64_t, kCounterColumns> values{};
        for (std::size_t column = 0; column < kCounterColumns; ++column) {
            std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[column]);
            if (!value)
                throwMalformed(path, "bad number in line " + std::string(line));
            values[column] = *value;
        }
        NetDevCounters counters;
        counters.interface = std::string(trim(line.substr(0, colon)));
        counters.rx_bytes = values[0];
        counters.rx_packets = values[1];
        counters.rx_errors = values[2];
        counters.rx_drops = values[3];
        counters.tx_bytes = values[8];
        counters.tx_packets = values[9];
        counters.tx_errors = values[10];
        counters.tx_drops = values[11];
        interfaces.push_back(std::move(counters));
    }
    return interfaces;
}

std::vector<MountEntry> ProcFsReader::readMounts() const {
    const std::filesystem::path path = proc_ / "self" / "mounts";
    const std::string content = readRequiredFile(path);
    std::vector<MountEntry> mounts;
    for (std::string_view line : splitLines(content)) {
        std::vector<std::string_view> fields = splitFields(line);
        if (fields.size() < 3)
            continue;
        mounts.push_back(
            MountEntry{unescapeMountField(fields[0]), unescapeMountField(fields[1]), std::string(fields[2])});
    }
    return mounts;
}

std::optional<FilesystemUsage> ProcFsReader::readFilesystemUsage(const std::string& mountPoint) const {
    struct statvfs info {};
    if (::statvfs(mountPoint.c_str(), &info) != 0)
        return std::nullopt;
    const std::uint64_t fragmentSize = info.f_frsize != 0 ? info.f_frsize : info.f_bsize;
    FilesystemUsage usage;
    usage.total_bytes = static_cast<std::uint64_t>(info.f_blocks) * fragmentSize;
    usage.free_bytes = static_cast<std::uint64_t>(info.f_bfree) * fragmentSize;
    usage.available_bytes = static_cast<std::uint64_t>(info.f_bavail) * fragmentSize;
    usage.inodes_total = info.f_files;
    usage.inodes_free = info.f_ffree;
    return usage;
}

std::optional<ProcessStat> ProcFsReader::readProcessStat(pid_t pid) const {
    if (pid <= 0)
        return std::nullopt;
    std::optional<std::string> content = tryReadFile(proc_ / std::to_string(pid) / "stat");
    if (!content)
        return std::nullopt;

    // The command name may hold anything, blanks and parentheses included, but the kernel always closes
    // it with the last ')' of the line.
    std::size_t open = content->find('(');
    std::size_t close = content->rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open)
        return std::nullopt;

    std::vector<std::string_view> fields = splitFields(std::string_view(*content).substr(close + 1));
    // Field numbers as in proc(5); fields[0] is field 3, the state.
    auto field = [&](std::size_t number) { return fields[number - 3]; };
    constexpr std::size_t kLastFieldUsed = 24; // rss
    if (fields.size() < kLastFieldUsed - 2 || field(3).size() != 1)
        return std::nullopt;

    std::optional<long long> parentPid = parseNumber<long long>(field(4));
    std::optional<std::uint64_t> userTicks = parseNumber<std::uint64_t>(field(14));
    std::optional<std::uint64_t> systemTicks = parseNumber<std::uint64_t>(field(15));
    std::optional<long long> threads = parseNumber<long long>(field(20));
    std::optional<std::uint64_t> startTicks = parseNumber<std::uint64_t>(field(22));
    std::optional<long long> residentPages = parseNumber<long long>(field(24));
    if (!parentPid || !userTicks || !systemTicks || !threads || !startTicks || !residentPages) {
        return std::nullopt;
    }

    static const long pageSize = ::sysconf(_SC_PAGESIZE);
    ProcessStat stat;
    stat.pid = pid;
    stat.ppid = static_cast<pid_t>(*parentPid);
    stat.comm = content->substr(open + 1, close - open - 1);
    stat.state = field(3)[0];
    stat.utime_ticks = *userTicks;
    stat.stime_ticks = *systemTicks;
    stat.start_time_ticks = *startTicks;
    stat.num_threads = static_cast<unsigned>(std::max(0LL, *threads));
    stat.rss_bytes = static_cast<std::uint64_t>(std::max(0LL, *residentPages)) *
                     static_cast<std::uint64_t>(pageSize > 0 ? pageSize : 4096);
    return stat;
}

std::vector<pid_t> ProcFsReader::listPids() const {
    std::error_code error;
    std::filesystem::directory_iterator entries(proc_, error);
    if (error)
        throw ProcReadError("cannot list " + proc_.string() + ": " + error.message());
    std::vector<pid_t> pids;
    for (const std::filesystem::directory_entry& entry : entries) {
        std::string name = entry.path().filename().string();
        if (!isAllDigits(name))
            continue;
        std::error_code typeError;
        if (!entry.is_directory(typeError))
            continue;
        std::optional<long long> pid = parseNumber<long long>(name);
        if (pid && *pid > 0 && *pid <= std::numeric_limits<pid_t>::max())
            pids.push_back(static_cast<pid_t>(*pid));
    }
    std::sort(pids.begin(), pids.end());
    return pids;
}

std::optional<std::string> ProcFsReader::defaultRouteInterface() const {
    // Without IPv4 routing the file may be absent; that is simply "no default route".
    std::optional<std::string> content = tryReadFile(proc_ / "net" / "route");
    if (!content)
        return std::nullopt;
    std::vector<std::string_view> lines = splitLines(*content);
    std::optional<std::string> best;
    unsigned long long bestMetric = 0;
    for (std::size_t index = 1; index < lines.size(); ++index) {
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        std::vector<std::string_view> fields = splitFields(lines[index]);
        if (fields.size() < 7 || fields[1] != "00000000")
            continue;
        std::optional<unsigned> flags = parseNumber<unsigned>(fields[3], 16);
        if (!flags || (*flags & RTF_UP) == 0)
            continue;
        unsigned long long metric = parseNumber<unsigned long long>(fields[6]).value_or(0);
        // Several default routes: the kernel prefers the lowest metric, and so do we.
        if (!best || metric < bestMetric) {
            best = std::string(fields[0]);
            bestMetric = metric;
        }
    }
    return best;
}

std::optional<std::string> ProcFsReader::interfaceOperState(const std::string& interface) const {
    // The name becomes a path component; refuse anything that could step outside the directory.
    if (interface.empty() || interface == "." || interface == ".." ||
        interface.find('/') != std::string::npos) {
        return std::nullopt;
    }
    std::optional<std::string> content = tryReadFile(sys_ / "class" / "net" / interface / "operstate");
    if (!content)
        return std::nullopt;
    return std::string(trim(*content));
}

long ProcFsReader::clockTicksPerSecond() const {
    return ::sysconf(_SC_CLK_TCK);
}

bool isPseudoFilesystem(const std::string& fstype) {
    // overlay is deliberately absent: it is the root filesystem of most containers.
    static const std::set<std::string, std::less<>> kPseudoTypes = {
        "proc",     "sysfs",   "devtmpfs", "devpts",      "tmpfs",      "cgroup", "cgroup2",
        "pstore",   "bpf",     "tracefs",  "debugfs",     "securityfs", "mqueue", "hugetlbfs",
        "configfs", "fusectl", "autofs",   "binfmt_misc", "rpc_pipefs", "nsfs",   "efivarfs",
        "squashfs", "ramfs",   "devfs",    "selinuxfs"};
    return kPseudoTypes.contains(fstype);
}

pid_t parentPid(const SystemReader& reader, pid_t pid) {
    const auto stat = reader.readProcessStat(pid);
    return stat ? stat->ppid : 0;
}

std::vector<pid_t> processTree(const SystemReader& reader, pid_t root) {
    std::map<pid_t, std::vector<pid_t>> childrenByParent;
    bool rootExists = false;
    for (pid_t pid : reader.listPids()) {
        std::optional<ProcessStat> stat = reader.readProcessStat(pid);
        if (!stat)
            continue;
        if (pid == root)
            rootExists = true;
        childrenByParent[stat->ppid].push_back(pid);
    }
    if (!rootExists)
        return {};

    std::vector<pid_t> tree;
    std::set<pid_t> visited{root};
    std::deque<pid_t> pending{root};
    while (!pending.empty()) {
        pid_t current = pending.front();
        pending.pop_front();
        tree.push_back(current);
        auto children = childrenByParent.find(current);
        if (children == childrenByParent.end())
            continue;
        std::vector<pid_t> ordered = children->second;
        std::sort(ordered.begin(), ordered.end());
        for (pid_t child : ordered) {
            // A snapshot taken while pids are reused can in theory contain a loop; never walk it twice.
            if (visited.insert(child).second)
                pending.push_back(child);
        }
    }
    return tree;
}

} // namespace tau
