/* Library-mode mmap emulation: the fs side of src/pcache. The cache reaches
 * storage only through these callbacks, which run with the inode's lock
 * held by the operation that called into the cache. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Default budget of dirty pages (uext4_options.cache_bytes). */
#define PC_BUDGET (64u << 20)

/* The pcache callbacks run with the inode locked by the operation that
 * called into the cache; they pin the in-memory inode for the fs calls. */
static ssize_t pc_read_cb(void *ctx, uint32_t ino, void *buf, size_t len, off_t off)
{
    struct uext4_fs *fs = ctx;
    struct fs_inode *fi = fs_inode_get(fs, ino);
    struct e2_attr a;
    ssize_t got;

    if (!fi)
        return -ENOMEM;
    assert_inode_locked(fi);
    got = e2_inode_get(fs->img, ino, &a);
    if (!got)
        got = fs_file_read_verified_locked(fs, fi, &a, buf, len, off);
    fs_inode_put(fs, fi);
    if (got < 0)
        return got;
    /* A page past EOF reads as zeros. */
    memset((char *)buf + got, 0, len - (size_t)got);
    return (ssize_t)len;
}

static ssize_t pc_writeback_cb(void *ctx, uint32_t ino, const void *buf, size_t len, off_t off)
{
    struct uext4_fs *fs = ctx;
    struct fs_inode *fi = fs_inode_get(fs, ino);
    struct e2_attr a;
    ssize_t ret;

    if (!fi)
        return -ENOMEM;
    assert_inode_locked(fi);
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret)
        ret = fs_file_mmap_writeback_locked(fs, fi, &a, buf, len, off);
    /* Part of the page written (the disk filled up): the page stays dirty
     * and is written again whole later. */
    if (ret >= 0 && (size_t)ret < len)
        ret = -ENOSPC;
    fs_inode_put(fs, fi);
    return ret;
}

static const struct pc_ops fs_pc_ops = {
    .read = pc_read_cb,
    .writeback = pc_writeback_cb,
};

int fs_pcache_create(struct uext4_fs *fs)
{
    return pc_create(&fs_pc_ops, fs, fs->opts.cache_bytes ? fs->opts.cache_bytes : PC_BUDGET,
                     &fs->pc);
}

int uext4_mmap_store(struct uext4_fs *fs, uint32_t ino, off_t off, const void *buf, size_t len)
{
    struct fs_inode *fi = fs_op_begin(fs, ino);
    struct e2_attr a;
    int ret;

    if (!fi)
        return -ENOMEM;
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret && !S_ISREG(a.mode))
        ret = -ENODEV;
    /* No writable shared mapping of an immutable or append-only file. */
    if (!ret && (a.flags & (E2_FL_IMMUTABLE | E2_FL_APPEND)))
        ret = -EPERM;
    if (!ret)
        ret = fs_may_write(fs);
    if (!ret)
        ret = fs_may_write_data(&a);
    if (!ret)
        ret = pc_store(fs->pc, ino, a.size, off, buf, len);
    if (!ret) {
        /* page_mkwrite updates the times when the page is first written. */
        fs_now(&a.mtime);
        a.ctime = a.mtime;
        ret = e2_inode_set(fs->img, ino, &a, E2_A_MTIME | E2_A_CTIME);
    }
    ret = FS_CHECK(fs, ino, ret);
    fs_op_end(fs, fi);
    return ret;
}

void fs_stale_tail_set(struct fs_inode *fi, uint64_t old, uint64_t new)
{
    uint64_t page_end = (old + PC_PAGE_SIZE - 1) / PC_PAGE_SIZE * PC_PAGE_SIZE;

    assert_inode_locked(fi);
    fi->stale_lo = fi->stale_hi = 0;
    if (new > old && page_end > old) {
        fi->stale_lo = old;
        fi->stale_hi = new < page_end ? new : page_end;
    }
}

void fs_stale_tail_touch(struct fs_inode *fi, uint64_t off, uint64_t len)
{
    assert_inode_locked(fi);
    if (fi->stale_hi > fi->stale_lo && off < fi->stale_hi && off + len > fi->stale_lo)
        fi->stale_lo = fi->stale_hi = 0;
}

void *fs_stale_tail_scrub(struct fs_inode *fi, const void *buf, size_t size, uint64_t off, int *err)
{
    uint64_t lo = fi->stale_lo > off ? fi->stale_lo : off;
    uint64_t hi = fi->stale_hi < off + size ? fi->stale_hi : off + size;
    char *copy;

    assert_inode_locked(fi);
    *err = 0;
    if (lo >= hi)
        return NULL;
    copy = malloc(size);
    if (!copy) {
        *err = -ENOMEM;
        return NULL;
    }
    memcpy(copy, buf, size);
    memset(copy + (lo - off), 0, (size_t)(hi - lo));
    fi->stale_lo = fi->stale_hi = 0;
    return copy;
}

/* Called with the inode locked: write back, and report a latched error. */
int fs_writeback_locked(struct uext4_fs *fs, struct fs_inode *fi)
{
    int ret;

    assert_inode_locked(fi);
    pc_writeback(fs->pc, fi->ino);
    ret = pc_take_error(fs->pc, fi->ino);
    return FS_CHECK(fs, fi->ino, ret);
}

static int writeback_once(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi = fs_op_begin(fs, ino);
    int ret;

    if (!fi)
        return -ENOMEM;
    ret = fs_writeback_locked(fs, fi);
    fs_op_end(fs, fi);
    return ret;
}

int uext4_writeback(struct uext4_fs *fs, uint32_t ino)
{
    int ret = writeback_once(fs, ino);

    /* A page that needs a block may find only blocks freed in the running
     * transaction: as uext4_write, commit (which needs the locks dropped)
     * and write the still-dirty pages once more. */
    if (fs_should_retry_enospc(fs, ret))
        ret = writeback_once(fs, ino);
    return ret;
}

unsigned uext4_dirty_pages(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi = fs_op_begin(fs, ino);
    unsigned n;

    if (!fi)
        return 0;
    n = pc_dirty_count(fs->pc, ino);
    fs_op_end(fs, fi);
    return n;
}

int fs_writeback_all(struct uext4_fs *fs)
{
    uint32_t inos[64];
    unsigned n;
    int first = 0;

    /* A failed page stays dirty, so stop at the first round that fails
     * rather than retrying the same pages forever. */
    while ((n = pc_dirty_inodes(fs->pc, inos, 64)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            int ret = uext4_writeback(fs, inos[i]);
            if (ret && !first)
                first = ret;
        }
        if (first)
            break;
    }
    return first;
}
