#include "tau/service_order.h"

#include <functional>
#include <set>
#include <string>

namespace tau {

std::vector<const ServiceConfig*> startOrder(const Config& config) {
    std::vector<const ServiceConfig*> order;
    std::set<std::string> placed;
    std::function<void(const ServiceConfig&)> place = [&](const ServiceConfig& service) {
        if (!placed.insert(service.name).second) {
            return;
        }
        for (const auto& dependency : service.depends_on) {
            if (const auto* found = config.findService(dependency)) {
                place(*found);
            }
        }
        order.push_back(&service);
    };
    for (const auto& service : config.services) {
        place(service);
    }
    return order;
}

}  // namespace tau
