/* netlens-spawn: clone a batch of container PID 1s from a tiny process.
 *
 * Why C: the Python spawner's children run Python between clone and exec, and
 * every page the interpreter touches there (reference counts, frames, the
 * allocator) is copied on write: measured ~2.7 ms of CPU per container in page
 * faults and interpreter work, more than the kernel's own work (netns ~0.8 ms,
 * exec ~0.7 ms). Cloned from this program, a child touches a few pages.
 *
 * It does exactly what netlens_runtime/spawn.py's templated child path does
 * (see clone_child, _child there, and container_fs, confine in hostview.py):
 * the Python code stays the reference and the fallback when this program is
 * not built. Usage (run by spawner.py's start_many, never by hand):
 *
 *   netlens-spawn OUT_FD < job
 *   netlens-spawn log HALF PATH      (a container's logger: log_helper.c)
 *
 * job (native byte order, as Python's struct "="): u32 n, i32 tini_fd, i32 template_fd, then n children:
 *   i32 go_r, i32 err_w, u64 caps, i64 nofile_soft, i64 nofile_hard (-1: keep), i64 log_half,
 *   str name, str hostname, str log_path, str cgroup_dir,
 *   u32 fs_flags (1: privileged, no /proc and /sys masks), u32 nvol,
 *   (str host, str target, u32 vol_flags (1: read-only, 2: mkdir target, 4: create
 *   target file)) * nvol,
 *   blob nl_pre, u32 nl_pre_count, blob nl_post, u32 nl_post_count,
 *   u32 nsysctl, (str path, str value) * nsysctl, u32 argc, str * argc,
 *   u32 envc, str * envc, u32 privileged (1: keep the ability to gain privileges
 *   by exec, no no_new_privs), blob seccomp (a classic-BPF program, struct
 *   sock_filter[]; empty: no filter)       (str and blob: u32 length + bytes)
 * fs_flags and the volumes follow cgroup_dir; new per-child fields of other
 * work go at the end of the record.
 * Reports "pid pid ..." on OUT_FD, or "!error" when it stopped early. A child with
 * a log_path gets a logger first: the file is opened (created) here, and a fork of
 * this program runs log_loop on a pipe whose write end becomes the child's stdout
 * and stderr.
 * Each child writes READY (0x01) on err_w once its network namespace exists
 * and lo is up, waits for a byte on go_r, configures eth0, drops privileges,
 * loads its seccomp filter and execs tini (err_w is close-on-exec: EOF means
 * exec succeeded).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define OPEN_TREE_CLONE_ 1
#define MOVE_MOUNT_F_EMPTY_PATH_ 4
#define MOUNT_ATTR_RDONLY_ 1
#define MOUNT_ATTR_NOSUID_ 2
#define MOUNT_ATTR_NODEV_ 4
/* Every volume: a device node stays writable through a read-only bind (hostview.py). */
#define VOLUME_ATTRS_ (MOUNT_ATTR_NODEV_ | MOUNT_ATTR_NOSUID_)
#define NETLINK_CAP_ACK_OPT 10
#define FS_PRIVILEGED 1
#define VOL_RDONLY 1
#define VOL_MKDIR 2
#define VOL_MKFILE 4

struct buf {
    const unsigned char *p;
    size_t left;
};

struct child {
    int go_r, err_w;
    uint64_t caps;
    int64_t nofile_soft, nofile_hard, log_half;
    int log_w; /* the write end of the pipe to its logger, or -1 */
    char *name, *hostname, *log_path, *cgroup;
    uint32_t fs_flags, nvol;
    char **vol; /* host, target, host, target, ... */
    uint32_t *vol_flags;
    char *nl_pre, *nl_post;
    uint32_t nl_pre_len, nl_pre_count, nl_post_len, nl_post_count;
    uint32_t nsysctl;
    char **sysctl; /* path, value, path, value, ... */
    char **argv;   /* "tini", "--", command..., NULL */
    char **envp;
    uint32_t privileged;
    char *seccomp; /* struct sock_filter[] */
    uint32_t seccomp_len;
};

static int take(struct buf *b, void *out, size_t n) {
    if (b->left < n) return -1;
    memcpy(out, b->p, n);
    b->p += n;
    b->left -= n;
    return 0;
}

/* A NUL-terminated copy of the next length-prefixed field (len optional). */
static char *take_str(struct buf *b, uint32_t *len) {
    uint32_t n;
    if (take(b, &n, 4) || b->left < n) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, b->p, n);
    s[n] = 0;
    b->p += n;
    b->left -= n;
    if (len) *len = n;
    return s;
}

static char **take_list(struct buf *b, uint32_t *count, int extra_front) {
    uint32_t n;
    if (take(b, &n, 4) || n > 1u << 20) return NULL;
    char **v = calloc((size_t)n + extra_front + 1, sizeof(char *));
    if (!v) return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (!(v[extra_front + i] = take_str(b, NULL))) return NULL;
    if (count) *count = n;
    return v;
}

static int parse_child(struct buf *b, struct child *c) {
    uint32_t n;
    if (take(b, &c->go_r, 4) || take(b, &c->err_w, 4) || take(b, &c->caps, 8) ||
        take(b, &c->nofile_soft, 8) || take(b, &c->nofile_hard, 8) || take(b, &c->log_half, 8))
        return -1;
    c->log_w = -1;
    if (!(c->name = take_str(b, NULL)) || !(c->hostname = take_str(b, NULL)) ||
        !(c->log_path = take_str(b, NULL)) || !(c->cgroup = take_str(b, NULL)))
        return -1;
    if (take(b, &c->fs_flags, 4) || take(b, &c->nvol, 4) || c->nvol > 4096) return -1;
    c->vol = calloc((size_t)c->nvol * 2 + 1, sizeof(char *));
    c->vol_flags = calloc((size_t)c->nvol + 1, sizeof(uint32_t));
    if (!c->vol || !c->vol_flags) return -1;
    for (uint32_t i = 0; i < c->nvol; i++)
        if (!(c->vol[2 * i] = take_str(b, NULL)) || !(c->vol[2 * i + 1] = take_str(b, NULL)) ||
            take(b, &c->vol_flags[i], 4))
            return -1;
    if (!(c->nl_pre = take_str(b, &c->nl_pre_len)) || take(b, &c->nl_pre_count, 4)) return -1;
    if (!(c->nl_post = take_str(b, &c->nl_post_len)) || take(b, &c->nl_post_count, 4)) return -1;
    if (take(b, &n, 4) || n > 4096) return -1;
    c->nsysctl = n;
    c->sysctl = calloc((size_t)n * 2 + 1, sizeof(char *));
    if (!c->sysctl) return -1;
    for (uint32_t i = 0; i < 2 * n; i++)
        if (!(c->sysctl[i] = take_str(b, NULL))) return -1;
    if (!(c->argv = take_list(b, NULL, 2))) return -1;
    c->argv[0] = "tini";
    c->argv[1] = "--";
    if (!(c->envp = take_list(b, NULL, 0))) return -1;
    if (take(b, &c->privileged, 4)) return -1;
    if (!(c->seccomp = take_str(b, &c->seccomp_len)) || c->seccomp_len % sizeof(struct sock_filter) ||
        c->seccomp_len / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return -1;
    return 0;
}

/* --- in the child ------------------------------------------------------------ */

static int g_err_w = -1;
static const char *g_name = "";

static void fail(const char *step, int err) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s: %s: %s", g_name, step, strerror(err));
    if (n > 0 && write(g_err_w, msg, (size_t)n) < 0) { /* nothing left to tell */
    }
    _exit(127);
}

static void close_others(const int *keep, int n) {
    /* keep is sorted ascending, may contain -1 (skipped) */
    unsigned int lo = 0;
    for (int i = 0; i <= n; i++) {
        unsigned int fd = i < n ? (unsigned int)keep[i] : ~0U;
        if (i < n && keep[i] < 0) continue;
        if (fd > lo) syscall(SYS_close_range, lo, fd - 1, 0);
        if (i < n) lo = fd + 1;
    }
}

/* Send pre-built rtnetlink requests (each asks for an ack) and read the acks. */
static void netlink_send(const char *msgs, uint32_t len, uint32_t count, const char *step) {
    if (!count) return;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) fail(step, errno);
    int one = 1;
    setsockopt(s, SOL_NETLINK, NETLINK_CAP_ACK_OPT, &one, sizeof one);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) fail(step, errno);
    errno = 0; /* a short send leaves errno alone: report EIO then */
    if (send(s, msgs, len, 0) != (ssize_t)len) fail(step, errno ? errno : EIO);
    char rbuf[8192];
    int first = 0;
    while (count) {
        ssize_t got = recv(s, rbuf, sizeof rbuf, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            fail(step, errno);
        }
        /* signed: NLMSG_NEXT may take the remainder below zero, which NLMSG_OK must see */
        int left = (int)got;
        for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error && !first) first = -e->error;
                if (count) count--;
            }
        }
    }
    close(s);
    if (first) fail(step, first);
}

static void must_mount(const char *src, const char *dst, const char *fs, unsigned long fl,
                       const char *data, const char *step) {
    if (mount(src, dst, fs, fl, data) < 0) fail(step, errno);
}

/* The lists of hostview.py (a unit test checks they are equal). */
static const char *const proc_readonly[] = {"/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
                                            "/proc/fs"};
static const char *const proc_mask_files[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list",
                                              "/proc/timer_stats", "/proc/latency_stats",
                                              "/proc/sched_debug"};
static const char *const mask_dirs[] = {"/proc/scsi", "/proc/acpi", "/proc/asound",
                                        "/sys/firmware", "/sys/devices/virtual/powercap"};
static const char *const scratch[][2] = {{"/tmp", "mode=1777"}, {"/run", "mode=755"},
                                         {"/var/tmp", "mode=1777"}, {"/var/log", "mode=755"},
                                         {"/var/lib", "mode=755"}};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A mount whose path this kernel lacks (ENOENT) is skipped: returns 0 then, 1 if done. */
static int mount_if_there(const char *src, const char *dst, const char *fs, unsigned long fl,
                          const char *data) {
    if (mount(src, dst, fs, fl, data) == 0) return 1;
    if (errno != ENOENT) fail(dst, errno);
    return 0;
}

/* hostview.confine: Docker's default /proc and /sys masks. */
static void confine(void) {
    unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    unsigned long ro = MS_REMOUNT | MS_BIND | MS_RDONLY | fl;
    must_mount("/proc/sys", "/proc/sys", NULL, MS_BIND, NULL, "setup: /proc/sys");
    must_mount(NULL, "/proc/sys", NULL, ro, NULL, "setup: /proc/sys read-only");
    /* bound from the read-only mount, so read-only too until remounted without it */
    must_mount("/proc/sys/net", "/proc/sys/net", NULL, MS_BIND, NULL, "setup: /proc/sys/net");
    must_mount(NULL, "/proc/sys/net", NULL, MS_REMOUNT | MS_BIND | fl, NULL,
               "setup: /proc/sys/net writable");
    for (size_t i = 0; i < COUNT(proc_readonly); i++)
        if (mount_if_there(proc_readonly[i], proc_readonly[i], NULL, MS_BIND, NULL))
            must_mount(NULL, proc_readonly[i], NULL, ro, NULL, proc_readonly[i]);
    for (size_t i = 0; i < COUNT(proc_mask_files); i++)
        mount_if_there("/dev/null", proc_mask_files[i], NULL, MS_BIND, NULL);
    for (size_t i = 0; i < COUNT(mask_dirs); i++)
        mount_if_there("tmpfs", mask_dirs[i], "tmpfs", fl | MS_RDONLY, "mode=555");
}

/* mkdir -p of path's parents (mode 0755; umask is 0 here); 0 or an errno. */
static int make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int r = mkdir(path, 0755);
        *p = '/';
        if (r < 0 && errno != EEXIST) return errno;
    }
    return 0;
}

/* Attach one volume's detached tree (opened before entering the template); 0 or an errno. */
static int mount_volume(char *target, uint32_t fl, int tree) {
    int err;
    if (fl & (VOL_MKDIR | VOL_MKFILE) && (err = make_parents(target))) return err;
    if (fl & VOL_MKDIR && mkdir(target, 0755) < 0 && errno != EEXIST) return errno;
    if (fl & VOL_MKFILE) {
        int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return errno;
        close(fd);
    }
    struct { uint64_t set, clr, propagation, userns; } attr = {
        VOLUME_ATTRS_ | (fl & VOL_RDONLY ? MOUNT_ATTR_RDONLY_ : 0), 0, MS_PRIVATE, 0};
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
        return errno;
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH_) < 0)
        return errno;
    close(tree);
    return 0;
}

static void mount_volumes(struct child *c, const int *trees) {
    char step[300];
    for (uint32_t i = 0; i < c->nvol; i++) {
        int err = mount_volume(c->vol[2 * i + 1], c->vol_flags[i], trees[i]);
        if (!err) continue;
        snprintf(step, sizeof step, "setup: volume %s", c->vol[2 * i + 1]);
        fail(step, err);
    }
}

static void child_main(struct child *c, int tini_fd, int template_fd) {
    g_err_w = c->err_w;
    g_name = c->name;
    int keep[] = {0, 1, 2, c->go_r, c->err_w, tini_fd, template_fd, c->log_w};
    /* sort the small array (insertion sort) */
    int n = (int)(sizeof keep / sizeof keep[0]);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    close_others(keep, n);
    /* passed to us without close-on-exec; tini must not inherit them */
    fcntl(c->go_r, F_SETFD, FD_CLOEXEC);
    fcntl(c->err_w, F_SETFD, FD_CLOEXEC);
    fcntl(tini_fd, F_SETFD, FD_CLOEXEC);
    int log_fd = c->log_w; /* the pipe to its logger (log_helper.c), or -1 */
    /* host paths: copied before we enter the template, where they are not visible */
    int *trees = calloc((size_t)c->nvol + 1, sizeof(int));
    if (!trees) fail("setup: volumes", ENOMEM);
    for (uint32_t i = 0; i < c->nvol; i++) {
        trees[i] = (int)syscall(SYS_open_tree, AT_FDCWD, c->vol[2 * i],
                                OPEN_TREE_CLONE_ | O_CLOEXEC | AT_RECURSIVE);
        if (trees[i] < 0) fail(c->vol[2 * i], errno);
    }
    if (setns(template_fd, CLONE_NEWNS) < 0) fail("setup: setns", errno);
    close(template_fd);
    if (unshare(CLONE_NEWNS) < 0) fail("setup: unshare mount", errno);
    umask(0);
    if (sethostname(c->hostname, strlen(c->hostname)) < 0) fail("setup: sethostname", errno);
    if (unshare(CLONE_NEWNET) < 0) fail("setup: unshare net", errno);
    netlink_send(c->nl_pre, c->nl_pre_len, c->nl_pre_count, "setup: lo up");
    char ready = 1;
    if (write(c->err_w, &ready, 1) != 1) _exit(1);
    /* hostview.container_fs: /sys is mounted after unshare, so it shows our netns */
    unsigned long nosuid = MS_NOSUID | MS_NODEV;
    must_mount("proc", "/proc", "proc", nosuid | MS_NOEXEC, NULL, "setup: mount /proc");
    int sysfd = -1; /* the runtime's sysctls go through it once /proc/sys is read-only */
    if (c->nsysctl && (sysfd = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        fail("setup: /proc/sys", errno);
    must_mount("sysfs", "/sys", "sysfs", nosuid | MS_NOEXEC | MS_RDONLY, NULL, "setup: mount /sys");
    if (!(c->fs_flags & FS_PRIVILEGED)) confine();
    must_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=620", "setup: mount /dev/pts");
    must_mount("shm", "/dev/shm", "tmpfs", nosuid, "mode=1777,size=65536k", "setup: mount /dev/shm");
    for (size_t i = 0; i < COUNT(scratch); i++)
        must_mount("tmpfs", scratch[i][0], "tmpfs", nosuid, scratch[i][1], "setup: mount tmpfs");
    if (mkdir("/run/lock", 01777) < 0) fail("setup: /run/lock", errno);
    mount_volumes(c, trees);
    char go = 0;
    if (read(c->go_r, &go, 1) != 1 || go != 'g') _exit(1); /* the parent died or gave up */
    close(c->go_r);
    netlink_send(c->nl_post, c->nl_post_len, c->nl_post_count, "setup: eth0");
    if (c->nofile_soft >= 0) {
        struct rlimit rl = {(rlim_t)c->nofile_soft, (rlim_t)c->nofile_hard};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fail("setup: rlimit", errno);
    }
    for (uint32_t i = 0; i < c->nsysctl; i++) {
        const char *path = c->sysctl[2 * i], *value = c->sysctl[2 * i + 1];
        const char *rel = strncmp(path, "/proc/sys/", 10) == 0 ? path + 10 : path;
        int fd = openat(sysfd, rel, O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(path, errno);
        ssize_t len = (ssize_t)strlen(value);
        errno = 0;
        if (write(fd, value, (size_t)len) != len) fail(path, errno ? errno : EIO);
        close(fd);
    }
    if (sysfd >= 0) close(sysfd);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0) fail("setup: /dev/null", errno);
    dup2(null, 0);
    if (log_fd >= 0) {
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        close(log_fd);
    }
    close(null);
    if (chdir("/") < 0) fail("setup: chdir", errno);
    umask(022);
    /* a session and group of its own: no controlling terminal, out of reach of the
       caller's group (see spawn.py's _child: TIOCSTI, kill -- -PGID) */
    if (setsid() < 0) fail("setup: setsid", errno);
    /* The command starts with every signal at its default and none blocked, whatever
     * our caller ignored (make ignores 32 and 33, Python SIGPIPE and SIGXFSZ): exec
     * keeps ignored dispositions and the mask. The raw syscall also reaches 32 and 33,
     * which the C library's sigaction refuses. */
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = {0};
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
    for (int cap = 0; cap < 64; cap++)
        if (!(c->caps & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) break;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    uint32_t lo = (uint32_t)c->caps, hi = (uint32_t)(c->caps >> 32);
    struct __user_cap_data_struct data[2] = {{lo, lo, lo}, {hi, hi, hi}};
    if (syscall(SYS_capset, &hdr, data) < 0) fail("setup: capset", errno);
    if (!c->privileged && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail("setup: no_new_privs", errno);
    if (c->seccomp_len) { /* last: the filter may refuse what came before */
        struct sock_fprog prog = {(unsigned short)(c->seccomp_len / sizeof(struct sock_filter)),
                                  (struct sock_filter *)c->seccomp};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
            fail("setup: seccomp", errno);
    }
    syscall(SYS_execveat, tini_fd, "", c->argv, c->envp, AT_EMPTY_PATH);
    fail("setup: exec tini", errno);
}

/* --- in the helper ------------------------------------------------------------ */

static void report(int out, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n > 0 && write(out, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1)) < 0) {
    }
}

/* Report the pids cloned so far, then "!what: error": the caller aborts them. */
static int stop(int out, const char *pids, size_t plen, const char *what, int err) {
    if (plen && write(out, pids, plen) < 0) return 1;
    report(out, "!%s: %s", what, strerror(err));
    return 1;
}

void log_loop(long long half, const char *path);
int log_main(int argc, char **argv);

/* Open (create) the child's log and fork its logger: c->log_w is the pipe's write end. */
static int start_logger(struct child *c) {
    int log = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (log < 0) return -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        int err = errno;
        close(log);
        errno = err;
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(p[0], 0) < 0 || dup2(log, 1) < 0) _exit(1);
        setsid();
        log_loop(c->log_half, c->log_path);
        _exit(0);
    }
    int err = errno;
    close(p[0]);
    close(log);
    if (pid < 0) {
        close(p[1]);
        errno = err;
        return -1;
    }
    c->log_w = p[1];
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "log")) return log_main(argc, argv);
    if (argc != 2) return 2;
    int out = atoi(argv[1]);
    fcntl(out, F_SETFD, FD_CLOEXEC);
    size_t cap = 1 << 16, len = 0;
    unsigned char *job = malloc(cap);
    for (;;) {
        if (!job) return report(out, "!out of memory"), 1;
        ssize_t got = read(0, job + len, cap - len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return report(out, "!read job: %s", strerror(errno)), 1;
        if (got == 0) break;
        len += (size_t)got;
        if (len == cap) job = realloc(job, cap *= 2);
    }
    /* children inherit stdio until they close it: a pipe held open by children
       waiting for go would never reach EOF */
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) dup2(null, fd);
    if (null > 2) close(null);
    struct buf b = {job, len};
    uint32_t n;
    int32_t tini_fd, template_fd;
    if (take(&b, &n, 4) || take(&b, &tini_fd, 4) || take(&b, &template_fd, 4))
        return report(out, "!bad job header"), 1;
    struct child *kids = calloc(n ? n : 1, sizeof *kids);
    for (uint32_t i = 0; i < n; i++)
        if (!kids || parse_child(&b, &kids[i])) return report(out, "!bad job entry %u", i), 1;
    char *pids = malloc((size_t)n * 12 + 1);
    if (!pids) return report(out, "!out of memory"), 1;
    size_t plen = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct child *c = &kids[i];
        if (c->log_path[0] && start_logger(c) < 0) return stop(out, pids, plen, "log", errno);
        int cg = -1;
        if (c->cgroup[0]) {
            cg = open(c->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (cg < 0) return stop(out, pids, plen, "cgroup", errno);
        }
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | (cg >= 0 ? CLONE_INTO_CGROUP : 0);
        ca.exit_signal = SIGCHLD;
        ca.cgroup = cg >= 0 ? (uint64_t)cg : 0;
        long pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid == 0) child_main(c, tini_fd, template_fd);
        int err = errno;
        if (cg >= 0) close(cg);
        close(c->go_r);
        close(c->err_w);
        if (c->log_w >= 0) close(c->log_w);
        if (pid < 0) return stop(out, pids, plen, "clone", err);
        plen += (size_t)sprintf(pids + plen, plen ? " %ld" : "%ld", pid);
    }
    if (write(out, pids, plen) < 0) return 1;
    return 0;
}
