#pragma once
// The D-Bus face of the supervisor: validates, authorizes, translates errors and forwards.

#include "recovery_reporter.h"
#include "supervisor.h"
#include "tau/bus/authorizer.h"
#include "tau/bus/wire.h"
#include "tau/config.h"
#include "tau/dbus/org.tauos.Processes1-adaptor.h"
#include "tau/dbus/org.tauos.Processes1.Service-adaptor.h"
#include "tau/procfs.h"
#include "tau/resources.h"

#include <chrono>
#include <map>
#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <string>

namespace tau {

class ServiceObject final
    : public sdbus::AdaptorInterfaces<org::tauos::Processes1::Service_adaptor, sdbus::ManagedObject_adaptor> {
  public:
    ServiceObject(sdbus::IConnection& connection, const Supervisor& supervisor, std::string name);
    ~ServiceObject();

    void announce() { emitInterfacesAddedSignal({org::tauos::Processes1::Service_adaptor::INTERFACE_NAME}); }
    void changed();

  private:
    const ServiceStatus& status() const;

    std::string Name() override { return name_; }
    std::string Kind() override;
    bool Critical() override;
    std::vector<std::string> ExecStart() override;
    std::string State() override;
    int32_t MainPID() override;
    uint32_t Restarts() override;
    uint64_t StartedAt() override;
    int32_t LastExitCode() override;
    int32_t LastExitSignal() override;
    std::string WaitingFor() override;
    int32_t StandbyPID() override;

    const Supervisor& supervisor_;
    std::string name_;
};

// CPU usage per process between two looks, for ListServices.
class ProcessUsageTracker {
  public:
    explicit ProcessUsageTracker(const SystemReader& reader) : reader_(reader) {}
    struct Usage {
        double cpu_percent = 0;
        std::uint64_t rss_bytes = 0;
    };
    Usage usage(pid_t pid);

  private:
    struct Sample {
        ProcessStat stat;
        std::chrono::steady_clock::time_point at;
        double cpu_percent = 0;
    };
    const SystemReader& reader_;
    std::map<pid_t, Sample> samples_;
};

class ProcessesAdaptor final
    : public sdbus::AdaptorInterfaces<org::tauos::Processes1_adaptor, sdbus::ObjectManager_adaptor>,
      public SupervisorListener {
  public:
    ProcessesAdaptor(sdbus::IConnection& connection, const Config& config, bus::Authorizer& authorizer,
                     const SystemReader& reader, RecoveryReporter& recovery);
    ~ProcessesAdaptor();

    // Must be called once the supervisor holds every service (objects are created per service).
    void attach(Supervisor& supervisor);

    void serviceStarted(const ServiceStatus& service) override;
    void serviceRunning(const ServiceStatus& service) override;
    void serviceKilled(const ServiceStatus& service, KillReason reason) override;
    void serviceExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                       const RecoveryDecision& decision, std::chrono::steady_clock::duration uptime) override;
    void serviceChanged(const ServiceStatus& service) override;
    void spawnFailed(const ServiceStatus& service, const std::string& reason) override;
    void restartDeferred(const ServiceStatus& service, std::chrono::milliseconds wait) override;
    void safeModeLeft(const ServiceStatus& service) override;
    void serviceWaiting(const ServiceStatus& service, const ServiceStatus& dependency) override;
    void systemSafeModeChanged(bool active, const ServiceStatus& service) override;
    void standbyStarted(const ServiceStatus& service) override;
    void standbyExited(const ServiceStatus& service, pid_t pid, const ExitStatus& status,
                       const RecoveryDecision& decision) override;

  private:
    std::vector<wire::ServiceEntry> ListServices() override;
    void Start(const std::string& name) override;
    void Stop(const std::string& name) override;
    void Restart(const std::string& name) override;
    void ReportFailure(const std::string& name, const std::string& failure_class,
                       const std::string& detail) override;
    std::vector<wire::ProcessEntry> GetProcessTree(const std::string& name) override;
    std::string ServiceOfProcess(const int32_t& pid) override;
    std::string GetConfig() override;
    std::string Version() override;
    std::string ConfigPath() override;
    uint64_t StartedAt() override;
    uint32_t RunningCount() override;
    bool SystemSafeMode() override;

    Supervisor& supervisor();

    const Config& config_;
    bus::Authorizer& authorizer_;
    const SystemReader& reader_;
    RecoveryReporter& recovery_;
    ProcessUsageTracker usage_;
    Supervisor* supervisor_ = nullptr;
    std::map<std::string, std::unique_ptr<ServiceObject>> objects_;
    std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
    unsigned last_running_count_ = 0;
};

} // namespace tau
