#include "tau/config.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <system_error>
#include <toml++/toml.h>
#include <unistd.h>
#include <utility>

namespace tau {

std::string_view toString(Priority priority) {
    switch (priority) {
    case Priority::Critical:
        return "critical";
    case Priority::High:
        return "high";
    case Priority::Normal:
        return "normal";
    case Priority::Low:
        return "low";
    case Priority::Background:
        return "background";
    }
    return "normal";
}

std::optional<Priority> priorityFromString(std::string_view text) {
    for (Priority candidate :
         {Priority::Critical, Priority::High, Priority::Normal, Priority::Low, Priority::Background}) {
        if (toString(candidate) == text)
            return candidate;
    }
    return std::nullopt;
}

std::string_view toString(RecoveryStrategy strategy) {
    switch (strategy) {
    case RecoveryStrategy::None:
        return "none";
    case RecoveryStrategy::Restart:
        return "restart";
    case RecoveryStrategy::RestartWithDelay:
        return "restart_with_delay";
    case RecoveryStrategy::RestartWithBackoff:
        return "restart_with_backoff";
    case RecoveryStrategy::SafeMode:
        return "safe_mode";
    case RecoveryStrategy::NotifyAdmin:
        return "notify_admin";
    }
    return "restart";
}

std::optional<RecoveryStrategy> recoveryStrategyFromString(std::string_view text) {
    for (RecoveryStrategy candidate :
         {RecoveryStrategy::None, RecoveryStrategy::Restart, RecoveryStrategy::RestartWithDelay,
          RecoveryStrategy::RestartWithBackoff, RecoveryStrategy::SafeMode, RecoveryStrategy::NotifyAdmin}) {
        if (toString(candidate) == text)
            return candidate;
    }
    return std::nullopt;
}

std::string_view toString(FailureClass failure_class) {
    switch (failure_class) {
    case FailureClass::Exit:
        return "exit";
    case FailureClass::Signal:
        return "signal";
    case FailureClass::Oom:
        return "oom";
    case FailureClass::Watchdog:
        return "watchdog";
    case FailureClass::Probe:
        return "probe";
    case FailureClass::ResourceLimit:
        return "resource_limit";
    case FailureClass::Start:
        return "start";
    }
    return "exit";
}

std::optional<FailureClass> failureClassFromString(std::string_view text) {
    for (FailureClass candidate :
         {FailureClass::Exit, FailureClass::Signal, FailureClass::Oom, FailureClass::Watchdog,
          FailureClass::Probe, FailureClass::ResourceLimit, FailureClass::Start}) {
        if (toString(candidate) == text)
            return candidate;
    }
    return std::nullopt;
}

std::string_view toString(ServiceType type) {
    switch (type) {
    case ServiceType::Simple:
        return "simple";
    case ServiceType::Notify:
        return "notify";
    }
    return "simple";
}

std::string_view toString(ProbeType type) {
    switch (type) {
    case ProbeType::Exec:
        return "exec";
    case ProbeType::Tcp:
        return "tcp";
    case ProbeType::Http:
        return "http";
    case ProbeType::Dbus:
        return "dbus";
    }
    return "exec";
}

const ServiceConfig* Config::findService(std::string_view name) const {
    auto found = std::find_if(services.begin(), services.end(),
                              [&](const ServiceConfig& service) { return service.name == name; });
    return found == services.end() ? nullptr : &*found;
}

bool Config::isCritical(std::string_view serviceName) const {
    const auto& named = crash_recovery.critical_processes;
    if (std::find(named.begin(), named.end(), serviceName) != named.end())
        return true;
    const ServiceConfig* service = findService(serviceName);
    return service != nullptr && service->critical;
}

namespace {

std::string formatConfigError(const std::string& file, unsigned line, unsigned column, const std::string& key,
                              const std::string& problem) {
    std::string message = file;
    if (line != 0) {
        message += ':' + std::to_string(line);
        if (column != 0)
            message += ':' + std::to_string(column);
    }
    message += ": ";
    if (!key.empty())
        message += key + ": ";
    message += problem;
    return message;
}

} // namespace

ConfigError::ConfigError(std::string file, unsigned line, unsigned column, std::string key,
                         std::string problem)
    : std::runtime_error(formatConfigError(file, line, column, key, problem)), file_(std::move(file)),
      line_(line), column_(column), key_(std::move(key)), problem_(std::move(problem)) {}

namespace {

constexpr std::string_view kConfigDirVariable = "${config_dir}";
constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warning", "error", "critical"};
constexpr std::string_view kSystemHealthChecks[] = {"cpu_usage",  "memory_usage",        "disk_usage",
                                                    "swap_usage", "load_average",        "temperature",
                                                    "pressure",   "network_connectivity"};
constexpr std::size_t kMaxServiceNameLength = 64;
// The same limit in bytes must still fit in 64 bits.
constexpr std::uint64_t kMaxMemoryLimitMb = std::numeric_limits<std::uint64_t>::max() / (1024 * 1024);
// Durations become chrono milliseconds and nanoseconds downstream; a year is far beyond any sensible
// timeout and still converts without overflow.
constexpr double kMaxDurationSeconds = 365.0 * 24 * 60 * 60;
// Session state travels over D-Bus as one byte array, and the D-Bus specification caps an array at 64 MiB.
constexpr std::uint64_t kMaxStateBytes = 64 * 1024 * 1024;
// Every kept version is read back and checksummed when the versions are listed; a hundred is plenty of
// history for resuming and keeps that bounded.
constexpr unsigned kMaxStateVersionsKept = 100;
constexpr unsigned kMaxStatePoisonCrashes = 100;

// The resource limits setrlimit(2) knows, by the name of their RLIMIT_ constant in lower case.
constexpr std::string_view kResourceLimitNames[] = {"as",    "core",    "cpu",      "data",       "fsize",
                                                    "locks", "memlock", "msgqueue", "nice",       "nofile",
                                                    "nproc", "rss",     "rtprio",   "sigpending", "stack"};
constexpr std::string_view kRecoveryStrategies =
    "none, restart, restart_with_delay, restart_with_backoff, safe_mode, notify_admin";
constexpr std::string_view kFailureClasses = "exit, signal, oom, watchdog, probe, resource_limit, start";
constexpr unsigned kMaxUmask = 0777;
constexpr int kMaxExitCode = 255;

// The D-Bus specification's limit on the length of a bus name.
constexpr std::size_t kMaxBusNameLength = 255;
// Each key a probe may have and the probe types it belongs to; "type" and the timing keys belong to all.
struct ProbeKey {
    std::string_view name;
    std::vector<ProbeType> types;
};
const std::vector<ProbeKey> kProbeTypeKeys = {
    {"command", {ProbeType::Exec}},
    {"host", {ProbeType::Tcp, ProbeType::Http}},
    {"port", {ProbeType::Tcp, ProbeType::Http}},
    {"path", {ProbeType::Http}},
    {"host_header", {ProbeType::Http}},
    {"name", {ProbeType::Dbus}},
};

std::optional<ProbeType> probeTypeFromString(std::string_view text) {
    for (ProbeType candidate : {ProbeType::Exec, ProbeType::Tcp, ProbeType::Http, ProbeType::Dbus}) {
        if (toString(candidate) == text)
            return candidate;
    }
    return std::nullopt;
}

// Probes connect from the event loop, which must never wait for a name lookup, so only literal addresses
// and "localhost" are accepted.
bool isLiteralHost(const std::string& host) {
    if (host == "localhost")
        return true;
    unsigned char address[sizeof(in6_addr)];
    return ::inet_pton(AF_INET, host.c_str(), address) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// A well-known bus name as the D-Bus specification defines it: two or more dot-separated elements of
// [A-Za-z0-9_-], none empty or starting with a digit.
bool isValidWellKnownBusName(std::string_view name) {
    if (name.empty() || name.size() > kMaxBusNameLength)
        return false;
    std::size_t elements = 0;
    std::size_t start = 0;
    while (true) {
        std::size_t end = name.find('.', start);
        std::string_view element = name.substr(start, end == std::string_view::npos ? end : end - start);
        if (element.empty() || (element.front() >= '0' && element.front() <= '9'))
            return false;
        bool allowed = std::all_of(element.begin(), element.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                   c == '-';
        });
        if (!allowed)
            return false;
        ++elements;
        if (end == std::string_view::npos)
            break;
        start = end + 1;
    }
    return elements >= 2;
}

// Text that goes into an HTTP request line or header: a control character or a space would let the value
// end the line early and smuggle in a header of its own.
bool hasControlOrSpace(std::string_view text) {
    return std::any_of(text.begin(), text.end(),
                       [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == '\x7f'; });
}

std::optional<ServiceType> serviceTypeFromString(std::string_view text) {
    for (ServiceType candidate : {ServiceType::Simple, ServiceType::Notify}) {
        if (toString(candidate) == text)
            return candidate;
    }
    return std::nullopt;
}

// Signals are named as in signal(7), "SIGTERM"; the kernel's numbers differ between architectures, so
// the name is looked up rather than hard-coded.
std::optional<int> signalFromName(std::string_view name) {
    constexpr std::string_view prefix = "SIG";
    if (name.substr(0, prefix.size()) != prefix)
        return std::nullopt;
    std::string_view abbreviation = name.substr(prefix.size());
    for (int signal = 1; signal < NSIG; ++signal) {
        const char* known = sigabbrev_np(signal);
        if (known != nullptr && abbreviation == known)
            return signal;
    }
    return std::nullopt;
}

template <std::size_t N> bool contains(const std::string_view (&choices)[N], std::string_view text) {
    return std::find(std::begin(choices), std::end(choices), text) != std::end(choices);
}

template <typename Range> std::string joinChoices(const Range& choices) {
    std::string joined;
    for (std::string_view choice : choices) {
        if (!joined.empty())
            joined += ", ";
        joined += choice;
    }
    return joined;
}

std::string inQuotes(std::string_view text) {
    std::string result = "\"";
    result += text;
    result += '"';
    return result;
}

std::string formatNumber(double value) {
    std::ostringstream out;
    out << std::setprecision(15) << value;
    return out.str();
}

std::string describeType(toml::node_type type) {
    switch (type) {
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a floating-point number";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::none:
        break;
    }
    return "nothing";
}

bool isValidServiceName(std::string_view name) {
    if (name.empty() || name.size() > kMaxServiceNameLength)
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-';
    });
}

std::string childKey(const std::string& parent, std::string_view name) {
    if (parent.empty())
        return std::string(name);
    return parent + '.' + std::string(name);
}

std::string elementKey(const std::string& parent, std::size_t index) {
    return parent + '[' + std::to_string(index) + ']';
}

std::filesystem::path absoluteConfigDir(const std::filesystem::path& sourcePath) {
    std::error_code error;
    std::filesystem::path absolute = sourcePath.empty() ? std::filesystem::current_path(error)
                                                        : std::filesystem::absolute(sourcePath, error);
    if (error)
        return sourcePath.parent_path();
    if (sourcePath.empty())
        return absolute.lexically_normal();
    return absolute.lexically_normal().parent_path();
}

unsigned configuredCpuCount() {
    long count = sysconf(_SC_NPROCESSORS_CONF);
    return count > 0 ? static_cast<unsigned>(count) : 1U;
}

// Reads one document into a Config. Every reader either stores a valid value or throws ConfigError
// pointing at the node responsible, so callers never see a half-checked value.
class ConfigParser {
  public:
    explicit ConfigParser(const std::filesystem::path& sourcePath)
        : file_(sourcePath.empty() ? std::string("<config>") : sourcePath.string()),
          configDir_(absoluteConfigDir(sourcePath).string()) {
        config_.source = sourcePath;
    }

    Config parse(std::string_view text) {
        toml::table root;
        try {
            root = toml::parse(text, std::string_view(file_));
        } catch (const toml::parse_error& error) {
            throw ConfigError(file_, error.source().begin.line, error.source().begin.column, "",
                              std::string(error.description()));
        }

        for (auto&& [key, node] : root) {
            std::string name(key.str());
            if (name == "service")
                continue;
            if (!isKnownSection(name))
                failAtKey(key, node, name, "unknown key");
        }

        readSection(root, "resource_monitoring", resourceMonitoringFields());
        readSection(root, "process_management", processManagementFields());
        readSection(root, "crash_recovery", crashRecoveryFields());
        readSection(root, "health_checking", healthCheckingFields());
        readSection(root, "logging", loggingFields());
        readSection(root, "security", securityFields());
        if (const toml::node* services = root.get("service"))
            readServices(*services);

        // Services may be declared after the sections that refer to them, so names are checked last.
        checkServiceReferences(root, "crash_recovery", "critical_processes");
        checkServiceReferences(root, "health_checking", "service_health_checks");
        checkDependencies(root);
        return std::move(config_);
    }

  private:
    using FieldReader = std::function<void(const toml::node& value, const std::string& key)>;
    struct Field {
        std::string_view name;
        FieldReader read;
    };

    static bool isKnownSection(std::string_view name) {
        static constexpr std::string_view sections[] = {"resource_monitoring",
                                                        "process_management",
                                                        "crash_recovery",
                                                        "health_checking",
                                                        "logging",
                                                        "security"};
        return contains(sections, name);
    }

    [[noreturn]] void fail(const toml::source_region& where, const std::string& key,
                           std::string problem) const {
        throw ConfigError(file_, where.begin.line, where.begin.column, key, std::move(problem));
    }

    [[noreturn]] void fail(const toml::node& node, const std::string& key, std::string problem) const {
        fail(node.source(), key, std::move(problem));
    }

    // The key itself is what is wrong here, so point at it when toml++ recorded where it is.
    [[noreturn]] void failAtKey(const toml::key& key, const toml::node& value, const std::string& dottedKey,
                                std::string problem) const {
        if (key.source().begin.line != 0)
            fail(key.source(), dottedKey, std::move(problem));
        fail(value, dottedKey, std::move(problem));
    }

    [[noreturn]] void failType(const toml::node& node, const std::string& key,
                               std::string_view expected) const {
        fail(node, key, "expected " + std::string(expected) + ", found " + describeType(node.type()));
    }

    void readFields(const toml::table& table, const std::string& prefix,
                    const std::vector<Field>& fields) const {
        for (auto&& [key, node] : table) {
            std::string dottedKey = childKey(prefix, key.str());
            auto field = std::find_if(fields.begin(), fields.end(),
                                      [&](const Field& candidate) { return candidate.name == key.str(); });
            if (field == fields.end())
                failAtKey(key, node, dottedKey, "unknown key");
            field->read(node, dottedKey);
        }
    }

    void readSection(const toml::table& root, std::string_view name, const std::vector<Field>& fields) const {
        const toml::node* section = root.get(name);
        if (section == nullptr)
            return;
        std::string key(name);
        readFields(requireTable(*section, key), key, fields);
    }

    const toml::table& requireTable(const toml::node& node, const std::string& key) const {
        if (const toml::table* table = node.as_table())
            return *table;
        failType(node, key, "a table");
    }

    const toml::array& requireArray(const toml::node& node, const std::string& key) const {
        if (const toml::array* array = node.as_array())
            return *array;
        failType(node, key, "an array");
    }

    bool readBool(const toml::node& node, const std::string& key) const {
        if (const auto* value = node.as_boolean())
            return value->get();
        failType(node, key, "a boolean");
    }

    std::uint64_t readNonNegative(const toml::node& node, const std::string& key, std::uint64_t minimum,
                                  std::uint64_t maximum) const {
        const auto* value = node.as_integer();
        if (value == nullptr)
            failType(node, key, "an integer");
        std::int64_t number = value->get();
        if (number < 0)
            fail(node, key, "must not be negative, got " + std::to_string(number));
        auto unsignedNumber = static_cast<std::uint64_t>(number);
        if (unsignedNumber > maximum) {
            fail(node, key,
                 std::to_string(number) + " is too large (at most " + std::to_string(maximum) + ")");
        }
        if (unsignedNumber < minimum) {
            fail(node, key,
                 "must be at least " + std::to_string(minimum) + ", got " + std::to_string(number));
        }
        return unsignedNumber;
    }

    unsigned readUnsigned(const toml::node& node, const std::string& key, unsigned minimum = 0,
                          unsigned maximum = std::numeric_limits<unsigned>::max()) const {
        return static_cast<unsigned>(readNonNegative(node, key, minimum, maximum));
    }

    // Integers are accepted wherever a fractional number is, since `80` reads as naturally as `80.0`.
    double readNumber(const toml::node& node, const std::string& key,
                      const std::function<bool(double)>& inRange, std::string_view rangeDescription) const {
        double number = 0;
        if (const auto* floating = node.as_floating_point()) {
            number = floating->get();
        } else if (const auto* integer = node.as_integer()) {
            number = static_cast<double>(integer->get());
        } else {
            failType(node, key, "a number");
        }
        if (!std::isfinite(number))
            fail(node, key, "must be a finite number");
        if (!inRange(number)) {
            fail(node, key, std::string(rangeDescription) + ", got " + formatNumber(number));
        }
        return number;
    }

    double readPercentThreshold(const toml::node& node, const std::string& key) const {
        return readNumber(
            node, key, [](double value) { return value > 0 && value <= 100; },
            "must be greater than 0 and at most 100");
    }

    double readPositive(const toml::node& node, const std::string& key) const {
        return readNumber(
            node, key, [](double value) { return value > 0; }, "must be greater than 0");
    }

    double readDuration(const toml::node& node, const std::string& key, bool allowZero) const {
        std::string limit = " and at most " + formatNumber(kMaxDurationSeconds) + " (one year)";
        if (allowZero) {
            return readNumber(
                node, key, [](double seconds) { return seconds >= 0 && seconds <= kMaxDurationSeconds; },
                "must be at least 0" + limit);
        }
        return readNumber(
            node, key, [](double seconds) { return seconds > 0 && seconds <= kMaxDurationSeconds; },
            "must be greater than 0" + limit);
    }

    std::string readString(const toml::node& node, const std::string& key) const {
        const auto* value = node.as_string();
        if (value == nullptr)
            failType(node, key, "a string");
        // An embedded NUL would silently truncate the value once it reaches a C interface.
        if (value->get().find('\0') != std::string::npos)
            fail(node, key, "must not contain NUL characters");
        return value->get();
    }

    std::string readExpandedString(const toml::node& node, const std::string& key) const {
        std::string text = readString(node, key);
        std::string expanded;
        std::size_t position = 0;
        while (true) {
            std::size_t found = text.find(kConfigDirVariable, position);
            if (found == std::string::npos)
                break;
            expanded.append(text, position, found - position);
            expanded += configDir_;
            position = found + kConfigDirVariable.size();
        }
        expanded.append(text, position, std::string::npos);
        return expanded;
    }

    std::vector<std::string> readStringArray(const toml::node& node, const std::string& key) const {
        std::vector<std::string> strings;
        const toml::array& array = requireArray(node, key);
        for (std::size_t index = 0; index < array.size(); ++index) {
            strings.push_back(readString(*array.get(index), elementKey(key, index)));
        }
        return strings;
    }

    std::vector<Field> resourceMonitoringFields() {
        ResourceMonitoringConfig* section = &config_.resource_monitoring;
        return {
            {"enabled", [this, section](auto& node, auto& key) { section->enabled = readBool(node, key); }},
            {"interval_seconds",
             [this, section](auto& node, auto& key) {
                 section->interval_seconds = readUnsigned(node, key, 1);
             }},
            {"cpu_threshold_percent",
             [this, section](auto& node, auto& key) {
                 section->cpu_threshold_percent = readPercentThreshold(node, key);
             }},
            {"memory_threshold_percent",
             [this, section](auto& node, auto& key) {
                 section->memory_threshold_percent = readPercentThreshold(node, key);
             }},
            {"disk_threshold_percent",
             [this, section](auto& node, auto& key) {
                 section->disk_threshold_percent = readPercentThreshold(node, key);
             }},
            {"network_monitoring",
             [this, section](auto& node, auto& key) { section->network_monitoring = readBool(node, key); }},
            {"temperature_monitoring",
             [this, section](auto& node, auto& key) {
                 section->temperature_monitoring = readBool(node, key);
             }},
            {"alert_on_threshold",
             [this, section](auto& node, auto& key) { section->alert_on_threshold = readBool(node, key); }},
            {"log_resource_usage",
             [this, section](auto& node, auto& key) { section->log_resource_usage = readBool(node, key); }},
            {"prometheus_listen",
             [this, section](auto& node, auto& key) {
                 section->prometheus_listen = readListenAddress(node, key);
             }},
            {"thresholds",
             [this, section](auto& node, auto& key) { section->thresholds = readThresholds(node, key); }},
        };
    }

    std::map<std::string, ThresholdSpec> readThresholds(const toml::node& node,
                                                        const std::string& key) const {
        std::map<std::string, ThresholdSpec> specs;
        for (auto&& [name, value] : requireTable(node, key)) {
            std::string metricKey = childKey(key, name.str());
            if (!contains(kThresholdMetrics, name.str()))
                failAtKey(name, value, metricKey,
                          "unknown metric (expected one of " + joinChoices(kThresholdMetrics) + ")");
            specs.emplace(std::string(name.str()),
                          readThresholdSpec(requireTable(value, metricKey), metricKey));
        }
        return specs;
    }

    ThresholdSpec readThresholdSpec(const toml::table& table, const std::string& key) const {
        ThresholdSpec spec;
        readFields(
            table, key,
            {{"warning", [&, this](auto& node, auto& bandKey) { spec.warning = readBand(node, bandKey); }},
             {"critical", [&, this](auto& node, auto& bandKey) { spec.critical = readBand(node, bandKey); }},
             {"adaptive", [&, this](auto& node, auto& adaptiveKey) {
                  if (node.is_boolean()) {
                      if (readBool(node, adaptiveKey))
                          spec.adaptive = AdaptiveThreshold{};
                      return;
                  }
                  spec.adaptive = readAdaptive(requireTable(node, adaptiveKey), adaptiveKey);
              }}});
        if (!spec.warning && !spec.critical && !spec.adaptive)
            fail(table, key, "needs a warning, critical or adaptive level");
        if (spec.warning && spec.critical && spec.critical->enter < spec.warning->enter) {
            fail(*table.get("critical"), key + ".critical.enter",
                 "must be at least warning.enter (" + formatNumber(spec.warning->enter) + "), got " +
                     formatNumber(spec.critical->enter));
        }
        return spec;
    }

    // `exit` defaults to 5 % below `enter`, a gap that suits percentages, bytes and degrees alike.
    ThresholdBand readBand(const toml::node& node, const std::string& key) const {
        const toml::table& table = requireTable(node, key);
        auto anyNumber = [](double) { return true; };
        ThresholdBand band;
        std::optional<double> exit;
        readFields(
            table, key,
            {{"enter",
              [&, this](auto& value, auto& valueKey) {
                  band.enter = readNumber(value, valueKey, anyNumber, "");
              }},
             {"exit",
              [&, this](auto& value, auto& valueKey) { exit = readNumber(value, valueKey, anyNumber, ""); }},
             {"enter_samples",
              [&, this](auto& value, auto& valueKey) {
                  band.enter_samples = readUnsigned(value, valueKey, 1);
              }},
             {"exit_samples", [&, this](auto& value, auto& valueKey) {
                  band.exit_samples = readUnsigned(value, valueKey, 1);
              }}});
        if (!table.contains("enter"))
            fail(table, key + ".enter", "missing required key");
        band.exit = exit.value_or(band.enter - std::fabs(band.enter) * 0.05);
        if (band.exit > band.enter) {
            fail(*table.get("exit"), key + ".exit",
                 "must be at most enter (" + formatNumber(band.enter) + "), got " + formatNumber(band.exit));
        }
        return band;
    }

    AdaptiveThreshold readAdaptive(const toml::table& table, const std::string& key) const {
        AdaptiveThreshold adaptive;
        auto positive = [](double value) { return value > 0; };
        readFields(table, key,
                   {{"window_samples",
                     [&, this](auto& node, auto& valueKey) {
                         adaptive.window_samples = readUnsigned(node, valueKey, 2, 100000);
                     }},
                    {"min_samples",
                     [&, this](auto& node, auto& valueKey) {
                         adaptive.min_samples = readUnsigned(node, valueKey, 2);
                     }},
                    {"k",
                     [&, this](auto& node, auto& valueKey) {
                         adaptive.k = readNumber(node, valueKey, positive, "must be greater than 0");
                     }},
                    {"exit_k", [&, this](auto& node, auto& valueKey) {
                         adaptive.exit_k = readNumber(
                             node, valueKey, [](double value) { return value >= 0; }, "must be at least 0");
                     }}});
        if (adaptive.min_samples > adaptive.window_samples) {
            fail(*table.get("min_samples"), key + ".min_samples",
                 "must be at most window_samples (" + std::to_string(adaptive.window_samples) + "), got " +
                     std::to_string(adaptive.min_samples));
        }
        if (!table.contains("exit_k"))
            adaptive.exit_k = std::min(adaptive.exit_k, adaptive.k * 0.75);
        if (adaptive.exit_k >= adaptive.k) {
            fail(*table.get("exit_k"), key + ".exit_k",
                 "must be below k (" + formatNumber(adaptive.k) + "), got " + formatNumber(adaptive.exit_k));
        }
        return adaptive;
    }

    std::vector<Field> processManagementFields() {
        ProcessManagementConfig* section = &config_.process_management;
        return {
            {"enabled", [this, section](auto& node, auto& key) { section->enabled = readBool(node, key); }},
            {"max_concurrent_processes",
             [this, section](auto& node, auto& key) {
                 section->max_concurrent_processes = readUnsigned(node, key, 1);
             }},
            {"process_priority_levels",
             [this, section](auto& node, auto& key) {
                 section->process_priority_levels = readUnsigned(node, key, 1, 5);
             }},
            {"memory_limit_mb",
             [this, section](auto& node, auto& key) {
                 section->memory_limit_mb = readNonNegative(node, key, 1, kMaxMemoryLimitMb);
             }},
            {"cpu_limit_percent",
             [this, section](auto& node, auto& key) {
                 section->cpu_limit_percent = readPositive(node, key);
             }},
            {"limit_check_interval_seconds",
             [this, section](auto& node, auto& key) {
                 section->limit_check_interval_seconds = readDuration(node, key, false);
             }},
            {"limit_violation_samples",
             [this, section](auto& node, auto& key) {
                 section->limit_violation_samples = readUnsigned(node, key, 1, 1000);
             }},
            {"auto_cleanup_zombies",
             [this, section](auto& node, auto& key) { section->auto_cleanup_zombies = readBool(node, key); }},
            {"process_isolation",
             [this, section](auto& node, auto& key) { section->process_isolation = readBool(node, key); }},
            {"resource_pooling",
             [this, section](auto& node, auto& key) { section->resource_pooling = readBool(node, key); }},
        };
    }

    std::vector<Field> crashRecoveryFields() {
        CrashRecoveryConfig* section = &config_.crash_recovery;
        return {
            {"enabled", [this, section](auto& node, auto& key) { section->enabled = readBool(node, key); }},
            {"auto_recovery",
             [this, section](auto& node, auto& key) { section->auto_recovery = readBool(node, key); }},
            {"max_recovery_attempts",
             [this, section](auto& node, auto& key) {
                 section->max_recovery_attempts = readUnsigned(node, key);
             }},
            {"recovery_timeout_seconds",
             [this, section](auto& node, auto& key) {
                 section->recovery_timeout_seconds = readUnsigned(node, key, 1);
             }},
            {"save_session_state",
             [this, section](auto& node, auto& key) { section->save_session_state = readBool(node, key); }},
            {"session_state_path",
             [this, section](auto& node, auto& key) {
                 section->session_state_path = readExpandedString(node, key);
             }},
            {"critical_processes",
             [this, section](auto& node, auto& key) {
                 section->critical_processes = readStringArray(node, key);
             }},
            {"restart_budget_burst",
             [this, section](auto& node, auto& key) {
                 section->restart_budget_burst = readUnsigned(node, key, 1);
             }},
            {"restart_budget_interval_seconds",
             [this, section](auto& node, auto& key) {
                 section->restart_budget_interval_seconds = readDuration(node, key, false);
             }},
            {"notify_command",
             [this, section](auto& node, auto& key) {
                 // An empty command is the documented way to say "no notification".
                 if (const toml::array* array = node.as_array(); array != nullptr && array->empty()) {
                     section->notify_command.clear();
                     return;
                 }
                 section->notify_command = readExec(node, key);
             }},
            {"system_safe_mode",
             [this, section](auto& node, auto& key) { section->system_safe_mode = readBool(node, key); }},
            {"state_versions_kept",
             [this, section](auto& node, auto& key) {
                 section->state_versions_kept = readUnsigned(node, key, 1, kMaxStateVersionsKept);
             }},
            {"state_max_bytes",
             [this, section](auto& node, auto& key) {
                 section->state_max_bytes = readNonNegative(node, key, 1, kMaxStateBytes);
             }},
            {"state_poison_crashes",
             [this, section](auto& node, auto& key) {
                 section->state_poison_crashes = readUnsigned(node, key, 1, kMaxStatePoisonCrashes);
             }},
        };
    }

    std::vector<Field> healthCheckingFields() {
        HealthCheckingConfig* section = &config_.health_checking;
        return {
            {"enabled", [this, section](auto& node, auto& key) { section->enabled = readBool(node, key); }},
            {"check_interval_seconds",
             [this, section](auto& node, auto& key) {
                 section->check_interval_seconds = readUnsigned(node, key, 1);
             }},
            {"system_health_checks",
             [this, section](auto& node, auto& key) {
                 section->system_health_checks = readSystemHealthChecks(node, key);
             }},
            {"service_health_checks",
             [this, section](auto& node, auto& key) {
                 section->service_health_checks = readStringArray(node, key);
             }},
            {"alert_on_failure",
             [this, section](auto& node, auto& key) { section->alert_on_failure = readBool(node, key); }},
            {"auto_restart_failed_services",
             [this, section](auto& node, auto& key) {
                 section->auto_restart_failed_services = readBool(node, key);
             }},
            {"health_score_threshold",
             [this, section](auto& node, auto& key) {
                 section->health_score_threshold = readNumber(
                     node, key, [](double value) { return value >= 0 && value <= 1; },
                     "must be between 0 and 1");
             }},
            {"network_endpoints",
             [this, section](auto& node, auto& key) {
                 section->network_endpoints = readEndpoints(node, key);
             }},
            {"restart_window_seconds",
             [this, section](auto& node, auto& key) {
                 section->restart_window_seconds = readDuration(node, key, false);
             }},
            {"restart_warning_count",
             [this, section](auto& node, auto& key) {
                 section->restart_warning_count = readUnsigned(node, key, 1);
             }},
            {"status_debounce_seconds",
             [this, section](auto& node, auto& key) {
                 section->status_debounce_seconds = readDuration(node, key, true);
             }},
        };
    }

    // "host:port" with a numeric IPv4 address, a bracketed IPv6 address or "localhost": a name that needs DNS
    // would have to be resolved, and a resolver may block.
    std::vector<std::string> readEndpoints(const toml::node& node, const std::string& key) const {
        std::vector<std::string> endpoints = readStringArray(node, key);
        const toml::array& array = *node.as_array();
        for (std::size_t index = 0; index < endpoints.size(); ++index) {
            if (!parseEndpoint(endpoints[index])) {
                fail(*array.get(index), elementKey(key, index),
                     "expected host:port with a numeric address or localhost, e.g. \"192.0.2.1:53\" or "
                     "\"[2001:db8::1]:443\", got " +
                         inQuotes(endpoints[index]));
            }
        }
        return endpoints;
    }

    std::string readListenAddress(const toml::node& node, const std::string& key) const {
        std::string text = readString(node, key);
        if (!text.empty()) {
            try {
                parseListenAddress(text);
            } catch (const std::invalid_argument& e) {
                fail(node, key, e.what());
            }
        }
        return text;
    }

    std::vector<std::string> readSystemHealthChecks(const toml::node& node, const std::string& key) const {
        std::vector<std::string> checks = readStringArray(node, key);
        const toml::array& array = *node.as_array();
        for (std::size_t index = 0; index < checks.size(); ++index) {
            if (!contains(kSystemHealthChecks, checks[index])) {
                fail(*array.get(index), elementKey(key, index),
                     "unknown system health check " + inQuotes(checks[index]) + " (expected one of " +
                         joinChoices(kSystemHealthChecks) + ")");
            }
        }
        return checks;
    }

    std::vector<Field> loggingFields() {
        LoggingConfig* section = &config_.logging;
        return {
            {"log_level",
             [this, section](auto& node, auto& key) {
                 std::string level = readString(node, key);
                 if (!contains(kLogLevels, level)) {
                     fail(node, key,
                          "unknown log level " + inQuotes(level) + " (expected one of " +
                              joinChoices(kLogLevels) + ")");
                 }
                 section->log_level = level;
             }},
            {"log_file_path",
             [this, section](auto& node, auto& key) {
                 section->log_file_path = readExpandedString(node, key);
             }},
            {"max_log_size_mb",
             [this, section](auto& node, auto& key) {
                 section->max_log_size_mb = readUnsigned(node, key, 1);
             }},
            {"log_rotation",
             [this, section](auto& node, auto& key) { section->log_rotation = readBool(node, key); }},
            {"structured_logging",
             [this, section](auto& node, auto& key) { section->structured_logging = readBool(node, key); }},
            {"log_compression",
             [this, section](auto& node, auto& key) { section->log_compression = readBool(node, key); }},
            {"audit_logging",
             [this, section](auto& node, auto& key) { section->audit_logging = readBool(node, key); }},
            {"performance_logging",
             [this, section](auto& node, auto& key) { section->performance_logging = readBool(node, key); }},
        };
    }

    std::vector<Field> securityFields() {
        SecurityConfig* section = &config_.security;
        return {
            {"admin_groups",
             [this, section](auto& node, auto& key) {
                 section->admin_groups = readStringArray(node, key);
                 const toml::array& array = *node.as_array();
                 for (std::size_t index = 0; index < section->admin_groups.size(); ++index) {
                     if (section->admin_groups[index].empty()) {
                         fail(*array.get(index), elementKey(key, index), "must not be empty");
                     }
                 }
             }},
        };
    }

    void readServices(const toml::node& node) {
        const toml::array* services = node.as_array();
        if (services == nullptr)
            failType(node, "service", "an array of tables ([[service]])");
        for (std::size_t index = 0; index < services->size(); ++index) {
            const toml::node& element = *services->get(index);
            std::string key = elementKey("service", index);
            ServiceConfig service = readService(requireTable(element, key), key);
            if (const ServiceConfig* earlier = config_.findService(service.name)) {
                const toml::node& nameNode = *element.as_table()->get("name");
                fail(nameNode, key + ".name",
                     "duplicate service name " + inQuotes(service.name) + " (already used by service[" +
                         std::to_string(earlier - config_.services.data()) + "])");
            }
            config_.services.push_back(std::move(service));
        }
    }

    ServiceConfig readService(const toml::table& table, const std::string& prefix) {
        ServiceConfig service;
        // Without a recovery table the service gets the short form's defaults.
        service.recovery.ladder = {shortFormStep(LadderStep{}, std::nullopt)};
        std::optional<NodeAndKey> safeModeStep;
        readFields(
            table, prefix,
            {
                {"name", [&](auto& node, auto& key) { service.name = readServiceName(node, key); }},
                {"exec", [&](auto& node, auto& key) { service.exec = readExec(node, key); }},
                {"environment",
                 [&](auto& node, auto& key) { service.environment = readEnvironment(node, key); }},
                {"working_directory",
                 [&](auto& node, auto& key) {
                     std::filesystem::path directory = readExpandedString(node, key);
                     if (!directory.is_absolute()) {
                         fail(node, key, "must be an absolute path, got " + inQuotes(directory.string()));
                     }
                     service.working_directory = directory;
                 }},
                {"user", [&](auto& node, auto& key) { service.user = readString(node, key); }},
                {"group", [&](auto& node, auto& key) { service.group = readString(node, key); }},
                {"critical", [&](auto& node, auto& key) { service.critical = readBool(node, key); }},
                {"state_handoff",
                 [&](auto& node, auto& key) { service.state_handoff = readBool(node, key); }},
                {"priority",
                 [&](auto& node, auto& key) {
                     std::string text = readString(node, key);
                     std::optional<Priority> priority = priorityFromString(text);
                     if (!priority) {
                         fail(node, key,
                              "unknown priority " + inQuotes(text) +
                                  " (expected one of critical, high, normal, low, background)");
                     }
                     service.priority = *priority;
                 }},
                {"cpu_affinity",
                 [&](auto& node, auto& key) { service.cpu_affinity = readCpuAffinity(node, key); }},
                {"memory_limit_mb",
                 [&](auto& node, auto& key) {
                     service.memory_limit_mb = readNonNegative(node, key, 1, kMaxMemoryLimitMb);
                 }},
                {"cpu_limit_percent",
                 [&](auto& node, auto& key) { service.cpu_limit_percent = readPositive(node, key); }},
                {"stop_timeout_seconds",
                 [&](auto& node, auto& key) {
                     service.stop_timeout_seconds = readDuration(node, key, false);
                 }},
                {"stop_signal", [&](auto& node, auto& key) { service.stop_signal = readSignal(node, key); }},
                {"umask", [&](auto& node, auto& key) { service.umask = readUmask(node, key); }},
                {"type",
                 [&](auto& node, auto& key) {
                     std::string text = readString(node, key);
                     std::optional<ServiceType> type = serviceTypeFromString(text);
                     if (!type) {
                         fail(node, key,
                              "unknown service type " + inQuotes(text) + " (expected simple or notify)");
                     }
                     service.type = *type;
                 }},
                {"start_timeout_seconds",
                 [&](auto& node, auto& key) {
                     service.start_timeout_seconds = readDuration(node, key, false);
                 }},
                {"watchdog_seconds",
                 [&](auto& node, auto& key) { service.watchdog_seconds = readDuration(node, key, true); }},
                {"rlimits", [&](auto& node, auto& key) { service.rlimits = readResourceLimits(node, key); }},
                // Whether the names exist and form no cycle is checked once every service is read.
                {"depends_on",
                 [&](auto& node, auto& key) { service.depends_on = readStringArray(node, key); }},
                {"safe_mode",
                 [&](auto& node, auto& key) {
                     service.safe_mode = readSafeMode(requireTable(node, key), key);
                 }},
                {"standby",
                 [&](auto& node, auto& key) { service.standby = readStandby(requireTable(node, key), key); }},
                {"recovery",
                 [&](auto& node, auto& key) {
                     service.recovery = readRecovery(requireTable(node, key), key, safeModeStep);
                 }},
                {"liveness_probe",
                 [&](auto& node, auto& key) {
                     service.liveness_probe = readProbe(requireTable(node, key), key, true);
                 }},
                {"readiness_probe",
                 [&](auto& node, auto& key) {
                     service.readiness_probe = readProbe(requireTable(node, key), key, false);
                 }},
            });
        if (!table.contains("name"))
            fail(table, prefix + ".name", "missing required key");
        if (!table.contains("exec"))
            fail(table, prefix + ".exec", "missing required key");
        if (safeModeStep && !service.safe_mode) {
            fail(*safeModeStep->node, safeModeStep->key,
                 "strategy safe_mode needs a safe_mode table on the service, saying what runs in safe mode");
        }
        return service;
    }

    ProbeConfig readProbe(const toml::table& table, const std::string& prefix, bool liveness) const {
        ProbeConfig probe;
        // The type decides which other keys are allowed, so it is read first.
        const std::string typeKey = childKey(prefix, "type");
        const toml::node* typeNode = table.get("type");
        if (typeNode == nullptr)
            fail(table, typeKey, "missing required key (one of exec, tcp, http, dbus)");
        const std::string typeText = readString(*typeNode, typeKey);
        std::optional<ProbeType> type = probeTypeFromString(typeText);
        if (!type) {
            fail(*typeNode, typeKey,
                 "unknown probe type " + inQuotes(typeText) + " (expected one of exec, tcp, http, dbus)");
        }
        probe.type = *type;

        // A key of another type is most likely a mistaken type; say so rather than just "unknown key".
        for (auto&& [key, node] : table) {
            auto owner = std::find_if(kProbeTypeKeys.begin(), kProbeTypeKeys.end(),
                                      [&](const ProbeKey& candidate) { return candidate.name == key.str(); });
            if (owner == kProbeTypeKeys.end() ||
                std::find(owner->types.begin(), owner->types.end(), probe.type) != owner->types.end()) {
                continue;
            }
            std::vector<std::string_view> owners;
            for (ProbeType ownerType : owner->types)
                owners.push_back(toString(ownerType));
            failAtKey(key, node, childKey(prefix, key.str()),
                      "not a key of " + typeText + " probes (only of " + joinChoices(owners) + " probes)");
        }

        std::vector<Field> fields = {
            {"type", [](auto&, auto&) {}},
            {"initial_delay_seconds",
             [&](auto& node, auto& key) { probe.initial_delay_seconds = readDuration(node, key, true); }},
            {"period_seconds",
             [&](auto& node, auto& key) { probe.period_seconds = readDuration(node, key, false); }},
            {"timeout_seconds",
             [&](auto& node, auto& key) { probe.timeout_seconds = readDuration(node, key, false); }},
            {"success_threshold",
             [&](auto& node, auto& key) {
                 probe.success_threshold = readUnsigned(node, key, 1);
                 // As in Kubernetes: one success is enough to stop treating a service as dead.
                 if (liveness && probe.success_threshold != 1) {
                     fail(node, key,
                          "must be 1 for a liveness probe, got " + std::to_string(probe.success_threshold));
                 }
             }},
            {"failure_threshold",
             [&](auto& node, auto& key) { probe.failure_threshold = readUnsigned(node, key, 1); }},
        };
        auto readHost = [&](auto& node, auto& key) {
            std::string host = readString(node, key);
            if (!isLiteralHost(host)) {
                fail(node, key,
                     "expected a numeric IPv4 or IPv6 address or \"localhost\", got " + inQuotes(host) +
                         " (names are not looked up)");
            }
            probe.host = host;
        };
        auto readPort = [&](auto& node, auto& key) {
            probe.port = static_cast<std::uint16_t>(readUnsigned(node, key, 1, 65535));
        };
        std::string_view requiredKey;
        switch (probe.type) {
        case ProbeType::Exec:
            fields.push_back(
                {"command", [&](auto& node, auto& key) { probe.command = readExec(node, key); }});
            requiredKey = "command";
            break;
        case ProbeType::Tcp:
            fields.insert(fields.end(), {{"host", readHost}, {"port", readPort}});
            requiredKey = "port";
            break;
        case ProbeType::Http:
            fields.insert(fields.end(),
                          {{"host", readHost},
                           {"port", readPort},
                           {"path",
                            [&](auto& node, auto& key) {
                                std::string path = readString(node, key);
                                if (path.empty() || path.front() != '/')
                                    fail(node, key, "must start with \"/\", got " + inQuotes(path));
                                if (hasControlOrSpace(path))
                                    fail(node, key, "must not contain spaces or control characters");
                                probe.path = path;
                            }},
                           {"host_header", [&](auto& node, auto& key) {
                                std::string header = readString(node, key);
                                if (header.empty())
                                    fail(node, key, "must not be empty");
                                if (hasControlOrSpace(header))
                                    fail(node, key, "must not contain spaces or control characters");
                                probe.host_header = header;
                            }}});
            requiredKey = "port";
            break;
        case ProbeType::Dbus:
            fields.push_back(
                {"name", [&](auto& node, auto& key) {
                     std::string name = readString(node, key);
                     if (!isValidWellKnownBusName(name)) {
                         fail(node, key,
                              "invalid well-known bus name " + inQuotes(name) +
                                  " (expected dot-separated elements such as \"org.example.Foo\")");
                     }
                     probe.bus_name = name;
                 }});
            requiredKey = "name";
            break;
        }
        readFields(table, prefix, fields);
        if (!table.contains(requiredKey)) {
            fail(table, childKey(prefix, requiredKey), "missing required key for " + typeText + " probes");
        }
        return probe;
    }

    std::string readServiceName(const toml::node& node, const std::string& key) const {
        std::string name = readString(node, key);
        if (!isValidServiceName(name)) {
            fail(node, key,
                 "invalid service name " + inQuotes(name) +
                     " (1 to 64 characters from A-Z, a-z, 0-9, '_' and '-')");
        }
        if (contains(kInternalServiceNames, name)) {
            fail(node, key, "service name " + inQuotes(name) + " is reserved for the suite's own services");
        }
        return name;
    }

    std::vector<std::string> readExec(const toml::node& node, const std::string& key) const {
        const toml::array& array = requireArray(node, key);
        if (array.empty())
            fail(node, key, "must not be empty: it holds the program and its arguments");
        std::vector<std::string> argv;
        for (std::size_t index = 0; index < array.size(); ++index) {
            argv.push_back(readExpandedString(*array.get(index), elementKey(key, index)));
        }
        checkExecutable(*array.get(0), key, argv.front());
        return argv;
    }

    void checkExecutable(const toml::node& node, const std::string& key, const std::string& program) const {
        std::string subject = "program " + inQuotes(program);
        if (!std::filesystem::path(program).is_absolute())
            fail(node, key, subject + " must be an absolute path");
        struct stat status {};
        if (::stat(program.c_str(), &status) != 0) {
            if (errno == ENOENT)
                fail(node, key, subject + " does not exist");
            fail(node, key, "cannot inspect " + subject + ": " + std::strerror(errno));
        }
        if (!S_ISREG(status.st_mode))
            fail(node, key, subject + " is not a regular file");
        if (::access(program.c_str(), X_OK) != 0)
            fail(node, key, subject + " is not executable");
    }

    std::map<std::string, std::string> readEnvironment(const toml::node& node, const std::string& key) const {
        std::map<std::string, std::string> environment;
        for (auto&& [name, value] : requireTable(node, key)) {
            std::string variableKey = childKey(key, name.str());
            if (name.str().empty() || name.str().find('=') != std::string_view::npos ||
                name.str().find('\0') != std::string_view::npos) {
                failAtKey(name, value, variableKey, "invalid environment variable name");
            }
            environment.emplace(std::string(name.str()), readString(value, variableKey));
        }
        return environment;
    }

    std::vector<unsigned> readCpuAffinity(const toml::node& node, const std::string& key) const {
        const toml::array& array = requireArray(node, key);
        unsigned cpuCount = configuredCpuCount();
        std::vector<unsigned> cpus;
        for (std::size_t index = 0; index < array.size(); ++index) {
            const toml::node& element = *array.get(index);
            std::string cpuKey = elementKey(key, index);
            unsigned cpu = readUnsigned(element, cpuKey);
            if (cpu >= cpuCount) {
                fail(element, cpuKey,
                     "CPU " + std::to_string(cpu) + " does not exist (this machine has " +
                         std::to_string(cpuCount) + " CPUs configured, numbered from 0)");
            }
            cpus.push_back(cpu);
        }
        return cpus;
    }

    // A node to point an error at later, once the rest of the table is known.
    struct NodeAndKey {
        const toml::node* node;
        std::string key;
    };

    LadderStep shortFormStep(LadderStep step, std::optional<unsigned> maxAttempts) const {
        step.attempts = maxAttempts.value_or(config_.crash_recovery.max_recovery_attempts);
        return step;
    }

    // The keys a ladder step shares with the short form of `recovery`.
    std::vector<Field> stepFields(LadderStep& step, std::optional<NodeAndKey>& safeModeStep) const {
        return {
            {"strategy",
             [&, this](auto& node, auto& key) {
                 std::string text = readString(node, key);
                 std::optional<RecoveryStrategy> strategy = recoveryStrategyFromString(text);
                 if (!strategy) {
                     fail(node, key,
                          "unknown recovery strategy " + inQuotes(text) + " (expected one of " +
                              std::string(kRecoveryStrategies) + ")");
                 }
                 step.strategy = *strategy;
                 if (step.strategy == RecoveryStrategy::SafeMode && !safeModeStep)
                     safeModeStep = NodeAndKey{&node, key};
             }},
            {"delay_seconds",
             [&, this](auto& node, auto& key) { step.delay_seconds = readDuration(node, key, true); }},
            {"backoff_factor",
             [&, this](auto& node, auto& key) {
                 step.backoff_factor = readNumber(
                     node, key, [](double factor) { return factor >= 1; }, "must be at least 1");
             }},
            {"max_delay_seconds",
             [&, this](auto& node, auto& key) { step.max_delay_seconds = readDuration(node, key, true); }},
            {"jitter",
             [&, this](auto& node, auto& key) {
                 step.jitter = readNumber(
                     node, key, [](double jitter) { return jitter >= 0 && jitter <= 1; },
                     "must be between 0 and 1");
             }},
        };
    }

    // max_delay_seconds caps the backoff, so it may not start below the first delay. An explicit value is
    // checked for every strategy; the default only matters to a backoff step.
    void checkStepDelays(const toml::table& table, const std::string& prefix, const LadderStep& step) const {
        if (step.max_delay_seconds >= step.delay_seconds)
            return;
        if (const toml::node* maxDelay = table.get("max_delay_seconds")) {
            fail(*maxDelay, childKey(prefix, "max_delay_seconds"),
                 "must be at least delay_seconds (" + formatNumber(step.delay_seconds) + "), got " +
                     formatNumber(step.max_delay_seconds));
        }
        if (step.strategy == RecoveryStrategy::RestartWithBackoff) {
            fail(*table.get("delay_seconds"), childKey(prefix, "delay_seconds"),
                 formatNumber(step.delay_seconds) + " is above max_delay_seconds (" +
                     formatNumber(step.max_delay_seconds) + ", the default); set max_delay_seconds as well");
        }
    }

    std::vector<LadderStep> readLadder(const toml::node& node, const std::string& key,
                                       std::optional<NodeAndKey>& safeModeStep) const {
        const toml::array& array = requireArray(node, key);
        if (array.empty())
            fail(node, key, "must not be empty: a ladder needs at least one step");
        std::vector<LadderStep> ladder;
        for (std::size_t index = 0; index < array.size(); ++index) {
            std::string stepKey = elementKey(key, index);
            const toml::table& table = requireTable(*array.get(index), stepKey);
            LadderStep step;
            std::vector<Field> fields = stepFields(step, safeModeStep);
            fields.push_back({"attempts", [&, this](auto& attemptsNode, auto& attemptsKey) {
                                  step.attempts = readUnsigned(attemptsNode, attemptsKey, 1);
                              }});
            readFields(table, stepKey, fields);
            if (!table.contains("strategy"))
                fail(table, stepKey + ".strategy", "missing required key");
            checkStepDelays(table, stepKey, step);

            bool last = index + 1 == array.size();
            if (!last && !step.attempts) {
                fail(table, stepKey + ".attempts",
                     "missing required key: only the last step may leave it out (it then handles every "
                     "failure that follows)");
            }
            if (!last &&
                (step.strategy == RecoveryStrategy::None || step.strategy == RecoveryStrategy::NotifyAdmin)) {
                fail(*table.get("strategy"), stepKey + ".strategy",
                     "a " + std::string(toString(step.strategy)) +
                         " step must be the last one: it leaves the service stopped, so no later step "
                         "would ever run");
            }
            ladder.push_back(step);
        }
        return ladder;
    }

    std::map<FailureClass, std::vector<LadderStep>>
    readClassLadders(const toml::node& node, const std::string& key,
                     std::optional<NodeAndKey>& safeModeStep) const {
        std::map<FailureClass, std::vector<LadderStep>> ladders;
        for (auto&& [name, value] : requireTable(node, key)) {
            std::string classKey = childKey(key, name.str());
            std::optional<FailureClass> failureClass = failureClassFromString(name.str());
            if (!failureClass) {
                failAtKey(name, value, classKey,
                          "unknown failure class " + inQuotes(name.str()) + " (expected one of " +
                              std::string(kFailureClasses) + ")");
            }
            ladders[*failureClass] = readLadder(value, classKey, safeModeStep);
        }
        return ladders;
    }

    std::vector<int> readExitCodes(const toml::node& node, const std::string& key) const {
        const toml::array& array = requireArray(node, key);
        std::vector<int> codes;
        for (std::size_t index = 0; index < array.size(); ++index) {
            codes.push_back(
                static_cast<int>(readUnsigned(*array.get(index), elementKey(key, index), 0, kMaxExitCode)));
        }
        return codes;
    }

    int readSignal(const toml::node& node, const std::string& key) const {
        std::string name = readString(node, key);
        std::optional<int> signal = signalFromName(name);
        if (!signal) {
            fail(node, key,
                 "unknown signal " + inQuotes(name) +
                     " (expected a name from signal(7) such as \"SIGTERM\")");
        }
        return *signal;
    }

    std::vector<int> readSignals(const toml::node& node, const std::string& key) const {
        const toml::array& array = requireArray(node, key);
        std::vector<int> signals;
        for (std::size_t index = 0; index < array.size(); ++index) {
            signals.push_back(readSignal(*array.get(index), elementKey(key, index)));
        }
        return signals;
    }

    ServiceRecoveryConfig readRecovery(const toml::table& table, const std::string& prefix,
                                       std::optional<NodeAndKey>& safeModeStep) const {
        ServiceRecoveryConfig recovery;
        LadderStep shortStep;
        std::optional<unsigned> maxAttempts;
        std::vector<Field> fields = stepFields(shortStep, safeModeStep);
        const std::vector<std::string_view> shortFormKeys = {
            "strategy", "delay_seconds", "backoff_factor", "max_delay_seconds", "jitter", "max_attempts"};
        fields.insert(
            fields.end(),
            {
                {"max_attempts", [&](auto& node, auto& key) { maxAttempts = readUnsigned(node, key); }},
                {"ladder",
                 [&](auto& node, auto& key) { recovery.ladder = readLadder(node, key, safeModeStep); }},
                {"classes",
                 [&](auto& node, auto& key) {
                     recovery.class_ladders = readClassLadders(node, key, safeModeStep);
                 }},
                {"stability_seconds",
                 [&](auto& node, auto& key) { recovery.stability_seconds = readDuration(node, key, false); }},
                {"start_seconds",
                 [&](auto& node, auto& key) { recovery.start_seconds = readDuration(node, key, true); }},
                {"start_limit_burst",
                 [&](auto& node, auto& key) { recovery.start_limit_burst = readUnsigned(node, key, 1); }},
                {"start_limit_interval_seconds",
                 [&](auto& node, auto& key) {
                     recovery.start_limit_interval_seconds = readDuration(node, key, false);
                 }},
                {"success_exit_codes",
                 [&](auto& node, auto& key) { recovery.success_exit_codes = readExitCodes(node, key); }},
                {"no_restart_exit_codes",
                 [&](auto& node, auto& key) { recovery.no_restart_exit_codes = readExitCodes(node, key); }},
                {"no_restart_signals",
                 [&](auto& node, auto& key) { recovery.no_restart_signals = readSignals(node, key); }},
            });
        readFields(table, prefix, fields);

        if (table.contains("ladder")) {
            // Both forms at once would leave one of them silently ignored.
            for (auto&& [key, node] : table) {
                if (std::find(shortFormKeys.begin(), shortFormKeys.end(), key.str()) != shortFormKeys.end()) {
                    failAtKey(key, node, childKey(prefix, key.str()),
                              "cannot be combined with ladder: give it in a ladder step instead");
                }
            }
        } else {
            checkStepDelays(table, prefix, shortStep);
            recovery.ladder = {shortFormStep(shortStep, maxAttempts)};
        }

        if (const toml::node* noRestart = table.get("no_restart_exit_codes")) {
            const auto& success = recovery.success_exit_codes;
            for (std::size_t index = 0; index < recovery.no_restart_exit_codes.size(); ++index) {
                int code = recovery.no_restart_exit_codes[index];
                if (std::find(success.begin(), success.end(), code) != success.end()) {
                    fail(*noRestart->as_array()->get(index),
                         elementKey(childKey(prefix, "no_restart_exit_codes"), index),
                         "exit code " + std::to_string(code) +
                             " is also in success_exit_codes; a code can only be one of the two");
                }
            }
        }
        return recovery;
    }

    SafeModeConfig readSafeMode(const toml::table& table, const std::string& prefix) const {
        SafeModeConfig safeMode;
        readFields(
            table, prefix,
            {
                {"exec", [&](auto& node, auto& key) { safeMode.exec = readExec(node, key); }},
                {"environment",
                 [&](auto& node, auto& key) { safeMode.environment = readEnvironment(node, key); }},
                {"stability_seconds",
                 [&](auto& node, auto& key) { safeMode.stability_seconds = readDuration(node, key, false); }},
            });
        return safeMode;
    }

    StandbyConfig readStandby(const toml::table& table, const std::string& prefix) const {
        StandbyConfig standby;
        readFields(table, prefix,
                   {
                       {"promote_signal",
                        [&](auto& node, auto& key) {
                            int signal = readSignal(node, key);
                            // The standby has to act on the signal, and these two cannot be caught.
                            if (signal == SIGKILL || signal == SIGSTOP) {
                                fail(node, key,
                                     "must be a signal the standby can catch, not " +
                                         inQuotes(readString(node, key)));
                            }
                            standby.promote_signal = signal;
                        }},
                   });
        return standby;
    }

    // A string keeps the leading zero that marks the number as octal; an integer is taken as it is, so
    // TOML's own 0o027 works too.
    unsigned readUmask(const toml::node& node, const std::string& key) const {
        if (node.is_integer())
            return readUnsigned(node, key, 0, kMaxUmask);
        if (!node.is_string())
            failType(node, key, "a string of octal digits or an integer");
        std::string text = readString(node, key);
        bool octal = !text.empty() && text.size() <= 4 &&
                     std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
        if (!octal) {
            fail(node, key, "expected one to four octal digits such as \"0027\", got " + inQuotes(text));
        }
        unsigned mask = static_cast<unsigned>(std::stoul(text, nullptr, 8));
        if (mask > kMaxUmask)
            fail(node, key, "must be at most 0777, got " + inQuotes(text));
        return mask;
    }

    std::uint64_t readResourceLimitValue(const toml::node& node, const std::string& key) const {
        if (const auto* text = node.as_string()) {
            if (text->get() != "infinity") {
                fail(node, key,
                     "expected a non-negative integer or \"infinity\", got " + inQuotes(text->get()));
            }
            return RLIM_INFINITY;
        }
        if (!node.is_integer())
            failType(node, key, "a non-negative integer or \"infinity\"");
        return readNonNegative(node, key, 0, std::numeric_limits<std::int64_t>::max());
    }

    std::map<std::string, ResourceLimit> readResourceLimits(const toml::node& node,
                                                            const std::string& key) const {
        std::map<std::string, ResourceLimit> limits;
        for (auto&& [name, value] : requireTable(node, key)) {
            std::string limitKey = childKey(key, name.str());
            if (!contains(kResourceLimitNames, name.str())) {
                failAtKey(name, value, limitKey,
                          "unknown resource limit " + inQuotes(name.str()) + " (expected one of " +
                              joinChoices(kResourceLimitNames) + ")");
            }
            ResourceLimit limit;
            if (const toml::table* pair = value.as_table()) {
                auto readPart = [&](std::uint64_t& part) {
                    return [&target = part, this](const toml::node& partNode, const std::string& partKey) {
                        target = readResourceLimitValue(partNode, partKey);
                    };
                };
                readFields(*pair, limitKey, {{"soft", readPart(limit.soft)}, {"hard", readPart(limit.hard)}});
                for (std::string_view required : {"soft", "hard"}) {
                    if (!pair->contains(required))
                        fail(*pair, childKey(limitKey, required), "missing required key");
                }
                if (limit.soft > limit.hard) {
                    fail(*pair->get("soft"), limitKey + ".soft",
                         "the soft limit may not be above the hard limit (" +
                             (limit.hard == RLIM_INFINITY ? std::string("infinity")
                                                          : std::to_string(limit.hard)) +
                             ")");
                }
            } else {
                limit.soft = limit.hard = readResourceLimitValue(value, limitKey);
            }
            limits.emplace(std::string(name.str()), limit);
        }
        return limits;
    }

    // depends_on may name services declared later, so it is checked once all of them are known.
    void checkDependencies(const toml::table& root) const {
        const toml::array* services = root.get_as<toml::array>("service");
        if (services == nullptr)
            return;
        auto dependencyNode = [&](std::size_t service, std::size_t dependency) -> const toml::node& {
            return *services->get(service)->as_table()->get("depends_on")->as_array()->get(dependency);
        };
        auto dependencyKey = [](std::size_t service, std::size_t dependency) {
            return elementKey(elementKey("service", service) + ".depends_on", dependency);
        };

        std::vector<std::vector<std::size_t>> edges(config_.services.size());
        for (std::size_t index = 0; index < config_.services.size(); ++index) {
            const ServiceConfig& service = config_.services[index];
            for (std::size_t position = 0; position < service.depends_on.size(); ++position) {
                const std::string& name = service.depends_on[position];
                const ServiceConfig* target = config_.findService(name);
                if (name == service.name) {
                    fail(dependencyNode(index, position), dependencyKey(index, position),
                         "a service cannot depend on itself");
                }
                if (target == nullptr) {
                    fail(dependencyNode(index, position), dependencyKey(index, position),
                         "no service named " + inQuotes(name) + " is configured");
                }
                auto earlier =
                    std::find(service.depends_on.begin(), service.depends_on.begin() + position, name);
                if (earlier != service.depends_on.begin() + position) {
                    fail(dependencyNode(index, position), dependencyKey(index, position),
                         inQuotes(name) + " is already listed");
                }
                edges[index].push_back(static_cast<std::size_t>(target - config_.services.data()));
            }
        }

        // Depth-first search in configuration order, so the cycle reported is the same on every run.
        enum class Mark { Unvisited, OnPath, Done };
        std::vector<Mark> marks(config_.services.size(), Mark::Unvisited);
        std::vector<std::size_t> path;
        std::function<void(std::size_t)> visit = [&](std::size_t index) {
            marks[index] = Mark::OnPath;
            path.push_back(index);
            for (std::size_t position = 0; position < edges[index].size(); ++position) {
                std::size_t next = edges[index][position];
                if (marks[next] == Mark::OnPath) {
                    std::string cycle;
                    auto start = std::find(path.begin(), path.end(), next);
                    for (auto member = start; member != path.end(); ++member)
                        cycle += config_.services[*member].name + " -> ";
                    cycle += config_.services[next].name;
                    fail(dependencyNode(index, position), dependencyKey(index, position),
                         "dependency cycle: " + cycle);
                }
                if (marks[next] == Mark::Unvisited)
                    visit(next);
            }
            path.pop_back();
            marks[index] = Mark::Done;
        };
        for (std::size_t index = 0; index < config_.services.size(); ++index) {
            if (marks[index] == Mark::Unvisited)
                visit(index);
        }
    }

    void checkServiceReferences(const toml::table& root, std::string_view section,
                                std::string_view name) const {
        const toml::node* list = root.at_path(std::string(section) + '.' + std::string(name)).node();
        if (list == nullptr)
            return;
        const toml::array& array = *list->as_array();
        std::string key = std::string(section) + '.' + std::string(name);
        for (std::size_t index = 0; index < array.size(); ++index) {
            const std::string& serviceName = array.get(index)->as_string()->get();
            if (config_.findService(serviceName) == nullptr) {
                fail(*array.get(index), elementKey(key, index),
                     "no service named " + inQuotes(serviceName) + " is configured");
            }
        }
    }

    std::string file_;
    std::string configDir_;
    Config config_;
};

} // namespace

Config parseConfig(std::string_view text, const std::filesystem::path& sourcePath) {
    return ConfigParser(sourcePath).parse(text);
}

Config loadConfig(const std::filesystem::path& path) {
    auto fail = [&](int error) {
        throw ConfigError(path.string(), 0, 0, "", std::string("cannot read: ") + std::strerror(error));
    };
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file)
        fail(errno);
    std::string text;
    char buffer[65536];
    errno = 0;
    while (true) {
        std::size_t count = std::fread(buffer, 1, sizeof buffer, file.get());
        text.append(buffer, count);
        if (count < sizeof buffer)
            break;
    }
    if (std::ferror(file.get()))
        fail(errno != 0 ? errno : EIO);
    return parseConfig(text, path);
}

std::optional<Endpoint> parseEndpoint(std::string_view text) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        return std::nullopt;
    std::string host(text.substr(0, colon));
    const std::string_view portText = text.substr(colon + 1);
    unsigned port = 0;
    const auto [end, error] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (error != std::errc() || end != portText.data() + portText.size() || port == 0 || port > 65535)
        return std::nullopt;
    // An IPv6 address carries brackets so that its colons do not run into the port's.
    const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (bracketed)
        host = host.substr(1, host.size() - 2);
    if (!isLiteralHost(host) || bracketed != (host.find(':') != std::string::npos))
        return std::nullopt;
    return Endpoint{host, static_cast<std::uint16_t>(port)};
}

namespace {

[[noreturn]] void badAddress(std::string_view text, std::string_view why) {
    throw std::invalid_argument("invalid listen address \"" + std::string(text) + "\": " + std::string(why) +
                                " (expected IPV4:PORT or [IPV6]:PORT, such as 127.0.0.1:9102 or [::1]:9102)");
}

} // namespace

ListenAddress parseListenAddress(std::string_view text) {
    ListenAddress address;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            badAddress(text, "an IPv6 address in brackets must be followed by :PORT");
        }
        address.host = std::string(text.substr(1, close - 1));
        address.ipv6 = true;
        port_text = text.substr(close + 2);
        in6_addr ignored{};
        if (::inet_pton(AF_INET6, address.host.c_str(), &ignored) != 1) {
            badAddress(text, "\"" + address.host + "\" is not a numeric IPv6 address");
        }
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            badAddress(text, "no :PORT");
        }
        address.host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
        in_addr ignored{};
        if (address.host.find(':') != std::string::npos) {
            badAddress(text, "an IPv6 address must be written in brackets");
        }
        if (::inet_pton(AF_INET, address.host.c_str(), &ignored) != 1) {
            badAddress(text, "\"" + address.host + "\" is not a numeric IPv4 address");
        }
    }
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string_view::npos) {
        badAddress(text, "the port must be a number from 0 to 65535");
    }
    const unsigned long port = std::stoul(std::string(port_text));
    if (port > 65535) {
        badAddress(text, "the port must be a number from 0 to 65535");
    }
    address.port = static_cast<std::uint16_t>(port);
    return address;
}

} // namespace tau
