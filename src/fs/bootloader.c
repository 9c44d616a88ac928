/* EXT4_IOC_SWAP_BOOT (uext4_swap_boot): ext4's checks in ext4's order,
 * the file's dirty pages home first, then the swap (e2/bootloader.c) and
 * the caches of the file's old contents dropped.
 *
 * The generation that FUSE's entries of the file carry stays the one
 * cached while the kernel holds the inode (fs_inode.generation): a new
 * one in a later entry would make the kernel take its inode for a stale
 * one and fail the open files' I/O. File handles taken before the swap
 * thus keep working, where ext4's become stale; the new generation is
 * the image's, and the next lookup after the kernel forgets the inode
 * gives it. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <fcntl.h>

/* i_flags that make ext4 refuse the swap (EINVAL): encrypted, journaled
 * data, inline data. */
#define FL_ENCRYPT      0x00000800u
#define FL_JOURNAL_DATA 0x00004000u

static int may_swap(const struct fs_cred *fc, const struct e2_attr *a)
{
    if (a->nlink != 1 || !S_ISREG(a->mode) ||
        (a->flags & (FL_ENCRYPT | FL_JOURNAL_DATA | E2_FL_INLINE_DATA)))
        return -EINVAL;
    /* inode_owner_or_capable() and CAP_SYS_ADMIN: root only. */
    if ((a->flags & (E2_FL_APPEND | E2_FL_IMMUTABLE)) || !fc->root)
        return -EPERM;
    return 0;
}

int uext4_swap_boot(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int open_flags)
{
    struct timespec now;
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    if (open_flags != -1 && (open_flags & O_ACCMODE) == O_RDONLY)
        return -EBADF; /* FMODE_WRITE */
    ret = fs_may_write(fs);
    if (ret)
        return ret;
    fs_cred_from(fs, cr, &fc);
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    if (!ret)
        ret = may_swap(&fc, &a);
    /* filemap_write_and_wait(): what was stored through a mapping goes to
     * the blocks that are about to become the boot loader's. */
    if (!ret)
        ret = fs_writeback_locked(fs, fi);
    if (!ret) {
        fs_now(&now);
        ret = FS_CHECK(fs, ino, e2_swap_boot(fs->img, ino, &now));
    }
    if (!ret) {
        /* truncate_inode_pages(): the cached contents are the boot
         * loader's now, and so is any fs-verity tree. */
        pc_forget(fs->pc, ino);
        fs_verity_free(fi->verity);
        fi->verity = NULL;
        fi->may_inline = false;
        fi->stale_lo = fi->stale_hi = 0;
    }
    fs_op_end(fs, fi);
    return ret;
}
