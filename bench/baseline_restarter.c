/*
 * The baseline of the crash-to-restart benchmark: the least a supervisor can do. It runs argv[1..] and,
 * whenever that child exits, runs it again at once; nothing else (no bookkeeping, no logging, no IPC).
 * SIGTERM kills the current child by its pid, reaps it and exits.
 *
 * Both signals stay blocked and are taken with sigwaitinfo(), so an exit or a SIGTERM is never missed
 * between two checks and no timeout or polling interval is needed.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t startChild(char** child_argv, const sigset_t* original_mask) {
    const pid_t pid = fork();
    if (pid == 0) {
        /* The blocked mask would survive exec and leave the child deaf to SIGTERM. */
        sigprocmask(SIG_SETMASK, original_mask, NULL);
        execv(child_argv[0], child_argv);
        _exit(127);
    }
    if (pid < 0) {
        fprintf(stderr, "baseline_restarter: fork: %s\n", strerror(errno));
    }
    return pid;
}

static void endChild(pid_t child) {
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s /ABSOLUTE/PATH/OF/PROGRAM [ARGUMENT...]\n", argv[0]);
        return 2;
    }
    /* An exec that can never succeed would otherwise turn into an endless fork loop. */
    if (access(argv[1], X_OK) != 0) {
        fprintf(stderr, "baseline_restarter: cannot execute %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    sigset_t handled;
    sigset_t original_mask;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigprocmask(SIG_BLOCK, &handled, &original_mask);

    pid_t child = startChild(argv + 1, &original_mask);
    if (child < 0) {
        return 1;
    }
    for (;;) {
        siginfo_t info;
        const int signal_number = sigwaitinfo(&handled, &info);
        if (signal_number < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "baseline_restarter: sigwaitinfo: %s\n", strerror(errno));
            endChild(child);
            return 1;
        }
        if (signal_number != SIGCHLD) {
            endChild(child);
            return 0;
        }
        /* One SIGCHLD may stand for several exits; reap them all without blocking. */
        pid_t exited;
        while ((exited = waitpid(-1, NULL, WNOHANG)) > 0) {
            if (exited == child) {
                child = startChild(argv + 1, &original_mask);
                if (child < 0) {
                    return 1;
                }
            }
        }
    }
}
