/* src/e2/iomgr.c: the mark a cached block carries of what it was checked
 * to be (e2_iom_set_checked / e2_iom_is_checked), which htree.c trusts in
 * place of checking a directory block again. One row per way a block's
 * bytes can change through the channel, each of which must clear the
 * mark, and the ways that must keep it. Every row: a fresh 64-block file
 * behind the channel, block 5 read (cached) and marked, the row's step,
 * then the mark asked for. */
#include "e2/e2_internal.h"
#include "e2/imgfile.h"
#include "e2/iomgr.h"
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

enum { BS = 4096, NBLK = 64, BLK = 5 };

static const struct e2_iom_mark mark = {1, 12, 0xabcd};

struct chan {
    int fd;
    io_channel io;
    char buf[BS];
};

/* A channel over a scratch file with block BLK cached and marked;
 * @journaled: metadata writes held as dirty blocks. */
static int chan_open(struct chan *c, bool journaled)
{
    char path[] = "/tmp/uext4-iom-mark-XXXXXX", name[64];

    c->fd = mkstemp(path);
    if (c->fd < 0)
        return -1;
    unlink(path);
    if (ftruncate(c->fd, (off_t)NBLK * BS))
        return -1;
    e2_imgfile_name(name, sizeof(name), c->fd);
    if (e2_iom_manager->open(name, IO_FLAG_RW, &c->io))
        return -1;
    if (io_channel_set_blksize(c->io, BS) || e2_iom_attach(c->io, BS, 16 * BS))
        return -1;
    e2_iom_set_journaled(c->io, journaled);
    if (io_channel_read_blk64(c->io, BLK, 1, c->buf))
        return -1;
    e2_iom_set_checked(c->io, BLK, &mark);
    return e2_iom_is_checked(c->io, BLK, &mark) ? 0 : -1;
}

static void chan_close(struct chan *c)
{
    io_channel_close(c->io);
    close(c->fd);
}

/* The bytes of block BLK changed by a metadata write. */
static int write_meta(struct chan *c)
{
    c->buf[100] ^= 1;
    return (int)io_channel_write_blk64(c->io, BLK, 1, c->buf);
}

/* The block's bytes rewritten unchanged (libext2fs rewrites bitmaps and
 * descriptors as they were): nothing to check again. */
static int write_same(struct chan *c)
{
    return (int)io_channel_write_blk64(c->io, BLK, 1, c->buf);
}

/* A data write over the cached block (a freed directory block reused for
 * a file's data before the cache let it go). */
static int write_data(struct chan *c)
{
    c->buf[7] ^= 1;
    return (int)e2_iom_write_data(c->io, BLK, 1, c->buf);
}

/* A write of bytes (not whole blocks) that covers part of the block, as
 * libext2fs writes the superblock. */
static int write_partial(struct chan *c)
{
    char b[1024] = {1};

    return (int)io_channel_write_blk64(c->io, BLK, -1024, b);
}

/* Freed, then read again from the image. */
static int forget_reread(struct chan *c)
{
    e2_iom_forget(c->io, BLK, 1);
    return (int)io_channel_read_blk64(c->io, BLK, 1, c->buf);
}

/* Evicted (more clean blocks read than the budget), then read again. */
static int evict_reread(struct chan *c)
{
    char b[BS];

    for (int i = 20; i < NBLK; i++)
        if (io_channel_read_blk64(c->io, i, 1, b))
            return -1;
    return (int)io_channel_read_blk64(c->io, BLK, 1, c->buf);
}

/* Another block written: this one's mark stays. */
static int write_other(struct chan *c)
{
    char b[BS] = {2};

    return (int)io_channel_write_blk64(c->io, BLK + 1, 1, b);
}

/* Read again, unchanged. */
static int reread(struct chan *c)
{
    return (int)io_channel_read_blk64(c->io, BLK, 1, c->buf);
}

/* Journaled: the dirty block written home by a checkpoint, unchanged. */
static int checkpoint(struct chan *c)
{
    int ret = write_meta(c);

    e2_iom_set_checked(c->io, BLK, &mark);
    return ret ? ret : (int)e2_iom_checkpoint(c->io);
}

static const struct row {
    const char *name;
    bool journaled;
    int (*step)(struct chan *c);
    bool marked; /* whether the mark must survive the step */
} rows[] = {
    {"metadata write clears", false, write_meta, false},
    {"journaled metadata write clears", true, write_meta, false},
    {"data write clears", false, write_data, false},
    {"journaled data write clears", true, write_data, false},
    {"partial write clears", false, write_partial, false},
    {"journaled partial write clears", true, write_partial, false},
    {"forget and read again clears", false, forget_reread, false},
    {"eviction and read again clears", false, evict_reread, false},
    {"same bytes written keeps", false, write_same, true},
    {"journaled same bytes written keeps", true, write_same, true},
    {"other block written keeps", true, write_other, true},
    {"read again keeps", false, reread, true},
    {"checkpoint keeps", true, checkpoint, true},
};

static int run_row(const struct row *r)
{
    struct chan c;
    struct e2_iom_mark other = mark;
    int ret = 1;

    if (chan_open(&c, r->journaled))
        return 1;
    if (r->step(&c)) {
        fprintf(stderr, "  %s: the step failed\n", r->name);
        goto out_close;
    }
    if (e2_iom_is_checked(c.io, BLK, &mark) != r->marked) {
        fprintf(stderr, "  %s: marked %d, expected %d\n", r->name, !r->marked, r->marked);
        goto out_close;
    }
    other.gen++;
    ret = e2_iom_is_checked(c.io, BLK, &other) ? 1 : 0; /* another owner's mark never matches */
out_close:
    chan_close(&c);
    return ret;
}

static int test_rows(void)
{
    int fail = 0;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int r = run_row(&rows[i]);
        printf("  %s %s\n", r ? "FAIL" : "ok", rows[i].name);
        fail |= r;
    }
    return fail;
}

int main(void)
{
    static const struct test_case tests[] = {
        {"iom_mark_rows", test_rows},
    };
    return run_tests(tests, sizeof(tests) / sizeof(tests[0]));
}
