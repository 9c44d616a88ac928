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

static int trim_locked(struct e2_image *img, uint64_t first, uint64_t end, uint64_t minblks)
{
    ext2_filsys fs = img->fs;
    blk64_t blk = first, free_start, used;
    errcode_t err;
    int ret;

    while (blk < end) {
        err = ext2fs_find_first_zero_block_bitmap2(fs->block_map, blk, end - 1, &free_start);
        if (err == ENOENT)
            return 0;
        if (err)
            return e2_errno(err);
        err = ext2fs_find_first_set_block_bitmap2(fs->block_map, free_start, end - 1, &used);
        if (err == ENOENT)
            used = end;
        else if (err)
            return e2_errno(err);
        if (used - free_start >= minblks) {
            ret = punch_run(img, free_start, used - free_start);
            if (ret)
                return ret;
        }
        blk = used;
    }
    return 0;
}

int e2_trim(struct e2_image *img, uint64_t first, uint64_t count, uint64_t minblks,
            uint64_t *released)
{
    struct stat before, after;
    uint64_t end, nblocks;
    int fd, ret;

    *released = 0;
    e2_lock(img);
    if (img->read_only) {
        ret = -EROFS;
        goto out_unlock;
    }
    fd = e2_iom_fd(img->fs->io);
    nblocks = ext2fs_blocks_count(img->fs->super);
    if (first < img->fs->super->s_first_data_block)
        first = img->fs->super->s_first_data_block;
    end = count > nblocks - first ? nblocks : first + count;
    if (first >= end) {
        ret = 0;
        goto out_unlock;
    }
    if (fstat(fd, &before) < 0) {
        ret = -errno;
        goto out_unlock;
    }
    ret = trim_locked(img, first, end, minblks ? minblks : 1);
    if (!ret && fstat(fd, &after) < 0)
        ret = -errno;
    if (!ret && after.st_blocks < before.st_blocks)
        *released = (uint64_t)(before.st_blocks - after.st_blocks) * 512;
out_unlock:
    e2_unlock(img);
    return ret;
}
