/* Freeing blocks of a file, around two libext2fs 1.47.0 bugs:
 *
 *  - ext2fs_punch refuses (EXT2_ET_BAD_BLOCK_NUM) to free an extent that
 *    ends on the last block of the file system (an off-by-one in
 *    punch_extent_blocks, fixed in e2fsprogs 1.47.4). A file that filled
 *    the image ends exactly there, so deleting or truncating it would fail
 *    (and leak the blocks: the extent is unmapped before the check). We
 *    punch everything else with ext2fs_punch and remove that one block's
 *    mapping ourselves.
 *  - for a block-mapped file, a range that starts among the direct blocks
 *    and ends in the indirect tree, no longer than the direct blocks, is
 *    only freed up to the last direct block (ext2fs_punch_ind compares the
 *    count left with the size of the level instead of what remains of it):
 *    the rest keeps its old data. We punch one level of the tree at a
 *    time. */
#include "e2/e2_internal.h"

#include <errno.h>

/* The logical block mapped to the file system's last block, if any. */
static int find_last_block_lblk(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                blk64_t *lblk)
{
    blk64_t last = ext2fs_blocks_count(img->fs->super) - 1;
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err;
    int found = 0;

    err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    if (err)
        return e2_errno(err);
    err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
    while (!err && !found) {
        if ((e.e_flags & EXT2_EXTENT_FLAGS_LEAF) && e.e_len && e.e_pblk <= last &&
            last < e.e_pblk + e.e_len) {
            *lblk = e.e_lblk + (last - e.e_pblk);
            found = 1;
        }
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
    }
    ext2fs_extent_free(h);
    return found;
}

/* Unmap logical block @lblk (mapped to the last block) and free it. */
static int drop_last_block(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                           blk64_t lblk)
{
    blk64_t last = ext2fs_blocks_count(img->fs->super) - 1;
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err;

    err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    if (err)
        return e2_errno(err);
    err = ext2fs_extent_goto(h, lblk);
    if (!err)
        err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
    /* The other punches leave the extent ending at it; a range of that
     * block alone leaves the blocks before it in the extent too. */
    if (!err && (e.e_lblk + e.e_len - 1 != lblk || e.e_pblk + e.e_len - 1 != last))
        err = EXT2_ET_EXTENT_NOT_FOUND;
    if (!err && e.e_len > 1) {
        e.e_len--;
        err = ext2fs_extent_replace(h, 0, &e);
    } else if (!err) {
        err = ext2fs_extent_delete(h, 0);
    }
    /* With the tree now empty there is no current node to fix up. */
    if (!err) {
        err = ext2fs_extent_fix_parents(h);
        if (err == EXT2_ET_NO_CURRENT_NODE)
            err = 0;
    }
    ext2fs_extent_free(h);
    if (err)
        return e2_errno(err);
    /* On bigalloc the block's cluster goes (and is uncharged) only with
     * its last mapped block: other blocks of its logical cluster may still
     * map into it, and freeing it would hand them to the next allocation. */
    if (EXT2FS_CLUSTER_RATIO(img->fs) > 1) {
        blk64_t other = 0;
        err = ext2fs_map_cluster_block(img->fs, ino, (struct ext2_inode *)in, lblk, &other);
        if (err || other)
            return err ? e2_errno(err) : e2_write_inode_locked(img, ino, in);
    }
    ext2fs_block_alloc_stats2(img->fs, last, -1);
    err = ext2fs_iblk_sub_blocks(img->fs, (struct ext2_inode *)in, 1);
    if (!err)
        err = ext2fs_write_inode_full(img->fs, ino, (struct ext2_inode *)in, sizeof(*in));
    return e2_errno(err);
}

/* ext2fs_punch, keeping our copy of the inode and the disk in step: a
 * punch that fails part way has changed the tree already (the root, in
 * @in, and freed tree blocks, counted off i_blocks in @in), but writes the
 * inode only on success; so write it either way. EOVERFLOW means i_blocks
 * counted fewer blocks than the range mapped: a corrupt inode. */
static int punch_range(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                       blk64_t start, blk64_t end)
{
    errcode_t err = ext2fs_punch(img->fs, ino, (struct ext2_inode *)in, NULL, start, end);

    if (!err)
        return 0;
    e2_write_inode_locked(img, ino, in); /* the punch's error is the one to report */
    return err == EOVERFLOW ? -EUCLEAN : e2_errno(err);
}

/* Block-mapped: one call per level of the tree the range touches. */
static int punch_ind(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, blk64_t start,
                     blk64_t end)
{
    blk64_t k = img->fs->blocksize / 4, level_end = EXT2_NDIR_BLOCKS, size = k;

    for (int level = 0; level < 4 && start <= end; level++) {
        blk64_t stop = end < level_end - 1 ? end : level_end - 1;
        if (start <= stop) {
            int ret = punch_range(img, ino, in, start, stop);
            if (ret)
                return ret;
            start = stop + 1;
        }
        level_end += size;
        size *= k;
    }
    if (start <= end)
        return punch_range(img, ino, in, start, end);
    return 0;
}

/* Note logical cluster @cluster of @ino as partly freed (see
 * e2_internal.h). Out of memory, the caller is told: the punch must not go
 * ahead unprotected. */
static int note_partial_locked(struct e2_image *img, uint32_t ino, uint64_t cluster)
{
    if (e2_partial_hit_locked(img, ino, cluster, cluster))
        return 0;
    if (img->npartial == img->cappartial) {
        size_t cap = img->cappartial ? 2 * img->cappartial : 16;
        struct e2_partial *p = realloc(img->partial, cap * sizeof(*p));

        if (!p)
            return -ENOMEM;
        img->partial = p;
        img->cappartial = cap;
    }
    img->partial[img->npartial].ino = ino;
    img->partial[img->npartial].cluster = cluster;
    img->npartial++;
    return 0;
}

bool e2_partial_hit_locked(struct e2_image *img, uint32_t ino, uint64_t first, uint64_t last)
{
    for (size_t i = 0; i < img->npartial; i++) {
        if (img->partial[i].ino == ino && img->partial[i].cluster >= first &&
            img->partial[i].cluster <= last)
            return true;
    }
    return false;
}

/* The clusters at the ends of [start, end] that keep some of their blocks. */
static int note_partial_ends_locked(struct e2_image *img, uint32_t ino, blk64_t start, blk64_t end)
{
    unsigned ratio = EXT2FS_CLUSTER_RATIO(img->fs);
    int ret = 0;

    if (ratio == 1 || !img->journal)
        return 0;
    if (start % ratio)
        ret = note_partial_locked(img, ino, start / ratio);
    if (!ret && end != ~0ULL && (end + 1) % ratio)
        ret = note_partial_locked(img, ino, end / ratio);
    return ret;
}

int e2_punch_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, blk64_t start,
                    blk64_t end)
{
    blk64_t lblk = 0;
    int ret;

    /* Freeing a block of the system zone would hand it to the next
     * allocation: nothing is freed from such a file. */
    ret = e2_sysz_check_free_locked(img, ino, in, start, end);
    if (!ret)
        ret = note_partial_ends_locked(img, ino, start, end);
    if (ret)
        return ret;

    if (!(in->i_flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL)))
        return punch_ind(img, ino, in, start, end);

    /* Look first: a failed ext2fs_punch has already unmapped the extent
     * when it refuses to free its blocks, leaking them. */
    if (in->i_flags & EXT4_EXTENTS_FL)
        ret = find_last_block_lblk(img, ino, in, &lblk);
    if (ret < 0)
        return ret;
    if (ret == 0 || lblk < start || lblk > end)
        return punch_range(img, ino, in, start, end);
    if (lblk < end) {
        ret = punch_range(img, ino, in, lblk + 1, end);
        if (ret)
            return ret;
    }
    if (lblk > start) {
        ret = punch_range(img, ino, in, start, lblk - 1);
        if (ret)
            return ret;
    }
    ret = e2_read_inode_locked(img, ino, in);
    if (!ret)
        ret = drop_last_block(img, ino, in, lblk);
    return ret;
}
