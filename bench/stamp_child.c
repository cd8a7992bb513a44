/*
 * The supervised child of the crash-to-restart benchmark. As soon as it runs it reports
 * "<pid> <CLOCK_MONOTONIC in ns>\n" to the file or FIFO named by argv[1], in one write() so that lines from
 * successive children never interleave, and then waits to be killed. SIGTERM ends it with status 0, so a
 * supervisor that stops it cleanly does not see a crash.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void exitOnTerm(int signal_number) {
    (void)signal_number;
    _exit(0);
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STAMP_FILE_OR_FIFO\n", argv[0]);
        return 2;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);

    struct sigaction on_term;
    memset(&on_term, 0, sizeof on_term);
    on_term.sa_handler = exitOnTerm;
    sigemptyset(&on_term.sa_mask);
    sigaction(SIGTERM, &on_term, NULL);

    const int stamp_fd = open(argv[1], O_WRONLY | O_APPEND | O_CLOEXEC);
    if (stamp_fd < 0) {
        fprintf(stderr, "stamp_child: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char line[64];
    const long long nanoseconds = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    const int length = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(), nanoseconds);
    /* Shorter than PIPE_BUF, so the write to a FIFO is atomic: all of the line or nothing. */
    if (write(stamp_fd, line, (size_t)length) != length) {
        fprintf(stderr, "stamp_child: cannot write to %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    for (;;) {
        pause();
    }
}
