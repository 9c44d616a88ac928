/* fallocate's COLLAPSE_RANGE and INSERT_RANGE: moving the mapping of every
 * block from some point on, left over a removed range or right to open a
 * hole, without copying data.
 *
 * Both work on the extent tree only (block-mapped files are refused with
 * -EOPNOTSUPP, as ext4 does) and on whole blocks. The tree stays ordered at
 * every step, so that ext2fs_extent_goto() keeps finding extents: a left
 * shift walks the leaves first to last, into the room the punched range
 * left; a right shift walks them last to first, into room past the end.
 * Each leaf entry is rewritten in place and its parents' keys follow
 * (ext2fs_extent_fix_parents). Adjacent extents are not merged afterwards:
 * the mapping is the same either way, and e2fsck accepts both.
 *
 * The writes are metadata (tree blocks, the inode), journaled like any
 * other through iomgr.c. A failure part-way (an I/O error, or -ENOSPC
 * splitting a full leaf for INSERT) leaves a consistent tree with some
 * extents moved: the caller reports it and the errors= policy applies. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>

enum shift_dir { SHIFT_LEFT, SHIFT_RIGHT };

/* The starts of the leaf extents at or after @from, in order, from one
 * plain walk of the tree. (A walk that also moves with
 * ext2fs_extent_goto() is not possible: goto leaves the upper levels
 * marked unvisited, and the next step down re-enters the same leaf.) */
static int list_extents_from(ext2_extent_handle_t h, blk64_t from, blk64_t **out, size_t *count)
{
    struct ext2fs_extent e;
    blk64_t *list = NULL;
    size_t n = 0, cap = 0;
    errcode_t err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);

    while (!err) {
        if ((e.e_flags & EXT2_EXTENT_FLAGS_LEAF) && e.e_len && e.e_lblk >= from) {
            if (n == cap) {
                blk64_t *grown;
                cap = cap ? cap * 2 : 64;
                grown = realloc(list, cap * sizeof(*list));
                if (!grown) {
                    free(list);
                    return -ENOMEM;
                }
                list = grown;
            }
            list[n++] = e.e_lblk;
        }
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
    }
    /* The end of the walk, or an empty tree. */
    if (err != EXT2_ET_EXTENT_NO_NEXT && err != EXT2_ET_NO_CURRENT_NODE) {
        free(list);
        return e2_errno(err);
    }
    *out = list;
    *count = n;
    return 0;
}

/* Move every leaf extent that starts at or after @from by @n blocks, one
 * at a time in the order that keeps the tree sorted: found again by its
 * start, rewritten, its parents' keys fixed. */
static int shift_extents(ext2_extent_handle_t h, blk64_t from, blk64_t n, enum shift_dir dir)
{
    struct ext2fs_extent e;
    blk64_t *list = NULL;
    size_t count = 0;
    errcode_t err = 0;
    int ret = list_extents_from(h, from, &list, &count);

    if (ret)
        return ret;
    for (size_t i = 0; i < count && !err; i++) {
        blk64_t lblk = list[dir == SHIFT_LEFT ? i : count - 1 - i];

        err = ext2fs_extent_goto(h, lblk);
        if (!err)
            err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
        if (!err && e.e_lblk != lblk)
            err = EXT2_ET_EXTENT_NOT_FOUND;
        if (err)
            break;
        e.e_lblk = dir == SHIFT_LEFT ? lblk - n : lblk + n;
        err = ext2fs_extent_replace(h, 0, &e);
        if (!err)
            err = ext2fs_extent_fix_parents(h);
    }
    free(list);
    return e2_errno(err);
}

/* Cut the extent that maps @at and blocks before it in two, so that @at
 * starts an extent of its own. */
static int split_at(ext2_extent_handle_t h, blk64_t at)
{
    struct ext2fs_extent e, tail;
    errcode_t err = ext2fs_extent_goto(h, at);

    if (err == EXT2_ET_EXTENT_NOT_FOUND || err == EXT2_ET_NO_CURRENT_NODE ||
        err == EXT2_ET_EXTENT_NO_NEXT)
        return 0; /* a hole, or no extents: nothing spans @at */
    if (!err)
        err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
    if (err)
        return e2_errno(err);
    if (at <= e.e_lblk || at >= e.e_lblk + e.e_len)
        return 0;
    tail = e;
    tail.e_lblk = at;
    tail.e_pblk = e.e_pblk + (at - e.e_lblk);
    tail.e_len = e.e_len - (uint32_t)(at - e.e_lblk);
    e.e_len = (uint32_t)(at - e.e_lblk);
    err = ext2fs_extent_replace(h, 0, &e);
    if (!err)
        err = ext2fs_extent_insert(h, EXT2_EXTENT_INSERT_AFTER, &tail);
    return e2_errno(err);
}

/* Everything the shift goes through, before anything changes: the tree
 * path to @first and every tree block and extent from there to the end,
 * as punch checks its range (sysz.c). A leaf in the inode table would
 * otherwise have its entries rewritten there. */
static int check_shift_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t first)
{
    return e2_sysz_check_range_locked(img, ino, in, first, ~(blk64_t)0);
}

static void set_size(struct ext2_inode_large *in, uint64_t size)
{
    in->i_size = (uint32_t)size;
    in->i_size_high = (uint32_t)(size >> 32);
}

/* Checks common to both, in ext4's order; the range in blocks. */
static int shift_begin(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                       uint64_t off, uint64_t len, blk64_t *first, blk64_t *n)
{
    uint64_t bs = img->fs->blocksize;
    int ret;

    ret = e2_read_inode_for_change_locked(img, ino, in);
    if (ret)
        return ret;
    if (!(in->i_flags & EXT4_EXTENTS_FL))
        return -EOPNOTSUPP;
    if (off % bs || len % bs || len == 0)
        return -EINVAL;
    *first = off / bs;
    *n = len / bs;
    return 0;
}

int e2_data_collapse(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len)
{
    struct ext2_inode_large in;
    ext2_extent_handle_t h;
    blk64_t first, n;
    uint64_t size;
    int ret;

    e2_lock(img);
    ret = shift_begin(img, ino, &in, off, len, &first, &n);
    if (ret)
        goto out_unlock;
    size = EXT2_I_SIZE(&in);
    /* Reaching EOF would be a truncate, which ext4 leaves to truncate. */
    if (off + len >= size) {
        ret = -EINVAL;
        goto out_unlock;
    }
    ret = check_shift_locked(img, ino, &in, first);
    if (ret)
        goto out_unlock;
    ret = e2_punch_locked(img, ino, &in, first, first + n - 1);
    if (!ret)
        ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    ret = e2_errno(ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)&in, &h));
    if (ret)
        goto out_unlock;
    ret = shift_extents(h, first + n, n, SHIFT_LEFT);
    ext2fs_extent_free(h);
    /* The handle wrote the inode if the root changed: read it back. */
    if (!ret)
        ret = e2_read_inode_locked(img, ino, &in);
    if (!ret) {
        set_size(&in, size - len);
        ret = e2_write_inode_locked(img, ino, &in);
    }
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_data_insert(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len)
{
    struct ext2_inode_large in;
    ext2_extent_handle_t h;
    blk64_t first, n;
    uint64_t size;
    int ret;

    e2_lock(img);
    ret = shift_begin(img, ino, &in, off, len, &first, &n);
    if (ret)
        goto out_unlock;
    size = EXT2_I_SIZE(&in);
    if (len > e2_max_file_size(img, true) - size) {
        ret = -EFBIG;
        goto out_unlock;
    }
    /* Inserting at or past EOF would be an extension, which ext4 leaves
     * to truncate. */
    if (off >= size) {
        ret = -EINVAL;
        goto out_unlock;
    }
    ret = check_shift_locked(img, ino, &in, first);
    if (ret)
        goto out_unlock;
    ret = e2_errno(ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)&in, &h));
    if (ret)
        goto out_unlock;
    ret = split_at(h, first);
    if (!ret)
        ret = shift_extents(h, first, n, SHIFT_RIGHT);
    ext2fs_extent_free(h);
    if (!ret)
        ret = e2_read_inode_locked(img, ino, &in);
    if (!ret) {
        set_size(&in, size + len);
        ret = e2_write_inode_locked(img, ino, &in);
    }
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
