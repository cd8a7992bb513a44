/*
 * The baseline of the crash-to-restart benchmark: the least a supervisor can do. It runs argv[1..] and,
 * whenever that child exits, runs it again at once; nothing else (no bookkeeping, no logging, no IPC).
 * SIGTERM kills the current child by its pid, reaps it and exits.
 *
 * With -n N it runs N copies of the program instead of one and restarts whichever exits (the baseline of
 * the many-services benchmark); SIGTERM then kills each of them by its pid and reaps it.
 *
 * Both signals stay blocked and are taken with sigwaitinfo(), so an exit or a SIGTERM is never missed
 * between two checks and no timeout or polling interval is needed.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

static void endChildren(const pid_t* children, long count) {
    for (long i = 0; i < count; ++i) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
        }
    }
    for (long i = 0; i < count; ++i) {
        if (children[i] > 0) {
            waitpid(children[i], NULL, 0);
        }
    }
}

int main(int argc, char** argv) {
    long count = 1;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        char* end = NULL;
        count = strtol(argv[2], &end, 10);
        if (*argv[2] == '\0' || *end != '\0' || count < 1 || count > 1000000) {
            fprintf(stderr, "baseline_restarter: -n: '%s' is not a count from 1 to 1000000\n", argv[2]);
            return 2;
        }
        first = 3;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: %s [-n COPIES] /ABSOLUTE/PATH/OF/PROGRAM [ARGUMENT...]\n", argv[0]);
        return 2;
    }
    char** child_argv = argv + first;
    /* An exec that can never succeed would otherwise turn into an endless fork loop. */
    if (access(child_argv[0], X_OK) != 0) {
        fprintf(stderr, "baseline_restarter: cannot execute %s: %s\n", child_argv[0], strerror(errno));
        return 1;
    }
    pid_t* children = calloc((size_t)count, sizeof *children);
    if (children == NULL) {
        fprintf(stderr, "baseline_restarter: out of memory\n");
        return 1;
    }
    sigset_t handled;
    sigset_t original_mask;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigprocmask(SIG_BLOCK, &handled, &original_mask);

    for (long i = 0; i < count; ++i) {
        children[i] = startChild(child_argv, &original_mask);
        if (children[i] < 0) {
            endChildren(children, i);
            return 1;
        }
    }
    for (;;) {
        siginfo_t info;
        const int signal_number = sigwaitinfo(&handled, &info);
        if (signal_number < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "baseline_restarter: sigwaitinfo: %s\n", strerror(errno));
            endChildren(children, count);
            return 1;
        }
        if (signal_number != SIGCHLD) {
            endChildren(children, count);
            return 0;
        }
        /* One SIGCHLD may stand for several exits; reap them all without blocking. */
        pid_t exited;
        while ((exited = waitpid(-1, NULL, WNOHANG)) > 0) {
            for (long i = 0; i < count; ++i) {
                if (children[i] == exited) {
                    children[i] = startChild(child_argv, &original_mask);
                    if (children[i] < 0) {
                        endChildren(children, count);
                        return 1;
                    }
                    break;
                }
            }
        }
    }
}
