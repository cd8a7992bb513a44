#include "recovery_reporter.h"

#include "tau/bus/connection.h"

#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

namespace tau {
namespace {

constexpr auto kRetryInterval = std::chrono::seconds(1);
constexpr auto kCallTimeout = std::chrono::seconds(5);

} // namespace

RecoveryReporter::RecoveryReporter(EventLoop& loop, sdbus::IConnection& connection, std::size_t capacity)
    : loop_(loop), recovery_(sdbus::createProxy(connection, bus::kRecoveryName, bus::kRecoveryPath)),
      capacity_(capacity) {
    recovery_->finishRegistration();
}

RecoveryReporter::~RecoveryReporter() {
    *alive_ = false;
    loop_.cancelTimer(retry_timer_);
}

void RecoveryReporter::report(ExitReport report) {
    enqueue(std::move(report));
}

void RecoveryReporter::report(RecoveredReport report) {
    enqueue(std::move(report));
}

void RecoveryReporter::enqueue(Report report) {
    if (queue_.size() >= capacity_) {
        // The oldest report goes: a history with a gap at its start beats a supervisor without memory. The
        // one on its way to Recovery stays, so that its answer is matched with it.
        queue_.erase(in_flight_ && queue_.size() > 1 ? queue_.begin() + 1 : queue_.begin());
        ++dropped_;
    }
    queue_.push_back(std::move(report));
    if (!in_flight_ && !away_) {
        sendNext();
    }
}

void RecoveryReporter::sendNext() {
    if (queue_.empty() || in_flight_) {
        return;
    }
    auto alive = alive_;
    auto onReply = [this, alive](const sdbus::Error* error) {
        if (!*alive) {
            return;
        }
        in_flight_ = false;
        if (error != nullptr && error->getName().rfind("org.tauos.Error.", 0) != 0) {
            // Not delivered: the recovery service is away. Keep the report and try again later.
            if (!away_) {
                spdlog::warn("recovery service unavailable ({}); keeping reports until it is back",
                             error->getMessage());
            }
            away_ = true;
            retryLater();
            return;
        }
        if (error != nullptr) {
            // Refused on its merits: sending it again would not change that.
            spdlog::error("recovery service refused a report: {}: {}", error->getName(), error->getMessage());
        }
        if (away_) {
            away_ = false;
            spdlog::info("recovery service is back; delivering {} held reports", queue_.size() - 1);
        }
        queue_.pop_front();
        sendNext();
    };
    try {
        const auto& next = queue_.front();
        if (const auto* exit = std::get_if<ExitReport>(&next)) {
            recovery_->callMethodAsync("RecordExit")
                .onInterface(bus::kRecoveryName)
                .withTimeout(kCallTimeout)
                .withArguments(exit->time_usec, exit->service, exit->pid, exit->exit_code, exit->signal,
                               exit->failure_class, exit->uptime_usec, exit->attempt, exit->action,
                               exit->delay_usec, exit->escalate, exit->reason)
                .uponReplyInvoke(onReply);
        } else {
            const auto& recovered = std::get<RecoveredReport>(next);
            recovery_->callMethodAsync("RecordRecovered")
                .onInterface(bus::kRecoveryName)
                .withTimeout(kCallTimeout)
                .withArguments(recovered.time_usec, recovered.service)
                .uponReplyInvoke(onReply);
        }
        in_flight_ = true;
    } catch (const sdbus::Error& e) {
        away_ = true;
        retryLater();
    }
}

void RecoveryReporter::retryLater() {
    if (retry_timer_ != 0) {
        return;
    }
    retry_timer_ = loop_.addTimer(kRetryInterval, [this] {
        retry_timer_ = 0;
        sendNext();
    });
}

} // namespace tau
