/* Online grow: EXT4_IOC_RESIZE_FS, which `resize2fs IMAGE` asks for when
 * the image is mounted.
 *
 * As ext4_resize_fs(): the last group is extended (to the new end, or to
 * a whole group), then groups are added, each with a descriptor, bitmaps
 * and an inode table (placed as flex_bg wants, ext2fs_allocate_group_table)
 * and, where sparse_super puts one, a backup of the superblock and of the
 * descriptors. A last group too small for its own metadata is left out,
 * as ext4 leaves it out.
 *
 * Where the new descriptor blocks go, as ext4 puts them:
 *  - with a resize inode, in the reserved GDT blocks it holds;
 *  - with meta_bg, each in the first group of its meta group (the groups
 *    one descriptor block describes), backed up in the second and last;
 *  - growth needing more descriptor blocks than are reserved first fills
 *    the reserved ones, then converts the file system to meta_bg
 *    (ext4_convert_meta_bg: resize_inode off, meta_bg on, s_first_meta_bg
 *    the descriptor blocks so far, the resize inode's last block freed)
 *    and goes on in meta_bg layout; a file system with neither resize
 *    inode nor meta_bg is converted at its first grow.
 * bigalloc grows as ext4 grows it: the size rounded down to a cluster,
 * free clusters per group, free blocks in the superblock, and
 * s_overhead_clusters grown by the new metadata's clusters
 * (ext4_add_overhead(), count_clusters()).
 * sparse_super2 file systems, and partitions, are refused (-EOPNOTSUPP)
 * with a log line saying to unmount and run resize2fs; ext4 refuses
 * sparse_super2 too.
 *
 * New groups get what ext4 gives them: BLOCK_UNINIT and INODE_UNINIT with
 * group descriptor checksums (the last group, and any group that hosts
 * another's bitmaps or inode table, without BLOCK_UNINIT), ITABLE_ZEROED
 * never; their inode tables are zeroed all the same, as ext4 zeroes them.
 * s_r_blocks_count grows by the same whole percentage per flex group as
 * ext4_update_super() computes it, and s_overhead_clusters is recomputed
 * as it recomputes it.
 *
 * Durability: the caller commits before and after (uext4_resize), so with
 * a journal the grow, conversion included, is one transaction of its own:
 * superblock, descriptors (meta_bg copies included: ext2fs_flush writes
 * them all), bitmaps, resize inode and backups go home only through the
 * log. What reaches the image before the commit is the zeroing of the new
 * inode tables, in blocks the committed file system calls free (or
 * outside it). The recovery bound is the image's size, not the old block
 * count (image.c), so a crash after the commit replays the new blocks.
 * Without a journal the writes go home as they are made, as ext4's
 * no-journal mode writes them: a crash in the middle may leave work for
 * e2fsck. */
#include "e2/imgfile.h"
#include "e2/iomgr.h"
#include "e2/e2_internal.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

struct grow {
    blk64_t o_blocks, n_blocks;
    dgrp_t o_groups, n_groups;
    unsigned long o_desc, n_desc;
    bool rsv_gdt; /* new descriptor blocks come from the resize inode */
};

static int refuse(const struct e2_image *img, const char *what)
{
    log_err("'%s': cannot grow the mounted file system: %s; unmount it and run resize2fs on the "
            "image",
            img->path, what);
    return -EOPNOTSUPP;
}

static int check_features_locked(const struct e2_image *img)
{
    struct ext2_super_block *sb = img->fs->super;
    bool rsv = ext2fs_has_feature_resize_inode(sb);

    if (ext2fs_has_feature_sparse_super2(sb))
        return refuse(img, "sparse_super2 is not supported (nor by ext4)");
    /* ext4_resize_begin() and ext4_resize_fs() refuse these as damage. */
    if ((!rsv && sb->s_reserved_gdt_blocks) || (rsv && ext2fs_has_feature_meta_bg(sb))) {
        log_err("'%s': reserved GDT blocks without resize_inode, or resize_inode with meta_bg: "
                "run e2fsck",
                img->path);
        return -EUCLEAN;
    }
    if (!img->fs->group_desc)
        return refuse(img, "the group descriptors are not in memory");
    /* Its window and lock were narrowed to the file system at the mount
     * (image.c, narrow_window), and the I/O manager ends there too. */
    if (img->offset || img->sizelimit)
        return refuse(img, "a partition (offset=, sizelimit=) cannot grow while mounted");
    return 0;
}

/* ext4 reads the new last block first: the image must already hold the
 * new size. -ENOSPC as ext4's failed read. */
static int check_room_locked(const struct e2_image *img, uint64_t n)
{
    uint64_t size, avail, bs = img->fs->blocksize;
    int ret = e2_imgfile_size(img->lock_fd, &size);

    if (ret)
        return ret;
    avail = size;
    if (n <= avail / bs)
        return 0;
    log_err("'%s': cannot grow to %llu blocks (%llu bytes): the image file holds %llu bytes",
            img->path, (unsigned long long)n,
            (unsigned long long)(n > UINT64_MAX / bs ? UINT64_MAX : n * bs),
            (unsigned long long)avail);
    return -ENOSPC;
}

/* ext4_group_overhead_blocks() of group @g: its superblock copy,
 * descriptor blocks (old layout or meta_bg's) and reserved GDT blocks,
 * counted as libext2fs places them. */
static blk64_t group_overhead(ext2_filsys fs, dgrp_t g)
{
    blk64_t super, old_desc, new_desc;
    blk_t used = 0;

    ext2fs_super_and_bgd_loc2(fs, g, &super, &old_desc, &new_desc, &used);
    return used;
}

static dgrp_t group_of(const struct ext2_super_block *sb, blk64_t blk)
{
    return (dgrp_t)((blk - sb->s_first_data_block) / sb->s_blocks_per_group);
}

/* ext4_resize_fs()'s checks of a size @n: -EINVAL for a shrink, for more
 * inodes than 32 bits count, or more blocks than the file system can
 * number. */
static int check_size_locked(const struct e2_image *img, blk64_t n)
{
    struct ext2_super_block *sb = img->fs->super;
    blk64_t o = ext2fs_blocks_count(sb);

    if (n > (ext2fs_has_feature_64bit(sb) ? (1ULL << 48) : 0xFFFFFFFFULL))
        return -EINVAL;
    if (n < o) {
        log_warn("'%s': cannot shrink the mounted file system (%llu -> %llu blocks)", img->path,
                 (unsigned long long)o, (unsigned long long)n);
        return -EINVAL;
    }
    if (n > o && group_of(sb, n - 1) >= 0xFFFFFFFFULL / sb->s_inodes_per_group)
        return -EINVAL;
    return 0;
}

/* With a resize inode, growth to @n needing more descriptor blocks than
 * are reserved goes first as far as they reach: whole groups filling
 * every reserved block (ext4_resize_fs). Returns that size, 0 if @n fits. */
static blk64_t reserved_reach(ext2_filsys fs, blk64_t n)
{
    struct ext2_super_block *sb = fs->super;
    unsigned long most = fs->desc_blocks + sb->s_reserved_gdt_blocks;
    dgrp_t groups = group_of(sb, n - 1) + 1;

    if (!ext2fs_has_feature_resize_inode(sb) ||
        ext2fs_div_ceil(groups, EXT2_DESC_PER_BLOCK(sb)) <= most)
        return 0;
    return (blk64_t)most * EXT2_DESC_PER_BLOCK(sb) * sb->s_blocks_per_group +
           sb->s_first_data_block;
}

/* A last group that could not hold its metadata is left out, as ext4
 * leaves it out: the size ending before it, or @n if it can. */
static blk64_t without_small_last(ext2_filsys fs, blk64_t n)
{
    dgrp_t last = group_of(fs->super, n - 1);
    blk64_t first = ext2fs_group_first_block2(fs, last);

    if (first + group_overhead(fs, last) + 2 + fs->inode_blocks_per_group +
            EXT2FS_CLUSTER_RATIO(fs) <
        n)
        return n;
    return first;
}

/* The geometry of a grow to @n, a size settled by resize_locked(). */
static void plan(ext2_filsys fs, blk64_t n, struct grow *g)
{
    struct ext2_super_block *sb = fs->super;

    g->o_blocks = ext2fs_blocks_count(sb);
    g->o_groups = fs->group_desc_count;
    g->o_desc = fs->desc_blocks;
    g->n_blocks = n;
    g->n_groups = group_of(sb, n - 1) + 1;
    g->n_desc = ext2fs_div_ceil(g->n_groups, EXT2_DESC_PER_BLOCK(sb));
    g->rsv_gdt = ext2fs_has_feature_resize_inode(sb);
}

/* The primary descriptor table's first block: the one after the
 * superblock's. Not s_first_data_block + 1: bigalloc with 1 KiB blocks
 * starts group 0 at block 0 and keeps the superblock in block 1. */
static blk64_t gdt_start(ext2_filsys fs)
{
    return SUPERBLOCK_OFFSET / fs->blocksize + 1;
}

/* The reserved GDT block at descriptor index @i is where the resize inode
 * says it is: its double-indirect block @dind points at it. */
static bool rsv_block_listed(ext2_filsys fs, const uint32_t *dind, unsigned long i)
{
    blk64_t pblk = gdt_start(fs) + i;

    return dind[i % (fs->blocksize / 4)] == pblk;
}

/* Read the resize inode and its double-indirect block into @in and @dind,
 * and check that it lists every reserved GDT block (e2fsck's
 * check_resize_inode, for the blocks the grow uses): -EUCLEAN if not. */
static int read_resize_inode_locked(struct e2_image *img, struct ext2_inode *in, uint32_t *dind)
{
    ext2_filsys fs = img->fs;
    unsigned long first = fs->desc_blocks, end = first + fs->super->s_reserved_gdt_blocks;
    errcode_t err = ext2fs_read_inode(fs, EXT2_RESIZE_INO, in);
    blk64_t blk;

    if (err)
        return e2_errno(err);
    blk = in->i_block[EXT2_DIND_BLOCK];
    if (!blk || blk >= ext2fs_blocks_count(fs->super))
        goto out_corrupt;
    err = io_channel_read_blk64(fs->io, blk, 1, dind);
    if (err)
        return e2_errno(err);
    for (unsigned long i = first; i < end; i++)
        if (!rsv_block_listed(fs, dind, i))
            goto out_corrupt;
    return 0;

out_corrupt:
    log_err("'%s': the resize inode does not list the reserved GDT blocks; run e2fsck", img->path);
    return -EUCLEAN;
}

/* Everything that can fail for want of memory, before anything changes:
 * FITRIM's memory of groups, the descriptor table, the bitmaps. */
static int grow_memory_locked(struct e2_image *img, const struct grow *g)
{
    ext2_filsys fs = img->fs;
    struct ext2_super_block *sb = fs->super;
    size_t old = g->o_desc * fs->blocksize, new = g->n_desc * fs->blocksize;
    /* A block bitmap counts clusters: its ends are cluster numbers. */
    blk64_t real_end = (blk64_t)EXT2_CLUSTERS_PER_GROUP(sb) * g->n_groups - 1 +
                       EXT2FS_B2C(fs, sb->s_first_data_block);
    ext2_ino_t inodes = sb->s_inodes_per_group * g->n_groups;
    errcode_t err = 0;
    int ret = e2_trim_grow(img, g->n_groups);

    if (ret)
        return ret;
    if (new > old) {
        err = ext2fs_resize_mem(old, new, &fs->group_desc);
        if (!err)
            memset((char *)fs->group_desc + old, 0, new - old);
    }
    if (!err)
        err = ext2fs_resize_block_bitmap2(EXT2FS_B2C(fs, g->n_blocks - 1), real_end, fs->block_map);
    if (!err)
        err = ext2fs_resize_inode_bitmap2(inodes, inodes, fs->inode_map);
    return e2_errno(err);
}

/* The old last group's new blocks are free (ext4_group_extend_no_check):
 * whole clusters, both ends being cluster-aligned. */
static void extend_last_group(ext2_filsys fs, const struct grow *g)
{
    dgrp_t last = g->o_groups - 1;
    blk64_t end = ext2fs_group_first_block2(fs, last) + fs->super->s_blocks_per_group;
    blk64_t add = (g->n_blocks < end ? g->n_blocks : end) - g->o_blocks;

    ext2fs_bg_free_blocks_count_set(
        fs, last, ext2fs_bg_free_blocks_count(fs, last) + (uint32_t)EXT2FS_NUM_B2C(fs, add));
    ext2fs_free_blocks_count_add(fs->super, add);
}

/* A new group @g's descriptor and its superblock backup and descriptor
 * blocks marked in use; its tables are placed afterwards. */
static void init_group(ext2_filsys fs, dgrp_t g)
{
    struct ext2_super_block *sb = fs->super;
    blk64_t super, old_desc, new_desc, size;
    blk_t used = 0;

    ext2fs_super_and_bgd_loc2(fs, g, &super, &old_desc, &new_desc, &used);
    ext2fs_reserve_super_and_bgd(fs, g, fs->block_map);
    size = ext2fs_group_last_block2(fs, g) - ext2fs_group_first_block2(fs, g) + 1;
    ext2fs_bg_free_blocks_count_set(fs, g, (uint32_t)(size - used));
    ext2fs_bg_free_inodes_count_set(fs, g, sb->s_inodes_per_group);
    ext2fs_bg_used_dirs_count_set(fs, g, 0);
    ext2fs_bg_flags_zap(fs, g);
    if (ext2fs_has_group_desc_csum(fs)) {
        ext2fs_bg_itable_unused_set(fs, g, sb->s_inodes_per_group);
        ext2fs_bg_flags_set(fs, g, EXT2_BG_BLOCK_UNINIT | EXT2_BG_INODE_UNINIT);
    } else {
        ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
    }
    ext2fs_free_blocks_count_add(sb, size - used);
    sb->s_inodes_count += sb->s_inodes_per_group;
    sb->s_free_inodes_count += sb->s_inodes_per_group;
}

/* Bitmaps and inode table of new group @g. With flex_bg libext2fs counts
 * them where it puts them (and clears that group's BLOCK_UNINIT); without,
 * they are in @g itself and counted here. */
static int place_tables(ext2_filsys fs, dgrp_t g)
{
    errcode_t err = ext2fs_allocate_group_table(fs, g, fs->block_map);
    blk64_t n = 2 + fs->inode_blocks_per_group;

    if (err)
        return e2_errno(err);
    if (!ext2fs_has_feature_flex_bg(fs->super) || !fs->super->s_log_groups_per_flex) {
        ext2fs_bg_free_blocks_count_set(fs, g, ext2fs_bg_free_blocks_count(fs, g) - (uint32_t)n);
        ext2fs_free_blocks_count_add(fs->super, -(blk64_t)n);
    }
    return 0;
}

/* ext4 zeroes a new inode table (setup_new_flex_group_blocks): e2fsck and
 * the kernel would take stale bytes there for inodes once the group's
 * inodes are in use. A hole in an image file, zeros written elsewhere.
 * The blocks are free in the committed file system: no dirty copy. */
static int zero_itable_locked(struct e2_image *img, dgrp_t g)
{
    ext2_filsys fs = img->fs;
    blk64_t blk = ext2fs_inode_table_loc(fs, g), n = fs->inode_blocks_per_group;
    off_t off = (off_t)(e2_iom_base(fs->io) + blk * fs->blocksize);
    void *zero;
    int ret;

    e2_iom_forget(fs->io, blk, n);
    if (!fallocate(e2_iom_fd(fs->io), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                   (off_t)(n * fs->blocksize)))
        return 0;
    if (errno != EOPNOTSUPP)
        return -errno;
    zero = calloc(n, fs->blocksize);
    if (!zero)
        return -ENOMEM;
    ret = e2_data_write_blocks(img, blk, n, zero);
    free(zero);
    return ret;
}

/* s_r_blocks_count as ext4_update_super() grows it, a flex group at a
 * time: by the blocks added times the whole percentage reserved before.
 * The last group's extension reserves nothing more. */
static void scale_reserved(ext2_filsys fs, const struct grow *g)
{
    struct ext2_super_block *sb = fs->super;
    dgrp_t flex = ext2fs_has_feature_flex_bg(sb) ? 1U << sb->s_log_groups_per_flex : 1;
    blk64_t cur = ext2fs_group_first_block2(fs, g->o_groups), r = ext2fs_r_blocks_count(sb);

    if (cur > g->n_blocks)
        cur = g->n_blocks;
    for (dgrp_t s = g->o_groups; s < g->n_groups;) {
        dgrp_t last = s | (flex - 1);
        blk64_t end;

        if (last >= g->n_groups)
            last = g->n_groups - 1;
        end = ext2fs_group_first_block2(fs, last) + sb->s_blocks_per_group;
        if (end > g->n_blocks)
            end = g->n_blocks;
        r += r * 100 / cur * (end - ext2fs_group_first_block2(fs, s)) / 100;
        cur = end;
        s = last + 1;
    }
    ext2fs_r_blocks_count_set(sb, r);
}

/* The reserved GDT blocks now holding descriptors leave the resize inode
 * (each with the backups its indirect block listed); each one still
 * reserved lists its backups in the new groups too, after those of the
 * old ones (e2fsck's order: the groups with a superblock, ascending).
 * @in and @dind as read_resize_inode_locked() checked them, before the
 * descriptor table grew. */
static int update_resize_inode_locked(ext2_filsys fs, const struct grow *g, struct ext2_inode *in,
                                      uint32_t *dind, uint32_t *ind)
{
    unsigned long apb = fs->blocksize / 4, i;
    blk64_t base = gdt_start(fs);
    unsigned before = 0;
    errcode_t err = 0;

    for (dgrp_t grp = 1; grp < g->o_groups; grp++)
        before += ext2fs_bg_has_super(fs, grp);
    for (i = g->o_desc; i < g->n_desc && !err; i++) {
        unsigned listed = 0;

        err = io_channel_read_blk64(fs->io, base + i, 1, ind);
        for (unsigned long k = 0; k < apb && !err; k++)
            listed += ind[k] != 0;
        dind[i % apb] = 0;
        if (!err)
            err = ext2fs_iblk_sub_blocks(fs, in, 1 + listed);
    }
    for (; i < g->n_desc + fs->super->s_reserved_gdt_blocks && !err; i++) {
        unsigned k = before, added = 0;

        err = io_channel_read_blk64(fs->io, base + i, 1, ind);
        for (dgrp_t grp = g->o_groups; grp < g->n_groups && !err && k < apb; grp++)
            if (ext2fs_bg_has_super(fs, grp)) {
                ind[k++] = (uint32_t)(base + i + (blk64_t)grp * fs->super->s_blocks_per_group);
                added++;
            }
        if (!err)
            err = io_channel_write_blk64(fs->io, base + i, 1, ind);
        if (!err)
            err = ext2fs_iblk_add_blocks(fs, in, added);
    }
    if (!err)
        err = io_channel_write_blk64(fs->io, in->i_block[EXT2_DIND_BLOCK], 1, dind);
    if (!err)
        err = ext2fs_write_inode(fs, EXT2_RESIZE_INO, in);
    return e2_errno(err);
}

/* The superblock copy in group @grp, as ext4's update_backups() writes it:
 * the rest of its block zeroed, the group's number in it, checksummed. */
static errcode_t write_backup_super(ext2_filsys fs, dgrp_t grp, void *buf)
{
    struct ext2_super_block *copy = buf;

    memset(buf, 0, fs->blocksize);
    memcpy(buf, fs->super, SUPERBLOCK_SIZE);
    copy->s_block_group_nr = (uint16_t)grp;
    ext2fs_superblock_csum_set(fs, copy);
    return io_channel_write_blk64(fs->io, ext2fs_group_first_block2(fs, grp), 1, buf);
}

/* Every backup superblock, as ext4 updates them all; the descriptor
 * blocks of the old layout that changed (the old last one on) in the old
 * groups' backups, all of them in the new groups'. The old layout is every
 * descriptor block, or with meta_bg the first s_first_meta_bg: meta_bg's
 * own copies (first, second and last group of a meta group) are
 * ext2fs_flush's to write, at every commit. uext4 otherwise leaves the
 * backups alone (EXT2_FLAG_MASTER_SB_ONLY, image.c). */
static int write_backups_locked(ext2_filsys fs, const struct grow *g)
{
    struct ext2_super_block *sb = fs->super;
    unsigned long old_layout = g->n_desc;
    void *buf = malloc(fs->blocksize);
    errcode_t err = 0;

    if (!buf)
        return -ENOMEM;
    if (ext2fs_has_feature_meta_bg(sb) && sb->s_first_meta_bg < old_layout)
        old_layout = sb->s_first_meta_bg;
    for (dgrp_t grp = 1; grp < g->n_groups && !err; grp++) {
        unsigned long from = grp < g->o_groups && g->o_desc ? g->o_desc - 1 : 0;
        blk64_t super = 0, old_desc = 0, new_desc;

        ext2fs_super_and_bgd_loc2(fs, grp, &super, &old_desc, &new_desc, NULL);
        if (!super)
            continue;
        err = write_backup_super(fs, grp, buf);
        for (unsigned long i = from; old_desc && i < old_layout && !err; i++)
            err = io_channel_write_blk64(fs->io, old_desc + i, 1,
                                         (char *)fs->group_desc + i * fs->blocksize);
    }
    free(buf);
    return e2_errno(err);
}

/* s_overhead_clusters as ext4_calculate_overhead() recomputes it after a
 * grow (without bigalloc): the blocks before the first group, each
 * group's superblock copy, descriptor and reserved GDT blocks, bitmaps and
 * inode table, and an internal journal's blocks. */
static void set_overhead(ext2_filsys fs)
{
    struct ext2_super_block *sb = fs->super;
    blk64_t n = sb->s_first_data_block;
    struct ext2_inode j;

    for (dgrp_t grp = 0; grp < fs->group_desc_count; grp++)
        n += group_overhead(fs, grp) + fs->inode_blocks_per_group + 2;
    if (ext2fs_has_feature_journal(sb) && sb->s_journal_inum &&
        !ext2fs_read_inode(fs, sb->s_journal_inum, &j))
        n += EXT2_I_SIZE(&j) / fs->blocksize;
    sb->s_overhead_clusters = (uint32_t)n;
}

/* Clusters of group @grp marked in the block bitmap. */
static blk64_t used_clusters(ext2_filsys fs, dgrp_t grp)
{
    blk64_t last = ext2fs_group_last_block2(fs, grp), used = 0;

    for (blk64_t b = ext2fs_group_first_block2(fs, grp); b <= last; b += EXT2FS_CLUSTER_RATIO(fs))
        used += ext2fs_test_block_bitmap2(fs->block_map, b) != 0;
    return used;
}

/* Clusters of the blocks [@blk, @blk + @n) before block @end. */
static blk64_t clusters_before(ext2_filsys fs, blk64_t blk, blk64_t n, blk64_t end)
{
    if (blk >= end)
        return 0;
    if (blk + n > end)
        n = end - blk;
    return EXT2FS_B2C(fs, blk + n - 1) - EXT2FS_B2C(fs, blk) + 1;
}

/* The clusters an inode table's blocks [@blk, @blk + @n) take in old
 * group @in, taken off its count where libext2fs took off only its whole
 * clusters (the blocks divided by the ratio). Returns them. */
static blk64_t itable_in_old_group(ext2_filsys fs, dgrp_t in, blk64_t blk, blk64_t n)
{
    blk64_t c = EXT2FS_B2C(fs, blk + n - 1) - EXT2FS_B2C(fs, blk) + 1;
    uint32_t left = ext2fs_bg_free_blocks_count(fs, in);

    ext2fs_bg_free_blocks_count_set(fs, in, left - (uint32_t)(c - n / EXT2FS_CLUSTER_RATIO(fs)));
    ext2fs_group_desc_csum_set(fs, in);
    return c;
}

/* Clusters the new groups' tables take in the old groups: flex_bg puts
 * them there when the old last flex group has room. libext2fs gives each
 * table free clusters of its own, so none is counted twice; a bitmap's
 * cluster it takes off its group's count. */
static blk64_t tables_in_old_groups(ext2_filsys fs, const struct grow *g)
{
    blk64_t end = ext2fs_group_first_block2(fs, g->o_groups), n = 0;

    for (dgrp_t grp = g->o_groups; grp < g->n_groups; grp++) {
        blk64_t b = ext2fs_inode_table_loc(fs, grp), left = fs->inode_blocks_per_group;

        n += clusters_before(fs, ext2fs_block_bitmap_loc(fs, grp), 1, end);
        n += clusters_before(fs, ext2fs_inode_bitmap_loc(fs, grp), 1, end);
        while (left && b < end) {
            dgrp_t in = group_of(fs->super, b);
            blk64_t seg = ext2fs_group_last_block2(fs, in) + 1 - b;

            if (seg > left)
                seg = left;
            n += itable_in_old_group(fs, in, b, seg);
            b += seg;
            left -= seg;
        }
    }
    return n;
}

/* bigalloc: descriptors count free clusters, the superblock free blocks.
 * libext2fs's table allocation counts a bitmap as one block of the
 * superblock's count, so the new groups are counted here from the bitmap
 * and the superblock's count set from @sb_free, what it was before they
 * were added. The new metadata clusters join s_overhead_clusters as
 * ext4_update_super() adds them (ext4_add_overhead) where it is known;
 * ext4 recounts it all where it is not (0), left alone here. */
static void count_clusters(ext2_filsys fs, const struct grow *g, blk64_t sb_free)
{
    struct ext2_super_block *sb = fs->super;
    blk64_t added = 0, free_new = 0, meta;

    for (dgrp_t grp = g->o_groups; grp < g->n_groups; grp++) {
        blk64_t size = EXT2FS_NUM_B2C(fs, ext2fs_group_last_block2(fs, grp) -
                                              ext2fs_group_first_block2(fs, grp) + 1);
        blk64_t free_c = size - used_clusters(fs, grp);

        ext2fs_bg_free_blocks_count_set(fs, grp, (uint32_t)free_c);
        added += size;
        free_new += free_c;
    }
    meta = added - free_new + tables_in_old_groups(fs, g);
    ext2fs_free_blocks_count_set(sb, sb_free + EXT2FS_C2B(fs, added - meta));
    if (sb->s_overhead_clusters)
        sb->s_overhead_clusters += (uint32_t)meta;
}

/* The new groups: counts in the superblock first (the group geometry of
 * libext2fs follows them), then each group, its tables, its inode table
 * zeroed. ext4 initialises the last group's block bitmap. */
static int add_groups_locked(struct e2_image *img, const struct grow *g)
{
    ext2_filsys fs = img->fs;
    bool bigalloc = ext2fs_has_feature_bigalloc(fs->super);
    blk64_t sb_free = ext2fs_free_blocks_count(fs->super);
    int ret = 0;

    scale_reserved(fs, g);
    ext2fs_blocks_count_set(fs->super, g->n_blocks);
    fs->group_desc_count = g->n_groups;
    fs->desc_blocks = g->n_desc;
    if (g->rsv_gdt)
        fs->super->s_reserved_gdt_blocks -= (uint16_t)(g->n_desc - g->o_desc);
    for (dgrp_t grp = g->o_groups; grp < g->n_groups; grp++)
        init_group(fs, grp);
    for (dgrp_t grp = g->o_groups; grp < g->n_groups && !ret; grp++)
        ret = place_tables(fs, grp);
    if (!ret && bigalloc)
        count_clusters(fs, g, sb_free);
    for (dgrp_t grp = g->o_groups; grp < g->n_groups && !ret; grp++)
        ret = zero_itable_locked(img, grp);
    if (g->n_groups > g->o_groups)
        ext2fs_bg_flags_clear(fs, g->n_groups - 1, EXT2_BG_BLOCK_UNINIT);
    for (dgrp_t grp = g->o_groups ? g->o_groups - 1 : 0; grp < g->n_groups; grp++)
        ext2fs_group_desc_csum_set(fs, grp);
    if (g->n_groups > g->o_groups && !bigalloc)
        set_overhead(fs);
    return ret;
}

/* Past the point of no return: the in-memory file system changes. */
static int apply_locked(struct e2_image *img, const struct grow *g, struct ext2_inode *in,
                        uint32_t *dind, uint32_t *ind)
{
    ext2_filsys fs = img->fs;
    int ret;

    extend_last_group(fs, g);
    ret = add_groups_locked(img, g);
    if (!ret && g->rsv_gdt && g->n_groups > g->o_groups)
        ret = update_resize_inode_locked(fs, g, in, dind, ind);
    ext2fs_mark_super_dirty(fs);
    ext2fs_mark_bb_dirty(fs);
    ext2fs_mark_ib_dirty(fs);
    if (!ret)
        ret = write_backups_locked(fs, g);
    /* The system zone gains the new groups' metadata. Without it (no
     * memory) the checks pass everything, as before an open builds it. */
    e2_sysz_free(img);
    if (e2_sysz_build(img))
        log_warn("'%s': out of memory rebuilding the system zone after a resize", img->path);
    if (ret)
        log_err("'%s': resize to %llu blocks failed half way: %s", img->path,
                (unsigned long long)g->n_blocks, strerror(-ret));
    return ret;
}

/* ext4_convert_meta_bg()'s check of the resize inode once every
 * reserved GDT block is in use: only its double-indirect block left.
 * -EUCLEAN if not. */
static int check_spent_resize_inode_locked(struct e2_image *img, struct ext2_inode *in)
{
    ext2_filsys fs = img->fs;
    errcode_t err = ext2fs_read_inode(fs, EXT2_RESIZE_INO, in);
    bool ok = !fs->super->s_reserved_gdt_blocks &&
              ext2fs_get_stat_i_blocks(fs, (struct ext2_inode *)in) ==
                  fs->blocksize / 512 * EXT2FS_CLUSTER_RATIO(fs);

    if (err)
        return e2_errno(err);
    for (int i = 0; i < EXT2_N_BLOCKS; i++)
        ok = ok && (i == EXT2_DIND_BLOCK) == (in->i_block[i] != 0);
    ok = ok && in->i_block[EXT2_DIND_BLOCK] < ext2fs_blocks_count(fs->super);
    if (ok)
        return 0;
    log_err("'%s': the resize inode is inconsistent, cannot convert to meta_bg; run e2fsck",
            img->path);
    return -EUCLEAN;
}

/* ext4_convert_meta_bg(): resize_inode off, meta_bg on, the descriptor
 * blocks so far kept where they are (s_first_meta_bg), and the resize
 * inode's double-indirect block, all it still holds, freed. */
static int convert_meta_bg_locked(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    struct ext2_super_block *sb = fs->super;
    bool had_inode = ext2fs_has_feature_resize_inode(sb);
    struct ext2_inode in;
    errcode_t err = 0;
    int ret = had_inode ? check_spent_resize_inode_locked(img, &in) : 0;

    if (ret)
        return ret;
    log_notice("'%s': converting the file system to meta_bg (%lu descriptor blocks so far)",
               img->path, fs->desc_blocks);
    ext2fs_clear_feature_resize_inode(sb);
    ext2fs_set_feature_meta_bg(sb);
    sb->s_first_meta_bg = (uint32_t)fs->desc_blocks;
    ext2fs_mark_super_dirty(fs);
    if (had_inode) {
        ext2fs_block_alloc_stats2(fs, in.i_block[EXT2_DIND_BLOCK], -1);
        in.i_block[EXT2_DIND_BLOCK] = 0;
        err = ext2fs_iblk_set(fs, &in, 0);
        if (!err)
            err = ext2fs_write_inode(fs, EXT2_RESIZE_INO, &in);
    }
    return e2_errno(err);
}

/* One grow to @n, a size resize_locked() settled: everything that can
 * fail for want of memory or a damaged resize inode first, then the
 * change. */
static int grow_locked(struct e2_image *img, blk64_t n)
{
    ext2_filsys fs = img->fs;
    uint32_t *dind = NULL, *ind = NULL;
    struct ext2_inode in;
    struct grow g;
    int ret = 0;

    plan(fs, n, &g);
    if (g.rsv_gdt) {
        dind = malloc(fs->blocksize);
        ind = malloc(fs->blocksize);
        ret = dind && ind ? read_resize_inode_locked(img, &in, dind) : -ENOMEM;
    }
    if (!ret)
        ret = grow_memory_locked(img, &g);
    if (!ret)
        ret = apply_locked(img, &g, &in, dind, ind);
    if (!ret)
        log_notice("'%s': resized from %llu to %llu blocks (%u groups)", img->path,
                   (unsigned long long)g.o_blocks, (unsigned long long)g.n_blocks, g.n_groups);
    free(dind);
    free(ind);
    return ret;
}

/* ext4_resize_fs()'s steps to @want: growth past the reserved GDT blocks
 * first up to where they reach (@later remembers the rest), then the
 * conversion to meta_bg, then the rest; a file system with neither resize
 * inode nor meta_bg converted first. Each step that fails leaves the
 * steps before it done, as ext4 leaves them. */
static int resize_locked(struct e2_image *img, blk64_t want)
{
    ext2_filsys fs = img->fs;
    blk64_t n = want, later = 0, reach;
    int ret;

    for (;;) {
        ret = check_size_locked(img, n);
        if (ret || n == ext2fs_blocks_count(fs->super))
            return ret;
        reach = reserved_reach(fs, n);
        if (reach) {
            later = n;
            n = reach;
        }
        if ((!ext2fs_has_feature_resize_inode(fs->super) &&
             !ext2fs_has_feature_meta_bg(fs->super)) ||
            n == ext2fs_blocks_count(fs->super)) {
            ret = convert_meta_bg_locked(img);
            if (ret)
                return ret;
            if (later) {
                n = later;
                later = 0;
                continue;
            }
        }
        if (without_small_last(fs, n) != n) {
            n = without_small_last(fs, n);
            later = 0;
            continue;
        }
        ret = grow_locked(img, n);
        if (ret || !later)
            return ret;
        n = later;
        later = 0;
    }
}

int e2_resize(struct e2_image *img, uint64_t new_blocks)
{
    int ret;

    e2_lock(img);
    ret = img->read_only ? -EROFS : check_features_locked(img);
    if (!ret)
        ret = check_room_locked(img, new_blocks);
    /* ext4_resize_fs: bigalloc sizes silently rounded down to a cluster,
     * once the last block is known to be there. */
    if (!ret)
        new_blocks &= ~(uint64_t)(EXT2FS_CLUSTER_RATIO(img->fs) - 1);
    if (!ret)
        ret = resize_locked(img, new_blocks);
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
