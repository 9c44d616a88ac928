/* EXT4_IOC_SWAP_BOOT: a regular file and the boot loader inode (inode 5)
 * trade their blocks, as ext4's swap_inode_boot_loader() does it. What
 * moves is what describes the data: i_block with the flags that give its
 * format (EXT4_FL_SHOULD_SWAP: extents, huge_file), the size, i_blocks,
 * the access and modification times and i_version; owner, mode, links,
 * the other flags and the xattrs stay. Both get a new generation (the
 * file is not the one it was) and the time of the swap as ctime. A boot
 * loader inode never used (not a regular file: mke2fs leaves it zeroed)
 * is first made an empty, root-owned regular file with one link.
 *
 * Quota: inode 5 is below s_first_ino and counts for nobody, so the
 * write hook (quota.c) charges the file's owner the difference alone, as
 * ext4's dquot_free_space()/dquot_alloc_space() after the swap do. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <string.h>

/* EXT4_FL_SHOULD_SWAP. */
#define FL_SHOULD_SWAP (EXT4_HUGE_FILE_FL | EXT4_EXTENTS_FL)

#define HAS(in, field)                                                                             \
    e2_inode_has_extra((in), offsetof(struct ext2_inode_large, field) + sizeof((in)->field))

static void swap32(uint32_t *a, uint32_t *b)
{
    uint32_t t = *a;

    *a = *b;
    *b = t;
}

/* An "extra" field of both inodes: one that lacks it reads 0 and
 * stores nothing, as ext4 keeps the full value in memory only. */
static void swap_extra(uint32_t *a, bool a_has, uint32_t *b, bool b_has)
{
    uint32_t va = a_has ? *a : 0, vb = b_has ? *b : 0;

    if (a_has)
        *a = vb;
    if (b_has)
        *b = va;
}

/* swap_inode_data() and the i_blocks exchange that follows it. */
static void swap_data(struct ext2_inode_large *a, struct ext2_inode_large *b)
{
    uint32_t block[EXT2_N_BLOCKS], fa = a->i_flags;

    memcpy(block, a->i_block, sizeof(block));
    memcpy(a->i_block, b->i_block, sizeof(block));
    memcpy(b->i_block, block, sizeof(block));
    a->i_flags = (a->i_flags & ~FL_SHOULD_SWAP) | (b->i_flags & FL_SHOULD_SWAP);
    b->i_flags = (b->i_flags & ~FL_SHOULD_SWAP) | (fa & FL_SHOULD_SWAP);
    swap32(&a->i_size, &b->i_size);
    swap32(&a->i_size_high, &b->i_size_high);
    swap32(&a->i_blocks, &b->i_blocks);
    uint16_t hi = a->osd2.linux2.l_i_blocks_hi;
    a->osd2.linux2.l_i_blocks_hi = b->osd2.linux2.l_i_blocks_hi;
    b->osd2.linux2.l_i_blocks_hi = hi;
    swap32(&a->i_atime, &b->i_atime);
    swap32(&a->i_mtime, &b->i_mtime);
    swap32(&a->osd1.linux1.l_i_version, &b->osd1.linux1.l_i_version);
    swap_extra(&a->i_atime_extra, HAS(a, i_atime_extra), &b->i_atime_extra, HAS(b, i_atime_extra));
    swap_extra(&a->i_mtime_extra, HAS(a, i_mtime_extra), &b->i_mtime_extra, HAS(b, i_mtime_extra));
    swap_extra(&a->i_version_hi, HAS(a, i_version_hi), &b->i_version_hi, HAS(b, i_version_hi));
}

static void set_time(struct ext2_inode_large *in, uint32_t *secs, uint32_t *extra, bool has_extra,
                     const struct timespec *now)
{
    uint32_t e;

    e2_time_encode(now, secs, &e);
    if (has_extra)
        *extra = e;
}

/* A boot loader inode never used: an empty regular file of root's. As
 * ext4's, which takes it for a bad inode (make_bad_inode: its times are
 * now) and writes it with the extra inode size it wants (ext4's
 * ext4_mark_inode_dirty expands a zeroed inode's 0). */
static void boot_init(struct e2_image *img, struct ext2_inode_large *bl, const struct timespec *now)
{
    if (!bl->i_extra_isize)
        bl->i_extra_isize = e2_want_extra_isize(img);
    set_time(bl, &bl->i_atime, &bl->i_atime_extra, HAS(bl, i_atime_extra), now);
    set_time(bl, &bl->i_mtime, &bl->i_mtime_extra, HAS(bl, i_mtime_extra), now);
    bl->i_links_count = 1;
    bl->i_uid = bl->i_gid = 0;
    bl->osd2.linux2.l_i_uid_high = bl->osd2.linux2.l_i_gid_high = 0;
    bl->i_flags = 0;
    /* inode_set_iversion(1): the counter above the "queried" bit. */
    bl->osd1.linux1.l_i_version = 2;
    if (HAS(bl, i_version_hi))
        bl->i_version_hi = 0;
    bl->i_size = bl->i_size_high = 0;
    bl->i_mode = LINUX_S_IFREG;
    memset(bl->i_block, 0, sizeof(bl->i_block));
    if (ext2fs_has_feature_extents(img->fs->super)) {
        struct ext3_extent_header *eh = (struct ext3_extent_header *)bl->i_block;

        eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
        eh->eh_max = ext2fs_cpu_to_le16(4);
        bl->i_flags = EXT4_EXTENTS_FL;
    }
}

int e2_swap_boot(struct e2_image *img, uint32_t ino, const struct timespec *now)
{
    struct ext2_inode_large in, bl, old;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_for_change_locked(img, ino, &in);
    if (!ret)
        ret = e2_read_inode_locked(img, EXT2_BOOT_LOADER_INO, &bl);
    if (ret)
        goto out_unlock;
    if (!LINUX_S_ISREG(bl.i_mode))
        boot_init(img, &bl, now);
    old = in;
    swap_data(&in, &bl);
    set_time(&in, &in.i_ctime, &in.i_ctime_extra, HAS(&in, i_ctime_extra), now);
    set_time(&bl, &bl.i_ctime, &bl.i_ctime_extra, HAS(&bl, i_ctime_extra), now);
    in.i_generation = e2_next_generation_locked(img);
    bl.i_generation = e2_next_generation_locked(img);
    ret = e2_write_inode_locked(img, ino, &in);
    if (!ret) {
        ret = e2_write_inode_locked(img, EXT2_BOOT_LOADER_INO, &bl);
        /* As ext4 reverts: two inodes must never map the same blocks. */
        if (ret)
            e2_write_inode_locked(img, ino, &old);
    }
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
