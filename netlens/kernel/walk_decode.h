/* The C half of netlens/kernel/decode.py, for the netlens-walk helper.
 *
 * Why: with a thousand namespaces the parent process spent most of its discovery
 * time walking netlink attributes in Python. The walker decodes link, addr and
 * route replies while it waits on the kernel and sends the rows as Python
 * ``marshal`` bytes; the parent only runs marshal.loads and builds objects.
 *
 * Contract: for every reply, marshal.loads(output) == decode.DECODERS[name](reply)
 * (same row layouts as decode.py's docstring). Where an exact match is not
 * certain (a string that is not valid UTF-8, an attribute of an unexpected
 * size, ...), nlw_decode returns -1 and the caller sends the raw reply, which
 * the parent decodes in Python: a fallback, never a different answer.
 */
#ifndef NETLENS_WALK_DECODE_H
#define NETLENS_WALK_DECODE_H

#include <stddef.h>

struct nlw_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
};

/* Append to ``out`` the marshal bytes of the rows of ``reply`` (the raw bytes
 * of one whole dump, NLMSG_DONE included) for ``name`` ("link", "addr" or
 * "route"). Returns 0 on success; -1 when ``name`` has no decoder, the reply
 * cannot be decoded exactly, or memory ran out: ``out->len`` is then as it was. */
int nlw_decode(const char *name, const unsigned char *reply, size_t len, struct nlw_buf *out);

#endif
