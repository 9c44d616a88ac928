/* uext4's I/O manager: the image file under libext2fs, with a block cache
 * that also holds the running transaction (state diagram in iomgr.h). */
#include "e2/iomgr.h"
#include "e2/fault.h"
#include "e2/imgfile.h"
#include "e2/overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define IOM_MAGIC 0x75653462 /* our io_channel private data */
#define FILL_MAX  8          /* reads of up to this many blocks are cached */

struct cblock {
    uint64_t blk;
    struct cblock *hnext;
    struct cblock *prev, *next; /* the LRU list (clean) or the dirty list */
    bool dirty;
    /* What these bytes were last found or written to be, by the caller
     * of e2_iom_set_checked() (kind 0: nothing). Cleared by every change
     * of the bytes through the channel. */
    struct e2_iom_mark checked;
    unsigned char data[];
};

struct blist {
    struct cblock head; /* sentinel: head.next is the most recent */
};

struct iom {
    int magic;
    int fd;
    /* The file system's window in the image file (E2_IOM_WINDOW_OPT):
     * block 0 is at byte @base, and nothing at or past byte @limit of the
     * file system (0: no end) is read or written. */
    uint64_t base, limit;
    unsigned bs; /* 0 until attached: nothing is cached */
    bool journaled;
    bool rw;      /* opened for writing */
    bool holding; /* e2_iom_hold(): metadata writes wait in the cache */
    struct cblock **hash;
    size_t nbuckets, count;
    struct blist lru, dirty;
    size_t nclean, ndirty, clean_max;
    struct e2_fault *fault;
    /* An external journal's file (e2_iom_set_journal_file), or -1: the
     * caller's descriptor, open while the channel is; @jdirty: written
     * since its last fdatasync. */
    int jfd;
    bool jdirty;
    /* A journal replayed in memory, laid over every read (read-only
     * channels only; owned by the caller, outlives the channel). */
    const struct e2_overlay *overlay;
    /* The first failed write or sync of metadata or the journal: from then
     * on the image on disk is not what the cache says it is. Written with
     * the disk lock held, read without it (e2_image_error). */
    _Atomic errcode_t failed;
};

static struct iom *iom_of(io_channel io)
{
    struct iom *b = io->private_data;

    return b && b->magic == IOM_MAGIC ? b : NULL;
}

/* ---- lists and hash ---- */

static void list_init(struct blist *l)
{
    l->head.next = l->head.prev = &l->head;
}

static void list_del(struct cblock *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
}

static void list_push(struct blist *l, struct cblock *c)
{
    c->next = l->head.next;
    c->prev = &l->head;
    l->head.next->prev = c;
    l->head.next = c;
}

static size_t hash_slot(uint64_t blk, size_t nbuckets)
{
    return (size_t)((blk * 0x9E3779B97F4A7C15ull) >> 20) & (nbuckets - 1);
}

static size_t bucket(const struct iom *b, uint64_t blk)
{
    return hash_slot(blk, b->nbuckets);
}

static struct cblock *lookup(struct iom *b, uint64_t blk)
{
    struct cblock *c;

    if (!b->count)
        return NULL;
    for (c = b->hash[bucket(b, blk)]; c; c = c->hnext)
        if (c->blk == blk)
            return c;
    return NULL;
}

static void grow(struct iom *b)
{
    size_t n = b->nbuckets * 2;
    struct cblock **h = calloc(n, sizeof(*h));

    if (!h)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < b->nbuckets; i++) {
        struct cblock *c, *next;
        for (c = b->hash[i]; c; c = next) {
            size_t k = hash_slot(c->blk, n);
            next = c->hnext;
            c->hnext = h[k];
            h[k] = c;
        }
    }
    free(b->hash);
    b->hash = h;
    b->nbuckets = n;
}

static void unhash(struct iom *b, struct cblock *c)
{
    struct cblock **p = &b->hash[bucket(b, c->blk)];

    while (*p != c)
        p = &(*p)->hnext;
    *p = c->hnext;
    b->count--;
}

static void drop(struct iom *b, struct cblock *c)
{
    unhash(b, c);
    list_del(c);
    if (c->dirty)
        b->ndirty--;
    else
        b->nclean--;
    free(c);
}

static void evict(struct iom *b)
{
    while (b->nclean > b->clean_max && b->lru.head.prev != &b->lru.head)
        drop(b, b->lru.head.prev);
}

/* A new clean block (contents filled by the caller), or NULL. */
static struct cblock *insert(struct iom *b, uint64_t blk)
{
    struct cblock *c = malloc(sizeof(*c) + b->bs);
    size_t k;

    if (!c)
        return NULL;
    if (b->count >= b->nbuckets)
        grow(b);
    c->blk = blk;
    c->dirty = false;
    c->checked.kind = 0;
    k = bucket(b, blk);
    c->hnext = b->hash[k];
    b->hash[k] = c;
    b->count++;
    list_push(&b->lru, c);
    b->nclean++;
    return c;
}

static void make_dirty(struct iom *b, struct cblock *c)
{
    if (c->dirty)
        return;
    list_del(c);
    b->nclean--;
    c->dirty = true;
    list_push(&b->dirty, c);
    b->ndirty++;
}

static void make_clean(struct iom *b, struct cblock *c)
{
    if (!c->dirty)
        return;
    list_del(c);
    b->ndirty--;
    c->dirty = false;
    list_push(&b->lru, c);
    b->nclean++;
}

/* ---- raw I/O: every durability step passes here ---- */

/* How many of @len bytes at @off of the file system lie in the window.
 * Without a sizelimit the window ends at the largest file offset
 * (iom_set_option() keeps base + limit within it): @off comes from a
 * block number an image may hold, and base + off must not wrap round to
 * the bytes before the window. */
static size_t in_window(const struct iom *b, uint64_t off, size_t len)
{
    uint64_t end = b->limit ? b->limit : (uint64_t)INT64_MAX - b->base;

    if (off >= end)
        return 0;
    return end - off < len ? (size_t)(end - off) : len;
}

static errcode_t file_read(struct iom *b, void *buf, size_t len, uint64_t off)
{
    size_t avail = in_window(b, off, len), left = avail;
    char *p = buf;

    /* Past the window's end: zeros, as past the end of the file. */
    memset(p + avail, 0, len - avail);
    while (left) {
        ssize_t n = pread(b->fd, p, left, (off_t)(b->base + off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0) {
            /* Past the end of the image file: zeros, as unix_io gives. */
            memset(p, 0, left);
            return EXT2_ET_SHORT_READ;
        }
        p += n;
        off += (uint64_t)n;
        left -= (size_t)n;
    }
    return avail < len ? EXT2_ET_SHORT_READ : 0;
}

/* What the image reads as: the file, under the overlay if there is one. */
static errcode_t raw_read(struct iom *b, void *buf, size_t len, uint64_t off)
{
    errcode_t err = file_read(b, buf, len, off);

    if (b->overlay && (!err || err == EXT2_ET_SHORT_READ))
        e2_overlay_apply(b->overlay, off, len, buf);
    return err;
}

/* Before @len bytes are written at @off of the file system, by pwrite or
 * splice: the file system's own checks keep its writes inside it, so one
 * that would leave the window is refused whole (a loop device: EIO); then
 * the fault hook, at the bytes' place in the image file. */
static errcode_t may_write(struct iom *b, uint64_t off, size_t len)
{
    if (in_window(b, off, len) < len)
        return EIO;
    return b->fault ? e2_fault_before_write(b->fault, b->fd, len, b->base + off) : 0;
}

/* Every error of the file reaches the caller; a short write goes on until
 * it completes or fails (ENOSPC, EIO, EDQUOT: the host's answer). */
static errcode_t pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;

    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return EXT2_ET_SHORT_WRITE;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static errcode_t raw_write(struct iom *b, const void *buf, size_t len, uint64_t off)
{
    errcode_t err;

    /* Writing under an overlay would be hidden by it: never allowed. */
    if (b->overlay)
        return EXT2_ET_RO_FILSYS;
    err = may_write(b, off, len);
    if (err)
        return err;
    return pwrite_all(b->fd, buf, len, b->base + off);
}

/* Latch the first failed metadata or journal write: see iomgr.h. */
static errcode_t latch(struct iom *b, errcode_t err)
{
    errcode_t none = 0;

    if (err)
        atomic_compare_exchange_strong(&b->failed, &none, err);
    return err;
}

static errcode_t sync_fd(struct iom *b, int fd)
{
    int err = b->fault ? e2_fault_before_sync(b->fault, fd) : 0;

    /* A failed fdatasync may have dropped any write since the last one,
     * data or metadata, and a second call would not say so: latched. */
    if (err)
        return latch(b, err);
    if (fdatasync(fd))
        return latch(b, errno);
    if (b->fault)
        e2_fault_synced(b->fault, fd);
    return 0;
}

static errcode_t sync_journal_file(struct iom *b)
{
    errcode_t err;

    if (!b->jdirty)
        return 0;
    err = sync_fd(b, b->jfd);
    if (!err)
        b->jdirty = false;
    return err;
}

/* Both files, the image first: no write comes between the two syncs, so
 * their order is free; what must be ordered is the caller's (journal.c). */
errcode_t e2_iom_sync(io_channel io)
{
    struct iom *b = iom_of(io);
    errcode_t err = sync_fd(b, b->fd);

    if (!err && b->jfd >= 0)
        err = sync_journal_file(b);
    return err;
}

errcode_t e2_iom_sync_journal(io_channel io)
{
    struct iom *b = iom_of(io);

    return b->jfd >= 0 ? sync_journal_file(b) : sync_fd(b, b->fd);
}

/* ---- reads and writes in bytes ---- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Read [off, off+len): cached blocks from the cache, runs of missing
 * blocks with one pread each; small runs are added to the cache when
 * @fill. */
static errcode_t cached_read(struct iom *b, uint64_t off, size_t len, char *buf, bool fill)
{
    uint64_t bs = b->bs, end = off + len, blk = off / bs;
    errcode_t first_err = 0;

    if (end < off)
        return EXT2_ET_LLSEEK_FAILED; /* the loop below would read nothing */

    while (blk * bs < end) {
        uint64_t bstart = blk * bs, run = 1, lo, hi;
        struct cblock *c = lookup(b, blk);
        errcode_t err;

        if (c) {
            lo = off > bstart ? off : bstart;
            hi = min_u64(end, bstart + bs);
            memcpy(buf + (lo - off), c->data + (lo - bstart), hi - lo);
            list_del(c);
            list_push(c->dirty ? &b->dirty : &b->lru, c);
            blk++;
            continue;
        }
        while ((blk + run) * bs < end && !lookup(b, blk + run))
            run++;
        if (fill && run <= FILL_MAX) {
            for (uint64_t i = 0; i < run; i++) {
                uint64_t s = (blk + i) * bs;
                c = insert(b, blk + i);
                if (!c)
                    return EXT2_ET_NO_MEMORY;
                err = raw_read(b, c->data, bs, s);
                if (err) {
                    drop(b, c);
                    c = NULL;
                    if (!first_err)
                        first_err = err;
                    if (err != EXT2_ET_SHORT_READ)
                        return err;
                }
                lo = off > s ? off : s;
                hi = min_u64(end, s + bs);
                if (c)
                    memcpy(buf + (lo - off), c->data + (lo - s), hi - lo);
                else
                    memset(buf + (lo - off), 0, hi - lo);
            }
        } else {
            lo = off > bstart ? off : bstart;
            hi = min_u64(end, (blk + run) * bs);
            err = raw_read(b, buf + (lo - off), hi - lo, lo);
            if (err && err != EXT2_ET_SHORT_READ)
                return err;
            if (err && !first_err)
                first_err = err;
        }
        blk += run;
    }
    evict(b);
    return first_err;
}

/* Cache the @n blocks from @blk (none of them cached) with one preadv
 * into new cache blocks. Best effort: on an error or a short read (past
 * the end of the image file) none of them stays, and the caller's own
 * read of the block it needs reports what went wrong. */
static void readahead_run(struct iom *b, uint64_t blk, unsigned n)
{
    struct cblock *c[E2_IOM_READAHEAD_MAX];
    struct iovec iov[E2_IOM_READAHEAD_MAX];
    size_t want = (size_t)n * b->bs;
    ssize_t got;
    unsigned made = 0;

    while (made < n && (c[made] = insert(b, blk + made))) {
        iov[made].iov_base = c[made]->data;
        iov[made].iov_len = b->bs;
        made++;
    }
    if (in_window(b, blk * b->bs, want) < want)
        made = 0; /* the window's end: the caller reads what it needs */
    do
        got = made == n ? preadv(b->fd, iov, (int)n, (off_t)(b->base + blk * b->bs)) : -1;
    while (got < 0 && errno == EINTR);
    for (unsigned i = 0; i < made; i++) {
        if (got != (ssize_t)want)
            drop(b, c[i]);
        else if (b->overlay)
            e2_overlay_apply(b->overlay, (blk + i) * b->bs, b->bs, c[i]->data);
    }
}

bool e2_iom_is_cached(io_channel io, uint64_t blk)
{
    struct iom *b = iom_of(io);

    return b && b->bs && lookup(b, blk);
}

/* One system call for a run of metadata blocks a caller is about to read
 * one by one (inode table blocks: the kernel's inode_readahead_blks). */
void e2_iom_readahead(io_channel io, uint64_t blk, unsigned count)
{
    struct iom *b = iom_of(io);

    if (!b || !b->bs || count > E2_IOM_READAHEAD_MAX)
        return;
    for (unsigned i = 0; i < count;) {
        unsigned run = 0;

        while (i + run < count && !lookup(b, blk + i + run))
            run++;
        if (run > 1)
            readahead_run(b, blk + i, run);
        i += run ? run : 1;
    }
    evict(b);
}

/* Patch the cached copies of [off, off+len) after the bytes went to the
 * image (@keep_dirty: a data write into a journaled block). */
static void patch_cached(struct iom *b, uint64_t off, size_t len, const char *buf)
{
    uint64_t bs = b->bs, end = off + len;

    if (!b->count)
        return;
    for (uint64_t blk = off / bs; blk * bs < end; blk++) {
        struct cblock *c = lookup(b, blk);
        uint64_t s = blk * bs, lo = off > s ? off : s, hi = min_u64(end, s + bs);
        if (c) {
            memcpy(c->data + (lo - s), buf + (lo - off), hi - lo);
            c->checked.kind = 0;
        }
    }
}

/* Every block of [off, off+len) is cached and already holds these bytes
 * (libext2fs rewrites unchanged bitmap and descriptor blocks). */
static bool is_cached_same(struct iom *b, uint64_t off, size_t len, const char *buf)
{
    uint64_t bs = b->bs, end = off + len;

    for (uint64_t blk = off / bs; blk * bs < end; blk++) {
        uint64_t s = blk * bs, lo = off > s ? off : s, hi = min_u64(end, s + bs);
        struct cblock *c = lookup(b, blk);
        if (!c || memcmp(c->data + (lo - s), buf + (lo - off), hi - lo))
            return false;
    }
    return true;
}

/* A metadata write in journaled mode: into dirty cache blocks. */
static errcode_t journaled_write(struct iom *b, uint64_t off, size_t len, const char *buf)
{
    uint64_t bs = b->bs, end = off + len;

    for (uint64_t blk = off / bs; blk * bs < end; blk++) {
        uint64_t s = blk * bs, lo = off > s ? off : s, hi = min_u64(end, s + bs);
        struct cblock *c = lookup(b, blk);

        if (!c) {
            errcode_t err;
            c = insert(b, blk);
            if (!c)
                return EXT2_ET_NO_MEMORY;
            /* Read even a whole block: unchanged blocks stay out of the
             * transaction (libext2fs rewrites every bitmap and group
             * descriptor block at each flush). */
            err = raw_read(b, c->data, bs, s);
            if (err && err != EXT2_ET_SHORT_READ) {
                drop(b, c);
                return err;
            }
        }
        if (!c->dirty && !memcmp(c->data + (lo - s), buf + (lo - off), hi - lo))
            continue;
        memcpy(c->data + (lo - s), buf + (lo - off), hi - lo);
        c->checked.kind = 0;
        make_dirty(b, c);
    }
    evict(b);
    return 0;
}

/* ---- the io_manager ---- */

static errcode_t chan_span(io_channel io, unsigned long long block, int count, uint64_t *off,
                           size_t *len)
{
    uint64_t bsz = (uint64_t)io->block_size;

    *off = block * bsz;
    *len = count < 0 ? (size_t) - (long long)count : (size_t)count * bsz;
    /* The end too: cached_read() and the window count to off + len. */
    if (bsz && (block > UINT64_MAX / bsz || *len > UINT64_MAX - *off))
        return EXT2_ET_LLSEEK_FAILED;
    return 0;
}

static errcode_t iom_read_blk64(io_channel io, unsigned long long block, int count, void *buf)
{
    struct iom *b = iom_of(io);
    uint64_t off;
    size_t len;
    errcode_t err = chan_span(io, block, count, &off, &len);

    if (err)
        return err;
    if (!b->bs)
        return raw_read(b, buf, len, off);
    return cached_read(b, off, len, buf, true);
}

static errcode_t iom_write_blk64(io_channel io, unsigned long long block, int count,
                                 const void *buf)
{
    struct iom *b = iom_of(io);
    uint64_t off;
    size_t len;
    errcode_t err = chan_span(io, block, count, &off, &len);

    if (err)
        return err;
    if (b->bs && (b->journaled || b->holding))
        return journaled_write(b, off, len, buf);
    if (b->bs && is_cached_same(b, off, len, buf))
        return 0;
    err = latch(b, raw_write(b, buf, len, off));
    if (!err && b->bs)
        patch_cached(b, off, len, buf);
    return err;
}

static errcode_t iom_read_blk(io_channel io, unsigned long block, int count, void *buf)
{
    return iom_read_blk64(io, block, count, buf);
}

static errcode_t iom_write_blk(io_channel io, unsigned long block, int count, const void *buf)
{
    return iom_write_blk64(io, block, count, buf);
}

static errcode_t iom_set_blksize(io_channel io, int blksize)
{
    if (blksize <= 0)
        return EXT2_ET_INVALID_ARGUMENT;
    io->block_size = blksize;
    return 0;
}

/* libext2fs's flush: durability is ours to order in journaled mode (the
 * commit in journal.c syncs); otherwise this is the sync point. */
static errcode_t iom_flush(io_channel io)
{
    struct iom *b = iom_of(io);

    if (b->journaled)
        return 0;
    return e2_iom_sync(io);
}

static errcode_t iom_zeroout(io_channel io, unsigned long long block, unsigned long long count)
{
    enum { CHUNK = 256 };
    struct iom *b = iom_of(io);
    uint64_t bsz = (uint64_t)io->block_size;
    char *zeros;
    errcode_t err = 0;

    if (!bsz || count > UINT64_MAX / bsz || block > UINT64_MAX / bsz)
        return EXT2_ET_INVALID_ARGUMENT;
    if (!count)
        return 0;
    /* Only as many zeros as asked for: most calls are one directory block
     * (ext2fs_link's), and glibc serves a repeated 1 MiB calloc from the
     * heap once its mmap threshold has grown, clearing all of it each time
     * (5% of the daemon's samples in 5,000 creates). */
    zeros = calloc(count < CHUNK ? count : CHUNK, bsz);
    if (!zeros)
        return EXT2_ET_NO_MEMORY;
    while (count && !err) {
        unsigned long long n = count < CHUNK ? count : CHUNK;
        err = raw_write(b, zeros, n * bsz, block * bsz);
        if (!err && b->bs)
            patch_cached(b, block * bsz, n * bsz, zeros);
        block += n;
        count -= n;
    }
    free(zeros);
    return err;
}

/* The channel's options, which libext2fs applies right after opening it,
 * before it reads the superblock: E2_IOM_OVERLAY_OPT=<pointer>
 * (e2_iom_overlay_opt(): a journal replayed in memory, which may hold the
 * superblock), E2_IOM_WINDOW_OPT=<base>:<size> (e2_iom_window_opt()). */
static errcode_t iom_set_option(io_channel io, const char *option, const char *arg)
{
    struct iom *b = iom_of(io);
    unsigned long long base, size;
    void *p = NULL;
    int end = 0;

    if (!b || !arg)
        return EXT2_ET_INVALID_ARGUMENT;
    if (!strcmp(option, E2_IOM_WINDOW_OPT)) {
        if (sscanf(arg, "%llu:%llu%n", &base, &size, &end) != 2 || arg[end] ||
            base > (uint64_t)INT64_MAX || size > (uint64_t)INT64_MAX - base)
            return EXT2_ET_INVALID_ARGUMENT;
        b->base = base;
        b->limit = size;
        return 0;
    }
    if (strcmp(option, E2_IOM_OVERLAY_OPT))
        return EXT2_ET_INVALID_ARGUMENT;
    if (b->rw || sscanf(arg, "%p", &p) != 1 || !p)
        return EXT2_ET_INVALID_ARGUMENT;
    b->overlay = p;
    return 0;
}

static void free_all(struct iom *b)
{
    while (b->lru.head.next != &b->lru.head)
        drop(b, b->lru.head.next);
    while (b->dirty.head.next != &b->dirty.head)
        drop(b, b->dirty.head.next);
}

static errcode_t iom_close(io_channel io)
{
    struct iom *b = iom_of(io);
    errcode_t err = 0;

    if (--io->refcount > 0)
        return 0;
    if (b) {
        /* Dirty blocks left here were never committed: the journal's
         * owner decides (journal.c commits before closing). */
        free_all(b);
        free(b->hash);
        if (close(b->fd))
            err = errno;
        e2_fault_destroy(b->fault);
        free(b);
    }
    free(io->name);
    free(io);
    return err;
}

/* A descriptor of its own (close-on-exec) for the image file named @name:
 * never opened by path, only the file imgfile.c opened and locked, which
 * must be open for writing if @rw. */
static errcode_t iom_dup_image_fd(const char *name, bool rw, int *out)
{
    int fd = e2_imgfile_name_fd(name), acc;

    if (fd < 0)
        return EXT2_ET_BAD_DEVICE_NAME;
    acc = fcntl(fd, F_GETFL);
    if (acc < 0)
        return errno;
    if ((acc & O_ACCMODE) != O_RDWR && rw)
        return EROFS;
    *out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return *out < 0 ? errno : 0;
}

static errcode_t iom_open(const char *name, int flags, io_channel *out)
{
    io_channel io = NULL;
    struct iom *b = NULL;
    errcode_t err;

    if (!name)
        return EXT2_ET_BAD_DEVICE_NAME;
    io = calloc(1, sizeof(*io));
    b = calloc(1, sizeof(*b));
    if (!io || !b)
        goto out_nomem;
    io->name = strdup(name);
    if (!io->name)
        goto out_nomem;
    b->magic = IOM_MAGIC;
    b->jfd = -1;
    b->rw = (flags & IO_FLAG_RW) != 0;
    b->nbuckets = 1024;
    b->hash = calloc(b->nbuckets, sizeof(*b->hash));
    if (!b->hash)
        goto out_nomem;
    list_init(&b->lru);
    list_init(&b->dirty);
    err = iom_dup_image_fd(name, b->rw, &b->fd);
    if (err)
        goto out_free;
    if (flags & IO_FLAG_RW) {
        err = e2_fault_from_env(&b->fault);
        if (err) {
            close(b->fd);
            goto out_free;
        }
    }
    io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
    io->manager = e2_iom_manager;
    io->block_size = 1024;
    io->refcount = 1;
    io->private_data = b;
    *out = io;
    return 0;

out_nomem:
    err = EXT2_ET_NO_MEMORY;
out_free:
    if (b)
        free(b->hash);
    free(b);
    if (io)
        free(io->name);
    free(io);
    return err;
}

static struct struct_io_manager iom_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "uext4 block I/O",
    .open = iom_open,
    .close = iom_close,
    .set_blksize = iom_set_blksize,
    .read_blk = iom_read_blk,
    .write_blk = iom_write_blk,
    .flush = iom_flush,
    .set_option = iom_set_option,
    .read_blk64 = iom_read_blk64,
    .write_blk64 = iom_write_blk64,
    .zeroout = iom_zeroout,
};

io_manager e2_iom_manager = &iom_manager;

/* ---- the interface of iomgr.h ---- */

void e2_iom_overlay_opt(const struct e2_overlay *ov, char *buf, size_t len)
{
    snprintf(buf, len, "%s=%p", E2_IOM_OVERLAY_OPT, (const void *)ov);
}

void e2_iom_window_opt(uint64_t base, uint64_t size, char *buf, size_t len)
{
    snprintf(buf, len, "%s=%llu:%llu", E2_IOM_WINDOW_OPT, (unsigned long long)base,
             (unsigned long long)size);
}

uint64_t e2_iom_base(io_channel io)
{
    return iom_of(io)->base;
}

errcode_t e2_iom_attach(io_channel io, unsigned blocksize, size_t clean_bytes)
{
    struct iom *b = iom_of(io);

    if (!b || blocksize < 1024 || (blocksize & (blocksize - 1)))
        return EXT2_ET_INVALID_ARGUMENT;
    free_all(b);
    b->bs = blocksize;
    b->clean_max = clean_bytes / blocksize;
    return 0;
}

void e2_iom_set_journaled(io_channel io, bool on)
{
    iom_of(io)->journaled = on;
}

errcode_t e2_iom_write_data(io_channel io, uint64_t blk, size_t count, const void *buf)
{
    struct iom *b = iom_of(io);
    uint64_t off = blk * b->bs, len = count * b->bs;
    errcode_t err = raw_write(b, buf, len, off);

    if (!err)
        patch_cached(b, off, len, buf);
    return err;
}

/* Whether any block of [@off, @off+@len) has a cached copy. */
static bool any_cached(struct iom *b, uint64_t off, size_t len)
{
    if (!b->count)
        return false;
    for (uint64_t blk = off / b->bs; blk * b->bs < off + len; blk++)
        if (lookup(b, blk))
            return true;
    return false;
}

errcode_t e2_iom_pipe_take(int pipe_fd, void *buf, size_t len)
{
    char *p = buf;

    while (len) {
        ssize_t n = read(pipe_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        /* Empty: a non-blocking pipe says EAGAIN, a closed one 0. */
        if (n == 0 || (n < 0 && errno == EAGAIN))
            return EXT2_ET_SHORT_WRITE;
        if (n < 0)
            return errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

errcode_t e2_iom_splice_data(io_channel io, uint64_t blk, size_t count, int pipe_fd)
{
    struct iom *b = iom_of(io);
    uint64_t off = blk * b->bs;
    size_t len = count * b->bs;
    errcode_t err;

    if (b->overlay)
        return EXT2_ET_RO_FILSYS;
    if (any_cached(b, off, len)) {
        char *tmp = malloc(len);

        err = tmp ? e2_iom_pipe_take(pipe_fd, tmp, len) : EXT2_ET_NO_MEMORY;
        if (!err)
            err = e2_iom_write_data(io, blk, count, tmp);
        free(tmp);
        return err;
    }
    err = may_write(b, off, len);
    if (err)
        return err;
    while (len) {
        loff_t pos = (loff_t)(b->base + off);
        ssize_t n = splice(pipe_fd, NULL, b->fd, &pos, len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        /* The pipe ran dry (a caller's bug): the write is short of its
         * data, as e2_iom_pipe_take() says. EAGAIN, from a non-blocking
         * pipe, must not reach the caller as such: above the I/O manager it
         * means "nothing taken, write from memory" (uext4_write_pipe()),
         * and bytes have been taken. */
        if (n == 0 || (n < 0 && errno == EAGAIN))
            return EXT2_ET_SHORT_WRITE;
        if (n < 0)
            return errno;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

errcode_t e2_iom_read_data(io_channel io, uint64_t blk, size_t count, void *buf)
{
    struct iom *b = iom_of(io);

    return cached_read(b, blk * b->bs, count * b->bs, buf, false);
}

bool e2_iom_any_dirty(io_channel io, uint64_t blk, uint64_t count)
{
    struct iom *b = iom_of(io);

    if (e2_overlay_any(b->overlay, blk, count))
        return true;
    if (!b->ndirty)
        return false;
    for (uint64_t i = 0; i < count; i++) {
        const struct cblock *c = lookup(b, blk + i);
        if (c && c->dirty)
            return true;
    }
    return false;
}

int e2_iom_fd(io_channel io)
{
    return iom_of(io)->fd;
}

void e2_iom_before_read_home(io_channel io)
{
    struct iom *b = iom_of(io);

    if (b->fault)
        e2_fault_before_read_home(b->fault);
}

errcode_t e2_iom_read_home(io_channel io, uint64_t off, size_t len, void *buf)
{
    e2_iom_before_read_home(io);
    return file_read(iom_of(io), buf, len, off);
}

errcode_t e2_iom_write_raw(io_channel io, uint64_t blk, const void *buf)
{
    struct iom *b = iom_of(io);
    struct cblock *c = lookup(b, blk);

    if (c)
        drop(b, c); /* a journal block is never metadata: be safe */
    return latch(b, raw_write(b, buf, b->bs, blk * b->bs));
}

errcode_t e2_iom_read_raw(io_channel io, uint64_t blk, void *buf)
{
    struct iom *b = iom_of(io);

    return raw_read(b, buf, b->bs, blk * b->bs);
}

void e2_iom_set_journal_file(io_channel io, int fd)
{
    struct iom *b = iom_of(io);

    b->jfd = fd;
    b->jdirty = false;
}

/* A block of an external journal's file: no window (the file is the
 * journal's alone), the fault hook as for the image. */
static errcode_t journal_file_write(struct iom *b, uint64_t blk, const void *buf)
{
    uint64_t off = blk * b->bs;
    errcode_t err = b->fault ? e2_fault_before_write(b->fault, b->jfd, b->bs, off) : 0;

    if (err)
        return err;
    b->jdirty = true;
    return pwrite_all(b->jfd, buf, b->bs, off);
}

errcode_t e2_iom_write_journal(io_channel io, uint64_t blk, const void *buf)
{
    struct iom *b = iom_of(io);

    if (b->jfd < 0)
        return e2_iom_write_raw(io, blk, buf);
    if (b->overlay || !b->rw)
        return EXT2_ET_RO_FILSYS;
    return latch(b, journal_file_write(b, blk, buf));
}

errcode_t e2_iom_read_journal(io_channel io, uint64_t blk, void *buf)
{
    struct iom *b = iom_of(io);
    ssize_t n;

    if (b->jfd < 0)
        return e2_iom_read_raw(io, blk, buf);
    do
        n = pread(b->jfd, buf, b->bs, (off_t)(blk * b->bs));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno;
    return n == (ssize_t)b->bs ? 0 : EXT2_ET_SHORT_READ;
}

errcode_t e2_iom_failed(io_channel io)
{
    return atomic_load(&iom_of(io)->failed);
}

size_t e2_iom_dirty_count(io_channel io)
{
    return iom_of(io)->ndirty;
}

static int cmp_cblock(const void *a, const void *b)
{
    const struct cblock *x = *(const struct cblock *const *)a;
    const struct cblock *y = *(const struct cblock *const *)b;

    return x->blk < y->blk ? -1 : x->blk > y->blk;
}

static errcode_t sorted_dirty(struct iom *b, struct cblock ***out)
{
    struct cblock **v = malloc((b->ndirty ? b->ndirty : 1) * sizeof(*v));
    size_t i = 0;

    if (!v)
        return EXT2_ET_NO_MEMORY;
    for (struct cblock *c = b->dirty.head.next; c != &b->dirty.head; c = c->next)
        v[i++] = c;
    qsort(v, i, sizeof(*v), cmp_cblock);
    *out = v;
    return 0;
}

errcode_t e2_iom_dirty_foreach(io_channel io,
                               void (*fn)(void *ctx, size_t i, uint64_t blk, const void *data),
                               void *ctx)
{
    struct iom *b = iom_of(io);
    size_t n = b->ndirty;
    struct cblock **v;
    errcode_t err = sorted_dirty(b, &v);

    if (err)
        return err;
    for (size_t i = 0; i < n; i++)
        fn(ctx, i, v[i]->blk, v[i]->data);
    free(v);
    return 0;
}

errcode_t e2_iom_checkpoint(io_channel io)
{
    struct iom *b = iom_of(io);
    size_t n = b->ndirty, i = 0;
    struct cblock **v;
    char *run = NULL;
    errcode_t err = sorted_dirty(b, &v);

    if (err)
        return err;
    while (i < n && !err) {
        size_t j = i + 1;
        while (j < n && v[j]->blk == v[j - 1]->blk + 1 && j - i < 256)
            j++;
        if (j - i == 1) {
            err = raw_write(b, v[i]->data, b->bs, v[i]->blk * b->bs);
        } else {
            if (!run && !(run = malloc((size_t)256 * b->bs))) {
                err = EXT2_ET_NO_MEMORY;
                break;
            }
            for (size_t k = i; k < j; k++)
                memcpy(run + (k - i) * b->bs, v[k]->data, b->bs);
            err = raw_write(b, run, (j - i) * b->bs, v[i]->blk * b->bs);
        }
        latch(b, err);
        for (size_t k = i; k < j && !err; k++)
            make_clean(b, v[k]);
        i = j;
    }
    free(run);
    free(v);
    evict(b);
    return err;
}

void e2_iom_hold(io_channel io)
{
    struct iom *b = iom_of(io);

    if (b->bs)
        b->holding = true;
}

static bool is_in(uint64_t blk, const uint64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == blk)
            return true;
    return false;
}

static errcode_t write_home(struct iom *b, struct cblock *c)
{
    errcode_t err = latch(b, raw_write(b, c->data, b->bs, c->blk * b->bs));

    if (!err)
        make_clean(b, c);
    return err;
}

/* e2_iom_release(), and with @sync an fdatasync before the other blocks
 * (for the data written straight home meanwhile) and another before
 * @last. */
static errcode_t release(io_channel io, const uint64_t *last, size_t nlast, bool sync)
{
    struct iom *b = iom_of(io);
    struct cblock **v;
    size_t n = b->ndirty;
    errcode_t err = 0;

    if (!b->holding)
        return 0;
    b->holding = false;
    if (b->journaled)
        return 0; /* the running transaction has them */
    err = sorted_dirty(b, &v);
    if (err)
        return err;
    if (sync)
        err = e2_iom_sync(io);
    for (size_t i = 0; i < n && !err; i++)
        if (!is_in(v[i]->blk, last, nlast))
            err = write_home(b, v[i]);
    if (sync && !err)
        err = e2_iom_sync(io);
    for (size_t k = 0; k < nlast && !err; k++) {
        struct cblock *c = lookup(b, last[k]);
        if (c && c->dirty)
            err = write_home(b, c);
    }
    free(v);
    evict(b);
    return err;
}

errcode_t e2_iom_release(io_channel io, const uint64_t *last, size_t nlast)
{
    return release(io, last, nlast, false);
}

errcode_t e2_iom_release_synced(io_channel io, const uint64_t *last, size_t nlast)
{
    return release(io, last, nlast, true);
}

void e2_iom_forget(io_channel io, uint64_t blk, uint64_t count)
{
    struct iom *b = iom_of(io);

    if (!b->count)
        return;
    if (count > b->count) {
        /* A large range (a big file freed): walk the cache instead. */
        struct blist *lists[] = {&b->lru, &b->dirty};
        for (int l = 0; l < 2; l++) {
            struct cblock *c, *next;
            for (c = lists[l]->head.next; c != &lists[l]->head; c = next) {
                next = c->next;
                if (c->blk >= blk && c->blk - blk < count)
                    drop(b, c);
            }
        }
        return;
    }
    for (uint64_t i = 0; i < count; i++) {
        struct cblock *c = lookup(b, blk + i);
        if (c)
            drop(b, c);
    }
}

bool e2_iom_is_checked(io_channel io, uint64_t blk, const struct e2_iom_mark *m)
{
    struct iom *b = iom_of(io);
    struct cblock *c = b && b->bs ? lookup(b, blk) : NULL;

    return c && m->kind && c->checked.kind == m->kind && c->checked.owner == m->owner &&
           c->checked.gen == m->gen;
}

void e2_iom_set_checked(io_channel io, uint64_t blk, const struct e2_iom_mark *m)
{
    struct iom *b = iom_of(io);
    struct cblock *c = b && b->bs ? lookup(b, blk) : NULL;

    if (c)
        c->checked = *m;
}
