/* Translation between local ids (the callers') and the image's ids. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <string.h>

#define OVERFLOW_ID 65534u

static int map(const struct uext4_idmap *m, unsigned n, uint32_t id, bool to_image, uint32_t *out)
{
    if (n == 0) {
        *out = id;
        return 0;
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t from = to_image ? m[i].local : m[i].image;
        uint32_t to = to_image ? m[i].image : m[i].local;
        if (id >= from && id - from < m[i].count) {
            *out = to + (id - from);
            return 0;
        }
    }
    return -EOVERFLOW;
}

int fs_uid_to_image(const struct uext4_fs *fs, uint32_t local, uint32_t *image)
{
    return map(fs->opts.uidmap, fs->opts.nuidmap, local, true, image);
}

int fs_gid_to_image(const struct uext4_fs *fs, uint32_t local, uint32_t *image)
{
    return map(fs->opts.gidmap, fs->opts.ngidmap, local, true, image);
}

bool fs_uid_is_mapped(const struct uext4_fs *fs, uint32_t image, uint32_t *local)
{
    return map(fs->opts.uidmap, fs->opts.nuidmap, image, false, local) == 0;
}

bool fs_gid_is_mapped(const struct uext4_fs *fs, uint32_t image, uint32_t *local)
{
    return map(fs->opts.gidmap, fs->opts.ngidmap, image, false, local) == 0;
}

uint32_t fs_uid_to_local(const struct uext4_fs *fs, uint32_t image)
{
    uint32_t out;

    return map(fs->opts.uidmap, fs->opts.nuidmap, image, false, &out) ? OVERFLOW_ID : out;
}

uint32_t fs_gid_to_local(const struct uext4_fs *fs, uint32_t image)
{
    uint32_t out;

    return map(fs->opts.gidmap, fs->opts.ngidmap, image, false, &out) ? OVERFLOW_ID : out;
}

void fs_attr_to_stat(struct uext4_fs *fs, uint32_t ino, const struct e2_attr *a, struct stat *st)
{
    /* The times may be seen from here on (file.c, times_unseen). */
    atomic_fetch_add_explicit(&fs->attrs_shown, 1, memory_order_relaxed);
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = fs_uid_to_local(fs, a->uid);
    st->st_gid = fs_gid_to_local(fs, a->gid);
    st->st_rdev = a->rdev;
    st->st_size = (off_t)a->size;
    st->st_blksize = e2_block_size(fs->img);
    st->st_blocks = (blkcnt_t)a->blocks;
    st->st_atim = a->atime;
    st->st_mtim = a->mtime;
    st->st_ctim = a->ctime;
}
