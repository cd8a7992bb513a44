#include "tau/suite_exposition.h"

#include "tau/prometheus.h"

#include <algorithm>
#include <string_view>

namespace tau {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

void addMachine(prometheus::Exposition& out, const ResourceSnapshot& machine) {
    auto gauge = [&](const char* name, const char* help, double value) {
        MetricFamily family(name, help, MetricType::gauge);
        family.add(value);
        out.add(std::move(family));
    };
    gauge("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.",
          static_cast<double>(machine.memory.total_bytes));
    gauge("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes.",
          static_cast<double>(machine.memory.available_bytes));
    gauge("node_memory_SwapTotal_bytes", "Memory information field SwapTotal_bytes.",
          static_cast<double>(machine.swap.total_bytes));
    gauge("node_memory_SwapFree_bytes", "Memory information field SwapFree_bytes.",
          static_cast<double>(machine.swap.total_bytes - machine.swap.used_bytes));
    gauge("node_load1", "1m load average.", machine.load.one);
    gauge("node_load5", "5m load average.", machine.load.five);
    gauge("node_load15", "15m load average.", machine.load.fifteen);

    MetricFamily size("node_filesystem_size_bytes", "Filesystem size in bytes.", MetricType::gauge);
    MetricFamily avail("node_filesystem_avail_bytes",
                       "Filesystem space available to non-root users in bytes.", MetricType::gauge);
    MetricFamily free("node_filesystem_free_bytes", "Filesystem free space in bytes.", MetricType::gauge);
    MetricFamily files("node_filesystem_files", "Filesystem total file nodes.", MetricType::gauge);
    MetricFamily files_free("node_filesystem_files_free", "Filesystem total free file nodes.",
                            MetricType::gauge);
    for (const auto& disk : machine.disks) {
        const std::initializer_list<prometheus::Label> labels{
            {"device", disk.device}, {"fstype", disk.fstype}, {"mountpoint", disk.mount_point}};
        size.add(labels, static_cast<double>(disk.total_bytes));
        avail.add(labels, static_cast<double>(disk.available_bytes));
        free.add(labels, static_cast<double>(disk.total_bytes - disk.used_bytes));
        files.add(labels, static_cast<double>(disk.inodes_total));
        files_free.add(labels, static_cast<double>(disk.inodes_total - disk.inodes_used));
    }
    for (auto* family : {&size, &avail, &free, &files, &files_free})
        out.add(std::move(*family));

    MetricFamily rx("node_network_receive_bytes_total", "Network device statistic receive_bytes.",
                    MetricType::counter);
    MetricFamily tx("node_network_transmit_bytes_total", "Network device statistic transmit_bytes.",
                    MetricType::counter);
    MetricFamily rx_errs("node_network_receive_errs_total", "Network device statistic receive_errs.",
                         MetricType::counter);
    MetricFamily tx_errs("node_network_transmit_errs_total", "Network device statistic transmit_errs.",
                         MetricType::counter);
    MetricFamily rx_drop("node_network_receive_drop_total", "Network device statistic receive_drop.",
                         MetricType::counter);
    MetricFamily tx_drop("node_network_transmit_drop_total", "Network device statistic transmit_drop.",
                         MetricType::counter);
    for (const auto& network : machine.networks) {
        const std::initializer_list<prometheus::Label> labels{{"device", network.interface}};
        rx.add(labels, static_cast<double>(network.rx_bytes));
        tx.add(labels, static_cast<double>(network.tx_bytes));
        rx_errs.add(labels, static_cast<double>(network.rx_errors));
        tx_errs.add(labels, static_cast<double>(network.tx_errors));
        rx_drop.add(labels, static_cast<double>(network.rx_drops));
        tx_drop.add(labels, static_cast<double>(network.tx_drops));
    }
    for (auto* family : {&rx, &tx, &rx_errs, &tx_errs, &rx_drop, &tx_drop})
        out.add(std::move(*family));
}

void addCountersOfTheMachine(prometheus::Exposition& out, const ResourceSnapshot& machine) {
    MetricFamily cpu("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", MetricType::counter);
    const double ticks = static_cast<double>(std::max(machine.clock_ticks_per_second, 1L));
    for (std::size_t core = 0; core < machine.cpu_core_times.size(); ++core) {
        const CpuTimes& times = machine.cpu_core_times[core];
        const std::string number = std::to_string(core);
        const std::pair<const char*, std::uint64_t> modes[] = {
            {"user", times.user},       {"nice", times.nice},     {"system", times.system},
            {"idle", times.idle},       {"iowait", times.iowait}, {"irq", times.irq},
            {"softirq", times.softirq}, {"steal", times.steal}};
        for (const auto& [mode, value] : modes)
            cpu.add({{"cpu", number}, {"mode", mode}}, static_cast<double>(value) / ticks);
    }
    out.add(std::move(cpu));

    MetricFamily read_bytes("node_disk_read_bytes_total", "The total number of bytes read successfully.",
                            MetricType::counter);
    MetricFamily written_bytes("node_disk_written_bytes_total",
                               "The total number of bytes written successfully.", MetricType::counter);
    MetricFamily reads("node_disk_reads_completed_total", "The total number of reads completed successfully.",
                       MetricType::counter);
    MetricFamily writes("node_disk_writes_completed_total",
                        "The total number of writes completed successfully.", MetricType::counter);
    MetricFamily io_time("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.",
                         MetricType::counter);
    for (const DiskIoSnapshot& disk : machine.disk_io) {
        const std::initializer_list<prometheus::Label> labels{{"device", disk.device}};
        const auto& counters = disk.counters;
        read_bytes.add(labels, static_cast<double>(counters.sectors_read * kDiskStatSectorBytes));
        written_bytes.add(labels, static_cast<double>(counters.sectors_written * kDiskStatSectorBytes));
        reads.add(labels, static_cast<double>(counters.reads_completed));
        writes.add(labels, static_cast<double>(counters.writes_completed));
        io_time.add(labels, static_cast<double>(counters.io_ticks_ms) / 1000.0);
    }
    for (auto* family : {&read_bytes, &written_bytes, &reads, &writes, &io_time})
        out.add(std::move(*family));

    // node_exporter's names: "waiting" for some, "stalled" for full.
    auto pressure = [&](const char* name, const char* help, const std::optional<PressureInfo>& info,
                        bool full) {
        const auto& stall = !info ? std::nullopt : full ? info->full : info->some;
        if (!stall)
            return;
        MetricFamily family(name, help, MetricType::counter);
        family.add(static_cast<double>(stall->total_usec) / 1e6);
        out.add(std::move(family));
    };
    const PressureSnapshot& psi = machine.pressure;
    pressure("node_pressure_cpu_waiting_seconds_total",
             "Total time in seconds that processes have waited for CPU time", psi.cpu, false);
    pressure("node_pressure_memory_waiting_seconds_total",
             "Total time in seconds that processes have waited for memory", psi.memory, false);
    pressure("node_pressure_memory_stalled_seconds_total",
             "Total time in seconds no process could make progress due to memory congestion", psi.memory,
             true);
    pressure("node_pressure_io_waiting_seconds_total",
             "Total time in seconds that processes have waited due to IO congestion", psi.io, false);
    pressure("node_pressure_io_stalled_seconds_total",
             "Total time in seconds no process could make progress due to IO congestion", psi.io, true);
}

void addServices(prometheus::Exposition& out, const std::vector<ServiceStatus>& services) {
    MetricFamily up("tau_service_up", "1 while the supervised service is running, else 0.",
                    MetricType::gauge);
    MetricFamily restarts("tau_service_restarts_total",
                          "Automatic restarts of the service since tau-monitor started.",
                          MetricType::counter);
    MetricFamily uptime("tau_service_uptime_seconds", "Seconds since the service's current process started.",
                        MetricType::gauge);
    MetricFamily critical("tau_service_critical", "1 for a service configured as critical.",
                          MetricType::gauge);
    for (const auto& service : services) {
        const std::initializer_list<prometheus::Label> labels{{"service", service.name}};
        up.add(labels, service.state == "running" ? 1 : 0);
        restarts.add(labels, service.restarts);
        uptime.add(labels, static_cast<double>(service.uptime_usec) / 1e6);
        critical.add(labels, service.critical ? 1 : 0);
    }
    for (auto* family : {&up, &restarts, &uptime, &critical})
        out.add(std::move(*family));
}

// service_cpu_percent@web becomes tau_service_cpu_percent{service="web"}, disk_used_percent@/var
// tau_disk_used_percent{scope="/var"}, and so on for every metric the sampler measures, in the order it first
// names them.
void addSamples(prometheus::Exposition& out, const std::vector<MetricSample>& samples) {
    std::vector<MetricFamily> families;
    for (const auto& sample : samples) {
        const std::string name = "tau_" + sample.name;
        auto family = std::find_if(families.begin(), families.end(),
                                   [&](const MetricFamily& f) { return f.name() == name; });
        const bool of_service = sample.name.starts_with("service_");
        if (family == families.end())
            family = families.emplace(
                families.end(), name,
                (of_service ? "Usage of a supervised service: " : "Resources1 metric ") + sample.name + ".",
                MetricType::gauge);
        if (of_service)
            family->add({{"service", sample.scope}}, sample.value);
        else if (sample.scope == kSystemScope)
            family->add(sample.value);
        else
            family->add({{"scope", sample.scope}}, sample.value);
    }
    for (auto& family : families)
        out.add(std::move(family));
}

void addHealth(prometheus::Exposition& out, const HealthSummary& health) {
    MetricFamily score("tau_health_score", "Overall health score of the system, 0 (failing) to 1 (healthy).",
                       MetricType::gauge);
    score.add(health.score);
    out.add(std::move(score));
    MetricFamily status("tau_health_status", "1 for the current overall health status.", MetricType::gauge);
    status.add({{"status", health.status}}, 1);
    out.add(std::move(status));
    MetricFamily check_score("tau_health_check_score", "Score of one health check, 0 to 1.",
                             MetricType::gauge);
    MetricFamily check_weight("tau_health_check_weight", "Weight of one health check in the overall score.",
                              MetricType::gauge);
    for (const auto& check : health.checks) {
        // A check of unknown status has no score to show.
        if (check.status != "unknown")
            check_score.add({{"check", check.name}}, check.score);
        check_weight.add({{"check", check.name}}, check.weight);
    }
    out.add(std::move(check_score));
    out.add(std::move(check_weight));
}

} // namespace

std::string renderSuiteMetrics(const SuiteMetrics& metrics) {
    prometheus::Exposition out;
    if (metrics.resources) {
        addMachine(out, *metrics.resources);
        addCountersOfTheMachine(out, *metrics.resources);
    }
    if (metrics.services)
        addServices(out, *metrics.services);
    addSamples(out, metrics.samples);

    MetricFamily recoveries("tau_recovery_actions_total",
                            "Recovery actions taken since tau-monitor started, by service and action.",
                            MetricType::counter);
    for (const auto& [key, count] : metrics.recovery_actions)
        recoveries.add({{"service", key.first}, {"action", key.second}}, static_cast<double>(count));
    out.add(std::move(recoveries));

    MetricFamily alarms("tau_alarm_level", "Alarm level of a watched metric: 0 ok, 1 warning, 2 critical.",
                        MetricType::gauge);
    for (const auto& alarm : metrics.alarms)
        alarms.add({{"metric", alarm.metric}, {"scope", alarm.scope}}, static_cast<double>(alarm.level));
    out.add(std::move(alarms));

    if (metrics.health)
        addHealth(out, *metrics.health);
    return out.render();
}

} // namespace tau
