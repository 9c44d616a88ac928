/* FUSE over io_uring (uring.h; the kernel's side in uring_abi.h).
 *
 * Each serving thread owns an io_uring and one ring entry of one queue:
 * it registers the entry, waits for its command to complete (a request is
 * in the entry), lays the request out as /dev/fuse would deliver it (the
 * channel, wire.c) and hands it to libfuse, whose reply comes back through
 * the channel's writev or splice hook on the same thread: that is how the
 * reply finds its entry (serving, below). COMMIT_AND_FETCH then returns
 * the reply and waits for the next request, one system call per request
 * instead of a read and a write.
 *
 * A queue serves only the requests sent from its CPU, so each queue gets
 * as many threads as the /dev/fuse loop has workers: one CPU's callers are
 * served as concurrently as through /dev/fuse, and a request that waits
 * (on an inode lock, on the image) does not hold up that CPU's others.
 *
 * The entry is its own io_uring's only user, so its completions need no
 * lock; an eventfd watched by every ring stops them all. */
#include "frontend/uring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "frontend/wire.h"

#if UEXT4_HAVE_URING

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/eventfd.h>

#include "frontend/uring_abi.h"

/* Room before the payload for the fuse_in_header and the opcode's fixed
 * argument, so the request is contiguous without moving the payload. */
#define URING_HEADROOM 256

enum { UD_STOP = 1, UD_ENTRY = 2 };

struct uring_thread {
    struct fe_uring *u;
    pthread_t thread;
    bool started;
    struct io_uring ring;
    bool have_ring;
    unsigned qid;
    struct fe_uring_req_header hdr;
    struct iovec iov[2];
    char *mem; /* URING_HEADROOM, then the payload */
    size_t payload_cap;
    uint64_t commit_id; /* the request being served */
    bool replied;
    unsigned long long served; /* requests taken from the entry */
};

struct fe_uring {
    struct fuse_session *se;
    struct fe_wire *w;
    int fd;
    int stop_fd; /* eventfd */
    unsigned nthreads;
    struct uring_thread *t;
};

/* The entry the calling thread serves, while libfuse runs its request. */
static _Thread_local struct uring_thread *serving;

bool fe_uring_built(void)
{
    return true;
}

bool fe_uring_serving(void)
{
    return serving != NULL;
}

ssize_t fe_uring_writev(const struct iovec *iov, int count, bool *taken)
{
    struct uring_thread *t = serving;
    size_t hlen = fe_wire_out_header_size(), off = 0;

    *taken = false;
    if (!t || t->replied || fe_wire_out_unique(iov, count) != t->commit_id)
        return 0;
    *taken = true;
    t->replied = true;
    memcpy(t->hdr.in_out, iov[0].iov_base, hlen);
    for (int i = 1; i < count; i++) {
        if (iov[i].iov_len > t->payload_cap - off) {
            log_err("io_uring: a reply of more than %zu bytes", t->payload_cap);
            fe_wire_out_error(t->hdr.in_out, t->commit_id, -EIO);
            off = 0;
            break;
        }
        memcpy(t->mem + URING_HEADROOM + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    t->hdr.ring_ent_in_out.payload_sz = (uint32_t)off;
    /* The caller was told the whole message went out, as writev says. */
    return (ssize_t)(hlen + off);
}

/* Read exactly @len bytes from a pipe. */
static int uring_read_full(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t fe_uring_splice(int pipe_fd, size_t len, bool *taken)
{
    struct uring_thread *t = serving;
    size_t hlen = fe_wire_out_header_size();
    struct iovec iov;
    int rc;

    *taken = false;
    /* A handler replies on its own thread, before the next request: a
     * splice while serving is that reply (checked once its header is in). */
    if (!t || t->replied)
        return 0;
    *taken = true;
    t->replied = true;
    if (len < hlen || len - hlen > t->payload_cap)
        rc = -EIO;
    else
        rc = uring_read_full(pipe_fd, t->hdr.in_out, hlen);
    iov.iov_base = t->hdr.in_out;
    iov.iov_len = hlen;
    if (rc == 0 && fe_wire_out_unique(&iov, 1) != t->commit_id)
        rc = -EIO;
    if (rc == 0)
        rc = uring_read_full(pipe_fd, t->mem + URING_HEADROOM, len - hlen);
    if (rc < 0) {
        log_err("io_uring: spliced reply to request %llu: %s", (unsigned long long)t->commit_id,
                strerror(-rc));
        fe_wire_out_error(t->hdr.in_out, t->commit_id, -EIO);
        t->hdr.ring_ent_in_out.payload_sz = 0;
        return rc;
    }
    t->hdr.ring_ent_in_out.payload_sz = (uint32_t)(len - hlen);
    return (ssize_t)len;
}

/* @nvec: the iovecs a REGISTER passes (2, the header and the payload). */
static int uring_queue_cmd(struct uring_thread *t, uint32_t op, unsigned nvec)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    struct fe_uring_cmd_req req = {.commit_id = t->commit_id, .qid = (uint16_t)t->qid};

    if (!sqe)
        return -EBUSY;
    memset(sqe, 0, 2 * sizeof(*sqe)); /* SQE128: the command area too */
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = t->u->fd;
    sqe->cmd_op = op;
    if (op == FE_IO_URING_CMD_REGISTER) {
        sqe->addr = (uintptr_t)t->iov;
        sqe->len = nvec;
    }
    memcpy(sqe->cmd, &req, sizeof(req));
    io_uring_sqe_set_data64(sqe, UD_ENTRY);
    return 0;
}

/* Serve the request now in the entry. */
static void uring_serve(struct uring_thread *t)
{
    struct fe_uring_ent_in_out io = t->hdr.ring_ent_in_out;
    char *start = NULL;
    ssize_t n;

    t->commit_id = io.commit_id;
    t->replied = false;
    t->served++;
    n = io.payload_sz <= t->payload_cap
            ? fe_wire_uring_in(t->u->w, t->hdr.in_out, t->hdr.op_in, t->mem + URING_HEADROOM,
                               URING_HEADROOM, io.payload_sz, &start)
            : -EPROTO;
    if (n < 0) {
        log_err("io_uring: queue %u: a malformed request (%u payload bytes)", t->qid,
                io.payload_sz);
    } else {
        struct fuse_buf buf = {.size = (size_t)n, .mem = start};

        serving = t;
        fuse_session_process_buf(t->u->se, &buf);
        serving = NULL;
    }
    if (!t->replied) {
        /* Every request that reaches a ring entry wants a reply (FORGET
         * comes through /dev/fuse): the kernel's waiter must not hang. */
        fe_wire_out_error(t->hdr.in_out, t->commit_id, -EIO);
        t->hdr.ring_ent_in_out.payload_sz = 0;
    }
}

static void *uring_thread_main(void *arg)
{
    struct uring_thread *t = arg;
    struct io_uring_sqe *sqe;
    int rc;

    sqe = io_uring_get_sqe(&t->ring);
    io_uring_prep_poll_add(sqe, t->u->stop_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, UD_STOP);
    rc = uring_queue_cmd(t, FE_IO_URING_CMD_REGISTER, 2);
    for (;;) {
        struct io_uring_cqe *cqe;
        uint64_t ud;
        int res;

        if (rc == 0)
            rc = io_uring_submit_and_wait(&t->ring, 1);
        if (rc == -EINTR) {
            rc = 0;
            continue;
        }
        if (rc < 0) {
            log_err("io_uring: queue %u: submitting to the ring: %s", t->qid, strerror(-rc));
            break;
        }
        rc = io_uring_peek_cqe(&t->ring, &cqe);
        if (rc == -EAGAIN) {
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        ud = io_uring_cqe_get_data64(cqe);
        res = cqe->res;
        io_uring_cqe_seen(&t->ring, cqe);
        if (ud == UD_STOP)
            break;
        if (res < 0) {
            /* The connection ended (unmount, abort) or never took us. */
            if (res != -ENOTCONN && res != -ECONNABORTED && res != -ECANCELED)
                log_err("io_uring: queue %u: the kernel refused the ring entry: %s", t->qid,
                        strerror(-res));
            break;
        }
        uring_serve(t);
        rc = uring_queue_cmd(t, FE_IO_URING_CMD_COMMIT_AND_FETCH, 0);
    }
    return NULL;
}

/* One queue per possible CPU: the highest number in .../cpu/possible. */
static unsigned uring_nr_queues(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    unsigned n = 0, max = 0;
    int c, have = 0;

    if (f) {
        while ((c = fgetc(f)) != EOF) {
            if (c >= '0' && c <= '9') {
                n = n * 10 + (unsigned)(c - '0');
                have = 1;
            } else {
                if (have && n > max)
                    max = n;
                n = 0;
                have = 0;
            }
        }
        if (have && n > max)
            max = n;
        fclose(f);
        return max + 1;
    }
    return (unsigned)sysconf(_SC_NPROCESSORS_CONF);
}

int fe_uring_prepare(struct fe_uring **out, struct fuse_session *se, struct fe_wire *w, int fd,
                     unsigned per_queue, size_t payload)
{
    unsigned nq = uring_nr_queues();

    *out = NULL;
    struct fe_uring *u;
    int rc = 0;

    u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->se = se;
    u->w = w;
    u->fd = fd;
    u->nthreads = nq * (per_queue ? per_queue : 1);
    u->stop_fd = eventfd(0, EFD_CLOEXEC);
    u->t = calloc(u->nthreads, sizeof(*u->t));
    if (u->stop_fd < 0 || !u->t) {
        rc = u->stop_fd < 0 ? -errno : -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < u->nthreads; i++) {
        struct uring_thread *t = &u->t[i];

        t->u = u;
        t->qid = i % nq;
        t->payload_cap = payload;
        t->mem = malloc(URING_HEADROOM + payload);
        if (!t->mem) {
            rc = -ENOMEM;
            goto fail;
        }
        t->iov[0].iov_base = &t->hdr;
        t->iov[0].iov_len = sizeof(t->hdr);
        t->iov[1].iov_base = t->mem + URING_HEADROOM;
        t->iov[1].iov_len = payload;
        rc = io_uring_queue_init(4, &t->ring, IORING_SETUP_SQE128);
        if (rc < 0)
            goto fail;
        t->have_ring = true;
    }
    *out = u;
    return 0;

fail:
    log_err("io_uring: cannot set up the rings: %s; serving /dev/fuse", strerror(-rc));
    fe_uring_stop(u);
    return rc;
}

/* Once the kernel took FUSE over io_uring in INIT, it holds every request
 * until each queue has an entry, unless a registration fails: then it
 * goes back to /dev/fuse. A registration that cannot succeed (one iovec)
 * is how we tell it so when a thread cannot start. */
static void uring_refuse(struct uring_thread *t)
{
    struct io_uring_cqe *cqe;

    if (uring_queue_cmd(t, FE_IO_URING_CMD_REGISTER, 1) == 0) {
        if (io_uring_submit_and_wait(&t->ring, 1) >= 0 && io_uring_peek_cqe(&t->ring, &cqe) == 0)
            io_uring_cqe_seen(&t->ring, cqe);
    }
}

void fe_uring_go(struct fe_uring *u)
{
    unsigned nq = uring_nr_queues();

    for (unsigned i = 0; i < u->nthreads; i++) {
        struct uring_thread *t = &u->t[i];
        int rc = -pthread_create(&t->thread, NULL, uring_thread_main, t);

        if (rc < 0) {
            log_err("io_uring: cannot start a serving thread: %s; serving /dev/fuse",
                    strerror(-rc));
            uring_refuse(t);
            return;
        }
        t->started = true;
    }
    log_info("io_uring: serving %u queues, %u threads each", nq, u->nthreads / nq);
}

void fe_uring_stop(struct fe_uring *u)
{
    unsigned long long served = 0;
    uint64_t one = 1;

    if (!u)
        return;
    if (u->stop_fd >= 0 && write(u->stop_fd, &one, sizeof(one)) < 0)
        log_err("io_uring: cannot stop the serving threads: %s", strerror(errno));
    for (unsigned i = 0; u->t && i < u->nthreads; i++) {
        struct uring_thread *t = &u->t[i];

        if (t->started) {
            pthread_join(t->thread, NULL);
            served += t->served;
        }
        if (t->have_ring)
            io_uring_queue_exit(&t->ring);
        free(t->mem);
    }
    if (u->nthreads && u->t && u->t[0].started)
        log_info("io_uring: %llu requests served through the rings", served);
    if (u->stop_fd >= 0)
        close(u->stop_fd);
    free(u->t);
    free(u);
}

#else /* !UEXT4_HAVE_URING */

bool fe_uring_built(void)
{
    return false;
}

bool fe_uring_serving(void)
{
    return false;
}

int fe_uring_prepare(struct fe_uring **out, struct fuse_session *se, struct fe_wire *w, int fd,
                     unsigned per_queue, size_t payload)
{
    return -ENOSYS;
}

void fe_uring_go(struct fe_uring *u)
{
}

void fe_uring_stop(struct fe_uring *u)
{
}

ssize_t fe_uring_writev(const struct iovec *iov, int count, bool *taken)
{
    *taken = false;
    return 0;
}

ssize_t fe_uring_splice(int pipe_fd, size_t len, bool *taken)
{
    *taken = false;
    return 0;
}

#endif
