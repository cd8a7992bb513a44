#pragma once
// Health probes with Kubernetes' semantics: a tracker that turns attempts into a result, and a scheduler
// that runs one probe's attempts on a Reactor. How an attempt looks at the service is a Prober's business
// (probers.h).

#include "tau/clock.h"
#include "tau/config.h"
#include "tau/event_loop.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tau {

// Unknown until a threshold is first reached. A readiness probe's service is ready only on Success; a
// liveness probe's is dead only on Failure.
enum class ProbeResult { Unknown, Success, Failure };
std::string_view toString(ProbeResult result); // "unknown", "success", "failure"

// What one attempt found.
struct ProbeOutcome {
    bool success = false;
    std::string message; // why it failed ("connection refused", "HTTP 503"), or what it saw ("HTTP 200")

    static ProbeOutcome succeeded(std::string message = {}) { return {true, std::move(message)}; }
    static ProbeOutcome failed(std::string message) { return {false, std::move(message)}; }
};

struct ProbeTransition {
    ProbeResult from = ProbeResult::Unknown;
    ProbeResult to = ProbeResult::Unknown;
};

// Counts consecutive outcomes: success_threshold successes in a row make the result Success,
// failure_threshold failures in a row make it Failure; anything in between keeps the result it had.
class ProbeTracker {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    // Thresholds below 1 are taken as 1.
    ProbeTracker(unsigned success_threshold, unsigned failure_threshold);

    // Returns the transition when this outcome changed the result, so that a caller acts once per change.
    std::optional<ProbeTransition> record(const ProbeOutcome& outcome, TimePoint when);
    // Back to Unknown with no history, as for a service that has just been started again.
    void reset();

    ProbeResult result() const { return result_; }
    unsigned consecutiveSuccesses() const { return consecutive_successes_; }
    unsigned consecutiveFailures() const { return consecutive_failures_; }
    const std::optional<ProbeOutcome>& lastOutcome() const { return last_outcome_; }
    std::optional<TimePoint> lastOutcomeTime() const { return last_outcome_time_; }

  private:
    unsigned success_threshold_;
    unsigned failure_threshold_;
    ProbeResult result_ = ProbeResult::Unknown;
    unsigned consecutive_successes_ = 0;
    unsigned consecutive_failures_ = 0;
    std::optional<ProbeOutcome> last_outcome_;
    std::optional<TimePoint> last_outcome_time_;
};

// One way of looking at a service, one attempt at a time.
class Prober {
  public:
    using Done = std::function<void(ProbeOutcome)>;

    virtual ~Prober() = default;
    // Starts an attempt and reports its outcome through `done`, exactly once and always from a reactor
    // callback, never from inside start(). `timeout` is how long the caller waits for it; the caller
    // cancels the attempt when that passes, and a prober may use it to bound its own requests. Called only
    // while no attempt is in flight.
    virtual void start(std::chrono::steady_clock::duration timeout, Done done) = 0;
    // Abandons the attempt in flight, if any: `done` is not called, and the attempt's descriptors and
    // processes are released (a process is killed and reaped). Without an attempt, does nothing.
    virtual void cancel() = 0;
};

// Runs one probe of one service: the first attempt initial_delay_seconds after start(), then one every
// period_seconds from the start of the previous one. A period that comes while an attempt is still in flight
// (a timeout longer than the period) is skipped, so one probe never has two attempts at once. An attempt
// still in flight after timeout_seconds is cancelled and counts as a failure.
class ProbeScheduler {
  public:
    // Called on every change of the result, with the tracker as it is after the outcome. It may call stop()
    // but must not destroy the scheduler.
    using TransitionCallback = std::function<void(const ProbeTransition&, const ProbeTracker&)>;

    // Throws std::invalid_argument without a prober.
    ProbeScheduler(Reactor& reactor, const Clock& clock, const ProbeConfig& config,
                   std::unique_ptr<Prober> prober, TransitionCallback on_transition);
    ~ProbeScheduler();
    ProbeScheduler(const ProbeScheduler&) = delete;
    ProbeScheduler& operator=(const ProbeScheduler&) = delete;

    // Starts probing from scratch: the result goes back to Unknown. Does nothing while running.
    void start();
    // Cancels the timers and the attempt in flight; the tracker keeps what it has seen.
    void stop();

    bool running() const { return running_; }
    bool attemptInFlight() const { return attempt_in_flight_; }
    const ProbeTracker& tracker() const { return tracker_; }
    const ProbeConfig& config() const { return config_; }

  private:
    void onPeriod();
    void finishAttempt(const ProbeOutcome& outcome);
    void cancelTimer(std::optional<Reactor::TimerId>& timer);

    Reactor& reactor_;
    const Clock& clock_;
    ProbeConfig config_;
    std::unique_ptr<Prober> prober_;
    TransitionCallback on_transition_;
    ProbeTracker tracker_;
    bool running_ = false;
    bool attempt_in_flight_ = false;
    // Tells the late `done` of an attempt that was given up from that of the current one.
    std::uint64_t attempt_ = 0;
    std::optional<Reactor::TimerId> period_timer_;
    std::optional<Reactor::TimerId> timeout_timer_;
};

} // namespace tau
