/* Dropping ranges of the kernel's page cache after O_DIRECT writes.
 *
 * An O_DIRECT write bypasses the page cache, which may hold the range from
 * buffered reads, even ones made while the write was in flight. The kernel
 * drops the range again after a synchronous O_DIRECT write, not after an
 * asynchronous one (aio, io_uring): readers would go on seeing the old
 * bytes (fstests generic/451). So the daemon drops it, before the reply,
 * for the writer's completion to mean that buffered reads see the data.
 * Only with FUSE_ASYNC_DIO, which makes aio O_DIRECT writes asynchronous
 * on FUSE: session.c turns it off, and then the kernel drops the range
 * after every O_DIRECT write itself (fe_write asks fe_ctx.async_dio).
 *
 * The kernel does that by locking each cached page, and a page stays locked
 * until its READ is answered, by some worker: a worker that waits there
 * needs another one free. At most one worker fewer than the loop runs
 * waits (fe_inval_slots); past that, the range goes to a thread of its own
 * and the reply does not wait (coherent a moment later). */
#include "frontend/fe_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct fe_inval_job {
    struct fe_inval_job *next;
    fuse_ino_t ino;
    off_t off, len;
};

struct fe_inval {
    struct fuse_session *se;
    unsigned slots;    /* workers that may wait in the kernel */
    atomic_uint busy;  /* workers waiting there now */
    pthread_t thread;  /* the one for the rest */
    pthread_mutex_t m; /* a private leaf, never held across a notify */
    pthread_cond_t cv;
    struct fe_inval_job *head, **tail; /* protected by m */
    bool stop;                         /* protected by m */
};

static void fe_inval_now(struct fuse_session *se, fuse_ino_t ino, off_t off, off_t len)
{
    int rc = fuse_lowlevel_notify_inval_inode(se, ino, off, len);

    /* -ENOENT: the kernel holds no such inode, so nothing cached. */
    if (rc < 0 && rc != -ENOENT)
        log_debug("inode %u: page cache invalidation after O_DIRECT write: %s", fe_ext4_ino(ino),
                  strerror(-rc));
}

static void *fe_inval_thread(void *arg)
{
    struct fe_inval *v = arg;

    pthread_mutex_lock(&v->m);
    for (;;) {
        struct fe_inval_job *j;

        while (!v->head && !v->stop)
            pthread_cond_wait(&v->cv, &v->m);
        j = v->head;
        if (!j)
            break; /* stopping, and nothing left */
        v->head = j->next;
        if (!v->head)
            v->tail = &v->head;
        pthread_mutex_unlock(&v->m);
        fe_inval_now(v->se, j->ino, j->off, j->len);
        free(j);
        pthread_mutex_lock(&v->m);
    }
    pthread_mutex_unlock(&v->m);
    return NULL;
}

int fe_inval_start(struct fe_inval **out, struct fuse_session *se, unsigned workers)
{
    struct fe_inval *v = calloc(1, sizeof(*v));
    int rc;

    if (!v)
        return -ENOMEM;
    v->se = se;
    v->slots = workers ? workers - 1 : 0;
    atomic_init(&v->busy, 0);
    v->tail = &v->head;
    pthread_mutex_init(&v->m, NULL);
    pthread_cond_init(&v->cv, NULL);
    rc = pthread_create(&v->thread, NULL, fe_inval_thread, v);
    if (rc) {
        pthread_cond_destroy(&v->cv);
        pthread_mutex_destroy(&v->m);
        free(v);
        return -rc;
    }
    *out = v;
    return 0;
}

void fe_inval_stop(struct fe_inval *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->m);
    v->stop = true;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->m);
    pthread_join(v->thread, NULL);
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->m);
    free(v);
}

/* Attributes only (offset < 0): the kernel takes no page lock for that, so
 * any worker may wait for it, whatever the others hold. */
void fe_inval_attr(struct fe_inval *v, fuse_ino_t ino)
{
    int rc = fuse_lowlevel_notify_inval_inode(v->se, ino, -1, 0);

    if (rc < 0 && rc != -ENOENT)
        log_debug("inode %u: attribute invalidation: %s", fe_ext4_ino(ino), strerror(-rc));
}

bool fe_inval_range(struct fe_inval *v, fuse_ino_t ino, off_t off, off_t len)
{
    struct fe_inval_job *j;

    if (atomic_fetch_add(&v->busy, 1) < v->slots) {
        fe_inval_now(v->se, ino, off, len);
        atomic_fetch_sub(&v->busy, 1);
        return true;
    }
    atomic_fetch_sub(&v->busy, 1);
    j = malloc(sizeof(*j));
    if (!j) {
        log_err("inode %u: no memory to drop cached pages after an O_DIRECT write",
                fe_ext4_ino(ino));
        return false;
    }
    j->next = NULL;
    j->ino = ino;
    j->off = off;
    j->len = len;
    pthread_mutex_lock(&v->m);
    *v->tail = j;
    v->tail = &j->next;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->m);
    return false;
}
