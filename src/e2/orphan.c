/* The orphan list: inodes whose last link is gone while they are still
 * open. ext4 chains them from s_last_orphan through i_dtime; an inode on
 * the list when the image is mounted again (the daemon was killed) is
 * freed then, as the kernel's ext4_orphan_cleanup() and e2fsck do. With a
 * journal the unlink and the list insertion commit together, so a crash
 * never leaves an unreferenced inode behind. */
#include "e2/e2_internal.h"
#include "base/log.h"

#include <errno.h>

static bool is_valid_orphan(ext2_filsys fs, ext2_ino_t ino)
{
    return ino >= EXT2_FIRST_INODE(fs->super) && ino <= fs->super->s_inodes_count;
}

int e2_orphan_add(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    in.i_dtime = img->fs->super->s_last_orphan;
    ret = e2_write_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    img->fs->super->s_last_orphan = ino;
    ext2fs_mark_super_dirty(img->fs);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_orphan_remove_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in)
{
    ext2_filsys fs = img->fs;
    ext2_ino_t cur = fs->super->s_last_orphan;
    struct ext2_inode_large prev;
    uint32_t steps = 0;
    int ret;

    if (!cur)
        return 0;
    if (cur == ino) {
        fs->super->s_last_orphan = is_valid_orphan(fs, in->i_dtime) ? in->i_dtime : 0;
        ext2fs_mark_super_dirty(fs);
        in->i_dtime = 0;
        return 0;
    }
    /* The list is short (inodes unlinked while open): walk it. */
    while (cur && is_valid_orphan(fs, cur) && steps++ < fs->super->s_inodes_count) {
        ret = e2_read_inode_locked(img, cur, &prev);
        if (ret)
            return ret;
        if (prev.i_dtime == ino) {
            prev.i_dtime = in->i_dtime;
            in->i_dtime = 0;
            return e2_write_inode_locked(img, cur, &prev);
        }
        cur = prev.i_dtime;
    }
    return 0; /* not on the list */
}

int e2_orphan_remove(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (!ret)
        ret = e2_orphan_remove_locked(img, ino, &in);
    if (!ret)
        ret = e2_write_inode_locked(img, ino, &in);
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_orphans_release(struct e2_image *img)
{
    int ret;

    e2_lock(img);
    img->closing = true;
    ret = img->read_only ? 0 : e2_orphan_cleanup_locked(img);
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_orphan_cleanup_locked(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    uint32_t freed = 0, steps = 0;
    int ret = 0;

    while (fs->super->s_last_orphan && !ret) {
        ext2_ino_t ino = fs->super->s_last_orphan;
        struct ext2_inode_large in;

        if (!is_valid_orphan(fs, ino) || steps++ > fs->super->s_inodes_count) {
            log_warn("'%s': orphan list damaged at inode %u; dropping the rest of it", img->path,
                     ino);
            fs->super->s_last_orphan = 0;
            ext2fs_mark_super_dirty(fs);
            break;
        }
        ret = e2_read_inode_locked(img, ino, &in);
        if (ret)
            break;
        if (in.i_links_count) {
            /* ext4 also lists inodes mid-truncate; ours never are, and the
             * blocks past i_size are released as the kernel would. */
            uint64_t bs = fs->blocksize, keep = (EXT2_I_SIZE(&in) + bs - 1) / bs;
            ret = e2_orphan_remove_locked(img, ino, &in); /* the head: O(1) */
            if (!ret && !(in.i_flags & EXT4_INLINE_DATA_FL) &&
                ext2fs_inode_has_valid_blocks2(fs, (struct ext2_inode *)&in))
                ret = e2_punch_locked(img, ino, &in, keep, ~0ULL);
            if (!ret)
                ret = e2_write_inode_locked(img, ino, &in);
            continue;
        }
        ret = e2_inode_free_locked(img, ino);
        freed++;
        /* Thousands of orphans at once (a mount after a crash, or a close
         * with many unlinked files open): commit as the log fills. */
        if (!ret && img->journal && e2_journal_wants_commit(img))
            ret = e2_journal_commit_locked(img);
    }
    if (freed && !img->closing)
        log_notice("'%s': freed %u orphan inode%s left by an unclean shutdown", img->path, freed,
                   freed == 1 ? "" : "s");
    return ret;
}
