// tau-monitor-resources: serves org.tauos.Resources1 for the root process that starts it.

#include "resources_service.h"
#include "service_main.h"
#include "tau/bus/connection.h"

int main(int argc, char** argv) {
    return tau::serviceMain(argc, argv, {"resources", tau::bus::kResourcesName, tau::makeResourcesService});
}
