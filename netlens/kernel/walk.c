/* netlens-walk: the namespace walk of netlens/kernel/serve.py, in C.
 *
 * Why: with a thousand namespaces the discovery helper (serve.serve in enter
 * mode) is the long pole of `netlens dump`; the kernel work per namespace is
 * small and the Python around it (ctypes setns, socket objects, bytes slicing,
 * marshal) cost as much again. This program makes the same syscalls in the
 * same order and writes the same frames, so the parent (sources._Pump) reads
 * either without knowing which one ran; the Python helper stays the fallback.
 *
 *   netlens-walk NAMES MODE FD...      NAMES: comma-separated request names
 *                                      (wire.REQUESTS and "netconf"); MODE:
 *                                      enter, enter+nat or enter+nat+legacy;
 *                                      FDs: inherited nsfs handles, in order
 *   netlens-walk decode NAME < reply   the marshal bytes nlw_decode gives for
 *                                      one raw reply (tests); exit 3: declined
 *
 * For each FD: setns(FD, CLONE_NEWNET); with nat, open a NETLINK_NETFILTER
 * socket and start an NFT_MSG_GETCHAIN dump (and, with legacy, read
 * /proc/thread-self/net/ip{,6}_tables_names); open a NETLINK_ROUTE socket and
 * run the requests as wire.exchange does (same request bytes and sequence
 * numbers, same batches, EBUSY re-sends, NLM_F_DUMP_INTR detection); read the
 * chain dump; close both sockets (nothing is kept open in a namespace once the
 * walk moves on) and write the namespace's frames (serve.FRAME "=IHBI": fd
 * position, name position, status, length; then the payload). Nothing in any
 * namespace is created or changed: only dumps and gets are sent.
 *
 * Exit codes: 0 done, 1 the parent went away, memory ran out or the handles
 * did not arrive (setns: EBADF; the parent falls back to reading directly),
 * 2 usage (the builder's "it starts" check).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "walk_decode.h"

#ifndef NETLINK_NETFILTER
#define NETLINK_NETFILTER 12
#endif

enum { STATUS_DATA = 0, STATUS_INTERRUPTED = 1, STATUS_ERROR = 2, STATUS_DECODED = 3, STATUS_NAT = 4 };

#define FRAME_SIZE 11          /* "=IHBI" */
#define RECV_SIZE 65536        /* wire.exchange: sock.recv(65536) */
#define CHAIN_RECV_SIZE 131072 /* serve._chain_dump: sock.recv(1 << 17) */
#define ROUTE_RCVBUF (1 << 18)
#define ROUTE_TIMEOUT_S 5
#define NF_TIMEOUT_S 2
#define PROC_READ_SIZE 65536

/* --- growable buffers ------------------------------------------------------ */
static void out_of_memory(void)
{
    _exit(1); /* the parent sees the pipe end early and reads the rest itself */
}

static void buf_reserve(struct nlw_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        out_of_memory();
    size_t want = b->len + extra;
    if (want <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            out_of_memory();
        cap *= 2;
    }
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        out_of_memory();
    b->data = p;
    b->cap = cap;
}

static void buf_put(struct nlw_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_u8(struct nlw_buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    buf_put(b, &c, 1);
}

static void buf_le32(struct nlw_buf *b, uint32_t v)
{
    unsigned char c[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
    buf_put(b, c, 4);
}

static void frame(struct nlw_buf *b, uint32_t pos, uint16_t idx, uint8_t status, size_t len)
{
    unsigned char h[FRAME_SIZE];
    uint32_t n = (uint32_t)len;
    if (len > UINT32_MAX)
        out_of_memory(); /* a 4 GiB reply: cannot be framed */
    memcpy(h, &pos, 4);
    memcpy(h + 4, &idx, 2);
    h[6] = status;
    memcpy(h + 7, &n, 4);
    buf_put(b, h, sizeof h);
}

/* --- output ------------------------------------------------------------------ */
static void write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(1); /* EPIPE: the parent gave up (timeout, interrupt); just stop */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* --- requests (wire.REQUESTS, wire.NETCONF) ------------------------------------ */
enum { R_LINK, R_ADDR, R_ROUTE, R_RULE, R_NEIGH, R_FDB, R_QDISC, R_NETCONF, R_COUNT };

static const struct {
    const char *name;
    uint16_t type;
    uint8_t family;
    int is_long; /* wire.LONG_DUMPS: NLMSG_DONE comes in a datagram of its own */
} REQ[R_COUNT] = {
    [R_LINK] = {"link", RTM_GETLINK, AF_UNSPEC, 1},
    [R_ADDR] = {"addr", RTM_GETADDR, AF_UNSPEC, 1},
    [R_ROUTE] = {"route", RTM_GETROUTE, AF_UNSPEC, 1},
    [R_RULE] = {"rule", RTM_GETRULE, AF_UNSPEC, 0},
    [R_NEIGH] = {"neigh", RTM_GETNEIGH, AF_UNSPEC, 0},
    [R_FDB] = {"fdb", RTM_GETNEIGH, AF_BRIDGE, 0},
    [R_QDISC] = {"qdisc", RTM_GETQDISC, AF_UNSPEC, 0},
    [R_NETCONF] = {"netconf", RTM_GETNETCONF, 0, 0},
};

static void put_hdr(struct nlw_buf *b, uint32_t len, uint16_t type, uint16_t flags, uint32_t seq)
{
    struct nlmsghdr h = {.nlmsg_len = len, .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq};
    buf_put(b, &h, sizeof h);
}

/* wire.dump_request: the header plus the family's fixed struct, all zero but
 * the family (ifinfomsg 16 bytes, ifaddrmsg 8, rtmsg/fib_rule_hdr 12, ndmsg 12,
 * tcmsg 20). */
static void put_dump_request(struct nlw_buf *b, int r, uint32_t seq)
{
    unsigned char body[20] = {0};
    size_t blen;
    switch (REQ[r].type) {
    case RTM_GETLINK: blen = 16; break;
    case RTM_GETADDR: blen = 8; break;
    case RTM_GETQDISC: blen = 20; break;
    default: blen = 12; break;
    }
    body[0] = REQ[r].family;
    put_hdr(b, (uint32_t)(16 + blen), REQ[r].type, NLM_F_REQUEST | NLM_F_DUMP, seq);
    buf_put(b, body, blen);
}

/* wire.netconf_request: family, 3 pad bytes, NETCONFA_IFINDEX (int32). */
static void put_netconf_request(struct nlw_buf *b, uint8_t family, int32_t ifindex, uint32_t seq)
{
    unsigned char body[12] = {family, 0, 0, 0};
    uint16_t nla_len = 8, nla_type = 1; /* NETCONFA_IFINDEX */
    memcpy(body + 4, &nla_len, 2);
    memcpy(body + 6, &nla_type, 2);
    memcpy(body + 8, &ifindex, 4);
    put_hdr(b, 16 + sizeof body, RTM_GETNETCONF, NLM_F_REQUEST, seq);
    buf_put(b, body, sizeof body);
}

static const struct {
    uint8_t family;
    int32_t ifindex;
} NETCONF_QUERIES[] = {{AF_INET, -1}, {AF_INET, -2}, {AF_INET6, -1}};

#define NQUERIES (sizeof NETCONF_QUERIES / sizeof NETCONF_QUERIES[0])
#define MAX_SEQ (R_COUNT + NQUERIES)

/* --- one namespace's replies --------------------------------------------------- */
enum { OUT_NONE, OUT_DATA, OUT_ERROR };

struct reply {
    int state;          /* OUT_*: wire.exchange's ``out`` */
    int interrupted;    /* NLM_F_DUMP_INTR seen (any round) */
    int has_part;       /* parts of this round */
    struct nlw_buf part; /* this round's datagrams */
    struct nlw_buf data; /* the final reply bytes */
    char err[160];      /* "errno:text" */
};

static struct reply replies[R_COUNT];

static void set_errno_text(char *dst, size_t n, int code, const char *text)
{
    snprintf(dst, n, "%d:%s", code, text);
}

/* wire._batches: the short requests and the first long dump in one send, then
 * each further long dump alone. ``names`` (kinds, no repeats) -> ``out``. */
static size_t batches(const int *names, size_t n, int out[][R_COUNT], size_t *sizes)
{
    size_t nb = 0, k = 0;
    int first_long = -1;
    for (size_t i = 0; i < n; i++)
        if (!REQ[names[i]].is_long)
            out[0][k++] = names[i];
        else if (first_long < 0)
            first_long = names[i];
    if (first_long >= 0)
        out[0][k++] = first_long;
    sizes[nb++] = k;
    int seen_first = 0;
    for (size_t i = 0; i < n; i++) {
        if (!REQ[names[i]].is_long)
            continue;
        if (!seen_first) {
            seen_first = 1;
            continue;
        }
        out[nb][0] = names[i];
        sizes[nb++] = 1;
    }
    return nb;
}

static int any_interrupted(const unsigned char *p, size_t n)
{
    if (n & 3)
        return 0;
    size_t off = 0;
    while (off + 16 <= n) {
        uint16_t flags;
        uint32_t ln;
        memcpy(&flags, p + off + 6, 2);
        if (flags & NLM_F_DUMP_INTR)
            return 1;
        memcpy(&ln, p + off, 4);
        if (ln < 16)
            break;
        off += ((size_t)ln + 3) & ~(size_t)3; /* size_t: a huge length cannot wrap to 0 */
    }
    return 0;
}

static ssize_t recv_retry(int sock, unsigned char *p, size_t n)
{
    ssize_t got;
    do
        got = recv(sock, p, n, 0);
    while (got < 0 && errno == EINTR);
    return got;
}

static int send_all_retry(int sock, const unsigned char *p, size_t n)
{
    ssize_t sent;
    do
        sent = send(sock, p, n, 0);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? -errno : 0;
}

static unsigned char rbuf[CHAIN_RECV_SIZE];
static const unsigned char DONE_HEAD[6] = {0x14, 0, 0, 0, NLMSG_DONE, 0};

/* wire.exchange on ``sock`` for ``want`` (kinds, no repeats). Returns 0, or -1
 * with ``why`` ("errno:text") when the walk of this socket failed: then every
 * name gets that error (wire.exchange_or_error). */
static int exchange(int sock, const int *want, size_t nwant, char *why, size_t whylen)
{
    int rounds[R_COUNT + 1][R_COUNT];
    size_t sizes[R_COUNT + 1];
    size_t nrounds = batches(want, nwant, rounds, sizes), next = 0;
    int busy[R_COUNT * 4];
    size_t nbusy = 0;
    struct nlw_buf req = {0};

    for (size_t i = 0; i < nwant; i++) {
        struct reply *r = &replies[want[i]];
        r->state = OUT_NONE;
        r->interrupted = 0;
        r->data.len = 0;
    }
    while (next < nrounds) {
        const int *pending = rounds[next];
        size_t npending = sizes[next++];
        int seq_kind[MAX_SEQ + 1];
        uint32_t nseq = 0;
        req.len = 0;
        for (size_t i = 0; i < npending; i++) {
            int k = pending[i];
            replies[k].has_part = 0;
            replies[k].part.len = 0;
            if (k == R_NETCONF) {
                for (size_t q = 0; q < NQUERIES; q++) {
                    seq_kind[++nseq] = k;
                    put_netconf_request(&req, NETCONF_QUERIES[q].family, NETCONF_QUERIES[q].ifindex, nseq);
                }
            } else {
                seq_kind[++nseq] = k;
                put_dump_request(&req, k, nseq);
            }
        }
        int rc = send_all_retry(sock, req.data, req.len);
        if (rc < 0) {
            set_errno_text(why, whylen, -rc, strerror(-rc));
            free(req.data);
            return -1;
        }
        uint32_t waiting = nseq;
        while (waiting) {
            ssize_t n = recv_retry(sock, rbuf, RECV_SIZE);
            if (n < 0) {
                set_errno_text(why, whylen, errno, strerror(errno));
                free(req.data);
                return -1;
            }
            if (n < 20) {
                set_errno_text(why, whylen, EIO, "short netlink reply");
                free(req.data);
                return -1;
            }
            uint32_t seq;
            uint16_t typ;
            memcpy(&seq, rbuf + 8, 4);
            memcpy(&typ, rbuf + 4, 2);
            if (seq < 1 || seq > nseq)
                continue;
            int k = seq_kind[seq];
            struct reply *r = &replies[k];
            if (typ == NLMSG_ERROR) {
                int32_t err;
                memcpy(&err, rbuf + 16, 4);
                waiting--;
                if (err == -EBUSY) {
                    if (nbusy < sizeof busy / sizeof busy[0])
                        busy[nbusy++] = k;
                } else if (err < 0 && k != R_NETCONF) {
                    r->state = OUT_ERROR;
                    snprintf(r->err, sizeof r->err, "%d:%s: errno %d", -err, REQ[k].name, -err);
                }
                continue;
            }
            if (!r->has_part) {
                r->has_part = 1;
                if (rbuf[6] & NLM_F_DUMP_INTR)
                    r->interrupted = 1;
            } else if (n == 20 ? (rbuf[6] & NLM_F_DUMP_INTR) : any_interrupted(rbuf, (size_t)n)) {
                r->interrupted = 1;
            }
            buf_put(&r->part, rbuf, (size_t)n);
            if (typ == RTM_NEWNETCONF) {
                waiting--;
                continue;
            }
            if (memcmp(rbuf + n - 20, DONE_HEAD, 6) == 0 && memcmp(rbuf + n - 12, rbuf + 8, 8) == 0)
                waiting--;
        }
        for (size_t i = 0; i < npending; i++) {
            struct reply *r = &replies[pending[i]];
            if (r->has_part && r->state == OUT_NONE) {
                struct nlw_buf t = r->data;
                r->data = r->part;
                r->part = t;
                r->part.len = 0;
                r->state = OUT_DATA;
            }
        }
        if (next == nrounds && nbusy) {
            int again[R_COUNT];
            size_t nagain = 0;
            for (size_t i = 0; i < nbusy; i++) {
                int k = busy[i], dup = 0;
                for (size_t j = 0; j < nagain; j++)
                    dup |= again[j] == k;
                if (!dup && replies[k].state == OUT_NONE)
                    again[nagain++] = k;
            }
            nbusy = 0;
            if (nagain) {
                nrounds = batches(again, nagain, rounds, sizes);
                next = 0;
            }
        }
    }
    for (size_t i = 0; i < nwant; i++)
        if (replies[want[i]].state == OUT_NONE) {
            replies[want[i]].state = OUT_DATA; /* b"": nothing came */
            replies[want[i]].data.len = 0;
        }
    free(req.data);
    return 0;
}

/* wire._netlink: a bound netlink socket with a kernel-side receive timeout. */
static int open_netlink(int protocol, int rcvbuf, int timeout_s)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (s < 0)
        return -errno;
    struct timeval tv = {.tv_sec = timeout_s};
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if ((rcvbuf && setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
        || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0
        || bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(s);
        return -e;
    }
    return s;
}

/* wire._end_of_dump: 0 when more is coming; nonzero at the end or an error. */
static int end_of_dump(const unsigned char *p, size_t n)
{
    size_t off = 0;
    while (off + 16 <= n) {
        uint32_t ln;
        uint16_t typ;
        memcpy(&ln, p + off, 4);
        memcpy(&typ, p + off + 4, 2);
        if (typ == NLMSG_DONE || typ == NLMSG_ERROR || ln < 16)
            return 1;
        off += ((size_t)ln + 3) & ~(size_t)3; /* size_t: a huge length cannot wrap to 0 */
    }
    return 0;
}

/* serve._chain_dump: the rest of the GETCHAIN dump. 0, or -errno. */
static int chain_dump(int nf, struct nlw_buf *out)
{
    for (;;) {
        ssize_t n = recv_retry(nf, rbuf, CHAIN_RECV_SIZE);
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        buf_put(out, rbuf, (size_t)n);
        if (end_of_dump(rbuf, (size_t)n))
            return 0;
    }
}

/* wire._read_proc: one read of up to 64 KiB, "" on any error. */
static void read_proc(const char *path, struct nlw_buf *out)
{
    out->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    buf_reserve(out, PROC_READ_SIZE);
    ssize_t n;
    do
        n = read(fd, out->data, PROC_READ_SIZE);
    while (n < 0 && errno == EINTR);
    out->len = n > 0 ? (size_t)n : 0;
    close(fd);
}

/* --- marshal (CPython Python/marshal.c; no FLAG_REF) --------------------------- */
static void marshal_bytes(struct nlw_buf *b, const unsigned char *p, size_t n)
{
    if (n > INT32_MAX)
        out_of_memory(); /* marshal lengths are signed 32-bit */
    buf_u8(b, 's');
    buf_le32(b, (uint32_t)n);
    buf_put(b, p, n);
}

/* A str from bytes decoded as ASCII with errors="replace" (U+FFFD per byte). */
static void marshal_ascii_str(struct nlw_buf *b, const unsigned char *p, size_t n)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += p[i] >= 0x80 ? 2 : 0;
    if (n > INT32_MAX / 3)
        out_of_memory(); /* marshal lengths are signed 32-bit */
    buf_u8(b, 'u');
    buf_le32(b, (uint32_t)(n + extra));
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) {
            buf_u8(b, p[i]);
        } else {
            static const unsigned char fffd[3] = {0xef, 0xbf, 0xbd};
            buf_put(b, fffd, 3);
        }
    }
}

/* A str of UTF-8 text we made (strerror in the C locale is ASCII). */
static void marshal_text(struct nlw_buf *b, const char *s)
{
    marshal_ascii_str(b, (const unsigned char *)s, strlen(s));
}

/* --- the walk ------------------------------------------------------------------ */
static const char *const LEGACY_PATHS[2] = {
    "/proc/thread-self/net/ip_tables_names",
    "/proc/thread-self/net/ip6_tables_names",
};

struct walk {
    const char *names[64];
    int kinds[64];
    size_t nnames;
    int want[R_COUNT];
    size_t nwant;
    int nat, legacy;
    struct nlw_buf out, chain, legacy_text[2], blob;
};

static void serve_one(struct walk *w, uint32_t pos, int nsfd)
{
    char why[160] = "";
    int failed = 0; /* every name gets ``why`` */
    char chain_err[160] = "";
    w->out.len = 0;
    w->chain.len = 0;
    w->legacy_text[0].len = w->legacy_text[1].len = 0;

    if (setns(nsfd, CLONE_NEWNET) != 0) {
        int e = errno;
        /* The parent holds every handle open and passes it to us: EBADF means
         * the handles did not arrive (a C library whose posix_spawn dup2 of an
         * fd onto itself keeps FD_CLOEXEC, say). Stop, so the parent reads the
         * namespaces itself, instead of reporting each one as unreadable. */
        if (e == EBADF)
            _exit(1);
        set_errno_text(why, sizeof why, e, strerror(e));
        failed = 1;
        memcpy(chain_err, why, sizeof why);
    } else {
        int nf = -1;
        if (w->nat) {
            nf = open_netlink(NETLINK_NETFILTER, 0, NF_TIMEOUT_S); /* one chain-dump part at a time */
            if (nf >= 0) {
                /* nlmsghdr (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETCHAIN) + nfgenmsg */
                unsigned char req[20] = {0};
                struct nlmsghdr h = {.nlmsg_len = 20, .nlmsg_type = (10 << 8) | 4,
                                     .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1};
                memcpy(req, &h, sizeof h);
                int rc = send_all_retry(nf, req, sizeof req);
                if (rc < 0) {
                    close(nf);
                    nf = -1;
                    set_errno_text(chain_err, sizeof chain_err, -rc, strerror(-rc));
                }
            } else {
                set_errno_text(chain_err, sizeof chain_err, -nf, strerror(-nf));
            }
        }
        if (w->nat && w->legacy) {
            read_proc(LEGACY_PATHS[0], &w->legacy_text[0]);
            read_proc(LEGACY_PATHS[1], &w->legacy_text[1]);
        }
        int sock = open_netlink(NETLINK_ROUTE, ROUTE_RCVBUF, ROUTE_TIMEOUT_S);
        if (sock < 0) {
            set_errno_text(why, sizeof why, -sock, strerror(-sock));
            failed = 1;
        } else {
            if (exchange(sock, w->want, w->nwant, why, sizeof why) < 0)
                failed = 1;
            close(sock);
        }
        if (nf >= 0) {
            int rc = chain_dump(nf, &w->chain);
            if (rc < 0)
                set_errno_text(chain_err, sizeof chain_err, -rc, strerror(-rc));
            close(nf);
        }
    }

    for (size_t i = 0; i < w->nnames; i++) {
        struct reply *r = &replies[w->kinds[i]];
        uint16_t idx = (uint16_t)i;
        if (failed || r->state == OUT_ERROR) {
            const char *text = failed ? why : r->err;
            size_t n = strlen(text);
            frame(&w->out, pos, idx, STATUS_ERROR, n);
            buf_put(&w->out, text, n);
        } else if (r->interrupted) {
            frame(&w->out, pos, idx, STATUS_INTERRUPTED, r->data.len);
            buf_put(&w->out, r->data.data, r->data.len);
        } else {
            int k = w->kinds[i];
            w->blob.len = 0;
            if ((k == R_LINK || k == R_ADDR || k == R_ROUTE)
                && nlw_decode(REQ[k].name, r->data.data ? r->data.data : (const unsigned char *)"",
                              r->data.len, &w->blob) == 0) {
                frame(&w->out, pos, idx, STATUS_DECODED, w->blob.len);
                buf_put(&w->out, w->blob.data, w->blob.len);
            } else {
                frame(&w->out, pos, idx, STATUS_DATA, r->data.len);
                buf_put(&w->out, r->data.data, r->data.len);
            }
        }
    }
    if (w->nat) {
        struct nlw_buf *b = &w->blob;
        b->len = 0;
        buf_u8(b, ')');
        buf_u8(b, 3);
        if (chain_err[0])
            marshal_text(b, chain_err);
        else
            marshal_bytes(b, w->chain.data, w->chain.len);
        marshal_ascii_str(b, w->legacy_text[0].data, w->legacy_text[0].len);
        marshal_ascii_str(b, w->legacy_text[1].data, w->legacy_text[1].len);
        frame(&w->out, pos, (uint16_t)w->nnames, STATUS_NAT, b->len);
        buf_put(&w->out, b->data, b->len);
    }
    write_all(STDOUT_FILENO, w->out.data, w->out.len);
}

static int usage(void)
{
    fputs("usage: netlens-walk NAMES enter[+nat[+legacy]] FD...\n"
          "       netlens-walk decode NAME < reply > marshal\n",
          stderr);
    return 2;
}

static int decode_main(const char *name)
{
    struct nlw_buf in = {0}, out = {0};
    for (;;) {
        buf_reserve(&in, 65536);
        ssize_t n = read(STDIN_FILENO, in.data + in.len, in.cap - in.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("netlens-walk: stdin");
            return 1;
        }
        if (n == 0)
            break;
        in.len += (size_t)n;
    }
    int rc = 3;
    if (nlw_decode(name, in.data, in.len, &out) == 0) {
        write_all(STDOUT_FILENO, out.data, out.len);
        rc = 0;
    }
    free(in.data);
    free(out.data);
    return rc;
}

static int parse_fd(const char *s)
{
    long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > INT_MAX)
            return -1;
    }
    return (int)v;
}

static int kind_of(const char *name, size_t len)
{
    for (int k = 0; k < R_COUNT; k++)
        if (strlen(REQ[k].name) == len && memcmp(REQ[k].name, name, len) == 0)
            return k;
    return -1;
}

int main(int argc, char **argv)
{
    /* A parent that goes away shows as EPIPE on write: leave quietly then. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "decode") == 0)
        return decode_main(argv[2]);
    if (argc < 3)
        return usage();

    static struct walk w;
    const char *p = argv[1];
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int k = kind_of(p, len);
        if (k < 0 || w.nnames >= sizeof w.names / sizeof w.names[0])
            return usage();
        w.names[w.nnames] = REQ[k].name;
        w.kinds[w.nnames++] = k;
        int dup = 0;
        for (size_t j = 0; j < w.nwant; j++)
            dup |= w.want[j] == k;
        if (!dup)
            w.want[w.nwant++] = k;
        if (!comma)
            break;
        p = comma + 1;
    }

    int enter = 0;
    char mode[64];
    if (strlen(argv[2]) >= sizeof mode)
        return usage();
    strcpy(mode, argv[2]);
    for (char *save = NULL, *part = strtok_r(mode, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
        if (strcmp(part, "enter") == 0)
            enter = 1;
        else if (strcmp(part, "nat") == 0)
            w.nat = 1;
        else if (strcmp(part, "legacy") == 0)
            w.legacy = 1;
        else
            return usage();
    }
    if (!enter) /* socket fds (wire.py without a mode): the Python helper's job */
        return usage();

    int nfds = argc - 3;
    int *fds = calloc((size_t)nfds + 1, sizeof *fds);
    if (fds == NULL)
        return 1;
    for (int i = 0; i < nfds; i++) {
        fds[i] = parse_fd(argv[3 + i]);
        if (fds[i] < 0)
            return usage();
    }
    for (int i = 0; i < nfds; i++)
        serve_one(&w, (uint32_t)i, fds[i]);
    free(fds);
    return 0;
}
