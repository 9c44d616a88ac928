/* The FUSE channel under libfuse (installed with fuse_session_custom_io()).
 *
 * Three things pass through here that libfuse 3.14 cannot handle: the INIT
 * flags below, O_TMPFILE's FUSE_TMPFILE request and statx(2)'s FUSE_STATX
 * request (wire_inspect).
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

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "frontend/uring_abi.h"

/* FUSE_TMPFILE (protocol 7.37); the <linux/fuse.h> of older systems
 * lacks the name. */
#define FE_WIRE_OP_TMPFILE 51

/* FUSE_STATX (protocol 7.39): the opcode and structures, as the kernel's
 * uapi lays them out; the <linux/fuse.h> of older systems lacks them. */
#define FE_WIRE_OP_STATX 52

struct wire_sx_time {
    int64_t tv_sec;
    uint32_t tv_nsec;
    int32_t reserved;
};

struct wire_statx {
    uint32_t mask, blksize;
    uint64_t attributes;
    uint32_t nlink, uid, gid;
    uint16_t mode, spare0;
    uint64_t ino, size, blocks, attributes_mask;
    struct wire_sx_time atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
    uint64_t spare2[14];
};

struct wire_statx_in {
    uint32_t getattr_flags, reserved;
    uint64_t fh;
    uint32_t sx_flags, sx_mask;
};

struct wire_statx_out {
    uint64_t attr_valid;
    uint32_t attr_valid_nsec, flags;
    uint64_t spare[2];
    struct wire_statx stat;
};

_Static_assert(sizeof(struct wire_statx) == 256, "struct fuse_statx is 256 bytes");
_Static_assert(sizeof(struct wire_statx_out) == FE_WIRE_STATX_OUT_SIZE, "fuse_statx_out");
/* A STATX is served as a GETATTR: its argument starts as GETATTR's does. */
_Static_assert(offsetof(struct wire_statx_in, getattr_flags) ==
                       offsetof(struct fuse_getattr_in, getattr_flags) &&
                   offsetof(struct wire_statx_in, fh) == offsetof(struct fuse_getattr_in, fh),
               "fuse_statx_in begins as fuse_getattr_in");

/* What we add to the INIT reply, each only if the kernel offered it. */
#define WIRE_EXTRA_FLAGS ((uint32_t)FUSE_HANDLE_KILLPRIV_V2)

/* The kill mark of the request this thread read last (wire.h). */
static _Thread_local enum fe_wire_kill wire_kill;
/* Whether the request this thread read last came as a STATX (wire.h). */
static _Thread_local bool wire_statx;

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

/* Test builds: a slow handler (wire.h, fe_wire.delay). */
static void wire_test_delay(const struct fe_wire *w, const void *buf, ssize_t n)
{
    if (!UEXT4_TEST_HOOKS || n < (ssize_t)sizeof(struct fuse_in_header))
        return;
    for (size_t i = 0; i < sizeof(w->delay) / sizeof(w->delay[0]); i++)
        if (w->delay[i].us && ((const struct fuse_in_header *)buf)->opcode == w->delay[i].op)
            usleep(w->delay[i].us);
}

static void wire_test_delay_init(struct fe_wire *w)
{
    const char *d = UEXT4_TEST_HOOKS ? getenv("UEXT4_TEST_WIRE_DELAY") : NULL;
    size_t i = 0;
    int used;

    while (d && i < sizeof(w->delay) / sizeof(w->delay[0]) &&
           sscanf(d, "%u:%u%n", &w->delay[i].op, &w->delay[i].us, &used) == 2) {
        i++;
        d = d[used] == ',' ? d + used + 1 : NULL;
    }
}

void fe_wire_init(struct fe_wire *w, bool killpriv_v2)
{
    memset(w, 0, sizeof(*w));
    w->want = killpriv_v2 ? WIRE_EXTRA_FLAGS : 0;
    atomic_init(&w->init_pending, false);
    atomic_init(&w->requests, 0);
    atomic_init(&w->spliced, 0);
    atomic_init(&w->interrupts, 0);
    wire_test_delay_init(w);
    atomic_init(&w->splice_credit, 0);
    atomic_init(&w->splice_in, false);
}

/* What the channel does to each request, however it came. */
static void wire_inspect(struct fe_wire *w, void *buf, ssize_t n)
{
    const struct fuse_in_header *in = buf;
    const struct fuse_init_in *arg = (const void *)(in + 1);

    if (n >= (ssize_t)sizeof(*in))
        atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
    /* O_TMPFILE: libfuse 3.14 knows no FUSE_TMPFILE and would answer
     * ENOSYS, which turns the op off for good. Its request is laid out as a
     * CREATE's (fuse_create_in, then the name) and wants a CREATE's reply,
     * and its name is always "/", which no real CREATE can carry: served
     * as a CREATE, fe_create tells them apart by the name. */
    if (n >= (ssize_t)sizeof(*in) && in->opcode == FE_WIRE_OP_TMPFILE)
        ((struct fuse_in_header *)buf)->opcode = FUSE_CREATE;
    /* statx(2) asking for the birth time: libfuse 3.14 knows no
     * FUSE_STATX either, and its ENOSYS would make the kernel send GETATTR
     * instead for good, which has no birth time. Its argument begins as
     * GETATTR's (the file handle of an fstat included), so libfuse takes
     * it as a GETATTR, and fe_getattr answers it as a STATX when
     * fe_wire_is_statx() says so (on this thread, as the kill mark). */
    wire_statx = n >= (ssize_t)(sizeof(*in) + sizeof(struct wire_statx_in)) &&
                 in->opcode == FE_WIRE_OP_STATX;
    if (wire_statx)
        ((struct fuse_in_header *)buf)->opcode = FUSE_GETATTR;
    /* The kernel sends INIT first and nothing else until it is answered:
     * the worker that reads it also replies to it, with no other request
     * in flight. */
    if (n >= (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, flags) + sizeof(arg->flags)) &&
        in->opcode == FUSE_INIT) {
        w->init_unique = in->unique;
        w->kernel_flags = arg->flags;
        w->kernel_flags2 = 0;
        if ((arg->flags & FUSE_INIT_EXT) &&
            (size_t)n >= sizeof(*in) + offsetof(struct fuse_init_in, flags2) + sizeof(arg->flags2))
            w->kernel_flags2 = arg->flags2;
        atomic_store(&w->init_pending, true);
    }
    wire_kill = n >= (ssize_t)sizeof(*in) ? wire_kill_of(in, (size_t)n) : FE_KILL_UNKNOWN;
}

/* Splicing WRITE data in. A large WRITE read(2) from /dev/fuse is copied
 * into our buffer and then again into the image file. Spliced from
 * /dev/fuse into a pipe instead, its data pages are only referenced there
 * (the kernel does not copy them), and splice(2) from the pipe into the
 * image file makes the one copy left (uext4_write_pipe()). So each worker
 * thread takes its requests through a pipe of its own, reads each one's
 * header back, and the rest of it too unless it is a WRITE with at least
 * splice_min bytes of data: those stay for the handler, which libfuse
 * runs next on the same thread (fe_wire_payload()). */

/* The header of a WRITE up to its data. */
#define WIRE_WRITE_HEAD (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))
/* Smaller WRITEs are read whole: the pipe's bookkeeping would cost more
 * than the copy saves. */
#define WIRE_SPLICE_MIN (64u << 10)
/* A request spliced and read back costs about 2 us more than one read(2)
 * (one more system call and a page for the header): 13% of a round trip
 * answered from memory. So requests are spliced only after a large WRITE
 * came, for the next WIRE_SPLICE_CREDIT requests, a stream of large
 * writes renewing it: the first WRITE of a stream is copied, the requests
 * of other work are read. */
#define WIRE_SPLICE_CREDIT 64

/* A worker thread's pipe. The read end does not block: the data is
 * always there when read, and a drain stops where the pipe is empty. */
struct wire_pipe {
    int rd, wr;
    size_t pending; /* payload bytes the handler has not taken */
    bool unknown;   /* it took an unknown part of them (an error) */
};

static pthread_key_t wire_pipe_key;
static pthread_once_t wire_pipe_once = PTHREAD_ONCE_INIT;
/* This thread's pipe; NULL before its first request, or if it has none. */
static _Thread_local struct wire_pipe *wire_pipe_cur;
static _Thread_local bool wire_pipe_none;

static void wire_pipe_free(void *arg)
{
    struct wire_pipe *p = arg;

    close(p->rd);
    close(p->wr);
    free(p);
}

static void wire_pipe_key_init(void)
{
    if (pthread_key_create(&wire_pipe_key, wire_pipe_free) != 0)
        wire_pipe_key = (pthread_key_t)-1;
}

/* A pipe of @bytes, or -errno. Only the size asked or more will do: a
 * request longer than the pipe would fail (the kernel answers its caller
 * EIO). */
static int wire_pipe_open(size_t bytes, int fds[2])
{
    int got;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    got = fcntl(fds[1], F_SETPIPE_SZ, (int)bytes);
    if (got < 0 || (size_t)got < bytes) {
        int err = got < 0 ? -errno : -ENOSPC;
        close(fds[0]);
        close(fds[1]);
        return err;
    }
    return 0;
}

/* This thread's pipe, made at its first request; NULL where it cannot
 * have one (the user's pipe quota, say): it then reads requests. */
static struct wire_pipe *wire_pipe_get(const struct fe_wire *w)
{
    struct wire_pipe *p;
    int fds[2];

    if (wire_pipe_cur || wire_pipe_none)
        return wire_pipe_cur;
    wire_pipe_none = true;
    pthread_once(&wire_pipe_once, wire_pipe_key_init);
    if (wire_pipe_key == (pthread_key_t)-1 || wire_pipe_open(w->pipe_bytes, fds) != 0)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (!p || fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0 || pthread_setspecific(wire_pipe_key, p)) {
        free(p);
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    p->rd = fds[0];
    p->wr = fds[1];
    wire_pipe_none = false;
    wire_pipe_cur = p;
    return p;
}

/* Read exactly @len bytes, which the pipe holds. 0 or -errno. */
static int wire_pipe_read(struct wire_pipe *p, char *buf, size_t len)
{
    while (len) {
        ssize_t n = read(p->rd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 && errno != EAGAIN ? -errno : -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Drop what the last request's handler left in the pipe, through @buf. */
static void wire_pipe_drain(struct wire_pipe *p, char *buf, size_t len)
{
    ssize_t n;

    if (!p->pending && !p->unknown)
        return;
    do
        n = read(p->rd, buf, len);
    while (n > 0 || (n < 0 && errno == EINTR));
    p->pending = 0;
    p->unknown = false;
}

size_t fe_wire_splice_setup(struct fe_wire *w, size_t want)
{
    size_t bytes = want + 4096; /* the data's pages and one for the header */
    int fds[2];

    /* The largest pipe this user may have, down to one for 128 KiB WRITEs. */
    while (bytes >= (128u << 10) + 4096 && wire_pipe_open(bytes, fds) != 0)
        bytes = bytes > (1u << 20) ? (1u << 20) : bytes / 2;
    if (bytes < (128u << 10) + 4096)
        return want;
    close(fds[0]);
    close(fds[1]);
    w->pipe_bytes = bytes;
    w->splice_min = WIRE_SPLICE_MIN;
    atomic_store_explicit(&w->splice_in, true, memory_order_release);
    return bytes - 4096 < want ? bytes - 4096 : want;
}

/* fe_wire_read() through this thread's pipe. */
static ssize_t wire_splice_read(struct fe_wire *w, struct wire_pipe *p, int fd, char *buf,
                                size_t len)
{
    ssize_t n;
    int err;

    wire_pipe_drain(p, buf, len);
    n = splice(fd, NULL, p->wr, NULL, len, 0);
    if (n <= 0)
        return n; /* errno as read(2) would set it: libfuse acts on it */
    if ((size_t)n < WIRE_WRITE_HEAD + w->splice_min) {
        err = wire_pipe_read(p, buf, (size_t)n);
    } else {
        err = wire_pipe_read(p, buf, WIRE_WRITE_HEAD);
        if (!err && ((const struct fuse_in_header *)buf)->opcode == FUSE_WRITE) {
            p->pending = (size_t)n - WIRE_WRITE_HEAD;
            atomic_fetch_add_explicit(&w->spliced, p->pending, memory_order_relaxed);
            return n;
        }
        if (!err)
            err = wire_pipe_read(p, buf + WIRE_WRITE_HEAD, (size_t)n - WIRE_WRITE_HEAD);
    }
    if (err) {
        /* A request lost here would never be answered: stop serving. */
        log_err("reading a request back from its pipe: %s", strerror(-err));
        errno = EIO;
        return -1;
    }
    return n;
}

/* Whether to splice the next request in (WIRE_SPLICE_CREDIT). */
static bool wire_splice_next(struct fe_wire *w)
{
    int credit;

    if (!atomic_load_explicit(&w->splice_in, memory_order_acquire))
        return false;
    credit = atomic_load_explicit(&w->splice_credit, memory_order_relaxed);
    if (credit <= 0)
        return false;
    atomic_store_explicit(&w->splice_credit, credit - 1, memory_order_relaxed);
    return true;
}

/* FUSE_INTERRUPT asks the daemon to cut short a request whose caller got
 * a signal. No handler here can be cut short (each ends in bounded time on
 * its own), so the answer is ENOSYS, which tells the kernel to send no more
 * (fc->no_interrupt) when it finds the interrupted request still waiting,
 * and is ignored (ENOENT from the write) when that one was answered first.
 * Left to libfuse, an INTERRUPT that finds its request answered is kept on
 * a list until a later request's arrival answers it EAGAIN, and if none
 * comes before the session ends it is never freed. */
static bool wire_refuse_interrupt(struct fe_wire *w, int fd, const void *buf, ssize_t n)
{
    const struct fuse_in_header *in = buf;
    struct fuse_out_header out;

    if (n < (ssize_t)sizeof(*in) || in->opcode != FUSE_INTERRUPT)
        return false;
    atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
    wire_test_delay(w, buf, n);
    fe_wire_out_error(&out, in->unique, -ENOSYS);
    if (write(fd, &out, sizeof(out)) < 0 && errno != ENOENT)
        log_debug("answering FUSE_INTERRUPT %llu: %s", (unsigned long long)in->unique,
                  strerror(errno));
    atomic_fetch_add_explicit(&w->interrupts, 1, memory_order_relaxed);
    return true;
}

ssize_t fe_wire_read(struct fe_wire *w, int fd, void *buf, size_t len)
{
    ssize_t n;

    do {
        struct wire_pipe *p = wire_splice_next(w) ? wire_pipe_get(w) : NULL;

        n = p ? wire_splice_read(w, p, fd, buf, len) : read(fd, buf, len);
    } while (wire_refuse_interrupt(w, fd, buf, n));
    if (atomic_load_explicit(&w->splice_in, memory_order_acquire) &&
        n >= (ssize_t)(WIRE_WRITE_HEAD + w->splice_min) &&
        ((const struct fuse_in_header *)buf)->opcode == FUSE_WRITE)
        atomic_store_explicit(&w->splice_credit, WIRE_SPLICE_CREDIT, memory_order_relaxed);
    wire_inspect(w, buf, n);
    wire_test_delay(w, buf, n);
    return n;
}

int fe_wire_payload(size_t *len)
{
    struct wire_pipe *p = wire_pipe_cur;

    if (!p || !p->pending || p->unknown)
        return -1;
    *len = p->pending;
    return p->rd;
}

void fe_wire_payload_taken(ssize_t n)
{
    struct wire_pipe *p = wire_pipe_cur;

    if (!p)
        return;
    if (n < 0)
        p->unknown = true;
    else
        p->pending -= (size_t)n < p->pending ? (size_t)n : p->pending;
}

int fe_wire_payload_fill(void *buf)
{
    struct wire_pipe *p = wire_pipe_cur;
    int err;

    if (!p || !p->pending)
        return 0;
    err = wire_pipe_read(p, buf, p->pending);
    if (err)
        p->unknown = true;
    else
        p->pending = 0;
    return err;
}

uint64_t fe_wire_spliced(const struct fe_wire *w)
{
    return atomic_load_explicit(&w->spliced, memory_order_relaxed);
}

uint64_t fe_wire_interrupts(const struct fe_wire *w)
{
    return atomic_load_explicit(&w->interrupts, memory_order_relaxed);
}

ssize_t fe_wire_uring_in(struct fe_wire *w, const void *in_out, const void *op_in, char *payload,
                         size_t headroom, size_t payload_sz, char **start)
{
    struct fuse_in_header in;
    size_t op_len;
    char *p;

    memcpy(&in, in_out, sizeof(in));
    if (in.len < sizeof(in) + payload_sz)
        return -EPROTO;
    op_len = in.len - sizeof(in) - payload_sz;
    if (op_len > FE_URING_OP_IN_OUT_SZ || sizeof(in) + op_len > headroom)
        return -EPROTO;
    p = payload - op_len - sizeof(in);
    memcpy(p, &in, sizeof(in));
    memcpy(p + sizeof(in), op_in, op_len);
    wire_inspect(w, p, (ssize_t)in.len);
    wire_test_delay(w, p, (ssize_t)in.len);
    *start = p;
    return (ssize_t)in.len;
}

uint64_t fe_wire_out_unique(const struct iovec *iov, int count)
{
    const struct fuse_out_header *out = iov[0].iov_base;

    if (count < 1 || iov[0].iov_len < sizeof(*out))
        return 0;
    return out->unique;
}

size_t fe_wire_out_header_size(void)
{
    return sizeof(struct fuse_out_header);
}

void fe_wire_out_error(void *in_out, uint64_t unique, int err)
{
    struct fuse_out_header out = {.len = sizeof(out), .error = err, .unique = unique};

    memcpy(in_out, &out, sizeof(out));
}

/* FUSE over io_uring, if asked for and offered (uring_abi.h). */
static void wire_init_uring(struct fe_wire *w, struct fuse_init_out *arg, size_t len)
{
    size_t payload;

    if (!w->want_uring)
        return;
    if (!(w->kernel_flags2 & FE_FUSE_OVER_IO_URING_FLAGS2) ||
        len < offsetof(struct fuse_init_out, flags2) + sizeof(arg->flags2)) {
        log_info("io_uring: the kernel does not offer FUSE over io_uring (see "
                 "/sys/module/fuse/parameters/enable_uring): serving /dev/fuse");
        return;
    }
    w->max_write = arg->max_write;
    /* Without FUSE_MAX_PAGES the kernel keeps its default of 32 pages. */
    w->max_pages = (arg->flags & FUSE_MAX_PAGES) && arg->max_pages ? arg->max_pages : 32;
    /* An entry holds the largest request: the kernel refuses smaller. */
    payload = w->max_write;
    if ((size_t)w->max_pages * 4096 > payload)
        payload = (size_t)w->max_pages * 4096;
    if (payload < 8192)
        payload = 8192;
    /* Once offered, the kernel holds requests until the rings are up:
     * everything that can fail is done first. */
    if (w->on_prepare && w->on_prepare(w->on_init_arg, payload) < 0)
        return;
    arg->flags |= FUSE_INIT_EXT;
    arg->flags2 |= FE_FUSE_OVER_IO_URING_FLAGS2;
    w->uring = true;
}

/* The kernel has taken INIT once write(2) returns: ring entries may be
 * registered from then on. */
static ssize_t wire_init_reply(struct fe_wire *w, int fd, struct iovec *iov, int count)
{
    ssize_t n = writev(fd, iov, count);

    if (n >= 0 && w->uring && w->on_init)
        w->on_init(w->on_init_arg);
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
                wire_init_uring(w, arg, iov[1].iov_len);
            }
            atomic_store(&w->init_pending, false);
            return wire_init_reply(w, fd, iov, count);
        }
    }
    return writev(fd, iov, count);
}

uint64_t fe_wire_requests(const struct fe_wire *w)
{
    return atomic_load_explicit(&w->requests, memory_order_relaxed);
}

bool fe_wire_has_killpriv_v2(const struct fe_wire *w)
{
    return (w->added & FUSE_HANDLE_KILLPRIV_V2) != 0;
}

enum fe_wire_kill fe_wire_kill_mark(const struct fe_wire *w)
{
    return fe_wire_has_killpriv_v2(w) ? wire_kill : FE_KILL_UNKNOWN;
}

bool fe_wire_is_statx(void)
{
    return wire_statx;
}

static struct wire_sx_time wire_sx_time(struct statx_timestamp t)
{
    return (struct wire_sx_time){.tv_sec = t.tv_sec, .tv_nsec = t.tv_nsec};
}

void fe_wire_statx_out(void *out, const struct statx *stx, double timeout)
{
    struct wire_statx_out o;
    struct wire_statx *sx = &o.stat;

    memset(&o, 0, sizeof(o));
    o.attr_valid = (uint64_t)timeout;
    o.attr_valid_nsec = (uint32_t)((timeout - (double)o.attr_valid) * 1e9);
    sx->mask = stx->stx_mask;
    sx->blksize = stx->stx_blksize;
    sx->attributes = stx->stx_attributes;
    sx->attributes_mask = stx->stx_attributes_mask;
    sx->nlink = stx->stx_nlink;
    sx->uid = stx->stx_uid;
    sx->gid = stx->stx_gid;
    sx->mode = stx->stx_mode;
    sx->ino = stx->stx_ino;
    sx->size = stx->stx_size;
    sx->blocks = stx->stx_blocks;
    sx->atime = wire_sx_time(stx->stx_atime);
    sx->btime = wire_sx_time(stx->stx_btime);
    sx->ctime = wire_sx_time(stx->stx_ctime);
    sx->mtime = wire_sx_time(stx->stx_mtime);
    sx->rdev_major = stx->stx_rdev_major;
    sx->rdev_minor = stx->stx_rdev_minor;
    sx->dev_major = stx->stx_dev_major;
    sx->dev_minor = stx->stx_dev_minor;
    memcpy(out, &o, sizeof(o));
}
