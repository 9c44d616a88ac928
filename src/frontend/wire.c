/* The FUSE channel under libfuse (installed with fuse_session_custom_io()).
 *
 * Two things pass through here that libfuse 3.14 cannot handle: the INIT
 * flags below, and O_TMPFILE's FUSE_TMPFILE request (fe_wire_read).
 *
 * libfuse 3.14 negotiates the connection from a table of the protocol
 * features it knows; FUSE_HANDLE_KILLPRIV_V2 is not among them, and it never
 * forwards FUSE_HANDLE_KILLPRIV at all (libfuse issue #884). Without either,
 * the kernel sends a GETXATTR of security.capability before every write(2),
 * half the requests of a small write. The INIT reply passes through here on
 * its way to the kernel, and we add the flag when the kernel offered it.
 *
 * That is safe because the core already does what HANDLE_KILLPRIV_V2 asks of
 * the daemon: it clears setuid/setgid on write, on truncation and on chown
 * by a caller without CAP_FSETID (it sees the caller of every such request:
 * with writeback_cache the kernel writes a setuid/setgid file through, not
 * into its cache). The kernel keeps removing security.capability itself:
 * with the flag it sets SB_NOSEC, checks an inode once, and checks it again
 * after any attribute refresh or security.* setxattr.
 *
 * The channel also notes the kill mark of each write and truncation
 * (fe_wire_kill_mark()), which libfuse drops: it says whether the caller
 * holds CAP_FSETID, which the daemon cannot see from its uid.
 *
 * Only this file includes <linux/fuse.h>: its names collide with libfuse's. */
#include "frontend/wire.h"

#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* FUSE_TMPFILE (protocol 7.37); the <linux/fuse.h> of older systems
 * lacks the name. */
#define FE_WIRE_OP_TMPFILE 51

/* What we add to the INIT reply, each only if the kernel offered it. */
#define WIRE_EXTRA_FLAGS ((uint32_t)FUSE_HANDLE_KILLPRIV_V2)

/* The kill mark of the request this thread read last (wire.h). */
static _Thread_local enum fe_wire_kill wire_kill;

/* A write sent on nobody's behalf (the writeback of cached or mmap'd
 * pages) carries no mark; nor does a SETATTR that changes no size. */
static enum fe_wire_kill wire_kill_of(const struct fuse_in_header *in, size_t n)
{
    if (in->opcode == FUSE_WRITE && n >= sizeof(*in) + sizeof(struct fuse_write_in)) {
        const struct fuse_write_in *arg = (const void *)(in + 1);

        if (arg->write_flags & FUSE_WRITE_CACHE)
            return FE_KILL_UNKNOWN;
        return (arg->write_flags & FUSE_WRITE_KILL_SUIDGID) ? FE_KILL_YES : FE_KILL_NO;
    }
    if (in->opcode == FUSE_SETATTR && n >= sizeof(*in) + sizeof(struct fuse_setattr_in)) {
        const struct fuse_setattr_in *arg = (const void *)(in + 1);

        /* chown sets the mark whoever the caller is. */
        if (!(arg->valid & FATTR_SIZE) || (arg->valid & (FATTR_UID | FATTR_GID)))
            return FE_KILL_UNKNOWN;
        return (arg->valid & FATTR_KILL_SUIDGID) ? FE_KILL_YES : FE_KILL_NO;
    }
    return FE_KILL_UNKNOWN;
}

void fe_wire_init(struct fe_wire *w, bool killpriv_v2)
{
    memset(w, 0, sizeof(*w));
    w->want = killpriv_v2 ? WIRE_EXTRA_FLAGS : 0;
    atomic_init(&w->init_pending, false);
}

ssize_t fe_wire_read(struct fe_wire *w, int fd, void *buf, size_t len)
{
    ssize_t n = read(fd, buf, len);
    const struct fuse_in_header *in = buf;
    const struct fuse_init_in *arg = (const void *)(in + 1);

    /* O_TMPFILE: libfuse 3.14 knows no FUSE_TMPFILE and would answer
     * ENOSYS, which turns the op off for good. Its request is laid out as a
     * CREATE's (fuse_create_in, then the name) and wants a CREATE's reply,
     * and its name is always "/", which no real CREATE can carry: served
     * as a CREATE, fe_create tells them apart by the name. */
    if (n >= (ssize_t)sizeof(*in) && in->opcode == FE_WIRE_OP_TMPFILE)
        ((struct fuse_in_header *)buf)->opcode = FUSE_CREATE;
    /* The kernel sends INIT first and nothing else until it is answered:
     * the worker that reads it also replies to it, with no other request
     * in flight. */
    if (n >= (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, flags) + sizeof(arg->flags)) &&
        in->opcode == FUSE_INIT) {
        w->init_unique = in->unique;
        w->kernel_flags = arg->flags;
        atomic_store(&w->init_pending, true);
    }
    wire_kill = n >= (ssize_t)sizeof(*in) ? wire_kill_of(in, (size_t)n) : FE_KILL_UNKNOWN;
    return n;
}

ssize_t fe_wire_writev(struct fe_wire *w, int fd, struct iovec *iov, int count)
{
    if (atomic_load_explicit(&w->init_pending, memory_order_relaxed) && count >= 2 &&
        iov[0].iov_len == sizeof(struct fuse_out_header)) {
        const struct fuse_out_header *out = iov[0].iov_base;
        struct fuse_init_out *arg = iov[1].iov_base;

        if (out->unique == w->init_unique) {
            if (out->error == 0 &&
                iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(arg->flags)) {
                uint32_t add = w->want & w->kernel_flags;

                arg->flags |= add;
                w->added = add;
                log_debug("INIT reply: added flags %#x (kernel offered %#x)", add, w->kernel_flags);
            }
            atomic_store(&w->init_pending, false);
        }
    }
    return writev(fd, iov, count);
}

bool fe_wire_has_killpriv_v2(const struct fe_wire *w)
{
    return (w->added & FUSE_HANDLE_KILLPRIV_V2) != 0;
}

enum fe_wire_kill fe_wire_kill_mark(const struct fe_wire *w)
{
    return fe_wire_has_killpriv_v2(w) ? wire_kill : FE_KILL_UNKNOWN;
}
