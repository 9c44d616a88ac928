/* Directory listing. opendir takes a snapshot of the entries, so positions
 * are plain indexes and stay valid however the directory changes while it
 * is being read (entries added after opendir may be missed, as POSIX
 * allows). */
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

struct uext4_dir {
    size_t n, cap;
    struct snap_entry *e;
};

static int snap_proc(void *ctx, const char *name, size_t len, uint32_t ino, unsigned ftype)
{
    struct uext4_dir *d = ctx;

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

void uext4_releasedir(struct uext4_fs *fs, struct uext4_dir *dir)
{
    if (!dir)
        return;
    for (size_t i = 0; i < dir->n; i++)
        free(dir->e[i].name);
    free(dir->e);
    free(dir);
}

/* Reading a directory is an access, as ext4's getdents: recorded once per
 * opendir, since the listing is a snapshot taken here. */
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
    fs_cred_from(fs, cr, &fc);
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret && !S_ISDIR(a.mode))
        ret = -ENOTDIR;
    if (!ret)
        ret = fs_permission(fs, &fc, ino, &a, R_OK);
    if (!ret)
        ret = e2_dir_iterate(fs->img, ino, snap_proc, d);
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
    for (uint64_t i = pos; i < dir->n; i++) {
        const struct snap_entry *e = &dir->e[i];
        if (fill(ctx, e->name, e->ino, e->dtype, i + 1))
            break;
    }
    return 0;
}
