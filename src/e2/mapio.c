/* File data written where extio.c's one-allocation fast path does not
 * apply: block-mapped (ext2/ext3) files, and holes inside extent files.
 * Blocks are mapped one at a time with ext2fs_bmap2 (allocating holes:
 * extent or indirect blocks are metadata, journaled), and the data goes
 * straight home in contiguous runs (iomgr.h: ordered before the commit that
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
    blk64_t lblk; /* the logical block it holds first */
    uint64_t pos; /* the file offset of its first byte */
    unsigned len;
    char *buf;              /* RUN_BLOCKS blocks */
    bool fresh[RUN_BLOCKS]; /* allocated by this write (a hole before) */
};

/* Give back the blocks allocated for the run: its data did not reach the
 * image, and a block mapped now would show whatever the disk held. */
static int unmap_fresh(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                       const struct run *r)
{
    int ret = 0;

    for (unsigned i = 0; i < r->len && !ret; i++) {
        unsigned j = i;
        if (!r->fresh[i])
            continue;
        while (j + 1 < r->len && r->fresh[j + 1])
            j++;
        ret = e2_punch_locked(img, ino, in, r->lblk + i, r->lblk + j);
        i = j;
    }
    return ret;
}

/* Write the run home. If that fails, nothing of it counts as written: its
 * new blocks are unmapped and *@done stops at its start. */
static int flush_run(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, struct run *r,
                     uint64_t *done)
{
    int ret = 0;

    if (r->len)
        ret = e2_data_write_blocks(img, r->pblk, r->len, r->buf);
    if (ret) {
        int uret = unmap_fresh(img, ino, in, r);
        *done = r->pos;
        if (uret)
            ret = uret;
    }
    r->len = 0;
    r->pblk = 0;
    return ret;
}

/* The block that holds @lblk in *@pblk, allocated if it was a hole
 * (*@hole). Returns 1 if it is unwritten (the caller's file API takes over
 * from there), else 0 or -errno (-EUCLEAN: metadata or outside the image). */
static int map_block(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, blk64_t lblk,
                     blk64_t *pblk, bool *hole)
{
    ext2_filsys fs = img->fs;
    int flags = 0, ret;

    *pblk = 0;
    ret = e2_errno(ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, 0, lblk, &flags, pblk));
    if (ret)
        return ret;
    if (flags & BMAP_RET_UNINIT)
        return 1;
    *hole = *pblk == 0;
    if (*hole) {
        /* The allocation writes into the tree node that maps @lblk, which
         * may be a leaf between the ends the caller checked. */
        ret = e2_sysz_check_path_locked(img, ino, in, lblk);
        if (!ret)
            ret = e2_bmap_alloc_locked(img, ino, in, 0, lblk, &flags, pblk);
        if (ret)
            return ret;
    }
    return e2_sysz_check_locked(img, ino, *pblk, 1);
}

/* Append block @pblk to the run with @n bytes of @src at @boff in it: the
 * rest of a partial block is zeros in a new block, else read from disk. */
static int add_to_run(struct e2_image *img, struct run *r, blk64_t pblk, bool hole, uint64_t boff,
                      uint64_t n, const char *src)
{
    uint64_t bs = img->fs->blocksize;
    char *slot = r->buf + (size_t)r->len * bs;
    int ret;

    if (n < bs) {
        if (hole) {
            memset(slot, 0, bs);
        } else if ((ret = e2_data_read_blocks(img, pblk, 1, slot))) {
            return ret; /* not added: the slot holds no block's bytes */
        }
    }
    memcpy(slot + boff, src, n);
    r->fresh[r->len] = hole;
    r->len++;
    return 0;
}

ssize_t e2_mapio_write_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              const void *buf, size_t size, uint64_t off, bool *unwritten)
{
    ext2_filsys fs = img->fs;
    uint64_t bs = fs->blocksize, pos = off, end = off + size, done;
    struct run r = {0};
    int ret = 0, wret;

    *unwritten = false;
    /* Allocating a hole writes into the tree or indirect blocks: they
     * must be no metadata (map_block checks the data blocks). */
    ret = e2_sysz_check_path_locked(img, ino, in, off / bs);
    if (!ret)
        ret = e2_sysz_check_path_locked(img, ino, in, (end - 1) / bs);
    if (ret)
        return ret;
    r.buf = malloc(RUN_BLOCKS * bs);
    if (!r.buf)
        return -ENOMEM;
    while (pos < end && !ret) {
        blk64_t lblk = pos / bs, pblk;
        uint64_t boff = pos % bs, n = bs - boff < end - pos ? bs - boff : end - pos;
        bool hole = false;

        ret = map_block(img, ino, in, lblk, &pblk, &hole);
        if (ret)
            break;
        if (r.len && (pblk != r.pblk + r.len || r.len == RUN_BLOCKS)) {
            done = pos;
            ret = flush_run(img, ino, in, &r, &done);
            if (ret) {
                pos = done;
                if (hole) /* in no run yet: give it back too */
                    e2_punch_locked(img, ino, in, lblk, lblk);
                break;
            }
        }
        if (!r.len) {
            r.pblk = pblk;
            r.lblk = lblk;
            r.pos = pos;
        }
        ret = add_to_run(img, &r, pblk, hole, boff, n, (const char *)buf + (pos - off));
        if (ret)
            break;
        pos += n;
    }
    *unwritten = ret > 0; /* the file API's job, from there (caller) */
    ret = *unwritten ? 0 : ret;
    /* Whatever was allocated is written, even after an error. */
    done = pos;
    wret = flush_run(img, ino, in, &r, &done);
    pos = done;
    free(r.buf);
    if (!ret)
        ret = wret;
    if (pos > off && pos > EXT2_I_SIZE(in)) {
        in->i_size = (uint32_t)pos;
        in->i_size_high = (uint32_t)(pos >> 32);
    }
    wret = e2_write_inode_locked(img, ino, in);
    /* What reached the image before an error is a short write; the caller
     * writes the rest and then learns the error. */
    if (pos > off && ret)
        return wret ? wret : (ssize_t)(pos - off);
    return ret ? ret : wret ? wret : (ssize_t)(pos - off);
}
