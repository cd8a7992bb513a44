#include "tau/cgroup.h"

#include "tau/procfs.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace tau {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSupervisorLeaf = "supervisor";
constexpr std::string_view kServicesDirectory = "services";
constexpr std::string_view kControllersToEnable = "+memory +cpu";
constexpr std::array<std::string_view, 2> kRequiredControllers = {"memory", "cpu"};

std::string errnoText(int error) {
    return std::strerror(error);
}

std::optional<std::string> tryReadText(const fs::path& path, int& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = errno;
        return std::nullopt;
    }
    std::string content;
    std::array<char, 4096> buffer{};
    while (true) {
        const ssize_t count = ::read(fd, buffer.data(), buffer.size());
        if (count < 0) {
            if (errno == EINTR)
                continue;
            error = errno;
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

std::string readText(const fs::path& path) {
    int error = 0;
    std::optional<std::string> content = tryReadText(path, error);
    if (!content)
        throw CgroupError("cannot read " + path.string() + ": " + errnoText(error));
    return std::move(*content);
}

// 0 on success, else the errno. Control files take one value per write(2), so the text goes in one call.
int tryWriteText(const fs::path& path, std::string_view text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return errno;
    ssize_t written;
    do {
        written = ::write(fd, text.data(), text.size());
    } while (written < 0 && errno == EINTR);
    const int error = written < 0 ? errno : (static_cast<std::size_t>(written) != text.size() ? EIO : 0);
    ::close(fd);
    return error;
}

void writeText(const fs::path& path, std::string_view text) {
    if (const int error = tryWriteText(path, text); error != 0)
        throw CgroupError("cannot write \"" + std::string(text) + "\" to " + path.string() + ": " +
                          errnoText(error));
}

void makeDirectory(const fs::path& path) {
    if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST)
        throw CgroupError("cannot create " + path.string() + ": " + errnoText(errno));
}

std::vector<std::string_view> splitOn(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    while (!text.empty()) {
        const std::size_t end = text.find(separator);
        if (end == std::string_view::npos) {
            parts.push_back(text);
            break;
        }
        if (end > 0)
            parts.push_back(text.substr(0, end));
        text.remove_prefix(end + 1);
    }
    return parts;
}

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> result;
    for (std::string_view line : splitOn(text, '\n')) {
        for (std::string_view word : splitOn(line, ' ')) {
            result.push_back(word);
        }
    }
    return result;
}

bool contains(const std::vector<std::string_view>& items, std::string_view wanted) {
    return std::find(items.begin(), items.end(), wanted) != items.end();
}

template <typename Number> std::optional<Number> parseNumber(std::string_view text) {
    Number value{};
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

std::vector<pid_t> parsePids(std::string_view content, const fs::path& path) {
    std::vector<pid_t> pids;
    for (std::string_view line : splitOn(content, '\n')) {
        const std::optional<pid_t> pid = parseNumber<pid_t>(line);
        if (!pid)
            throw CgroupError("malformed " + path.string() + ": \"" + std::string(line) + "\"");
        pids.push_back(*pid);
    }
    return pids;
}

struct Mount {
    std::string root; // the directory of the hierarchy that is mounted, "/" for all of it
    std::string mount_point;
    std::string fstype;
    std::vector<std::string> super_options;
};

// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue": the optional fields
// before " - " vary in number, so the filesystem part is found by that separator.
std::vector<Mount> parseMountInfo(std::string_view content) {
    std::vector<Mount> mounts;
    for (std::string_view line : splitOn(content, '\n')) {
        const std::size_t separator = line.find(" - ");
        if (separator == std::string_view::npos)
            continue;
        const std::vector<std::string_view> mountFields = splitOn(line.substr(0, separator), ' ');
        const std::vector<std::string_view> filesystemFields = splitOn(line.substr(separator + 3), ' ');
        if (mountFields.size() < 5 || filesystemFields.empty())
            continue;
        Mount mount;
        mount.root = unescapeMountField(mountFields[3]);
        mount.mount_point = unescapeMountField(mountFields[4]);
        mount.fstype = std::string(filesystemFields[0]);
        if (filesystemFields.size() >= 3) {
            for (std::string_view option : splitOn(filesystemFields[2], ','))
                mount.super_options.emplace_back(option);
        }
        mounts.push_back(std::move(mount));
    }
    return mounts;
}

// The path of `cgroup` below the mounted `root`, without a leading '/'; nullopt when outside it. A process
// in a cgroup above its cgroup namespace sees a path that climbs out with "..".
std::optional<std::string> relativeToMountRoot(const std::string& cgroup, const std::string& root) {
    if (cgroup.ends_with("/..") || cgroup.find("/../") != std::string::npos)
        return std::nullopt;
    if (root == "/")
        return cgroup.substr(1);
    if (cgroup == root)
        return std::string();
    if (cgroup.starts_with(root) && cgroup[root.size()] == '/')
        return cgroup.substr(root.size() + 1);
    return std::nullopt;
}

std::string joinWithAnd(const std::vector<std::string_view>& items) {
    std::string text;
    for (std::size_t index = 0; index < items.size(); ++index) {
        if (index > 0)
            text += index + 1 == items.size() ? " and " : ", ";
        text += items[index];
    }
    return text;
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.remove_suffix(1);
    return text;
}

CgroupDetection unusable(std::string reason) {
    return CgroupDetection{{}, std::move(reason)};
}

void validateServiceName(const std::string& service) {
    if (service.empty() || service == "." || service == ".." || service.find('/') != std::string::npos ||
        service.find('\0') != std::string::npos) {
        throw std::invalid_argument("'" + service + "' cannot name a service cgroup");
    }
}

} // namespace

CgroupDetection detectDelegatedCgroup(const CgroupRoots& roots) {
    const fs::path cgroupFile = roots.proc / "self" / "cgroup";
    int error = 0;
    const std::optional<std::string> memberships = tryReadText(cgroupFile, error);
    if (!memberships)
        return unusable("cannot read " + cgroupFile.string() + ": " + errnoText(error));
    std::optional<std::string> ownCgroup;
    for (std::string_view line : splitOn(*memberships, '\n')) {
        if (line.starts_with("0::/"))
            ownCgroup = std::string(line.substr(3));
    }
    if (!ownCgroup)
        return unusable("no cgroup v2 membership in " + cgroupFile.string() + " (cgroup v1 only)");

    const fs::path mountInfoFile = roots.proc / "self" / "mountinfo";
    const std::optional<std::string> mountInfo = tryReadText(mountInfoFile, error);
    if (!mountInfo)
        return unusable("cannot read " + mountInfoFile.string() + ": " + errnoText(error));
    const std::vector<Mount> mounts = parseMountInfo(*mountInfo);

    const Mount* unified = nullptr;
    const Mount* elsewhere = nullptr;
    std::string relative;
    for (const Mount& mount : mounts) {
        if (mount.fstype != "cgroup2")
            continue;
        if (std::optional<std::string> below = relativeToMountRoot(*ownCgroup, mount.root)) {
            unified = &mount;
            relative = std::move(*below);
            break;
        }
        elsewhere = &mount;
    }
    if (unified == nullptr && elsewhere == nullptr)
        return unusable("no cgroup2 mount");
    if (unified == nullptr)
        return unusable("cgroup v2 is mounted at " + elsewhere->mount_point + " but the cgroup " +
                        *ownCgroup + " of this process lies outside it");

    const fs::path directory = roots.filesystem / fs::path(unified->mount_point).relative_path() / relative;
    struct stat status {};
    if (::stat(directory.c_str(), &status) < 0 || !S_ISDIR(status.st_mode))
        return unusable("the cgroup " + *ownCgroup + " of this process is not at " + directory.string());

    const fs::path controllersFile = directory / "cgroup.controllers";
    const std::optional<std::string> controllersText = tryReadText(controllersFile, error);
    if (!controllersText)
        return unusable("cannot read " + controllersFile.string() + ": " + errnoText(error));
    const std::vector<std::string_view> offered = words(*controllersText);
    std::vector<std::string_view> missing;
    for (std::string_view controller : kRequiredControllers) {
        if (!contains(offered, controller))
            missing.push_back(controller);
    }
    if (!missing.empty()) {
        std::vector<std::string_view> boundToV1;
        for (std::string_view controller : missing) {
            const bool inV1 = std::any_of(mounts.begin(), mounts.end(), [&](const Mount& mount) {
                return mount.fstype == "cgroup" &&
                       std::find(mount.super_options.begin(), mount.super_options.end(), controller) !=
                           mount.super_options.end();
            });
            if (inV1)
                boundToV1.push_back(controller);
        }
        const char* noun = missing.size() == 1 ? " controller" : " controllers";
        if (!boundToV1.empty()) {
            return unusable("cgroup v2 is mounted at " + unified->mount_point + " but its " +
                            joinWithAnd(boundToV1) +
                            (boundToV1.size() == 1 ? " controller is" : " controllers are") +
                            " bound to cgroup v1 (hybrid hierarchy)");
        }
        return unusable("the cgroup " + directory.string() + " does not offer the " + joinWithAnd(missing) +
                        noun + " (its cgroup.controllers: \"" + std::string(trimmed(*controllersText)) +
                        "\"); the parent cgroup has not delegated them");
    }

    for (const fs::path& path :
         {directory, directory / "cgroup.procs", directory / "cgroup.subtree_control"}) {
        if (::access(path.c_str(), W_OK) < 0)
            return unusable(path.string() + " is not writable: " + errnoText(errno));
    }
    return CgroupDetection{directory, {}};
}

CgroupProcsFd::~CgroupProcsFd() {
    if (fd_ >= 0)
        ::close(fd_);
}

CgroupProcsFd& CgroupProcsFd::operator=(CgroupProcsFd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = other.release();
    }
    return *this;
}

ServiceCgroups::ServiceCgroups(fs::path delegated) : root_(std::move(delegated)) {}

fs::path ServiceCgroups::serviceDirectory(const std::string& service) const {
    validateServiceName(service);
    return root_ / kServicesDirectory / service;
}

void ServiceCgroups::prepare() {
    const fs::path leaf = root_ / kSupervisorLeaf;
    makeDirectory(leaf);
    // "0" stands for the writing process.
    writeText(leaf / "cgroup.procs", "0");

    const fs::path subtreeControl = root_ / "cgroup.subtree_control";
    if (const int error = tryWriteText(subtreeControl, kControllersToEnable); error != 0) {
        std::string others;
        int readError = 0;
        std::optional<std::string> remaining;
        if (error == EBUSY)
            remaining = tryReadText(root_ / "cgroup.procs", readError);
        if (remaining) {
            for (std::string_view pid : splitOn(*remaining, '\n'))
                others += (others.empty() ? "" : ", ") + std::string(pid);
        }
        // Back where the process was, so that a failed attempt leaves the cgroup as it found it.
        tryWriteText(root_ / "cgroup.procs", "0");
        ::rmdir(leaf.c_str());
        throw CgroupError("cannot write \"" + std::string(kControllersToEnable) + "\" to " +
                          subtreeControl.string() + ": " + errnoText(error) +
                          (others.empty() ? std::string()
                                          : " (the cgroup also holds processes " + others +
                                                ", which are not tau-monitor's to move)"));
    }

    const fs::path services = root_ / kServicesDirectory;
    makeDirectory(services);
    writeText(services / "cgroup.subtree_control", kControllersToEnable);
}

CgroupProcsFd ServiceCgroups::group(const std::string& service) {
    const fs::path directory = serviceDirectory(service);
    makeDirectory(directory);
    const fs::path procs = directory / "cgroup.procs";
    const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        throw CgroupError("cannot open " + procs.string() + ": " + errnoText(errno));
    return CgroupProcsFd(fd);
}

void ServiceCgroups::setLimits(const std::string& service, std::optional<std::uint64_t> memory_bytes,
                               std::optional<double> cpu_percent) {
    const fs::path directory = serviceDirectory(service);
    if (memory_bytes && *memory_bytes == 0)
        throw std::invalid_argument("a memory limit of 0 bytes for service '" + service + "'");
    if (cpu_percent && !(std::isfinite(*cpu_percent) && *cpu_percent > 0))
        throw std::invalid_argument("a CPU limit of " + std::to_string(*cpu_percent) + " % for service '" +
                                    service + "'");

    writeText(directory / "memory.max", memory_bytes ? std::to_string(*memory_bytes) : "max");
    const fs::path swapMax = directory / "memory.swap.max";
    if (::access(swapMax.c_str(), F_OK) == 0)
        writeText(swapMax, memory_bytes ? "0" : "max");
    // An OOM kill takes the whole service, as systemd's OOMPolicy=kill does: a service missing one process
    // is usually broken in ways nobody notices, and its main process's SIGKILL tells the supervisor why.
    const fs::path oomGroup = directory / "memory.oom.group";
    if (::access(oomGroup.c_str(), F_OK) == 0)
        writeText(oomGroup, "1");

    std::string cpuMax = "max";
    if (cpu_percent) {
        // percent / 100 of one period; the cap only keeps the conversion defined, the kernel has the last
        // word on how large a quota may be.
        const double quota = std::min(*cpu_percent * (kCpuPeriodMicroseconds / 100.0), 1e15);
        cpuMax = std::to_string(
            std::max(static_cast<std::uint64_t>(std::llround(quota)), kMinimumCpuQuotaMicroseconds));
    }
    writeText(directory / "cpu.max", cpuMax + " " + std::to_string(kCpuPeriodMicroseconds));
}

std::uint64_t ServiceCgroups::oomKills(const std::string& service) const {
    const fs::path events = serviceDirectory(service) / "memory.events";
    const std::string content = readText(events);
    for (std::string_view line : splitOn(content, '\n')) {
        const std::vector<std::string_view> fields = splitOn(line, ' ');
        if (fields.size() == 2 && fields[0] == "oom_kill") {
            if (std::optional<std::uint64_t> count = parseNumber<std::uint64_t>(fields[1]))
                return *count;
            throw CgroupError("malformed " + events.string() + ": \"" + std::string(line) + "\"");
        }
    }
    return 0;
}

std::vector<pid_t> ServiceCgroups::processes(const std::string& service) const {
    const fs::path procs = serviceDirectory(service) / "cgroup.procs";
    return parsePids(readText(procs), procs);
}

bool ServiceCgroups::remove(const std::string& service) {
    const fs::path directory = serviceDirectory(service);
    if (::rmdir(directory.c_str()) == 0 || errno == ENOENT)
        return true;
    if (errno == EBUSY)
        return false;
    throw CgroupError("cannot remove " + directory.string() + ": " + errnoText(errno));
}

} // namespace tau
