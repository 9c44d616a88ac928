/* The periodic commit: every commit interval, if anything changed, write
 * libext2fs's in-memory metadata to the image and sync it (ext4's
 * commit=). Without a journal this bounds what a crash can lose. */
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
    bool stop; /* protected by m */
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
        while (!c->stop && pthread_cond_timedwait(&c->cv, &c->m, &until) != ETIMEDOUT)
            ;
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->m);
        if (atomic_exchange(&fs->dirty, false)) {
            int ret = uext4_sync(fs);
            if (ret) {
                /* Try again at the next interval. */
                atomic_store(&fs->dirty, true);
                log_err("commit: writing metadata to the image failed: %s", strerror(-ret));
            }
        }
        pthread_mutex_lock(&c->m);
    }
    pthread_mutex_unlock(&c->m);
    return NULL;
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
    return 0;
}

void fs_commit_stop(struct uext4_fs *fs)
{
    struct fs_commit *c = fs->commit;

    if (!c)
        return;
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
