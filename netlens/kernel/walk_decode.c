/* The C half of netlens/kernel/decode.py: link, addr and route dumps to
 * Python marshal bytes (interface and contract in walk_decode.h).
 *
 * Why: the parent process of a 1000-namespace discovery spent most of its CPU
 * walking netlink attributes in Python; netlens-walk calls this while it waits
 * on the kernel and the parent only runs marshal.loads.
 *
 * How exactness is kept: every function below mirrors one line of decode.py
 * (same attribute table semantics: the last attribute of a type wins, types
 * masked with 0x3FFF, a walk stops at a length below 4). Wherever Python would
 * read bytes outside the field it means (an attribute shorter than the value
 * read from it, an attribute, nested attribute or message running past its
 * container, a message too short for its fixed header), or would change the
 * bytes (a string that is not valid UTF-8, decoded with "replace"), or where
 * decode.py's memo could hand back another message's row (a cache-info
 * attribute of a size other than the one memo_key cuts out), the whole reply
 * is declined (-1) and the parent decodes it in Python. Kernel replies never
 * meet any of these, so they take the fast path.
 *
 * Marshal output (CPython Python/marshal.c, no FLAG_REF): '[' list of rows,
 * ')' small tuples, '(' tuples of unknown length (nexthops), '{' ... '0'
 * dicts, 'i' int32 or 'l' 15-bit-digit longs, 'N' None, 's' bytes, 'z'/'a'
 * ASCII str, 'u' UTF-8 str.
 */
#define _POSIX_C_SOURCE 200809L
#include "walk_decode.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The output never grows past this (1 GiB); a larger result is declined. */
#define NLW_MAX_OUT ((size_t)1 << 30)

enum {
    NLW_AF_INET = 2,
    NLW_AF_INET6 = 10,
    NLW_RTM_NEWLINK = 16,
    NLW_RTM_NEWADDR = 20,
    NLW_RTM_NEWROUTE = 24,
    NLW_RTM_F_CLONED = 0x200,
};

/* IFLA_* (linux/if_link.h) */
enum {
    IFLA_ADDRESS_ = 1,
    IFLA_IFNAME_ = 3,
    IFLA_MTU_ = 4,
    IFLA_LINK_ = 5,
    IFLA_MASTER_ = 10,
    IFLA_OPERSTATE_ = 16,
    IFLA_LINKINFO_ = 18,
    IFLA_IFALIAS_ = 20,
    IFLA_STATS64_ = 23,
    IFLA_CARRIER_ = 33,
    IFLA_LINK_NETNSID_ = 37,
    IFLA_PARENT_DEV_NAME_ = 56,
    LINK_TYPES = 64, /* table size: every IFLA_* type read above is below it */
};

/* Marshal type codes (Python/marshal.c) */
enum {
    M_NULL = '0',
    M_NONE = 'N',
    M_INT = 'i',
    M_LONG = 'l',
    M_STRING = 's',
    M_TUPLE = '(',
    M_LIST = '[',
    M_DICT = '{',
    M_UNICODE = 'u',
    M_ASCII = 'a',
    M_SHORT_ASCII = 'z',
    M_SMALL_TUPLE = ')',
};

struct dec {
    const unsigned char *d; /* the reply, zero-padded to a multiple of 4 like views() */
    size_t n;               /* its padded length */
    struct nlw_buf *out;
    int err; /* sticky: decline the reply (bad input or no memory) */
};

/* --- reading (memcpy: no alignment assumptions) ------------------------------ */
static uint16_t rd16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* decode.fast_attrs over [off, end): tab[type & 0x3FFF] = offset of the last
 * attribute of that type (types >= ntypes are not kept; 0 means absent, never a
 * real offset). Declines an attribute running past ``end``: Python would read
 * the bytes after it. */
static void walk(struct dec *c, size_t off, size_t end, size_t *tab, size_t ntypes)
{
    const unsigned char *d = c->d;
    while (off < end) {
        size_t alen = rd16(d + off);
        if (alen < 4)
            break;
        if (alen > end - off) {
            c->err = 1;
            return;
        }
        size_t t = rd16(d + off + 2) & 0x3FFFu;
        if (t < ntypes)
            tab[t] = off;
        off += (alen + 3) & ~(size_t)3;
    }
}

static size_t alen_at(const struct dec *c, size_t o)
{
    return rd16(c->d + o);
}

/* The attribute at ``o`` holds at least ``min`` bytes with its header; else decline. */
static int has(struct dec *c, size_t o, size_t min)
{
    if (alen_at(c, o) >= min)
        return 1;
    c->err = 1;
    return 0;
}

/* --- output --------------------------------------------------------------------- */
static int grow(struct nlw_buf *b, size_t k)
{
    if (b->len > NLW_MAX_OUT || k > NLW_MAX_OUT - b->len)
        return -1;
    size_t want = b->len + k;
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < want)
        cap = cap > NLW_MAX_OUT / 2 ? NLW_MAX_OUT : cap * 2;
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Room for ``k`` more bytes at the end of the output; NULL (and err) if none. */
static unsigned char *room(struct dec *c, size_t k)
{
    struct nlw_buf *b = c->out;
    if (c->err)
        return NULL;
    if (b->cap < b->len || k > b->cap - b->len) {
        if (grow(b, k) != 0) {
            c->err = 1;
            return NULL;
        }
    }
    return b->data + b->len;
}

static void put(struct dec *c, const void *p, size_t k)
{
    unsigned char *q = room(c, k);
    if (q != NULL) {
        if (k)
            memcpy(q, p, k);
        c->out->len += k;
    }
}

static void le32(unsigned char *q, uint32_t v)
{
    q[0] = (unsigned char)v;
    q[1] = (unsigned char)(v >> 8);
    q[2] = (unsigned char)(v >> 16);
    q[3] = (unsigned char)(v >> 24);
}

static void put1(struct dec *c, unsigned char ch)
{
    put(c, &ch, 1);
}

/* A container header with an int32 count, patched later: its count's offset. */
static size_t begin_counted(struct dec *c, unsigned char code)
{
    unsigned char h[5] = {code, 0, 0, 0, 0};
    size_t at = c->out->len + 1;
    put(c, h, 5);
    return at;
}

static void end_counted(struct dec *c, size_t at, size_t count)
{
    if (c->err)
        return;
    if (count > INT32_MAX) {
        c->err = 1;
        return;
    }
    le32(c->out->data + at, (uint32_t)count);
}

static void w_tuple(struct dec *c, unsigned char n)
{
    unsigned char h[2] = {M_SMALL_TUPLE, n};
    put(c, h, 2);
}

static void w_none(struct dec *c)
{
    put1(c, M_NONE);
}

/* An int: 'i' when it fits int32 (marshal's own choice), else 'l': digit
 * count (negative for negative numbers) and 15-bit digits, least first. */
static void w_int(struct dec *c, int64_t v)
{
    unsigned char t[1 + 4 + 2 * 5];
    if (v >= INT32_MIN && v <= INT32_MAX) {
        t[0] = M_INT;
        le32(t + 1, (uint32_t)(int32_t)v);
        put(c, t, 5);
        return;
    }
    uint64_t m = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    int nd = 0;
    while (m) {
        unsigned dig = (unsigned)(m & 0x7FFF);
        t[5 + 2 * nd] = (unsigned char)dig;
        t[6 + 2 * nd] = (unsigned char)(dig >> 8);
        m >>= 15;
        nd++;
    }
    t[0] = M_LONG;
    le32(t + 1, (uint32_t)(v < 0 ? -nd : nd));
    put(c, t, 5 + 2 * (size_t)nd);
}

static void w_uint(struct dec *c, uint64_t v)
{
    if (v <= INT64_MAX) {
        w_int(c, (int64_t)v);
        return;
    }
    unsigned char t[1 + 4 + 2 * 5];
    int nd = 0;
    while (v) {
        unsigned dig = (unsigned)(v & 0x7FFF);
        t[5 + 2 * nd] = (unsigned char)dig;
        t[6 + 2 * nd] = (unsigned char)(dig >> 8);
        v >>= 15;
        nd++;
    }
    t[0] = M_LONG;
    le32(t + 1, (uint32_t)nd);
    put(c, t, 5 + 2 * (size_t)nd);
}

/* Room for a str of ``k`` ASCII (or, with ascii 0, UTF-8) bytes after its header. */
static unsigned char *str_room(struct dec *c, size_t k, int ascii)
{
    unsigned char *q = room(c, 5 + k);
    if (q == NULL)
        return NULL;
    if (ascii && k < 256) {
        q[0] = M_SHORT_ASCII;
        q[1] = (unsigned char)k;
        c->out->len += 2 + k;
        return q + 2;
    }
    if (k > INT32_MAX) {
        c->err = 1;
        return NULL;
    }
    q[0] = ascii ? M_ASCII : M_UNICODE;
    le32(q + 1, (uint32_t)k);
    c->out->len += 5 + k;
    return q + 5;
}

static void w_str(struct dec *c, const void *p, size_t k, int ascii)
{
    unsigned char *q = str_room(c, k, ascii);
    if (q != NULL && k)
        memcpy(q, p, k);
}

static void w_bytes(struct dec *c, const unsigned char *p, size_t k)
{
    unsigned char *q = room(c, 5 + k);
    if (q == NULL)
        return;
    if (k > INT32_MAX) {
        c->err = 1;
        return;
    }
    q[0] = M_STRING;
    le32(q + 1, (uint32_t)k);
    if (k)
        memcpy(q + 5, p, k);
    c->out->len += 5 + k;
}

/* Whether Python's strict UTF-8 decoder takes these bytes unchanged (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF); *ascii: all below 0x80. */
static int utf8_ok(const unsigned char *s, size_t n, int *ascii)
{
    size_t i = 0;
    *ascii = 1;
    while (i < n) {
        unsigned ch = s[i];
        if (ch < 0x80) {
            i++;
            continue;
        }
        *ascii = 0;
        size_t more;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
        if (ch >= 0xC2 && ch <= 0xDF) {
            more = 1;
        } else if (ch >= 0xE0 && ch <= 0xEF) {
            more = 2;
            if (ch == 0xE0)
                lo = 0xA0;
            else if (ch == 0xED)
                hi = 0x9F;
        } else if (ch >= 0xF0 && ch <= 0xF4) {
            more = 3;
            if (ch == 0xF0)
                lo = 0x90;
            else if (ch == 0xF4)
                hi = 0x8F;
        } else {
            return 0;
        }
        if (more > n - i - 1)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= more; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += 1 + more;
    }
    return 1;
}

/* decode.cstr: the attribute's payload up to its first NUL, if it is valid
 * UTF-8 (else decline). Sets *p, *k, *ascii; returns 0 when declined. */
static int cstr(struct dec *c, size_t o, const unsigned char **p, size_t *k, int *ascii)
{
    const unsigned char *s = c->d + o + 4;
    size_t len = alen_at(c, o) - 4;
    const unsigned char *z = len ? memchr(s, 0, len) : NULL;
    if (z != NULL)
        len = (size_t)(z - s);
    if (!utf8_ok(s, len, ascii)) {
        c->err = 1;
        return 0;
    }
    *p = s;
    *k = len;
    return 1;
}

static void w_cstr(struct dec *c, size_t o)
{
    const unsigned char *p;
    size_t k;
    int ascii;
    if (cstr(c, o, &p, &k, &ascii))
        w_str(c, p, k, ascii);
}

static size_t fmt_u32(char *q, uint32_t v)
{
    char t[10];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        q[i] = t[n - 1 - i];
    return n;
}

static const char HEX[] = "0123456789abcdef";

/* decode.ipat (plus, with dlen >= 0, the "/dlen" of a route's dst): 4 bytes
 * dotted quad, 16 bytes libc inet_ntop (what Python's socket.inet_ntop
 * calls), any other length lowercase hex. */
static void w_ipat(struct dec *c, size_t o, int dlen)
{
    const unsigned char *p = c->d + o + 4;
    size_t k = alen_at(c, o) - 4;
    char sfx[8];
    size_t sl = 0;
    if (dlen >= 0) {
        sfx[0] = '/';
        sl = 1 + fmt_u32(sfx + 1, (uint32_t)dlen);
    }
    if (k == 4 || k == 16) {
        char t[64];
        size_t m = 0;
        if (k == 4) {
            for (int i = 0; i < 4; i++) {
                if (i)
                    t[m++] = '.';
                m += fmt_u32(t + m, p[i]);
            }
        } else {
            unsigned char raw[16];
            memcpy(raw, p, 16);
            if (inet_ntop(AF_INET6, raw, t, 48) == NULL) {
                c->err = 1;
                return;
            }
            m = strlen(t);
        }
        memcpy(t + m, sfx, sl);
        w_str(c, t, m + sl, 1);
        return;
    }
    unsigned char *q = str_room(c, 2 * k + sl, 1);
    if (q == NULL)
        return;
    for (size_t i = 0; i < k; i++) {
        q[2 * i] = (unsigned char)HEX[p[i] >> 4];
        q[2 * i + 1] = (unsigned char)HEX[p[i] & 15];
    }
    memcpy(q + 2 * k, sfx, sl);
}

/* --- links ---------------------------------------------------------------------- */
/* decode._port: IFLA_BRPORT_* state, priority, cost, mode, learning, unicast flood. */
/* The attribute at ``o`` (0: absent) as decode.py reads it, or its default:
 * ``d[o + 4]`` / ``w[(o >> 2) + 1]`` if o else default; the address text; the
 * C string. A too-short attribute sets c->err (Python would read past it). */
static void w_u8_or_int(struct dec *c, size_t o, int64_t absent)
{
    if (!o)
        w_int(c, absent);
    else if (has(c, o, 5))
        w_uint(c, c->d[o + 4]);
}

static void w_u32_or_int(struct dec *c, size_t o, int64_t absent)
{
    if (!o)
        w_int(c, absent);
    else if (has(c, o, 8))
        w_uint(c, rd32(c->d + o + 4));
}

static void w_u32_or_none(struct dec *c, size_t o)
{
    if (!o)
        w_none(c);
    else if (has(c, o, 8))
        w_uint(c, rd32(c->d + o + 4));
}

static void w_ip_or_none(struct dec *c, size_t o)
{
    if (o)
        w_ipat(c, o, -1);
    else
        w_none(c);
}

static void w_cstr_or_none(struct dec *c, size_t o)
{
    if (o)
        w_cstr(c, o);
    else
        w_none(c);
}

static void w_port(struct dec *c, size_t o, size_t end)
{
    size_t a[16] = {0};
    walk(c, o, end, a, 16);
    if (c->err)
        return;
    const unsigned char *d = c->d;
    w_tuple(c, 6);
    w_int(c, a[1] ? (has(c, a[1], 5) ? d[a[1] + 4] : 0) : 3);
    w_int(c, a[2] ? (has(c, a[2], 6) ? rd16(d + a[2] + 4) : 0) : -1);
    if (a[3]) {
        /* Python: h[o/2+2] | h[o/2+3] << 16, two native 16-bit words */
        if (has(c, a[3], 8))
            w_uint(c, (uint32_t)rd16(d + a[3] + 4) | (uint32_t)rd16(d + a[3] + 6) << 16);
    } else {
        w_int(c, -1);
    }
    static const unsigned char tail[3] = {4, 8, 9};
    for (int i = 0; i < 3; i++) {
        size_t x = a[tail[i]];
        w_int(c, x ? (has(c, x, 5) ? d[x + 4] : 0) : 2);
    }
}

/* One RTM_NEWLINK message as decode_links' 18-tuple. */
static int link_row(struct dec *c, size_t off, size_t ln)
{
    const unsigned char *d = c->d;
    if (rd16(d + off + 4) != NLW_RTM_NEWLINK)
        return 0;
    if (ln < 32) { /* ifinfomsg: Python reads it whole */
        c->err = 1;
        return 0;
    }
    size_t start = off + 16, end = off + ln;
    size_t a[LINK_TYPES] = {0};
    walk(c, start + 16, end, a, LINK_TYPES);
    if (c->err)
        return 0;
    uint32_t index = rd32(d + start + 4);
    size_t o;

    w_tuple(c, 18);
    w_uint(c, index);
    w_uint(c, rd16(d + start + 2));
    w_uint(c, rd32(d + start + 8));
    if ((o = a[IFLA_IFNAME_]) != 0) {
        w_cstr(c, o);
    } else {
        char t[16] = "if";
        w_str(c, t, 2 + fmt_u32(t + 2, index), 1);
    }
    w_u8_or_int(c, a[IFLA_OPERSTATE_], -1);
    w_u8_or_int(c, a[IFLA_CARRIER_], -1);
    w_u32_or_int(c, a[IFLA_MTU_], -1);
    if ((o = a[IFLA_ADDRESS_]) != 0 && alen_at(c, o) == 10) {
        char t[17];
        for (int i = 0; i < 6; i++) {
            t[3 * i] = HEX[d[o + 4 + i] >> 4];
            t[3 * i + 1] = HEX[d[o + 4 + i] & 15];
            if (i < 5)
                t[3 * i + 2] = ':';
        }
        w_str(c, t, 17, 1);
    } else {
        w_none(c);
    }
    if ((o = a[IFLA_IFALIAS_]) != 0) {
        const unsigned char *p;
        size_t k;
        int ascii;
        if (cstr(c, o, &p, &k, &ascii)) {
            if (k)
                w_str(c, p, k, ascii);
            else
                w_none(c); /* cstr(...) or None */
        }
    } else {
        w_none(c);
    }
    if ((o = a[IFLA_MASTER_]) != 0) {
        if (has(c, o, 8)) {
            uint32_t m = rd32(d + o + 4);
            if (m)
                w_uint(c, m);
            else
                w_none(c);
        }
    } else {
        w_none(c);
    }
    w_u32_or_none(c, a[IFLA_LINK_]);
    if ((o = a[IFLA_LINK_NETNSID_]) != 0) {
        if (has(c, o, 8))
            w_int(c, (int32_t)rd32(d + o + 4));
    } else {
        w_none(c);
    }
    if ((o = a[IFLA_STATS64_]) != 0 && alen_at(c, o) >= 68) {
        w_tuple(c, 8);
        for (int i = 0; i < 8; i++)
            w_uint(c, rd64(d + o + 4 + 8 * (size_t)i));
    } else {
        w_none(c);
    }
    w_cstr_or_none(c, a[IFLA_PARENT_DEV_NAME_]);

    /* kind, kind_data, slave, port */
    size_t info[8] = {0};
    if ((o = a[IFLA_LINKINFO_]) != 0) {
        walk(c, o + 4, o + alen_at(c, o), info, 8);
        if (c->err)
            return 0;
    }
    size_t k = info[1]; /* IFLA_INFO_KIND */
    if (k) {
        w_cstr(c, k);
        size_t x = info[2]; /* IFLA_INFO_DATA */
        if (x) {
            /* Every attribute in order: marshal.loads inserts the pairs one by one,
             * so a repeated type keeps its first position and its last value,
             * exactly like the dict comprehension over fast_attrs. */
            size_t end2 = x + alen_at(c, x);
            size_t dummy[1];
            walk(c, x + 4, end2, dummy, 0); /* bounds only */
            if (c->err)
                return 0;
            put1(c, M_DICT);
            size_t q = x + 4;
            while (q < end2) {
                size_t al = rd16(d + q);
                if (al < 4)
                    break;
                w_int(c, rd16(d + q + 2) & 0x3FFF);
                w_bytes(c, d + q + 4, al - 4);
                q += (al + 3) & ~(size_t)3;
            }
            put1(c, M_NULL);
        } else {
            w_none(c);
        }
    } else {
        w_str(c, "", 0, 1);
        w_none(c);
    }
    k = info[4]; /* IFLA_INFO_SLAVE_KIND */
    if (k) {
        const unsigned char *p;
        size_t len;
        int ascii;
        if (!cstr(c, k, &p, &len, &ascii))
            return 0;
        w_str(c, p, len, ascii);
        size_t x = info[5]; /* IFLA_INFO_SLAVE_DATA */
        if (len == 6 && memcmp(p, "bridge", 6) == 0 && x)
            w_port(c, x + 4, x + alen_at(c, x));
        else
            w_none(c);
    } else {
        w_none(c);
        w_none(c);
    }
    return !c->err;
}

/* --- addresses ------------------------------------------------------------------- */
static int addr_row(struct dec *c, size_t off, size_t ln)
{
    const unsigned char *d = c->d;
    if (rd16(d + off + 4) != NLW_RTM_NEWADDR)
        return 0;
    if (ln < 24) { /* ifaddrmsg */
        c->err = 1;
        return 0;
    }
    size_t start = off + 16, end = off + ln;
    unsigned fam = d[start];
    if (fam != NLW_AF_INET && fam != NLW_AF_INET6)
        return 0;
    size_t a[8] = {0};
    walk(c, start + 8, end, a, 8);
    if (c->err)
        return 0;
    if (a[6] && alen_at(c, a[6]) != 20) { /* memo_key cuts 20 bytes at IFA_CACHEINFO */
        c->err = 1;
        return 0;
    }
    size_t o = a[2] ? a[2] : a[1]; /* IFA_LOCAL, else IFA_ADDRESS */
    if (!o)
        return 0;
    w_tuple(c, 7);
    w_uint(c, rd32(d + start + 4));
    w_int(c, fam == NLW_AF_INET ? 4 : 6);
    w_ipat(c, o, -1);
    w_uint(c, d[start + 1]);
    w_uint(c, d[start + 3]);
    w_ip_or_none(c, a[4]); /* IFA_BROADCAST */
    w_cstr_or_none(c, a[3]); /* IFA_LABEL */
    return !c->err;
}

/* --- routes ---------------------------------------------------------------------- */
static void w_nexthops(struct dec *c, size_t off, size_t end)
{
    const unsigned char *d = c->d;
    size_t at = begin_counted(c, M_TUPLE);
    size_t count = 0;
    while (off <= end && end - off >= 8 && !c->err) {
        size_t ln = rd16(d + off);
        if (ln < 8)
            break;
        if (ln > end - off) { /* Python would walk past RTA_MULTIPATH */
            c->err = 1;
            return;
        }
        size_t a[8] = {0};
        walk(c, off + 8, off + ln, a, 8);
        if (c->err)
            return;
        int32_t ifindex = (int32_t)rd32(d + off + 4);
        w_tuple(c, 3);
        w_ip_or_none(c, a[5]); /* RTA_GATEWAY */
        if (ifindex)
            w_int(c, ifindex);
        else
            w_none(c);
        w_int(c, (int64_t)d[off + 3] + 1);
        count++;
        off += (ln + 3) & ~(size_t)3;
    }
    end_counted(c, at, count);
}

static int route_row(struct dec *c, size_t off, size_t ln)
{
    const unsigned char *d = c->d;
    if (rd16(d + off + 4) != NLW_RTM_NEWROUTE)
        return 0;
    if (ln < 28) { /* rtmsg */
        c->err = 1;
        return 0;
    }
    size_t start = off + 16, end = off + ln;
    unsigned fam = d[start];
    if (fam != NLW_AF_INET && fam != NLW_AF_INET6)
        return 0;
    if (rd32(d + start + 8) & NLW_RTM_F_CLONED)
        return 0;
    size_t a[16] = {0};
    walk(c, start + 12, end, a, 16);
    if (c->err)
        return 0;
    if (a[12] && alen_at(c, a[12]) != 36) { /* memo_key cuts 36 bytes at RTA_CACHEINFO */
        c->err = 1;
        return 0;
    }
    unsigned dlen = d[start + 1];
    size_t o;
    w_tuple(c, 11);
    w_int(c, fam == NLW_AF_INET ? 4 : 6);
    w_u32_or_int(c, a[15], d[start + 4]); /* RTA_TABLE, else the header's */
    if ((o = a[1]) != 0) { /* RTA_DST */
        w_ipat(c, o, (int)dlen);
    } else if (dlen == 0) {
        w_str(c, "default", 7, 1);
    } else {
        char t[16];
        size_t m = fam == NLW_AF_INET ? 7 : 2;
        memcpy(t, fam == NLW_AF_INET ? "0.0.0.0" : "::", m);
        t[m++] = '/';
        m += fmt_u32(t + m, dlen);
        w_str(c, t, m, 1);
    }
    w_uint(c, d[start + 7]);
    w_ip_or_none(c, a[5]);  /* RTA_GATEWAY */
    w_u32_or_none(c, a[4]); /* RTA_OIF */
    w_uint(c, d[start + 5]);
    w_uint(c, d[start + 6]);
    w_u32_or_none(c, a[6]); /* RTA_PRIORITY */
    w_ip_or_none(c, a[7]);  /* RTA_PREFSRC */
    if ((o = a[9]) != 0) { /* RTA_MULTIPATH */
        w_nexthops(c, o + 4, o + alen_at(c, o));
    } else {
        w_tuple(c, 0);
    }
    return !c->err;
}

/* --- the reply ---------------------------------------------------------------------- */
int nlw_decode(const char *name, const unsigned char *reply, size_t len, struct nlw_buf *out)
{
    int (*row)(struct dec *, size_t, size_t);
    if (name == NULL || out == NULL || (reply == NULL && len))
        return -1;
    if (strcmp(name, "link") == 0)
        row = link_row;
    else if (strcmp(name, "addr") == 0)
        row = addr_row;
    else if (strcmp(name, "route") == 0)
        row = route_row;
    else
        return -1;

    /* views(): a length that is not a multiple of 4 is read zero-padded. */
    unsigned char *copy = NULL;
    struct dec c = {reply, len, out, 0};
    if (len & 3) {
        size_t n = len + (4 - (len & 3));
        if (n < len || (copy = malloc(n)) == NULL)
            return -1;
        memcpy(copy, reply, len);
        memset(copy + len, 0, n - len);
        c.d = copy;
        c.n = n;
    }

    size_t saved = out->len;
    size_t at = begin_counted(&c, M_LIST);
    size_t count = 0, off = 0;
    while (!c.err && c.n - off >= 16) {
        size_t ln = rd32(c.d + off);
        if (ln < 16)
            break;
        if (ln > c.n - off) { /* runs past the reply */
            c.err = 1;
            break;
        }
        count += (size_t)row(&c, off, ln);
        off += (ln + 3) & ~(size_t)3;
    }
    end_counted(&c, at, count);
    free(copy);
    if (c.err) {
        out->len = saved;
        return -1;
    }
    return 0;
}
