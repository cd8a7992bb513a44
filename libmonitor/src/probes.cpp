#include "tau/probes.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace tau {

std::string_view toString(ProbeResult result) {
    switch (result) {
    case ProbeResult::Unknown:
        return "unknown";
    case ProbeResult::Success:
        return "success";
    case ProbeResult::Failure:
        return "failure";
    }
    return "unknown";
}

ProbeTracker::ProbeTracker(unsigned success_threshold, unsigned failure_threshold)
    : success_threshold_(std::max(success_threshold, 1U)),
      failure_threshold_(std::max(failure_threshold, 1U)) {}

std::optional<ProbeTransition> ProbeTracker::record(const ProbeOutcome& outcome, TimePoint when) {
    last_outcome_ = outcome;
    last_outcome_time_ = when;
    ProbeResult next = result_;
    if (outcome.success) {
        consecutive_failures_ = 0;
        ++consecutive_successes_;
        if (consecutive_successes_ >= success_threshold_) {
            next = ProbeResult::Success;
        }
    } else {
        consecutive_successes_ = 0;
        ++consecutive_failures_;
        if (consecutive_failures_ >= failure_threshold_) {
            next = ProbeResult::Failure;
        }
    }
    if (next == result_) {
        return std::nullopt;
    }
    ProbeTransition transition{result_, next};
    result_ = next;
    return transition;
}

void ProbeTracker::reset() {
    result_ = ProbeResult::Unknown;
    consecutive_successes_ = 0;
    consecutive_failures_ = 0;
    last_outcome_.reset();
    last_outcome_time_.reset();
}

namespace {

std::chrono::steady_clock::duration toDuration(double seconds) {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(seconds));
}

std::string formatSeconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%g s", seconds);
    return text;
}

} // namespace

ProbeScheduler::ProbeScheduler(Reactor& reactor, const Clock& clock, const ProbeConfig& config,
                               std::unique_ptr<Prober> prober, TransitionCallback on_transition)
    : reactor_(reactor), clock_(clock), config_(config), prober_(std::move(prober)),
      on_transition_(std::move(on_transition)), tracker_(config.success_threshold, config.failure_threshold) {
    if (!prober_) {
        throw std::invalid_argument("a probe scheduler needs a prober");
    }
}

ProbeScheduler::~ProbeScheduler() {
    stop();
}

void ProbeScheduler::start() {
    if (running_) {
        return;
    }
    running_ = true;
    tracker_.reset();
    period_timer_ = reactor_.addTimer(toDuration(config_.initial_delay_seconds), [this] { onPeriod(); });
}

void ProbeScheduler::stop() {
    if (!running_) {
        return;
    }
    running_ = false;
    cancelTimer(period_timer_);
    cancelTimer(timeout_timer_);
    if (attempt_in_flight_) {
        attempt_in_flight_ = false;
        prober_->cancel();
    }
}

void ProbeScheduler::cancelTimer(std::optional<Reactor::TimerId>& timer) {
    if (timer) {
        reactor_.cancelTimer(*timer);
        timer.reset();
    }
}

void ProbeScheduler::onPeriod() {
    // Armed first and from the start of this attempt, so that periods do not drift by how long attempts take.
    period_timer_ = reactor_.addTimer(toDuration(config_.period_seconds), [this] { onPeriod(); });
    if (attempt_in_flight_) {
        return;
    }
    attempt_in_flight_ = true;
    const std::uint64_t attempt = ++attempt_;
    timeout_timer_ = reactor_.addTimer(toDuration(config_.timeout_seconds), [this, attempt] {
        if (attempt != attempt_ || !attempt_in_flight_) {
            return;
        }
        timeout_timer_.reset();
        attempt_in_flight_ = false;
        prober_->cancel();
        finishAttempt(ProbeOutcome::failed("timed out after " + formatSeconds(config_.timeout_seconds)));
    });
    prober_->start(toDuration(config_.timeout_seconds), [this, attempt](ProbeOutcome outcome) {
        if (attempt != attempt_ || !attempt_in_flight_) {
            return;
        }
        attempt_in_flight_ = false;
        cancelTimer(timeout_timer_);
        finishAttempt(outcome);
    });
}

void ProbeScheduler::finishAttempt(const ProbeOutcome& outcome) {
    if (auto transition = tracker_.record(outcome, clock_.now()); transition && on_transition_) {
        on_transition_(*transition, tracker_);
    }
}

} // namespace tau
