// tau-monitor-cli: asks the running tau-monitor over D-Bus and prints tables or JSON.

#include "table.h"
#include "tau/bus/connection.h"
#include "tau/bus/wire.h"
#include "tau/spawner.h"

#include <CLI/CLI.hpp>
#include <cmath>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sdbus-c++/sdbus-c++.h>

namespace {

using json = nlohmann::ordered_json;
using tau::cli::formatBytes;
using tau::cli::formatDuration;
using tau::cli::formatTime;
using tau::cli::Table;
namespace names = tau::bus;

constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: the daemon is not running
constexpr int kExitNoPermission = 77; // EX_NOPERM

using tau::wire::Check;
using tau::wire::Disk;
using tau::wire::ExplainStep;
using tau::wire::HistoryEntry;
using tau::wire::HistoryPoint;
using tau::wire::Load;
using tau::wire::LogEntry;
using tau::wire::Memory;
using tau::wire::Metric;
using tau::wire::Network;
using tau::wire::ProcessEntry;
using tau::wire::Recommendation;
using tau::wire::ServiceEntry;
using tau::wire::StateEntry;
using tau::wire::SummaryEntry;
using tau::wire::Swap;
using tau::wire::Threshold;
using tau::wire::Trend;

struct Options {
    std::string format = "table";
    std::string bus = "auto";
    double timeout_seconds = 5;
};

class Client {
  public:
    explicit Client(const Options& options) : json_(options.format == "json") {
        auto daemon = names::connectToDaemon(names::BusChoice::parse(options.bus));
        connection_ = std::move(daemon.connection);
        connection_->setMethodCallTimeout(
            std::chrono::microseconds(static_cast<uint64_t>(options.timeout_seconds * 1e6)));
    }

    bool json() const { return json_; }

    std::unique_ptr<sdbus::IProxy> proxy(const char* name, const char* path) {
        return sdbus::createProxy(*connection_, name, path);
    }

  private:
    bool json_;
    std::unique_ptr<sdbus::IConnection> connection_;
};

std::string percent(double value) {
    return fmt::format("{:.1f}%", value);
}

void printJson(const json& value) {
    std::cout << value.dump(2) << '\n';
}

std::vector<ServiceEntry> listServices(Client& client) {
    std::vector<ServiceEntry> services;
    client.proxy(names::kProcessesName, names::kProcessesPath)
        ->callMethod("ListServices")
        .onInterface(names::kProcessesName)
        .storeResultsTo(services);
    return services;
}

int showHealth(Client& client, bool detailed) {
    double score = 0;
    std::string status;
    std::vector<Check> checks;
    std::vector<Recommendation> recommendations;
    auto health = client.proxy(names::kHealthName, names::kHealthPath);
    health->callMethod("GetHealth").onInterface(names::kHealthName).storeResultsTo(score, status, checks);
    health->callMethod("GetRecommendations").onInterface(names::kHealthName).storeResultsTo(recommendations);
    if (client.json()) {
        json out = {{"score", score},
                    {"status", status},
                    {"checks", json::array()},
                    {"recommendations", json::array()}};
        for (const auto& r : recommendations) {
            out["recommendations"].push_back({{"check", r.get<0>()}, {"text", r.get<1>()}});
        }
        for (const auto& c : checks) {
            out["checks"].push_back({{"name", c.get<0>()},
                                     {"status", c.get<1>()},
                                     {"value", c.get<2>()},
                                     {"score", c.get<3>()},
                                     {"weight", c.get<4>()},
                                     {"contribution", c.get<5>()},
                                     {"message", c.get<6>()}});
        }
        printJson(out);
        return 0;
    }
    std::cout << fmt::format("Health: {} (score {:.2f})\n", status, score);
    if (checks.empty()) {
        std::cout << "No evaluation yet.\n";
        return 0;
    }
    Table table = detailed ? Table({"CHECK", "STATUS", "VALUE", "SCORE", "WEIGHT", "CONTRIBUTION", "MESSAGE"})
                           : Table({"CHECK", "STATUS", "MESSAGE"});
    for (const auto& c : checks) {
        if (detailed) {
            table.add({c.get<0>(), c.get<1>(), fmt::format("{:.1f}", c.get<2>()),
                       fmt::format("{:.2f}", c.get<3>()), fmt::format("{:.1f}", c.get<4>()),
                       fmt::format("{:.3f}", c.get<5>()), c.get<6>()});
        } else {
            table.add({c.get<0>(), c.get<1>(), c.get<6>()});
        }
    }
    std::cout << '\n';
    table.print(std::cout);
    if (!recommendations.empty()) {
        std::cout << "\nRecommendations:\n";
        for (const auto& r : recommendations) {
            std::cout << fmt::format("  - {} ({})\n", r.get<1>(), r.get<0>());
        }
    }
    return 0;
}

// A value as GetMetrics names it: bytes and rates in binary units, the rest with two decimals.
std::string formatMetric(const std::string& name, double value) {
    if (std::isnan(value)) {
        return "-";
    }
    if (name.ends_with("_bytes") && value >= 0) {
        return formatBytes(static_cast<unsigned long long>(value));
    }
    if (name.ends_with("_bytes_per_second") && value >= 0) {
        return formatBytes(static_cast<unsigned long long>(value)) + "/s";
    }
    if (name.ends_with("_percent")) {
        return percent(value);
    }
    return fmt::format("{:.2f}", value);
}

int showMetrics(Client& client) {
    std::vector<Metric> metrics;
    client.proxy(names::kResourcesName, names::kResourcesPath)
        ->callMethod("GetMetrics")
        .onInterface(names::kResourcesName)
        .storeResultsTo(metrics);
    if (client.json()) {
        json out = json::array();
        for (const auto& m : metrics) {
            out.push_back({{"metric", m.get<0>()}, {"scope", m.get<1>()}, {"value", m.get<2>()}});
        }
        printJson(out);
        return 0;
    }
    Table table({"METRIC", "SCOPE", "VALUE"});
    for (const auto& m : metrics) {
        table.add({m.get<0>(), m.get<1>(), formatMetric(m.get<0>(), m.get<2>())});
    }
    table.print(std::cout);
    return 0;
}

int showHistory(Client& client, const std::string& series, double since_seconds_ago, unsigned step) {
    const auto now = tau::wire::toMicros(std::chrono::system_clock::now());
    const auto ago = static_cast<uint64_t>(since_seconds_ago * 1e6);
    std::vector<HistoryPoint> points;
    client.proxy(names::kResourcesName, names::kResourcesPath)
        ->callMethod("GetHistory")
        .onInterface(names::kResourcesName)
        .withArguments(series, ago < now ? now - ago : uint64_t{0}, step)
        .storeResultsTo(points);
    const auto metric = series.substr(0, series.find('@'));
    if (client.json()) {
        json out = json::array();
        for (const auto& p : points) {
            out.push_back(
                {{"at_usec", p.get<0>()}, {"mean", p.get<1>()}, {"min", p.get<2>()}, {"max", p.get<3>()}});
        }
        printJson(out);
        return 0;
    }
    Table table({"TIME", "MEAN", "MIN", "MAX"});
    for (const auto& p : points) {
        table.add({formatTime(p.get<0>()), formatMetric(metric, p.get<1>()), formatMetric(metric, p.get<2>()),
                   formatMetric(metric, p.get<3>())});
    }
    table.print(std::cout);
    return 0;
}

int showThresholds(Client& client) {
    std::vector<Threshold> thresholds;
    client.proxy(names::kResourcesName, names::kResourcesPath)
        ->callMethod("GetThresholds")
        .onInterface(names::kResourcesName)
        .storeResultsTo(thresholds);
    // NaN is no JSON number: an absent limit or value is null.
    auto number = [](double value) { return std::isnan(value) ? json(nullptr) : json(value); };
    if (client.json()) {
        json out = json::array();
        for (const auto& t : thresholds) {
            out.push_back({{"metric", t.get<0>()},
                           {"scope", t.get<1>()},
                           {"level", t.get<2>()},
                           {"value", number(t.get<3>())},
                           {"warning", number(t.get<4>())},
                           {"critical", number(t.get<5>())},
                           {"since_usec", t.get<6>()}});
        }
        printJson(out);
        return 0;
    }
    Table table({"METRIC", "SCOPE", "LEVEL", "VALUE", "WARNING", "CRITICAL", "SINCE"});
    for (const auto& t : thresholds) {
        table.add({t.get<0>(), t.get<1>(), t.get<2>(), formatMetric(t.get<0>(), t.get<3>()),
                   formatMetric(t.get<0>(), t.get<4>()), formatMetric(t.get<0>(), t.get<5>()),
                   formatTime(t.get<6>())});
    }
    table.print(std::cout);
    return 0;
}

int showTrends(Client& client) {
    std::vector<Trend> trends;
    client.proxy(names::kResourcesName, names::kResourcesPath)
        ->callMethod("GetTrends")
        .onInterface(names::kResourcesName)
        .storeResultsTo(trends);
    if (client.json()) {
        json out = json::array();
        for (const auto& t : trends) {
            out.push_back({{"metric", t.get<0>()},
                           {"scope", t.get<1>()},
                           {"value", t.get<2>()},
                           {"slope_per_hour", t.get<3>()},
                           {"r_squared", t.get<4>()},
                           {"limit", std::isnan(t.get<5>()) ? json(nullptr) : json(t.get<5>())},
                           {"seconds_until_limit", t.get<6>() < 0 ? json(nullptr) : json(t.get<6>())}});
        }
        printJson(out);
        return 0;
    }
    Table table({"METRIC", "SCOPE", "NOW", "PER HOUR", "R2", "LIMIT", "REACHED IN"});
    for (const auto& t : trends) {
        const auto& metric = t.get<0>();
        table.add(
            {metric, t.get<1>(), formatMetric(metric, t.get<2>()),
             (t.get<3>() >= 0 ? "+" : "-") + formatMetric(metric, std::abs(t.get<3>())),
             fmt::format("{:.2f}", t.get<4>()), formatMetric(metric, t.get<5>()),
             t.get<6>() < 0 ? "-" : formatDuration(static_cast<unsigned long long>(t.get<6>()) * 1'000'000)});
    }
    table.print(std::cout);
    return 0;
}

int showResources(Client& client, bool cpu, bool memory, bool disk, bool network) {
    if (!cpu && !memory && !disk && !network) {
        cpu = memory = disk = network = true;
    }
    uint64_t taken_at = 0;
    double cpu_percent = 0;
    std::vector<double> per_core;
    Memory mem;
    Swap swap;
    Load load;
    std::vector<Disk> disks;
    std::vector<Network> networks;
    client.proxy(names::kResourcesName, names::kResourcesPath)
        ->callMethod("GetSnapshot")
        .onInterface(names::kResourcesName)
        .storeResultsTo(taken_at, cpu_percent, per_core, mem, swap, load, disks, networks);

    if (client.json()) {
        json out = {{"taken_at_usec", taken_at}};
        if (cpu) {
            out["cpu"] = {{"percent", cpu_percent},
                          {"per_core_percent", per_core},
                          {"load", {load.get<0>(), load.get<1>(), load.get<2>()}}};
        }
        if (memory) {
            out["memory"] = {{"total_bytes", mem.get<0>()},
                             {"available_bytes", mem.get<1>()},
                             {"used_bytes", mem.get<2>()},
                             {"used_percent", mem.get<3>()}};
            out["swap"] = {{"total_bytes", swap.get<0>()},
                           {"used_bytes", swap.get<1>()},
                           {"used_percent", swap.get<2>()}};
        }
        if (disk) {
            out["disks"] = json::array();
            for (const auto& d : disks) {
                out["disks"].push_back({{"mount_point", d.get<0>()},
                                        {"device", d.get<1>()},
                                        {"fstype", d.get<2>()},
                                        {"total_bytes", d.get<3>()},
                                        {"used_bytes", d.get<4>()},
                                        {"available_bytes", d.get<5>()},
                                        {"used_percent", d.get<6>()},
                                        {"inodes_total", d.get<7>()},
                                        {"inodes_used", d.get<8>()}});
            }
        }
        if (network) {
            out["networks"] = json::array();
            for (const auto& n : networks) {
                out["networks"].push_back({{"interface", n.get<0>()},
                                           {"rx_bytes", n.get<1>()},
                                           {"tx_bytes", n.get<2>()},
                                           {"rx_bytes_per_second", n.get<3>()},
                                           {"tx_bytes_per_second", n.get<4>()}});
            }
        }
        printJson(out);
        return 0;
    }

    std::cout << "Sampled at " << formatTime(taken_at) << "\n";
    if (cpu) {
        std::cout << fmt::format("\nCPU {} on {} cores, load {:.2f} {:.2f} {:.2f}\n", percent(cpu_percent),
                                 per_core.size(), load.get<0>(), load.get<1>(), load.get<2>());
        Table table({"CORE", "USAGE"});
        for (std::size_t i = 0; i < per_core.size(); ++i) {
            table.add({"cpu" + std::to_string(i), percent(per_core[i])});
        }
        table.print(std::cout);
    }
    if (memory) {
        std::cout << '\n';
        Table table({"MEMORY", "TOTAL", "USED", "AVAILABLE", "USED%"});
        table.add({"ram", formatBytes(mem.get<0>()), formatBytes(mem.get<2>()), formatBytes(mem.get<1>()),
                   percent(mem.get<3>())});
        table.add({"swap", formatBytes(swap.get<0>()), formatBytes(swap.get<1>()),
                   formatBytes(swap.get<0>() - swap.get<1>()), percent(swap.get<2>())});
        table.print(std::cout);
    }
    if (disk) {
        std::cout << '\n';
        Table table({"MOUNT", "FSTYPE", "SIZE", "USED", "AVAIL", "USED%", "INODES%", "DEVICE"});
        for (const auto& d : disks) {
            const double inode_percent =
                d.get<7>() > 0 ? 100.0 * static_cast<double>(d.get<8>()) / static_cast<double>(d.get<7>())
                               : 0.0;
            table.add({d.get<0>(), d.get<2>(), formatBytes(d.get<3>()), formatBytes(d.get<4>()),
                       formatBytes(d.get<5>()), percent(d.get<6>()), percent(inode_percent), d.get<1>()});
        }
        table.print(std::cout);
    }
    if (network) {
        std::cout << '\n';
        Table table({"INTERFACE", "RX", "TX", "RX/S", "TX/S"});
        for (const auto& n : networks) {
            table.add({n.get<0>(), formatBytes(n.get<1>()), formatBytes(n.get<2>()),
                       formatBytes(static_cast<unsigned long long>(n.get<3>())) + "/s",
                       formatBytes(static_cast<unsigned long long>(n.get<4>())) + "/s"});
        }
        table.print(std::cout);
    }
    return 0;
}

// Each process under its parent, depth first, the main process at the top.
void printTree(const std::vector<ProcessEntry>& entries) {
    std::map<int32_t, std::vector<const ProcessEntry*>> children;
    for (const auto& p : entries) {
        children[p.get<1>()].push_back(&p);
    }
    std::function<void(const ProcessEntry&, std::size_t)> print = [&](const ProcessEntry& p,
                                                                      std::size_t depth) {
        std::cout << fmt::format("  {}{} {} ({})\n", std::string(depth * 2, ' '), p.get<0>(), p.get<2>(),
                                 formatBytes(p.get<3>()));
        for (const auto* child : children[p.get<0>()]) {
            print(*child, depth + 1);
        }
    };
    if (!entries.empty()) {
        print(entries.front(), 0);
    }
}

int showProcesses(Client& client, bool critical_only, bool tree) {
    auto services = listServices(client);
    if (critical_only) {
        std::erase_if(services, [](const ServiceEntry& s) { return !s.get<7>(); });
    }
    auto processes = client.proxy(names::kProcessesName, names::kProcessesPath);
    auto treeOf = [&](const std::string& name) {
        std::vector<ProcessEntry> entries;
        processes->callMethod("GetProcessTree")
            .onInterface(names::kProcessesName)
            .withArguments(name)
            .storeResultsTo(entries);
        return entries;
    };

    if (client.json()) {
        json out = json::array();
        for (const auto& s : services) {
            json entry = {{"name", s.get<0>()},      {"state", s.get<1>()},       {"pid", s.get<2>()},
                          {"restarts", s.get<3>()},  {"uptime_usec", s.get<4>()}, {"cpu_percent", s.get<5>()},
                          {"rss_bytes", s.get<6>()}, {"critical", s.get<7>()},    {"kind", s.get<8>()}};
            if (tree) {
                entry["tree"] = json::array();
                for (const auto& p : treeOf(s.get<0>())) {
                    entry["tree"].push_back({{"pid", p.get<0>()},
                                             {"ppid", p.get<1>()},
                                             {"comm", p.get<2>()},
                                             {"rss_bytes", p.get<3>()}});
                }
            }
            out.push_back(std::move(entry));
        }
        printJson(out);
        return 0;
    }

    Table table({"NAME", "KIND", "STATE", "PID", "RESTARTS", "UPTIME", "CPU%", "RSS", "CRITICAL"});
    for (const auto& s : services) {
        table.add({s.get<0>(), s.get<8>(), s.get<1>(), s.get<2>() != 0 ? std::to_string(s.get<2>()) : "-",
                   std::to_string(s.get<3>()), s.get<2>() != 0 ? formatDuration(s.get<4>()) : "-",
                   fmt::format("{:.1f}", s.get<5>()), s.get<2>() != 0 ? formatBytes(s.get<6>()) : "-",
                   s.get<7>() ? "yes" : "no"});
    }
    table.print(std::cout);
    if (tree) {
        for (const auto& s : services) {
            const auto entries = treeOf(s.get<0>());
            if (entries.empty()) {
                continue;
            }
            std::cout << '\n' << s.get<0>() << ":\n";
            printTree(entries);
        }
    }
    return 0;
}

std::vector<HistoryEntry> getHistory(Client& client, const std::string& service,
                                     const std::string& failure_class, uint64_t since_usec, uint32_t limit) {
    std::vector<HistoryEntry> history;
    client.proxy(names::kRecoveryName, names::kRecoveryPath)
        ->callMethod("GetHistory")
        .onInterface(names::kRecoveryName)
        .withArguments(service, failure_class, since_usec, limit)
        .storeResultsTo(history);
    return history;
}

// The stored versions of session state the caller may see; nullopt (with the reason) when it may see none.
std::optional<std::vector<StateEntry>> listStates(Client& client, std::string& why_not) {
    std::vector<StateEntry> states;
    try {
        client.proxy(names::kRecoveryName, names::kRecoveryPath)
            ->callMethod("ListStates")
            .onInterface(names::kRecoveryName)
            .storeResultsTo(states);
    } catch (const sdbus::Error& e) {
        if (e.getName() != "org.tauos.Error.PermissionDenied" &&
            e.getName() != "org.tauos.Error.Unavailable") {
            throw;
        }
        why_not = e.getMessage();
        return std::nullopt;
    }
    return states;
}

// Per critical service, and per service with saved session state: where it stands in its recovery (from the
// supervisor and the crash history) and the versions of its state.
int showRecoverySession(Client& client, const std::string& service) {
    const auto history = getHistory(client, service, "", 0, 0);
    std::string states_unavailable;
    const auto states = listStates(client, states_unavailable);
    auto services = listServices(client);
    const auto hasState = [&](const std::string& name) {
        return states && std::any_of(states->begin(), states->end(),
                                     [&](const StateEntry& state) { return state.get<0>() == name; });
    };
    std::erase_if(services, [&](const ServiceEntry& s) {
        return (!service.empty() && s.get<0>() != service) || (!s.get<7>() && !hasState(s.get<0>()));
    });
    auto lastExitOf = [&](const std::string& name) -> const HistoryEntry* {
        for (const auto& h : history) {
            if (h.get<1>() == name) {
                return &h; // newest first
            }
        }
        return nullptr;
    };
    if (client.json()) {
        json out = json::array();
        for (const auto& s : services) {
            json entry = {{"name", s.get<0>()},
                          {"state", s.get<1>()},
                          {"pid", s.get<2>()},
                          {"restarts", s.get<3>()},
                          {"uptime_usec", s.get<4>()}};
            if (const auto* last = lastExitOf(s.get<0>())) {
                const auto exit = tau::wire::crashEntryFromWire(*last);
                entry["last_exit"] = {{"time_usec", last->get<0>()}, {"exit_code", exit.exit_code},
                                      {"signal", exit.signal},       {"action", exit.action},
                                      {"attempt", exit.attempt},     {"reason", exit.reason}};
            }
            if (states) {
                json versions = json::array();
                for (const auto& state : *states) {
                    if (state.get<0>() == s.get<0>()) {
                        versions.push_back({{"version", state.get<1>()},
                                            {"size", state.get<2>()},
                                            {"saved_at_usec", state.get<3>()},
                                            {"checksum", state.get<4>()},
                                            {"quarantined", state.get<5>()}});
                    }
                }
                entry["state_versions"] = std::move(versions);
            } else {
                entry["state_versions_unavailable"] = states_unavailable;
            }
            out.push_back(std::move(entry));
        }
        printJson(out);
        return 0;
    }
    Table table({"SERVICE", "STATE", "PID", "RESTARTS", "UPTIME", "LAST EXIT", "ACTION"});
    for (const auto& s : services) {
        std::string last_exit = "-", action = "-";
        if (const auto* last = lastExitOf(s.get<0>())) {
            const auto exit = tau::wire::crashEntryFromWire(*last);
            last_exit =
                formatTime(last->get<0>()) + (exit.signal != 0 ? " signal " + std::to_string(exit.signal)
                                                               : " status " + std::to_string(exit.exit_code));
            action = exit.action;
        }
        table.add({s.get<0>(), s.get<1>(), s.get<2>() != 0 ? std::to_string(s.get<2>()) : "-",
                   std::to_string(s.get<3>()), s.get<2>() != 0 ? formatDuration(s.get<4>()) : "-", last_exit,
                   action});
    }
    table.print(std::cout);
    std::cout << "\nSession state\n";
    if (!states) {
        std::cout << "  not shown: " << states_unavailable << '\n';
        return 0;
    }
    Table versions({"SERVICE", "VERSION", "SIZE", "SAVED", "CHECKSUM", "QUARANTINED"});
    for (const auto& state : *states) {
        if (service.empty() || state.get<0>() == service) {
            versions.add({state.get<0>(), std::to_string(state.get<1>()), formatBytes(state.get<2>()),
                          formatTime(state.get<3>()), state.get<4>(), state.get<5>() ? "yes" : "no"});
        }
    }
    versions.print(std::cout);
    return 0;
}

std::string orDash(const std::string& text) {
    return text.empty() ? "-" : text;
}

unsigned long long micros(std::chrono::microseconds duration) {
    return duration.count() > 0 ? static_cast<unsigned long long>(duration.count()) : 0;
}

// A delay the way an operator reads it: "0s", "1.5s", "2m 30s".
std::string formatDelay(uint64_t micros) {
    if (micros < 60'000'000) {
        return fmt::format("{:g}s", static_cast<double>(micros / 1000) / 1000.0);
    }
    return formatDuration(micros);
}

int showRecoveryHistory(Client& client, const std::string& service, const std::string& failure_class,
                        std::optional<double> since_seconds_ago, unsigned count) {
    uint64_t since_usec = 0;
    if (since_seconds_ago) {
        const auto now = tau::wire::toMicros(std::chrono::system_clock::now());
        const auto ago = static_cast<uint64_t>(*since_seconds_ago * 1e6);
        since_usec = ago < now ? now - ago : 0;
    }
    const auto history = getHistory(client, service, failure_class, since_usec, count);
    if (client.json()) {
        json out = json::array();
        for (const auto& h : history) {
            const auto e = tau::wire::crashEntryFromWire(h);
            out.push_back({{"time_usec", h.get<0>()},
                           {"service", e.service},
                           {"pid", e.pid},
                           {"exit_code", e.exit_code},
                           {"signal", e.signal},
                           {"failure_class", e.failure_class},
                           {"uptime_usec", micros(e.uptime)},
                           {"attempt", e.attempt},
                           {"action", e.action},
                           {"delay_usec", micros(e.delay)},
                           {"outcome", e.outcome},
                           {"time_to_running_usec", micros(e.time_to_running)},
                           {"reason", e.reason}});
        }
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
        return 0;
    }
    if (history.empty()) {
        std::cout << "No exits recorded.\n";
        return 0;
    }
    Table table({"TIME", "SERVICE", "PID", "EXIT", "SIGNAL", "CLASS", "UPTIME", "ATTEMPT", "ACTION", "DELAY",
                 "OUTCOME", "BACK AFTER"});
    for (const auto& h : history) {
        const auto e = tau::wire::crashEntryFromWire(h);
        const auto action = tau::recoveryActionFromString(e.action);
        const bool restarting = action && bringsBack(*action);
        table.add({formatTime(h.get<0>()), e.service, std::to_string(e.pid),
                   e.exit_code >= 0 ? std::to_string(e.exit_code) : "-",
                   e.signal != 0 ? tau::signalName(e.signal) : "-", orDash(e.failure_class),
                   formatDuration(micros(e.uptime)), e.attempt != 0 ? std::to_string(e.attempt) : "-",
                   e.action, restarting ? formatDelay(micros(e.delay)) : "-", e.outcome,
                   e.outcome == "running" ? formatDelay(micros(e.time_to_running)) : "-"});
    }
    table.print(std::cout);
    return 0;
}

int showRecoverySummary(Client& client) {
    std::vector<SummaryEntry> summaries;
    client.proxy(names::kRecoveryName, names::kRecoveryPath)
        ->callMethod("GetSummary")
        .onInterface(names::kRecoveryName)
        .storeResultsTo(summaries);
    if (client.json()) {
        json out = json::array();
        for (const auto& s : summaries) {
            out.push_back({{"service", s.get<0>()},
                           {"failures", s.get<1>()},
                           {"recovered", s.get<2>()},
                           {"success_rate", s.get<3>()},
                           {"mttr_usec", s.get<4>()},
                           {"last_failure_usec", s.get<5>()}});
        }
        printJson(out);
        return 0;
    }
    if (summaries.empty()) {
        std::cout << "No failures recorded.\n";
        return 0;
    }
    Table table({"SERVICE", "FAILURES", "RECOVERED", "SUCCESS", "MTTR", "LAST FAILURE"});
    for (const auto& s : summaries) {
        table.add({s.get<0>(), std::to_string(s.get<1>()), std::to_string(s.get<2>()),
                   percent(100.0 * s.get<3>()), s.get<2>() > 0 ? formatDuration(s.get<4>()) : "-",
                   formatTime(s.get<5>())});
    }
    table.print(std::cout);
    return 0;
}

int showRecoveryExplanation(Client& client, const std::string& service, const std::string& failure_class,
                            unsigned failures) {
    std::vector<ExplainStep> steps;
    std::vector<std::string> warnings;
    client.proxy(names::kRecoveryName, names::kRecoveryPath)
        ->callMethod("Explain")
        .onInterface(names::kRecoveryName)
        .withArguments(service, failure_class, failures)
        .storeResultsTo(steps, warnings);
    if (client.json()) {
        json out = {{"service", service},
                    {"failure_class", failure_class.empty() ? "exit" : failure_class},
                    {"steps", json::array()},
                    {"warnings", warnings}};
        for (const auto& step : steps) {
            out["steps"].push_back({{"attempt", step.get<0>()},
                                    {"action", step.get<1>()},
                                    {"strategy", step.get<2>()},
                                    {"delay_usec", step.get<3>()},
                                    {"min_delay_usec", step.get<4>()},
                                    {"max_delay_usec", step.get<5>()}});
        }
        printJson(out);
        return 0;
    }
    std::cout << fmt::format("Recovery of {} for {} failures:\n\n", service,
                             failure_class.empty() ? "exit" : failure_class);
    Table table({"ATTEMPT", "ACTION", "STRATEGY", "DELAY", "RANGE"});
    for (const auto& step : steps) {
        const bool restarts = step.get<1>() == "restart" || step.get<1>() == "restart_safe_mode";
        const bool jittered = step.get<4>() != step.get<5>();
        table.add(
            {std::to_string(step.get<0>()), step.get<1>(), step.get<2>(),
             restarts ? formatDelay(step.get<3>()) : "-",
             restarts && jittered ? formatDelay(step.get<4>()) + " - " + formatDelay(step.get<5>()) : "-"});
    }
    table.print(std::cout);
    if (!warnings.empty()) {
        std::cout << "\nWarnings:\n";
        for (const auto& warning : warnings) {
            std::cout << "  - " << warning << '\n';
        }
    }
    return 0;
}

int showLogs(Client& client, bool stats, unsigned count) {
    auto log = client.proxy(names::kLogName, names::kLogPath);
    if (stats) {
        std::map<std::string, uint64_t> values;
        log->callMethod("GetStats").onInterface(names::kLogName).storeResultsTo(values);
        if (client.json()) {
            printJson(json(values));
            return 0;
        }
        Table table({"COUNTER", "VALUE"});
        for (const auto& [key, value] : values) {
            table.add({key, std::to_string(value)});
        }
        table.print(std::cout);
        return 0;
    }
    std::vector<LogEntry> records;
    log->callMethod("GetRecent").onInterface(names::kLogName).withArguments(count).storeResultsTo(records);
    if (client.json()) {
        json out = json::array();
        for (const auto& r : records) {
            out.push_back({{"timestamp_usec", r.get<0>()},
                           {"level", r.get<1>()},
                           {"service", r.get<2>()},
                           {"pid", r.get<3>()},
                           {"event", r.get<4>()},
                           {"message", r.get<5>()},
                           {"fields", r.get<6>()}});
        }
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
        return 0;
    }
    Table table({"TIME", "LEVEL", "SERVICE", "EVENT", "MESSAGE"});
    for (const auto& r : records) {
        table.add({formatTime(r.get<0>()), r.get<1>(), r.get<2>(), r.get<4>().empty() ? "-" : r.get<4>(),
                   r.get<5>()});
    }
    table.print(std::cout);
    return 0;
}

int showConfig(Client& client, bool monitoring, bool resources, bool recovery) {
    std::string text;
    client.proxy(names::kProcessesName, names::kProcessesPath)
        ->callMethod("GetConfig")
        .onInterface(names::kProcessesName)
        .storeResultsTo(text);
    const json full = json::parse(text);
    json shown = json::object();
    if (!monitoring && !resources && !recovery) {
        shown = full;
    }
    if (monitoring) {
        shown["resource_monitoring"] = full["resource_monitoring"];
        shown["health_checking"] = full["health_checking"];
    }
    if (resources) {
        shown["resource_monitoring"] = full["resource_monitoring"];
        shown["process_management"] = full["process_management"];
    }
    if (recovery) {
        shown["crash_recovery"] = full["crash_recovery"];
        json services = json::array();
        for (const auto& service : full["service"]) {
            services.push_back({{"name", service["name"]},
                                {"critical", service["critical"]},
                                {"recovery", service["recovery"]}});
        }
        shown["service"] = services;
    }
    if (client.json()) {
        printJson(shown);
        return 0;
    }
    for (const auto& [section, values] : shown.items()) {
        if (!values.is_object() && !values.is_array()) {
            std::cout << section << " = " << values.dump() << "\n\n";
            continue;
        }
        if (values.is_array()) {
            for (const auto& item : values) {
                std::cout << "[[" << section << "]]\n";
                for (const auto& [key, value] : item.items()) {
                    std::cout << fmt::format("  {:<26} {}\n", key, value.dump());
                }
                std::cout << '\n';
            }
            continue;
        }
        std::cout << "[" << section << "]\n";
        for (const auto& [key, value] : values.items()) {
            std::cout << fmt::format("  {:<26} {}\n", key, value.dump());
        }
        std::cout << '\n';
    }
    return 0;
}

int control(Client& client, const char* method, const std::string& name) {
    client.proxy(names::kProcessesName, names::kProcessesPath)
        ->callMethod(method)
        .onInterface(names::kProcessesName)
        .withArguments(name);
    if (client.json()) {
        printJson({{"service", name}, {"action", method}, {"result", "ok"}});
    } else {
        std::cout << method << " " << name << ": ok\n";
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"tau-monitor-cli: query and control a running tau-monitor"};
    app.set_version_flag("--version", std::string("tau-monitor-cli ") + TAU_VERSION);
    app.require_subcommand(1);
    Options options;
    app.add_option("--format", options.format, "Output format")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
    app.add_option("--bus", options.bus,
                   "auto (the bus the daemon chose), system, session, private or a D-Bus address")
        ->capture_default_str();
    app.add_option("--timeout", options.timeout_seconds, "Seconds to wait for an answer")
        ->check(CLI::Range(0.1, 300.0))
        ->capture_default_str();

    std::function<int(Client&)> action;

    auto* health = app.add_subcommand("health", "Health score and its checks");
    bool detailed = false;
    health->add_flag("--detailed", detailed, "Show each check's value, weight and contribution");
    health->callback([&] { action = [&](Client& c) { return showHealth(c, detailed); }; });

    auto* resources = app.add_subcommand("resources", "CPU, memory, disk and network usage");
    bool cpu = false, memory = false, disk = false, network = false;
    resources->add_flag("--cpu", cpu, "CPU and load");
    resources->add_flag("--memory", memory, "Memory and swap");
    resources->add_flag("--disk", disk, "Disk usage per mount point");
    resources->add_flag("--network", network, "Network traffic per interface");
    bool all_metrics = false, thresholds = false, trends = false;
    std::string history_series;
    double history_since = 3600;
    unsigned history_step = 0;
    resources->add_flag("--metrics", all_metrics, "Every metric of the latest sample, by name and scope");
    resources->add_option(
        "--history", history_series,
        "Recorded values of one series: a metric, or metric@scope such as disk_used_percent@/var");
    resources
        ->add_option("--since", history_since, "With --history: from this many seconds ago (default 3600)")
        ->check(CLI::NonNegativeNumber);
    resources->add_option("--step", history_step,
                          "With --history: seconds per point (default: the finest kept; at most 86400)");
    resources->add_flag("--thresholds", thresholds, "Alarm level of every watched metric");
    resources->add_flag("--trends", trends,
                        "Linear trends of disk, memory and service memory, and when limits are reached");
    resources->callback([&] {
        action = [&](Client& c) {
            if (!history_series.empty())
                return showHistory(c, history_series, history_since, history_step);
            if (all_metrics)
                return showMetrics(c);
            if (thresholds)
                return showThresholds(c);
            if (trends)
                return showTrends(c);
            return showResources(c, cpu, memory, disk, network);
        };
    });

    auto* processes = app.add_subcommand("processes", "Supervised services");
    bool critical = false, tree = false;
    processes->add_flag("--critical", critical, "Only critical services");
    processes->add_flag("--tree", tree, "Each service's process tree");
    processes->callback([&] { action = [&](Client& c) { return showProcesses(c, critical, tree); }; });

    auto* recovery = app.add_subcommand(
        "recovery", "Crash history, failure summary, recovery policies and the state of critical services");
    bool history = false, session = false, summary = false;
    std::string explain_service, history_service, failure_class;
    std::optional<double> since_seconds_ago;
    unsigned history_count = 50, explain_failures = 0;
    auto* history_flag =
        recovery->add_flag("--history", history, "Recorded exits, newest first (the default)");
    auto* session_flag = recovery->add_flag("--session", session, "Recovery state of each critical service");
    auto* summary_flag =
        recovery->add_flag("--summary", summary, "Per service: failures, recoveries, success rate, MTTR");
    auto* explain_option = recovery->add_option(
        "--explain", explain_service, "What the recovery policy of this service does, failure after failure");
    history_flag->excludes(session_flag, summary_flag, explain_option);
    session_flag->excludes(summary_flag, explain_option);
    summary_flag->excludes(explain_option);
    auto* service_option = recovery->add_option("--service", history_service, "Only this service");
    auto* class_option =
        recovery->add_option("--class", failure_class, "Only this failure class")
            ->check(CLI::IsMember({"exit", "signal", "oom", "watchdog", "probe", "resource_limit", "start"}));
    auto* since_option =
        recovery->add_option("--since", since_seconds_ago, "Only exits this many seconds ago or later")
            ->check(CLI::NonNegativeNumber);
    auto* count_option =
        recovery->add_option("--count", history_count, "At most this many entries (0 for all)")
            ->capture_default_str();
    auto* failures_option = recovery
                                ->add_option("--failures", explain_failures,
                                             "With --explain: how many failures in a row (default 10)")
                                ->check(CLI::Range(0u, 1000u));
    failures_option->needs(explain_option);
    summary_flag->excludes(service_option, class_option, since_option, count_option);
    explain_option->excludes(service_option, since_option, count_option);
    session_flag->excludes(class_option, since_option, count_option);
    recovery->callback([&] {
        action = [&](Client& c) {
            if (session) {
                return showRecoverySession(c, history_service);
            }
            if (summary) {
                return showRecoverySummary(c);
            }
            if (explain_option->count() > 0) {
                return showRecoveryExplanation(c, explain_service, failure_class, explain_failures);
            }
            return showRecoveryHistory(c, history_service, failure_class, since_seconds_ago, history_count);
        };
    });

    auto* logs = app.add_subcommand("logs", "Recent log records and log statistics");
    bool stats = false, recent = false;
    unsigned count = 20;
    auto* stats_flag = logs->add_flag("--stats", stats, "Counters of the log service");
    logs->add_flag("--recent", recent, "The newest records (the default)")->excludes(stats_flag);
    logs->add_option("--count", count, "How many records")
        ->check(CLI::Range(1u, 10000u))
        ->capture_default_str();
    logs->callback([&] { action = [&](Client& c) { return showLogs(c, stats, count); }; });

    auto* config = app.add_subcommand("config", "The configuration the daemon runs with");
    bool cfg_monitoring = false, cfg_resources = false, cfg_recovery = false;
    config->add_flag("--monitoring", cfg_monitoring, "Resource monitoring and health checking");
    config->add_flag("--resources", cfg_resources, "Resource monitoring and process limits");
    config->add_flag("--recovery", cfg_recovery, "Crash recovery and per-service recovery");
    config->callback([&] {
        action = [&](Client& c) { return showConfig(c, cfg_monitoring, cfg_resources, cfg_recovery); };
    });

    std::string service_name;
    for (const auto& [command, method, help] :
         {std::tuple{"start", "Start", "Start a stopped or failed service"},
          std::tuple{"stop", "Stop", "Stop a service (SIGTERM, grace period, SIGKILL)"},
          std::tuple{"restart", "Restart", "Restart a service"}}) {
        auto* sub = app.add_subcommand(command, help);
        sub->add_option("name", service_name, "Service name")->required();
        const char* method_name = method;
        sub->callback([&, method_name] {
            action = [&, method_name](Client& c) { return control(c, method_name, service_name); };
        });
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    try {
        Client client(options);
        return action(client);
    } catch (const tau::bus::DaemonNotFound& e) {
        std::cerr << "tau-monitor-cli: " << e.what() << '\n';
        return kExitUnavailable;
    } catch (const std::invalid_argument& e) {
        std::cerr << "tau-monitor-cli: " << e.what() << '\n';
        return 64;
    } catch (const sdbus::Error& e) {
        std::cerr << "tau-monitor-cli: " << e.getName() << ": " << e.getMessage() << '\n';
        if (e.getName() == "org.freedesktop.DBus.Error.ServiceUnknown" ||
            e.getName() == "org.freedesktop.DBus.Error.NoReply" ||
            e.getName() == "org.freedesktop.DBus.Error.Timeout") {
            return kExitUnavailable;
        }
        return e.getName() == "org.tauos.Error.PermissionDenied" ? kExitNoPermission : 1;
    } catch (const std::exception& e) {
        std::cerr << "tau-monitor-cli: " << e.what() << '\n';
        return 1;
    }
}
