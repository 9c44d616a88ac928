/* src/e2/iomgr.c: the window (E2_IOM_WINDOW_OPT) that places a file
 * system in its image file, at the edges an image can reach. A block
 * number comes from the image (an extent, an index block, a descriptor):
 * with 64 KiB blocks, block 2^48-2 is 128 KiB short of 2^64 bytes, and
 * base + offset would wrap round to the bytes before the window (the
 * partition table, an earlier partition). Each row: a scratch file of
 * FILE_BYTES patterned bytes behind a channel with the row's window, one
 * block read and written at the row's block: the read gives zeros and an
 * error, the write fails, and the file is unchanged. */
#include "e2/e2_internal.h"
#include "e2/imgfile.h"
#include "e2/iomgr.h"
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

enum { BS = 65536, FILE_BYTES = 4 << 20 };

struct row {
    const char *name;
    uint64_t base, size; /* the window: E2_IOM_WINDOW_OPT */
    uint64_t blk;        /* a block outside it */
};

static const struct row rows[] = {
    /* Offset 2^64 - 128 KiB: base + offset wraps to base - 128 KiB. */
    {"wraps_before_the_window", 1 << 20, 0, (1ULL << 48) - 2},
    {"wraps_with_a_sizelimit", 1 << 20, 1 << 20, (1ULL << 48) - 2},
    /* The block's end is 2^64: offset + length wraps to 0. */
    {"ends_at_2_64", 1 << 20, 0, (1ULL << 48) - 1},
    /* Past INT64_MAX with no base: an offset no file has. */
    {"past_int64_max", 0, 0, 1ULL << 47},
    /* The first block past sizelimit: the next partition's. */
    {"at_sizelimit", 1 << 20, 1 << 20, 16},
};

static unsigned char byte_at(uint64_t off)
{
    return (unsigned char)(off * 7 + (off >> 12));
}

static int make_file(void)
{
    char path[] = "/tmp/uext4-iom-window-XXXXXX";
    static unsigned char buf[FILE_BYTES];
    int fd = mkstemp(path);

    if (fd < 0)
        return -1;
    unlink(path);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = byte_at(i);
    if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool file_unchanged(int fd)
{
    static unsigned char buf[FILE_BYTES];

    if (pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
        return false;
    for (size_t i = 0; i < sizeof(buf); i++)
        if (buf[i] != byte_at(i))
            return false;
    return true;
}

/* Whether @p holds the file's bytes at (@base + @off) mod 2^64: what a
 * wrapped offset would read. */
static bool leaked(const unsigned char *p, uint64_t base, uint64_t off)
{
    uint64_t at = base + off;

    if (at >= FILE_BYTES)
        return false;
    for (size_t i = 0; i < BS && at + i < FILE_BYTES; i++)
        if (p[i] != byte_at(at + i))
            return false;
    return true;
}

/* The row's reads fail (or give zeros, past sizelimit) without the
 * file's bytes; its writes fail. Returns the step that did not. */
static const char *try_row(const struct row *r, io_channel io)
{
    static unsigned char buf[BS];
    uint64_t off = r->blk * BS;

    memset(buf, 0xa5, sizeof(buf));
    if (!io_channel_read_blk64(io, r->blk, 1, buf) || leaked(buf, r->base, off))
        return "io_channel_read_blk64";
    memset(buf, 0xa5, sizeof(buf));
    if (!e2_iom_read_data(io, r->blk, 1, buf) || leaked(buf, r->base, off))
        return "e2_iom_read_data";
    memset(buf, 0xa5, sizeof(buf));
    if (!e2_iom_read_home(io, off, BS, buf) || leaked(buf, r->base, off))
        return "e2_iom_read_home";
    memset(buf, 0x5a, sizeof(buf));
    if (!io_channel_write_blk64(io, r->blk, 1, buf))
        return "io_channel_write_blk64";
    if (!e2_iom_write_raw(io, r->blk, buf))
        return "e2_iom_write_raw";
    if (!e2_iom_write_data(io, r->blk, 1, buf))
        return "e2_iom_write_data";
    if (!io_channel_zeroout(io, r->blk, 1))
        return "io_channel_zeroout";
    return NULL;
}

static int run_row(const struct row *r, int fd)
{
    char name[64], opt[128];
    const char *step = "open";
    io_channel io = NULL;

    e2_imgfile_name(name, sizeof(name), fd);
    e2_iom_window_opt(r->base, r->size, opt, sizeof(opt));
    if (!e2_iom_manager->open(name, IO_FLAG_RW, &io) && !io_channel_set_options(io, opt) &&
        !io_channel_set_blksize(io, BS) && !e2_iom_attach(io, BS, 16 * BS))
        step = try_row(r, io);
    if (io)
        io_channel_close(io);
    if (!step && !file_unchanged(fd))
        step = "the file changed";
    if (step)
        fprintf(stderr, "  row %s: %s\n", r->name, step);
    return step != NULL;
}

static int test_rows(void)
{
    int failed = 0;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int fd = make_file();

        CHECK(fd >= 0);
        failed += run_row(&rows[i], fd);
        close(fd);
    }
    CHECK_EQ(failed, 0);
    return 0;
}

int main(void)
{
    static const struct test_case tests[] = {
        {"iom_window_rows", test_rows},
    };
    return run_tests(tests, sizeof(tests) / sizeof(tests[0]));
}
