/* ext2fs_fallocate() without the blocks it loses when it fails.
 *
 * libext2fs (1.47) can return an error with blocks it took for the call
 * still marked in use and counted in the caller's i_blocks, but reached
 * from nothing: a run claimed before its extent is placed, or a new tree
 * node, when the step after fails. The cause is ENOSPC: the run took the
 * last free blocks and the full leaf (or root) it goes into needs one more
 * to split. e2fsck then finds blocks in use that no inode owns and an
 * i_blocks larger than the tree (fsstress on a full file system,
 * generic/083's workload). The kernel reserves a tree's blocks before it
 * allocates data. Here, when the call might run out of space, the block
 * bitmap is copied first; on failure, the blocks in use now and not then
 * that the inode's tree does not reach are given back. "Might run out" is
 * judged by what the bitmap has free, not by the free count: with a
 * journal, blocks freed since the last commit are counted free but stay
 * marked (journal.c), and a call that ran out with the count still high
 * used to keep what it took (fsstress at ENOSPC on bigalloc: 5 clusters
 * that no file owned). (libext2fs's range statistics callback cannot say
 * which runs it took: 1.47.0 calls it with the end of the run and a count
 * of 0.) */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>

/* Whether a call for @len blocks may run out: the data, and a new tree
 * node for every block of it in the worst case, with a margin; counted in
 * clusters (a tree node takes a whole one on bigalloc). The bitmap has at
 * most the free count less the journal's held blocks free: O(1), where a
 * search of the bitmap would cost the common case. */
static bool may_run_out(struct e2_image *img, blk64_t len)
{
    ext2_filsys fs = img->fs;
    blk64_t ratio = EXT2FS_CLUSTER_RATIO(fs);
    blk64_t count = ext2fs_free_blocks_count(fs->super), held = e2_journal_held_locked(img);
    blk64_t avail = count > held ? count - held : 0;

    return avail < (2 * ((len + ratio - 1) / ratio) + 64) * ratio;
}

/* Mark in @reach every block the extent tree of @ino (@in) uses: the
 * leaves' data and the tree nodes. */
static int mark_reachable(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                          ext2fs_block_bitmap reach)
{
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);

    if (err)
        return e2_errno(err);
    err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
    while (!err) {
        if (e.e_flags & EXT2_EXTENT_FLAGS_LEAF)
            ext2fs_mark_block_bitmap_range2(reach, e.e_pblk, e.e_len);
        else
            ext2fs_mark_block_bitmap2(reach, e.e_pblk);
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
    }
    ext2fs_extent_free(h);
    if (err != EXT2_ET_EXTENT_NO_NEXT && err != EXT2_ET_EXTENT_NO_DOWN)
        return e2_errno(err);
    return 0;
}

/* Give back the blocks in use now, free in @before and not reached by the
 * tree: bitmap and counts (one cluster at a time, so the statistics
 * callbacks see each), and @in's i_blocks. Only the blocks free in
 * @before are visited: few, since the call may run out only then. */
static int release_lost(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                        ext2fs_block_bitmap before)
{
    ext2_filsys fs = img->fs;
    blk64_t b = fs->super->s_first_data_block, end = ext2fs_blocks_count(fs->super) - 1;
    blk64_t next, lost = 0;
    ext2fs_block_bitmap reach;
    int ret = e2_errno(ext2fs_allocate_block_bitmap(fs, "reach", &reach));

    if (ret)
        return ret;
    ret = mark_reachable(img, ino, in, reach);
    while (!ret && b <= end && !ext2fs_find_first_zero_block_bitmap2(before, b, end, &next)) {
        /* A block the call took and freed again is held by the journal:
         * already given back once. */
        if (ext2fs_test_block_bitmap2(fs->block_map, next) &&
            !ext2fs_test_block_bitmap2(reach, next) && !e2_journal_holds_locked(img, next)) {
            ext2fs_block_alloc_stats2(fs, next, -1);
            lost++;
        }
        /* Once per cluster: on bigalloc every block of a cluster tests as
         * its cluster, and with a journal a freed cluster stays marked
         * until the commit, so a second visit would free it again. */
        b = (next | EXT2FS_CLUSTER_MASK(fs)) + 1;
    }
    ext2fs_free_block_bitmap(reach);
    if (!ret && lost)
        ret = e2_errno(ext2fs_iblk_sub_blocks(fs, (struct ext2_inode *)in, lost));
    return ret;
}

int e2_fallocate_locked(struct e2_image *img, int flags, uint32_t ino, struct ext2_inode_large *in,
                        blk64_t start, blk64_t len)
{
    ext2_filsys fs = img->fs;
    ext2fs_block_bitmap before = NULL;
    int ret, rret;

    if (may_run_out(img, len)) {
        ret = e2_errno(ext2fs_copy_bitmap(fs->block_map, &before));
        if (ret)
            return ret;
    }
    ret = e2_errno(ext2fs_fallocate(fs, flags, ino, (struct ext2_inode *)in, ~0ULL, start, len));
    if (ret && before) {
        rret = release_lost(img, ino, in, before);
        if (rret)
            ret = rret;
    }
    if (before)
        ext2fs_free_block_bitmap(before);
    return ret;
}
