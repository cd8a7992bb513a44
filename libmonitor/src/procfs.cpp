#include "tau/procfs.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <exception>
#include <fcntl.h>
#include <limits>
#include <linux/magic.h>
#include <map>
#include <mutex>
#include <net/route.h>
#include <set>
#include <string_view>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <unordered_map>
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

// Open descriptors of /proc/<pid>/<file>, re-read with pread() from offset 0 (or, for the fd directory, an
// O_PATH descriptor asked for its size). A descriptor stays bound to the process it was opened for: once that
// one has exited, using it fails (ESRCH, ENOENT), the descriptor is closed and the path opened again, which
// then finds whatever process holds the pid now.
class ProcessFileCache {
  public:
    enum class File : std::uint64_t { stat, io, fd_directory };

    // Sharded by pid, so that the sampler's worker threads seldom wait for each other.
    explicit ProcessFileCache(std::size_t capacity) {
        for (Shard& shard : shards_)
            shard.capacity = (capacity + kShards - 1) / kShards;
    }
    ~ProcessFileCache() {
        for (Shard& shard : shards_) {
            for (const auto& [key, entry] : shard.open)
                ::close(entry.fd);
        }
    }
    ProcessFileCache(const ProcessFileCache&) = delete;
    ProcessFileCache& operator=(const ProcessFileCache&) = delete;

    template <typename MakePath> std::optional<std::string> read(pid_t pid, File file, MakePath&& makePath) {
        return use(pid, file, O_RDONLY, std::forward<MakePath>(makePath), readFrom);
    }

    // The size the kernel reports for the directory; for /proc/<pid>/fd, the number of open descriptors.
    template <typename MakePath> std::optional<std::uint64_t> directorySize(pid_t pid, MakePath&& makePath) {
        return use(pid, File::fd_directory, O_PATH | O_DIRECTORY, std::forward<MakePath>(makePath),
                   [](int fd) -> std::optional<std::uint64_t> {
                       struct stat info {};
                       if (::fstat(fd, &info) != 0)
                           return std::nullopt;
                       return static_cast<std::uint64_t>(std::max<off_t>(info.st_size, 0));
                   });
    }

    std::size_t size() const {
        std::size_t total = 0;
        for (const Shard& shard : shards_) {
            std::lock_guard lock(shard.mutex);
            total += shard.open.size();
        }
        return total;
    }

    // Closes what belongs to processes that no longer exist; `live` is sorted.
    void retainOnly(const std::vector<pid_t>& live) {
        for (Shard& shard : shards_) {
            std::lock_guard lock(shard.mutex);
            std::erase_if(shard.open, [&](const auto& entry) {
                const auto pid = static_cast<pid_t>(entry.first >> 2);
                if (std::binary_search(live.begin(), live.end(), pid))
                    return false;
                ::close(entry.second.fd);
                return true;
            });
        }
    }

  private:
    static constexpr std::size_t kShards = 16;

    struct Entry {
        int fd = -1;
        std::uint64_t last_use = 0;
    };

    struct Shard {
        mutable std::mutex mutex;
        std::size_t capacity = 0;
        std::uint64_t uses = 0;
        std::unordered_map<std::uint64_t, Entry> open;
    };

    template <typename MakePath, typename Extract>
    auto use(pid_t pid, File file, int flags, MakePath&& makePath, Extract&& extract)
        -> decltype(extract(0)) {
        const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) << 2) |
                                  static_cast<std::uint64_t>(file);
        Shard& shard = shards_[static_cast<std::uint32_t>(pid) % kShards];
        std::lock_guard lock(shard.mutex);
        auto found = shard.open.find(key);
        if (found != shard.open.end()) {
            found->second.last_use = ++shard.uses;
            if (auto value = extract(found->second.fd))
                return value;
            ::close(found->second.fd);
            shard.open.erase(found);
        }
        const std::filesystem::path path = makePath();
        const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
        if (fd < 0)
            return std::nullopt;
        auto value = extract(fd);
        if (!value || !makeRoom(shard)) {
            ::close(fd);
            return value;
        }
        shard.open.emplace(key, Entry{fd, ++shard.uses});
        return value;
    }

    // The files of an exited process fail with ESRCH; an empty read counts as the same, since the files of a
    // live process are never empty.
    static std::optional<std::string> readFrom(int fd) {
        std::string content;
        std::array<char, 4096> buffer{};
        while (true) {
            const ssize_t count =
                ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(content.size()));
            if (count < 0) {
                if (errno == EINTR)
                    continue;
                return std::nullopt;
            }
            if (count == 0)
                return content.empty() ? std::nullopt : std::optional<std::string>(std::move(content));
            content.append(buffer.data(), static_cast<std::size_t>(count));
        }
    }

    // Full: the descriptor used longest ago goes, most likely one of a process nobody asks about any more.
    static bool makeRoom(Shard& shard) {
        if (shard.capacity == 0)
            return false;
        if (shard.open.size() < shard.capacity)
            return true;
        auto oldest =
            std::min_element(shard.open.begin(), shard.open.end(), [](const auto& left, const auto& right) {
                return left.second.last_use < right.second.last_use;
            });
        ::close(oldest->second.fd);
        shard.open.erase(oldest);
        return true;
    }

    std::array<Shard, kShards> shards_;
};

namespace {

bool isProcFilesystem(const std::filesystem::path& path) {
    struct statfs info {};
    return ::statfs(path.c_str(), &info) == 0 && info.f_type == PROC_SUPER_MAGIC;
}

std::size_t defaultKeptOpenProcessFiles() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return 0;
    constexpr rlim_t kShareOfTheLimit = 4;
    constexpr rlim_t kMostKeptOpen = 65536;
    return static_cast<std::size_t>(std::min(limit.rlim_cur / kShareOfTheLimit, kMostKeptOpen));
}

} // namespace

ProcFsReader::ProcFsReader(std::filesystem::path procRoot, std::filesystem::path sysRoot,
                           FilesystemUsageFunction filesystemUsage,
                           std::optional<std::size_t> keptOpenProcessFiles)
    : proc_(std::move(procRoot)), sys_(std::move(sysRoot)), filesystem_usage_(std::move(filesystemUsage)) {
    // Files of a fake tree are rewritten or replaced by the tests, which a kept descriptor would not see.
    const std::size_t capacity = keptOpenProcessFiles.value_or(defaultKeptOpenProcessFiles());
    if (capacity > 0 && isProcFilesystem(proc_))
        process_files_ = std::make_shared<ProcessFileCache>(capacity);
}

std::size_t ProcFsReader::keptOpenProcessFiles() const {
    return process_files_ ? process_files_->size() : 0;
}

std::optional<std::string> ProcFsReader::readProcessFile(pid_t pid, const char* file) const {
    if (process_files_) {
        const auto kind =
            std::string_view(file) == "io" ? ProcessFileCache::File::io : ProcessFileCache::File::stat;
        return process_files_->read(pid, kind, [&] { return pidPath(pid, file); });
    }
    return tryReadFile(pidPath(pid, file));
}

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
    if (filesystem_usage_)
        return filesystem_usage_(mountPoint);
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
    std::optional<std::string> content = readProcessFile(pid, "stat");
    if (!content)
        return std::nullopt;

    // The command name may hold anything, blanks and parentheses included, but the kernel always closes
    // it with the last ')' of the line.
    std::size_t open = content->find('(');
    std::size_t close = content->rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open)
        return std::nullopt;

    // Field numbers as in proc(5), from 3 (the state) to 24 (rss); the rest is not needed. Sampling reads
    // this file for every process of the machine, so the fields are picked out without splitting the whole
    // line.
    constexpr std::size_t kFirstField = 3;
    constexpr std::size_t kLastFieldUsed = 24;
    std::array<std::string_view, kLastFieldUsed - kFirstField + 1> fields{};
    std::size_t found = 0;
    const std::string_view rest = std::string_view(*content).substr(close + 1);
    for (std::size_t position = 0; found < fields.size() && position < rest.size();) {
        while (position < rest.size() && isBlank(rest[position]))
            ++position;
        const std::size_t start = position;
        while (position < rest.size() && !isBlank(rest[position]))
            ++position;
        if (position > start)
            fields[found++] = rest.substr(start, position - start);
    }
    auto field = [&](std::size_t number) { return fields[number - kFirstField]; };
    if (found < fields.size() || field(3).size() != 1)
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
    if (process_files_)
        process_files_->retainOnly(pids);
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

std::filesystem::path ProcFsReader::pidPath(pid_t pid, const char* file) const {
    std::string path = proc_.native();
    path += '/';
    path += std::to_string(pid);
    path += '/';
    path += file;
    return path;
}

VmStat ProcFsReader::readVmStat() const {
    const std::filesystem::path path = proc_ / "vmstat";
    const std::string content = readRequiredFile(path);
    VmStat stat;
    for (std::string_view line : splitLines(content)) {
        std::vector<std::string_view> fields = splitFields(line);
        if (fields.size() < 2)
            continue;
        std::uint64_t* target = nullptr;
        if (fields[0] == "pswpin")
            target = &stat.swap_in_pages;
        else if (fields[0] == "pswpout")
            target = &stat.swap_out_pages;
        if (target == nullptr)
            continue;
        std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[1]);
        if (!value)
            throwMalformed(path, "bad number for " + std::string(fields[0]));
        *target = *value;
    }
    return stat;
}

std::vector<DiskStatCounters> ProcFsReader::readDiskStats() const {
    const std::filesystem::path path = proc_ / "diskstats";
    const std::string content = readRequiredFile(path);
    std::vector<DiskStatCounters> disks;
    // major minor name, then the counters of Documentation/admin-guide/iostats.rst; io_ticks is the 10th.
    constexpr std::size_t kIoTicksField = 12;
    for (std::string_view line : splitLines(content)) {
        std::vector<std::string_view> fields = splitFields(line);
        if (fields.empty())
            continue;
        if (fields.size() <= kIoTicksField)
            throwMalformed(path, "short line for " + std::string(line));
        auto counter = [&](std::size_t index) {
            std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[index]);
            if (!value)
                throwMalformed(path, "bad number in line " + std::string(line));
            return *value;
        };
        DiskStatCounters disk;
        disk.device = std::string(fields[2]);
        disk.reads_completed = counter(3);
        disk.sectors_read = counter(5);
        disk.writes_completed = counter(7);
        disk.sectors_written = counter(9);
        disk.io_ticks_ms = counter(kIoTicksField);
        disks.push_back(std::move(disk));
    }
    return disks;
}

namespace {

// A name from a kernel file becomes one path component; anything that could leave the directory is refused.
bool isSafePathComponent(std::string_view name) {
    return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

std::optional<PressureStall> parsePressureLine(const std::vector<std::string_view>& fields,
                                               const std::filesystem::path& path) {
    PressureStall stall;
    bool sawAvg10 = false, sawAvg60 = false, sawAvg300 = false, sawTotal = false;
    for (std::size_t index = 1; index < fields.size(); ++index) {
        std::string_view field = fields[index];
        std::size_t equals = field.find('=');
        if (equals == std::string_view::npos)
            throwMalformed(path, "no '=' in " + std::string(field));
        std::string_view key = field.substr(0, equals);
        std::string_view value = field.substr(equals + 1);
        if (key == "total") {
            std::optional<std::uint64_t> total = parseNumber<std::uint64_t>(value);
            if (!total)
                throwMalformed(path, "bad total " + std::string(value));
            stall.total_usec = *total;
            sawTotal = true;
            continue;
        }
        double* average = key == "avg10"    ? &stall.avg10
                          : key == "avg60"  ? &stall.avg60
                          : key == "avg300" ? &stall.avg300
                                            : nullptr;
        if (average == nullptr)
            continue;
        std::optional<double> parsed = parseDouble(value);
        if (!parsed)
            throwMalformed(path, "bad " + std::string(key) + " " + std::string(value));
        *average = *parsed;
        (key == "avg10" ? sawAvg10 : key == "avg60" ? sawAvg60 : sawAvg300) = true;
    }
    if (!sawAvg10 || !sawAvg60 || !sawAvg300 || !sawTotal)
        throwMalformed(path, "incomplete line " + std::string(fields[0]));
    return stall;
}

std::optional<double> readMillidegrees(const std::filesystem::path& path) {
    std::optional<std::string> content = tryReadFile(path);
    if (!content)
        return std::nullopt;
    std::optional<long long> value = parseNumber<long long>(trim(*content));
    // Sensors without a reading answer with an error or nonsense; below absolute zero is such nonsense.
    constexpr long long kAbsoluteZeroMillidegrees = -273150;
    if (!value || *value < kAbsoluteZeroMillidegrees)
        return std::nullopt;
    return static_cast<double>(*value) / 1000.0;
}

// Directory entries named <prefix><number>, in numeric order (hwmon2 before hwmon10).
std::vector<std::pair<unsigned, std::filesystem::path>>
numberedEntries(const std::filesystem::path& directory, std::string_view prefix,
                std::string_view suffix = {}) {
    std::vector<std::pair<unsigned, std::filesystem::path>> entries;
    std::error_code error;
    std::filesystem::directory_iterator iterator(directory, error);
    if (error)
        return entries;
    for (const std::filesystem::directory_entry& entry : iterator) {
        std::string name = entry.path().filename().string();
        if (!name.starts_with(prefix) || !name.ends_with(suffix) ||
            name.size() <= prefix.size() + suffix.size())
            continue;
        std::string_view digits =
            std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - suffix.size());
        std::optional<unsigned> number = isAllDigits(digits) ? parseNumber<unsigned>(digits) : std::nullopt;
        if (number)
            entries.emplace_back(*number, entry.path());
    }
    std::sort(entries.begin(), entries.end());
    return entries;
}

std::optional<std::uint64_t> readSingleNumber(const std::filesystem::path& path) {
    std::optional<std::string> content = tryReadFile(path);
    if (!content)
        return std::nullopt;
    std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(trim(*content));
    if (!value)
        throwMalformed(path, "expected one number");
    return value;
}

// "key value" lines, as cpu.stat and memory.stat have them.
std::optional<std::uint64_t> readKeyedNumber(const std::filesystem::path& path, std::string_view key) {
    std::optional<std::string> content = tryReadFile(path);
    if (!content)
        return std::nullopt;
    for (std::string_view line : splitLines(*content)) {
        std::vector<std::string_view> fields = splitFields(line);
        if (fields.size() >= 2 && fields[0] == key) {
            std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[1]);
            if (!value)
                throwMalformed(path, "bad number for " + std::string(key));
            return value;
        }
    }
    return std::nullopt;
}

// memory.max and the quota of cpu.max hold a number or "max" for no limit.
std::optional<std::uint64_t> parseLimit(std::string_view text, const std::filesystem::path& path) {
    if (text == "max")
        return std::nullopt;
    std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(text);
    if (!value)
        throwMalformed(path, "expected a number or max, got " + std::string(text));
    return value;
}

} // namespace

std::string_view toString(PressureResource resource) {
    switch (resource) {
    case PressureResource::cpu:
        return "cpu";
    case PressureResource::memory:
        return "memory";
    case PressureResource::io:
        return "io";
    }
    return "unknown";
}

bool ProcFsReader::isWholeDiskDevice(const std::string& device) const {
    // /sys/block spells the '/' of names like cciss/c0d0 as '!'.
    std::string sysName = device;
    std::replace(sysName.begin(), sysName.end(), '/', '!');
    if (!isSafePathComponent(sysName))
        return false;
    std::error_code error;
    return std::filesystem::exists(sys_ / "block" / sysName, error);
}

std::optional<PressureInfo> ProcFsReader::readPressure(PressureResource resource) const {
    const std::filesystem::path path = proc_ / "pressure" / std::string(toString(resource));
    int errorNumber = 0;
    std::optional<std::string> content = tryReadFile(path, &errorNumber);
    if (!content) {
        // Kernels without PSI lack the file; kernels booted with psi=0 have it but refuse to read it.
        if (errorNumber == ENOENT || errorNumber == EOPNOTSUPP || errorNumber == ENOTDIR)
            return std::nullopt;
        throw ProcReadError("cannot read " + path.string() + ": " + std::strerror(errorNumber));
    }
    PressureInfo info;
    for (std::string_view line : splitLines(*content)) {
        std::vector<std::string_view> fields = splitFields(line);
        if (fields.empty())
            continue;
        if (fields[0] == "some")
            info.some = parsePressureLine(fields, path);
        else if (fields[0] == "full")
            info.full = parsePressureLine(fields, path);
        else
            throwMalformed(path, "unknown line " + std::string(line));
    }
    if (!info.some)
        throwMalformed(path, "no some line");
    return info;
}

std::vector<TemperatureReading> ProcFsReader::readTemperatures() const {
    std::vector<std::pair<TemperatureReading, std::string>> found; // reading, where it came from
    for (const auto& [number, zone] : numberedEntries(sys_ / "class" / "thermal", "thermal_zone")) {
        std::optional<double> celsius = readMillidegrees(zone / "temp");
        if (!celsius)
            continue;
        std::optional<std::string> type = tryReadFile(zone / "type");
        std::string sensor = type ? std::string(trim(*type)) : std::string();
        if (sensor.empty())
            sensor = zone.filename().string();
        found.push_back({TemperatureReading{std::move(sensor), *celsius}, zone.filename().string()});
    }
    for (const auto& [number, hwmon] : numberedEntries(sys_ / "class" / "hwmon", "hwmon")) {
        std::optional<std::string> nameFile = tryReadFile(hwmon / "name");
        std::string chip = nameFile ? std::string(trim(*nameFile)) : std::string();
        if (chip.empty())
            chip = hwmon.filename().string();
        for (const auto& [channel, input] : numberedEntries(hwmon, "temp", "_input")) {
            std::optional<double> celsius = readMillidegrees(input);
            if (!celsius)
                continue;
            const std::string channelName = "temp" + std::to_string(channel);
            std::optional<std::string> label = tryReadFile(hwmon / (channelName + "_label"));
            std::string labelText = label ? std::string(trim(*label)) : std::string();
            std::string sensor = chip + " " + (labelText.empty() ? channelName : labelText);
            found.push_back({TemperatureReading{std::move(sensor), *celsius}, hwmon.filename().string()});
        }
    }
    // Sensor names become metric scopes, so two zones of the same type must not share one.
    std::map<std::string, unsigned> uses;
    for (const auto& [reading, origin] : found)
        ++uses[reading.sensor];
    std::vector<TemperatureReading> readings;
    readings.reserve(found.size());
    for (auto& [reading, origin] : found) {
        if (uses[reading.sensor] > 1)
            reading.sensor += " (" + origin + ")";
        readings.push_back(std::move(reading));
    }
    return readings;
}

std::optional<ProcessIo> ProcFsReader::readProcessIo(pid_t pid) const {
    if (pid <= 0)
        return std::nullopt;
    std::optional<std::string> content = readProcessFile(pid, "io");
    if (!content)
        return std::nullopt;
    auto counter = [&](std::string_view key) -> std::optional<std::uint64_t> {
        const std::string_view text = *content;
        for (std::size_t at = text.find(key); at != std::string_view::npos; at = text.find(key, at + 1)) {
            if (at != 0 && text[at - 1] != '\n')
                continue; // "cancelled_write_bytes:" ends in "write_bytes:"
            const std::size_t start = at + key.size();
            const std::size_t end = std::min(text.find('\n', start), text.size());
            return parseNumber<std::uint64_t>(trim(text.substr(start, end - start)));
        }
        return std::nullopt;
    };
    const std::optional<std::uint64_t> readBytes = counter("read_bytes:");
    const std::optional<std::uint64_t> writeBytes = counter("write_bytes:");
    // Without task I/O accounting in the kernel the lines are missing; that is "unknown", not zero.
    if (!readBytes || !writeBytes)
        return std::nullopt;
    return ProcessIo{*readBytes, *writeBytes};
}

std::optional<std::uint64_t> ProcFsReader::readProcessPss(pid_t pid) const {
    if (pid <= 0)
        return std::nullopt;
    std::optional<std::string> content = tryReadFile(pidPath(pid, "smaps_rollup"));
    if (!content)
        return std::nullopt;
    for (std::string_view line : splitLines(*content)) {
        if (!line.starts_with("Pss:"))
            continue;
        std::vector<std::string_view> fields = splitFields(line.substr(4));
        if (fields.empty())
            return std::nullopt;
        std::optional<std::uint64_t> kilobytes = parseNumber<std::uint64_t>(fields[0]);
        if (!kilobytes)
            return std::nullopt;
        return *kilobytes * kBytesPerKilobyte;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> ProcFsReader::countOpenFds(pid_t pid) const {
    if (pid <= 0)
        return std::nullopt;
    // Since Linux 6.2 the size of the directory is the number of open descriptors, without listing them.
    // Older kernels report 0, as does a process without descriptors; listing tells the two apart.
    if (process_files_) {
        std::optional<std::uint64_t> size =
            process_files_->directorySize(pid, [&] { return pidPath(pid, "fd"); });
        if (!size)
            return std::nullopt;
        if (*size > 0)
            return size;
    }
    const std::filesystem::path fdPath = pidPath(pid, "fd");
    DIR* directory = ::opendir(fdPath.c_str());
    if (directory == nullptr)
        return std::nullopt;
    std::uint64_t count = 0;
    while (const dirent* entry = ::readdir(directory)) {
        if (entry->d_name[0] != '.')
            ++count;
    }
    ::closedir(directory);
    return count;
}

CgroupUsage ProcFsReader::readCgroupUsage(const std::filesystem::path& directory) const {
    CgroupUsage usage;
    usage.cpu_usage_usec = readKeyedNumber(directory / "cpu.stat", "usage_usec");
    usage.memory_current_bytes = readSingleNumber(directory / "memory.current");
    usage.pids_current = readSingleNumber(directory / "pids.current");
    const std::filesystem::path ioPath = directory / "io.stat";
    if (std::optional<std::string> io = tryReadFile(ioPath)) {
        std::uint64_t readBytes = 0, writeBytes = 0;
        for (std::string_view line : splitLines(*io)) {
            std::vector<std::string_view> fields = splitFields(line);
            for (std::size_t index = 1; index < fields.size(); ++index) {
                std::uint64_t* target = fields[index].starts_with("rbytes=")   ? &readBytes
                                        : fields[index].starts_with("wbytes=") ? &writeBytes
                                                                               : nullptr;
                if (target == nullptr)
                    continue;
                std::optional<std::uint64_t> value = parseNumber<std::uint64_t>(fields[index].substr(7));
                if (!value)
                    throwMalformed(ioPath, "bad number in " + std::string(fields[index]));
                *target += *value;
            }
        }
        usage.io_read_bytes = readBytes;
        usage.io_write_bytes = writeBytes;
    }
    const std::filesystem::path procsPath = directory / "cgroup.procs";
    if (std::optional<std::string> procs = tryReadFile(procsPath)) {
        std::vector<pid_t> pids;
        for (std::string_view line : splitLines(*procs)) {
            std::string_view text = trim(line);
            if (text.empty())
                continue;
            std::optional<pid_t> pid = parseNumber<pid_t>(text);
            if (!pid || *pid <= 0)
                throwMalformed(procsPath, "bad pid " + std::string(text));
            pids.push_back(*pid);
        }
        usage.processes = std::move(pids);
    }
    return usage;
}

std::optional<std::filesystem::path> ProcFsReader::cgroupDirectoryOf(const std::string& process) const {
    std::optional<std::string> membership = tryReadFile(proc_ / process / "cgroup");
    if (!membership)
        return std::nullopt;
    std::optional<std::filesystem::path> relative;
    for (std::string_view line : splitLines(*membership)) {
        if (line.starts_with("0::"))
            relative = std::filesystem::path(std::string(line.substr(3))).relative_path().lexically_normal();
    }
    if (!relative)
        return std::nullopt;
    const std::filesystem::path cgroupRoot = sys_ / "fs" / "cgroup";
    if (relative->empty() || *relative == "." || *relative->begin() == "..")
        return cgroupRoot;
    return cgroupRoot / *relative;
}

std::optional<OwnCgroupLimits> ProcFsReader::readOwnCgroupLimits() const {
    const std::filesystem::path cgroupRoot = sys_ / "fs" / "cgroup";
    std::error_code error;
    if (!std::filesystem::exists(cgroupRoot / "cgroup.controllers", error))
        return std::nullopt;
    const std::optional<std::filesystem::path> own = cgroupDirectoryOf("self");
    if (!own)
        return std::nullopt;

    OwnCgroupLimits limits;
    std::optional<std::filesystem::path> memoryDirectory;
    std::filesystem::path current = *own;
    // A limit anywhere above applies too, so walk up to the root and keep the tightest.
    while (true) {
        const std::filesystem::path memoryMaxPath = current / "memory.max";
        if (std::optional<std::string> memoryMax = tryReadFile(memoryMaxPath)) {
            std::optional<std::uint64_t> bytes = parseLimit(trim(*memoryMax), memoryMaxPath);
            if (bytes && (!limits.memory_max_bytes || *bytes < *limits.memory_max_bytes)) {
                limits.memory_max_bytes = bytes;
                memoryDirectory = current;
            }
        }
        const std::filesystem::path cpuMaxPath = current / "cpu.max";
        if (std::optional<std::string> cpuMax = tryReadFile(cpuMaxPath)) {
            std::vector<std::string_view> fields = splitFields(*cpuMax);
            if (fields.size() != 2)
                throwMalformed(cpuMaxPath, "expected quota and period");
            std::optional<std::uint64_t> quota = parseLimit(fields[0], cpuMaxPath);
            std::optional<std::uint64_t> period = parseNumber<std::uint64_t>(fields[1]);
            if (!period || *period == 0)
                throwMalformed(cpuMaxPath, "bad period " + std::string(fields[1]));
            if (quota) {
                const double cores = static_cast<double>(*quota) / static_cast<double>(*period);
                if (!limits.cpu_limit_cores || cores < *limits.cpu_limit_cores) {
                    limits.cpu_limit_cores = cores;
                    limits.cpu_limit_directory = current;
                }
            }
        }
        if (current == cgroupRoot || !current.has_parent_path())
            break;
        current = current.parent_path();
    }
    if (memoryDirectory) {
        limits.memory_current_bytes = readSingleNumber(*memoryDirectory / "memory.current").value_or(0);
        limits.memory_inactive_file_bytes =
            readKeyedNumber(*memoryDirectory / "memory.stat", "inactive_file").value_or(0);
    }
    return limits;
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

void forEachInParallel(std::size_t count, unsigned workers, const std::function<void(std::size_t)>& work) {
    // Threads cost more than they save on small amounts of work.
    constexpr std::size_t kLeastItemsPerWorker = 128;
    // Work is handed out in small chunks as threads ask for it, so that a thread the scheduler leaves waiting
    // (on a busy machine) holds up no more than its chunk: the others take over the rest.
    constexpr std::size_t kChunk = 16;
    const std::size_t useful = std::max<std::size_t>(1, count / kLeastItemsPerWorker);
    const std::size_t threads = std::min<std::size_t>(std::max(1U, workers), useful);
    std::atomic<std::size_t> next{0};
    std::mutex failureMutex;
    std::exception_ptr failure;
    auto takeChunks = [&] {
        try {
            for (std::size_t first = next.fetch_add(kChunk); first < count; first = next.fetch_add(kChunk)) {
                for (std::size_t index = first; index < std::min(count, first + kChunk); ++index)
                    work(index);
            }
        } catch (...) {
            std::lock_guard lock(failureMutex);
            if (!failure)
                failure = std::current_exception();
            next = count; // the others stop too
        }
    };
    std::vector<std::thread> helpers;
    helpers.reserve(threads - 1);
    try {
        while (helpers.size() + 1 < threads)
            helpers.emplace_back(takeChunks);
    } catch (const std::system_error&) {
        // No thread to be had: those there are, the caller's included, do it all, which is merely slower.
    }
    takeChunks();
    for (std::thread& helper : helpers)
        helper.join();
    if (failure)
        std::rethrow_exception(failure);
}

unsigned defaultSamplingWorkers() {
    constexpr unsigned kMostWorkers = 4;
    return std::clamp(std::thread::hardware_concurrency(), 1U, kMostWorkers);
}

std::vector<pid_t> processTree(const SystemReader& reader, pid_t root) {
    return ProcessTable::scan(reader).treeOf(root);
}

ProcessTable ProcessTable::scan(const SystemReader& reader, unsigned workers) {
    return of(reader, reader.listPids(), workers);
}

ProcessTable ProcessTable::scanOf(const SystemReader& reader, const std::vector<pid_t>& pids,
                                  unsigned workers) {
    return of(reader, pids, workers);
}

ProcessTable ProcessTable::of(const SystemReader& reader, const std::vector<pid_t>& pids, unsigned workers) {
    ProcessTable table;
    std::vector<std::optional<ProcessStat>> stats(pids.size());
    forEachInParallel(pids.size(), workers,
                      [&](std::size_t index) { stats[index] = reader.readProcessStat(pids[index]); });
    table.processes_.reserve(pids.size());
    for (std::optional<ProcessStat>& stat : stats) {
        if (!stat)
            continue;
        table.children_[stat->ppid].push_back(stat->pid);
        const pid_t pid = stat->pid;
        table.processes_.emplace(pid, std::move(*stat));
    }
    // Readers need not list pids in order; the trees come out the same either way.
    for (auto& [parent, children] : table.children_)
        std::sort(children.begin(), children.end());
    return table;
}

const ProcessStat* ProcessTable::find(pid_t pid) const {
    auto found = processes_.find(pid);
    return found == processes_.end() ? nullptr : &found->second;
}

std::vector<pid_t> ProcessTable::treeOf(pid_t root) const {
    if (!processes_.contains(root))
        return {};
    std::vector<pid_t> tree{root};
    std::set<pid_t> visited{root};
    // The tree itself is the breadth-first queue: everything before `next` has been expanded.
    for (std::size_t next = 0; next < tree.size(); ++next) {
        auto children = children_.find(tree[next]);
        if (children == children_.end())
            continue;
        for (pid_t child : children->second) {
            // A snapshot taken while pids are reused can in theory contain a loop; never walk it twice.
            if (visited.insert(child).second)
                tree.push_back(child);
        }
    }
    return tree;
}

} // namespace tau
