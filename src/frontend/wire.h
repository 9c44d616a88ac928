/* The FUSE channel under libfuse: reads requests from and writes replies to
 * /dev/fuse for libfuse (fuse_session_custom_io()), and on the way adds to
 * the INIT reply protocol flags that libfuse 3.14 cannot ask for (wire.c
 * says which and why that is safe), and hands FUSE_TMPFILE requests, which
 * libfuse 3.14 does not know, to libfuse as CREATEs of the name "/"
 * (fe_create serves them), and FUSE_STATX requests, which it does not know
 * either, as GETATTRs (fe_getattr answers them as STATX, see
 * fe_wire_is_statx()). Nothing else is looked at or changed. */
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
    /* FUSE over io_uring (uring.c): asked for, what the kernel offered in
     * flags2, whether the reply took it, and the connection's limits the
     * ring entries must hold (written while answering INIT). */
    bool want_uring;
    uint32_t kernel_flags2;
    bool uring;
    uint32_t max_write, max_pages;
    /* Called before io_uring goes into the INIT reply, with the payload
     * size an entry needs; io_uring is offered only if it returns 0. */
    int (*on_prepare)(void *arg, size_t payload);
    /* Called once the INIT reply is written (the kernel has taken it). */
    void (*on_init)(void *arg);
    void *on_init_arg;
    /* Requests taken so far, however they came (FORGETs included): what
     * the control socket's "stats" reports, for the benchmark's count of
     * requests per operation. Relaxed: a count, not a synchronisation. */
    atomic_uint_least64_t requests;
    /* Splicing WRITE data in (fe_wire_splice_setup()): the bytes a
     * thread's pipe holds, the smallest payload left there, and whether
     * it is on. The worker answering INIT sets them while the others,
     * waiting for requests, test splice_in: its store releases the other
     * two, a load that sees it on acquires them. */
    size_t pipe_bytes;
    size_t splice_min;
    atomic_bool splice_in;
    /* Requests still to be spliced since the last large WRITE: splice
     * costs a small request more than read(2), so it is used only while
     * large WRITEs come (wire.c). A hint, relaxed. */
    atomic_int splice_credit;
    /* WRITE data bytes left in a pipe for the handler (stats). Relaxed. */
    atomic_uint_least64_t spliced;
    /* FUSE_INTERRUPTs answered ENOSYS here (stats). Relaxed. */
    atomic_uint_least64_t interrupts;
    /* Test builds: requests with these opcodes wait so many microseconds
     * after they are read from /dev/fuse or an io_uring entry
     * (UEXT4_TEST_WIRE_DELAY=OPCODE:US[,OPCODE:US]..., up to four), a slow
     * handler for tests of what arrives meanwhile. */
    struct {
        uint32_t op, us;
    } delay[4];
};

/* @killpriv_v2: ask for FUSE_HANDLE_KILLPRIV_V2. */
void fe_wire_init(struct fe_wire *w, bool killpriv_v2);

/* Whether WRITE data may stay in a pipe for the handler, decided once
 * before INIT is answered: a request is spliced whole into a pipe, which
 * must hold the largest one, so this tries a pipe and returns the
 * max_write to negotiate, @want or less (an ordinary user's pipes hold
 * 1 MiB by default, one page short of a 1 MiB WRITE and its header). */
size_t fe_wire_splice_setup(struct fe_wire *w, size_t want);
/* The data of the WRITE the calling thread read last, when it stayed in
 * the thread's pipe: that pipe's read end, and *@len its bytes; else -1.
 * The handler either moves them out itself (uext4_write_pipe()) and says
 * how many with fe_wire_payload_taken(), or has them read into the
 * request's buffer, where read(2) would have put them, with
 * fe_wire_payload_fill(). What it leaves is dropped before the thread's
 * next request is read. */
int fe_wire_payload(size_t *len);
/* @n bytes of the payload were taken; a negative @n: an unknown part. */
void fe_wire_payload_taken(ssize_t n);
/* Read the payload into @buf, which has room for it. 0 or -errno. */
int fe_wire_payload_fill(void *buf);
/* WRITE data bytes that stayed in a pipe so far. */
uint64_t fe_wire_spliced(const struct fe_wire *w);
/* FUSE_INTERRUPTs answered so far (fe_wire_read()). */
uint64_t fe_wire_interrupts(const struct fe_wire *w);
/* The fuse_custom_io read and writev operations, on @w. The read answers
 * FUSE_INTERRUPT itself (ENOSYS: no handler can be interrupted) and never
 * returns one. */
ssize_t fe_wire_read(struct fe_wire *w, int fd, void *buf, size_t len);
ssize_t fe_wire_writev(struct fe_wire *w, int fd, struct iovec *iov, int count);

/* A request taken from an io_uring entry: the fuse_in_header in @in_out,
 * the opcode's fixed argument in @op_in, and @payload_sz bytes at
 * @payload, which has @headroom bytes free before it. Lays the request out
 * as read(2) of /dev/fuse would, ending at the payload's end, and does to
 * it what fe_wire_read() does. Returns its length and its start in @start,
 * or -EPROTO for a header that does not add up. */
ssize_t fe_wire_uring_in(struct fe_wire *w, const void *in_out, const void *op_in, char *payload,
                         size_t headroom, size_t payload_sz, char **start);

/* The unique of the reply in @iov (its fuse_out_header). */
uint64_t fe_wire_out_unique(const struct iovec *iov, int count);

/* The size of fuse_out_header (replies spliced through a pipe start so). */
size_t fe_wire_out_header_size(void);

/* Set @in_out to the fuse_out_header of an error reply, @err < 0. */
void fe_wire_out_error(void *in_out, uint64_t unique, int err);

/* The number of requests taken so far (fe_wire.requests). */
uint64_t fe_wire_requests(const struct fe_wire *w);

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

/* Whether the GETATTR the calling thread serves came as a FUSE_STATX
 * (statx(2) asking for more than stat has, the birth time): its reply must
 * then be a fuse_statx_out, laid out by fe_wire_statx_out(). As with the
 * kill mark, the request is the one this thread read last. */
bool fe_wire_is_statx(void);

/* The size of a STATX reply's argument (struct fuse_statx_out). */
#define FE_WIRE_STATX_OUT_SIZE 288

/* Lay out in @out (FE_WIRE_STATX_OUT_SIZE bytes) the reply to a STATX:
 * @stx, valid for @timeout seconds. */
struct statx;
void fe_wire_statx_out(void *out, const struct statx *stx, double timeout);

#endif
