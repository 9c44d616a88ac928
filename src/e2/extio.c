/* File data of extent-mapped files moved in large contiguous block I/O.
 *
 * libext2fs's file API reads and writes one block at a time and allocates
 * block by block, and its writes are metadata to iomgr.c (journaled). For
 * extent files we map the request to runs of physical blocks and move each
 * run with one pread/pwrite as file data (iomgr.h: straight home, ordered
 * before the commit that exposes it); holes are allocated for the whole
 * request at once with ext2fs_fallocate, which gives contiguous extents.
 * Unwritten extents and block-mapped files stay with the file API. */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum run_state { RUN_HOLE, RUN_UNWRITTEN, RUN_DATA };

struct run {
    enum run_state state;
    blk64_t pblk; /* for RUN_DATA and RUN_UNWRITTEN */
    blk64_t len;  /* blocks, at most what was asked */
};

/* The mapping of logical block @lblk and how far it continues (up to
 * @want blocks). Holes are reported one block at a time. */
static int map_run(struct e2_image *img, uint32_t ino, ext2_extent_handle_t h, blk64_t lblk,
                   blk64_t want, struct run *r)
{
    struct ext2fs_extent e;
    errcode_t err = ext2fs_extent_goto(h, lblk), gerr = 0;
    int ret;

    r->state = RUN_HOLE;
    r->len = 1;
    r->pblk = 0;
    if (!err)
        gerr = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
    /* The tree blocks the lookup read, a hole's too: a leaf between the
     * ends of a request (which the caller checked) may be metadata. */
    ret = e2_sysz_check_handle_locked(img, ino, h);
    if (ret)
        return ret;
    if (err == EXT2_ET_EXTENT_NOT_FOUND || err == EXT2_ET_NO_CURRENT_NODE ||
        err == EXT2_ET_EXTENT_NO_NEXT)
        return 0;
    if (err || gerr)
        return e2_errno(err ? err : gerr);
    if (lblk < e.e_lblk || lblk >= e.e_lblk + e.e_len)
        return 0;
    r->len = e.e_lblk + e.e_len - lblk < want ? e.e_lblk + e.e_len - lblk : want;
    r->pblk = e.e_pblk + (lblk - e.e_lblk);
    /* The one place extent files' blocks come out for I/O: none may be
     * metadata or outside the file system. */
    ret = e2_sysz_check_locked(img, ino, r->pblk, r->len);
    if (ret)
        return ret;
    r->state = (e.e_flags & EXT2_EXTENT_FLAGS_UNINIT) ? RUN_UNWRITTEN : RUN_DATA;
    return 0;
}

int e2_data_write_blocks(struct e2_image *img, blk64_t blk, size_t count, const void *buf)
{
    return e2_errno(e2_iom_write_data(img->fs->io, blk, count, buf));
}

int e2_data_read_blocks(struct e2_image *img, blk64_t blk, size_t count, void *buf)
{
    return e2_errno(e2_iom_read_data(img->fs->io, blk, count, buf));
}

/* The extent tree blocks on the way to the first and last block of
 * [@off, @end): no metadata (sysz.c; map_run checks the data blocks). */
static int check_tree_ends(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                           uint64_t off, uint64_t end)
{
    int ret = e2_sysz_check_path_locked(img, ino, in, off / img->fs->blocksize);

    if (!ret)
        ret = e2_sysz_check_path_locked(img, ino, in, (end - 1) / img->fs->blocksize);
    return ret;
}

bool e2_extio_usable(const struct ext2_inode_large *in)
{
    return (in->i_flags & EXT4_EXTENTS_FL) && !(in->i_flags & EXT4_INLINE_DATA_FL);
}

ssize_t e2_extio_read_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                             void *buf, size_t size, uint64_t off)
{
    ext2_filsys fs = img->fs;
    uint64_t bs = fs->blocksize, pos = off, end = off + size;
    ext2_extent_handle_t h;
    char *tmp = NULL, *dst = buf;
    int ret = 0;

    ret = check_tree_ends(img, ino, in, off, end);
    if (!ret)
        ret = e2_errno(ext2fs_extent_open2(fs, ino, (struct ext2_inode *)in, &h));
    if (ret)
        return ret;
    while (pos < end && !ret) {
        blk64_t lblk = pos / bs;
        uint64_t boff = pos % bs;
        struct run r;

        ret = map_run(img, ino, h, lblk, (end - lblk * bs + bs - 1) / bs, &r);
        if (ret)
            break;
        if (r.state != RUN_DATA) {
            uint64_t n = r.len * bs - boff < end - pos ? r.len * bs - boff : end - pos;
            memset(dst + (pos - off), 0, n);
            pos += n;
        } else if (boff == 0 && end - pos >= bs) {
            /* Whole blocks straight into the caller's buffer. */
            blk64_t n = (end - pos) / bs < r.len ? (end - pos) / bs : r.len;
            ret = e2_errno(e2_iom_read_data(fs->io, r.pblk, n, dst + (pos - off)));
            pos += n * bs;
        } else {
            uint64_t n = bs - boff < end - pos ? bs - boff : end - pos;
            if (!tmp && !(tmp = malloc(bs))) {
                ret = -ENOMEM;
                break;
            }
            ret = e2_errno(e2_iom_read_data(fs->io, r.pblk, 1, tmp));
            memcpy(dst + (pos - off), tmp + boff, n);
            pos += n;
        }
    }
    ext2fs_extent_free(h);
    free(tmp);
    return ret ? ret : (ssize_t)size;
}

ssize_t e2_extio_map_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                            uint64_t off, size_t size, struct e2_seg *segs, unsigned max,
                            unsigned *nseg)
{
    ext2_filsys fs = img->fs;
    uint64_t bs = fs->blocksize, pos = off, end = off + size;
    ext2_extent_handle_t h;
    unsigned n = 0;
    int ret;

    ret = check_tree_ends(img, ino, in, off, end);
    if (!ret)
        ret = e2_errno(ext2fs_extent_open2(fs, ino, (struct ext2_inode *)in, &h));
    if (ret)
        return ret;
    while (pos < end && !ret) {
        blk64_t lblk = pos / bs;
        uint64_t boff = pos % bs, len;
        struct run r;

        ret = map_run(img, ino, h, lblk, (end - lblk * bs + bs - 1) / bs, &r);
        if (ret)
            break;
        len = r.len * bs - boff < end - pos ? r.len * bs - boff : end - pos;
        if (r.state == RUN_DATA && e2_iom_any_dirty(fs->io, r.pblk, r.len)) {
            ret = -EOPNOTSUPP;
            break;
        }
        /* Neighbouring runs of the same kind (a hole of one block at a
         * time, or extents that continue on disk) make one segment. */
        if (n > 0 && r.state != RUN_DATA && segs[n - 1].pos == E2_SEG_ZERO) {
            segs[n - 1].len += len;
        } else if (n > 0 && r.state == RUN_DATA && segs[n - 1].pos != E2_SEG_ZERO &&
                   segs[n - 1].pos + segs[n - 1].len == r.pblk * bs + boff) {
            segs[n - 1].len += len;
        } else if (n == max) {
            ret = -EOPNOTSUPP;
            break;
        } else {
            segs[n].pos = r.state == RUN_DATA ? r.pblk * bs + boff : E2_SEG_ZERO;
            segs[n].len = len;
            n++;
        }
        pos += len;
    }
    ext2fs_extent_free(h);
    *nseg = n;
    return ret ? ret : (ssize_t)size;
}

/* Whether [first, last] has holes (allocated before writing), and whether
 * it has what the file API must handle instead: unwritten extents, or
 * holes below @eof_blk (filling those goes block by block, so that a full
 * image never leaves allocated garbage inside the file). */
static int scan_range(struct e2_image *img, uint32_t ino, ext2_extent_handle_t h, blk64_t first,
                      blk64_t last, blk64_t eof_blk, bool *holes, bool *fallback)
{
    *holes = *fallback = false;
    for (blk64_t b = first; b <= last;) {
        struct run r;
        int ret = map_run(img, ino, h, b, last - b + 1, &r);
        if (ret)
            return ret;
        *fallback |= r.state == RUN_UNWRITTEN || (r.state == RUN_HOLE && b < eof_blk);
        *holes |= r.state == RUN_HOLE;
        b += r.len;
    }
    return 0;
}

/* ext2fs_fallocate fills the whole gap up to a following extent, and from
 * a preceding one, with initialised blocks; so allocate that way only for
 * a write that continues the file's last extent (or starts an empty file
 * at block 0): sequential writing, the case that matters. */
static int appends_to_last_extent(ext2_extent_handle_t h, blk64_t first, bool *fallback)
{
    struct ext2fs_extent e;
    errcode_t err = ext2fs_extent_get(h, EXT2_EXTENT_LAST_LEAF, &e);

    if (err == EXT2_ET_EXTENT_NO_NEXT || err == EXT2_ET_NO_CURRENT_NODE ||
        err == EXT2_ET_EXTENT_NOT_FOUND) {
        *fallback = first != 0; /* no extents at all */
        return 0;
    }
    if (err)
        return e2_errno(err);
    /* The last leaf's last extent: an empty leaf reports none. */
    if (e.e_len == 0) {
        *fallback = true;
        return 0;
    }
    *fallback = e.e_lblk + e.e_len != first;
    return 0;
}

/* Copy the @n bytes of @src that belong at @done bytes into the write to
 * @dst (from a pipe: its next @n bytes). */
static int src_copy(const struct e2_wsrc *src, uint64_t done, char *dst, uint64_t n)
{
    if (src->buf) {
        memcpy(dst, src->buf + done, n);
        return 0;
    }
    return e2_errno(e2_iom_pipe_take(src->pipe, dst, n));
}

/* Write @n whole blocks from @pblk with the bytes of @src at @done. */
static int src_write_blocks(ext2_filsys fs, const struct e2_wsrc *src, uint64_t done, blk64_t pblk,
                            blk64_t n)
{
    if (src->buf)
        return e2_errno(e2_iom_write_data(fs->io, pblk, n, src->buf + done));
    return e2_errno(e2_iom_splice_data(fs->io, pblk, n, src->pipe));
}

/* Write one partial block: on top of its old contents, or of zeros where
 * it was a hole. */
static int write_partial(ext2_filsys fs, blk64_t pblk, bool was_hole, uint64_t boff,
                         const struct e2_wsrc *src, uint64_t done, uint64_t n, char *tmp)
{
    int ret = 0;

    if (was_hole)
        memset(tmp, 0, fs->blocksize);
    else
        ret = e2_errno(e2_iom_read_data(fs->io, pblk, 1, tmp));
    if (!ret)
        ret = src_copy(src, done, tmp + boff, n);
    if (ret)
        return ret;
    return e2_errno(e2_iom_write_data(fs->io, pblk, 1, tmp));
}

/* ext2fs_fallocate() extends an initialised extent only if it may zero the
 * new blocks first (EXT2_FALLOCATE_ZERO_BLOCKS), which would write every
 * appended block twice; without it each append gets an extent of its own
 * even where the blocks continue on disk (a file written in 1 MiB pieces
 * had 64 extents, and an extent block to hold them that every read then
 * looked up and checksummed). So after allocating from @first, fold the
 * new extent into the one before it, as ext4 would have allocated it, when
 * the blocks continue and both sit in the same tree node (the node's first
 * entry then stays, and no index above it changes). @h is the inode's
 * extent handle, open after the allocation. */
static int merge_with_previous(ext2_extent_handle_t h, blk64_t first)
{
    struct ext2fs_extent left, right;
    errcode_t err;

    if (first == 0)
        return 0;
    err = ext2fs_extent_goto(h, first);
    if (!err)
        err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &right);
    if (!err)
        err = ext2fs_extent_get(h, EXT2_EXTENT_PREV_SIB, &left);
    if (err)
        return 0; /* no extent starts at @first, or it opens its node */
    if (right.e_lblk != first || left.e_lblk + left.e_len != first ||
        left.e_pblk + left.e_len != right.e_pblk ||
        ((left.e_flags | right.e_flags) & EXT2_EXTENT_FLAGS_UNINIT) ||
        (uint64_t)left.e_len + right.e_len > EXT_INIT_MAX_LEN)
        return 0;
    left.e_len += right.e_len;
    err = ext2fs_extent_replace(h, 0, &left);
    if (!err)
        err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT_SIB, &right);
    if (!err)
        err = ext2fs_extent_delete(h, 0);
    return e2_errno(err);
}

/* The blocks a write covers and what they hold now. */
struct wplan {
    blk64_t first, last;       /* the first and last logical block written */
    blk64_t eof_blk;           /* the first block past EOF */
    bool holes;                /* some of them are to be allocated */
    bool elsewhere;            /* not for us: the caller maps block by block */
    bool head_hole, tail_hole; /* the partial end blocks were holes */
};

/* Fill @p for a write of [@off, @end) to the extent file @ino: whether it
 * is ours (it allocates only by extending the last extent, and meets no
 * unwritten extent) and which of its partial end blocks were holes, noted
 * before allocating because they keep zeros around the data. */
static int plan_write(struct e2_image *img, uint32_t ino, const struct ext2_inode_large *in,
                      ext2_extent_handle_t h, uint64_t off, uint64_t end, struct wplan *p)
{
    uint64_t bs = img->fs->blocksize;
    struct run r;
    int ret;

    *p = (struct wplan){
        .first = off / bs, .last = (end - 1) / bs, .eof_blk = (EXT2_I_SIZE(in) + bs - 1) / bs};
    ret = scan_range(img, ino, h, p->first, p->last, p->eof_blk, &p->holes, &p->elsewhere);
    if (!ret && p->holes && !p->elsewhere)
        ret = appends_to_last_extent(h, p->first, &p->elsewhere);
    if (!ret && p->holes && !p->elsewhere) {
        ret = map_run(img, ino, h, p->first, 1, &r);
        p->head_hole = r.state == RUN_HOLE;
        if (!ret) {
            ret = map_run(img, ino, h, p->last, 1, &r);
            p->tail_hole = r.state == RUN_HOLE;
        }
    }
    return ret;
}

/* The blocks past EOF a failed write allocated go back. */
static int punch_extension(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                           const struct wplan *p)
{
    return e2_punch_locked(img, ino, in, p->first > p->eof_blk ? p->first : p->eof_blk, p->last);
}

/* One allocation for the whole extension: contiguous extents,
 * initialised (every block is written after). Without room for all of it,
 * what was taken goes back and *@elsewhere is set: the file API writes
 * what fits. */
static int allocate_holes(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                          struct wplan *p)
{
    int ret, wret, pret;

    ret = e2_fallocate_locked(img, EXT2_FALLOCATE_FORCE_INIT | EXT2_FALLOCATE_INIT_BEYOND_EOF, ino,
                              in, p->first, p->last - p->first + 1);
    /* ext2fs_fallocate updates our copy of the inode (i_blocks, the
     * extent root) without writing it: write it, failed or not. */
    wret = e2_write_inode_locked(img, ino, in);
    if (!ret)
        return wret;
    pret = wret ? wret : punch_extension(img, ino, in, p);
    if (pret)
        return pret;
    if (ret == -ENOSPC)
        p->elsewhere = true;
    return ret == -ENOSPC ? 0 : ret;
}

/* Move the bytes [@off, @end) of @src to the blocks mapped for them, in
 * order: whole blocks in runs, straight to the image; partial ones merged
 * with what the block holds (zeros if it was a hole). */
static int write_runs(struct e2_image *img, uint32_t ino, ext2_extent_handle_t h,
                      const struct e2_wsrc *src, uint64_t off, uint64_t end, const struct wplan *p)
{
    ext2_filsys fs = img->fs;
    uint64_t bs = fs->blocksize, pos = off;
    char *tmp = NULL;
    struct run r;
    int ret = 0;

    if (p->holes)
        ret = merge_with_previous(h, p->first);
    while (pos < end && !ret) {
        blk64_t lblk = pos / bs;
        uint64_t boff = pos % bs;

        ret = map_run(img, ino, h, lblk, p->last - lblk + 1, &r);
        if (!ret && r.state != RUN_DATA)
            ret = -EUCLEAN; /* allocated a moment ago */
        if (ret)
            break;
        if (boff == 0 && end - pos >= bs) {
            blk64_t n = (end - pos) / bs < r.len ? (end - pos) / bs : r.len;
            ret = src_write_blocks(fs, src, pos - off, r.pblk, n);
            pos += n * bs;
        } else {
            uint64_t n = bs - boff < end - pos ? bs - boff : end - pos;
            bool was_hole = lblk == p->first  ? p->head_hole
                            : lblk == p->last ? p->tail_hole
                                              : false;
            if (!tmp && !(tmp = malloc(bs))) {
                ret = -ENOMEM;
                break;
            }
            ret = write_partial(fs, r.pblk, was_hole, boff, src, pos - off, n, tmp);
            pos += n;
        }
    }
    free(tmp);
    return ret;
}

/* Plan a write of [@off, @end) (plan_write()) and allocate its holes. On
 * success, unless it is not for us (@p->elsewhere), *@h is the inode's
 * extent handle for write_runs(), which the caller frees: one handle for
 * both steps, opened again only when allocating changed the tree. */
static int prepare_write(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                         uint64_t off, uint64_t end, struct wplan *p, ext2_extent_handle_t *h)
{
    ext2_filsys fs = img->fs;
    int ret = e2_errno(ext2fs_extent_open2(fs, ino, (struct ext2_inode *)in, h));

    if (ret)
        return ret;
    ret = plan_write(img, ino, in, *h, off, end, p);
    if (!ret && !p->elsewhere && p->holes) {
        /* Allocating changes the tree under the handle: a new one after. */
        ext2fs_extent_free(*h);
        *h = NULL;
        ret = allocate_holes(img, ino, in, p);
        if (!ret && !p->elsewhere)
            ret = e2_errno(ext2fs_extent_open2(fs, ino, (struct ext2_inode *)in, h));
    }
    if (ret || p->elsewhere) {
        ext2fs_extent_free(*h);
        *h = NULL;
    }
    return ret;
}

ssize_t e2_extio_write_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              const struct e2_wsrc *src, size_t size, uint64_t off,
                              enum e2_write_route *route)
{
    uint64_t end = off + size;
    ext2_extent_handle_t h = NULL;
    struct wplan p;
    int ret;

    *route = E2_WRITE_DONE;
    /* Allocating writes into the tree blocks at the ends of the range. */
    ret = check_tree_ends(img, ino, in, off, end);
    if (!ret)
        ret = prepare_write(img, ino, in, off, end, &p, &h);
    if (ret)
        return ret;
    if (p.elsewhere) {
        *route = E2_WRITE_ELSEWHERE;
        return 0;
    }
    if (src->acc)
        src->acc->fn(src->acc->arg, size);
    ret = write_runs(img, ino, h, src, off, end, &p);
    ext2fs_extent_free(h);
    if (ret && p.holes) {
        /* The data did not all reach the image (a full or failing host
         * disk): the blocks just allocated past EOF go back, or they would
         * stay in the file beyond its size. Blocks written in place keep
         * what reached them, as in the kernel; the write reports the error. */
        int pret = punch_extension(img, ino, in, &p);
        return pret ? pret : ret;
    }
    if (ret)
        return ret;
    /* Written by the caller, with the times (e2_internal.h). */
    if (end > EXT2_I_SIZE(in)) {
        in->i_size = (uint32_t)end;
        in->i_size_high = (uint32_t)(end >> 32);
    }
    return (ssize_t)size;
}
