/* Directory listing. A read from position 0 takes a snapshot of the
 * entries, so positions are plain indexes and stay valid however the
 * directory changes while it is being read (entries added since may be
 * missed, as POSIX allows). Position 0 is where a listing starts and where
 * rewinddir(3) goes back to, and after either POSIX wants the directory as
 * it is then, not as it was at opendir. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct snap_entry {
    uint32_t ino;
    unsigned dtype;
    char *name;
};

/* A snapshot of a directory's entries. Counted: a handle holds one, and
 * each readdir holds the one it copies out of while it calls the caller's
 * fill function, which may call back into the library. */
struct snap {
    unsigned refs; /* protected by dir_lock */
    size_t n, cap;
    struct snap_entry *e;
};

/* An open directory. Requests on one handle may be served by different
 * threads (FUSE workers, or a library caller's), one after another or at
 * once. */
struct uext4_dir {
    uint32_t ino, generation; /* the generation tells a reused inode */
    struct snap *snap;        /* protected by dir_lock; NULL: none taken */
};

/* Every handle's snapshot pointer and every snapshot's count (a raw
 * pthread leaf, lock.h). One lock for all handles, not one in each: a
 * handle passes between threads through the kernel (OPENDIR answered on
 * one, READDIR on another), which orders them but which ThreadSanitizer
 * cannot see, and a lock inside the handle would itself be memory written
 * on one thread and locked on the other. Held only to swap a pointer or
 * count a reference. */
static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;

static int snap_proc(void *ctx, const char *name, size_t len, uint32_t ino, unsigned ftype)
{
    struct snap *d = ctx;

    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        struct snap_entry *e = realloc(d->e, cap * sizeof(*e));
        if (!e)
            return 1;
        d->e = e;
        d->cap = cap;
    }
    d->e[d->n].name = strndup(name, len);
    if (!d->e[d->n].name)
        return 1;
    d->e[d->n].ino = ino;
    d->e[d->n].dtype = e2_ftype_to_dtype(ftype);
    d->n++;
    return 0;
}

static void snap_free(struct snap *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->e[i].name);
    free(d->e);
    free(d);
}

/* Drop a reference to @d, freeing it with the last one. */
static void snap_put(struct snap *d)
{
    bool last;

    if (!d)
        return;
    pthread_mutex_lock(&dir_lock);
    last = --d->refs == 0;
    pthread_mutex_unlock(&dir_lock);
    if (last)
        snap_free(d);
}

void uext4_releasedir(struct uext4_fs *fs, struct uext4_dir *dir)
{
    struct snap *d;

    if (!dir)
        return;
    /* Whoever used the handle last is done with it (the kernel sends
     * RELEASEDIR after every request on it): the lock orders their
     * accesses before the free. */
    pthread_mutex_lock(&dir_lock);
    d = dir->snap;
    dir->snap = NULL;
    pthread_mutex_unlock(&dir_lock);
    snap_put(d);
    free(dir);
}

/* Reading a directory is an access, as ext4's getdents: recorded once per
 * opendir. */
static void touch_dir_atime(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi;
    struct e2_attr a;

    if (fs->opts.noatime || fs->opts.nodiratime)
        return;
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return;
    if (e2_inode_get(fs->img, ino, &a) == 0)
        fs_touch_atime(fs, ino, &a);
    fs_op_end(fs, fi);
}

/* The entries as they are now, or the old snapshot untouched if the new
 * one cannot be taken (the error is the caller's). The directory may have
 * been removed since opendir (its inode freed, perhaps reused): then it
 * lists as empty, as on the kernel. */
static int snap_retake(struct uext4_fs *fs, struct uext4_dir *dir)
{
    struct snap *d = calloc(1, sizeof(*d)), *old;
    uint32_t ino, generation;
    struct e2_attr a;
    int ret;

    if (!d)
        return -ENOMEM;
    d->refs = 1;
    pthread_mutex_lock(&dir_lock);
    ino = dir->ino;
    generation = dir->generation;
    pthread_mutex_unlock(&dir_lock);
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret && S_ISDIR(a.mode) && a.nlink > 0 && a.generation == generation) {
        ret = fs_dir_check_ino(fs, ino);
        if (!ret)
            ret = e2_dir_iterate(fs->img, ino, snap_proc, d);
    }
    ret = FS_CHECK(fs, ino, ret);
    rwlock_unlock(&fs->mount_lock);
    if (ret) {
        snap_free(d);
        return ret;
    }
    pthread_mutex_lock(&dir_lock);
    old = dir->snap;
    dir->snap = d;
    pthread_mutex_unlock(&dir_lock);
    snap_put(old);
    return 0;
}

int uext4_opendir(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                  struct uext4_dir **out)
{
    struct uext4_dir *d;
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->ino = ino;
    fs_cred_from(fs, cr, &fc);
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret && !S_ISDIR(a.mode))
        ret = -ENOTDIR;
    if (!ret)
        ret = fs_permission(fs, &fc, ino, &a, R_OK);
    if (!ret) {
        /* Set under the lock, which publishes the whole handle: the next
         * request on it, on another thread, is ordered after this one by
         * the kernel, which ThreadSanitizer cannot see. */
        pthread_mutex_lock(&dir_lock);
        d->generation = a.generation;
        pthread_mutex_unlock(&dir_lock);
    }
    ret = FS_CHECK(fs, ino, ret);
    rwlock_unlock(&fs->mount_lock);
    if (ret) {
        uext4_releasedir(fs, d);
        return ret;
    }
    *out = d;
    touch_dir_atime(fs, ino);
    return 0;
}

int uext4_readdir(struct uext4_fs *fs, struct uext4_dir *dir, uint64_t pos, uext4_filldir_t fill,
                  void *ctx)
{
    struct snap *d;

    if (pos == 0) {
        int ret = snap_retake(fs, dir);

        if (ret)
            return ret;
    }
    pthread_mutex_lock(&dir_lock);
    d = dir->snap;
    if (d)
        d->refs++;
    pthread_mutex_unlock(&dir_lock);
    for (uint64_t i = pos; d && i < d->n; i++) {
        const struct snap_entry *e = &d->e[i];
        if (fill(ctx, e->name, e->ino, e->dtype, i + 1))
            break;
    }
    snap_put(d);
    return 0;
}
