// tau-monitor-health: serves org.tauos.Health1 for the root process that starts it.

#include "health_service.h"
#include "service_main.h"
#include "tau/bus/connection.h"

int main(int argc, char** argv) {
    return tau::serviceMain(argc, argv, {"health", tau::bus::kHealthName, tau::makeHealthService});
}
