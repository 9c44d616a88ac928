/* Library mode: the public API of include/uext4.h on real images made by
 * mke2fs, with no FUSE. Every case ends by closing the image and running
 * `e2fsck -fn` on it; on-disk state is checked with debugfs. */
#include "uext4.h"
#include "harness.h"
#include "lib_images.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define INLINE_FL  0x10000000u
#define EXTENTS_FL 0x00080000u

/* i_flags of @path in @img, read by debugfs. */
static long disk_flags(const char *img, const char *path)
{
    char cmd[512], line[512];
    long flags = -1;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "debugfs -R 'stat %s' %s 2>/dev/null", path, img);
    p = popen(cmd, "r");
    if (!p)
        return -1;
    while (fgets(line, sizeof(line), p)) {
        char *f = strstr(line, "Flags: ");
        if (f)
            flags = strtol(f + 7, NULL, 16);
    }
    pclose(p);
    return flags;
}

static uint32_t create(struct uext4_fs *fs, uint32_t dir, const char *name)
{
    struct stat st;

    if (uext4_mknod(fs, &root, dir, name, S_IFREG | 0644, 0, &st))
        return 0;
    return (uint32_t)st.st_ino;
}

static int write_all(struct uext4_fs *fs, uint32_t ino, const void *buf, size_t n, off_t off)
{
    return uext4_write(fs, &root, ino, buf, n, off, 0) == (ssize_t)n ? 0 : -1;
}

static int read_is(struct uext4_fs *fs, uint32_t ino, const void *want, size_t n)
{
    char buf[8192];
    ssize_t got = uext4_read(fs, ino, buf, sizeof(buf), 0);

    if (got != (ssize_t)n || memcmp(buf, want, n)) {
        fprintf(stderr, "  read %zd bytes, want %zu\n", got, n);
        return 0;
    }
    return 1;
}

static uint64_t size_of(struct uext4_fs *fs, uint32_t ino)
{
    struct stat st;

    return uext4_getattr(fs, ino, &st) ? (uint64_t)-1 : (uint64_t)st.st_size;
}

static int test_inline_create_write_read(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "a");
    CHECK(ino);
    CHECK_EQ(write_all(fs, ino, "hello", 5, 0), 0);
    CHECK(read_is(fs, ino, "hello", 5));
    /* fuse2fs 1.47 fails this one: a write at offset 10 of a 10-byte file. */
    CHECK_EQ(write_all(fs, ino, "67890", 5, 5), 0);
    CHECK_EQ(write_all(fs, ino, "abcdefghij", 10, 10), 0);
    CHECK(read_is(fs, ino, "hello67890abcdefghij", 20));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/a"), INLINE_FL);
    return 0;
}

static int test_inline_capacity_boundary(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    char buf[200];
    uint32_t a, b;

    CHECK(fs);
    memset(buf, 'x', sizeof(buf));
    a = create(fs, UEXT4_ROOT_INO, "fits");
    b = create(fs, UEXT4_ROOT_INO, "over");
    /* 256-byte inodes with extra_isize 32 hold 128 bytes inline (Linux 6.18). */
    CHECK_EQ(write_all(fs, a, buf, 128, 0), 0);
    CHECK_EQ(write_all(fs, b, buf, 129, 0), 0);
    CHECK(read_is(fs, a, buf, 128));
    CHECK(read_is(fs, b, buf, 129));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/fits"), INLINE_FL);
    CHECK_EQ(disk_flags(img, "/over"), EXTENTS_FL);
    return 0;
}

static int test_inline_grows_then_converts(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    char buf[300], want[300];
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    for (int i = 0; i < 30; i++) {
        /* Many small appends cross 60 bytes and then the capacity. */
        memset(buf, 'a' + i % 26, 10);
        CHECK_EQ(write_all(fs, ino, buf, 10, (off_t)i * 10), 0);
        memcpy(want + i * 10, buf, 10);
    }
    CHECK(read_is(fs, ino, want, 300));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/f"), EXTENTS_FL);
    return 0;
}

static int test_inline_truncate_rules(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    struct stat st = {0};
    uint32_t a, b;

    CHECK(fs);
    a = create(fs, UEXT4_ROOT_INO, "small");
    b = create(fs, UEXT4_ROOT_INO, "grown");
    CHECK_EQ(write_all(fs, a, "abc", 3, 0), 0);
    CHECK_EQ(write_all(fs, b, "abc", 3, 0), 0);
    st.st_size = 2;
    CHECK_EQ(uext4_setattr(fs, &root, a, &st, UEXT4_SET_SIZE, NULL), 0);
    st.st_size = 3;
    CHECK_EQ(uext4_setattr(fs, &root, a, &st, UEXT4_SET_SIZE, NULL), 0);
    CHECK(read_is(fs, a, "ab\0", 3)); /* the dropped byte reads back as zero */
    st.st_size = 100;
    CHECK_EQ(uext4_setattr(fs, &root, b, &st, UEXT4_SET_SIZE, NULL), 0);
    CHECK_EQ(size_of(fs, b), 100);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/small"), INLINE_FL);
    CHECK_EQ(disk_flags(img, "/grown"), EXTENTS_FL);
    return 0;
}

static int mmap_case(enum uext4_inline_mmap mode, long want_flags)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_options o = {.size = sizeof(o), .inline_mmap = mode};
    struct uext4_fs *fs = open_img(img, &o);
    char page[4096];
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "m");
    CHECK_EQ(write_all(fs, ino, "0123456789", 10, 0), 0);
    /* A whole dirty page comes back; bytes past i_size must be dropped. */
    memset(page, 'Z', sizeof(page));
    memcpy(page, "ABCDEFGHIJ", 10);
    CHECK_EQ(uext4_write(fs, &root, ino, page, sizeof(page), 0, UEXT4_WRITE_MMAP), 4096);
    CHECK_EQ(size_of(fs, ino), 10);
    CHECK(read_is(fs, ino, "ABCDEFGHIJ", 10));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/m"), want_flags);
    return 0;
}

static int test_mmap_writeback_keeps_inline(void)
{
    return mmap_case(UEXT4_INLINE_MMAP_KEEP, INLINE_FL);
}

static int test_mmap_writeback_convert_option(void)
{
    return mmap_case(UEXT4_INLINE_MMAP_CONVERT, EXTENTS_FL);
}

/* Rule 4 of design.md: a page dirtied while inline and written back after a
 * write(2) converted the file goes to the new block; bytes stored past the
 * old EOF never appear. */
static int test_mmap_page_survives_conversion(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    char page[64], big[200], want[300], back[300];
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "m");
    CHECK_EQ(write_all(fs, ino, "0123456789", 10, 0), 0);
    memset(page, 'Z', sizeof(page));
    memcpy(page, "ABCDEFGHIJ", 10);
    CHECK_EQ(uext4_mmap_store(fs, ino, 0, page, sizeof(page)), 0);
    CHECK_EQ(uext4_dirty_pages(fs, ino), 1);
    CHECK(read_is(fs, ino, "ABCDEFGHIJ", 10)); /* coherent before writeback */
    memset(big, 'w', sizeof(big));
    CHECK_EQ(write_all(fs, ino, big, sizeof(big), 100), 0); /* past capacity: converts */
    CHECK_EQ(uext4_writeback(fs, ino), 0);
    CHECK_EQ(uext4_dirty_pages(fs, ino), 0);
    memset(want, 0, sizeof(want));
    memcpy(want, "ABCDEFGHIJ", 10);
    memcpy(want + 100, big, sizeof(big));
    CHECK_EQ(uext4_read(fs, ino, back, sizeof(back), 0), 300);
    CHECK(!memcmp(back, want, sizeof(want)));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/m"), EXTENTS_FL);
    return 0;
}

/* Rule 4: a page dirtied before a shrinking truncate writes only up to the
 * new i_size, and the file stays inline. */
static int test_mmap_page_cut_by_truncate(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    struct stat st = {.st_size = 5};
    char data[100];
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "t");
    memset(data, 'a', sizeof(data));
    CHECK_EQ(write_all(fs, ino, data, sizeof(data), 0), 0);
    memset(data, 'X', sizeof(data));
    CHECK_EQ(uext4_mmap_store(fs, ino, 0, data, sizeof(data)), 0);
    CHECK_EQ(uext4_setattr(fs, &root, ino, &st, UEXT4_SET_SIZE, NULL), 0);
    CHECK_EQ(uext4_writeback(fs, ino), 0);
    CHECK_EQ(size_of(fs, ino), 5);
    CHECK(read_is(fs, ino, "XXXXX", 5));
    /* A page wholly past EOF cannot be stored to (SIGBUS). */
    CHECK_EQ(uext4_mmap_store(fs, ino, 4096, "x", 1), -EFAULT);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(disk_flags(img, "/t"), INLINE_FL);
    return 0;
}

/* Dirty pages left at close are written back by uext4_close. */
static int test_mmap_written_back_at_close(void)
{
    const char *img = mkimg("-t ext4 -O inline_data -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "c");
    CHECK_EQ(write_all(fs, ino, "........", 8, 0), 0);
    CHECK_EQ(uext4_mmap_store(fs, ino, 2, "mm", 2), 0);
    CHECK_EQ(uext4_close(fs), 0);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_resolve(fs, "/c", &ino), 0);
    CHECK(read_is(fs, ino, "..mm....", 8));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A writeback that fails (a full image: the page's block cannot be
 * allocated) keeps the page dirty and reports the error at fsync; once
 * there is room the data goes out. Nothing is lost silently. */
static int test_mmap_writeback_failure_keeps_data(void)
{
    const char *img = mkimg("-t ext4 -O ^has_journal -N 256 -m 0 -b 4096");
    struct uext4_fs *fs = open_img(img, NULL);
    static char buf[65536];
    struct stat st = {.st_size = 8192};
    char back[16];
    off_t off = 0;
    uint32_t sparse, filler;

    CHECK(fs);
    sparse = create(fs, UEXT4_ROOT_INO, "sparse");
    CHECK_EQ(uext4_setattr(fs, &root, sparse, &st, UEXT4_SET_SIZE, NULL), 0); /* a hole */
    filler = create(fs, UEXT4_ROOT_INO, "filler");
    memset(buf, 'f', sizeof(buf));
    for (ssize_t w; (w = uext4_write(fs, &root, filler, buf, sizeof(buf), off, 0)) > 0;)
        off += w;
    for (ssize_t w; (w = uext4_write(fs, &root, filler, buf, 4096, off, 0)) > 0;)
        off += w; /* the last partial chunks too */
    CHECK_EQ(uext4_mmap_store(fs, sparse, 4096, "kept", 4), 0);
    CHECK_EQ(uext4_fsync(fs, sparse, false), -ENOSPC);
    CHECK_EQ(uext4_dirty_pages(fs, sparse), 1);
    CHECK_EQ(uext4_read(fs, sparse, back, 4, 4096), 4);
    CHECK(!memcmp(back, "kept", 4)); /* still visible: not lost */
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "filler"), 0);
    uext4_forget(fs, filler, 1);
    CHECK_EQ(uext4_fsync(fs, sparse, false), 0);
    CHECK_EQ(uext4_dirty_pages(fs, sparse), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_read(fs, sparse, back, 4, 4096), 4);
    CHECK(!memcmp(back, "kept", 4));
    CHECK_EQ(uext4_close(fs), 0);
    return 0;
}

/* Memory pressure: with a 64 KiB budget, storing to 1 MiB of pages keeps at
 * most the budget (plus the page being stored) dirty, and every byte
 * reaches the file. */
static int test_mmap_budget_respected(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_options o = {.size = sizeof(o), .cache_bytes = 64 << 10};
    struct uext4_fs *fs = open_img(img, &o);
    static char big[1 << 20], back[1 << 20];
    struct stat st = {.st_size = sizeof(big)};
    unsigned most = 0;
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "m");
    CHECK_EQ(uext4_setattr(fs, &root, ino, &st, UEXT4_SET_SIZE, NULL), 0);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 31 + i / 4096);
    for (size_t off = 0; off < sizeof(big); off += 4096) {
        unsigned d;
        CHECK_EQ(uext4_mmap_store(fs, ino, (off_t)off, big + off, 4096), 0);
        d = uext4_dirty_pages(fs, ino);
        most = d > most ? d : most;
    }
    CHECK(most <= (64 << 10) / 4096 + 1);
    CHECK_EQ(uext4_read(fs, ino, back, sizeof(back), 0), (ssize_t)sizeof(back));
    CHECK(!memcmp(back, big, sizeof(big)));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_unlinked_open_file_lives_until_release(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    struct statvfs before, after;
    char big[8192];
    uint32_t ino;

    CHECK(fs);
    memset(big, 7, sizeof(big));
    CHECK_EQ(uext4_statfs(fs, &before), 0);
    ino = create(fs, UEXT4_ROOT_INO, "gone");
    CHECK_EQ(uext4_open_file(fs, &root, ino, O_RDWR), 0);
    CHECK_EQ(write_all(fs, ino, big, sizeof(big), 0), 0);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "gone"), 0);
    CHECK(read_is(fs, ino, big, sizeof(big)));
    uext4_forget(fs, ino, 1);
    CHECK_EQ(uext4_release(fs, ino), 0);
    CHECK_EQ(uext4_statfs(fs, &after), 0);
    CHECK_EQ(after.f_bfree, before.f_bfree);
    CHECK_EQ(after.f_ffree, before.f_ffree);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A file that filled the image ends on its last block; libext2fs 1.47.0
 * cannot free such an extent (punch.c works around it). Deleting the file
 * must free everything and leave the image clean. */
static int test_enospc_then_delete(void)
{
    const char *img = mkimg("-t ext4 -O ^has_journal -N 256 -m 0 -b 4096");
    struct uext4_fs *fs = open_img(img, NULL);
    static char buf[65536];
    struct statvfs before, after;
    off_t off = 0;
    ssize_t w;
    uint32_t ino;

    CHECK(fs);
    memset(buf, 'f', sizeof(buf));
    CHECK_EQ(uext4_statfs(fs, &before), 0);
    ino = create(fs, UEXT4_ROOT_INO, "filler");
    while ((w = uext4_write(fs, &root, ino, buf, sizeof(buf), off, 0)) > 0)
        off += w;
    CHECK_EQ(w, -ENOSPC);
    CHECK(off > 16 << 20);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "filler"), 0);
    CHECK_EQ(uext4_statfs(fs, &after), 0);
    CHECK_EQ(after.f_bfree, before.f_bfree);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A partition of a disk image: 64 KiB of 'Z' before the file system,
 * 64 KiB of 'z' after it. */
#define PART_GAP (64 << 10)
#define PART_FS  (8 << 20)

static const char *partition_image(void)
{
    static char path[128];
    char cmd[1024];

    snprintf(path, sizeof(path), "%s/p.img", tmpdir);
    unlink(path);
    snprintf(cmd, sizeof(cmd),
             "head -c %d /dev/zero | tr '\\0' Z >%s && mke2fs -q -F -t ext4 -E offset=%d %s %dk "
             ">/dev/null 2>&1 && head -c %d /dev/zero | tr '\\0' z >>%s",
             PART_GAP, path, PART_GAP, path, PART_FS >> 10, PART_GAP, path);
    return system(cmd) == 0 ? path : NULL;
}

/* The gaps around the file system still hold their bytes. */
static int gaps_intact(const char *img)
{
    static char buf[PART_GAP];
    int fd = open(img, O_RDONLY), ok = fd >= 0;

    for (int g = 0; ok && g < 2; g++) {
        off_t at = g ? PART_GAP + PART_FS : 0;
        ok = pread(fd, buf, sizeof(buf), at) == (ssize_t)sizeof(buf);
        for (size_t i = 0; ok && i < sizeof(buf); i++)
            ok = buf[i] == (g ? 'z' : 'Z');
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* offset/sizelimit: the file system is found at its offset, filled to
 * ENOSPC without a byte written outside it, and clean after; a window
 * smaller than the file system, or an offset that misses it, refused. */
static int test_partition_window(void)
{
    const char *img = partition_image();
    struct uext4_options o;
    struct uext4_fs *fs = NULL;
    static char buf[65536];
    char fsck[256], why[256];
    off_t off = 0;
    ssize_t w;
    uint32_t ino;

    CHECK(img);
    uext4_options_init(&o, sizeof(o));
    o.offset = PART_GAP;
    o.sizelimit = PART_FS - 4096;
    CHECK_EQ(uext4_open(img, &o, &fs, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "does not fit in offset=65536,sizelimit="));
    o.offset = 0;
    o.sizelimit = 0;
    CHECK_EQ(uext4_open(img, &o, &fs, why, sizeof(why)), -EINVAL);
    o.offset = PART_GAP;
    o.sizelimit = PART_FS;
    fs = open_img(img, &o);
    CHECK(fs);
    memset(buf, 'f', sizeof(buf));
    ino = create(fs, UEXT4_ROOT_INO, "filler");
    CHECK(ino);
    while ((w = uext4_write(fs, &root, ino, buf, sizeof(buf), off, 0)) > 0)
        off += w;
    CHECK_EQ(w, -ENOSPC);
    CHECK(off > PART_FS / 2);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(gaps_intact(img));
    snprintf(fsck, sizeof(fsck), "%s?offset=%d", img, PART_GAP);
    CHECK(fsck_clean(fsck));
    fs = open_img(img, &o);
    CHECK(fs);
    CHECK_EQ(size_of(fs, ino), (uint64_t)off);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "filler"), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(gaps_intact(img));
    CHECK(fsck_clean(fsck));
    return 0;
}

/* The window's edges, as a loop device takes them: a sizelimit reaching
 * past the largest file offset (INT64_MAX) ends at the end of the file;
 * an offset past it is refused by name; the same window opened twice in
 * one process is refused naming this process. */
static int test_partition_window_edges(void)
{
    const char *img = partition_image();
    struct uext4_options o;
    struct uext4_fs *fs = NULL, *fs2 = NULL;
    char want[64], why[256];

    CHECK(img);
    uext4_options_init(&o, sizeof(o));
    o.offset = UINT64_MAX;
    CHECK_EQ(uext4_open(img, &o, &fs, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "offset=18446744073709551615 is past the end of image"));
    o.offset = PART_GAP;
    o.sizelimit = INT64_MAX;
    fs = open_img(img, &o);
    CHECK(fs);
    CHECK(create(fs, UEXT4_ROOT_INO, "edge"));
    CHECK_EQ(uext4_open(img, &o, &fs2, why, sizeof(why)), -EBUSY);
    snprintf(want, sizeof(want), "pid %ld (", (long)getpid());
    CHECK(strstr(why, want));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(gaps_intact(img));
    return 0;
}

static int test_rename_dir_across_parents(void)
{
    const char *img = mkimg("-t ext4 -O inline_data");
    struct uext4_fs *fs = open_img(img, NULL);
    struct stat a, b, x, dd;

    CHECK(fs);
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "a", 0755, &a), 0);
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "b", 0755, &b), 0);
    CHECK_EQ(uext4_mkdir(fs, &root, (uint32_t)a.st_ino, "x", 0755, &x), 0);
    CHECK_EQ(uext4_rename(fs, &root, (uint32_t)a.st_ino, "x", (uint32_t)b.st_ino, "x", 0), 0);
    CHECK_EQ(uext4_lookup(fs, &root, (uint32_t)x.st_ino, "..", &dd), 0);
    CHECK_EQ(dd.st_ino, b.st_ino);
    CHECK_EQ(uext4_getattr(fs, (uint32_t)a.st_ino, &a), 0);
    CHECK_EQ(uext4_getattr(fs, (uint32_t)b.st_ino, &b), 0);
    CHECK_EQ(a.st_nlink, 2);
    CHECK_EQ(b.st_nlink, 3);
    /* Not into its own subtree. */
    CHECK_EQ(uext4_rename(fs, &root, UEXT4_ROOT_INO, "b", (uint32_t)x.st_ino, "b", 0), -EINVAL);
    CHECK_EQ(
        uext4_rename(fs, &root, UEXT4_ROOT_INO, "a", UEXT4_ROOT_INO, "b", UEXT4_RENAME_NOREPLACE),
        -EEXIST);
    CHECK_EQ(uext4_rename(fs, &root, UEXT4_ROOT_INO, "a", UEXT4_ROOT_INO, "b", 0), -ENOTEMPTY);
    CHECK_EQ(
        uext4_rename(fs, &root, UEXT4_ROOT_INO, "a", UEXT4_ROOT_INO, "b", UEXT4_RENAME_EXCHANGE),
        0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_large_directory(void)
{
    const char *img = mkimg("-t ext4 -N 8192");
    struct uext4_fs *fs = open_img(img, NULL);
    struct uext4_dir *dir;
    char name[64];
    unsigned count = 0;

    CHECK(fs);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "entry-with-a-long-name-%05d", i);
        CHECK(create(fs, UEXT4_ROOT_INO, name));
    }
    /* Duplicates are refused through the index too. */
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "entry-with-a-long-name-04999", S_IFREG | 0644,
                         0, &(struct stat){0}),
             -EEXIST);
    for (int i = 0; i < 5000; i += 7) {
        struct stat st;
        snprintf(name, sizeof(name), "entry-with-a-long-name-%05d", i);
        CHECK_EQ(uext4_lookup(fs, &root, UEXT4_ROOT_INO, name, &st), 0);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(name, sizeof(name), "entry-with-a-long-name-%05d", i);
        CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, name), 0);
    }
    CHECK_EQ(
        uext4_lookup(fs, &root, UEXT4_ROOT_INO, "entry-with-a-long-name-00000", &(struct stat){0}),
        -ENOENT);
    CHECK_EQ(uext4_opendir(fs, &root, UEXT4_ROOT_INO, &dir), 0);
    int fill(void *ctx, const char *n, uint32_t ino, unsigned dt, uint64_t next)
    {
        (*(unsigned *)ctx)++;
        return 0;
    }
    CHECK_EQ(uext4_readdir(fs, dir, 0, fill, &count), 0);
    uext4_releasedir(fs, dir);
    CHECK_EQ(count, 2500 + 3); /* ., .., lost+found */
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* The first few names a listing gives, as stored, and how many it gives. */
struct casefold_seen {
    char names[4][16];
    unsigned kept, count;
};

static int casefold_listed(void *ctx, const char *n, uint32_t ino, unsigned dt, uint64_t next)
{
    struct casefold_seen *seen = ctx;

    (void)ino, (void)dt, (void)next;
    if (seen->kept < 4 && strcmp(n, ".") && strcmp(n, ".."))
        snprintf(seen->names[seen->kept++], sizeof(seen->names[0]), "%.15s", n);
    seen->count++;
    return 0;
}

/* Casefold in library mode: names by any case in a +F directory, the
 * stored names listed, an indexed one hashed as e2fsck expects. */
static int test_casefold_dir(void)
{
    const char *img = mkimg("-t ext4 -O casefold");
    struct uext4_fs *fs = open_img(img, NULL);
    struct uext4_fileattr fa;
    struct uext4_dir *dir;
    struct stat d, st;
    struct casefold_seen seen = {0};
    char name[64];
    uint32_t f;

    CHECK(fs);
    CHECK(uext4_has_casefold(fs));
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "cf", 0755, &d), 0);
    CHECK_EQ(uext4_fileattr_get(fs, (uint32_t)d.st_ino, &fa), 0);
    CHECK_EQ(uext4_fileattr_set(fs, &root, (uint32_t)d.st_ino, fa.flags | 0x40000000u, 0), 0);
    f = create(fs, (uint32_t)d.st_ino, "Readme");
    CHECK(f);
    CHECK_EQ(uext4_lookup(fs, &root, (uint32_t)d.st_ino, "README", &st), 0);
    CHECK_EQ(st.st_ino, f);
    CHECK_EQ(uext4_mknod(fs, &root, (uint32_t)d.st_ino, "readME", S_IFREG | 0644, 0, &st), -EEXIST);
    /* +F only while empty */
    CHECK_EQ(uext4_fileattr_set(fs, &root, (uint32_t)d.st_ino, fa.flags, 0), -ENOTEMPTY);
    CHECK_EQ(uext4_rename(fs, &root, (uint32_t)d.st_ino, "README", (uint32_t)d.st_ino, "Other", 0),
             0);
    CHECK_EQ(uext4_lookup(fs, &root, (uint32_t)d.st_ino, "readme", &st), -ENOENT);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "Casefolded-Entry-Name-%03d", i);
        CHECK(create(fs, (uint32_t)d.st_ino, name));
    }
    for (int i = 0; i < 300; i += 2) {
        snprintf(name, sizeof(name), "CASEFOLDED-ENTRY-NAME-%03d", i);
        CHECK_EQ(uext4_unlink(fs, &root, (uint32_t)d.st_ino, name), 0);
    }
    CHECK_EQ(uext4_unlink(fs, &root, (uint32_t)d.st_ino, "OTHER"), 0);
    CHECK_EQ(uext4_opendir(fs, &root, (uint32_t)d.st_ino, &dir), 0);
    CHECK_EQ(uext4_readdir(fs, dir, 0, casefold_listed, &seen), 0);
    uext4_releasedir(fs, dir);
    CHECK_EQ(seen.count, 150 + 2);
    CHECK(!strcmp(seen.names[0], "Casefolded-Entr")); /* as created */
    CHECK_EQ(uext4_close(fs), 0);
    CHECK((disk_flags(img, "/cf") & 0x40001000) == 0x40001000); /* +F, indexed */
    CHECK(fsck_clean(img));
    return 0;
}

static int test_ext3_block_mapped(void)
{
    const char *img = mkimg("-t ext3");
    struct uext4_fs *fs = open_img(img, NULL);
    static char big[200000], back[200000];
    uint32_t ino;

    CHECK(fs);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + i / 300);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    CHECK_EQ(write_all(fs, ino, big, sizeof(big), 0), 0);
    CHECK_EQ(uext4_read(fs, ino, back, sizeof(back), 0), (ssize_t)sizeof(back));
    CHECK(!memcmp(big, back, sizeof(big)));
    CHECK_EQ(uext4_fallocate(fs, &root, ino, 0, 0, 4096), -EOPNOTSUPP);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_fallocate_punch_seek(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    static char blk[4096], back[3 * 4096];
    uint32_t ino;

    CHECK(fs);
    memset(blk, 'd', sizeof(blk));
    ino = create(fs, UEXT4_ROOT_INO, "f");
    for (int i = 0; i < 3; i++)
        CHECK_EQ(write_all(fs, ino, blk, sizeof(blk), (off_t)i * 4096), 0);
    CHECK_EQ(
        uext4_fallocate(fs, &root, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096), 0);
    CHECK_EQ(uext4_read(fs, ino, back, sizeof(back), 0), (ssize_t)sizeof(back));
    CHECK(!memcmp(back, blk, 4096));
    CHECK(back[4096] == 0 && back[8191] == 0 && back[8192] == 'd');
    CHECK_EQ(uext4_lseek(fs, ino, 0, SEEK_HOLE), 4096);
    CHECK_EQ(uext4_lseek(fs, ino, 4096, SEEK_DATA), 8192);
    CHECK_EQ(uext4_lseek(fs, ino, 12288, SEEK_DATA), -ENXIO);
    CHECK_EQ(uext4_fallocate(fs, &root, ino, 0, 0, 65536), 0);
    CHECK_EQ(size_of(fs, ino), 65536);
    CHECK_EQ(uext4_fallocate(fs, &root, ino, FALLOC_FL_KEEP_SIZE, 65536, 65536), 0);
    CHECK_EQ(size_of(fs, ino), 65536);
    CHECK_EQ(uext4_read(fs, ino, back, sizeof(back), 4096), (ssize_t)sizeof(back));
    CHECK(back[0] == 0 && back[4096] == 'd');
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A read by reference: gathers the segments into a buffer with pread. */
struct ref_copy {
    char *buf;
    size_t cap, got;
    unsigned calls;
};

static int ref_gather(void *arg, int fd, const struct uext4_read_seg *segs, unsigned nseg,
                      size_t total)
{
    struct ref_copy *rc = arg;
    size_t at = 0;

    rc->calls++;
    for (unsigned i = 0; i < nseg; i++) {
        if (at + segs[i].len > rc->cap)
            return -EOVERFLOW;
        if (segs[i].pos < 0)
            memset(rc->buf + at, 0, segs[i].len);
        else if (pread(fd, rc->buf + at, segs[i].len, segs[i].pos) != (ssize_t)segs[i].len)
            return -EIO;
        at += segs[i].len;
    }
    rc->got = at;
    return at == total ? 0 : -EPROTO;
}

/* uext4_read_ref() against uext4_read(), over data, holes, unwritten
 * extents, the EOF, a block not yet written home, an inline file. */
static int test_read_ref(void)
{
    const char *img = mkimg("-t ext4 -O inline_data");
    struct uext4_fs *fs = open_img(img, NULL);
    static char a[256 * 1024], b[256 * 1024], blk[4096];
    struct ref_copy rc = {.buf = b, .cap = sizeof(b)};
    static const struct {
        off_t off;
        size_t size;
    } reads[] = {{0, 65536},       {100, 70000}, {4096 * 5 + 7, 9000},
                 {200000, 100000}, {300000, 10}, {4096 * 40, 65536}};
    uint32_t ino, small;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    for (int i = 0; i < 64; i += 3) {
        memset(blk, 'a' + i % 26, sizeof(blk));
        CHECK_EQ(write_all(fs, ino, blk, sizeof(blk), (off_t)i * 4096), 0);
    }
    /* Unwritten blocks, then one written into (through the log). */
    CHECK_EQ(uext4_fallocate(fs, &root, ino, 0, 4096 * 64, 4096 * 8), 0);
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        ssize_t n = uext4_read(fs, ino, a, reads[i].size, reads[i].off);

        CHECK(n >= 0);
        rc.got = 0;
        CHECK_EQ(uext4_read_ref(fs, ino, reads[i].size, reads[i].off, ref_gather, &rc), 0);
        CHECK_EQ((ssize_t)rc.got, n);
        CHECK(!memcmp(a, b, (size_t)n));
    }
    /* 22 pieces of data and 21 holes: more than a read by reference takes. */
    CHECK_EQ(uext4_read_ref(fs, ino, 262144, 0, ref_gather, &rc), -EOPNOTSUPP);
    memset(blk, 'W', sizeof(blk));
    CHECK_EQ(write_all(fs, ino, blk, sizeof(blk), 4096 * 66), 0);
    CHECK_EQ(uext4_read_ref(fs, ino, 65536, 4096 * 60, ref_gather, &rc), -EOPNOTSUPP);
    CHECK_EQ(uext4_fsync(fs, ino, false), 0);
    CHECK_EQ(uext4_read_ref(fs, ino, 65536, 4096 * 60, ref_gather, &rc), 0);
    CHECK(!memcmp(b + 4096 * 6, blk, sizeof(blk)));
    small = create(fs, UEXT4_ROOT_INO, "small");
    CHECK_EQ(write_all(fs, small, "inline", 6, 0), 0);
    CHECK_EQ(uext4_read_ref(fs, small, 65536, 0, ref_gather, &rc), -EOPNOTSUPP);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A pipe holding @n bytes of @c, its read end non-blocking (as the FUSE
 * channel's): fds[0] to read, fds[1] to close. */
static int short_pipe(int fds[2], size_t n, char c)
{
    char buf[8192];

    if (n > sizeof(buf) || pipe2(fds, O_CLOEXEC) || fcntl(fds[0], F_SETFL, O_NONBLOCK))
        return -1;
    memset(buf, c, n);
    return write(fds[1], buf, n) == (ssize_t)n ? 0 : -1;
}

/* uext4_write_pipe() whose pipe runs dry part way (the caller's bug): the
 * write fails with EIO. -EAGAIN would tell the caller that nothing was
 * taken and to write the bytes from memory, and bytes were taken (the
 * channel's read end does not block, so an empty pipe says EAGAIN). Whole
 * blocks spliced in place, a partial block read from the pipe, and an
 * extension whose new blocks go back. */
static int test_write_pipe_runs_dry(void)
{
    static const struct {
        const char *name;
        off_t off;
        size_t size, in_pipe;
    } cases[] = {
        {"whole blocks in place", 0, 8192, 4096},
        {"a partial block", 100, 4000, 0},
        {"an extension", 16384, 8192, 4096},
    };
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    static char blk[16384];
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    memset(blk, 'a', sizeof(blk));
    CHECK_EQ(write_all(fs, ino, blk, sizeof(blk), 0), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fds[2];
        ssize_t n;

        fprintf(stderr, "  %s\n", cases[i].name);
        CHECK_EQ(short_pipe(fds, cases[i].in_pipe, 'p'), 0);
        n = uext4_write_pipe(fs, &root, ino, fds[0], cases[i].size, cases[i].off, 0);
        close(fds[0]);
        close(fds[1]);
        CHECK_EQ(n, -EIO);
        CHECK_EQ(size_of(fs, ino), sizeof(blk));
    }
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* uext4_write_pipe_early()'s answer, as a FUSE daemon records it. */
struct told_rec {
    unsigned calls;
    size_t n;
};

static void told_cb(void *arg, size_t n)
{
    struct told_rec *t = arg;

    t->calls++;
    t->n = n;
}

/* One uext4_write_pipe_early() of @size bytes at @off, @in_pipe of them
 * 'e' in the pipe: its return, the answer in *@t, *@told. */
static ssize_t early_write(struct uext4_fs *fs, uint32_t ino, off_t off, size_t size,
                           size_t in_pipe, struct told_rec *t, bool *told)
{
    int fds[2];
    ssize_t n;

    *t = (struct told_rec){0};
    *told = false;
    if (short_pipe(fds, in_pipe, 'e'))
        return -999;
    n = uext4_write_pipe_early(fs, &root, ino, fds[0], size, off, 0, told_cb, t, told);
    close(fds[0]);
    close(fds[1]);
    return n;
}

/* uext4_write_pipe_early() answers once the blocks are allocated, with the
 * count it then writes; a write that fails after the answer (here its pipe
 * runs dry) returns the error and leaves it for the file's next fsync and
 * the next sync, once each; no answer where the bytes must pass through
 * memory (-EAGAIN) nor for a chattr +S file (durable first). */
static int test_write_pipe_early(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    static char blk[16384], got[16384];
    struct uext4_fileattr fa;
    struct told_rec t;
    uint32_t ino, fresh;
    bool told;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    memset(blk, 'a', sizeof(blk));
    CHECK_EQ(write_all(fs, ino, blk, sizeof(blk), 0), 0);
    /* In place and past EOF: answered with the count, then written. */
    CHECK_EQ(early_write(fs, ino, 4096, 8192, 8192, &t, &told), 8192);
    CHECK(told && t.calls == 1 && t.n == 8192);
    CHECK_EQ(early_write(fs, ino, 16384, 8192, 8192, &t, &told), 8192);
    CHECK(told && t.calls == 1 && t.n == 8192);
    CHECK_EQ(size_of(fs, ino), 24576);
    CHECK_EQ(uext4_read(fs, ino, got, 16384, 0), 16384);
    memset(blk + 4096, 'e', 8192);
    CHECK(!memcmp(got, blk, sizeof(got)));
    CHECK_EQ(uext4_fsync(fs, ino, false), 0);
    /* Answered, then short of bytes: the error, kept for fsync and sync. */
    CHECK_EQ(early_write(fs, ino, 0, 8192, 4096, &t, &told), -EIO);
    CHECK(told && t.calls == 1 && t.n == 8192);
    CHECK_EQ(uext4_fsync(fs, ino, false), -EIO);
    CHECK_EQ(uext4_fsync(fs, ino, false), 0);
    CHECK_EQ(uext4_sync(fs), -EIO);
    CHECK_EQ(uext4_sync(fs), 0);
    /* Through memory (a new file may yet go inline): no answer. */
    fresh = create(fs, UEXT4_ROOT_INO, "new");
    CHECK_EQ(early_write(fs, fresh, 0, 8192, 8192, &t, &told), -EAGAIN);
    CHECK(!told && t.calls == 0);
    /* chattr +S: written and committed before the return, unannounced. */
    CHECK_EQ(uext4_fileattr_get(fs, ino, &fa), 0);
    CHECK_EQ(uext4_fileattr_set(fs, &root, ino, fa.flags | 0x8 /* FS_SYNC_FL */, 0), 0);
    CHECK_EQ(early_write(fs, ino, 0, 8192, 8192, &t, &told), 8192);
    CHECK(!told && t.calls == 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_permissions_and_sticky(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    const struct uext4_cred other = {.uid = 1001, .gid = 1001, .umask = 022};
    struct stat st, tmp, in = {.st_mode = 01777};

    CHECK(fs);
    CHECK_EQ(uext4_mknod(fs, &user, UEXT4_ROOT_INO, "x", S_IFREG | 0644, 0, &st), -EACCES);
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "tmp", 0777, &tmp), 0);
    CHECK_EQ(tmp.st_mode & 07777, 0755); /* umask 022 */
    CHECK_EQ(uext4_setattr(fs, &root, (uint32_t)tmp.st_ino, &in, UEXT4_SET_MODE, &tmp), 0);
    CHECK_EQ(uext4_mknod(fs, &user, (uint32_t)tmp.st_ino, "mine", S_IFREG | 0666, 0, &st), 0);
    CHECK_EQ(st.st_uid, 1000);
    CHECK_EQ(st.st_mode & 0777, 0644);
    CHECK_EQ(uext4_unlink(fs, &other, (uint32_t)tmp.st_ino, "mine"), -EPERM);
    CHECK_EQ(uext4_open_file(fs, &other, (uint32_t)st.st_ino, O_WRONLY), -EACCES);
    CHECK_EQ(uext4_open_file(fs, &other, (uint32_t)st.st_ino, O_RDONLY), 0);
    CHECK_EQ(uext4_release(fs, (uint32_t)st.st_ino), 0);
    CHECK_EQ(uext4_unlink(fs, &user, (uint32_t)tmp.st_ino, "mine"), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static bool no_fsetid(const struct uext4_cred *cr)
{
    (void)cr;
    return false;
}

/* Library callers say through has_fsetid whether uid 0 keeps setuid/setgid
 * when it modifies a file; without the callback it does. */
static int test_kill_privs_fsetid(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    struct uext4_cred dropped = root;
    const struct {
        const char *name;
        const struct uext4_cred *cr;
        bool fallocate;
        mode_t want;
    } cases[] = {
        {"w_keep", &root, false, 06777},
        {"w_drop", &dropped, false, 0777},
        {"f_keep", &root, true, 06777},
        {"f_drop", &dropped, true, 0777},
    };
    struct stat st, in = {.st_mode = 06777};

    CHECK(fs);
    dropped.has_fsetid = no_fsetid;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t ino = create(fs, UEXT4_ROOT_INO, cases[i].name);

        CHECK_EQ(uext4_setattr(fs, &root, ino, &in, UEXT4_SET_MODE, &st), 0);
        if (cases[i].fallocate)
            CHECK_EQ(uext4_fallocate(fs, cases[i].cr, ino, 0, 0, 4096), 0);
        else
            CHECK_EQ(uext4_write(fs, cases[i].cr, ino, "x", 1, 0, 0), 1);
        CHECK_EQ(uext4_getattr(fs, ino, &st), 0);
        if ((st.st_mode & 07777) != cases[i].want) {
            fprintf(stderr, "%s: mode %o, want %o\n", cases[i].name, (unsigned)(st.st_mode & 07777),
                    (unsigned)cases[i].want);
            return 1;
        }
    }
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_xattrs_and_acl_mode(void)
{
    const char *img = mkimg("-t ext4 -O inline_data");
    struct uext4_fs *fs = open_img(img, NULL);
    /* u::rw-, g::r--, o::--- : equivalent to mode 0640, stored as mode only */
    static const unsigned char acl[] = {2,    0,    0, 0, 1,    0,    6,    0,    0xff, 0xff,
                                        0xff, 0xff, 4, 0, 4,    0,    0xff, 0xff, 0xff, 0xff,
                                        0x20, 0,    0, 0, 0xff, 0xff, 0xff, 0xff};
    char buf[256];
    struct stat st;
    uint32_t ino;

    CHECK(fs);
    ino = create(fs, UEXT4_ROOT_INO, "x");
    CHECK_EQ(write_all(fs, ino, "inline", 6, 0), 0);
    CHECK_EQ(uext4_setxattr(fs, &root, ino, "user.k", "v1", 2, XATTR_REPLACE), -ENODATA);
    CHECK_EQ(uext4_setxattr(fs, &root, ino, "user.k", "v1", 2, XATTR_CREATE), 0);
    CHECK_EQ(uext4_setxattr(fs, &root, ino, "user.k", "v2", 2, XATTR_CREATE), -EEXIST);
    CHECK_EQ(uext4_getxattr(fs, &root, ino, "user.k", buf, sizeof(buf)), 2);
    CHECK(!memcmp(buf, "v1", 2));
    CHECK_EQ(uext4_getxattr(fs, &root, ino, "user.k", buf, 1), -ERANGE);
    CHECK_EQ(uext4_listxattr(fs, &root, ino, buf, sizeof(buf)), 7); /* "user.k\0" only */
    CHECK_EQ(uext4_getxattr(fs, &root, ino, "system.data", buf, sizeof(buf)), -EOPNOTSUPP);
    CHECK_EQ(uext4_setxattr(fs, &root, ino, "system.posix_acl_access", acl, sizeof(acl), 0), 0);
    CHECK_EQ(uext4_getattr(fs, ino, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0640);
    CHECK_EQ(uext4_getxattr(fs, &root, ino, "system.posix_acl_access", buf, sizeof(buf)), -ENODATA);
    CHECK_EQ(uext4_removexattr(fs, &root, ino, "user.k"), 0);
    CHECK_EQ(uext4_removexattr(fs, &root, ino, "user.k"), -ENODATA);
    CHECK(read_is(fs, ino, "inline", 6));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* What a create answers (the FUSE entry's attributes) is what reading the
 * inode back gives: a plain file, a device, files in a directory whose
 * flags they inherit (+S +A), and in one with a default ACL, whose
 * access ACL takes an xattr block on 128-byte inodes (st_blocks). */
static int same_stat(const struct stat *a, const struct stat *b)
{
    CHECK_EQ(a->st_ino, b->st_ino);
    CHECK_EQ(a->st_mode, b->st_mode);
    CHECK_EQ(a->st_nlink, b->st_nlink);
    CHECK_EQ(a->st_uid, b->st_uid);
    CHECK_EQ(a->st_gid, b->st_gid);
    CHECK_EQ(a->st_rdev, b->st_rdev);
    CHECK_EQ(a->st_size, b->st_size);
    CHECK_EQ(a->st_blocks, b->st_blocks);
    CHECK_EQ(a->st_mtim.tv_sec, b->st_mtim.tv_sec);
    CHECK_EQ(a->st_mtim.tv_nsec, b->st_mtim.tv_nsec);
    CHECK_EQ(a->st_ctim.tv_nsec, b->st_ctim.tv_nsec);
    CHECK_EQ(a->st_atim.tv_nsec, b->st_atim.tv_nsec);
    return 0;
}

static int test_create_answers_what_is_stored(void)
{
    const char *img = mkimg("-t ext4 -I 128");
    struct uext4_fs *fs = open_img(img, NULL);
    /* u::rwx, u:1000:rwx, g::r-x, m::rwx, o::--- */
    static const unsigned char acl[] = {
        2, 0,    0,    0,    1,    0,    7,    0, 0xff, 0xff, 0xff, 0xff, 2,    0,    7,
        0, 0xe8, 3,    0,    0,    4,    0,    5, 0,    0xff, 0xff, 0xff, 0xff, 0x10, 0,
        7, 0,    0xff, 0xff, 0xff, 0xff, 0x20, 0, 0,    0,    0xff, 0xff, 0xff, 0xff};
    struct stat st, back, d;
    struct uext4_fileattr fa;

    CHECK(fs);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "plain", S_IFREG | 0644, 0, &st), 0);
    CHECK_EQ(uext4_getattr(fs, (uint32_t)st.st_ino, &back), 0);
    CHECK_EQ(same_stat(&st, &back), 0);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "dev", S_IFCHR | 0600, makedev(300, 5), &st),
             0);
    CHECK_EQ(uext4_getattr(fs, (uint32_t)st.st_ino, &back), 0);
    CHECK_EQ(same_stat(&st, &back), 0);
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "flags", 0755, &d), 0);
    CHECK_EQ(uext4_fileattr_get(fs, (uint32_t)d.st_ino, &fa), 0);
    CHECK_EQ(uext4_fileattr_set(fs, &root, (uint32_t)d.st_ino, fa.flags | 0x88, 0), 0);
    CHECK_EQ(uext4_mknod(fs, &root, (uint32_t)d.st_ino, "f", S_IFREG | 0644, 0, &st), 0);
    CHECK_EQ(uext4_getattr(fs, (uint32_t)st.st_ino, &back), 0);
    CHECK_EQ(same_stat(&st, &back), 0);
    CHECK_EQ(uext4_fileattr_get(fs, (uint32_t)st.st_ino, &fa), 0);
    CHECK_EQ(fa.flags & 0x88, 0x88);
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "acl", 0755, &d), 0);
    CHECK_EQ(uext4_setxattr(fs, &root, (uint32_t)d.st_ino, "system.posix_acl_default", acl,
                            sizeof(acl), 0),
             0);
    CHECK_EQ(uext4_mknod(fs, &root, (uint32_t)d.st_ino, "f", S_IFREG | 0666, 0, &st), 0);
    CHECK_EQ(uext4_getattr(fs, (uint32_t)st.st_ino, &back), 0);
    CHECK(back.st_blocks > 0); /* the access ACL's block */
    CHECK_EQ(same_stat(&st, &back), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_second_open_refused(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL), *fs2 = NULL;
    char why[256];

    CHECK(fs);
    CHECK_EQ(uext4_open(img, NULL, &fs2, why, sizeof(why)), -EBUSY);
    CHECK(strstr(why, "in use"));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A superblock field as dumpe2fs -h prints it ("" if absent). */
static const char *sb_field(const char *img, const char *name, char *out, size_t size)
{
    char cmd[512], line[512];
    size_t n = strlen(name);
    FILE *p;

    out[0] = 0;
    snprintf(cmd, sizeof(cmd), "dumpe2fs -h %s 2>/dev/null", img);
    p = popen(cmd, "r");
    if (!p)
        return out;
    while (fgets(line, sizeof(line), p)) {
        if (!strncmp(line, name, n) && line[n] == ':') {
            char *v = line + n + 1;
            v += strspn(v, " ");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, size, "%s", v);
        }
    }
    pclose(p);
    return out;
}

/* A fallocate that runs out of space part way keeps what it placed, as the
 * kernel does, and counts it in i_blocks. libext2fs writes the inode when
 * an extent goes into the root in the inode, not when it goes into a tree
 * block, and uext4 wrote it only on success: the extents placed after the
 * tree grew a block went uncounted (issue 17). Five one-block extents
 * first make the tree outgrow the inode. */
static int test_fallocate_enospc_counts_blocks(void)
{
    const char *img = mkimg("-t ext4 -b 4096");
    struct uext4_fs *fs = open_img(img, NULL);
    struct statvfs before, after;
    struct stat st;
    uint32_t ino;

    CHECK(fs);
    CHECK_EQ(uext4_statfs(fs, &before), 0);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    CHECK(ino);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(uext4_fallocate(fs, &root, ino, FALLOC_FL_KEEP_SIZE, i * 8192, 4096), 0);
    /* Less than the image (ext2fs_fallocate refuses more at once), more
     * than is free. */
    CHECK_EQ(uext4_fallocate(fs, &root, ino, FALLOC_FL_KEEP_SIZE, 1 << 20, (32 << 20) - 4096),
             -ENOSPC);
    CHECK_EQ(uext4_getattr(fs, ino, &st), 0);
    CHECK(st.st_blocks > 8 * 4096); /* most of the free blocks: 16 MiB at least */
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img)); /* i_blocks as mapped */
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), 0);
    CHECK_EQ(uext4_statfs(fs, &after), 0);
    CHECK_EQ(after.f_bfree, before.f_bfree);
    CHECK_EQ(after.f_ffree, before.f_ffree);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* An image whose /f maps more blocks than its i_blocks counts (set by
 * debugfs): freeing it underflows i_blocks. */
static const char *undercounted_image(void)
{
    const char *img = mkimg("-t ext4 -b 4096");
    struct uext4_fs *fs = open_img(img, NULL);
    uint32_t ino;

    if (!fs)
        return NULL;
    ino = create(fs, UEXT4_ROOT_INO, "f");
    if (!ino || uext4_fallocate(fs, &root, ino, 0, 0, 1 << 20) || uext4_close(fs) ||
        !fsck_clean(img))
        return NULL;
    if (sh("debugfs -w -R 'sif /f blocks 8' %s >/dev/null 2>&1", img))
        return NULL;
    return img;
}

/* The last release of an unlinked file whose blocks cannot be freed (a
 * corrupt inode) returns the error; it is recorded in the superblock, and
 * the next fsync reports it once more (FUSE drops release's reply), then
 * no longer. Before, the daemon only logged it. */
static int test_free_failure_reported_at_release(void)
{
    const char *img = undercounted_image();
    struct uext4_fs *fs;
    char buf[64], ino_s[16];
    struct stat st;

    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_lookup(fs, &root, UEXT4_ROOT_INO, "f", &st), 0);
    CHECK_EQ(uext4_open_file(fs, &root, (uint32_t)st.st_ino, O_RDWR), 0);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), 0); /* still open: deferred */
    uext4_forget(fs, (uint32_t)st.st_ino, 1);
    CHECK_EQ(uext4_release(fs, (uint32_t)st.st_ino), -EUCLEAN);
    CHECK_EQ(uext4_fsync(fs, UEXT4_ROOT_INO, false), -EUCLEAN);
    CHECK_EQ(uext4_fsync(fs, UEXT4_ROOT_INO, false), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(!strcmp(sb_field(img, "FS Error count", buf, sizeof(buf)), "1"));
    snprintf(ino_s, sizeof(ino_s), "%lu", (unsigned long)st.st_ino);
    CHECK(!strcmp(sb_field(img, "Last error inode #", buf, sizeof(buf)), ino_s));
    CHECK(!fsck_clean(img)); /* the inode is left for e2fsck */
    sh("e2fsck -fy %s >/dev/null 2>&1", img);
    CHECK(fsck_clean(img));
    return 0;
}

/* Freed at the last forget (no reply to carry an error): recorded, and
 * reported by uext4_sync; and by uext4_close when nothing reported it. An
 * unlink that frees at once returns the error itself. */
static int test_free_failure_reported_at_sync_close(void)
{
    const char *img = undercounted_image();
    struct uext4_fs *fs;
    char buf[64];
    struct stat st;

    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_lookup(fs, &root, UEXT4_ROOT_INO, "f", &st), 0);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), 0); /* looked up: deferred */
    uext4_forget(fs, (uint32_t)st.st_ino, 1);
    CHECK_EQ(uext4_sync(fs), -EUCLEAN);
    CHECK_EQ(uext4_sync(fs), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(!strcmp(sb_field(img, "FS Error count", buf, sizeof(buf)), "1"));

    img = undercounted_image();
    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_lookup(fs, &root, UEXT4_ROOT_INO, "f", &st), 0);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), 0);
    uext4_forget(fs, (uint32_t)st.st_ino, 1);
    CHECK_EQ(uext4_close(fs), -EUCLEAN);
    CHECK(!strcmp(sb_field(img, "FS Error count", buf, sizeof(buf)), "1"));

    img = undercounted_image();
    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), -EUCLEAN);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(!strcmp(sb_field(img, "FS Error count", buf, sizeof(buf)), "1"));
    CHECK(!fsck_clean(img));
    sh("e2fsck -fy %s >/dev/null 2>&1", img);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_not_ext4_refused(void)
{
    char path[128], why[256];
    struct uext4_fs *fs = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/junk.img", tmpdir);
    f = fopen(path, "w");
    CHECK(f);
    for (int i = 0; i < 100000; i++)
        fputc(i % 251, f);
    fclose(f);
    CHECK_EQ(uext4_open(path, NULL, &fs, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "not a valid ext2/3/4"));
    return 0;
}

/* Read-only opens share the image's lock; a read-write one is refused at
 * once while this process holds it (no waiting for ourselves), naming us. */
static int test_ro_opens_share_the_lock(void)
{
    const char *img = mkimg("-t ext4");
    const struct uext4_options ro = {.size = sizeof(ro), .read_only = true};
    struct uext4_fs *a = NULL, *b = NULL, *c = NULL;
    char why[256], pid[64];

    CHECK(img);
    CHECK_EQ(uext4_open(img, &ro, &a, why, sizeof(why)), 0);
    CHECK_EQ(uext4_open(img, &ro, &b, why, sizeof(why)), 0);
    CHECK_EQ(uext4_open(img, NULL, &c, why, sizeof(why)), -EBUSY);
    snprintf(pid, sizeof(pid), "pid %ld (", (long)getpid());
    CHECK(strstr(why, pid));
    CHECK(strstr(why, "holds its lock for reading"));
    CHECK_EQ(uext4_close(b), 0);
    CHECK_EQ(uext4_close(a), 0);
    c = open_img(img, NULL);
    CHECK(c);
    CHECK_EQ(uext4_open(img, &ro, &a, why, sizeof(why)), -EBUSY);
    CHECK(strstr(why, "holds its lock for writing"));
    CHECK_EQ(uext4_close(c), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* Only a regular file or a block device is opened: a FIFO would block the
 * open, a character device would be read forever. */
static int test_not_a_file_refused(void)
{
    const struct uext4_options ro = {.size = sizeof(ro), .read_only = true};
    struct uext4_fs *fs = NULL;
    char path[128], why[256] = "";

    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    CHECK_EQ(mkfifo(path, 0600), 0);
    CHECK_EQ(uext4_open(path, NULL, &fs, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "is a FIFO, not a regular file or a block device"));
    CHECK_EQ(uext4_open(path, &ro, &fs, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "is a FIFO"));
    unlink(path);
    CHECK_EQ(uext4_open("/dev/zero", &ro, &fs, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "'/dev/zero' is a character device"));
    CHECK_EQ(uext4_open(tmpdir, &ro, &fs, why, sizeof(why)), -EISDIR);
    CHECK(strstr(why, "is a directory"));
    return 0;
}

/* `fsverity digest` (fsverity-utils) of @n bytes of @data, SHA-256 with
 * 4 KiB blocks, as the raw digest in @out (32 bytes). */
static int fsverity_digest(const void *data, size_t n, unsigned char *out)
{
    char path[128], cmd[256], hex[80];
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "%s/verity-data", tmpdir);
    f = fopen(path, "w");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f))
        return -1;
    snprintf(cmd, sizeof(cmd), "fsverity digest %s", path);
    f = popen(cmd, "r");
    ok = f && fscanf(f, "sha256:%64s", hex) == 1;
    if (f)
        pclose(f);
    for (int i = 0; ok && i < 32; i++)
        ok = sscanf(hex + 2 * i, "%2hhx", &out[i]) == 1;
    return ok ? 0 : -1;
}

/* uext4_enable_verity() in library mode: the digest is fsverity digest's,
 * the bytes read back, a second enable is EEXIST, an open for writing
 * makes it ETXTBSY until released as such; a bit flipped in a data block
 * in the image fails that block's reads only (EIO). */
static int test_verity_enable_lib(void)
{
    const char *img = mkimg("-t ext4 -b 4096 -O verity");
    static char data[3 * 4096 + 100], back[4096];
    unsigned char want[32], got[64];
    struct uext4_verity_args va = {.hash_algorithm = 1, .block_size = 4096};
    struct uext4_fs *fs = open_img(img, NULL);
    unsigned alg = 0;
    uint32_t v;

    CHECK(fs);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 + i / 4096);
    v = create(fs, UEXT4_ROOT_INO, "v");
    CHECK_EQ(write_all(fs, v, data, sizeof(data), 0), 0);
    CHECK_EQ(uext4_measure_verity(fs, v, &alg, got, sizeof(got)), -ENODATA);
    CHECK_EQ(uext4_open_file(fs, &root, v, O_RDWR), 0);
    CHECK_EQ(uext4_enable_verity(fs, &root, v, O_RDONLY, &va), -ETXTBSY);
    CHECK_EQ(uext4_release_file(fs, v, O_RDWR), 0);
    CHECK_EQ(uext4_enable_verity(fs, &root, v, O_RDONLY, &va), 0);
    CHECK_EQ(uext4_enable_verity(fs, &root, v, O_RDONLY, &va), -EEXIST);
    {
        struct statx stx;
        CHECK_EQ(uext4_statx(fs, v, &stx), 0);
        CHECK(stx.stx_attributes & STATX_ATTR_VERITY);
    }
    CHECK_EQ(uext4_measure_verity(fs, v, &alg, got, 16), -EOVERFLOW);
    CHECK_EQ(uext4_measure_verity(fs, v, &alg, got, sizeof(got)), 32);
    CHECK_EQ(alg, 1);
    CHECK_EQ(fsverity_digest(data, sizeof(data), want), 0);
    CHECK(!memcmp(got, want, 32));
    {
        static char all[sizeof(data)];
        CHECK_EQ(uext4_read(fs, v, all, sizeof(all), 0), (ssize_t)sizeof(all));
        CHECK(!memcmp(all, data, sizeof(all)));
    }
    uext4_forget(fs, v, 1);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    /* Data block 1 flipped in the image (debugfs names its block). */
    CHECK_EQ(sh("sh -c 'b=$(debugfs -R \"bmap /v 1\" %1$s 2>/dev/null); "
                "printf X | dd of=%1$s bs=1 seek=$((b * 4096 + 9)) conv=notrunc 2>/dev/null'",
                img),
             0);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_resolve(fs, "/v", &v), 0);
    CHECK_EQ(uext4_read(fs, v, back, 4096, 0), 4096);
    CHECK(!memcmp(back, data, 4096));
    CHECK_EQ(uext4_read(fs, v, back, 4096, 4096), -EIO);
    CHECK_EQ(uext4_read(fs, v, back, 100, 4096 + 200), -EIO);
    CHECK_EQ(uext4_read(fs, v, back, 4096, 8192), 4096);
    CHECK(!memcmp(back, data + 8192, 4096));
    CHECK_EQ(uext4_read(fs, v, back, 200, 3 * 4096), 100);
    CHECK(!memcmp(back, data + 3 * 4096, 100));
    CHECK_EQ(uext4_close(fs), 0);
    return 0;
}

/* fs-verity files (EXT4_VERITY_FL) refuse every change to their contents
 * with EPERM, through each core entry point; reading and copying from them
 * still work. */
static int test_verity_contents_refused(void)
{
    const char *img = mkimg("-t ext4 -O verity");
    static char data[5000], back[5000];
    struct uext4_fs *fs = open_img(img, NULL);
    struct stat st, in = {.st_size = 0};
    uint32_t v, p;

    CHECK(fs);
    memset(data, 'v', sizeof(data));
    v = create(fs, UEXT4_ROOT_INO, "v");
    p = create(fs, UEXT4_ROOT_INO, "p");
    CHECK_EQ(write_all(fs, v, data, sizeof(data), 0), 0);
    {
        struct uext4_verity_args va = {.hash_algorithm = 1, .block_size = uext4_block_size(fs)};
        CHECK_EQ(uext4_enable_verity(fs, &root, v, O_RDONLY, &va), 0);
    }
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));

    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK(uext4_open_needs_check(fs));
    CHECK_EQ(uext4_lookup(fs, &root, UEXT4_ROOT_INO, "v", &st), 0);
    CHECK_EQ(uext4_open_file(fs, &root, v, O_WRONLY), -EPERM);
    CHECK_EQ(uext4_open_file(fs, &root, v, O_RDWR), -EPERM);
    CHECK_EQ(uext4_write(fs, &root, v, "x", 1, 0, 0), -EPERM);
    CHECK_EQ(uext4_write(fs, &root, v, "x", 1, 0, UEXT4_WRITE_MMAP), -EPERM);
    CHECK_EQ(uext4_mmap_store(fs, v, 0, "x", 1), -EPERM);
    CHECK_EQ(uext4_setattr(fs, &root, v, &in, UEXT4_SET_SIZE, &st), -EPERM);
    CHECK_EQ(uext4_fallocate(fs, &root, v, 0, 0, 65536), -EPERM);
    CHECK_EQ(uext4_fallocate(fs, &root, v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096),
             -EPERM);
    CHECK_EQ(uext4_fallocate(fs, &root, v, FALLOC_FL_ZERO_RANGE, 0, 4096), -EPERM);
    CHECK_EQ(write_all(fs, p, "pp", 2, 0), 0);
    CHECK_EQ(uext4_copy_file_range(fs, &root, p, 0, v, 0, 2), -EPERM);
    CHECK_EQ(uext4_copy_file_range(fs, &root, v, 0, p, 0, sizeof(data)), (ssize_t)sizeof(data));
    CHECK_EQ(uext4_open_file(fs, &root, v, O_RDONLY), 0);
    CHECK_EQ(uext4_release(fs, v), 0);
    CHECK_EQ(uext4_read(fs, v, back, sizeof(back), 0), (ssize_t)sizeof(back));
    CHECK(!memcmp(back, data, sizeof(data)));
    CHECK(read_is(fs, p, data, sizeof(data)));
    uext4_forget(fs, v, 1);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(disk_flags(img, "/v") & 0x100000);
    CHECK(fsck_clean(img));

    fs = open_img(mkimg("-t ext4"), NULL);
    CHECK(fs);
    CHECK(!uext4_open_needs_check(fs));
    CHECK_EQ(uext4_close(fs), 0);
    return 0;
}

/* chattr's rules in the core (through FUSE the kernel checks ownership and
 * CAP_LINUX_IMMUTABLE first; here only the core does), then enforcement. */
static int test_fileattr_rules(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    const struct uext4_cred other = {.uid = 1001, .gid = 1001, .umask = 022};
    struct stat st, in = {.st_size = 0};
    struct uext4_fileattr fa;
    uint32_t ino;

    CHECK(fs);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "f", S_IFREG | 0666, 0, &st), 0);
    ino = (uint32_t)st.st_ino;
    in.st_uid = 1000;
    in.st_gid = 1000;
    CHECK_EQ(uext4_setattr(fs, &root, ino, &in, UEXT4_SET_UID | UEXT4_SET_GID, NULL), 0);
    CHECK_EQ(write_all(fs, ino, "abc", 3, 0), 0);
    CHECK_EQ(uext4_fileattr_get(fs, ino, &fa), 0);
    CHECK_EQ(fa.flags, EXTENTS_FL);
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL | 0x10, 0), -EPERM);   /* +i */
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL | 0x20, 0), -EPERM);   /* +a */
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL | 0x4000, 0), -EPERM); /* +j */
    CHECK_EQ(uext4_fileattr_set(fs, &other, ino, EXTENTS_FL | 0x80, 0), -EPERM);
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL | 0x10000, 0), -EOPNOTSUPP); /* +D */
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL | 0x80000000u, 0), -EOPNOTSUPP);
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, 0, 0), -EOPNOTSUPP);             /* -e */
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL, 5), -EOPNOTSUPP);    /* projid */
    CHECK_EQ(uext4_fileattr_set(fs, &user, ino, EXTENTS_FL | 0x80 | 0x8, 0), 0); /* +AS */
    CHECK_EQ(uext4_fileattr_set(fs, &root, ino, EXTENTS_FL | 0x80 | 0x8 | 0x10, 0), 0);
    /* Immutable: nothing changes, not even for root, but clearing i. */
    CHECK_EQ(uext4_write(fs, &root, ino, "X", 1, 0, 0), -EPERM);
    CHECK_EQ(uext4_setattr(fs, &root, ino, &in, UEXT4_SET_SIZE, NULL), -EPERM);
    CHECK_EQ(uext4_open_file(fs, &root, ino, O_WRONLY), -EPERM);
    CHECK_EQ(uext4_mmap_store(fs, ino, 0, "X", 1), -EPERM);
    CHECK_EQ(uext4_fallocate(fs, &root, ino, 0, 0, 4096), -EPERM);
    CHECK_EQ(uext4_setxattr(fs, &root, ino, "user.a", "1", 1, 0), -EPERM);
    CHECK_EQ(uext4_link(fs, &root, ino, UEXT4_ROOT_INO, "g", &st), -EPERM);
    CHECK_EQ(uext4_rename(fs, &root, UEXT4_ROOT_INO, "f", UEXT4_ROOT_INO, "g", 0), -EPERM);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), -EPERM);
    CHECK_EQ(uext4_fileattr_set(fs, &root, ino, EXTENTS_FL | 0x10, 0), -EPERM); /* -AS */
    CHECK_EQ(uext4_fileattr_set(fs, &root, ino, EXTENTS_FL | 0x20, 0), 0);      /* -iAS +a */
    /* Append-only: the file only grows. */
    CHECK_EQ(uext4_write(fs, &root, ino, "X", 1, 0, 0), -EPERM);
    CHECK_EQ(uext4_write(fs, &root, ino, "def", 3, 3, 0), 3);
    CHECK_EQ(uext4_open_file(fs, &root, ino, O_WRONLY), -EPERM);
    CHECK_EQ(uext4_open_file(fs, &root, ino, O_WRONLY | O_APPEND | O_TRUNC), -EPERM);
    CHECK_EQ(uext4_open_file(fs, &root, ino, O_WRONLY | O_APPEND), 0);
    CHECK_EQ(uext4_release(fs, ino), 0);
    CHECK_EQ(uext4_setattr(fs, &root, ino, &in, UEXT4_SET_SIZE, NULL), -EPERM);
    CHECK_EQ(uext4_fallocate(fs, &root, ino, FALLOC_FL_KEEP_SIZE, 0, 8192), 0);
    CHECK_EQ(uext4_fallocate(fs, &root, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096),
             -EPERM);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "f"), -EPERM);
    CHECK(read_is(fs, ino, "abcdef", 6));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK_EQ(disk_flags(img, "/f"), EXTENTS_FL | 0x20);
    CHECK(fsck_clean(img));
    return 0;
}

/* quota and project in library mode: usage charged to users, groups
 * and projects as e2fsck counts it, PROJINHERIT inheritance, EXDEV across
 * projects, hard limits (none in a fresh image: nothing refused). */
static int test_quota_project_usage(void)
{
    const char *img = mkimg("-t ext4 -b 4096 -O quota,project -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    struct uext4_fileattr fa;
    struct stat st, in = {.st_size = 0};
    char buf[10000];
    uint32_t f, p, g;

    CHECK(fs);
    memset(buf, 'q', sizeof(buf));
    CHECK_EQ(uext4_mknod(fs, &user, UEXT4_ROOT_INO, "f", S_IFREG | 0666, 0, &st), -EACCES);
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "home", 0755, &st), 0);
    in.st_uid = in.st_gid = 1000;
    CHECK_EQ(
        uext4_setattr(fs, &root, (uint32_t)st.st_ino, &in, UEXT4_SET_UID | UEXT4_SET_GID, NULL), 0);
    CHECK_EQ(uext4_mknod(fs, &user, (uint32_t)st.st_ino, "f", S_IFREG | 0666, 0, &st), 0);
    f = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_write(fs, &user, f, buf, sizeof(buf), 0, 0), (ssize_t)sizeof(buf));
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "p", 0755, &st), 0);
    p = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_fileattr_set(fs, &root, p, EXTENTS_FL | 0x20000000u, 9), 0);
    CHECK_EQ(uext4_sync(fs), 0);
    CHECK_EQ(uext4_mknod(fs, &root, p, "g", S_IFREG | 0644, 0, &st), 0);
    g = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_fileattr_get(fs, g, &fa), 0);
    CHECK_EQ(fa.projid, 9);
    CHECK_EQ(uext4_link(fs, &root, f, p, "f", &st), -EXDEV);
    CHECK_EQ(uext4_write(fs, &root, g, buf, 5000, 0, 0), 5000);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    /* Project 9: the directory's block and g's two, two inodes. User
     * 1000: home's block and f's three, two inodes. */
    CHECK(sh("debugfs -R 'list_quota project' %s 2>/dev/null | "
             "grep -Eq '^ +9 +12288 +0 +0 +2 +0 +0$'",
             img) == 0);
    CHECK(sh("debugfs -R 'list_quota user' %s 2>/dev/null | "
             "grep -Eq '^ +1000 +16384 +0 +0 +2 +0 +0$'",
             img) == 0);
    return 0;
}

/* quota with ea_inode in library mode, read-write: each value in an EA
 * inode charges its blocks and one inode to the owner of the file holding
 * it, moved by a chown, dropped with the xattr, as e2fsck counts them. */
static int test_quota_ea_inode(void)
{
    const char *img = mkimg("-t ext4 -b 4096 -O quota,ea_inode -I 256");
    struct uext4_fs *fs = open_img(img, NULL);
    struct stat st, in = {.st_size = 0};
    static char buf[20000];
    uint32_t f, g;

    CHECK(fs);
    CHECK(!uext4_is_read_only(fs));
    memset(buf, 'e', sizeof(buf));
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "f", S_IFREG | 0644, 0, &st), 0);
    f = (uint32_t)st.st_ino;
    in.st_uid = in.st_gid = 1000;
    CHECK_EQ(uext4_setattr(fs, &root, f, &in, UEXT4_SET_UID | UEXT4_SET_GID, NULL), 0);
    CHECK_EQ(uext4_setxattr(fs, &root, f, "user.a", buf, 20000, 0), 0);
    CHECK_EQ(uext4_setxattr(fs, &root, f, "user.b", buf, 9000, 0), 0);
    CHECK_EQ(uext4_setxattr(fs, &root, f, "user.c", buf, 9000, 0), 0);
    CHECK_EQ(uext4_removexattr(fs, &root, f, "user.c"), 0);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "g", S_IFREG | 0644, 0, &st), 0);
    g = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_setxattr(fs, &root, g, "user.a", buf, 9000, 0), 0);
    in.st_uid = in.st_gid = 1001;
    CHECK_EQ(uext4_setattr(fs, &root, g, &in, UEXT4_SET_UID | UEXT4_SET_GID, NULL), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    /* User 1000: f and its two EA inodes (5 + 3 blocks); user 1001: g and
     * its one (3 blocks). */
    CHECK(sh("debugfs -R 'list_quota user' %s 2>/dev/null | "
             "grep -Eq '^ +1000 +32768 +0 +0 +3 +0 +0$'",
             img) == 0);
    CHECK(sh("debugfs -R 'list_quota user' %s 2>/dev/null | "
             "grep -Eq '^ +1001 +12288 +0 +0 +2 +0 +0$'",
             img) == 0);
    return 0;
}

/* uext4_statx: the fields of uext4_getattr, the birth time set at creation
 * (STATX_BTIME only where the inode has room for i_crtime) and ext4's
 * stx_attributes from chattr's flags. */
static int check_statx(const char *mkfs_args, bool has_btime)
{
    const char *img = mkimg(mkfs_args);
    struct uext4_fs *fs = open_img(img, NULL);
    const uint64_t all = STATX_ATTR_APPEND | STATX_ATTR_COMPRESSED | STATX_ATTR_ENCRYPTED |
                         STATX_ATTR_IMMUTABLE | STATX_ATTR_NODUMP | STATX_ATTR_VERITY;
    struct uext4_fileattr fa;
    struct statx sx;
    struct stat st;
    uint32_t ino;

    CHECK(fs);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "f", S_IFREG | 0640, 0, &st), 0);
    ino = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_statx(fs, ino, &sx), 0);
    CHECK_EQ(sx.stx_mask, STATX_BASIC_STATS | (has_btime ? STATX_BTIME : 0));
    CHECK_EQ(sx.stx_ino, ino);
    CHECK_EQ(sx.stx_mode, S_IFREG | 0640);
    CHECK_EQ(sx.stx_nlink, 1);
    CHECK_EQ(sx.stx_mtime.tv_sec, st.st_mtim.tv_sec);
    CHECK_EQ(sx.stx_mtime.tv_nsec, st.st_mtim.tv_nsec);
    /* A new inode is born when it changes last (ext4's __ext4_new_inode). */
    CHECK_EQ(sx.stx_btime.tv_sec, has_btime ? st.st_ctim.tv_sec : 0);
    CHECK_EQ(sx.stx_btime.tv_nsec, has_btime ? st.st_ctim.tv_nsec : 0);
    CHECK_EQ(sx.stx_attributes, 0);
    CHECK_EQ(sx.stx_attributes_mask, all);
    CHECK_EQ(uext4_fileattr_get(fs, ino, &fa), 0);
    CHECK_EQ(uext4_fileattr_set(fs, &root, ino, fa.flags | 0x10 | 0x20 | 0x40, 0), 0); /* +iad */
    CHECK_EQ(uext4_statx(fs, ino, &sx), 0);
    CHECK_EQ(sx.stx_attributes, STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND | STATX_ATTR_NODUMP);
    CHECK_EQ(uext4_fileattr_set(fs, &root, ino, fa.flags | 0x20, 0), 0); /* -id */
    CHECK_EQ(uext4_statx(fs, ino, &sx), 0);
    CHECK_EQ(sx.stx_attributes, STATX_ATTR_APPEND);
    CHECK_EQ(uext4_statx(fs, 4242, &sx), -ENOENT);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static int test_statx(void)
{
    return check_statx("-t ext4", true);
}

static int test_statx_small_inodes(void)
{
    return check_statx("-t ext4 -I 128", false);
}

/* The label: read and set through the library, root only, 16 bytes at
 * most; the bytes on disk are the superblock's s_volume_name. */
static int test_label(void)
{
    const char *img = mkimg("-t ext4 -L old");
    struct uext4_fs *fs = open_img(img, NULL);
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    char label[UEXT4_LABEL_MAX + 1], disk[16];
    FILE *f;

    CHECK(fs);
    CHECK_EQ(uext4_label_get(fs, label), 0);
    CHECK(!strcmp(label, "old"));
    CHECK_EQ(uext4_label_set(fs, &user, "mine", 4), -EPERM);
    CHECK_EQ(uext4_label_set(fs, &root, "seventeen-bytes!!", 17), -EINVAL);
    /* The bytes up to the first NUL count, as the ioctl's 256 do. */
    CHECK_EQ(uext4_label_set(fs, &root, "sixteen-bytes-ok\0junk", 21), 0);
    CHECK_EQ(uext4_label_get(fs, label), 0);
    CHECK(!strcmp(label, "sixteen-bytes-ok"));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    f = fopen(img, "rb");
    CHECK(f);
    CHECK_EQ(fseek(f, 1024 + 120, SEEK_SET), 0);
    CHECK_EQ(fread(disk, 1, sizeof(disk), f), sizeof(disk));
    fclose(f);
    CHECK(!memcmp(disk, "sixteen-bytes-ok", 16));
    return 0;
}

/* FITRIM: the blocks of a deleted file become a hole in the image file,
 * even before the delete is committed. */
static int test_trim(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_fs *fs = open_img(img, NULL);
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    static char buf[1 << 20];
    struct stat before, after;
    uint64_t trimmed = 0;
    uint32_t ino;

    CHECK(fs);
    memset(buf, 'z', sizeof(buf));
    ino = create(fs, UEXT4_ROOT_INO, "big");
    for (int i = 0; i < 8; i++)
        CHECK_EQ(write_all(fs, ino, buf, sizeof(buf), (off_t)i << 20), 0);
    CHECK_EQ(uext4_fsync(fs, ino, false), 0);
    CHECK_EQ(stat(img, &before), 0);
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "big"), 0);
    uext4_forget(fs, ino, 1); /* create's lookup reference: now it is freed */
    CHECK_EQ(uext4_trim(fs, &user, 0, UINT64_MAX, 0, &trimmed), -EPERM);
    CHECK_EQ(uext4_trim(fs, &root, 0, 100, 0, &trimmed), -EINVAL);
    CHECK_EQ(uext4_trim(fs, &root, 1ull << 40, UINT64_MAX, 0, &trimmed), -EINVAL);
    CHECK_EQ(uext4_trim(fs, &root, 0, UINT64_MAX, 1ull << 40, &trimmed), -EINVAL);
    CHECK_EQ(uext4_trim(fs, &root, 0, UINT64_MAX, 0, &trimmed), 0);
    CHECK_EQ(stat(img, &after), 0);
    /* The free runs trimmed, as ext4 counts: at least what the host got
     * back (the rest of the free space was a hole already). */
    CHECK(trimmed >= (uint64_t)(before.st_blocks - after.st_blocks) * 512);
    CHECK(before.st_blocks - after.st_blocks >= (8 << 20) / 512);
    before = after;
    /* As ext4, the groups trimmed with nothing freed since are skipped. */
    uint64_t again = 1;
    CHECK_EQ(uext4_trim(fs, &root, 0, UINT64_MAX, 0, &again), 0);
    CHECK_EQ(again, 0);
    CHECK_EQ(stat(img, &after), 0);
    CHECK_EQ(after.st_blocks, before.st_blocks);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    /* The memory is the open's: a new one trims the same runs again. */
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_trim(fs, &root, 0, UINT64_MAX, 0, &again), 0);
    CHECK_EQ(again, trimmed);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* The journal's s_start as dumpe2fs reads @img (0: empty), or -1. */
static long journal_start(const char *img)
{
    char cmd[256];
    long start = -1;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "dumpe2fs -h %s 2>/dev/null | sed -n 's/^Journal start: *//p'", img);
    p = popen(cmd, "r");
    if (p && fscanf(p, "%ld", &start) != 1)
        start = -1;
    if (p)
        pclose(p);
    return start;
}

/* EXT4_IOC_CHECKPOINT: ext4's checks in ext4's order, then a journal
 * empty on disk while the image is open, a copy of it taken then
 * fsck-clean; ENODEV without a journal, EROFS to erase a read-only one. */
static int test_checkpoint(void)
{
    const char *img = mkimg("-t ext4");
    const struct uext4_options ro = {.size = sizeof(ro), .read_only = true};
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    struct uext4_fs *fs = open_img(img, NULL);
    static char buf[1 << 16];
    char dirty[160];
    uint32_t ino;

    CHECK(fs);
    memset(buf, 'c', sizeof(buf));
    ino = create(fs, UEXT4_ROOT_INO, "f");
    CHECK_EQ(write_all(fs, ino, buf, sizeof(buf), 0), 0);
    CHECK_EQ(uext4_fsync(fs, ino, false), 0);
    CHECK(journal_start(img) > 0);
    /* A copy now needs recovery: opened read-only, its log is replayed
     * in memory only, and no checkpoint can empty it. */
    CHECK_EQ(sh("cp %s %s.dirty", img), 0);
    CHECK_EQ(uext4_checkpoint(fs, &user, 7), -EPERM);
    CHECK_EQ(uext4_checkpoint(fs, &root, UEXT4_CHECKPOINT_DISCARD | UEXT4_CHECKPOINT_ZEROOUT),
             -EINVAL);
    CHECK_EQ(uext4_checkpoint(fs, &root, 8), -EINVAL);
    CHECK_EQ(uext4_checkpoint(fs, &root, UEXT4_CHECKPOINT_DRY_RUN), 0);
    CHECK(journal_start(img) > 0);
    /* A running transaction too, which the checkpoint commits: an empty
     * commit would empty the log by itself. */
    CHECK_EQ(write_all(fs, ino, buf, sizeof(buf), sizeof(buf)), 0);
    CHECK_EQ(uext4_checkpoint(fs, &root, UEXT4_CHECKPOINT_ZEROOUT), 0);
    CHECK_EQ(journal_start(img), 0);
    CHECK_EQ(sh("cp %s %s.copy", img), 0);
    CHECK_EQ(sh("e2fsck -fn %s.copy >&2 && rm %s.copy", img), 0);
    uext4_forget(fs, ino, 1);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    fs = open_img(img, &ro);
    CHECK(fs);
    CHECK_EQ(uext4_checkpoint(fs, &root, 0), 0);
    CHECK_EQ(uext4_checkpoint(fs, &root, UEXT4_CHECKPOINT_DISCARD), -EROFS);
    CHECK_EQ(uext4_close(fs), 0);
    snprintf(dirty, sizeof(dirty), "%s.dirty", img);
    fs = open_img(dirty, &ro);
    CHECK(fs);
    CHECK_EQ(uext4_checkpoint(fs, &root, 0), -EROFS);
    CHECK_EQ(uext4_checkpoint(fs, &root, UEXT4_CHECKPOINT_DRY_RUN), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(journal_start(dirty) > 0);
    unlink(dirty);
    img = mkimg("-t ext4 -O ^has_journal");
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_checkpoint(fs, &root, 0), -ENODEV);
    CHECK_EQ(uext4_checkpoint(fs, &root, UEXT4_CHECKPOINT_DRY_RUN), -ENODEV);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* EXT4_IOC_SWAP_BOOT: ext4's refusals, then the file's blocks to the
 * boot loader inode and back; e2fsck clean in between (the boot loader
 * inode is checked as any file) and after. */
static int test_swap_boot(void)
{
    /* quota: e2fsck recounts every id's usage (the boot loader inode
     * counts for nobody). */
    const char *img = mkimg("-t ext4 -O inline_data,quota");
    const struct uext4_cred user = {.uid = 1000, .gid = 1000, .umask = 022};
    struct uext4_fs *fs = open_img(img, NULL);
    static char buf[8000];
    struct stat st;
    uint32_t ino, two, small;

    CHECK(fs);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)('a' + i % 26);
    ino = create(fs, UEXT4_ROOT_INO, "f");
    two = create(fs, UEXT4_ROOT_INO, "two");
    small = create(fs, UEXT4_ROOT_INO, "small");
    CHECK(ino && two && small);
    CHECK_EQ(write_all(fs, ino, buf, sizeof(buf), 0), 0);
    CHECK_EQ(write_all(fs, small, "inline", 6, 0), 0);
    CHECK_EQ(uext4_link(fs, &root, two, UEXT4_ROOT_INO, "two-b", &st), 0);
    CHECK_EQ(uext4_swap_boot(fs, &root, ino, O_RDONLY), -EBADF);
    CHECK_EQ(uext4_swap_boot(fs, &root, two, O_RDWR), -EINVAL);
    CHECK_EQ(uext4_swap_boot(fs, &root, small, O_RDWR), -EINVAL);
    CHECK_EQ(uext4_swap_boot(fs, &user, ino, O_RDWR), -EPERM);
    CHECK_EQ(uext4_swap_boot(fs, &root, ino, O_RDWR), 0);
    CHECK_EQ(size_of(fs, ino), 0);
    CHECK_EQ(uext4_sync(fs), 0);
    CHECK(fsck_clean(img));
    CHECK_EQ(uext4_swap_boot(fs, &root, ino, -1), 0);
    CHECK(read_is(fs, ino, buf, sizeof(buf)));
    uext4_forget(fs, ino, 1);
    uext4_forget(fs, two, 1);
    uext4_forget(fs, small, 1);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"inline_create_write_read", test_inline_create_write_read},
        {"quota_project_usage", test_quota_project_usage},
        {"quota_ea_inode", test_quota_ea_inode},
        {"inline_capacity_boundary", test_inline_capacity_boundary},
        {"inline_grows_then_converts", test_inline_grows_then_converts},
        {"inline_truncate_rules", test_inline_truncate_rules},
        {"mmap_writeback_keeps_inline", test_mmap_writeback_keeps_inline},
        {"mmap_writeback_convert_option", test_mmap_writeback_convert_option},
        {"mmap_page_survives_conversion", test_mmap_page_survives_conversion},
        {"mmap_page_cut_by_truncate", test_mmap_page_cut_by_truncate},
        {"mmap_written_back_at_close", test_mmap_written_back_at_close},
        {"mmap_writeback_failure_keeps_data", test_mmap_writeback_failure_keeps_data},
        {"mmap_budget_respected", test_mmap_budget_respected},
        {"unlinked_open_file_lives_until_release", test_unlinked_open_file_lives_until_release},
        {"enospc_then_delete", test_enospc_then_delete},
        {"partition_window", test_partition_window},
        {"rename_dir_across_parents", test_rename_dir_across_parents},
        {"large_directory", test_large_directory},
        {"casefold_dir", test_casefold_dir},
        {"ext3_block_mapped", test_ext3_block_mapped},
        {"fallocate_punch_seek", test_fallocate_punch_seek},
        {"read_ref", test_read_ref},
        {"write_pipe_runs_dry", test_write_pipe_runs_dry},
        {"write_pipe_early", test_write_pipe_early},
        {"permissions_and_sticky", test_permissions_and_sticky},
        {"kill_privs_fsetid", test_kill_privs_fsetid},
        {"xattrs_and_acl_mode", test_xattrs_and_acl_mode},
        {"second_open_refused", test_second_open_refused},
        {"partition_window_edges", test_partition_window_edges},
        {"create_answers_what_is_stored", test_create_answers_what_is_stored},
        {"not_ext4_refused", test_not_ext4_refused},
        {"fallocate_enospc_counts_blocks", test_fallocate_enospc_counts_blocks},
        {"free_failure_reported_at_release", test_free_failure_reported_at_release},
        {"free_failure_reported_at_sync_close", test_free_failure_reported_at_sync_close},
        {"ro_opens_share_the_lock", test_ro_opens_share_the_lock},
        {"not_a_file_refused", test_not_a_file_refused},
        {"verity_contents_refused", test_verity_contents_refused},
        {"verity_enable_lib", test_verity_enable_lib},
        {"fileattr_rules", test_fileattr_rules},
        {"trim", test_trim},
        {"label", test_label},
        {"checkpoint", test_checkpoint},
        {"swap_boot", test_swap_boot},
        {"statx", test_statx},
        {"statx_small_inodes", test_statx_small_inodes},
    };
    int ret;

    if (make_tmpdir("/tmp", "uext4-lib"))
        return 1;
    ret = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    sh("rm -rf %s", tmpdir);
    return ret;
}
