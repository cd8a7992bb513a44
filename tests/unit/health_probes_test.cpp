#include "manual_reactor.h"
#include "tau/health_probes.h"

#include <gtest/gtest.h>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace tau {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::ManualReactor;
using test::ScriptedProber;

ProbeConfig tcpProbe(std::uint16_t port) {
    ProbeConfig probe;
    probe.type = ProbeType::Tcp;
    probe.port = port;
    probe.initial_delay_seconds = 5;
    probe.period_seconds = 10;
    probe.timeout_seconds = 1;
    probe.failure_threshold = 2;
    return probe;
}

class HealthProbesTest : public testing::Test {
  protected:
    HealthProbesTest() {
        ServiceConfig web;
        web.name = "web";
        web.liveness_probe = tcpProbe(1001);
        web.readiness_probe = tcpProbe(1002);
        config_.services.push_back(web);
        ServiceConfig plain;
        plain.name = "plain";
        config_.services.push_back(plain);
        config_.health_checking.check_interval_seconds = 30;
        config_.health_checking.network_endpoints = {"192.0.2.1:53"};
    }

    HealthProbes& make() {
        probes_.emplace(
            reactor_, clock_, config_,
            [this](const ProbeConfig& probe) -> std::unique_ptr<Prober> {
                if (probe.port == refused_port_)
                    throw std::runtime_error("no prober for this one");
                return std::make_unique<ScriptedProber>(logs_[probe.port], clock_);
            },
            [this](const std::string& service, const std::string& message) {
                liveness_failures_.push_back(service + ": " + message);
            },
            [this] { ++changes_; });
        return *probes_;
    }

    void complete(std::uint16_t port, ProbeOutcome outcome) {
        auto& log = logs_[port];
        ASSERT_TRUE(log.pending) << "no attempt in flight on " << port;
        auto done = std::move(log.pending);
        log.pending = nullptr;
        done(std::move(outcome));
    }

    FakeClock clock_;
    ManualReactor reactor_{clock_};
    Config config_;
    std::map<std::uint16_t, ScriptedProber::Log> logs_;
    std::uint16_t refused_port_ = 0;
    std::vector<std::string> liveness_failures_;
    unsigned changes_ = 0;
    std::optional<HealthProbes> probes_;
};

TEST_F(HealthProbesTest, ServiceProbesRunOnlyWhileTheServiceRuns) {
    auto& probes = make();
    reactor_.advance(60s);
    EXPECT_EQ(logs_[1001].starts, 0u);
    EXPECT_FALSE(probes.probing("web"));

    probes.serviceRunning("web");
    EXPECT_TRUE(probes.probing("web"));
    reactor_.advance(5s); // the initial delay
    EXPECT_EQ(logs_[1001].starts, 1u);
    EXPECT_EQ(logs_[1002].starts, 1u);

    probes.serviceStopped("web");
    EXPECT_FALSE(probes.probing("web"));
    EXPECT_EQ(logs_[1001].cancels, 1u);
    reactor_.advance(60s);
    EXPECT_EQ(logs_[1001].starts, 1u);
}

TEST_F(HealthProbesTest, LivenessFailureIsReportedOnceAtTheThreshold) {
    auto& probes = make();
    probes.serviceRunning("web");
    reactor_.advance(5s);
    complete(1001, ProbeOutcome::failed("connection refused"));
    complete(1002, ProbeOutcome::succeeded("HTTP 200"));
    EXPECT_TRUE(liveness_failures_.empty());
    reactor_.advance(10s);
    complete(1001, ProbeOutcome::failed("connection refused"));
    EXPECT_EQ(liveness_failures_, std::vector<std::string>{"web: connection refused"});
    reactor_.advance(10s);
    complete(1001, ProbeOutcome::failed("connection refused"));
    EXPECT_EQ(liveness_failures_.size(), 1u);
    EXPECT_GE(changes_, 1u);

    const auto results = probes.probesOf("web");
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].kind, "liveness");
    EXPECT_EQ(results[0].result, "failure");
    EXPECT_EQ(results[0].message, "connection refused");
    EXPECT_EQ(results[1].kind, "readiness");
    // Its later attempts were never answered: one timeout is below the failure threshold, and the message
    // is what the latest attempt saw.
    EXPECT_EQ(results[1].result, "success");
    EXPECT_EQ(results[1].message, "timed out after 1 s");
}

TEST_F(HealthProbesTest, ReadinessFailureIsNoLivenessFailure) {
    auto& probes = make();
    probes.serviceRunning("web");
    reactor_.advance(5s);
    complete(1002, ProbeOutcome::failed("HTTP 503"));
    reactor_.advance(10s);
    complete(1002, ProbeOutcome::failed("HTTP 503"));
    EXPECT_TRUE(liveness_failures_.empty());
    EXPECT_EQ(probes.probesOf("web")[1].result, "failure");
}

TEST_F(HealthProbesTest, AStoppedServiceHasUnknownResultsAndStartsAfreshWithItsInitialDelay) {
    auto& probes = make();
    probes.serviceRunning("web");
    reactor_.advance(5s);
    complete(1002, ProbeOutcome::succeeded("HTTP 200"));
    EXPECT_EQ(probes.probesOf("web")[1].result, "success");
    probes.serviceStopped("web");
    EXPECT_EQ(probes.probesOf("web")[1].result, "unknown");
    EXPECT_EQ(probes.probesOf("web")[1].message, "");

    probes.serviceRunning("web");
    EXPECT_EQ(probes.probesOf("web")[1].result, "unknown");
    const auto restarted = clock_.now();
    reactor_.advance(5s);
    ASSERT_EQ(logs_[1002].start_times.size(), 2u);
    EXPECT_EQ(logs_[1002].start_times[1] - restarted, 5s);
}

TEST_F(HealthProbesTest, AServiceWithoutProbesHasNone) {
    auto& probes = make();
    probes.serviceRunning("plain");
    probes.serviceRunning("no-such-service");
    EXPECT_FALSE(probes.probing("plain"));
    EXPECT_TRUE(probes.probesOf("plain").empty());
}

TEST_F(HealthProbesTest, EndpointsAreProbedEveryCheckIntervalFromTheStart) {
    auto& probes = make();
    EXPECT_TRUE(probes.endpoints().empty()); // nothing known before the first attempt ends
    reactor_.advance(0s);
    ASSERT_EQ(logs_[53].starts, 1u);
    EXPECT_EQ(logs_[53].timeouts[0], std::chrono::duration_cast<std::chrono::steady_clock::duration>(5s));
    complete(53, ProbeOutcome::succeeded());
    ASSERT_EQ(probes.endpoints().size(), 1u);
    EXPECT_EQ(probes.endpoints()[0].endpoint, "192.0.2.1:53");
    EXPECT_TRUE(probes.endpoints()[0].reachable);

    reactor_.advance(30s);
    ASSERT_EQ(logs_[53].starts, 2u);
    complete(53, ProbeOutcome::failed("connection timed out"));
    EXPECT_FALSE(probes.endpoints()[0].reachable);
    EXPECT_EQ(probes.endpoints()[0].message, "connection timed out");
    EXPECT_GE(changes_, 2u);
}

TEST_F(HealthProbesTest, AProbeThatCannotBeMadeIsLeftOutAndTheOthersRun) {
    refused_port_ = 1001;
    auto& probes = make();
    probes.serviceRunning("web");
    reactor_.advance(5s);
    EXPECT_EQ(logs_[1002].starts, 1u);
    const auto results = probes.probesOf("web");
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].kind, "readiness");
}

} // namespace
} // namespace tau
