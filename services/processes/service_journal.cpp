#include "service_journal.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
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

// Enough of the newest starts for any sane start limit, and a bound that keeps a record within its slot.
constexpr std::size_t kStartsKept = 64;
constexpr std::size_t kStatusTextKept = 512;

// Records are written on the path of every restart and of every start at boot: formatted straight into
// the slot's text rather than built as a JSON tree first.
void append(std::string& text, const RecoveryTracker::State& state) {
    fmt::format_to(std::back_inserter(text), R"({{"failures":{},"in_safe_mode":{},"escalated":{},"starts":[)",
                   state.failures, state.in_safe_mode, state.escalated);
    const std::size_t first = state.starts.size() > kStartsKept ? state.starts.size() - kStartsKept : 0;
    for (std::size_t i = first; i < state.starts.size(); ++i) {
        fmt::format_to(std::back_inserter(text), "{}{}", i == first ? "" : ",", toJson(state.starts[i]));
    }
    text += "]}";
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

void append(std::string& text, const std::optional<ServiceJournal::Process>& process) {
    if (!process) {
        text += "null";
        return;
    }
    fmt::format_to(std::back_inserter(text),
                   R"({{"pid":{},"start_time":{},"ready":{},"started_steady_ns":{},"started_at_us":{}}})",
                   process->pid, process->start_time_ticks, process->ready, toJson(process->started_steady),
                   toJson(process->started_at));
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
    fd_ = ::open(file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        spdlog::error("{}: cannot open the service journal: {}; a restarted tau-monitor will not find the "
                      "services that still run",
                      file().string(), std::strerror(errno));
    }
}

ServiceJournal::~ServiceJournal() {
    if (fd_ >= 0) {
        ::close(fd_);
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
    std::optional<Process> main;
    if (service.pid != 0) {
        main = Process{service.pid, recordedStartTime(name, service.pid),
                       service.state == ServiceState::Running, service.started_steady, service.started_at};
    }
    std::optional<Process> standby;
    if (service.standby.pid != 0) {
        standby = Process{service.standby.pid,
                          recordedStartTime(name + "\n", service.standby.pid),
                          service.standby.ready,
                          service.standby.started_steady,
                          {}};
    }
    std::string text;
    text.reserve(1024);
    // The name and the status text are the only free text; the JSON library escapes them.
    fmt::format_to(
        std::back_inserter(text),
        R"({{"format":{},"boot_id":{},"name":{},"state":"{}","restarts":{},"running_safe_mode":{},)"
        R"("status_text":{},"restart_due_ns":{},"recovery":)",
        kFormat, json(boot_id_).dump(), json(name).dump(), toString(service.state), service.restarts,
        service.running_safe_mode,
        json(service.status_text.substr(0, kStatusTextKept))
            .dump(-1, ' ', false, json::error_handler_t::replace),
        toJson(service.restart_due));
    append(text, service.recovery.state());
    text += R"(,"main":)";
    append(text, main);
    text += R"(,"standby":)";
    append(text, standby);
    text += R"(,"standby_recovery":)";
    if (service.standby_recovery) {
        append(text, service.standby_recovery->state());
    } else {
        text += "null";
    }
    text += "}";
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
    if (fd_ < 0) {
        return file().string() + ": not open";
    }
    if (text.size() >= kSlotSize) {
        return name + ": a record of " + std::to_string(text.size()) + " bytes does not fit its slot";
    }
    const auto [slot, added] = slots_.try_emplace(name, slots_.size());
    // One write of the whole slot over the one before, padded with blanks (which JSON ignores): a killed root
    // leaves either record whole, and the file is never renamed or grown on the path of a restart.
    text.resize(kSlotSize, ' ');
    text.back() = '\n';
    const auto offset = static_cast<off_t>(slot->second * kSlotSize);
    const ssize_t written = ::pwrite(fd_, text.data(), text.size(), offset);
    if (written != static_cast<ssize_t>(text.size())) {
        return file().string() + ": " + (written < 0 ? std::strerror(errno) : "short write");
    }
    return {};
}

std::map<std::string, ServiceJournal::Entry> ServiceJournal::load() const {
    std::map<std::string, Entry> entries;
    std::ifstream in(file());
    const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (std::size_t offset = 0; offset < content.size(); offset += kSlotSize) {
        const std::string_view slot = std::string_view(content).substr(offset, kSlotSize);
        if (slot.find_first_not_of(" \n") == std::string_view::npos) {
            continue; // a service removed
        }
        try {
            const json value = json::parse(slot);
            if (value.at("format").get<int>() != kFormat ||
                value.at("boot_id").get<std::string>() != boot_id_) {
                continue; // another boot: none of its processes can still run
            }
            Entry entry;
            entry.name = value.at("name").get<std::string>();
            const auto state = stateFrom(value.at("state").get<std::string>());
            if (!state || entry.name.empty()) {
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
            spdlog::warn("{}: ignoring an unreadable service journal entry at offset {}: {}", file().string(),
                         offset, e.what());
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
    static_cast<CarriedOver&>(adopted) = entry;
    adopted.state = entry.state;
    adopted.pid = entry.main ? entry.main->pid : 0;
    adopted.main = stillRunning(entry.main);
    adopted.standby = stillRunning(entry.standby);
    adopted.started_steady =
        entry.main ? entry.main->started_steady : std::chrono::steady_clock::time_point{};
    return adopted;
}

void ServiceJournal::remove(const std::string& name) {
    const auto slot = slots_.find(name);
    if (slot != slots_.end() && fd_ >= 0) {
        const std::string blank(kSlotSize, ' ');
        [[maybe_unused]] const auto ignored =
            ::pwrite(fd_, blank.data(), blank.size(), static_cast<off_t>(slot->second * kSlotSize));
    }
    start_times_.erase(name);
    start_times_.erase(name + "\n");
}

void ServiceJournal::clear() {
    if (fd_ >= 0 && ::ftruncate(fd_, 0) != 0) {
        spdlog::error("{}: cannot empty the service journal: {}", file().string(), std::strerror(errno));
    }
    slots_.clear();
    start_times_.clear();
}

} // namespace tau
