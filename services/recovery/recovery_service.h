#pragma once

#include "suite_service.h"

#include <memory>

namespace tau {

// Serves org.tauos.Recovery1: keeps the crash history the supervisor reports with RecordExit and
// RecordRecovered, announces recovery actions and escalations (running crash_recovery.notify_command for
// the latter), summarises the history and explains the configured recovery policies.
// Also serves the session state store (SaveState, LoadState, ListStates, DeleteState), telling callers apart
// through org.tauos.Processes1 ServiceOfProcess.
std::unique_ptr<SuiteService> makeRecoveryService(ServiceContext& context);

} // namespace tau
