#include "tau/prometheus.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

namespace tau::prometheus {
namespace {

bool isAsciiLetter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isAsciiDigit(char c) {
    return c >= '0' && c <= '9';
}

bool endsWith(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The length of the well-formed UTF-8 sequence at the start of `text` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when there is none.
std::size_t utf8SequenceLength(std::string_view text) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const auto continuation = [&](std::size_t i) { return i < text.size() && (byte(i) & 0xC0) == 0x80; };
    const unsigned char lead = byte(0);
    if (lead < 0x80) {
        return 1;
    }
    if (lead >= 0xC2 && lead <= 0xDF) {
        return continuation(1) ? 2 : 0;
    }
    if (lead >= 0xE0 && lead <= 0xEF) {
        if (!continuation(1) || !continuation(2)) {
            return 0;
        }
        const bool overlong = lead == 0xE0 && byte(1) < 0xA0;
        const bool surrogate = lead == 0xED && byte(1) >= 0xA0;
        return overlong || surrogate ? 0 : 3;
    }
    if (lead >= 0xF0 && lead <= 0xF4) {
        if (!continuation(1) || !continuation(2) || !continuation(3)) {
            return 0;
        }
        const bool overlong = lead == 0xF0 && byte(1) < 0x90;
        const bool too_large = lead == 0xF4 && byte(1) >= 0x90;
        return overlong || too_large ? 0 : 4;
    }
    return 0;
}

// Prometheus refuses a scrape whose label values or help texts are not UTF-8, so a stray byte (from a
// service name read out of /proc, say) becomes U+FFFD instead of costing every other sample.
void appendEscaped(std::string& out, std::string_view text, bool escape_quotes) {
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '"' && escape_quotes) {
            out += "\\\"";
        } else {
            const std::size_t length = utf8SequenceLength(text.substr(i));
            if (length == 0) {
                out += "\xEF\xBF\xBD";
                ++i;
            } else {
                out.append(text.substr(i, length));
                i += length;
            }
            continue;
        }
        ++i;
    }
}

std::string_view typeName(MetricType type) {
    switch (type) {
    case MetricType::counter:
        return "counter";
    case MetricType::gauge:
        return "gauge";
    case MetricType::untyped:
        return "untyped";
    }
    return "untyped";
}

std::string quoted(std::string_view text) {
    std::string result = "\"";
    appendEscaped(result, text, true);
    result += '"';
    return result;
}

// What a value costs at most: "-1.2345678901234567e-308" and the separators around it.
constexpr std::size_t kValueBytesBound = 26;

} // namespace

bool isValidMetricName(std::string_view name) {
    if (name.empty() || isAsciiDigit(name.front())) {
        return false;
    }
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return isAsciiLetter(c) || isAsciiDigit(c) || c == '_' || c == ':'; });
}

bool isValidLabelName(std::string_view name) {
    if (name.empty() || isAsciiDigit(name.front()) || name.starts_with("__")) {
        return false;
    }
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return isAsciiLetter(c) || isAsciiDigit(c) || c == '_'; });
}

void appendValue(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buffer[32];
    std::to_chars_result result{};
    // Every integral double below 2^63 is an int64 exactly; printed as one it never takes an exponent. A
    // negative zero takes the other branch, which keeps its sign ("-0" reads back as -0).
    const bool negative_zero = value == 0 && std::signbit(value);
    if (value == std::trunc(value) && std::fabs(value) < 9223372036854775808.0 && !negative_zero) {
        result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(value));
    } else {
        // The shortest text that reads back as the same double.
        result = std::to_chars(buffer, buffer + sizeof buffer, value);
    }
    out.append(buffer, result.ptr);
}

MetricFamily::MetricFamily(std::string name, std::string_view help, MetricType type)
    : name_(std::move(name)), type_(type) {
    if (!isValidMetricName(name_)) {
        throw InvalidMetric("invalid metric name " + quoted(name_) + ": expected [a-zA-Z_:][a-zA-Z0-9_:]*");
    }
    if (type_ == MetricType::counter && !endsWith(name_, "_total")) {
        throw InvalidMetric("counter " + quoted(name_) + " must be named with the suffix _total");
    }
    if (type_ != MetricType::counter && endsWith(name_, "_total")) {
        throw InvalidMetric("metric " + quoted(name_) +
                            " is not a counter but is named with the suffix _total");
    }
    appendEscaped(help_, help, false);
}

MetricFamily& MetricFamily::add(std::span<const Label> labels, double value) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!isValidLabelName(labels[i].name)) {
            throw InvalidMetric("metric " + name_ + ": invalid label name " + quoted(labels[i].name) +
                                ": expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (labels[i].name == labels[j].name) {
                throw InvalidMetric("metric " + name_ + ": label " + quoted(labels[i].name) + " given twice");
            }
        }
    }
    std::vector<const Label*> present;
    present.reserve(labels.size());
    for (const Label& label : labels) {
        if (!label.value.empty()) {
            present.push_back(&label);
        }
    }
    std::sort(present.begin(), present.end(),
              [](const Label* a, const Label* b) { return a->name < b->name; });

    std::string rendered;
    if (!present.empty()) {
        rendered += '{';
        for (const Label* label : present) {
            if (rendered.size() > 1) {
                rendered += ',';
            }
            rendered.append(label->name);
            rendered += "=\"";
            appendEscaped(rendered, label->value, true);
            rendered += '"';
        }
        rendered += '}';
    }
    if (!label_sets_.insert(rendered).second) {
        throw InvalidMetric("metric " + name_ + ": a second sample with the labels " +
                            (rendered.empty() ? std::string("{}") : rendered));
    }
    sample_bytes_ += name_.size() + rendered.size() + kValueBytesBound;
    samples_.push_back(Sample{std::move(rendered), value});
    return *this;
}

std::size_t MetricFamily::renderedSizeBound() const {
    // "# HELP " name ' ' help '\n' "# TYPE " name ' ' "untyped" '\n'
    return 2 * name_.size() + help_.size() + 26 + sample_bytes_;
}

void MetricFamily::renderTo(std::string& out) const {
    if (!help_.empty()) {
        out += "# HELP ";
        out += name_;
        out += ' ';
        out += help_;
        out += '\n';
    }
    out += "# TYPE ";
    out += name_;
    out += ' ';
    out += typeName(type_);
    out += '\n';
    for (const Sample& sample : samples_) {
        out += name_;
        out += sample.labels;
        out += ' ';
        appendValue(out, sample.value);
        out += '\n';
    }
}

void Exposition::add(MetricFamily family) {
    if (!names_.insert(family.name()).second) {
        throw InvalidMetric("metric family " + quoted(family.name()) + " added twice");
    }
    families_.push_back(std::move(family));
}

std::string Exposition::render() const {
    std::string out;
    renderTo(out);
    return out;
}

void Exposition::renderTo(std::string& out) const {
    std::size_t bound = out.size();
    for (const MetricFamily& family : families_) {
        bound += family.renderedSizeBound();
    }
    out.reserve(bound);
    for (const MetricFamily& family : families_) {
        family.renderTo(out);
    }
}

} // namespace tau::prometheus
