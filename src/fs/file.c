/* Open files and their data: open, release, read, write, fsync,
 * fallocate, lseek, copy_file_range. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* fsverity_file_open(): the descriptor read and checked at open, so a
 * damaged one fails the open as on Linux (mount lock held for reading). */
static int verity_open(struct uext4_fs *fs, uint32_t ino, const struct e2_attr *a)
{
    struct fs_inode *fi = fs_inode_get(fs, ino);
    int ret;

    if (!fi)
        return -ENOMEM;
    mutex_lock(&fi->lock);
    ret = FS_CHECK(fs, ino, fs_verity_load_locked(fs, fi, a));
    mutex_unlock(&fi->lock);
    fs_inode_put(fs, fi);
    return ret;
}

int uext4_open_file(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int flags)
{
    struct fs_cred fc;
    struct e2_attr a;
    int mask = 0, ret;

    fs_cred_from(fs, cr, &fc);
    switch (flags & O_ACCMODE) {
    case O_RDONLY:
        mask = R_OK;
        break;
    case O_WRONLY:
        mask = W_OK;
        break;
    default:
        mask = R_OK | W_OK;
        break;
    }
    if (flags & O_TRUNC)
        mask |= W_OK;
    if (flags & O_CREAT)
        mask = 0;
    rwlock_rdlock(&fs->mount_lock);
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    if (!ret && S_ISDIR(a.mode) && (mask & W_OK))
        ret = -EISDIR;
    if (!ret)
        ret = fs_permission(fs, &fc, ino, &a, mask);
    /* may_open(): an append-only file is written only through O_APPEND,
     * and never truncated. */
    if (!ret && (a.flags & E2_FL_APPEND) &&
        (((flags & O_ACCMODE) != O_RDONLY && !(flags & O_APPEND)) || (flags & O_TRUNC)))
        ret = -EPERM;
    if (!ret && (mask & W_OK) && S_ISREG(a.mode))
        ret = fs_may_write(fs);
    if (!ret && (mask & W_OK))
        ret = fs_may_write_data(&a);
    if (!ret && (a.flags & E2_FL_VERITY))
        ret = verity_open(fs, ino, &a);
    if (!ret)
        fs_inode_ref_open(fs, ino, +1);
    if (!ret && (flags & O_ACCMODE) != O_RDONLY)
        fs_inode_ref_writer(fs, ino, +1);
    rwlock_unlock(&fs->mount_lock);
    if (!ret && (flags & O_TRUNC) && S_ISREG(a.mode) && a.size) {
        struct stat st = {.st_size = 0};
        ret = uext4_setattr(fs, cr, ino, &st, UEXT4_SET_SIZE | UEXT4_SET_FH, NULL);
        if (ret)
            fs_inode_ref_open(fs, ino, -1);
    }
    return ret;
}

int uext4_release(struct uext4_fs *fs, uint32_t ino)
{
    /* Closing writes the emulated mmap pages back, as FUSE's flush. */
    int ret = uext4_writeback(fs, ino), fret;

    fret = fs_inode_ref_open(fs, ino, -1);
    return ret ? ret : fret;
}

int uext4_release_file(struct uext4_fs *fs, uint32_t ino, int flags)
{
    if ((flags & O_ACCMODE) != O_RDONLY)
        fs_inode_ref_writer(fs, ino, -1);
    return uext4_release(fs, ino);
}

void fs_touch_atime(struct uext4_fs *fs, uint32_t ino, struct e2_attr *a)
{
    struct timespec now;

    if (fs->opts.noatime || (a->flags & E2_FL_NOATIME) || e2_is_read_only(fs->img))
        return;
    if (fs->opts.nodiratime && S_ISDIR(a->mode))
        return;
    fs_now(&now);
    if (!fs->opts.strictatime && timespec_cmp(&a->atime, &a->mtime) > 0 &&
        timespec_cmp(&a->atime, &a->ctime) > 0 && now.tv_sec - a->atime.tv_sec < 24 * 3600)
        return;
    a->atime = now;
    e2_inode_set(fs->img, ino, a, E2_A_ATIME);
}

/* The start of a read: the inode locked and its attributes, for a regular
 * file. On failure nothing is held. */
static int read_begin(struct uext4_fs *fs, uint32_t ino, off_t off, struct fs_inode **fi,
                      struct e2_attr *a)
{
    int ret;

    if (off < 0)
        return -EINVAL;
    *fi = fs_op_begin_read(fs, ino);
    if (!*fi)
        return -ENOMEM;
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, a));
    if (!ret && S_ISDIR(a->mode))
        ret = -EISDIR;
    else if (!ret && !S_ISREG(a->mode))
        ret = -EINVAL;
    if (ret)
        fs_op_end(fs, *fi);
    return ret;
}

ssize_t uext4_read(struct uext4_fs *fs, uint32_t ino, void *buf, size_t size, off_t off)
{
    struct fs_inode *fi;
    struct e2_attr a;
    ssize_t ret = read_begin(fs, ino, off, &fi, &a);

    if (ret)
        return ret;
    ret = fs_file_read_verified_locked(fs, fi, &a, buf, size, off);
    fs_stale_tail_touch(fi, (uint64_t)off, size);
    if (ret > 0)
        pc_overlay(fs->pc, ino, off, buf, (size_t)ret);
    if (ret >= 0)
        fs_touch_atime(fs, ino, &a);
    FS_CHECK(fs, ino, (int)(ret < 0 ? ret : 0));
    fs_op_end(fs, fi);
    return ret;
}

/* Hand the segments mapped under @fi's lock to @sink with that lock and
 * the mount lock dropped, @fi's reply_lock held for reading instead
 * (fs_internal.h): writes, truncations and copies that could change or
 * free those blocks wait for the reply (fs_op_begin drains), and the
 * reader's next read does not. Holding the inode lock across the reply
 * made it wait: the worker that wakes a reader with its reply is mostly
 * preempted by it right there, before it unlocks, and the reader's next
 * read met the lock (a futex wait and two context switches per read).
 * Ends the operation read_begin() began; the pin keeps @fi (and its
 * reply_lock) until the reply is sent, and its last put may free an
 * unlinked inode, as uext4_forget() does, without the mount lock. */
static int read_ref_reply(struct uext4_fs *fs, struct fs_inode *fi, uext4_read_sink sink, void *arg,
                          int fd, const struct uext4_read_seg *segs, unsigned nseg, size_t total)
{
    int ret;

    pthread_rwlock_rdlock(&fi->reply_lock);
    mutex_unlock(&fi->lock);
    rwlock_unlock(&fs->mount_lock);
    e2_data_before_read(fs->img);
    ret = sink(arg, fd, segs, nseg, total);
    pthread_rwlock_unlock(&fi->reply_lock);
    fs_inode_put(fs, fi);
    return ret;
}

int uext4_read_ref(struct uext4_fs *fs, uint32_t ino, size_t size, off_t off, uext4_read_sink sink,
                   void *arg)
{
    struct e2_seg map[UEXT4_READ_REF_SEGS];
    struct uext4_read_seg segs[UEXT4_READ_REF_SEGS];
    struct fs_inode *fi;
    struct e2_attr a;
    unsigned n = 0;
    uint64_t base;
    int fd;
    ssize_t ret = read_begin(fs, ino, off, &fi, &a);

    if (ret)
        return (int)ret;
    /* A verity file's bytes are checked in memory: copied (uext4_read). */
    if (pc_dirty_count(fs->pc, ino) || (a.flags & E2_FL_VERITY))
        ret = -EOPNOTSUPP;
    else
        ret = e2_data_map(fs->img, ino, off, size, map, UEXT4_READ_REF_SEGS, &n);
    if (ret < 0) {
        if (ret != -EOPNOTSUPP)
            FS_CHECK(fs, ino, (int)ret);
        fs_op_end(fs, fi);
        return (int)ret;
    }
    fd = e2_image_fd(fs->img, &base);
    for (unsigned i = 0; i < n; i++) {
        segs[i].pos = map[i].pos == E2_SEG_ZERO ? -1 : (off_t)(base + map[i].pos);
        segs[i].len = (size_t)map[i].len;
    }
    fs_touch_atime(fs, ino, &a);
    fs_stale_tail_touch(fi, (uint64_t)off, size);
    return read_ref_reply(fs, fi, sink, arg, fd, segs, n, (size_t)ret);
}

/* What a write by @fc changes in the attributes @a of the file it writes:
 * the times, and setuid/setgid dropped as file_remove_privs() (with
 * @kill_priv). Returns the E2_A_* fields changed. */
static unsigned write_attrs(struct uext4_fs *fs, const struct fs_cred *fc, struct e2_attr *a,
                            bool kill_priv)
{
    unsigned fields = E2_A_MTIME | E2_A_CTIME;

    fs_now(&a->mtime);
    a->ctime = a->mtime;
    if (kill_priv && fs_remove_privs(fs, fc, a, &a->mode))
        fields |= E2_A_MODE;
    return fields;
}

/* Whether @t lies in the coarse clock's current tick, which began at @now. */
static bool in_tick(const struct timespec *t, const struct timespec *now, int64_t tick_ns)
{
    int64_t d = (t->tv_sec - now->tv_sec) * 1000000000 + (t->tv_nsec - now->tv_nsec);

    return d >= 0 && d < tick_ns;
}

/* Whether a write(2) into @fi (attributes @a, the inode locked) that
 * neither grows the file nor may drop set-id bits may leave the times as they
 * are: a write stored them in the current tick of the coarse clock, and no
 * attributes have been handed out since (fs->attrs_shown), so nobody can
 * have seen them. ext4 does the same (multigrain timestamps since Linux
 * 6.13: the coarse clock unless the ctime was queried since the last
 * change), and so writes no inode for most writes into a file in place.
 * A write that grows the file always stores them: a stat racing it could
 * see the new size with times older than it. */
static bool times_unseen(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a)
{
    struct timespec now;

    if (fi->times_shown != atomic_load_explicit(&fs->attrs_shown, memory_order_relaxed))
        return false;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return in_tick(&a->mtime, &now, fs->tick_ns) && in_tick(&a->ctime, &now, fs->tick_ns);
}

/* write_attrs() for write(2) data into @fi: nothing where times_unseen()
 * allows it. A write that stores the times notes when (@fi->times_shown,
 * once the inode holds them: write_data()) in *@shown. */
static unsigned write2_attrs(struct uext4_fs *fs, const struct fs_cred *fc, struct fs_inode *fi,
                             struct e2_attr *a, bool grows, uint64_t *shown)
{
    bool setid = a->mode & (S_ISUID | S_ISGID); /* which the write may drop */

    *shown = atomic_load_explicit(&fs->attrs_shown, memory_order_relaxed);
    if (!grows && !setid && times_unseen(fs, fi, a))
        return 0;
    return write_attrs(fs, fc, a, true);
}

/* After a write into @ino, whose attributes before it were @a (its mode
 * and owner cannot have changed since: the caller holds the inode lock),
 * store what the write changes in them. One storage call, as the
 * attributes need not be read again. */
static int after_write_with(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                            struct e2_attr a, bool kill_priv)
{
    unsigned fields = write_attrs(fs, fc, &a, kill_priv);

    return e2_inode_set(fs->img, ino, &a, fields);
}

static int after_write(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino, bool kill_priv)
{
    struct e2_attr a;
    int ret = e2_inode_get(fs->img, ino, &a);

    return ret ? ret : after_write_with(fs, fc, ino, a, kill_priv);
}

/* The immutable and append-only rules for a write of @size bytes at @off:
 * an append-only file grows and its bytes stay. Data from the kernel's
 * writeback cache comes back in whole pages, the old bytes of the page
 * at EOF with it: those may come back unchanged. */
static int may_write_flags(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                           const void *buf, size_t size, off_t off, unsigned flags)
{
    size_t n;
    char *old;
    ssize_t got;

    if (a->flags & E2_FL_IMMUTABLE)
        return -EPERM;
    if (!(a->flags & E2_FL_APPEND) || (uint64_t)off >= a->size)
        return 0;
    if (!(flags & UEXT4_WRITE_CACHED))
        return -EPERM;
    n = a->size - (uint64_t)off < size ? (size_t)(a->size - (uint64_t)off) : size;
    old = malloc(n);
    if (!old)
        return -ENOMEM;
    got = fs_file_read_locked(fs, fi, a, old, n, off);
    got = got < 0 ? got : (got == (ssize_t)n && !memcmp(old, buf, n)) ? 0 : -EPERM;
    free(old);
    return (int)got;
}

/* A caller of uext4_write_pipe_early() and whether it was answered. */
struct early {
    struct e2_accept e2; /* what e2_data_write_pipe() calls: early_told() */
    uext4_accept_fn fn;
    void *arg;
    bool told;
    size_t n; /* the count it was told */
};

static void early_told(void *arg, size_t n)
{
    struct early *e = arg;

    e->told = true;
    e->n = n;
    e->fn(e->arg, n);
}

/* Where a write's bytes are: in memory, or waiting in a pipe
 * (uext4_write_pipe()), whose caller may take an early answer. */
struct wsrc {
    const void *buf; /* NULL: in @pipe */
    int pipe;
    struct early *early; /* NULL: answered by the return alone */
};

/* The immutable and append-only rules for @src's bytes. An append-only
 * file rewritten below its end has to compare them with what it holds,
 * which bytes in a pipe cannot be: -EAGAIN (uext4_write_pipe()). */
static int may_write_src(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                         const struct wsrc *src, size_t size, off_t off, unsigned flags)
{
    if (!src->buf && !(a->flags & E2_FL_IMMUTABLE) && (a->flags & E2_FL_APPEND))
        return -EAGAIN;
    return may_write_flags(fs, fi, a, src->buf, size, off, flags);
}

/* The data step of write_once(), with what the write by @fc changes in
 * the attributes @a: after a writeback of mmap'd pages, the times; for
 * write(2), the times and the set-id drop, stored with the data in one
 * storage step. With a writeback cache (UEXT4_WRITE_CACHED) the kernel
 * keeps the times and sends them with a SETATTR. */
static ssize_t write_data(struct uext4_fs *fs, const struct fs_cred *fc, struct fs_inode *fi,
                          const struct e2_attr *a, const struct wsrc *src, size_t size, off_t off,
                          unsigned flags)
{
    uint32_t ino = fi->ino;
    struct e2_attr na = *a;
    unsigned fields = 0;
    uint64_t shown = 0;
    ssize_t ret;
    int err = 0;

    if (flags & UEXT4_WRITE_MMAP) {
        void *scrubbed = fs_stale_tail_scrub(fi, src->buf, size, (uint64_t)off, &err);
        ret = err ? err
                  : fs_file_mmap_writeback_locked(fs, fi, a, scrubbed ? scrubbed : src->buf, size,
                                                  off);
        free(scrubbed);
        /* Stores past EOF count as written without reaching the file:
         * the times go on their own. */
        if (ret > 0 && !(flags & UEXT4_WRITE_CACHED)) {
            err = after_write_with(fs, fc, ino, *a, false);
            if (err)
                ret = err;
        }
        return ret;
    }
    if (!(flags & UEXT4_WRITE_CACHED))
        fields = write2_attrs(fs, fc, fi, &na, (uint64_t)off + size > a->size, &shown);
    fs_stale_tail_touch(fi, (uint64_t)off, size);
    if (src->buf)
        ret = fs_file_write_locked(fs, fi, a, src->buf, size, off, &na, fields);
    else
        ret = fs_file_write_pipe_locked(fs, fi, a, src->pipe, size, off, &na, fields,
                                        src->early ? &src->early->e2 : NULL);
    if (ret > 0 && (fields & E2_A_MTIME))
        fi->times_shown = shown;
    if (ret > 0) {
        /* Keep emulated mmap pages coherent with write(2) (a pipe's bytes
         * come here only when there are none: fs_file_write_pipe_locked). */
        if ((uint64_t)off + (uint64_t)ret > a->size)
            pc_resize(fs->pc, ino, a->size, (uint64_t)off + (uint64_t)ret);
        if (src->buf)
            pc_update(fs->pc, ino, off, src->buf, (size_t)ret);
    }
    return ret;
}

/* A write answered early failed after all (a failing or full host disk):
 * nobody else will hear of it, so it waits for the file's next fsync and
 * the next sync, as ext4's writeback errors do. */
static void latch_write_error_locked(struct uext4_fs *fs, struct fs_inode *fi, int err, size_t size,
                                     off_t off)
{
    assert_inode_locked(fi);
    log_err("inode %u: a write of %zu bytes at %lld, answered as done, did not reach the "
            "image: %s (the file's next fsync reports it)",
            fi->ino, size, (long long)off, strerror(-err));
    if (!fi->write_err)
        fi->write_err = err;
    mutex_lock(&fs->itable_lock);
    if (!fs->write_err)
        fs->write_err = err;
    mutex_unlock(&fs->itable_lock);
}

static ssize_t write_once(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                          const struct wsrc *src, size_t size, off_t off, unsigned flags,
                          bool *sync)
{
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
    struct wsrc s;
    ssize_t ret;
    int err;

    if (off < 0)
        return -EINVAL;
    fs_cred_from(fs, cr, &fc);
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    err = fs_may_write(fs);
    if (!err)
        err = e2_inode_get(fs->img, ino, &a);
    if (!err && !S_ISREG(a.mode))
        err = S_ISDIR(a.mode) ? -EISDIR : -EINVAL;
    if (!err)
        err = fs_may_write_data(&a);
    if (!err)
        err = may_write_src(fs, fi, &a, src, size, off, flags);
    /* Hard block limits, which CAP_SYS_RESOURCE passes: a short write up
     * to the limit, as ext4 reserves block by block. (mmap writeback
     * writes what the pages already hold.) */
    if (!err && !fc.root && !(flags & UEXT4_WRITE_MMAP)) {
        uint64_t n = size;

        err = e2_quota_may_write(fs->img, ino, (uint64_t)off, &n);
        size = (size_t)n;
    }
    if (err) {
        ret = err;
        goto out_end;
    }
    *sync = a.flags & E2_FL_SYNC;
    if (size == 0) {
        ret = 0;
        goto out_end;
    }
    /* chattr +S: durable before it is answered. */
    s = *src;
    if (*sync)
        s.early = NULL;
    ret = write_data(fs, &fc, fi, &a, &s, size, off, flags);
    if (s.early && s.early->told && ret != (ssize_t)s.early->n)
        latch_write_error_locked(fs, fi, ret < 0 ? (int)ret : -EIO, s.early->n, off);
out_end:
    FS_CHECK(fs, ino, (int)(ret < 0 ? ret : 0));
    fs_op_end(fs, fi);
    return ret;
}

/* Blocks freed since the last commit stay reserved until it is durable
 * (e2/journal.c): as ext4 does, commit and try once more before reporting
 * that the file system is full. */
bool fs_should_retry_enospc(struct uext4_fs *fs, long ret)
{
    return ret == -ENOSPC && e2_has_reserved_blocks(fs->img) && fs_commit_now(fs) == 0;
}

static ssize_t write_retry(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                           const void *buf, size_t size, off_t off, unsigned flags, bool *sync)
{
    struct wsrc src = {.buf = buf}, rest = {.buf = (const char *)buf};
    ssize_t ret = write_once(fs, cr, ino, &src, size, off, flags, sync), more;

    /* A short count is a write that ran out of space part way. */
    if (ret >= 0 && (size_t)ret < size) {
        if (!fs_should_retry_enospc(fs, -ENOSPC))
            return ret;
        rest.buf = (const char *)buf + ret;
        more = write_once(fs, cr, ino, &rest, size - (size_t)ret, off + ret, flags, sync);
        return more > 0 ? ret + more : ret;
    }
    if (fs_should_retry_enospc(fs, ret))
        ret = write_once(fs, cr, ino, &src, size, off, flags, sync);
    return ret;
}

ssize_t uext4_write(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, const void *buf,
                    size_t size, off_t off, unsigned flags)
{
    bool sync = false;
    ssize_t ret = write_retry(fs, cr, ino, buf, size, off, flags, &sync);
    int err;

    /* chattr +S: the write is durable when it returns. */
    if (ret > 0 && sync) {
        err = fs_commit_now(fs);
        if (err)
            ret = err;
    }
    return ret;
}

static ssize_t write_pipe(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                          int pipe_fd, size_t size, off_t off, unsigned flags, struct early *early)
{
    struct wsrc src = {.buf = NULL, .pipe = pipe_fd, .early = early};
    bool sync = false;
    ssize_t ret;
    int err;

    if (flags & ~UEXT4_WRITE_CACHED)
        return -EINVAL;
    /* No second try after ENOSPC as write_retry(): the blocks this path
     * allocates do not run short (e2_data_write_pipe() says -EAGAIN
     * instead, and uext4_write() retries), and bytes taken from the pipe
     * cannot be taken again. */
    ret = write_once(fs, cr, ino, &src, size, off, flags, &sync);
    if (ret > 0 && sync) {
        err = fs_commit_now(fs);
        if (err)
            ret = err;
    }
    return ret;
}

ssize_t uext4_write_pipe(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                         int pipe_fd, size_t size, off_t off, unsigned flags)
{
    return write_pipe(fs, cr, ino, pipe_fd, size, off, flags, NULL);
}

ssize_t uext4_write_pipe_early(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                               int pipe_fd, size_t size, off_t off, unsigned flags,
                               uext4_accept_fn accept, void *arg, bool *told)
{
    struct early e = {.e2 = {.fn = early_told, .arg = &e}, .fn = accept, .arg = arg};
    ssize_t ret = write_pipe(fs, cr, ino, pipe_fd, size, off, flags, &e);

    *told = e.told;
    return ret;
}

/* The error of a write answered early (latch_write_error_locked()) that
 * no fsync of @ino has reported yet; taken. */
static int take_write_error(struct uext4_fs *fs, uint32_t ino)
{
    struct fs_inode *fi = fs_op_begin_read(fs, ino);
    int err;

    if (!fi)
        return -ENOMEM;
    err = fi->write_err;
    fi->write_err = 0;
    fs_op_end(fs, fi);
    return err;
}

int uext4_fsync(struct uext4_fs *fs, uint32_t ino, bool datasync)
{
    /* Everything but the emulated mmap pages is written through to the
     * image already; write those back (committing and retrying once if
     * they found the disk full), then make it all durable. */
    int ret = uext4_writeback(fs, ino), fret, wret;

    if (!ret)
        ret = fs_commit_now(fs);
    /* Taken whatever happened, so that each is reported once. */
    fret = fs_take_free_error(fs);
    wret = take_write_error(fs, ino);
    return ret ? ret : wret ? wret : fret;
}

/* Every mode changes the file, so every mode drops setuid/setgid as a
 * write does (the kernel's file_modified()). With HANDLE_KILLPRIV_V2 the
 * kernel leaves that to us and FALLOCATE carries no kill flag: the caller's
 * credentials decide, as for a write by that caller. */
static int fallocate_locked(struct uext4_fs *fs, const struct fs_cred *fc, struct fs_inode *fi,
                            const struct e2_attr *a0, int mode, uint64_t off, uint64_t len)
{
    bool keep = mode & FALLOC_FL_KEEP_SIZE;
    uint64_t end = off + len;
    struct e2_attr a = *a0;
    unsigned fields = E2_A_CTIME;
    int ret = 0;

    if (a.flags & E2_FL_INLINE_DATA) {
        /* fallocate converts an inline file, as in the kernel. */
        ret = fs_inline_convert_locked(fs, fi);
        if (ret)
            return ret;
    }
    fi->may_inline = false;
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
        ret = (mode & FALLOC_FL_COLLAPSE_RANGE) ? e2_data_collapse(fs->img, fi->ino, off, len)
                                                : e2_data_insert(fs->img, fi->ino, off, len);
        if (!ret)
            ret = e2_inode_get(fs->img, fi->ino, &a);
        if (ret)
            return ret;
        fs_now(&a.ctime);
        a.mtime = a.ctime;
        return e2_inode_set(fs->img, fi->ino, &a, E2_A_CTIME | E2_A_MTIME);
    }
    /* Like ext4: holes can be punched in any file, but allocation (and so
     * ZERO_RANGE, which leaves unwritten extents) needs an extent tree. */
    if (!(mode & FALLOC_FL_PUNCH_HOLE) && !(a.flags & E2_FL_EXTENTS) &&
        !(a.flags & E2_FL_INLINE_DATA))
        return -EOPNOTSUPP;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        /* As ext4_punch_hole(): nothing at or past EOF, and a hole that
         * reaches past EOF ends at the end of EOF's page, so the block that
         * holds EOF is freed rather than zeroed, while blocks fallocated
         * beyond that page stay (measured on Linux 6.18: t8004). */
        uint64_t eof_page = (a.size + PC_PAGE_SIZE - 1) / PC_PAGE_SIZE * PC_PAGE_SIZE;

        if (off < a.size)
            ret = e2_data_punch(fs->img, fi->ino, off, (end <= a.size ? end : eof_page) - off);
        fields |= E2_A_MTIME;
    } else if (mode & FALLOC_FL_ZERO_RANGE) {
        ret = e2_data_punch(fs->img, fi->ino, off, len);
        if (!ret)
            ret = e2_data_allocate(fs->img, fi->ino, off, len);
        fields |= E2_A_MTIME;
    } else {
        ret = e2_data_allocate(fs->img, fi->ino, off, len);
    }
    if (ret)
        return ret;
    ret = e2_inode_get(fs->img, fi->ino, &a);
    if (ret)
        return ret;
    if (!keep && end > a.size && !(mode & FALLOC_FL_PUNCH_HOLE)) {
        a.size = end;
        fields |= E2_A_SIZE | E2_A_MTIME;
    }
    if (fs_remove_privs(fs, fc, &a, &a.mode))
        fields |= E2_A_MODE;
    fs_now(&a.ctime);
    a.mtime = a.ctime;
    return e2_inode_set(fs->img, fi->ino, &a, fields);
}

/* fallocate's blocks under the hard limits: all of them, or EDQUOT. */
static int quota_may_allocate(struct uext4_fs *fs, uint32_t ino, uint64_t off, uint64_t len)
{
    uint64_t n = len;
    int ret = e2_quota_may_write(fs->img, ino, off, &n);

    return ret ? ret : n < len ? -EDQUOT : 0;
}

static int fallocate_once(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int mode,
                          off_t off, off_t len)
{
    const int supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE |
                          FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;
    const int shifts = FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    if (mode & ~supported)
        return -EOPNOTSUPP;
    if ((mode & FALLOC_FL_PUNCH_HOLE) &&
        ((mode & FALLOC_FL_ZERO_RANGE) || !(mode & FALLOC_FL_KEEP_SIZE)))
        return -EOPNOTSUPP;
    /* As the kernel's vfs_fallocate: a shift goes alone. (The Linux FUSE
     * client refuses both modes itself: they reach uext4 only through the
     * library.) */
    if ((mode & shifts) && (mode & ~FALLOC_FL_COLLAPSE_RANGE) && (mode & ~FALLOC_FL_INSERT_RANGE))
        return -EINVAL;
    if (off < 0 || len <= 0)
        return -EINVAL;
    fs_cred_from(fs, cr, &fc);
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    ret = fs_may_write(fs);
    if (!ret)
        ret = e2_inode_get(fs->img, ino, &a);
    if (!ret && !S_ISREG(a.mode))
        ret = S_ISDIR(a.mode) ? -EISDIR : -ENODEV;
    if (!ret)
        ret = fs_may_write_data(&a);
    /* vfs_fallocate(): nothing on an immutable file; an append-only one
     * may only gain blocks. */
    if (!ret && ((a.flags & E2_FL_IMMUTABLE) ||
                 ((a.flags & E2_FL_APPEND) && (mode & ~FALLOC_FL_KEEP_SIZE))))
        ret = -EPERM;
    /* As the kernel: write the cached pages back, then change the blocks. */
    if (!ret)
        ret = fs_writeback_locked(fs, fi);
    if (!ret && !fc.root &&
        !(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)))
        ret = quota_may_allocate(fs, ino, (uint64_t)off, (uint64_t)len);
    if (!ret)
        ret = e2_inode_get(fs->img, ino, &a);
    if (!ret)
        ret = fallocate_locked(fs, &fc, fi, &a, mode, (uint64_t)off, (uint64_t)len);
    ret = FS_CHECK(fs, ino, ret);
    fs_op_end(fs, fi);
    return ret;
}

int uext4_fallocate(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int mode,
                    off_t off, off_t len)
{
    int ret = fallocate_once(fs, cr, ino, mode, off, len);

    if (fs_should_retry_enospc(fs, ret))
        ret = fallocate_once(fs, cr, ino, mode, off, len);
    return ret;
}

off_t uext4_lseek(struct uext4_fs *fs, uint32_t ino, off_t off, int whence)
{
    struct fs_inode *fi;
    struct e2_attr a;
    uint64_t res = 0;
    int ret;

    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    if (off < 0)
        return -ENXIO;
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    ret = e2_inode_get(fs->img, ino, &a);
    if (!ret && (uint64_t)off >= a.size)
        ret = -ENXIO;
    if (!ret && (a.flags & E2_FL_INLINE_DATA))
        res = whence == SEEK_DATA ? (uint64_t)off : a.size;
    else if (!ret)
        ret = e2_data_seek(fs->img, ino, (uint64_t)off, a.size, whence == SEEK_DATA, &res);
    ret = FS_CHECK(fs, ino, ret);
    fs_op_end(fs, fi);
    return ret ? ret : (off_t)res;
}

/* Both inodes of a copy (the same one once), the lower inode number first
 * as the second subclass. */
static void lock_pair(struct fs_inode *in, struct fs_inode *out)
{
    if (out == in) {
        mutex_lock(&in->lock);
    } else {
        mutex_lock_nested(in->ino < out->ino ? &in->lock : &out->lock, 0);
        mutex_lock_nested(in->ino < out->ino ? &out->lock : &in->lock, 1);
    }
    /* @out's blocks change: replies still reading them go first. */
    fs_inode_drain_replies_locked(out);
}

static void unlock_pair(struct fs_inode *in, struct fs_inode *out)
{
    if (out != in)
        mutex_unlock(&out->lock);
    mutex_unlock(&in->lock);
}

/* One chunk of a copy, both inodes locked: read both inodes again (the last
 * chunk changed @out, which may be @in), refuse what write(2) would, read
 * up to @want bytes at @off_in and write them at @off_out, cut to the hard
 * block limit for callers other than root. *@got: the bytes read, and
 * meant to be written (0 at the end of @in). Returns the bytes written or
 * -errno. */
static ssize_t copy_chunk_locked(struct uext4_fs *fs, const struct fs_cred *fc, struct fs_inode *in,
                                 struct fs_inode *out, char *buf, size_t want, off_t off_in,
                                 off_t off_out, ssize_t *got)
{
    struct e2_attr ai, ao;
    int ret;

    *got = 0;
    ret = e2_inode_get(fs->img, in->ino, &ai);
    if (!ret)
        ret = e2_inode_get(fs->img, out->ino, &ao);
    if (!ret && (!S_ISREG(ai.mode) || !S_ISREG(ao.mode)))
        ret = -EINVAL;
    if (!ret)
        ret = fs_may_write_data(&ao);
    if (!ret && (ao.flags & (E2_FL_IMMUTABLE | E2_FL_APPEND)))
        ret = -EPERM;
    if (ret)
        return ret;
    *got = fs_file_read_verified_locked(fs, in, &ai, buf, want, off_in);
    if (*got <= 0)
        return *got;
    /* The hard block limits, as write(2). */
    if (!fc->root) {
        uint64_t n = (uint64_t)*got;

        ret = e2_quota_may_write(fs->img, out->ino, (uint64_t)off_out, &n);
        if (ret)
            return ret;
        *got = (ssize_t)n;
    }
    /* The times and the set-id drop once, after the last chunk. */
    return fs_file_write_locked(fs, out, &ao, buf, (size_t)*got, off_out, NULL, 0);
}

ssize_t uext4_copy_file_range(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino_in,
                              off_t off_in, uint32_t ino_out, off_t off_out, size_t len)
{
    const size_t chunk = 1u << 20;
    struct fs_inode *in, *out;
    struct fs_cred fc;
    size_t done = 0;
    char *buf;
    int ret = 0;

    if (off_in < 0 || off_out < 0)
        return -EINVAL;
    buf = malloc(chunk);
    if (!buf)
        return -ENOMEM;
    fs_cred_from(fs, cr, &fc);
    /* Two inodes at once: the mount lock for writing instead of nesting two
     * inode locks. */
    rwlock_wrlock(&fs->mount_lock);
    in = fs_inode_get(fs, ino_in);
    out = fs_inode_get(fs, ino_out);
    if (!in || !out) {
        ret = -ENOMEM;
        goto out_put;
    }
    lock_pair(in, out);
    ret = fs_may_write(fs);
    if (!ret)
        ret = fs_writeback_locked(fs, in);
    if (!ret && out != in)
        ret = fs_writeback_locked(fs, out);
    while (!ret && done < len) {
        size_t want = len - done < chunk ? len - done : chunk;
        ssize_t got, put;

        put = copy_chunk_locked(fs, &fc, in, out, buf, want, off_in + (off_t)done,
                                off_out + (off_t)done, &got);
        if (put < 0) {
            ret = (int)put;
            break;
        }
        done += (size_t)put;
        if (got == 0 || put < got)
            break;
    }
    if (done)
        after_write(fs, &fc, ino_out, true);
    unlock_pair(in, out);
out_put:
    fs_inode_put(fs, out);
    fs_inode_put(fs, in);
    rwlock_unlock(&fs->mount_lock);
    free(buf);
    if (done)
        return (ssize_t)done;
    return FS_CHECK(fs, ino_in, ret);
}
