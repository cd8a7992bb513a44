// tau-monitor-log: serves org.tauos.Log1 for the root process that starts it.

#include "log_service.h"
#include "service_main.h"
#include "tau/bus/connection.h"

int main(int argc, char** argv) {
    return tau::serviceMain(argc, argv, {"log", tau::bus::kLogName, tau::makeLogService});
}
