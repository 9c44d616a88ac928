/* FITRIM for an image file: free blocks become holes in the file.
 *
 * A discard on a block device tells the device the blocks hold nothing;
 * for an image file the equivalent is a hole (fallocate PUNCH_HOLE), so a
 * sparse image shrinks on the host after files are deleted. Only blocks
 * free in the in-memory bitmap are punched: blocks freed in the running
 * transaction are still marked there (journal.c) because the committed
 * file system may refer to them, and metadata blocks are always marked.
 *
 * As ext4, a trim remembers the block groups it went through whole (ext4's
 * EXT4_GROUP_INFO_WAS_TRIMMED) and the minimum run it used (ext4's
 * s_last_trim_minblks): later trims skip those groups, reporting nothing
 * for them, unless blocks were freed in them since or the new minimum is
 * smaller. The memory lasts as long as the image is open, as ext4's lasts
 * a mount. Frees are seen through libext2fs's block statistics callbacks,
 * installed at open before the journal's (which chain to them); a block
 * freed in the running transaction becomes free in the bitmap only at the
 * commit, but FITRIM commits first when there are such blocks
 * (uext4_trim), so forgetting the group at the free is the same as ext4
 * forgetting it when the freed blocks reach its buddy bitmap after the
 * commit. */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct e2_trim_memo {
    void (*old_stats)(ext2_filsys, blk64_t, int);
    void (*old_range)(ext2_filsys, blk64_t, blk_t, int);
    /* protected by disk_lock: */
    uint32_t last_minclus; /* the minimum run of the last trim, clusters */
    uint8_t trimmed[];     /* a bit per group: trimmed, nothing freed since */
};

static bool was_trimmed(const struct e2_trim_memo *tm, dgrp_t g)
{
    return tm->trimmed[g / 8] & (1u << (g % 8));
}

static void set_trimmed(struct e2_trim_memo *tm, dgrp_t g)
{
    tm->trimmed[g / 8] |= (uint8_t)(1u << (g % 8));
}

/* Blocks [@blk, @blk + @num) were freed: their groups have free space no
 * trim has seen. */
static void forget_trimmed(ext2_filsys fs, blk64_t blk, blk64_t num)
{
    struct e2_image *img = fs->priv_data;
    struct e2_trim_memo *tm = img->trim;
    dgrp_t g, last;

    assert(mutex_is_held(&img->disk_lock));
    if (!num || blk < fs->super->s_first_data_block)
        return;
    last = ext2fs_group_of_blk2(fs, blk + num - 1);
    for (g = ext2fs_group_of_blk2(fs, blk); g <= last && g < fs->group_desc_count; g++)
        tm->trimmed[g / 8] &= (uint8_t) ~(1u << (g % 8));
}

static void stats_cb(ext2_filsys fs, blk64_t blk, int inuse)
{
    struct e2_image *img = fs->priv_data;

    if (inuse < 0)
        forget_trimmed(fs, blk, 1);
    if (img->trim->old_stats)
        img->trim->old_stats(fs, blk, inuse);
}

static void range_cb(ext2_filsys fs, blk64_t blk, blk_t num, int inuse)
{
    struct e2_image *img = fs->priv_data;

    if (inuse < 0)
        forget_trimmed(fs, blk, num);
    if (img->trim->old_range)
        img->trim->old_range(fs, blk, num, inuse);
}

int e2_trim_start(struct e2_image *img)
{
    ext2_filsys fs = img->fs;
    struct e2_trim_memo *tm;

    tm = calloc(1, sizeof(*tm) + (fs->group_desc_count + 7) / 8);
    if (!tm)
        return -ENOMEM;
    img->trim = tm;
    fs->priv_data = img;
    ext2fs_set_block_alloc_stats_callback(fs, stats_cb, &tm->old_stats);
    ext2fs_set_block_alloc_stats_range_callback(fs, range_cb, &tm->old_range);
    return 0;
}

int e2_trim_grow(struct e2_image *img, dgrp_t groups)
{
    size_t old = (img->fs->group_desc_count + 7) / 8, new = (groups + 7) / 8;
    struct e2_trim_memo *tm;

    if (!img->trim || new <= old)
        return 0;
    tm = realloc(img->trim, sizeof(*tm) + new);
    if (!tm)
        return -ENOMEM;
    memset(tm->trimmed + old, 0, new - old);
    img->trim = tm;
    return 0;
}

void e2_trim_stop(struct e2_image *img)
{
    struct e2_trim_memo *tm = img->trim;

    if (!tm)
        return;
    if (img->fs) {
        ext2fs_set_block_alloc_stats_callback(img->fs, tm->old_stats, NULL);
        ext2fs_set_block_alloc_stats_range_callback(img->fs, tm->old_range, NULL);
    }
    img->trim = NULL;
    free(tm);
}

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
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(e2_iom_base(fs->io) + blk * fs->blocksize),
                  (off_t)(n * fs->blocksize)) < 0)
        return -errno;
    return 0;
}

/* The number of whole clusters of group @g. */
static uint32_t group_clusters(ext2_filsys fs, dgrp_t g)
{
    blk64_t first = ext2fs_group_first_block2(fs, g);

    return (uint32_t)((ext2fs_group_last_block2(fs, g) + 1 - first) / EXT2FS_CLUSTER_RATIO(fs));
}

/* ext4_try_to_trim_range(), in clusters of group @g: the free runs that
 * start in clusters [@start, @max], each taken whole up to the end of the
 * group (as ext4 since Linux 6.8, so that trimming a range in parts trims
 * what the whole would), punched if at least @minclus long and added to
 * *@n. The group counts as trimmed, as in ext4, when the range starts at
 * its first cluster and either covers it to the end or meets a free run
 * that reaches (or stops just short of) its last cluster. The walk stops
 * once the free clusters not yet seen cannot make a run of @minclus. */
static int trim_group(struct e2_image *img, dgrp_t g, uint32_t start, uint32_t max,
                      uint32_t minclus, uint64_t *n)
{
    ext2_filsys fs = img->fs;
    blk64_t gfirst = ext2fs_group_first_block2(fs, g), ratio = EXT2FS_CLUSTER_RATIO(fs), b;
    uint32_t last = group_clusters(fs, g) - 1, next, seen = 0;
    uint32_t nfree = ext2fs_bg_free_blocks_count(fs, g);
    bool whole = start == 0 && max >= last, from_first = start == 0;
    errcode_t err;
    int ret;

    while (start <= max) {
        err = ext2fs_find_first_zero_block_bitmap2(fs->block_map, gfirst + start * ratio,
                                                   gfirst + max * ratio, &b);
        if (err == ENOENT)
            break;
        if (err)
            return e2_errno(err);
        start = (uint32_t)((b - gfirst) / ratio);
        err = ext2fs_find_first_set_block_bitmap2(fs->block_map, b, gfirst + last * ratio, &b);
        if (err == ENOENT)
            next = last + 1;
        else if (err)
            return e2_errno(err);
        else
            next = (uint32_t)((b - gfirst) / ratio);
        if (from_first && next >= last)
            whole = true;
        if (next - start >= minclus) {
            ret = punch_run(img, gfirst + start * ratio, (next - start) * ratio);
            if (ret)
                return ret;
            *n += next - start;
        }
        seen += next - start;
        start = next + 1;
        if (nfree < seen || nfree - seen < minclus)
            break;
    }
    if (whole)
        set_trimmed(img->trim, g);
    return 0;
}

/* The discard granularity of an image file: the block size of the file
 * system holding it, as a loop device has it (0 if unknown). */
static uint64_t discard_granularity(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && st.st_blksize > 0)
        return (uint64_t)st.st_blksize;
    return 0;
}

/* ext4_trim_fs()'s argument checks and clamps, in its order: the blocks
 * [*@first, *@last] to go through and the minimum run in clusters. 0 to
 * trim, 1 when there is nothing to trim (and nothing to remember), or
 * -EINVAL / -EROFS. */
static int trim_bounds(struct e2_image *img, uint64_t start, uint64_t len, uint64_t minlen,
                       uint64_t *first, uint64_t *last, uint64_t *minclus)
{
    ext2_filsys fs = img->fs;
    uint64_t bs = fs->blocksize, ratio = EXT2FS_CLUSTER_RATIO(fs), gran;
    uint64_t nblocks = ext2fs_blocks_count(fs->super);
    uint32_t cpg = fs->super->s_clusters_per_group;

    *first = start / bs;
    *minclus = (minlen / bs + ratio - 1) / ratio;
    if (*minclus > cpg || *first >= nblocks || len < bs)
        return -EINVAL;
    if (img->read_only)
        return -EROFS;
    /* No shorter than the discard granularity; nothing at all (and
     * nothing remembered) when that exceeds a group. */
    gran = discard_granularity(e2_iom_fd(fs->io));
    if (minlen < gran) {
        *minclus = (gran / bs + ratio - 1) / ratio;
        if (*minclus > cpg)
            return 1;
    }
    /* The last block of the range; @len / bs >= 1, so no underflow. */
    *last = len / bs - 1 > nblocks - 1 - *first ? nblocks - 1 : *first + len / bs - 1;
    if (*last <= fs->super->s_first_data_block)
        return 1;
    if (*first < fs->super->s_first_data_block)
        *first = fs->super->s_first_data_block;
    return 0;
}

int e2_trim(struct e2_image *img, uint64_t start, uint64_t len, uint64_t minlen, uint64_t *trimmed)
{
    ext2_filsys fs;
    uint64_t first, last, n = 0, ratio, minclus;
    dgrp_t g, g_first, g_last;
    int ret;

    *trimmed = 0;
    e2_lock(img);
    fs = img->fs;
    ratio = EXT2FS_CLUSTER_RATIO(fs);
    ret = trim_bounds(img, start, len, minlen, &first, &last, &minclus);
    if (ret) {
        ret = ret > 0 ? 0 : ret;
        goto out_unlock;
    }
    g_first = ext2fs_group_of_blk2(fs, first);
    g_last = ext2fs_group_of_blk2(fs, last);
    for (g = g_first; g <= g_last && !ret; g++) {
        blk64_t gfirst = ext2fs_group_first_block2(fs, g);
        uint32_t lo = g == g_first ? (uint32_t)((first - gfirst) / ratio) : 0;
        uint32_t hi =
            g == g_last ? (uint32_t)((last - gfirst) / ratio) : fs->super->s_clusters_per_group - 1;

        /* A group with fewer free clusters than the minimum has no run;
         * one trimmed whole since its last free has nothing new, unless
         * the minimum is now smaller. */
        if (ext2fs_bg_free_blocks_count(fs, g) < minclus)
            continue;
        if (was_trimmed(img->trim, g) && minclus >= img->trim->last_minclus)
            continue;
        ret = trim_group(img, g, lo, hi, (uint32_t)minclus, &n);
    }
    if (!ret) {
        img->trim->last_minclus = (uint32_t)minclus;
        *trimmed = n * ratio * fs->blocksize;
    }
out_unlock:
    e2_unlock(img);
    return ret;
}
