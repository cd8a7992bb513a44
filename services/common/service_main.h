#pragma once
// The main() of a service process of the suite: `tau-monitor-<name> --bus ADDRESS [--config FILE]`, started
// and restarted by the root. Each service is an executable of its own, so that a process maps only the code
// and libraries its service uses.

#include "suite_service.h"

#include <memory>

namespace tau {

struct SuiteServiceKind {
    const char* name;     // "resources"
    const char* bus_name; // "org.tauos.Resources1"
    std::unique_ptr<SuiteService> (*make)(ServiceContext&);
};

int serviceMain(int argc, char** argv, const SuiteServiceKind& kind);

} // namespace tau
