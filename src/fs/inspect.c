/* uext4_inspect: an inode's storage, for tools and tests. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int uext4_inspect(struct uext4_fs *fs, uint32_t ino, struct uext4_inode_info *info)
{
    struct e2_run *runs = NULL;
    struct e2_attr a;
    unsigned n = 0;
    int ret;

    memset(info, 0, sizeof(*info));
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (ret)
        goto out_unlock;
    info->ino = ino;
    info->mode = a.mode;
    info->nlink = a.nlink;
    info->flags = a.flags;
    info->size = a.size;
    info->blocks = a.blocks;
    info->is_inline = a.flags & E2_FL_INLINE_DATA;
    if (info->is_inline)
        ret = e2_inline_allocated(fs->img, ino, &info->inline_size);
    if (!ret && fs->inline_files && (S_ISREG(a.mode) || S_ISDIR(a.mode)))
        ret = e2_inline_capacity(fs->img, ino, &info->inline_capacity);
    if (!ret)
        ret = e2_inode_runs(fs->img, ino, &runs, &n, &info->xattr_block);
    if (ret)
        goto out_unlock;
    info->extents = calloc(n ? n : 1, sizeof(*info->extents));
    if (!info->extents) {
        ret = -ENOMEM;
        goto out_free;
    }
    for (unsigned i = 0; i < n; i++)
        info->extents[i] =
            (struct uext4_extent){runs[i].lblk, runs[i].pblk, runs[i].len, runs[i].unwritten};
    info->nextents = n;
out_free:
    free(runs);
out_unlock:
    rwlock_unlock(&fs->mount_lock);
    return FS_CHECK(fs, ino, ret);
}

void uext4_inode_info_free(struct uext4_inode_info *info)
{
    free(info->extents);
    info->extents = NULL;
    info->nextents = 0;
}
