/* Reading an inode's block mapping for tools (uext4-inspect, tests). */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>

struct runs {
    struct e2_run *r;
    unsigned n, cap;
};

static int runs_add(struct runs *rs, uint64_t lblk, uint64_t pblk, uint32_t len, bool unwritten)
{
    struct e2_run *last = rs->n ? &rs->r[rs->n - 1] : NULL;

    if (last && !unwritten && !last->unwritten && last->lblk + last->len == lblk &&
        last->pblk + last->len == pblk) {
        last->len += len;
        return 0;
    }
    if (rs->n == rs->cap) {
        unsigned cap = rs->cap ? rs->cap * 2 : 16;
        struct e2_run *r = realloc(rs->r, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        rs->r = r;
        rs->cap = cap;
    }
    rs->r[rs->n++] = (struct e2_run){lblk, pblk, len, unwritten};
    return 0;
}

static int block_proc(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
                      int ref_offset, void *priv)
{
    if (blockcnt < 0)
        return 0; /* indirect blocks are metadata, not data runs */
    return runs_add(priv, (uint64_t)blockcnt, *blocknr, 1, false) ? BLOCK_ABORT : 0;
}

static int extent_runs_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              struct runs *rs)
{
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    errcode_t err;
    int ret = 0;

    err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    if (err)
        return e2_errno(err);
    err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
    while (!err && !ret) {
        if (e.e_flags & EXT2_EXTENT_FLAGS_LEAF)
            ret = runs_add(rs, e.e_lblk, e.e_pblk, e.e_len, e.e_flags & EXT2_EXTENT_FLAGS_UNINIT);
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
    }
    ext2fs_extent_free(h);
    if (!ret && err != EXT2_ET_EXTENT_NO_NEXT && err != EXT2_ET_NO_CURRENT_NODE)
        ret = e2_errno(err);
    return ret;
}

int e2_inode_runs(struct e2_image *img, uint32_t ino, struct e2_run **runs, unsigned *n,
                  uint64_t *xattr_block)
{
    struct ext2_inode_large in;
    struct runs rs = {0};
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    *xattr_block = ext2fs_file_acl_block(img->fs, (struct ext2_inode *)&in);
    if (in.i_flags & EXT4_INLINE_DATA_FL ||
        !ext2fs_inode_has_valid_blocks2(img->fs, (struct ext2_inode *)&in))
        goto out_unlock;
    if (in.i_flags & EXT4_EXTENTS_FL)
        ret = extent_runs_locked(img, ino, &in, &rs);
    else
        ret = e2_errno(
            ext2fs_block_iterate3(img->fs, ino, BLOCK_FLAG_READ_ONLY, NULL, block_proc, &rs));
out_unlock:
    e2_unlock(img);
    if (ret) {
        free(rs.r);
        return ret;
    }
    *runs = rs.r;
    *n = rs.n;
    return 0;
}
