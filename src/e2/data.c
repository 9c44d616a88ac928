/* Data of block-mapped (extent or indirect) files. Never called on inline
 * inodes: the fs layer routes those to inline.c. */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* libext2fs's file I/O takes unsigned int lengths. */
#define IO_CHUNK (1u << 30)

static int open_file_locked(struct e2_image *img, uint32_t ino, int flags, ext2_file_t *f)
{
    struct ext2_inode_large in;
    int ret = e2_read_inode_locked(img, ino, &in);

    if (ret)
        return ret;
    if (in.i_flags & EXT4_INLINE_DATA_FL)
        return -EUCLEAN; /* the caller's inline routing is wrong or raced */
    return e2_errno(ext2fs_file_open2(img->fs, ino, (struct ext2_inode *)&in, flags, f));
}

static int close_file(ext2_file_t f, int ret)
{
    int cret = e2_errno(ext2fs_file_close(f));

    return ret ? ret : cret;
}

/* Read @ino into @in and cut @size to what lies before i_size: 1 when
 * something does, 0 at or past EOF, or -errno. */
static int read_span_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                            off_t off, size_t *size)
{
    int ret = e2_read_inode_locked(img, ino, in);

    if (ret)
        return ret;
    if ((uint64_t)off >= EXT2_I_SIZE(in))
        return 0;
    if (*size > EXT2_I_SIZE(in) - (uint64_t)off)
        *size = EXT2_I_SIZE(in) - (uint64_t)off;
    return 1;
}

ssize_t e2_data_map(struct e2_image *img, uint32_t ino, off_t off, size_t size, struct e2_seg *segs,
                    unsigned max, unsigned *nseg)
{
    struct ext2_inode_large in;
    ssize_t ret;

    *nseg = 0;
    e2_lock(img);
    ret = read_span_locked(img, ino, &in, off, &size);
    if (ret > 0 && e2_extio_usable(&in))
        ret = e2_extio_map_locked(img, ino, &in, (uint64_t)off, size, segs, max, nseg);
    else if (ret > 0)
        ret = -EOPNOTSUPP;
    e2_unlock(img);
    return ret;
}

int e2_image_fd(struct e2_image *img, uint64_t *base)
{
    *base = e2_iom_base(img->fs->io);
    return e2_iom_fd(img->fs->io);
}

void e2_data_before_read(struct e2_image *img)
{
    e2_iom_before_read_home(img->fs->io);
}

/* Segments of one read taken outside the disk lock; a read in more pieces
 * is copied under it. */
#define READ_SEGS 16

/* Block-mapped files: libext2fs's file API, block by block. */
static ssize_t read_blockmap_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                    void *buf, size_t size, off_t off)
{
    ext2_file_t f;
    size_t done = 0;
    int ret;

    ret = e2_sysz_check_read_locked(img, ino, in, (uint64_t)off / img->fs->blocksize,
                                    ((uint64_t)off + size - 1) / img->fs->blocksize);
    if (ret)
        return ret;
    ret = open_file_locked(img, ino, 0, &f);
    if (ret)
        return ret;
    ret = e2_errno(ext2fs_file_llseek(f, (uint64_t)off, EXT2_SEEK_SET, NULL));
    while (!ret && done < size) {
        unsigned want = size - done > IO_CHUNK ? IO_CHUNK : (unsigned)(size - done);
        unsigned got = 0;
        ret = e2_errno(ext2fs_file_read(f, (char *)buf + done, want, &got));
        done += got;
        if (got < want)
            break;
    }
    ret = close_file(f, ret);
    return ret ? ret : (ssize_t)done;
}

/* The bytes of @segs (e2_data_map()) into @buf, from the image file,
 * without the disk lock. */
static ssize_t read_segs(struct e2_image *img, const struct e2_seg *segs, unsigned nseg, char *buf,
                         size_t total)
{
    size_t done = 0;

    for (unsigned i = 0; i < nseg; i++) {
        if (segs[i].pos == E2_SEG_ZERO) {
            memset(buf + done, 0, segs[i].len);
        } else {
            /* Past the end of the image file is an error, as for a read
             * through the cache (EXT2_ET_SHORT_READ: EIO). */
            int ret = e2_errno(e2_iom_read_home(img->fs->io, segs[i].pos, segs[i].len, buf + done));
            if (ret)
                return ret;
        }
        done += segs[i].len;
    }
    return (ssize_t)total;
}

ssize_t e2_data_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, off_t off)
{
    struct e2_seg segs[READ_SEGS];
    struct ext2_inode_large in;
    unsigned nseg = 0;
    bool mapped = false;
    ssize_t ret;

    e2_lock(img);
    ret = read_span_locked(img, ino, &in, off, &size);
    if (ret > 0 && e2_extio_usable(&in)) {
        ret = e2_extio_map_locked(img, ino, &in, (uint64_t)off, size, segs, READ_SEGS, &nseg);
        mapped = ret > 0;
        if (ret == -EOPNOTSUPP) /* too many pieces, or blocks not home */
            ret = e2_extio_read_locked(img, ino, &in, buf, size, (uint64_t)off);
    } else if (ret > 0) {
        ret = read_blockmap_locked(img, ino, &in, buf, size, off);
    }
    e2_unlock(img);
    /* The map stays true while the caller keeps the inode from changing
     * (e2.h): the reads need only the image file. Readers of one image no
     * longer queue behind each other's pread under the disk lock. */
    if (mapped)
        ret = read_segs(img, segs, nseg, buf, size);
    return ret;
}

/* Whether a write of @size bytes at @off touches a cluster of @ino that
 * lost blocks in the running transaction (bigalloc). */
static bool partial_hit_locked(struct e2_image *img, uint32_t ino, size_t size, off_t off)
{
    uint64_t cluster_bytes = (uint64_t)img->fs->blocksize * EXT2FS_CLUSTER_RATIO(img->fs);

    if (!img->npartial)
        return false;
    return e2_partial_hit_locked(img, ino, (uint64_t)off / cluster_bytes,
                                 ((uint64_t)off + size - 1) / cluster_bytes);
}

/* The attributes a write changes (@fields of @a) into @in, and @in
 * written if they or the write (@changed) made it differ from the image. */
static int store_write_attrs_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                    bool changed, const struct e2_attr *a, unsigned fields)
{
    if (!fields && !changed)
        return 0;
    if (fields)
        e2_attr_to_inode(a, fields, in);
    return e2_write_inode_locked(img, ino, in);
}

/* Extent files, in runs (extio.c), which leaves a new i_size in @in to
 * this write: stored with the times, in one inode write. *@route says
 * whether extio took the write. */
static ssize_t write_extio_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                  const void *buf, size_t size, off_t off, const struct e2_attr *a,
                                  unsigned fields, enum e2_write_route *route)
{
    struct e2_wsrc src = {.buf = buf};
    uint64_t old_size = EXT2_I_SIZE(in);
    ssize_t n = e2_extio_write_locked(img, ino, in, &src, size, (uint64_t)off, route);
    int wret;

    if (*route != E2_WRITE_DONE || n <= 0)
        return n;
    wret = store_write_attrs_locked(img, ino, in, EXT2_I_SIZE(in) != old_size, a, fields);
    return wret ? wret : n;
}

/* Block-mapped files and extent writes extio leaves (mapio.c), block by
 * block; mapio writes the inode itself, the times follow. *@unwritten: it
 * stopped at an unwritten extent, for the file API to go on from there. */
static ssize_t write_mapio_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                  const void *buf, size_t size, off_t off, const struct e2_attr *a,
                                  unsigned fields, bool *unwritten)
{
    ssize_t n = e2_mapio_write_locked(img, ino, in, buf, size, (uint64_t)off, unwritten);
    int wret;

    if (n <= 0 || *unwritten)
        return n;
    wret = store_write_attrs_locked(img, ino, in, false, a, fields);
    return wret ? wret : n;
}

/* Put @n bytes, all in one block, at @f's position and flush that block.
 * The file API keeps a block's bytes in its buffer until it moves to
 * another block or closes; a flush that fails then (ENOSPC: an unwritten
 * extent that must split to be converted, or a block to allocate) drops
 * them, though ext2fs_file_write() had counted them. So only bytes whose
 * block was flushed have reached the file. */
static int put_block_bytes(ext2_file_t f, const char *p, unsigned n)
{
    unsigned put = 0;
    int ret = e2_errno(ext2fs_file_write(f, p, n, &put));

    if (!ret && put < n)
        ret = -ENOSPC;
    if (!ret)
        ret = e2_errno(ext2fs_file_flush(f));
    return ret;
}

/* After a failed file API write: i_size back to what the bytes that
 * reached the file give (ext2fs_file_write() sets it before the flush). */
static int undo_size_locked(struct e2_image *img, uint32_t ino, uint64_t size)
{
    struct ext2_inode_large in;
    int ret = e2_read_inode_locked(img, ino, &in);

    if (ret || EXT2_I_SIZE(&in) <= size)
        return ret;
    in.i_size = (uint32_t)size;
    in.i_size_high = (uint32_t)(size >> 32);
    return e2_write_inode_locked(img, ino, &in);
}

/* Whether the file API may allocate for bytes [@from, @to) of @ino: yes,
 * unless on bigalloc with too few free clusters for a tree split and a
 * hole in the range (-ENOSPC): its allocating bmap would free a cluster the
 * file keeps if the split failed (cluster.c). Blocks mapped already,
 * unwritten ones too, are converted or written without that risk. */
static int file_api_room_locked(struct e2_image *img, uint32_t ino, uint64_t from, uint64_t to)
{
    ext2_filsys fs = img->fs;
    struct ext2_inode_large in;
    int ret = e2_read_inode_locked(img, ino, &in);

    if (ret || from >= to || !e2_cluster_room_locked(img, &in))
        return ret;
    for (blk64_t b = from / fs->blocksize; b <= (to - 1) / fs->blocksize; b++) {
        blk64_t p = 0;
        errcode_t err = ext2fs_bmap2(fs, ino, (struct ext2_inode *)&in, NULL, 0, b, NULL, &p);
        if (err)
            return e2_errno(err);
        if (!p)
            return -ENOSPC;
    }
    return 0;
}

/* libext2fs's file API, from byte @done of the write on: the rest of one
 * that met an unwritten extent (the file API converts those), or one into
 * a bigalloc cluster that lost blocks in this transaction (through the
 * journal, e2_internal.h). A block at a time, each flushed before it
 * counts (put_block_bytes). A short write reports what reached the file;
 * the error comes next. */
static ssize_t write_file_api_locked(struct e2_image *img, uint32_t ino, const void *buf,
                                     size_t size, off_t off, size_t done, const struct e2_attr *a,
                                     unsigned fields)
{
    uint64_t bs = img->fs->blocksize, old_size;
    struct ext2_inode_large in;
    ext2_file_t f;
    int ret = e2_read_inode_locked(img, ino, &in);

    old_size = EXT2_I_SIZE(&in);
    if (!ret)
        ret = file_api_room_locked(img, ino, (uint64_t)off + done, (uint64_t)off + size);
    if (!ret)
        ret = open_file_locked(img, ino, EXT2_FILE_WRITE, &f);
    if (ret)
        goto out;
    ret = e2_errno(ext2fs_file_llseek(f, (uint64_t)off + done, EXT2_SEEK_SET, NULL));
    while (!ret && done < size) {
        uint64_t pos = (uint64_t)off + done;
        unsigned want =
            bs - pos % bs < size - done ? (unsigned)(bs - pos % bs) : (unsigned)(size - done);
        ret = put_block_bytes(f, (const char *)buf + done, want);
        if (!ret)
            done += want;
    }
    ret = close_file(f, ret);
    if (ret) {
        uint64_t reached = done ? (uint64_t)off + done : 0;
        int uret = undo_size_locked(img, ino, reached > old_size ? reached : old_size);
        ret = uret ? uret : ret;
    }
    /* The file API wrote the inode as it closed: the times after it. */
    if (done && fields) {
        int aret = e2_read_inode_locked(img, ino, &in);
        if (!aret)
            aret = store_write_attrs_locked(img, ino, &in, false, a, fields);
        ret = ret ? ret : aret;
    }
out:
    if (ret && done)
        return (ssize_t)done;
    return ret ? ret : (ssize_t)done;
}

ssize_t e2_data_write(struct e2_image *img, uint32_t ino, const void *buf, size_t size, off_t off,
                      const struct e2_attr *a, unsigned fields)
{
    enum e2_write_route route = E2_WRITE_ELSEWHERE;
    struct ext2_inode_large in;
    bool unwritten = false;
    ssize_t n = 0;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    /* The routes in order; what none takes goes to the file API. */
    if (size && !partial_hit_locked(img, ino, size, off)) {
        if (e2_extio_usable(&in))
            n = write_extio_locked(img, ino, &in, buf, size, off, a, fields, &route);
        if (route == E2_WRITE_ELSEWHERE && !(in.i_flags & EXT4_INLINE_DATA_FL)) {
            n = write_mapio_locked(img, ino, &in, buf, size, off, a, fields, &unwritten);
            route = E2_WRITE_DONE;
        }
    }
    if ((route == E2_WRITE_ELSEWHERE || unwritten) && n >= 0)
        n = write_file_api_locked(img, ino, buf, size, off, (size_t)n, a, fields);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret ? ret : n;
}

ssize_t e2_data_write_pipe(struct e2_image *img, uint32_t ino, int pipe_fd, size_t size, off_t off,
                           const struct e2_attr *a, unsigned fields, const struct e2_accept *acc)
{
    struct e2_wsrc src = {.buf = NULL, .pipe = pipe_fd, .acc = acc};
    enum e2_write_route route = E2_WRITE_ELSEWHERE;
    struct ext2_inode_large in;
    uint64_t old_size;
    ssize_t n;

    n = e2_lock_for_change(img, ino, &in);
    old_size = EXT2_I_SIZE(&in);
    /* Only the extent path moves whole runs in order; the others need the
     * bytes at hand (e2_data_write()). Each decides before it takes any. */
    if (!n && size && !partial_hit_locked(img, ino, size, off) && e2_extio_usable(&in))
        n = e2_extio_write_locked(img, ino, &in, &src, size, (uint64_t)off, &route);
    if (!n && size && route == E2_WRITE_ELSEWHERE)
        n = -EAGAIN;
    /* The new i_size extio left to us, and the times, in one inode write. */
    if (n > 0) {
        int wret = store_write_attrs_locked(img, ino, &in, EXT2_I_SIZE(&in) != old_size, a, fields);
        n = wret ? wret : n;
    }
    e2_step_end_locked(img);
    e2_unlock(img);
    return n;
}

int e2_data_truncate(struct e2_image *img, uint32_t ino, uint64_t size)
{
    struct ext2_inode_large in;
    uint64_t bs;
    ext2_file_t f;
    int ret;

    /* Free the blocks past the new end first, with the workaround of
     * punch.c; ext2fs_file_set_size2 then finds nothing left to free. */
    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    bs = img->fs->blocksize;
    if (size <= EXT2_I_SIZE(&in) &&
        ext2fs_inode_has_valid_blocks2(img->fs, (struct ext2_inode *)&in)) {
        ret = e2_punch_locked(img, ino, &in, (size + bs - 1) / bs, ~0ULL);
        if (ret)
            goto out_unlock;
    }
    ret = open_file_locked(img, ino, EXT2_FILE_WRITE, &f);
    if (ret)
        goto out_unlock;
    ret = close_file(f, e2_errno(ext2fs_file_set_size2(f, size)));
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* Zero [off, off+len) inside one block if that block is mapped. */
static int zero_partial_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                               uint64_t off, uint64_t len)
{
    ext2_filsys fs = img->fs;
    blk64_t lblk = off / fs->blocksize, pblk = 0;
    int ret_flags = 0, ret;
    char *block;
    errcode_t err;

    if (!len)
        return 0;
    /* The zeros are written before the punch's own check (sysz.c). */
    ret = e2_sysz_check_range_locked(img, ino, in, lblk, lblk);
    if (ret)
        return ret;
    err = ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, 0, lblk, &ret_flags, &pblk);
    if (err)
        return e2_errno(err);
    if (!pblk || (ret_flags & BMAP_RET_UNINIT))
        return 0;
    block = malloc(fs->blocksize);
    if (!block)
        return -ENOMEM;
    ret = e2_data_read_blocks(img, pblk, 1, block);
    if (!ret) {
        memset(block + off % fs->blocksize, 0, len);
        ret = e2_data_write_blocks(img, pblk, 1, block);
    }
    free(block);
    return ret;
}

int e2_data_punch(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len)
{
    struct ext2_inode_large in;
    uint64_t bs, first, end, head_end;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    bs = img->fs->blocksize;
    end = off + len;
    first = (off + bs - 1) / bs; /* first whole block */
    head_end = first * bs < end ? first * bs : end;
    ret = zero_partial_locked(img, ino, &in, off, head_end - off);
    if (ret || head_end == end)
        goto out_unlock;
    if (end / bs > first) {
        ret = e2_punch_locked(img, ino, &in, first, end / bs - 1);
        if (ret)
            goto out_unlock;
        ret = e2_read_inode_locked(img, ino, &in);
        if (ret)
            goto out_unlock;
    }
    if (end % bs && end / bs >= first)
        ret = zero_partial_locked(img, ino, &in, end / bs * bs, end % bs);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* ext2fs_fallocate() of libext2fs 1.47.0 maps too much when the range lies
 * wholly before the file's first extent: everything from the range's start
 * up to that extent, whatever the length asked (fixed in e2fsprogs 1.47.3;
 * 32 MiB asked 2 GiB below the first extent took 2 GiB, or failed with
 * ENOSPC). In that case map the range's first block here, unwritten: the
 * rest of the range then follows an extent, which ext2fs_fallocate()
 * handles right (extending this one where the blocks after it are free).
 * Sets *@mapped when it did. */
static int falloc_head_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                              blk64_t first, blk64_t last, bool *mapped)
{
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    blk64_t pblk = 0;
    errcode_t err;
    int ret;

    *mapped = false;
    err = ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)in, &h);
    if (err)
        return e2_errno(err);
    /* In a hole with no extent below it, the goto leaves the handle on the
     * next extent above (which ext2fs_fallocate() relies on too). */
    ext2fs_extent_goto(h, first);
    err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &e);
    ext2fs_extent_free(h);
    if (err || e.e_lblk <= last)
        return 0; /* no extent, or one at or below @first, or inside the range */
    /* Allocates, maps, counts the block in i_blocks and writes the inode
     * (after reading it again: @in has no change of ours yet). */
    ret = e2_bmap_alloc_locked(img, ino, in, BMAP_UNINIT, first, NULL, &pblk);
    if (ret)
        return ret;
    *mapped = true;
    return 0;
}

/* ext2fs_fallocate() of libext2fs 1.47 (to 1.47.4) on bigalloc lengthens
 * an initialised extent that ends just before a hole to the end of its
 * cluster, but not past EOF unless asked (ext_falloc_helper(), "Don't
 * expand an initialized left_ext beyond EOF"); it stops one block late:
 * with x the extent's last block, it adds eof_blk - x blocks, so block
 * eof_blk (the first past a block-aligned EOF) is mapped initialised.
 * e2fsck takes such an extent in the last leaf of a deeper tree for one
 * that outgrows its index ('end of extent exceeds allowed value'). When
 * the range starts there (or before), map that block unwritten first;
 * ext2fs_fallocate() then finds it allocated. */
static int falloc_eof_block_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                                   blk64_t first, blk64_t last)
{
    ext2_filsys fs = img->fs;
    uint64_t size = EXT2_I_SIZE(in);
    blk64_t eof = size / fs->blocksize, p = 0;
    int flags = 0;
    errcode_t err;

    if (EXT2FS_CLUSTER_RATIO(fs) == 1 || size % fs->blocksize || !eof ||
        !(eof & EXT2FS_CLUSTER_MASK(fs)) || eof < first || eof > last)
        return 0;
    err = ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, 0, eof - 1, &flags, &p);
    if (err || !p || (flags & BMAP_RET_UNINIT))
        return e2_errno(err);
    p = 0;
    err = ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, 0, eof, NULL, &p);
    if (err || p)
        return e2_errno(err);
    return e2_bmap_alloc_locked(img, ino, in, BMAP_UNINIT, eof, NULL, &p);
}

int e2_data_allocate(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len)
{
    struct ext2_inode_large in;
    uint64_t bs, first, last;
    bool head;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (!(in.i_flags & EXT4_EXTENTS_FL)) {
        ret = -EOPNOTSUPP; /* as ext4 does for indirect-mapped files */
        goto out_unlock;
    }
    bs = img->fs->blocksize;
    first = off / bs;
    last = (off + len - 1) / bs;
    /* As the kernel's ext4_map_blocks: an extent in the range that maps
     * the system zone fails the call (libext2fs would skip it as
     * allocated, and report success). */
    ret = e2_sysz_check_range_locked(img, ino, &in, first, last);
    if (ret)
        goto out_unlock;
    ret = falloc_head_locked(img, ino, &in, first, last, &head);
    if (!ret)
        ret = falloc_eof_block_locked(img, ino, &in, first, last);
    if (ret)
        goto out_unlock;
    if (head && first == last)
        goto out_unlock; /* that block was the whole range */
    if (head)
        first++;
    ret = e2_fallocate_locked(img, EXT2_FALLOCATE_FORCE_UNINIT, ino, &in, first, last - first + 1);
    /* Write our copy of the inode even when the allocation failed part way
     * (ENOSPC): the extents placed so far are in the tree already, and
     * i_blocks counts them only here. libext2fs writes the inode itself
     * only when a tree block is added, so a failure used to leave every
     * extent placed after the last such block uncounted (issue 17: the
     * retry after a commit then succeeded on top, 65,025 blocks short, and
     * freeing the file underflowed i_blocks). As the kernel, what was
     * allocated stays. */
    int wret = e2_write_inode_locked(img, ino, &in);
    ret = ret ? ret : wret;
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* First mapped, initialised block at or after @lblk: [*start, *start+*len).
 * Returns 1 if found, 0 if none, -errno. */
static int next_data_extent(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                            blk64_t lblk, blk64_t lend, blk64_t *start, blk64_t *len)
{
    ext2_filsys fs = img->fs;

    if (in->i_flags & EXT4_EXTENTS_FL) {
        ext2_extent_handle_t h;
        struct ext2fs_extent e;
        errcode_t err;
        int found = 0;

        err = ext2fs_extent_open2(fs, ino, (struct ext2_inode *)in, &h);
        if (err)
            return e2_errno(err);
        err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
        while (!err) {
            if ((e.e_flags & EXT2_EXTENT_FLAGS_LEAF) && !(e.e_flags & EXT2_EXTENT_FLAGS_UNINIT) &&
                e.e_lblk + e.e_len > lblk && (!found || e.e_lblk < *start)) {
                *start = e.e_lblk > lblk ? e.e_lblk : lblk;
                *len = e.e_lblk + e.e_len - *start;
                found = 1;
            }
            err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
        }
        ext2fs_extent_free(h);
        if (err != EXT2_ET_EXTENT_NO_NEXT && err != EXT2_ET_EXTENT_NO_DOWN)
            return e2_errno(err);
        return found;
    }
    for (blk64_t b = lblk; b < lend; b++) {
        blk64_t p = 0;
        errcode_t err = ext2fs_bmap2(fs, ino, (struct ext2_inode *)in, NULL, 0, b, NULL, &p);
        if (err)
            return e2_errno(err);
        if (p) {
            *start = b;
            *len = 1;
            return 1;
        }
    }
    return 0;
}

int e2_data_seek(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t size, bool data,
                 uint64_t *res)
{
    struct ext2_inode_large in;
    uint64_t bs = img->fs->blocksize;
    blk64_t lend = (size + bs - 1) / bs, b = off / bs, start, len;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (data) {
        ret = next_data_extent(img, ino, &in, b, lend, &start, &len);
        if (ret == 1) {
            uint64_t pos = start * bs > off ? start * bs : off;
            ret = pos < size ? 0 : -ENXIO;
            *res = pos;
        } else if (ret == 0) {
            ret = -ENXIO;
        }
        goto out_unlock;
    }
    /* A hole: skip runs of data that touch the current position. */
    for (;;) {
        ret = next_data_extent(img, ino, &in, b, lend, &start, &len);
        if (ret < 0)
            goto out_unlock;
        if (ret == 0 || start > b)
            break;
        b = start + len;
    }
    ret = 0;
    *res = b * bs > off ? b * bs : off;
    if (*res > size)
        *res = size;
out_unlock:
    e2_unlock(img);
    return ret;
}
