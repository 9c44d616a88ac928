/* fs-verity in library mode, where failures can be made on purpose:
 *
 *  - a power cut at every write step of FS_IOC_ENABLE_VERITY (and of the
 *    sync after it), with a journal and without: the next open finds the
 *    file either verity, with the digest of a run without the cut, or
 *    ordinary, with its bytes, and enabling it then gives that digest;
 *    e2fsck -fn is clean every time (without a journal after e2fsck -fy,
 *    as any crash there needs) (UEXT4_FAULT_AT, e2/fault.h);
 *  - every byte of the descriptor and of its size word, changed four ways
 *    in the image: the open fails as the kernel's would (EINVAL, EUCLEAN,
 *    EMSGSIZE) or succeeds and reads give the bytes or EIO; never a crash
 *    (run under ASan by .ci);
 *  - the tree cache emptied at nearly every block (a test limit). */
#include "uext4.h"
#include "harness.h"
#include "lib_images.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define FILE_SIZE  300000
#define FAULT_EXIT 86

static unsigned char data[FILE_SIZE];
static const struct uext4_verity_args args = {
    .hash_algorithm = 1, .block_size = 4096, .salt = "NaCl", .salt_size = 4};

static void fill_data(void)
{
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 13 + (i >> 11));
}

/* An image at @path with /f holding data[] (not verity). */
static int base_image(const char *mkfs_args, const char *path)
{
    const char *img = mkimg(mkfs_args);
    struct uext4_fs *fs;
    struct stat st;
    uint32_t f;

    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "f", S_IFREG | 0644, 0, &st), 0);
    f = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_write(fs, &root, f, data, sizeof(data), 0, 0), (ssize_t)sizeof(data));
    uext4_forget(fs, f, 1);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK_EQ(sh("cp %s %s.base", img), 0);
    (void)path;
    return 0;
}

/* The child: enable verity on /f, sync, close; exit 0, or E2_FAULT_EXIT
 * at the injected power cut. */
static void child(const char *img)
{
    struct uext4_fs *fs = NULL;
    uint32_t f;

    fix_libext2fs_clock(); /* crash_every_step() cuts at every counted step */
    if (uext4_open(img, NULL, &fs, NULL, 0) || uext4_resolve(fs, "/f", &f))
        _exit(2);
    if (uext4_enable_verity(fs, &root, f, O_RDONLY, &args) || uext4_sync(fs))
        _exit(3);
    _exit(uext4_close(fs) ? 4 : 0);
}

static int run_child(const char *img, int at, const char *count_path)
{
    char n[16];
    int status = -1;
    pid_t pid = fork();

    if (pid == 0) {
        snprintf(n, sizeof(n), "%d", at);
        if (at) {
            setenv("UEXT4_FAULT_AT", n, 1);
            setenv("UEXT4_FAULT_SEED", n, 1);
        }
        if (count_path)
            setenv("UEXT4_FAULT_COUNT", count_path, 1);
        child(img);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* After a cut: /f reads data[]; verity with @digest, or made so now. */
static int check_after(const char *img, const unsigned char *digest, bool *was_verity)
{
    static unsigned char back[FILE_SIZE];
    unsigned char got[64];
    struct uext4_fs *fs = open_img(img, NULL);
    unsigned alg;
    uint32_t f;
    int m;

    CHECK(fs);
    CHECK_EQ(uext4_resolve(fs, "/f", &f), 0);
    CHECK_EQ(uext4_read(fs, f, back, sizeof(back), 0), (ssize_t)sizeof(back));
    CHECK(!memcmp(back, data, sizeof(data)));
    m = uext4_measure_verity(fs, f, &alg, got, sizeof(got));
    *was_verity = m != -ENODATA;
    if (m == -ENODATA) {
        CHECK_EQ(uext4_enable_verity(fs, &root, f, O_RDONLY, &args), 0);
        m = uext4_measure_verity(fs, f, &alg, got, sizeof(got));
    }
    CHECK_EQ(m, 32);
    CHECK(!memcmp(got, digest, 32));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* @journal: without one, the image after a cut is not clean (block
 * bitmaps are written at the sync) and gets e2fsck -fy first, as the
 * kernel's would; the file must still be whole, verity or not. */
static int crash_every_step(const char *mkfs_args, bool journal)
{
    char base[160], work[160], count_path[160];
    unsigned char digest[64];
    int steps = 0, before = 0, after = 0;
    bool v;
    FILE *c;

    fill_data();
    CHECK_EQ(base_image(mkfs_args, NULL), 0);
    snprintf(base, sizeof(base), "%s/t.img.base", tmpdir);
    snprintf(work, sizeof(work), "%s/t.img", tmpdir);
    snprintf(count_path, sizeof(count_path), "%s/steps", tmpdir);
    /* A run without a cut: the digest, and how many steps there are. */
    CHECK_EQ(run_child(work, 0, count_path), 0);
    c = fopen(count_path, "r");
    CHECK(c && fscanf(c, "%d", &steps) == 1);
    fclose(c);
    {
        struct uext4_fs *fs = open_img(work, NULL);
        unsigned alg;
        uint32_t f;
        CHECK(fs);
        CHECK_EQ(uext4_resolve(fs, "/f", &f), 0);
        CHECK_EQ(uext4_measure_verity(fs, f, &alg, digest, sizeof(digest)), 32);
        CHECK_EQ(uext4_close(fs), 0);
    }
    CHECK(steps > 2);
    for (int at = 1; at <= steps; at++) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "cp %s %s", base, work);
        CHECK_EQ(system(cmd), 0);
        CHECK_EQ(run_child(work, at, NULL), FAULT_EXIT);
        if (!journal)
            sh("e2fsck -fy %s >/dev/null 2>&1", work);
        if (check_after(work, digest, &v)) {
            fprintf(stderr, "  power cut at step %d of %d\n", at, steps);
            return 1;
        }
        v ? after++ : before++;
    }
    fprintf(stderr, "  %d steps: %d cuts left an ordinary file, %d a verity one\n", steps, before,
            after);
    CHECK(before > 0 && after > 0);
    return 0;
}

static int test_power_cut_journal(void)
{
    return crash_every_step("-t ext4 -b 4096 -O verity", true);
}

static int test_power_cut_no_journal(void)
{
    return crash_every_step("-t ext4 -b 4096 -O verity,^has_journal", false);
}

/* Open /f read-only and read it: the open's result, with the reads'
 * checked (the bytes, or EIO). */
static int open_and_read(const char *img, int *open_ret)
{
    static unsigned char back[FILE_SIZE];
    struct uext4_options o;
    struct uext4_fs *fs;
    unsigned char dg[64];
    unsigned alg;
    uint32_t f;
    ssize_t n;

    uext4_options_init(&o, sizeof(o));
    o.read_only = true;
    fs = open_img(img, &o);
    CHECK(fs);
    CHECK_EQ(uext4_resolve(fs, "/f", &f), 0);
    *open_ret = uext4_open_file(fs, &root, f, O_RDONLY);
    if (!*open_ret) {
        n = uext4_read(fs, f, back, sizeof(back), 0);
        CHECK(n == -EIO || (n == (ssize_t)sizeof(back) && !memcmp(back, data, sizeof(back))));
        n = uext4_measure_verity(fs, f, &alg, dg, sizeof(dg));
        CHECK(n == 32 || n == 64);
        CHECK_EQ(uext4_release(fs, f), 0);
    }
    uext4_forget(fs, f, 1);
    CHECK_EQ(uext4_close(fs), 0);
    return 0;
}

static int test_descriptor_fuzz(void)
{
    const char *img;
    char cmd[400];
    long blk = -1;
    int fd, counts[4] = {0};
    FILE *p;

    fill_data();
    CHECK_EQ(base_image("-t ext4 -b 4096 -O verity", NULL), 0);
    img = mkimg("-t ext4 -b 4096 -O verity");
    CHECK(img);
    CHECK_EQ(sh("cp %s.base %s", img), 0);
    {
        struct uext4_fs *fs = open_img(img, NULL);
        uint32_t f;
        CHECK(fs);
        CHECK_EQ(uext4_resolve(fs, "/f", &f), 0);
        CHECK_EQ(uext4_enable_verity(fs, &root, f, O_RDONLY, &args), 0);
        CHECK_EQ(uext4_close(fs), 0);
    }
    /* 300000 bytes: 74 data blocks, one tree block at 64 KiB * 5 (block
     * 80), the descriptor in block 81 with its size word at its end. */
    snprintf(cmd, sizeof(cmd), "debugfs -R 'bmap /f 81' %s 2>/dev/null", img);
    p = popen(cmd, "r");
    CHECK(p && fscanf(p, "%ld", &blk) == 1);
    pclose(p);
    fd = open(img, O_RDWR);
    CHECK(fd >= 0 && blk > 0);
    for (int off = 0; off < 4096; off++) {
        unsigned char orig, vals[4];
        if (off == 256)
            off = 4092; /* the reserved tail is zeros, then the size word */
        CHECK_EQ(pread(fd, &orig, 1, blk * 4096 + off), 1);
        vals[0] = orig ^ 1;
        vals[1] = orig ^ 0x80;
        vals[2] = 0;
        vals[3] = 0xff;
        for (int k = 0; k < 4; k++) {
            int r;
            CHECK_EQ(pwrite(fd, &vals[k], 1, blk * 4096 + off), 1);
            if (open_and_read(img, &r)) {
                fprintf(stderr, "  descriptor byte %d = 0x%02x\n", off, vals[k]);
                return 1;
            }
            CHECK(r == 0 || r == -EINVAL || r == -EUCLEAN || r == -EMSGSIZE);
            counts[r == 0 ? 0 : r == -EINVAL ? 1 : r == -EUCLEAN ? 2 : 3]++;
        }
        CHECK_EQ(pwrite(fd, &orig, 1, blk * 4096 + off), 1);
    }
    close(fd);
    fprintf(stderr, "  opened %d, EINVAL %d, EUCLEAN %d, EMSGSIZE %d\n", counts[0], counts[1],
            counts[2], counts[3]);
    CHECK(counts[1] > 0 && counts[2] > 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A tree cache of one block (UEXT4_TEST_VERITY_CACHE_KIB=4) over a
 * two-level tree of 1 MiB + 1 bytes: it empties at almost every tree block,
 * and every block still reads right, in every order, over and over; a
 * flipped data block still reads EIO (under ASan: no block used after the
 * cache freed it). */
static int test_small_tree_cache(void)
{
    static unsigned char big[(1 << 20) + 1], back[8192];
    struct uext4_verity_args va = {.hash_algorithm = 2, .block_size = 4096};
    const char *img = mkimg("-t ext4 -b 4096 -O verity");
    struct uext4_fs *fs;
    struct stat st;
    uint32_t f;
    long blk = -1;
    char cmd[300];
    FILE *p;

    CHECK(img);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 5 + (i >> 12));
    setenv("UEXT4_TEST_VERITY_CACHE_KIB", "4", 1);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "f", S_IFREG | 0644, 0, &st), 0);
    f = (uint32_t)st.st_ino;
    CHECK_EQ(uext4_write(fs, &root, f, big, sizeof(big), 0, 0), (ssize_t)sizeof(big));
    CHECK_EQ(uext4_enable_verity(fs, &root, f, O_RDONLY, &va), 0);
    for (int round = 0; round < 3; round++)
        for (unsigned k = 0; k < 257; k++) {
            unsigned b = (k * 97 + (unsigned)round * 31) % 257; /* every block, scattered */
            size_t n = b == 256 ? 1 : 4096;
            CHECK_EQ(uext4_read(fs, f, back, 4096, (off_t)b * 4096), (ssize_t)n);
            CHECK(!memcmp(back, big + (size_t)b * 4096, n));
        }
    uext4_forget(fs, f, 1);
    CHECK_EQ(uext4_close(fs), 0);
    snprintf(cmd, sizeof(cmd), "debugfs -R 'bmap /f 200' %s 2>/dev/null", img);
    p = popen(cmd, "r");
    CHECK(p && fscanf(p, "%ld", &blk) == 1);
    pclose(p);
    snprintf(cmd, sizeof(cmd), "printf Z | dd of=%s bs=1 seek=%ld conv=notrunc 2>/dev/null", img,
             blk * 4096 + 77);
    CHECK_EQ(system(cmd), 0);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_resolve(fs, "/f", &f), 0);
    for (unsigned b = 190; b < 210; b++)
        CHECK_EQ(uext4_read(fs, f, back, 4096, (off_t)b * 4096), b == 200 ? -EIO : 4096);
    CHECK_EQ(uext4_close(fs), 0);
    unsetenv("UEXT4_TEST_VERITY_CACHE_KIB");
    CHECK(fsck_clean(img));
    return 0;
}

int main(void)
{
    static const struct test_case t[] = {
        {"power_cut_journal", test_power_cut_journal},
        {"power_cut_no_journal", test_power_cut_no_journal},
        {"descriptor_fuzz", test_descriptor_fuzz},
        {"small_tree_cache", test_small_tree_cache},
    };

    int ret;

    if (make_tmpdir(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", "uext4-verity"))
        return 1;
    ret = run_tests(t, sizeof(t) / sizeof(t[0]));
    sh("rm -rf %s", tmpdir);
    return ret;
}
