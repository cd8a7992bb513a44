#include "service_journal.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace tau {
namespace {

using json = nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::nanoseconds;

constexpr int kFormat = 1;

std::string readBootId() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id;
}

std::int64_t toJson(std::chrono::steady_clock::time_point at) {
    return duration_cast<nanoseconds>(at.time_since_epoch()).count();
}
std::int64_t toJson(std::chrono::system_clock::time_point at) {
    return duration_cast<microseconds>(at.time_since_epoch()).count();
}
std::chrono::steady_clock::time_point steadyFrom(const json& value) {
    return std::chrono::steady_clock::time_point(
        duration_cast<std::chrono::steady_clock::duration>(nanoseconds(value.get<std::int64_t>())));
}
std::chrono::system_clock::time_point wallFrom(const json& value) {
    return std::chrono::system_clock::time_point(
        duration_cast<std::chrono::system_clock::duration>(microseconds(value.get<std::int64_t>())));
}

json toJson(const RecoveryTracker::State& state) {
    json starts = json::array();
    for (const auto at : state.starts) {
        starts.push_back(toJson(at));
    }
    return {{"failures", state.failures},
            {"in_safe_mode", state.in_safe_mode},
            {"escalated", state.escalated},
            {"starts", std::move(starts)}};
}

RecoveryTracker::State trackerFrom(const json& value) {
    RecoveryTracker::State state;
    state.failures = value.at("failures").get<unsigned>();
    state.in_safe_mode = value.at("in_safe_mode").get<bool>();
    state.escalated = value.at("escalated").get<bool>();
    for (const auto& at : value.at("starts")) {
        state.starts.push_back(steadyFrom(at));
    }
    return state;
}

json toJson(const ServiceJournal::Process& process) {
    return {{"pid", process.pid},
            {"start_time", process.start_time_ticks},
            {"ready", process.ready},
            {"started_steady_ns", toJson(process.started_steady)},
            {"started_at_us", toJson(process.started_at)}};
}

std::optional<ServiceJournal::Process> processFrom(const json& value) {
    if (value.is_null()) {
        return std::nullopt;
    }
    ServiceJournal::Process process;
    process.pid = value.at("pid").get<pid_t>();
    process.start_time_ticks = value.at("start_time").get<std::uint64_t>();
    process.ready = value.at("ready").get<bool>();
    process.started_steady = steadyFrom(value.at("started_steady_ns"));
    process.started_at = wallFrom(value.at("started_at_us"));
    return process;
}

std::optional<ServiceState> stateFrom(std::string_view text) {
    for (const auto state :
         {ServiceState::Starting, ServiceState::Running, ServiceState::Stopping, ServiceState::Stopped,
          ServiceState::Backoff, ServiceState::Failed, ServiceState::Waiting}) {
        if (toString(state) == text) {
            return state;
        }
    }
    return std::nullopt;
}

} // namespace

ServiceJournal::ServiceJournal(std::filesystem::path directory, const SystemReader& reader)
    : directory_(std::move(directory)), reader_(reader), boot_id_(readBootId()) {
    std::error_code error;
    std::filesystem::create_directories(directory_, error);
    if (error) {
        spdlog::error("{}: cannot create the service journal: {}; a restarted tau-monitor will not find the "
                      "services that still run",
                      directory_.string(), error.message());
    }
}

std::optional<std::uint64_t> ServiceJournal::startTimeOf(pid_t pid) const {
    const auto stat = reader_.readProcessStat(pid);
    if (!stat || stat->state == 'Z' || stat->state == 'X') {
        return std::nullopt;
    }
    return stat->start_time_ticks;
}

std::uint64_t ServiceJournal::recordedStartTime(const std::string& key, pid_t pid) {
    auto& [cached_pid, start_time] = start_times_[key];
    if (cached_pid != pid) {
        cached_pid = pid;
        start_time = startTimeOf(pid).value_or(0);
    }
    return start_time;
}

void ServiceJournal::record(const ServiceStatus& service) {
    const std::string& name = service.spec.name;
    json entry{{"format", kFormat},
               {"boot_id", boot_id_},
               {"name", name},
               {"state", toString(service.state)},
               {"restarts", service.restarts},
               {"running_safe_mode", service.running_safe_mode},
               {"status_text", service.status_text},
               {"restart_due_ns", toJson(service.restart_due)},
               {"recovery", toJson(service.recovery.state())},
               {"main", nullptr},
               {"standby", nullptr},
               {"standby_recovery", nullptr}};
    if (service.pid != 0) {
        entry["main"] = toJson(Process{service.pid, recordedStartTime(name, service.pid),
                                       service.state == ServiceState::Running, service.started_steady,
                                       service.started_at});
    }
    if (service.standby.pid != 0) {
        entry["standby"] = toJson(Process{service.standby.pid,
                                          recordedStartTime(name + "\n", service.standby.pid),
                                          service.standby.ready,
                                          service.standby.started_steady,
                                          {}});
    }
    if (service.standby_recovery) {
        entry["standby_recovery"] = toJson(service.standby_recovery->state());
    }
    std::string text = entry.dump();
    std::string problem = write(name, text);
    // Said once, not on every change of every service, until writing works again.
    if (!problem.empty() && !failing_) {
        spdlog::error("cannot write the service journal ({}); a restarted tau-monitor will not find the "
                      "services that still run",
                      problem);
    }
    failing_ = !problem.empty();
}

std::string ServiceJournal::write(const std::string& name, std::string& text) {
    const auto file = directory_ / name;
    auto [it, added] = files_.try_emplace(name, File{});
    auto& open = it->second;
    if (open.fd < 0) {
        open.fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (open.fd < 0) {
            files_.erase(it);
            return file.string() + ": " + std::strerror(errno);
        }
        // A record left by an earlier root may be longer: the new ones cover it whole.
        struct stat info {};
        open.size = ::fstat(open.fd, &info) == 0 ? static_cast<std::size_t>(info.st_size) : 0;
    }
    // One write of the whole record over the one before, padded with blanks (which JSON ignores) to a size
    // that only grows: a killed root leaves either record whole, and no rename makes the file system flush.
    std::size_t size = std::max<std::size_t>(open.size, 4096);
    while (size < text.size() + 1) {
        size *= 2;
    }
    text.resize(size, ' ');
    text.back() = '\n';
    const ssize_t written = ::pwrite(open.fd, text.data(), text.size(), 0);
    if (written != static_cast<ssize_t>(text.size())) {
        return file.string() + ": " + (written < 0 ? std::strerror(errno) : "short write");
    }
    open.size = size;
    return {};
}

std::map<std::string, ServiceJournal::Entry> ServiceJournal::load() const {
    std::map<std::string, Entry> entries;
    std::error_code error;
    for (const auto& file : std::filesystem::directory_iterator(directory_, error)) {
        const std::string filename = file.path().filename().string();
        if (filename.starts_with(".")) {
            continue;
        }
        try {
            std::ifstream in(file.path());
            const json value = json::parse(in);
            if (value.at("format").get<int>() != kFormat ||
                value.at("boot_id").get<std::string>() != boot_id_) {
                continue; // another boot: none of its processes can still run
            }
            Entry entry;
            entry.name = value.at("name").get<std::string>();
            const auto state = stateFrom(value.at("state").get<std::string>());
            if (!state || entry.name != filename) {
                throw std::runtime_error("unknown state or name");
            }
            entry.state = *state;
            entry.main = processFrom(value.at("main"));
            entry.standby = processFrom(value.at("standby"));
            entry.restarts = value.at("restarts").get<unsigned>();
            entry.running_safe_mode = value.at("running_safe_mode").get<bool>();
            entry.status_text = value.at("status_text").get<std::string>();
            entry.restart_due = steadyFrom(value.at("restart_due_ns"));
            entry.recovery = trackerFrom(value.at("recovery"));
            if (!value.at("standby_recovery").is_null()) {
                entry.standby_recovery = trackerFrom(value.at("standby_recovery"));
            }
            entries.emplace(entry.name, std::move(entry));
        } catch (const std::exception& e) {
            spdlog::warn("{}: ignoring an unreadable service journal entry: {}", file.path().string(),
                         e.what());
        }
    }
    return entries;
}

AdoptedService ServiceJournal::adoptable(const Entry& entry, ProcessLauncher& launcher) const {
    const auto stillRunning = [&](const std::optional<Process>& recorded) -> std::optional<AdoptedProcess> {
        if (!recorded || recorded->pid <= 0 || startTimeOf(recorded->pid) != recorded->start_time_ticks) {
            return std::nullopt;
        }
        const int pidfd = launcher.open(recorded->pid);
        if (pidfd < 0) {
            return std::nullopt;
        }
        // The pidfd names whichever process had the pid when it was opened: that must still be ours.
        if (startTimeOf(recorded->pid) != recorded->start_time_ticks) {
            launcher.release(pidfd);
            return std::nullopt;
        }
        return AdoptedProcess{recorded->pid, pidfd, recorded->ready, recorded->started_steady,
                              recorded->started_at};
    };
    AdoptedService adopted;
    adopted.state = entry.state;
    adopted.pid = entry.main ? entry.main->pid : 0;
    adopted.main = stillRunning(entry.main);
    adopted.standby = stillRunning(entry.standby);
    adopted.restarts = entry.restarts;
    adopted.running_safe_mode = entry.running_safe_mode;
    adopted.status_text = entry.status_text;
    adopted.recovery = entry.recovery;
    adopted.standby_recovery = entry.standby_recovery;
    adopted.started_steady =
        entry.main ? entry.main->started_steady : std::chrono::steady_clock::time_point{};
    adopted.restart_due = entry.restart_due;
    return adopted;
}

ServiceJournal::~ServiceJournal() {
    for (const auto& [name, file] : files_) {
        ::close(file.fd);
    }
}

void ServiceJournal::remove(const std::string& name) {
    if (const auto it = files_.find(name); it != files_.end()) {
        ::close(it->second.fd);
        files_.erase(it);
    }
    std::error_code ignored;
    std::filesystem::remove(directory_ / name, ignored);
    start_times_.erase(name);
    start_times_.erase(name + "\n");
}

void ServiceJournal::clear() {
    for (const auto& [name, file] : files_) {
        ::close(file.fd);
    }
    files_.clear();
    std::error_code error;
    for (const auto& file : std::filesystem::directory_iterator(directory_, error)) {
        std::error_code ignored;
        std::filesystem::remove(file.path(), ignored);
    }
    start_times_.clear();
}

} // namespace tau
