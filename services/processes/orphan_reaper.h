#pragma once
// As child subreaper, the root inherits every orphaned descendant of its services (a daemon that
// double-forks, a worker whose parent crashed). This reaps those, and only those: the supervised main
// processes are reaped through their pidfds, with their exit status, by the supervisor.

#include <functional>
#include <sys/types.h>
#include <vector>

namespace tau {

class OrphanReaper {
  public:
    // `managed()`: the pids reaped elsewhere, which must be left alone. Asked once per reap, so that a reap
    // costs the same with a thousand services as a lookup each.
    explicit OrphanReaper(std::function<std::vector<pid_t>()> managed);

    // Makes the calling process the subreaper of its descendants.
    static void becomeSubreaper();

    // Reaps every exited child that is not managed; returns the pids reaped.
    std::vector<pid_t> reap();

  private:
    std::function<std::vector<pid_t>()> managed_;
};

// The children of this process, from /proc/self/task/*/children.
std::vector<pid_t> ownChildren();

} // namespace tau
