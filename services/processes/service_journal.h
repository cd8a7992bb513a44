#pragma once
// The root's table of the services it runs, one slot per service in <runtime dir>/services/journal, so that a
// root started after one that died (SIGKILL, a crash, an upgrade) adopts the processes that still run,
// with their pids, counters, backoff state and standby, instead of killing or duplicating them.
//
// A process is recognised by its pid together with its start time (field 22 of /proc/<pid>/stat), so that
// a pid the kernel has given to another process since is never taken for the service. A record is
// rewritten in place with one write into its slot of one file; it need not survive a power cut, which no
// process survives either, and an entry written during another boot is ignored.

#include "supervisor.h"
#include "tau/procfs.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace tau {

class ServiceJournal final : public SupervisorJournal {
  public:
    // One process as recorded.
    struct Process {
        pid_t pid = 0;
        std::uint64_t start_time_ticks = 0;
        bool ready = false;
        std::chrono::steady_clock::time_point started_steady{};
        std::chrono::system_clock::time_point started_at{};
    };
    struct Entry : CarriedOver {
        std::string name;
        ServiceState state = ServiceState::Stopped;
        std::optional<Process> main;
        std::optional<Process> standby;
    };

    ServiceJournal(std::filesystem::path directory, const SystemReader& reader);
    ~ServiceJournal() override;
    ServiceJournal(const ServiceJournal&) = delete;
    ServiceJournal& operator=(const ServiceJournal&) = delete;

    void record(const ServiceStatus& service) override;

    // Every entry written during this boot, by service name. An unreadable file is logged and skipped.
    std::map<std::string, Entry> load() const;

    // What adopting the entry means now: each recorded process that still runs, as the same process, gets
    // a pidfd from `launcher`; one that is gone is left out.
    AdoptedService adoptable(const Entry& entry, ProcessLauncher& launcher) const;

    // Forgets the service.
    void remove(const std::string& name);
    // Forgets every service: the journal of a root that stopped cleanly is empty, and a root empties the one
    // it adopted from before it writes its own.
    void clear();

    std::filesystem::path file() const { return directory_ / "journal"; }
    static constexpr std::size_t kSlotSize = 4096; // one record at most, blank-padded

  private:
    std::optional<std::uint64_t> startTimeOf(pid_t pid) const;
    std::uint64_t recordedStartTime(const std::string& key, pid_t pid);
    // Writes `text` as the service's record; an error message, or "" when it was written.
    std::string write(const std::string& name, std::string& text);

    std::filesystem::path directory_;
    const SystemReader& reader_;
    std::string boot_id_;
    // Per service, the pid recorded last and its start time, so that a change of counters costs no /proc
    // read.
    std::map<std::string, std::pair<pid_t, std::uint64_t>> start_times_;
    int fd_ = -1;
    std::map<std::string, std::size_t> slots_; // by name: slot numbers in the order first written
    bool failing_ = false;
};

} // namespace tau
