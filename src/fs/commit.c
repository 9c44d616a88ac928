/* The periodic commit: every commit interval, if anything changed, commit
 * (ext4's commit=): a jbd2 transaction on an image with a journal, else
 * libext2fs's in-memory metadata written and synced. It bounds what a crash
 * can lose. The thread also commits at once when the running transaction
 * outgrows its share of the journal (e2_set_commit_notify). And the
 * commit asked for: EXT4_IOC_CHECKPOINT (uext4_checkpoint). */
#include "fs/fs_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fs_commit {
    pthread_t thread;
    pthread_mutex_t m; /* a private leaf: never held across uext4_sync */
    pthread_cond_t cv;
    bool stop;   /* protected by m */
    bool urgent; /* protected by m: the transaction is large, commit now */
    unsigned seconds;
};

static void *commit_thread(void *arg)
{
    struct uext4_fs *fs = arg;
    struct fs_commit *c = fs->commit;
    struct timespec until;

    pthread_mutex_lock(&c->m);
    while (!c->stop) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += c->seconds;
        while (!c->stop && !c->urgent && pthread_cond_timedwait(&c->cv, &c->m, &until) != ETIMEDOUT)
            ;
        if (c->stop)
            break;
        bool urgent = c->urgent;
        c->urgent = false;
        pthread_mutex_unlock(&c->m);
        if (atomic_exchange(&fs->dirty, false) || urgent) {
            int ret = uext4_sync(fs);
            if (ret && !e2_image_error(fs->img)) {
                /* Try again at the next interval (not after a failed
                 * write of the image: every commit would fail). */
                atomic_store(&fs->dirty, true);
                log_err("commit: writing metadata to the image failed: %s", strerror(-ret));
            }
        }
        pthread_mutex_lock(&c->m);
    }
    pthread_mutex_unlock(&c->m);
    return NULL;
}

void fs_commit_if_overdue(struct uext4_fs *fs)
{
    int ret;

    if (!e2_commit_overdue(fs->img))
        return;
    ret = fs_commit_now(fs);
    if (ret) /* the commit thread tries again and reports it */
        log_err("commit: writing metadata to the image failed: %s", strerror(-ret));
}

/* Called by the e2 layer with its disk lock held: only signal. */
static void commit_wanted(void *arg)
{
    struct fs_commit *c = arg;

    pthread_mutex_lock(&c->m);
    c->urgent = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->m);
}

int fs_commit_start(struct uext4_fs *fs, unsigned seconds)
{
    struct fs_commit *c = calloc(1, sizeof(*c));
    pthread_condattr_t ca;
    int err;

    if (!c)
        return -ENOMEM;
    c->seconds = seconds;
    pthread_mutex_init(&c->m, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    fs->commit = c;
    err = pthread_create(&c->thread, NULL, commit_thread, fs);
    if (err) {
        fs->commit = NULL;
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->m);
        free(c);
        return -err;
    }
    e2_set_commit_notify(fs->img, commit_wanted, c);
    return 0;
}

void fs_commit_stop(struct uext4_fs *fs)
{
    struct fs_commit *c = fs->commit;

    if (!c)
        return;
    e2_set_commit_notify(fs->img, NULL, NULL);
    pthread_mutex_lock(&c->m);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->m);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->m);
    free(c);
    fs->commit = NULL;
}

_Static_assert(UEXT4_CHECKPOINT_DISCARD == E2_CHECKPOINT_DISCARD &&
                   UEXT4_CHECKPOINT_ZEROOUT == E2_CHECKPOINT_ZEROOUT &&
                   UEXT4_CHECKPOINT_DRY_RUN == E2_CHECKPOINT_DRY_RUN,
               "ext4's checkpoint flags, passed through");

int uext4_checkpoint(struct uext4_fs *fs, const struct uext4_cred *cr, unsigned flags)
{
    const unsigned valid =
        UEXT4_CHECKPOINT_DISCARD | UEXT4_CHECKPOINT_ZEROOUT | UEXT4_CHECKPOINT_DRY_RUN;
    struct fs_cred fc;
    int ret;

    /* ext4_ioctl_checkpoint()'s order: capability, flags, journal. */
    fs_cred_from(fs, cr, &fc);
    if (!fc.root)
        return -EPERM; /* CAP_SYS_ADMIN */
    if ((flags & ~valid) ||
        ((flags & UEXT4_CHECKPOINT_DISCARD) && (flags & UEXT4_CHECKPOINT_ZEROOUT)))
        return -EINVAL;
    /* As jbd2_journal_lock_updates(): no operation half done while the
     * journal is flushed. Dirty pages stay (ext4's delayed data is in no
     * transaction either). */
    rwlock_wrlock(&fs->mount_lock);
    ret = e2_image_checkpoint(fs->img, flags);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}
