// tau-monitor-recovery: serves org.tauos.Recovery1 for the root process that starts it.

#include "recovery_service.h"
#include "service_main.h"
#include "tau/bus/connection.h"

int main(int argc, char** argv) {
    return tau::serviceMain(argc, argv, {"recovery", tau::bus::kRecoveryName, tau::makeRecoveryService});
}
