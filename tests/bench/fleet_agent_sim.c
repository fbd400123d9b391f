/* A simulated `netlens agent` for the fleet bench (tests/bench/test_bench_fleet.py).
 *
 * The bench precomputes what each simulated server's agent would send (its header,
 * its dump, a rate sample) into files once; this program only writes them, so the
 * 50 "servers" that share the bench machine's cores with the client cost as little
 * as a real server's agent costs the client: nothing. Like the agent: the header and
 * the dump at once, then one sample per --interval (read from the command the
 * client asked for, SSH_ORIGINAL_COMMAND), the first an interval after the dump,
 * until stdin closes (sshd closes it when the client closes the channel) or the
 * reader goes away (EPIPE or SIGPIPE).
 *
 * Usage: fleet_agent_sim DIR NAME  (reads DIR/NAME.header, DIR/NAME.dump, DIR/sample.json)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *slurp(const char *dir, const char *name, const char *ext, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 1 << 20, n = 0, got;
    char *buf = malloc(cap);
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf == NULL) {
        perror("malloc");
        exit(2);
    }
    *len = n;
    return buf;
}

static int put(const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(1, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR NAME\n", argv[0]);
        return 2;
    }
    double interval = 1.0;
    const char *cmd = getenv("SSH_ORIGINAL_COMMAND");
    const char *opt = cmd != NULL ? strstr(cmd, "--interval ") : NULL;
    if (opt != NULL)
        interval = atof(opt + strlen("--interval "));
    if (!(interval > 0))
        interval = 1.0;
    size_t hl, dl, sl;
    char *header = slurp(argv[1], argv[2], ".header", &hl);
    char *dump = slurp(argv[1], argv[2], ".dump", &dl);
    char *sample = slurp(argv[1], "sample", ".json", &sl);
    if (put(header, hl) != 0 || put(dump, dl) != 0)
        return 0;
    double due = now() + interval;
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    char scratch[4096];
    for (;;) {
        double left = due - now();
        int r = poll(&pfd, 1, left > 0 ? (int)(left * 1000.0 + 0.5) : 0);
        if (r < 0 && errno != EINTR)
            return 1;
        if (r > 0 && read(0, scratch, sizeof scratch) <= 0)
            return 0; /* stdin closed: the client went away */
        if (now() >= due) {
            if (put(sample, sl) != 0)
                return 0;
            due += interval;
        }
    }
}
