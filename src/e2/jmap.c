/* Where the journal lives: the file system block of each block of the
 * journal inode, for recovery and the journal writer (recover.h). The map
 * is read once; both users then do block I/O on the image directly. */
#include "e2/e2_internal.h"
#include "jbd2/jfmt.h"
#include "e2/jmap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct map_walk {
    uint64_t *map;
    uint32_t len;
    blk64_t first_data, nblocks;
    bool outside;
    e2_blkcnt_t bad_lblk;
    blk64_t bad_blk;
};

static int map_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
                     int ref_offset, void *priv)
{
    struct map_walk *w = priv;

    if (blockcnt < 0 || (uint64_t)blockcnt >= w->len)
        return 0; /* mapping blocks, or allocated past i_size */
    if (*blocknr < w->first_data || *blocknr >= w->nblocks) {
        w->outside = true;
        w->bad_lblk = blockcnt;
        w->bad_blk = *blocknr;
        return BLOCK_ABORT;
    }
    w->map[blockcnt] = *blocknr;
    return 0;
}

/* Where the journal is, from the superblock alone (the kernel's
 * ext4_load_journal rules): the inode number, or an error. */
static int journal_inode_number(ext2_filsys fs, ext2_ino_t *ino, char *why, size_t len)
{
    struct ext2_super_block *sb = fs->super;
    static const uint8_t null_uuid[16];

    if (ext2fs_has_feature_journal_dev(sb)) {
        e2_say(why, len, "the image is an external journal device, not a file system");
        return -EOPNOTSUPP;
    }
    if (!ext2fs_has_feature_journal(sb)) {
        e2_say(why, len, "the file system has no journal");
        return -ENOENT;
    }
    if (!sb->s_journal_inum) {
        if (sb->s_journal_dev || memcmp(sb->s_journal_uuid, null_uuid, 16)) {
            e2_say(why, len, "the journal is external (on another device): not supported");
            return -EOPNOTSUPP;
        }
        e2_say(why, len, "the superblock has a journal but names no journal inode");
        return -EUCLEAN;
    }
    if (sb->s_journal_dev) {
        e2_say(why, len, "the superblock names both a journal inode and a journal device");
        return -EUCLEAN;
    }
    if (sb->s_journal_inum > sb->s_inodes_count) {
        e2_say(why, len, "the journal inode number %u is out of range", sb->s_journal_inum);
        return -EUCLEAN;
    }
    *ino = sb->s_journal_inum;
    return 0;
}

static int check_inode(ext2_filsys fs, ext2_ino_t ino, const struct ext2_inode *in,
                       uint32_t *blocks, char *why, size_t len)
{
    uint64_t size = EXT2_I_SIZE(in), n = size / fs->blocksize;

    if (!LINUX_S_ISREG(in->i_mode) || !in->i_links_count) {
        e2_say(why, len, "journal inode %u is not a regular file in use", ino);
        return -EUCLEAN;
    }
    if (in->i_flags & EXT4_INLINE_DATA_FL) {
        e2_say(why, len, "journal inode %u has inline data", ino);
        return -EUCLEAN;
    }
    /* Bounded by what e2fsprogs can create: the map (and recovery's
     * per-block state) must not let a crafted size exhaust memory. */
    if (n == 0 || n > JFMT_MAX_LOG_BLOCKS) {
        e2_say(why, len, "journal inode %u has an invalid size %llu (at most %u blocks)", ino,
               (unsigned long long)size, JFMT_MAX_LOG_BLOCKS);
        return -EUCLEAN;
    }
    *blocks = (uint32_t)n;
    return 0;
}

static void reserve_range(ext2fs_block_bitmap bm, ext2_filsys fs, blk64_t blk, blk64_t n)
{
    blk64_t end = ext2fs_blocks_count(fs->super);

    /* Damaged descriptors may point anywhere: only what lies inside. */
    if (blk < fs->super->s_first_data_block || blk >= end)
        return;
    if (n > end - blk)
        n = end - blk;
    ext2fs_mark_block_bitmap_range2(bm, blk, (unsigned)n);
}

int e2_metadata_map(ext2_filsys fs, ext2fs_block_bitmap *bm)
{
    /* Per block even with bigalloc, where a block bitmap marks clusters
     * and the journal shares its clusters with metadata. */
    errcode_t err = ext2fs_allocate_subcluster_bitmap(fs, "metadata blocks", bm);

    if (err)
        return e2_errno(err);
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        ext2fs_reserve_super_and_bgd(fs, g, *bm);
        reserve_range(*bm, fs, ext2fs_block_bitmap_loc(fs, g), 1);
        reserve_range(*bm, fs, ext2fs_inode_bitmap_loc(fs, g), 1);
        reserve_range(*bm, fs, ext2fs_inode_table_loc(fs, g), fs->inode_blocks_per_group);
    }
    return 0;
}

/* The journal's blocks must be its own: not the superblocks, group
 * descriptors, bitmaps or inode tables, and no block twice. A damaged
 * block map would otherwise have the log written over metadata. */
static int check_overlaps(ext2_filsys fs, const uint64_t *map, uint32_t len, char *why,
                          size_t why_len)
{
    ext2fs_block_bitmap bm;
    int ret = e2_metadata_map(fs, &bm);

    if (ret)
        return ret;
    for (uint32_t i = 0; i < len && !ret; i++) {
        if (ext2fs_test_block_bitmap2(bm, map[i])) {
            e2_say(why, why_len,
                   "journal block %u maps to block %llu, which is file system metadata or "
                   "another journal block",
                   i, (unsigned long long)map[i]);
            ret = -EUCLEAN;
        }
        ext2fs_mark_block_bitmap2(bm, map[i]);
    }
    ext2fs_free_block_bitmap(bm);
    return ret;
}

int e2_journal_map_load(struct struct_ext2_filsys *fs, uint64_t **map, uint32_t *len, char *why,
                        size_t why_len)
{
    struct ext2_inode in;
    struct map_walk w = {0};
    ext2_ino_t ino = 0;
    errcode_t err;
    int ret;

    ret = journal_inode_number(fs, &ino, why, why_len);
    if (ret)
        return ret;
    err = ext2fs_read_inode(fs, ino, &in);
    if (err) {
        ret = e2_errno(err);
        e2_say(why, why_len, "cannot read journal inode %u: %s", ino, error_message(err));
        return ret;
    }
    ret = check_inode(fs, ino, &in, &w.len, why, why_len);
    if (ret)
        return ret;
    w.map = calloc(w.len, sizeof(*w.map));
    if (!w.map)
        return -ENOMEM;
    w.first_data = fs->super->s_first_data_block;
    w.nblocks = ext2fs_blocks_count(fs->super);
    err = ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, NULL,
                                map_block, &w);
    if (err) {
        ret = e2_errno(err);
        e2_say(why, why_len, "cannot map journal inode %u: %s", ino, error_message(err));
        goto out_free;
    }
    if (w.outside) {
        e2_say(why, why_len, "journal block %lld maps to block %llu, outside the file system",
               (long long)w.bad_lblk, (unsigned long long)w.bad_blk);
        ret = -EUCLEAN;
        goto out_free;
    }
    /* Block 0 is never a journal block (boot block or superblock), so a
     * zero entry is a block the iteration did not map. */
    for (uint32_t i = 0; i < w.len; i++) {
        if (!w.map[i]) {
            e2_say(why, why_len, "journal inode %u has a hole at block %u", ino, i);
            ret = -EUCLEAN;
            goto out_free;
        }
    }
    ret = check_overlaps(fs, w.map, w.len, why, why_len);
    if (ret)
        goto out_free;
    *map = w.map;
    *len = w.len;
    return 0;

out_free:
    free(w.map);
    return ret;
}
