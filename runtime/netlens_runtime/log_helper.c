/* The logger of a detached container: caps and rotates its log (netlens-spawn log).
 *
 * netlens has no daemon, so a detached container's stdout and stderr go into a
 * pipe read by this small process, one per container, started by whoever
 * clones the container (runtime/netlens_runtime/logger.py, or netlens-spawn
 * itself for a batch, which forks it without an exec). It appends what it reads
 * to the log file; when the file would grow past HALF bytes it starts a new PATH
 * (swapped in with renameat2(RENAME_EXCHANGE), so PATH always exists) and the old
 * one becomes PATH.1 (replacing the one before), at a line end when one fits. So the container's log never takes more than 2 * HALF bytes, the
 * --log-size, and `netlens logs` reads PATH.1 then PATH. It exits at EOF, when
 * the container's last process is gone.
 *
 * The current file is flock()ed (exclusive) while this program writes it, so
 * that a reader who saw the container stop can wait for the last of its output.
 *
 * Usage (never by hand): netlens-spawn log HALF PATH
 *   stdin: the read end of the container's pipe; stdout: PATH, already opened
 *   O_APPEND by the caller (so a removed container's file is never recreated:
 *   the only file this program creates is a rotation's new PATH, and only while
 *   its current file is still the one at PATH). Every other fd is closed.
 *
 * Measured on the 2-core reference VM: ~50 kB of private memory per logger, a
 * fork from netlens-spawn 0.12 ms, a posix_spawn from Python 0.5-2 ms.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

void log_loop(long long half, const char *path);
int log_main(int argc, char **argv);

/* Start a new current file: an empty one is swapped in for it (the log is never
 * missing, `netlens logs` may run at any time), then the old one becomes PATH.1.
 * 0, or -1 when the file at PATH is no longer ours (the container was removed)
 * or a step failed. */
static int rotate(int dir, const char *base, const char *old, const char *tmp) {
    struct stat mine, there;
    if (fstat(1, &mine) < 0 || fstatat(dir, base, &there, AT_SYMLINK_NOFOLLOW) < 0) return -1;
    if (mine.st_dev != there.st_dev || mine.st_ino != there.st_ino) return -1;
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0) return -1;
    if (syscall(SYS_renameat2, dir, tmp, dir, base, RENAME_EXCHANGE) == 0) {
        if (renameat(dir, tmp, dir, old) < 0) unlinkat(dir, tmp, 0);
    } else if (renameat(dir, base, dir, old) < 0 || renameat(dir, tmp, dir, base) < 0) {
        unlinkat(dir, tmp, 0); /* no exchange here (an old file system): two renames */
        close(fd);
        return -1;
    }
    if (dup2(fd, 1) < 0) return -1;
    close(fd);
    flock(1, LOCK_EX | LOCK_NB);
    return 0;
}

/* How much of p[0..n) to write into `room` bytes: all of it if it fits, else up to the
 * last line end that fits, else `room` (a line longer than the room is split). */
static size_t fitting(const char *p, size_t n, long long room) {
    if ((long long)n <= room) return n;
    if (room <= 0) return 0;
    const char *nl = memrchr(p, '\n', (size_t)room);
    return nl ? (size_t)(nl - p) + 1 : (size_t)room;
}

void log_loop(long long half, const char *path) {
    static char buf[1 << 16];
    char dir_path[PATH_MAX], base[NAME_MAX + 1], old[NAME_MAX + 1], tmp[NAME_MAX + 1];
    syscall(SYS_close_range, 3U, ~0U, 0);
    prctl(PR_SET_NAME, "netlens-log", 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    const char *slash = strrchr(path, '/');
    int dir = -1;
    if (slash && (size_t)(slash - path) < sizeof dir_path && strlen(slash + 1) + 32 <= NAME_MAX) {
        memcpy(dir_path, path, (size_t)(slash - path));
        dir_path[slash - path] = 0;
        strcpy(base, slash + 1);
        strcpy(old, base);
        strcat(old, ".1");
        /* a temporary name as state.py makes them (gc removes it if we die) */
        snprintf(tmp, sizeof tmp, ".%s.%ld.tmp", base, (long)getpid());
        dir = open(dir_path[0] ? dir_path : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    /* Held while we write it: `netlens logs -f` waits for it to know it has it all. */
    flock(1, LOCK_EX | LOCK_NB);
    struct stat st;
    long long size = fstat(1, &st) == 0 ? (long long)st.st_size : 0;
    int keep = dir >= 0 && half > 0; /* else: drain and drop, so the container never blocks */
    for (;;) {
        ssize_t got = read(0, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        const char *p = buf;
        size_t left = (size_t)got;
        while (keep && left) {
            size_t n = fitting(p, left, half - size);
            if (n == 0) {
                if (rotate(dir, base, old, tmp) < 0) keep = 0;
                size = 0;
                continue;
            }
            ssize_t put = write(1, p, n);
            if (put < 0 && errno == EINTR) continue;
            if (put <= 0) break; /* a full disk: this chunk is lost, the next may fit */
            size += put;
            p += put;
            left -= (size_t)put;
        }
    }
}

int log_main(int argc, char **argv) {
    if (argc != 4) return 2;
    char *end;
    long long half = strtoll(argv[2], &end, 10);
    if (*end || half <= 0) return 2;
    setsid(); /* already its own session when spawned with one: then this fails, harmlessly */
    log_loop(half, argv[3]);
    return 0;
}
