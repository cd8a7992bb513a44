#include "tau/prometheus.h"

#include <cmath>
#include <gtest/gtest.h>
#include <limits>
#include <string>
#include <vector>

namespace tau::prometheus {
namespace {

std::string valueText(double value) {
    std::string out;
    appendValue(out, value);
    return out;
}

TEST(PrometheusTextTest, RendersFamiliesInOrderWithHelpAndTypeOnce) {
    Exposition exposition;
    MetricFamily restarts("tau_service_restarts_total", "Restarts of a service since tau-monitor started.",
                          MetricType::counter);
    restarts.add({{"service", "web"}}, 3).add({{"service", "db"}}, 0);
    exposition.add(std::move(restarts));
    MetricFamily health("tau_health_score", "Overall health, 0 to 100.", MetricType::gauge);
    health.add(87.5);
    exposition.add(std::move(health));
    MetricFamily build("tau_build_info", "", MetricType::untyped);
    build.add({{"version", "0.1.0"}}, 1);
    exposition.add(std::move(build));

    EXPECT_EQ(exposition.render(),
              "# HELP tau_service_restarts_total Restarts of a service since tau-monitor "
              "started.\n"
              "# TYPE tau_service_restarts_total counter\n"
              "tau_service_restarts_total{service=\"web\"} 3\n"
              "tau_service_restarts_total{service=\"db\"} 0\n"
              "# HELP tau_health_score Overall health, 0 to 100.\n"
              "# TYPE tau_health_score gauge\n"
              "tau_health_score 87.5\n"
              "# TYPE tau_build_info untyped\n"
              "tau_build_info{version=\"0.1.0\"} 1\n");
}

TEST(PrometheusTextTest, FamilyWithoutSamplesKeepsItsMetadata) {
    Exposition exposition;
    exposition.add(MetricFamily("tau_up", "One while running.", MetricType::gauge));
    EXPECT_EQ(exposition.render(), "# HELP tau_up One while running.\n# TYPE tau_up gauge\n");
    EXPECT_EQ(Exposition().render(), "");
}

TEST(PrometheusTextTest, EscapesLabelValuesAndHelp) {
    MetricFamily family("tau_odd", "A \\ backslash,\na newline and \"quotes\".", MetricType::gauge);
    family.add({{"path", "C:\\dir\n\"x\""}}, 1);
    std::string out;
    family.renderTo(out);
    EXPECT_EQ(out, "# HELP tau_odd A \\\\ backslash,\\na newline and \"quotes\".\n"
                   "# TYPE tau_odd gauge\n"
                   "tau_odd{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n");
}

TEST(PrometheusTextTest, InvalidUtf8BecomesReplacementCharacters) {
    MetricFamily family("tau_names", "caf\xC3\xA9 \xFF", MetricType::gauge);
    // A lone continuation byte, an overlong slash and a surrogate: each byte of them is replaced.
    family.add({{"name", "\xE2\x82\xAC ok \x80 \xC0\xAF \xED\xA0\x80"}}, 1);
    std::string out;
    family.renderTo(out);
    EXPECT_EQ(out, "# HELP tau_names caf\xC3\xA9 \xEF\xBF\xBD\n"
                   "# TYPE tau_names gauge\n"
                   "tau_names{name=\"\xE2\x82\xAC ok \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD "
                   "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"} 1\n");
}

TEST(PrometheusTextTest, LabelsAreSortedAndEmptyValuesLeftOut) {
    MetricFamily family("tau_x", "x", MetricType::gauge);
    family.add({{"zone", "b"}, {"app", "a"}, {"empty", ""}}, 2);
    family.add({{"empty", ""}}, 1);
    std::string out;
    family.renderTo(out);
    EXPECT_EQ(out, "# HELP tau_x x\n# TYPE tau_x gauge\ntau_x{app=\"a\",zone=\"b\"} 2\ntau_x 1\n");
}

TEST(PrometheusTextTest, ValuesReadBackExactly) {
    EXPECT_EQ(valueText(0), "0");
    EXPECT_EQ(valueText(-0.0), "-0");
    EXPECT_EQ(valueText(42), "42");
    EXPECT_EQ(valueText(-17), "-17");
    EXPECT_EQ(valueText(1e15), "1000000000000000");
    EXPECT_EQ(valueText(9007199254740993.0), "9007199254740992");
    EXPECT_EQ(valueText(4611686018427387904.0), "4611686018427387904");
    EXPECT_EQ(valueText(1e20), "1e+20");
    EXPECT_EQ(valueText(0.1), "0.1");
    EXPECT_EQ(valueText(1.0 / 3), "0.3333333333333333");
    EXPECT_EQ(valueText(2.5e-7), "2.5e-07");
    EXPECT_EQ(valueText(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
    EXPECT_EQ(valueText(std::numeric_limits<double>::denorm_min()), "5e-324");
    EXPECT_EQ(valueText(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(valueText(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(valueText(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(PrometheusTextTest, ShortestTextRoundTrips) {
    for (const double value : {0.1, 0.2 + 0.1, 123.456, 1e-300, 6.02214076e23, -98765.4321, 1.5e300}) {
        const std::string text = valueText(value);
        EXPECT_EQ(std::stod(text), value) << text;
    }
}

TEST(PrometheusTextTest, NamesAreChecked) {
    EXPECT_TRUE(isValidMetricName("tau:rule_x9"));
    EXPECT_TRUE(isValidMetricName("_private"));
    EXPECT_FALSE(isValidMetricName(""));
    EXPECT_FALSE(isValidMetricName("9lives"));
    EXPECT_FALSE(isValidMetricName("tau-monitor"));
    EXPECT_FALSE(isValidMetricName("caf\xC3\xA9"));
    EXPECT_TRUE(isValidLabelName("service_2"));
    EXPECT_TRUE(isValidLabelName("_x"));
    EXPECT_FALSE(isValidLabelName("__name__"));
    EXPECT_FALSE(isValidLabelName("a:b"));
    EXPECT_FALSE(isValidLabelName("2x"));
    EXPECT_FALSE(isValidLabelName(""));
}

TEST(PrometheusTextTest, BadNamesAreRejectedWithTheOffendingText) {
    try {
        MetricFamily("tau metric", "x", MetricType::gauge);
        FAIL() << "a name with a space was accepted";
    } catch (const InvalidMetric& e) {
        EXPECT_NE(std::string(e.what()).find("\"tau metric\""), std::string::npos) << e.what();
    }
    MetricFamily family("tau_x", "x", MetricType::gauge);
    try {
        family.add({{"__reserved", "v"}}, 1);
        FAIL() << "a reserved label name was accepted";
    } catch (const InvalidMetric& e) {
        EXPECT_NE(std::string(e.what()).find("\"__reserved\""), std::string::npos) << e.what();
    }
    EXPECT_THROW(family.add({{"bad-name", "v"}}, 1), InvalidMetric);
    EXPECT_THROW(family.add({{"a", "1"}, {"a", "2"}}, 1), InvalidMetric);
    EXPECT_EQ(family.size(), 0u);
}

TEST(PrometheusTextTest, CountersAndOnlyCountersEndInTotal) {
    EXPECT_THROW(MetricFamily("tau_restarts", "x", MetricType::counter), InvalidMetric);
    EXPECT_THROW(MetricFamily("tau_restarts_total", "x", MetricType::gauge), InvalidMetric);
    EXPECT_THROW(MetricFamily("tau_restarts_total", "x", MetricType::untyped), InvalidMetric);
    EXPECT_NO_THROW(MetricFamily("tau_restarts_total", "x", MetricType::counter));
}

TEST(PrometheusTextTest, DuplicateLabelSetsAreRejected) {
    MetricFamily family("tau_x", "x", MetricType::gauge);
    family.add({{"a", "1"}, {"b", "2"}}, 1);
    EXPECT_THROW(family.add({{"b", "2"}, {"a", "1"}}, 2), InvalidMetric);
    family.add(3);
    EXPECT_THROW(family.add({{"c", ""}}, 4), InvalidMetric);
    EXPECT_EQ(family.size(), 2u);
}

TEST(PrometheusTextTest, FamiliesAreNeverRepeated) {
    Exposition exposition;
    exposition.add(MetricFamily("tau_x", "x", MetricType::gauge));
    EXPECT_THROW(exposition.add(MetricFamily("tau_x", "again", MetricType::untyped)), InvalidMetric);
    EXPECT_EQ(exposition.size(), 1u);
}

TEST(PrometheusTextTest, SizeBoundCoversTheLongestValues) {
    // The bound is what renderTo reserves: were it short, a scrape would reallocate as it goes.
    MetricFamily family("tau_service_memory_bytes", "Resident memory of a service.", MetricType::gauge);
    const double longest[] = {-std::numeric_limits<double>::max(), -std::numeric_limits<double>::min(),
                              -std::numeric_limits<double>::denorm_min() * 3, -9223372036854775807.0 + 1024,
                              -1.2345678901234568e-300};
    int i = 0;
    for (const double value : longest) {
        for (int copy = 0; copy < 400; ++copy, ++i) {
            family.add({{"service", "service-" + std::to_string(i)}, {"unit", "main\\n"}}, value);
        }
    }
    std::string out;
    family.renderTo(out);
    EXPECT_GE(family.renderedSizeBound(), out.size());
    EXPECT_NE(out.find(R"(tau_service_memory_bytes{service="service-1999",unit="main\\n"} )"
                       "-1.2345678901234568e-300\n"),
              std::string::npos);
}

} // namespace
} // namespace tau::prometheus
