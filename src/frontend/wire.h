/* The FUSE channel under libfuse: reads requests from and writes replies to
 * /dev/fuse for libfuse (fuse_session_custom_io()), and on the way adds to
 * the INIT reply protocol flags that libfuse 3.14 cannot ask for (wire.c
 * says which and why that is safe), and hands FUSE_TMPFILE requests, which
 * libfuse 3.14 does not know, to libfuse as CREATEs of the name "/"
 * (fe_create serves them). Nothing else is looked at or changed. */
#ifndef UEXT4_FRONTEND_WIRE_H
#define UEXT4_FRONTEND_WIRE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fe_wire {
    uint32_t want;         /* flags to add, if offered */
    uint32_t kernel_flags; /* what the kernel's INIT offered */
    uint32_t added;        /* what the reply carried in the end */
    uint64_t init_unique;
    /* Set by the worker that read INIT, cleared by its reply; other
     * workers' replies only test it. */
    atomic_bool init_pending;
};

/* @killpriv_v2: ask for FUSE_HANDLE_KILLPRIV_V2. */
void fe_wire_init(struct fe_wire *w, bool killpriv_v2);

/* The fuse_custom_io read and writev operations, on @w. */
ssize_t fe_wire_read(struct fe_wire *w, int fd, void *buf, size_t len);
ssize_t fe_wire_writev(struct fe_wire *w, int fd, struct iovec *iov, int count);

/* After INIT: whether the kernel now leaves killing privileges to us. */
bool fe_wire_has_killpriv_v2(const struct fe_wire *w);

/* With HANDLE_KILLPRIV_V2 the kernel marks a write(2) and a truncation by a
 * caller without CAP_FSETID (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID);
 * libfuse 3.14 passes neither mark on. This is the mark of the request the
 * calling thread read last: libfuse's worker that reads a request also
 * runs its handler, on the same thread, before it reads the next one. */
enum fe_wire_kill {
    FE_KILL_UNKNOWN, /* no such mark in this request, or no KILLPRIV_V2 */
    FE_KILL_NO,      /* the caller holds CAP_FSETID */
    FE_KILL_YES,     /* it does not: setuid/setgid go */
};
enum fe_wire_kill fe_wire_kill_mark(const struct fe_wire *w);

#endif
