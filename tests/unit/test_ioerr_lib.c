/* A failing host disk in library mode, no FUSE: a child process writes and
 * fsyncs files while the image file's Nth write step (pwrite or fdatasync,
 * src/e2/fault.h) fails with ENOSPC or EIO, or every Kth step does; then
 * the parent opens the image again (replaying its journal) and checks:
 *
 *  - the failure was reported: some write, fsync or the close returned an
 *    error or a short count (a failed step never passes for a written
 *    one), unless the data it lost was written again and reads back;
 *  - every file whose write and fsync both succeeded reads back byte for
 *    byte;
 *  - e2fsck -fn finds the image clean (no blocks past EOF, no torn
 *    metadata).
 *
 * The files cover each write path of src/e2: extio's appends (new files,
 * a run of more than 256 blocks), mapio (a sparse extension of an extent
 * file, and every write on a block-mapped ext3 image), overwrites in
 * place, and a directory's new block. */
#include "uext4.h"
#include "harness.h"
#include "lib_images.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NFILES 7

/* File i: written at .off with .len bytes of pattern i (after .pre bytes
 * of pattern 100+i at 0 when .pre), then fsynced. */
static const struct file_spec {
    size_t pre, off, len;
} files[NFILES] = {
    {0, 0, 3000},            /* one partial block, allocated by extio */
    {0, 0, 70000},           /* several blocks and a partial tail */
    {3000, 200000, 5000},    /* a sparse extension: mapio */
    {0, 0, (300 << 12) + 5}, /* more than one 256-block run */
    {8192, 100, 6000},       /* an overwrite in place (and extension) */
    {0, 0, 100},             /* small: one block, or inline */
    {0, 0, 12288},           /* in a new directory (its block) */
};

static void pattern(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t j = 0; j < n; j++)
        buf[j] = (unsigned char)(seed * 31 + j * 7 + (j >> 9));
}

/* Short writes seen: a failed step may show as one (what reached the
 * image before it is counted, the rest is written again). */
static int short_writes;

static int write_all(struct uext4_fs *fs, uint32_t ino, const unsigned char *buf, size_t len,
                     off_t off)
{
    for (size_t done = 0; done < len;) {
        ssize_t w = uext4_write(fs, &root, ino, buf + done, len - done, off + (off_t)done, 0);
        if (w < 0)
            return (int)w;
        if (w == 0)
            return -EIO; /* a write that makes no progress */
        if ((size_t)w < len - done)
            short_writes++;
        done += (size_t)w;
    }
    return 0;
}

/* The expected contents of file @i, in @buf (returns its size). */
static size_t expected(int i, unsigned char *buf)
{
    const struct file_spec *f = &files[i];
    size_t size = f->off + f->len > f->pre ? f->off + f->len : f->pre;

    memset(buf, 0, size);
    pattern(buf, f->pre, 100 + (unsigned)i);
    pattern(buf + f->off, f->len, (unsigned)i);
    return size;
}

static unsigned char big_a[2 << 20], big_b[2 << 20];

static int put_file(struct uext4_fs *fs, int i)
{
    const struct file_spec *f = &files[i];
    uint32_t dir = UEXT4_ROOT_INO;
    char name[16];
    struct stat st;
    int ret;

    if (i == NFILES - 1) {
        ret = uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "d", 0755, &st);
        if (ret)
            return ret;
        dir = (uint32_t)st.st_ino;
    }
    snprintf(name, sizeof(name), "f%d", i);
    ret = uext4_mknod(fs, &root, dir, name, S_IFREG | 0644, 0, &st);
    if (ret)
        return ret;
    if (f->pre) {
        pattern(big_a, f->pre, 100 + (unsigned)i);
        ret = write_all(fs, (uint32_t)st.st_ino, big_a, f->pre, 0);
        if (!ret)
            ret = uext4_fsync(fs, (uint32_t)st.st_ino, false);
        if (ret)
            return ret;
    }
    pattern(big_a, f->len, (unsigned)i);
    ret = write_all(fs, (uint32_t)st.st_ino, big_a, f->len, (off_t)f->off);
    if (!ret)
        ret = uext4_fsync(fs, (uint32_t)st.st_ino, false);
    if (!ret && dir != UEXT4_ROOT_INO)
        ret = uext4_fsync(fs, dir, false);
    return ret;
}

/* The child: each file written and fsynced; reports 'S' (synced), 'P'
 * (synced, after a short write) or 'E' (an error) per file on @fd, then
 * 'C' or 'E' for the close; 'O' if the open failed. */
static void child(const char *img, int fd)
{
    const struct uext4_options o = {.commit_seconds = 100000};
    struct uext4_fs *fs = NULL;
    char why[256];
    char c;

    if (uext4_open(img, &o, &fs, why, sizeof(why))) {
        c = 'O';
        _exit(write(fd, &c, 1) == 1 ? 0 : 4);
    }
    for (int i = 0; i < NFILES; i++) {
        int before = short_writes;
        c = put_file(fs, i) ? 'E' : short_writes > before ? 'P' : 'S';
        if (write(fd, &c, 1) != 1)
            _exit(4);
    }
    c = uext4_close(fs) ? 'E' : 'C';
    _exit(write(fd, &c, 1) == 1 ? 0 : 4);
}

struct outcome {
    char r[NFILES + 2];
    int n;
};

/* Run the child with the fault variables @vars ("NAME=VALUE" pairs, NULL
 * terminated). */
static int run_child(const char *img, const char *const *vars, struct outcome *out)
{
    int fds[2], status;
    pid_t pid;

    memset(out, 0, sizeof(*out));
    if (pipe(fds))
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        for (const char *const *v = vars; v && *v; v += 2)
            setenv(v[0], v[1], 1);
        child(img, fds[1]);
    }
    close(fds[1]);
    while (out->n < (int)sizeof(out->r) - 1 && read(fds[0], &out->r[out->n], 1) == 1)
        out->n++;
    close(fds[0]);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Open again (replaying), every synced file exact, close, e2fsck -fn. */
static int check_image(const char *img, const struct outcome *o)
{
    struct uext4_fs *fs = open_img(img, NULL);

    CHECK(fs);
    for (int i = 0; i < NFILES && i < o->n; i++) {
        char path[32];
        uint32_t ino;
        struct stat st;
        size_t size;

        if (o->r[i] != 'S' && o->r[i] != 'P')
            continue;
        snprintf(path, sizeof(path), i == NFILES - 1 ? "/d/f%d" : "/f%d", i);
        size = expected(i, big_b);
        if (uext4_resolve(fs, path, &ino) || uext4_getattr(fs, ino, &st) ||
            (size_t)st.st_size != size || uext4_read(fs, ino, big_a, size, 0) != (ssize_t)size ||
            memcmp(big_a, big_b, size)) {
            fprintf(stderr, "  %s was fsynced but does not read back\n", path);
            uext4_close(fs);
            return 1;
        }
    }
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

static unsigned long long count_steps(const char *mkfs_args)
{
    char count_path[128];
    const char *vars[] = {"UEXT4_FAULT_COUNT", count_path, NULL};
    unsigned long long steps = 0;
    struct outcome o;
    const char *img = mkimg(mkfs_args);
    FILE *f;

    snprintf(count_path, sizeof(count_path), "%s/steps", tmpdir);
    unlink(count_path);
    if (!img || run_child(img, vars, &o) || strcmp(o.r, "SSSSSSSC"))
        return 0;
    f = fopen(count_path, "r");
    if (f && fscanf(f, "%llu", &steps) != 1)
        steps = 0;
    if (f)
        fclose(f);
    return steps;
}

static unsigned unreported;

/* One faulty run: @name=@value with UEXT4_FAULT_ERRNO=@err. */
static int faulty_run(const char *mkfs_args, const char *name, unsigned long long value,
                      const char *err)
{
    char v[32];
    const char *vars[] = {name, v, "UEXT4_FAULT_ERRNO", err, NULL};
    const char *img = mkimg(mkfs_args);
    struct outcome o;

    CHECK(img);
    snprintf(v, sizeof(v), "%llu", value);
    CHECK_EQ(run_child(img, vars, &o), 0);
    /* Unreported only if what failed was written again: a failed data run
     * is given back and uext4_write writes the rest once more (its retry
     * after ENOSPC). check_image then finds every file intact. */
    if (!strpbrk(o.r, "EOP"))
        unreported++;
    if (check_image(img, &o)) {
        fprintf(stderr, "  after %s=%s %s (outcome %s)\n", name, v, err, o.r);
        return 1;
    }
    return 0;
}

/* Step N failing, for about @points values of N spread over the run (the
 * first steps and the last ones always), with each errno; then every 5th
 * and every 11th step failing. */
static int sweep(const char *mkfs_args, unsigned points)
{
    static const char *const errs[] = {"ENOSPC", "EIO"};
    unsigned long long steps = count_steps(mkfs_args), stride;
    unsigned runs = 0;

    CHECK(steps > 10);
    unreported = 0;
    stride = steps / points ? steps / points : 1;
    for (int e = 0; e < 2; e++) {
        for (unsigned long long n = 1 + (unsigned)e; n <= steps; n += stride) {
            if (faulty_run(mkfs_args, "UEXT4_FAULT_FAIL_AT", n, errs[e]))
                return 1;
            runs++;
        }
        if (faulty_run(mkfs_args, "UEXT4_FAULT_FAIL_AT", steps, errs[e]))
            return 1;
        if (faulty_run(mkfs_args, "UEXT4_FAULT_FAIL_EVERY", e ? 11 : 5, errs[e]))
            return 1;
        runs += 2;
    }
    fprintf(stderr, "  %s: %llu write steps, %u faulty runs, %u retried to success\n", mkfs_args,
            steps, runs, unreported);
    /* Most failed steps are metadata or the journal: they must show. */
    CHECK(unreported * 4 < runs);
    return 0;
}

static int test_fail_step_ext4(void)
{
    return sweep("-t ext4 -b 4096", 14);
}

static int test_fail_step_ext3_block_mapped(void)
{
    return sweep("-t ext3 -b 4096", 16);
}

static int test_fail_step_ext4_csum_inline(void)
{
    return sweep("-t ext4 -b 1024 -O metadata_csum,inline_data,64bit", 8);
}

/* The data write of an append fails: the blocks allocated for it must not
 * stay past EOF (e2fsck: "i_size is 65536, should be 131072"), and the
 * file keeps what it had. With a journal the append's only write step is
 * its data (metadata waits for the commit); step N is tried from 1 until
 * it is that one. */
static int test_failed_append_gives_blocks_back(void)
{
    const struct uext4_options o = {.commit_seconds = 100000};
    bool hit = false;

    for (unsigned n = 1; n < 20 && !hit; n++) {
        const char *img = mkimg("-t ext4 -b 4096");
        struct uext4_fs *fs;
        struct stat st;
        char why[256], v[16];
        uint32_t ino;
        ssize_t w;

        CHECK(img);
        fs = open_img(img, &o);
        CHECK(fs);
        CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "f", S_IFREG | 0644, 0, &st), 0);
        ino = (uint32_t)st.st_ino;
        pattern(big_a, 65536, 1);
        CHECK_EQ(uext4_write(fs, &root, ino, big_a, 65536, 0, 0), 65536);
        CHECK_EQ(uext4_close(fs), 0);

        snprintf(v, sizeof(v), "%u", n);
        CHECK(setenv("UEXT4_FAULT_ERRNO", "EIO", 1) == 0);
        CHECK(setenv("UEXT4_FAULT_FAIL_AT", v, 1) == 0);
        w = uext4_open(img, &o, &fs, why, sizeof(why));
        unsetenv("UEXT4_FAULT_FAIL_AT");
        unsetenv("UEXT4_FAULT_ERRNO");
        if (w)
            continue; /* the step failed in the open */
        pattern(big_a, 65536, 2);
        w = uext4_write(fs, &root, ino, big_a, 65536, 65536, 0);
        hit = w == -EIO;
        if (!hit) {
            uext4_close(fs);
            continue;
        }
        CHECK_EQ(uext4_getattr(fs, ino, &st), 0);
        CHECK_EQ(st.st_size, 65536);
        CHECK_EQ(st.st_blocks, 65536 / 512);
        /* Only the data failed: the image goes on. */
        CHECK_EQ(uext4_fsync(fs, ino, false), 0);
        CHECK_EQ(uext4_close(fs), 0);
        CHECK(fsck_clean(img));
        fs = open_img(img, NULL);
        CHECK(fs);
        pattern(big_b, 65536, 1);
        CHECK_EQ(uext4_read(fs, ino, big_a, 131072, 0), 65536);
        CHECK(!memcmp(big_a, big_b, 65536));
        CHECK_EQ(uext4_close(fs), 0);
    }
    CHECK(hit);
    return 0;
}

/* ---- a directory growing without a journal, the process killed ---- */

#define DIR_SYNCED 3 /* entries fsync'd while the directory is inline */
#define DIR_MORE   8 /* then: out of the inode into a block */

static void dir_child(const char *img, int fd, bool stop_after_fsync)
{
    const struct uext4_options o = {.commit_seconds = 100000};
    struct uext4_fs *fs = open_img(img, &o);
    uint32_t d;
    struct stat st;
    char name[64], c = 'S';

    if (!fs || uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "d", 0755, &st))
        _exit(2);
    d = (uint32_t)st.st_ino;
    for (int i = 0; i < DIR_SYNCED; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        if (uext4_mknod(fs, &root, d, name, S_IFREG | 0644, 0, &st))
            _exit(3);
    }
    if (uext4_fsync(fs, d, false) || write(fd, &c, 1) != 1)
        _exit(3);
    if (stop_after_fsync)
        _exit(uext4_close(fs) ? 5 : 0);
    for (int i = 0; i < DIR_MORE; i++) {
        snprintf(name, sizeof(name), "a_longer_name_to_fill_blocks_%02d", i);
        if (uext4_mknod(fs, &root, d, name, S_IFREG | 0644, 0, &st))
            _exit(3);
    }
    _exit(uext4_close(fs) ? 5 : 0);
}

/* The child with @vars set; 1 if it reported the fsync done. */
static int run_dir_child(const char *img, const char *const *vars, bool stop, int *status)
{
    int fds[2], done = 0;
    pid_t pid;
    char c;

    if (pipe(fds))
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        for (const char *const *v = vars; v && *v; v += 2)
            setenv(v[0], v[1], 1);
        dir_child(img, fds[1], stop);
    }
    close(fds[1]);
    while (read(fds[0], &c, 1) == 1)
        done++;
    close(fds[0]);
    waitpid(pid, status, 0);
    return done;
}

static unsigned long long dir_steps(const char *mkfs_args, bool stop)
{
    char count_path[128];
    const char *vars[] = {"UEXT4_FAULT_COUNT", count_path, NULL};
    unsigned long long steps = 0;
    const char *img = mkimg(mkfs_args);
    int status;
    FILE *f;

    snprintf(count_path, sizeof(count_path), "%s/steps", tmpdir);
    unlink(count_path);
    if (!img || run_dir_child(img, vars, stop, &status) != 1 || !WIFEXITED(status) ||
        WEXITSTATUS(status))
        return 0;
    f = fopen(count_path, "r");
    if (f && fscanf(f, "%llu", &steps) != 1)
        steps = 0;
    if (f)
        fclose(f);
    return steps;
}

/* The daemon killed (no power cut: every write made stays) at each write
 * step while a directory fsync'd with DIR_SYNCED entries grows out of its
 * inode into a block, on an image without a journal: after e2fsck
 * -fy (the image is not clean), e2fsck -fn finds nothing and the fsync'd
 * entries are all there. libext2fs alone writes the inode of an inline
 * directory with its entries and ".." cleared first ("Missing '..'"). */
static int test_killed_while_inline_dir_grows(void)
{
    const char *mkfs_args = "-t ext4 -b 1024 -I 256 -O ^has_journal,inline_data";
    unsigned long long first = dir_steps(mkfs_args, true), steps = dir_steps(mkfs_args, false);
    unsigned tried = 0;

    CHECK(first > 0 && steps > first);
    for (unsigned long long n = first; n <= steps; n++) {
        char at[32];
        const char *vars[] = {"UEXT4_FAULT_AT", at, "UEXT4_FAULT_KILL", "1", NULL};
        const char *img = mkimg(mkfs_args);
        struct uext4_fs *fs;
        int status;

        CHECK(img);
        snprintf(at, sizeof(at), "%llu", n);
        if (run_dir_child(img, vars, false, &status) != 1)
            continue; /* killed before the fsync returned */
        CHECK(WIFEXITED(status));
        sh("e2fsck -fy %s >/dev/null 2>&1", img);
        if (!fsck_clean(img)) {
            fprintf(stderr, "  killed at step %llu of %llu: e2fsck -fy left damage\n", n, steps);
            return 1;
        }
        fs = open_img(img, NULL);
        CHECK(fs);
        for (int i = 0; i < DIR_SYNCED; i++) {
            char path[32];
            uint32_t ino;
            snprintf(path, sizeof(path), "/d/s%d", i);
            if (uext4_resolve(fs, path, &ino)) {
                fprintf(stderr, "  killed at step %llu of %llu: fsync'd %s lost\n", n, steps, path);
                sh("e2fsck -fn %s >&2", img);
                uext4_close(fs);
                return 1;
            }
        }
        CHECK_EQ(uext4_close(fs), 0);
        tried++;
    }
    fprintf(stderr, "  %s: killed at %u steps, fsync'd entries kept each time\n", mkfs_args, tried);
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"failed_append_gives_blocks_back", test_failed_append_gives_blocks_back},
        {"fail_step_ext4", test_fail_step_ext4},
        {"fail_step_ext3_block_mapped", test_fail_step_ext3_block_mapped},
        {"fail_step_ext4_csum_inline", test_fail_step_ext4_csum_inline},
        {"killed_while_inline_dir_grows", test_killed_while_inline_dir_grows},
    };
    int ret;

    if (make_tmpdir(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", "uext4-ioerr"))
        return 1;
    ret = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    sh("rm -rf %s", tmpdir);
    return ret;
}
