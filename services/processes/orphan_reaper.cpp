#include "orphan_reaper.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>

namespace tau {

OrphanReaper::OrphanReaper(std::function<std::vector<pid_t>()> managed) : managed_(std::move(managed)) {}

void OrphanReaper::becomeSubreaper() {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        throw std::runtime_error(std::string("PR_SET_CHILD_SUBREAPER: ") + std::strerror(errno));
    }
}

std::vector<pid_t> ownChildren() {
    std::vector<pid_t> children;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        std::ifstream list(task.path() / "children");
        pid_t pid = 0;
        while (list >> pid) {
            children.push_back(pid);
        }
    }
    return children;
}

std::vector<pid_t> OrphanReaper::reap() {
    std::vector<pid_t> reaped;
    const auto children = ownChildren();
    if (children.empty()) {
        return reaped;
    }
    auto managed = managed_();
    std::sort(managed.begin(), managed.end());
    for (const pid_t pid : children) {
        if (std::binary_search(managed.begin(), managed.end(), pid)) {
            continue;
        }
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) == 0 && info.si_pid == pid) {
            reaped.push_back(pid);
        }
    }
    return reaped;
}

} // namespace tau
