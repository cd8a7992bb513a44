#pragma once
// Prometheus text exposition format, version 0.0.4: what an HTTP /metrics endpoint answers with. Metric
// families are built for every scrape and rendered into one string; every name and label is checked when it
// is added, so that a scrape never hands Prometheus something it would reject.

#include <cstddef>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace tau::prometheus {

// The media type of what render() returns.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { counter, gauge, untyped };

// A name or label set that Prometheus would refuse or misread; the message names the offending text.
class InvalidMetric : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

// Viewed, not owned: a family copies what it needs when a sample is added.
struct Label {
    std::string_view name;
    std::string_view value;
};

bool isValidMetricName(std::string_view name);    // [a-zA-Z_:][a-zA-Z0-9_:]*
bool isValidLabelName(std::string_view name);     // [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"
void appendValue(std::string& out, double value); // as Prometheus parses it back exactly

class MetricFamily {
  public:
    // Counters are named with the "_total" suffix, and other types without it, as Prometheus' naming
    // conventions (and promtool) ask. Throws InvalidMetric.
    MetricFamily(std::string name, std::string_view help, MetricType type);

    // The order of labels does not matter: they are rendered sorted by name. A label with an empty value is
    // the same as no label to Prometheus, so it is left out. Throws InvalidMetric on a bad or repeated label
    // name, and on a label set that this family already has a sample for.
    MetricFamily& add(std::span<const Label> labels, double value);
    MetricFamily& add(std::initializer_list<Label> labels, double value) {
        return add(std::span<const Label>(labels.begin(), labels.size()), value);
    }
    MetricFamily& add(double value) { return add(std::span<const Label>(), value); }

    const std::string& name() const { return name_; }
    MetricType type() const { return type_; }
    std::size_t size() const { return samples_.size(); }

    void renderTo(std::string& out) const;
    // At least what renderTo appends, so that the output is allocated once.
    std::size_t renderedSizeBound() const;

  private:
    struct Sample {
        std::string labels; // "{a=\"x\",b=\"y\"}" already escaped, or empty
        double value;
    };

    std::string name_;
    std::string help_; // escaped
    MetricType type_;
    std::vector<Sample> samples_;
    std::unordered_set<std::string> label_sets_;
    std::size_t sample_bytes_ = 0;
};

// Families in the order they were added, each name once.
class Exposition {
  public:
    // Throws InvalidMetric when a family of that name is already there.
    void add(MetricFamily family);
    std::size_t size() const { return families_.size(); }

    std::string render() const;
    void renderTo(std::string& out) const; // appends

  private:
    std::vector<MetricFamily> families_;
    std::unordered_set<std::string> names_;
};

} // namespace tau::prometheus
