/* Mapping a block on bigalloc without losing the cluster it lands in.
 *
 * libext2fs (1.47.0 to 1.47.4) allocates a hole with
 * ext2fs_bmap2(BMAP_ALLOC): extent_bmap() in bmap.c takes the block from
 * the physical cluster its logical cluster already has, if any
 * ("implied cluster allocation": nothing is allocated), then maps it with
 * ext2fs_extent_set_bmap(). When that fails, it frees the block it meant
 * to map, whether it allocated it or not. For an implied block this frees
 * a cluster the file still maps: the next allocation hands it out again
 * (blocks claimed twice, a new tree node on top of the file's data), and
 * with a journal it is freed for good at the next commit. set_bmap fails
 * for want of space: a new extent in a full node needs a new tree block,
 * a whole cluster, which a full file system does not have (fsstress -w at
 * ENOSPC, generic/083's workload, damaged half the bigalloc images).
 *
 * So an allocating map on bigalloc goes ahead only while the clusters the
 * tree may need are free: then set_bmap cannot run out, and only other
 * errors (I/O, corruption) can still reach that free. The file API
 * (ext2fs_file_write) allocates the same way and is guarded by the same
 * check (data.c). */
#include "e2/e2_internal.h"

#include <errno.h>

/* The most clusters one allocating map may take: the data block's, and
 * for each of at most two extents inserted (set_bmap splits an unwritten
 * extent in three) one new node per level plus a new root level. */
static blk64_t clusters_wanted(const struct ext2_inode_large *in)
{
    const struct ext3_extent_header *eh = (const struct ext3_extent_header *)in->i_block;
    blk64_t depth = ext2fs_le16_to_cpu(eh->eh_depth);

    if (depth > 5)
        depth = 5; /* a corrupt depth is refused by the tree code itself */
    return 1 + 2 * (depth + 1);
}

/* Whether @want clusters are free in the bitmap. The free count cannot
 * say: with a journal, clusters freed since the last commit count as free
 * but stay marked until it is durable (journal.c). Few steps: it stops at
 * @want, and only a nearly full bitmap is searched far. */
static bool has_free_clusters(ext2_filsys fs, blk64_t want)
{
    blk64_t b = fs->super->s_first_data_block, end = ext2fs_blocks_count(fs->super) - 1, next;
    blk64_t mask = EXT2FS_CLUSTER_MASK(fs);

    while (want && b <= end &&
           !ext2fs_find_first_zero_block_bitmap2(fs->block_map, b, end, &next)) {
        want--;
        b = (next | mask) + 1;
    }
    return want == 0;
}

int e2_cluster_room_locked(struct e2_image *img, const struct ext2_inode_large *in)
{
    ext2_filsys fs = img->fs;

    if (EXT2FS_CLUSTER_RATIO(fs) == 1 || !(in->i_flags & EXT4_EXTENTS_FL))
        return 0;
    return has_free_clusters(fs, clusters_wanted(in)) ? 0 : -ENOSPC;
}

int e2_bmap_alloc_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, int flags,
                         blk64_t lblk, int *ret_flags, blk64_t *pblk)
{
    int ret = e2_cluster_room_locked(img, in);

    if (ret)
        return ret;
    return e2_errno(ext2fs_bmap2(img->fs, ino, (struct ext2_inode *)in, NULL, BMAP_ALLOC | flags,
                                 lblk, ret_flags, pblk));
}
