/* The inode table read ahead (src/e2/inode.c, itable_readahead): the first
 * read of an inode table block caches the blocks of its aligned window of
 * E2_IOM_READAHEAD_MAX, and never a block past the part of the group's
 * table in use (bg_itable_unused), past the table itself (the next group's
 * table follows it on a flex_bg image), or of a group whose table was never
 * initialised. Images: 1 KiB blocks, 256 inodes a group of 256 bytes (64
 * table blocks), flex_bg groups of 4, lazy_itable_init, 600 files from
 * mke2fs -d filling groups 0 and 1 and part of group 2. */
#include "e2/e2_internal.h"
#include "e2/iomgr.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { IPG = 256, TBLOCKS = 64, WIN = E2_IOM_READAHEAD_MAX };

static char tmpdir[64], img_path[128];

/* Run @fmt with every %s (at most two) replaced by @arg. */
static int sh(const char *fmt, const char *arg)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), fmt, arg, arg);
    return system(cmd);
}

static int make_image(void)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "set -e; mkdir -p %s/src; for i in $(seq 1 600); do echo $i > %s/src/f$i; done; "
             "mke2fs -q -F -t ext4 -b 1024 -g 2048 -N 8192 -I 256 -G 4 -O flex_bg "
             "-E lazy_itable_init=1 -U 6b1a4c3e-1f1d-4c55-9d39-0d1f0b6a2c11 -d %s/src "
             "%s/t.img 64M >/dev/null 2>&1",
             tmpdir, tmpdir, tmpdir, tmpdir);
    snprintf(img_path, sizeof(img_path), "%s/t.img", tmpdir);
    return system(cmd);
}

static struct e2_image *open_image(void)
{
    struct e2_open_opts o = {.read_only = true};
    struct e2_image *img = NULL;
    bool ro_forced = false;
    char why[256] = "";

    if (e2_image_open(img_path, &o, &img, &ro_forced, why, sizeof(why)))
        fprintf(stderr, "  open: %s\n", why);
    return img;
}

static uint64_t table(struct e2_image *img, dgrp_t g)
{
    return ext2fs_inode_table_loc(img->fs, g);
}

static uint64_t used_blocks(struct e2_image *img, dgrp_t g)
{
    return ((IPG - ext2fs_bg_itable_unused(img->fs, g)) * 256u + 1023) / 1024;
}

static bool cached(struct e2_image *img, uint64_t blk)
{
    return e2_iom_is_cached(img->fs->io, blk);
}

/* Read inode @ino; the blocks of [lo, hi) of group @g's table must be
 * cached, those of the rest of its table and of group @g+1's not. */
static int read_and_check(struct e2_image *img, uint32_t ino, dgrp_t g, uint64_t lo, uint64_t hi)
{
    struct e2_attr a;

    for (uint64_t b = 0; b < 2 * TBLOCKS; b++)
        CHECK(!cached(img, table(img, g) + b));
    CHECK_EQ(e2_inode_get(img, ino, &a), 0);
    for (uint64_t b = 0; b < 2 * TBLOCKS; b++) {
        bool want = b >= lo && b < hi;
        if (cached(img, table(img, g) + b) != want) {
            fprintf(stderr, "  inode %u: table block %llu of group %u %s\n", ino,
                    (unsigned long long)b, g, want ? "not cached" : "cached");
            return 1;
        }
    }
    return 0;
}

/* The layout the cases rely on: flex_bg tables back to back, groups 0 and
 * 1 in full use, group 2 in part, group 3 never initialised. */
static int test_layout(void)
{
    struct e2_image *img = open_image();

    CHECK(img != NULL);
    CHECK_EQ(img->fs->inode_blocks_per_group, TBLOCKS);
    CHECK_EQ(table(img, 2), table(img, 1) + TBLOCKS);
    CHECK_EQ(table(img, 3), table(img, 2) + TBLOCKS);
    CHECK_EQ(used_blocks(img, 1), TBLOCKS);
    CHECK(used_blocks(img, 2) > 0 && used_blocks(img, 2) < WIN);
    CHECK(ext2fs_bg_flags_test(img->fs, 3, EXT2_BG_INODE_UNINIT));
    CHECK_EQ(e2_image_close(img), 0);
    return 0;
}

/* The last window of a table in full use: its 32 blocks, not the window
 * before, not the next group's table right after it. */
static int test_last_window_stops_at_table_end(void)
{
    struct e2_image *img = open_image();
    int ret;

    CHECK(img != NULL);
    ret = read_and_check(img, IPG + 1 + 40 * 4, 1, WIN, TBLOCKS);
    CHECK_EQ(e2_image_close(img), 0);
    return ret;
}

/* The first window of a table in full use. */
static int test_first_window(void)
{
    struct e2_image *img = open_image();
    int ret;

    CHECK(img != NULL);
    ret = read_and_check(img, IPG + 1 + 3 * 4, 1, 0, WIN);
    CHECK_EQ(e2_image_close(img), 0);
    return ret;
}

/* A table in use in part: up to its last block in use, not beyond. */
static int test_stops_at_unused_tail(void)
{
    struct e2_image *img = open_image();
    int ret;

    CHECK(img != NULL);
    ret = read_and_check(img, 2 * IPG + 1, 2, 0, used_blocks(img, 2));
    CHECK_EQ(e2_image_close(img), 0);
    return ret;
}

/* A free inode in the unused tail: its own block only, read by libext2fs. */
static int test_unused_tail_no_readahead(void)
{
    struct e2_image *img = open_image();
    uint64_t b;
    int ret;

    CHECK(img != NULL);
    b = used_blocks(img, 2) + 1;
    ret = read_and_check(img, (uint32_t)(2 * IPG + 1 + b * 4), 2, b, b + 1);
    CHECK_EQ(e2_image_close(img), 0);
    return ret;
}

/* A group whose table was never initialised: no read ahead. */
static int test_uninit_group(void)
{
    struct e2_image *img = open_image();
    int ret;

    CHECK(img != NULL);
    ret = read_and_check(img, 3 * IPG + 1 + 4, 3, 1, 2);
    CHECK_EQ(e2_image_close(img), 0);
    return ret;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"layout", test_layout},
        {"last_window_stops_at_table_end", test_last_window_stops_at_table_end},
        {"first_window", test_first_window},
        {"stops_at_unused_tail", test_stops_at_unused_tail},
        {"unused_tail_no_readahead", test_unused_tail_no_readahead},
        {"uninit_group", test_uninit_group},
    };
    int ret;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/uext4-itable-ra-XXXXXX");
    if (!mkdtemp(tmpdir) || make_image()) {
        fprintf(stderr, "no test image\n");
        return 1;
    }
    ret = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    if (sh("e2fsck -fn %s >&2", img_path))
        ret = 1;
    sh("rm -rf %s", tmpdir);
    return ret;
}
