/* FITRIM for an image file: free blocks become holes in the file.
 *
 * A discard on a block device tells the device the blocks hold nothing;
 * for an image file the equivalent is a hole (fallocate PUNCH_HOLE), so a
 * sparse image shrinks on the host after files are deleted. Only blocks
 * free in the in-memory bitmap are punched: blocks freed in the running
 * transaction are still marked there (journal.c) because the committed
 * file system may refer to them, and metadata blocks are always marked. */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

static int punch_run(struct e2_image *img, uint64_t blk, uint64_t n)
{
    ext2_filsys fs = img->fs;
    int fd = e2_iom_fd(fs->io);

    /* A free block has no dirty copy (a block freed in the running
     * transaction is dropped from it and stays marked); a clean copy
     * would no longer match the file. */
    if (e2_iom_any_dirty(fs->io, blk, n))
        return 0;
    e2_iom_forget(fs->io, blk, n);
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(blk * fs->blocksize),
                  (off_t)(n * fs->blocksize)) < 0)
        return -errno;
    return 0;
}

/* The free runs of group @g within blocks [@lo, @hi] (inclusive, inside
 * the group), each of at least @minblks: a run that starts inside the
 * range is taken whole, up to the end of the group, as ext4 does since
 * Linux 6.8 (so that trimming a range in parts trims what the whole would).
 * Adds the blocks of the runs to *@n. */
static int trim_group(struct e2_image *img, dgrp_t g, blk64_t lo, blk64_t hi, blk64_t minblks,
                      uint64_t *n)
{
    ext2_filsys fs = img->fs;
    blk64_t glast = ext2fs_group_last_block2(fs, g), blk = lo, free_start, used;
    errcode_t err;
    int ret;

    while (blk <= hi) {
        err = ext2fs_find_first_zero_block_bitmap2(fs->block_map, blk, hi, &free_start);
        if (err == ENOENT)
            return 0;
        if (err)
            return e2_errno(err);
        err = ext2fs_find_first_set_block_bitmap2(fs->block_map, free_start, glast, &used);
        if (err == ENOENT)
            used = glast + 1;
        else if (err)
            return e2_errno(err);
        if (used - free_start >= minblks) {
            ret = punch_run(img, free_start, used - free_start);
            if (ret)
                return ret;
            *n += used - free_start;
        }
        blk = used;
    }
    return 0;
}

/* ext4_trim_fs()'s arithmetic: the minimum run in blocks (whole clusters),
 * raised to the discard granularity, which for an image file is the block
 * size of the file system holding it (as a loop device has it); 0 when
 * nothing can be trimmed at all. */
static blk64_t trim_minblks(ext2_filsys fs, int fd, uint64_t minlen)
{
    uint64_t ratio = EXT2FS_CLUSTER_RATIO(fs), gran = 0, blks = minlen / fs->blocksize;
    struct stat st;

    if (fstat(fd, &st) == 0 && st.st_blksize > 0)
        gran = (uint64_t)st.st_blksize;
    if (minlen < gran)
        blks = gran / fs->blocksize;
    blks = (blks + ratio - 1) / ratio; /* clusters */
    if (blks > fs->super->s_clusters_per_group)
        return 0;
    return (blks ? blks : 1) * ratio;
}

int e2_trim(struct e2_image *img, uint64_t start, uint64_t len, uint64_t minlen, uint64_t *trimmed)
{
    ext2_filsys fs;
    uint64_t nblocks, first, last, n = 0, bs;
    blk64_t minblks;
    dgrp_t g, g_last;
    int ret = 0;

    *trimmed = 0;
    e2_lock(img);
    fs = img->fs;
    bs = fs->blocksize;
    nblocks = ext2fs_blocks_count(fs->super);
    first = start / bs;
    /* ext4's argument checks, in its order. */
    if ((minlen / bs + EXT2FS_CLUSTER_RATIO(fs) - 1) / EXT2FS_CLUSTER_RATIO(fs) >
            fs->super->s_clusters_per_group ||
        first >= nblocks || len < bs) {
        ret = -EINVAL;
        goto out_unlock;
    }
    if (img->read_only) {
        ret = -EROFS;
        goto out_unlock;
    }
    minblks = trim_minblks(fs, e2_iom_fd(fs->io), minlen);
    /* The last block of the range; @len / bs >= 1, so no underflow. */
    last = len / bs - 1 > nblocks - 1 - first ? nblocks - 1 : first + len / bs - 1;
    if (!minblks || last <= fs->super->s_first_data_block)
        goto out_unlock;
    if (first < fs->super->s_first_data_block)
        first = fs->super->s_first_data_block;
    g_last = ext2fs_group_of_blk2(fs, last);
    for (g = ext2fs_group_of_blk2(fs, first); g <= g_last && !ret; g++) {
        blk64_t lo = ext2fs_group_first_block2(fs, g), hi = ext2fs_group_last_block2(fs, g);

        /* A group with fewer free clusters than the minimum has no run. */
        if (ext2fs_bg_free_blocks_count(fs, g) < minblks / EXT2FS_CLUSTER_RATIO(fs))
            continue;
        ret = trim_group(img, g, lo > first ? lo : first, hi < last ? hi : last, minblks, &n);
    }
    if (!ret)
        *trimmed = n * bs;
out_unlock:
    e2_unlock(img);
    return ret;
}
