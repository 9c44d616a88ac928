/* The inline-data policy (design.md, "Inline data: the rules").
 *
 * Lifecycle of a regular file on an inline_data image:
 *
 *   create --> EMPTY (extents flag, may_inline)
 *   EMPTY --first write(2) ending <= capacity--> INLINE
 *   EMPTY --first write beyond capacity, fallocate--> BLOCKS
 *   INLINE --write(2)/truncate(2) growing past what fits, fallocate--> BLOCKS
 *   INLINE --shrinking truncate, mmap writeback--> INLINE
 *
 * Conversion happens only in write(2), truncate(2) and fallocate(2): an
 * mmap writeback (UEXT4_WRITE_MMAP) never changes i_size, so its bytes go
 * back into the inline area (rule 3), unless -o inline_mmap=convert asks
 * for today's kernel behaviour. (One exception: an inline file whose i_size
 * the kernel let grow past the capacity, by a truncate before its first
 * write, converts when a page stored past the capacity comes back: there
 * is nowhere inline to keep those bytes.) BLOCKS never goes back to INLINE.
 *
 * All functions here run with the inode's lock held. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_inline(const struct e2_attr *a)
{
    return a->flags & E2_FL_INLINE_DATA;
}

/* ext4's size limit for this file: an inline file becomes an extent file
 * when it grows (where the image has extents). */
static uint64_t max_file_size(struct uext4_fs *fs, const struct e2_attr *a)
{
    bool extents = is_inline(a) ? e2_has_extents(fs->img) : (a->flags & E2_FL_EXTENTS) != 0;

    return e2_max_file_size(fs->img, extents);
}

int fs_inline_convert_locked(struct uext4_fs *fs, struct fs_inode *fi)
{
    assert_inode_locked(fi);
    fi->may_inline = false;
    return e2_inline_convert(fs->img, fi->ino);
}

/* Bytes of inline content below i_size, and bytes the inode gives to
 * inline data (60 + system.data). */
static int inline_content(struct uext4_fs *fs, uint32_t ino, const struct e2_attr *a, size_t *clen,
                          size_t *allocated)
{
    int ret = e2_inline_allocated(fs->img, ino, allocated);

    if (!ret)
        *clen = a->size < *allocated ? (size_t)a->size : *allocated;
    return ret;
}

ssize_t fs_file_read_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                            void *buf, size_t size, off_t off)
{
    assert_inode_locked(fi);
    if ((uint64_t)off >= a->size)
        return 0;
    if (size > a->size - (uint64_t)off)
        size = a->size - (uint64_t)off;
    if (is_inline(a))
        return e2_inline_read(fs->img, fi->ino, buf, size, off);
    return e2_data_read(fs->img, fi->ino, buf, size, off);
}

/* As generic_write_checks(): nothing at or past the file size limit,
 * and a write crossing it is cut short (*@size). */
static int clamp_to_limit(struct uext4_fs *fs, const struct e2_attr *a, off_t off, size_t *size)
{
    uint64_t limit = max_file_size(fs, a);

    if ((uint64_t)off >= limit)
        return -EFBIG;
    if ((uint64_t)off + *size > limit)
        *size = (size_t)(limit - (uint64_t)off);
    return 0;
}

ssize_t fs_file_write_pipe_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                                  int pipe_fd, size_t size, off_t off, const struct e2_attr *na,
                                  unsigned fields, const struct e2_accept *acc)
{
    int ret;

    assert_inode_locked(fi);
    /* A new file's first write may yet go inline (fs_file_write_locked),
     * and dirty emulated mmap pages take write(2)'s bytes (pc_update). */
    if (is_inline(a) || fi->may_inline || pc_dirty_count(fs->pc, fi->ino))
        return -EAGAIN;
    ret = clamp_to_limit(fs, a, off, &size);
    if (ret)
        return ret;
    return e2_data_write_pipe(fs->img, fi->ino, pipe_fd, size, off, na, fields, acc);
}

ssize_t fs_file_write_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                             const void *buf, size_t size, off_t off, const struct e2_attr *na,
                             unsigned fields)
{
    uint64_t end;
    uint64_t isize;
    size_t cap = 0;
    int ret;

    assert_inode_locked(fi);
    ret = clamp_to_limit(fs, a, off, &size);
    if (ret)
        return ret;
    end = (uint64_t)off + size;
    isize = end > a->size ? end : a->size;
    if (is_inline(a)) {
        ret = e2_inline_write(fs->img, fi->ino, buf, size, (uint64_t)off, isize, na, fields);
        if (ret != -ENOSPC)
            return ret ? ret : (ssize_t)size;
        ret = fs_inline_convert_locked(fs, fi);
        if (ret)
            return ret;
    } else if (fi->may_inline) {
        /* The kernel's first write into a new file goes inline when it ends
         * within the capacity, whatever i_size a truncate gave it. (Anything
         * that gives the file blocks clears may_inline.) */
        fi->may_inline = false;
        ret = e2_inline_capacity(fs->img, fi->ino, &cap);
        if (ret)
            return ret;
        if (end <= cap && size) {
            /* -EINVAL: the file has data blocks after all (an mmap
             * writeback, say): it stays a block file. */
            ret = e2_inline_begin(fs->img, fi->ino);
            if (ret == -EINVAL)
                return e2_data_write(fs->img, fi->ino, buf, size, off, na, fields);
            if (!ret)
                ret =
                    e2_inline_write(fs->img, fi->ino, buf, size, (uint64_t)off, isize, na, fields);
            if (!ret)
                return (ssize_t)size;
            if (ret != -ENOSPC)
                return ret;
            /* It did not fit after all: back to blocks. */
            ret = e2_inline_convert(fs->img, fi->ino);
            if (ret)
                return ret;
        }
    }
    fi->may_inline = false;
    return e2_data_write(fs->img, fi->ino, buf, size, off, na, fields);
}

/* The bytes of a page of @n bytes at @off that an inline file must keep:
 * past the @clen bytes of content the file reads as zeros, so trailing
 * zeros there change nothing. */
static size_t inline_page_end(const void *buf, size_t n, off_t off, size_t clen)
{
    const char *p = buf;
    size_t keep = clen > (uint64_t)off ? clen - (size_t)off : 0;

    while (n > keep && p[n - 1] == 0)
        n--;
    return n;
}

ssize_t fs_file_mmap_writeback_locked(struct uext4_fs *fs, struct fs_inode *fi,
                                      const struct e2_attr *a, const void *buf, size_t size,
                                      off_t off)
{
    size_t n;
    ssize_t ret;
    int err;

    /* Stores past i_size never reach the file: the page was cut there. */
    if ((uint64_t)off >= a->size)
        return (ssize_t)size;
    n = a->size - (uint64_t)off < size ? (size_t)(a->size - (uint64_t)off) : size;
    if (is_inline(a)) {
        size_t clen, allocated;
        err = inline_content(fs, fi->ino, a, &clen, &allocated);
        if (err)
            return err;
        /* Stored back inline, system.data growing as needed, i_size as it
         * is. Only a file the kernel left inline with i_size beyond its
         * capacity (truncated up, then written) cannot take bytes past the
         * capacity inline: it is converted rather than losing them. The
         * page comes back whole, so what counts is whether it holds
         * anything but the zeros the file reads as past its content. */
        size_t used = inline_page_end(buf, n, off, clen);
        if (fs->opts.inline_mmap == UEXT4_INLINE_MMAP_KEEP && used == 0)
            return (ssize_t)size;
        if (fs->opts.inline_mmap == UEXT4_INLINE_MMAP_KEEP) {
            err = e2_inline_write(fs->img, fi->ino, buf, used, (uint64_t)off, a->size, NULL, 0);
            if (err != -ENOSPC)
                return err ? err : (ssize_t)size;
        }
        err = fs_inline_convert_locked(fs, fi);
        if (err)
            return err;
    }
    fi->may_inline = false; /* the writeback gives the file blocks */
    ret = e2_data_write(fs->img, fi->ino, buf, n, off, NULL, 0);
    /* The bytes past i_size count as written (they never reach the file);
     * a short write (the disk full part way) must say so, or the caller
     * would drop the rest of the pages without an error. */
    if (ret < 0 || (size_t)ret < n)
        return ret;
    return (ssize_t)size;
}

int fs_file_truncate_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                            uint64_t size)
{
    int ret;

    assert_inode_locked(fi);
    if (size > max_file_size(fs, a))
        return -EFBIG;
    if (is_inline(a)) {
        ret = e2_inline_truncate(fs->img, fi->ino, size);
        if (ret != -ENOSPC)
            return ret;
        ret = fs_inline_convert_locked(fs, fi);
        if (ret)
            return ret;
    }
    return e2_data_truncate(fs->img, fi->ino, size);
}
