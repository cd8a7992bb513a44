// A daemon written the way one is written for systemd, against libsystemd's own sd_notify(), so that the
// tests can prove such a daemon works under tau-monitor unchanged. Every behaviour is chosen by a flag;
// see usage() below. Timings are measured from the start of main() on CLOCK_MONOTONIC.
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define NEVER UINT64_MAX
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_US UINT64_C(1000)

static const char* program_name = "tau-test-notify-service";

struct options {
    uint64_t ready_after_ms;
    bool no_ready;
    const char* status;
    bool watchdog;
    uint64_t hang_after_ms; // NEVER when not given
    uint64_t exit_after_ms; // NEVER when not given
    bool extend_given;
    uint64_t extend_usec;
    bool mainpid_child;
    const char* stamp_path;
};

static void usage(FILE* out) {
    fprintf(out,
            "usage: %s [options]\n"
            "  --ready-after-ms N  send READY=1 and STATUS=ready after N ms (default 0)\n"
            "  --no-ready          never send READY=1\n"
            "  --status TEXT       also send STATUS=TEXT after readiness\n"
            "  --watchdog          send WATCHDOG=1 every WATCHDOG_USEC/2 if the watchdog is enabled\n"
            "  --hang-after-ms N   stop the watchdog pings (but keep running) after N ms\n"
            "  --exit-after-ms N   exit with status 0 after N ms (default: run until SIGTERM)\n"
            "  --extend-usec N     send EXTEND_TIMEOUT_USEC=N before readiness\n"
            "  --mainpid-child     fork a child that sleeps, and send MAINPID=<its pid>\n"
            "  --stamp FILE        append \"<pid> <CLOCK_MONOTONIC ns>\" to FILE at start\n",
            program_name);
}

static uint64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec;
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
    return a < b ? a : b;
}

// Milliseconds are later multiplied into nanoseconds, so values that would overflow are refused here.
static bool parse_count(const char* text, uint64_t limit, uint64_t* value) {
    if (text[0] < '0' || text[0] > '9') {
        return false; // strtoull would quietly accept whitespace and a minus sign
    }
    char* end = NULL;
    errno = 0;
    const unsigned long long parsed = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || parsed > limit) {
        return false;
    }
    *value = parsed;
    return true;
}

static bool parse_options(int argc, char** argv, struct options* options) {
    enum {
        READY_AFTER = 1,
        NO_READY,
        STATUS,
        WATCHDOG,
        HANG_AFTER,
        EXIT_AFTER,
        EXTEND,
        MAINPID_CHILD,
        STAMP
    };
    static const struct option long_options[] = {
        {"ready-after-ms", required_argument, NULL, READY_AFTER},
        {"no-ready", no_argument, NULL, NO_READY},
        {"status", required_argument, NULL, STATUS},
        {"watchdog", no_argument, NULL, WATCHDOG},
        {"hang-after-ms", required_argument, NULL, HANG_AFTER},
        {"exit-after-ms", required_argument, NULL, EXIT_AFTER},
        {"extend-usec", required_argument, NULL, EXTEND},
        {"mainpid-child", no_argument, NULL, MAINPID_CHILD},
        {"stamp", required_argument, NULL, STAMP},
        {NULL, 0, NULL, 0},
    };
    const uint64_t max_ms = (NEVER - 1) / NS_PER_MS / 2;
    *options = (struct options){.hang_after_ms = NEVER, .exit_after_ms = NEVER};
    int option;
    int option_index = 0;
    while ((option = getopt_long(argc, argv, "", long_options, &option_index)) != -1) {
        bool valid = true;
        switch (option) {
        case READY_AFTER:
            valid = parse_count(optarg, max_ms, &options->ready_after_ms);
            break;
        case NO_READY:
            options->no_ready = true;
            break;
        case STATUS:
            options->status = optarg;
            break;
        case WATCHDOG:
            options->watchdog = true;
            break;
        case HANG_AFTER:
            valid = parse_count(optarg, max_ms, &options->hang_after_ms);
            break;
        case EXIT_AFTER:
            valid = parse_count(optarg, max_ms, &options->exit_after_ms);
            break;
        case EXTEND:
            options->extend_given = parse_count(optarg, UINT64_MAX, &options->extend_usec);
            valid = options->extend_given;
            break;
        case MAINPID_CHILD:
            options->mainpid_child = true;
            break;
        case STAMP:
            options->stamp_path = optarg;
            break;
        default:
            return false;
        }
        if (!valid) {
            fprintf(stderr, "%s: invalid number '%s' for --%s\n", program_name, optarg,
                    long_options[option_index].name);
            return false;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", program_name, argv[optind]);
        return false;
    }
    return true;
}

// A failed notification is reported but not fatal: a real daemon keeps serving when its manager is gone.
static void notify(const char* state) {
    const int result = sd_notify(0, state);
    if (result < 0) {
        fprintf(stderr, "%s: sd_notify(\"%s\"): %s\n", program_name, state, strerror(-result));
    }
}

// One write() of the whole line, so that lines from several instances appending at once never interleave.
static bool write_stamp(const char* path, uint64_t start_ns) {
    char line[64];
    const int length = snprintf(line, sizeof line, "%ld %" PRIu64 "\n", (long)getpid(), start_ns);
    const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot open %s: %s\n", program_name, path, strerror(errno));
        return false;
    }
    const bool written = write(fd, line, (size_t)length) == (ssize_t)length;
    if (!written) {
        fprintf(stderr, "%s: cannot write %s: %s\n", program_name, path, strerror(errno));
    }
    close(fd);
    return written;
}

// The child stands in for the real worker of a daemon that hands its main-process role over with MAINPID=.
// It ends on SIGTERM like any process; it is not tied to the parent's life, since outliving it is the point.
static pid_t fork_sleeping_child(const sigset_t* blocked) {
    const pid_t child = fork();
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, blocked, NULL);
        for (;;) {
            pause();
        }
    }
    return child;
}

int main(int argc, char** argv) {
    struct options options;
    if (!parse_options(argc, argv, &options)) {
        usage(stderr);
        return 2;
    }

    // Blocked from the start and collected with sigtimedwait(), so a SIGTERM sent at any moment, even before
    // the loop is reached, is answered with STOPPING=1 rather than killing the process silently.
    sigset_t termination;
    sigemptyset(&termination);
    sigaddset(&termination, SIGTERM);
    sigprocmask(SIG_BLOCK, &termination, NULL);

    const uint64_t start_ns = monotonic_ns();
    if (options.stamp_path != NULL && !write_stamp(options.stamp_path, start_ns)) {
        return 1;
    }
    if (options.mainpid_child) {
        const pid_t child = fork_sleeping_child(&termination);
        if (child < 0) {
            fprintf(stderr, "%s: fork: %s\n", program_name, strerror(errno));
            return 1;
        }
        char state[32];
        snprintf(state, sizeof state, "MAINPID=%ld", (long)child);
        notify(state);
    }
    if (options.extend_given) {
        char state[48];
        snprintf(state, sizeof state, "EXTEND_TIMEOUT_USEC=%" PRIu64, options.extend_usec);
        notify(state);
    }

    uint64_t ping_interval_ns = 0;
    uint64_t watchdog_usec = 0;
    if (options.watchdog && sd_watchdog_enabled(0, &watchdog_usec) > 0) {
        // Half the timeout, as sd_watchdog_enabled(3) recommends; at least 1 us so the loop cannot spin.
        ping_interval_ns = (watchdog_usec / 2 > 0 ? watchdog_usec / 2 : 1) * NS_PER_US;
    }

    const uint64_t ready_at = start_ns + options.ready_after_ms * NS_PER_MS;
    const uint64_t hang_at =
        options.hang_after_ms == NEVER ? NEVER : start_ns + options.hang_after_ms * NS_PER_MS;
    const uint64_t exit_at =
        options.exit_after_ms == NEVER ? NEVER : start_ns + options.exit_after_ms * NS_PER_MS;
    uint64_t next_ping = start_ns + ping_interval_ns;
    bool ready_announced = false;

    for (;;) {
        const uint64_t now = monotonic_ns();
        if (!ready_announced && now >= ready_at) {
            if (!options.no_ready) {
                notify("READY=1\nSTATUS=ready");
            }
            if (options.status != NULL) {
                char* state = NULL;
                if (asprintf(&state, "STATUS=%s", options.status) >= 0) {
                    notify(state);
                    free(state);
                }
            }
            ready_announced = true;
        }
        if (now >= exit_at) {
            return 0;
        }
        const bool pinging = ping_interval_ns > 0 && now < hang_at;
        if (pinging && now >= next_ping) {
            notify("WATCHDOG=1");
            // From now rather than from the missed slot: a stalled service must not catch up with a burst.
            next_ping = now + ping_interval_ns;
        }

        uint64_t wake_at = exit_at;
        if (!ready_announced) {
            wake_at = min_u64(wake_at, ready_at);
        }
        if (pinging) {
            wake_at = min_u64(wake_at, next_ping);
        }
        int signal_number;
        if (wake_at == NEVER) {
            signal_number = sigwaitinfo(&termination, NULL);
        } else {
            const uint64_t wait_ns = wake_at > now ? wake_at - now : 0;
            const struct timespec timeout = {.tv_sec = (time_t)(wait_ns / UINT64_C(1000000000)),
                                             .tv_nsec = (long)(wait_ns % UINT64_C(1000000000))};
            signal_number = sigtimedwait(&termination, NULL, &timeout);
        }
        if (signal_number == SIGTERM) {
            notify("STOPPING=1");
            return 0;
        }
        if (signal_number < 0 && errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "%s: waiting for signals: %s\n", program_name, strerror(errno));
            return 1;
        }
    }
}
