/* File data written where extio.c's one-allocation fast path does not
 * apply: block-mapped (ext2/ext3) files, and holes inside extent files.
 * Blocks are mapped one at a time with ext2fs_bmap2 (allocating holes:
 * extent or indirect blocks are metadata, journaled), and the data goes
 * straight home in contiguous runs (bio.h: ordered before the commit that
 * exposes it) instead of through libext2fs's file API, whose writes would
 * be journaled like metadata. Every block allocated here is written in
 * full (zeros around the data in a new block), so no stale bytes show. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RUN_BLOCKS 256 /* blocks gathered before one write */

struct run {
    blk64_t pblk; /* first block; 0 when empty */
    unsigned len;
    char *buf; /* RUN_BLOCKS blocks */
};

static int flush_run(struct e2_image *img, struct run *r)
{
    int ret = 0;

    if (r->len)
        ret = e2_data_write_blocks(img, r->pblk, r->len, r->buf);
    r->len = 0;
    r->pblk = 0;
    return ret;
}

/* The next block of the run, or a new run if it does not follow on. */
static int run_slot(struct e2_image *img, struct run *r, blk64_t pblk, char **slot)
{
    int ret = 0;

    if (r->len && (pblk != r->pblk + r->len || r->len == RUN_BLOCKS))
        ret = flush_run(img, r);
    if (!r->len)
        r->pblk = pblk;
    *slot = r->buf + (size_t)r->len * img->fs->blocksize;
    r->len++;
    return ret;
}

ssize_t e2_mapio_write_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              const void *buf, size_t size, uint64_t off, bool *unwritten)
{
    ext2_filsys fs = img->fs;
    uint64_t bs = fs->blocksize, pos = off, end = off + size;
    struct run r = {0};
    int ret = 0, wret;

    *unwritten = false;
    r.buf = malloc(RUN_BLOCKS * bs);
    if (!r.buf)
        return -ENOMEM;
    while (pos < end && !ret) {
        blk64_t lblk = pos / bs, pblk = 0;
        uint64_t boff = pos % bs, n = bs - boff < end - pos ? bs - boff : end - pos;
        int flags = 0;
        bool hole;
        char *slot;

        ret =
            e2_errno(ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, 0, lblk, &flags, &pblk));
        if (ret)
            break;
        if (flags & BMAP_RET_UNINIT) {
            *unwritten = true; /* the file API's job, from here (caller) */
            break;
        }
        hole = pblk == 0;
        if (hole) {
            ret = e2_errno(ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, BMAP_ALLOC, lblk,
                                        &flags, &pblk));
            if (ret)
                break;
        }
        if (pblk < fs->super->s_first_data_block || pblk >= ext2fs_blocks_count(fs->super)) {
            ret = -EUCLEAN;
            break;
        }
        ret = run_slot(img, &r, pblk, &slot);
        if (ret)
            break;
        if (n < bs) {
            if (hole)
                memset(slot, 0, bs);
            else if ((ret = e2_data_read_blocks(img, pblk, 1, slot)))
                break;
        }
        memcpy(slot + boff, (const char *)buf + (pos - off), n);
        pos += n;
    }
    /* Whatever was allocated is written, even after an error. */
    wret = flush_run(img, &r);
    free(r.buf);
    if (!ret)
        ret = wret;
    if (pos > off && pos > EXT2_I_SIZE(in)) {
        in->i_size = (uint32_t)pos;
        in->i_size_high = (uint32_t)(pos >> 32);
    }
    wret = e2_write_inode_locked(img, ino, in);
    if (pos > off && ret == -ENOSPC)
        return (ssize_t)(pos - off); /* a short write; the caller decides */
    return ret ? ret : wret ? wret : (ssize_t)(pos - off);
}
