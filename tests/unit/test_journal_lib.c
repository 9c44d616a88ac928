/* Journaling in library mode, no FUSE: a child process runs a workload on
 * an image with a journal and "loses power" (exits without closing, or
 * through the fault-injection point at a chosen write step); the parent
 * mounts the image again (which replays the journal), checks that every
 * phase the child completed and synced is there byte for byte, closes it
 * and runs `e2fsck -fn`, which must find the image clean.
 *
 * The workload is in phases: phase i works only inside directory /p<i>
 * and ends with uext4_sync() (syncfs); the child reports each completed
 * phase through a pipe. A completed phase's directory must match its
 * expected listing exactly after any later crash. */
#include "uext4.h"
#include "harness.h"
#include "lib_images.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPHASES    6
#define FAULT_EXIT 86

/* A dumpe2fs -h line of @img contains @text. */
static int sb_says(const char *img, const char *text)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "dumpe2fs -h %s 2>/dev/null | grep -q '%s'", img, text);
    return system(cmd) == 0;
}

static void pattern(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t j = 0; j < n; j++)
        buf[j] = (unsigned char)(seed * 31 + j * 7 + (j >> 9));
}

/* ---- the workload ---- */

struct file_spec {
    const char *name;
    size_t len; /* 0 for a directory, (size_t)-1 for a symlink */
    unsigned seed;
};

/* What /p<phase> holds once the phase is done. */
static const struct file_spec expected[NPHASES][6] = {
    {{"inline", 40, 1}, {"two_blocks", 6000, 2}, {"big", 300000, 3}},
    {{"renamed", 5000, 4}, {"keep", 100, 5}, {"sub", 0, 0}},
    {{"trunc_down", 1000, 6}, {"trunc_up", 9000, 7}, {"link_a", 777, 8}, {"link_b", 777, 8}},
    {{"xattr", 10, 9}, {"link", (size_t)-1, 0}, {"replaced", 3000, 11}},
    {{"many", 70000, 12}, {"inline2", 59, 13}},
    {{"after_unlink", 2000, 14}},
};

static int put_file(struct uext4_fs *fs, uint32_t dir, const char *name, size_t len, unsigned seed,
                    uint32_t *out)
{
    static unsigned char buf[300000];
    struct stat st;
    int ret = uext4_mknod(fs, &root, dir, name, S_IFREG | 0644, 0, &st);

    if (ret)
        return ret;
    pattern(buf, len, seed);
    for (size_t off = 0; off < len;) {
        size_t n = len - off < 65536 ? len - off : 65536;
        ssize_t w = uext4_write(fs, &root, (uint32_t)st.st_ino, buf + off, n, (off_t)off, 0);
        if (w < 0)
            return (int)w;
        off += (size_t)w;
    }
    if (out)
        *out = (uint32_t)st.st_ino;
    return 0;
}

static int truncate_to(struct uext4_fs *fs, uint32_t ino, size_t size)
{
    struct stat in = {.st_size = (off_t)size}, out;

    return uext4_setattr(fs, &root, ino, &in, UEXT4_SET_SIZE, &out);
}

/* Phase @p's operations; the end state is expected[p]. */
static int phase(struct uext4_fs *fs, int p, uint32_t *open_orphan)
{
    char name[16];
    struct stat st;
    uint32_t d, ino, ino2;
    int ret;

    snprintf(name, sizeof(name), "p%d", p);
    ret = uext4_mkdir(fs, &root, UEXT4_ROOT_INO, name, 0755, &st);
    if (ret)
        return ret;
    d = (uint32_t)st.st_ino;
    switch (p) {
    case 0:
        if ((ret = put_file(fs, d, "inline", 40, 1, NULL)) ||
            (ret = put_file(fs, d, "two_blocks", 6000, 2, NULL)))
            return ret;
        return put_file(fs, d, "big", 300000, 3, NULL);
    case 1:
        if ((ret = put_file(fs, d, "tmp", 5000, 4, NULL)) ||
            (ret = put_file(fs, d, "keep", 100, 5, NULL)) ||
            (ret = put_file(fs, d, "gone", 20000, 99, NULL)) ||
            (ret = uext4_rename(fs, &root, d, "tmp", d, "renamed", 0)) ||
            (ret = uext4_unlink(fs, &root, d, "gone")))
            return ret;
        return uext4_mkdir(fs, &root, d, "sub", 0700, &st);
    case 2:
        if ((ret = put_file(fs, d, "trunc_down", 50000, 6, &ino)) ||
            (ret = truncate_to(fs, ino, 1000)) ||
            (ret = put_file(fs, d, "trunc_up", 100, 7, &ino2)))
            return ret;
        {
            /* Bytes 100..9000 read as zeros: write them as the pattern
             * would not; rewrite the whole expected pattern instead. */
            static unsigned char buf[9000];
            pattern(buf, sizeof(buf), 7);
            if ((ret = truncate_to(fs, ino2, 9000)) ||
                uext4_write(fs, &root, ino2, buf, sizeof(buf), 0, 0) != (ssize_t)sizeof(buf))
                return ret ? ret : -EIO;
        }
        if ((ret = put_file(fs, d, "link_a", 777, 8, &ino)))
            return ret;
        return uext4_link(fs, &root, ino, d, "link_b", &st);
    case 3:
        if ((ret = put_file(fs, d, "xattr", 10, 9, &ino)) ||
            (ret = uext4_setxattr(fs, &root, ino, "user.k", "value", 5, 0)) ||
            (ret = uext4_symlink(fs, &root, d, "link", "xattr", &st)) ||
            (ret = put_file(fs, d, "replaced", 8000, 10, NULL)) ||
            (ret = put_file(fs, d, "new", 3000, 11, NULL)))
            return ret;
        return uext4_rename(fs, &root, d, "new", d, "replaced", 0);
    case 4:
        if ((ret = put_file(fs, d, "many", 70000, 12, NULL)))
            return ret;
        return put_file(fs, d, "inline2", 59, 13, NULL);
    case 5:
        /* An open file unlinked: on the orphan list at the crash. */
        if ((ret = put_file(fs, d, "orphan", 40000, 15, &ino)) ||
            (ret = uext4_open_file(fs, &root, ino, O_RDWR)) ||
            (ret = uext4_unlink(fs, &root, d, "orphan")))
            return ret;
        *open_orphan = ino;
        return put_file(fs, d, "after_unlink", 2000, 14, NULL);
    }
    return -EINVAL;
}

/* Commits made before the phases (each a few log blocks): enough of them
 * move the log head round the end of a small journal, so that the phases'
 * transactions wrap. With warm_only the child stops after them. */
static int warm_commits;
static bool warm_only;

static int warm_up(struct uext4_fs *fs)
{
    struct stat in = {0}, out;

    for (int i = 0; i < warm_commits; i++) {
        in.st_mtim.tv_sec = 1000000 + i;
        if (uext4_setattr(fs, &root, UEXT4_ROOT_INO, &in, UEXT4_SET_MTIME, &out) || uext4_sync(fs))
            return -1;
    }
    return 0;
}

/* The child: phases, each synced and reported on @fd; then "power off". */
static void child(const char *img, int fd, bool clean_close)
{
    /* No commits but the workload's own: the write steps are the same in
     * every run, so a step number means the same moment each time. */
    const struct uext4_options o = {.size = sizeof(o), .commit_seconds = 100000};
    struct uext4_fs *fs;
    uint32_t orphan = 0;

    /* And no wall clock: a counting run whose warm-up crossed a second
     * took two steps more than the cut runs after it, whose last cut then
     * never came (2% of runs, more under ASan and load). */
    fix_libext2fs_clock();
    fs = open_img(img, &o);
    if (!fs || warm_up(fs))
        _exit(2);
    if (warm_only)
        _exit(uext4_close(fs) ? 5 : 0);
    for (int p = 0; p < NPHASES; p++) {
        char c = (char)('0' + p);
        if (phase(fs, p, &orphan) || uext4_sync(fs))
            _exit(3);
        if (write(fd, &c, 1) != 1)
            _exit(4);
    }
    if (clean_close) {
        if (orphan)
            uext4_release(fs, orphan);
        _exit(uext4_close(fs) ? 5 : 0);
    }
    _exit(0); /* no close: what a killed daemon leaves */
}

/* Run the child with @env_at (UEXT4_FAULT_AT, NULL for none); returns the
 * number of phases it reported done, and its exit status in *@status. */
static int run_child(const char *img, const char *env_at, const char *count_path, bool clean_close,
                     int *status)
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
        if (env_at) {
            setenv("UEXT4_FAULT_AT", env_at, 1);
            setenv("UEXT4_FAULT_SEED", env_at, 1);
        }
        if (count_path)
            setenv("UEXT4_FAULT_COUNT", count_path, 1);
        child(img, fds[1], clean_close);
    }
    close(fds[1]);
    while (read(fds[0], &c, 1) == 1)
        done++;
    close(fds[0]);
    waitpid(pid, status, 0);
    return done;
}

struct listing {
    int n;
    char names[16][32];
};

static int fill(void *ctx, const char *name, uint32_t ino, unsigned dtype, uint64_t next)
{
    struct listing *l = ctx;

    (void)ino;
    (void)dtype;
    (void)next;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (l->n < 16)
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
    l->n++;
    return 0;
}

/* /p<p> holds exactly expected[p]. */
static int check_phase(struct uext4_fs *fs, int p)
{
    static unsigned char want[300000], got[300000];
    struct uext4_dir *dir;
    struct listing l = {0};
    char path[64];
    uint32_t d, ino;
    int nexp = 0;

    snprintf(path, sizeof(path), "/p%d", p);
    CHECK_EQ(uext4_resolve(fs, path, &d), 0);
    CHECK_EQ(uext4_opendir(fs, &root, d, &dir), 0);
    CHECK_EQ(uext4_readdir(fs, dir, 0, fill, &l), 0);
    uext4_releasedir(fs, dir);
    for (const struct file_spec *f = expected[p]; f < expected[p] + 6 && f->name; f++) {
        struct stat st;
        nexp++;
        snprintf(path, sizeof(path), "/p%d/%s", p, f->name);
        if (uext4_resolve(fs, path, &ino)) {
            fprintf(stderr, "  %s is missing\n", path);
            return 1;
        }
        CHECK_EQ(uext4_getattr(fs, ino, &st), 0);
        if (f->len == 0) {
            CHECK(S_ISDIR(st.st_mode));
        } else if (f->len == (size_t)-1) {
            char t[16];
            CHECK(S_ISLNK(st.st_mode));
            CHECK_EQ(uext4_readlink(fs, ino, t, sizeof(t)), 5);
            CHECK(!memcmp(t, "xattr", 5));
        } else {
            CHECK_EQ(st.st_size, f->len);
            pattern(want, f->len, f->seed);
            CHECK_EQ(uext4_read(fs, ino, got, f->len, 0), f->len);
            if (memcmp(want, got, f->len)) {
                fprintf(stderr, "  %s: contents differ\n", path);
                return 1;
            }
        }
    }
    if (p == 3) {
        char v[8];
        CHECK_EQ(uext4_resolve(fs, "/p3/xattr", &ino), 0);
        CHECK_EQ(uext4_getxattr(fs, &root, ino, "user.k", v, sizeof(v)), 5);
        CHECK(!memcmp(v, "value", 5));
    }
    if (l.n != nexp) {
        fprintf(stderr, "  /p%d has %d entries, expected %d\n", p, l.n, nexp);
        return 1;
    }
    return 0;
}

/* Mount again (replaying), check phases [0, @done), close, e2fsck. */
static int check_after_crash(const char *img, int done)
{
    struct uext4_fs *fs = open_img(img, NULL);

    CHECK(fs);
    for (int p = 0; p < done; p++)
        if (check_phase(fs, p)) {
            fprintf(stderr, "  phase %d (of %d completed) is wrong after the crash\n", p, done);
            uext4_close(fs);
            return 1;
        }
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(!sb_says(img, "needs_recovery"));
    CHECK(fsck_clean(img));
    return 0;
}

static int test_clean_unmount_leaves_empty_journal(void)
{
    const char *img = mkimg("-t ext4 -O inline_data");
    int status, done;

    CHECK(img);
    done = run_child(img, NULL, NULL, true, &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(done, NPHASES);
    CHECK(!sb_says(img, "needs_recovery"));
    CHECK(sb_says(img, "Journal start: *0$"));
    /* The journal was used: its sequence moved on from mke2fs's 1. */
    CHECK(!sb_says(img, "Journal sequence: *0x00000001$"));
    CHECK(fsck_clean(img));
    return check_after_crash(img, NPHASES);
}

static int test_killed_after_sync_replays(void)
{
    const char *img = mkimg("-t ext4 -O inline_data");
    int status, done;

    CHECK(img);
    done = run_child(img, NULL, NULL, false, &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(done, NPHASES);
    CHECK(sb_says(img, "needs_recovery"));
    return check_after_crash(img, NPHASES);
}

static int test_e2fsck_replays_our_journal(void)
{
    const char *img = mkimg("-t ext4 -O inline_data,metadata_csum,64bit");
    char cmd[512];
    int status, done;

    CHECK(img);
    done = run_child(img, NULL, NULL, false, &status);
    CHECK_EQ(done, NPHASES);
    /* e2fsck replays the log itself; then nothing else may need fixing.
     * Exit 1 ("corrected") covers the replay and the orphan it frees. */
    snprintf(cmd, sizeof(cmd), "e2fsck -fy %s >&2", img);
    status = system(cmd);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    CHECK(fsck_clean(img));
    return check_after_crash(img, NPHASES);
}

static int test_norecovery_reads_unreplayed(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_options o = {.size = sizeof(o), .norecovery = true};
    struct uext4_fs *fs;
    int status;

    CHECK(img);
    CHECK_EQ(run_child(img, NULL, NULL, false, &status), NPHASES);
    fs = open_img(img, &o);
    CHECK(fs);
    CHECK(uext4_is_read_only(fs));
    CHECK_EQ(uext4_close(fs), 0);
    /* Untouched: still needs recovery, and gets it at the next mount. */
    CHECK(sb_says(img, "needs_recovery"));
    return check_after_crash(img, NPHASES);
}

/* uext4_remount: read-only commits and leaves the image final while it is
 * still open (e2fsck -fn clean, needs_recovery clear, or clean without a
 * journal), writes fail with EROFS; read-write again accepts them. An
 * image opened read-only cannot be made writable. */
static int remount_ro_and_back(const char *mkfs_args, bool journal)
{
    const struct uext4_options ro = {.size = sizeof(ro), .read_only = true};
    const char *img = mkimg(mkfs_args);
    const char *in_use = journal ? "needs_recovery" : "Filesystem state: *not clean$";
    struct uext4_fs *fs;
    struct stat st;
    uint32_t ino;
    char why[256];

    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(put_file(fs, UEXT4_ROOT_INO, "a", 6000, 21, &ino), 0);
    CHECK(sb_says(img, in_use));
    CHECK_EQ(uext4_remount(fs, true, why, sizeof(why)), 0);
    CHECK(uext4_is_read_only(fs));
    CHECK(!sb_says(img, in_use));
    CHECK(sb_says(img, "Filesystem state: *clean$"));
    CHECK(fsck_clean(img));
    CHECK_EQ(uext4_write(fs, &root, ino, "x", 1, 0, 0), -EROFS);
    CHECK_EQ(uext4_mknod(fs, &root, UEXT4_ROOT_INO, "b", S_IFREG | 0644, 0, &st), -EROFS);
    CHECK_EQ(uext4_remount(fs, true, why, sizeof(why)), 0);
    CHECK_EQ(uext4_remount(fs, false, why, sizeof(why)), 0);
    CHECK(!uext4_is_read_only(fs));
    CHECK(sb_says(img, in_use));
    CHECK_EQ(put_file(fs, UEXT4_ROOT_INO, "b", 9000, 22, NULL), 0);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    fs = open_img(img, &ro);
    CHECK(fs);
    CHECK_EQ(uext4_remount(fs, false, why, sizeof(why)), -EROFS);
    CHECK(strstr(why, "mounted read-only") != NULL);
    CHECK(uext4_is_read_only(fs));
    for (int i = 0; i < 2; i++) {
        static unsigned char want[9000], got[9000];
        size_t len = i ? 9000 : 6000;
        CHECK_EQ(uext4_resolve(fs, i ? "/b" : "/a", &ino), 0);
        CHECK_EQ(uext4_read(fs, ino, got, len, 0), len);
        pattern(want, len, 21 + i);
        CHECK(!memcmp(want, got, len));
    }
    CHECK_EQ(uext4_close(fs), 0);
    return 0;
}

static int test_remount_ro_and_back(void)
{
    return remount_ro_and_back("-t ext4 -O inline_data,metadata_csum,64bit", true) ||
           remount_ro_and_back("-t ext2", false);
}

/* A read-only open of an image that needs recovery replays the journal in
 * memory: every completed phase is visible, and the image file stays byte
 * for byte as the crash left it (cmp); the read-write open after it then
 * replays for real (check_after_crash: phases, needs_recovery clear,
 * e2fsck -fn). Crashes are power cuts at write steps spread over the
 * workload, so the checkpointed home blocks of the last transactions are
 * partly rolled back and only the log has them. */
static unsigned long long count_steps(const char *img, bool only_warm_up);

static int test_ro_replays_in_memory(void)
{
    const char *mkfs_args = "-t ext4 -O inline_data,metadata_csum,64bit";
    const struct uext4_options ro = {.size = sizeof(ro), .read_only = true};
    char at[32], before[128], cmd[512];
    unsigned long long steps;
    unsigned tried = 0;
    const char *img;
    int status;

    img = mkimg(mkfs_args);
    CHECK(img);
    steps = count_steps(img, false);
    CHECK(steps > 20);
    snprintf(before, sizeof(before), "%s/before.img", tmpdir);
    for (unsigned long long n = steps / 16; n <= steps; n += steps / 16) {
        struct uext4_fs *fs;
        int done;

        img = mkimg(mkfs_args);
        CHECK(img);
        snprintf(at, sizeof(at), "%llu", n);
        done = run_child(img, at, NULL, true, &status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == FAULT_EXIT);
        if (!sb_says(img, "needs_recovery"))
            continue;
        snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", img, before);
        CHECK_EQ(system(cmd), 0);
        fs = open_img(img, &ro);
        CHECK(fs);
        CHECK(uext4_is_read_only(fs));
        for (int p = 0; p < done; p++)
            if (check_phase(fs, p)) {
                fprintf(stderr, "  ro open after a power cut at step %llu: phase %d of %d wrong\n",
                        n, p, done);
                uext4_close(fs);
                return 1;
            }
        CHECK_EQ(uext4_close(fs), 0);
        snprintf(cmd, sizeof(cmd), "cmp %s %s >&2", before, img);
        if (system(cmd) != 0) {
            fprintf(stderr, "  the ro open changed the image (power cut at step %llu)\n", n);
            return 1;
        }
        CHECK(sb_says(img, "needs_recovery"));
        if (check_after_crash(img, done))
            return 1;
        tried++;
    }
    fprintf(stderr, "  %u crashed images opened read-only, none modified\n", tried);
    CHECK(tried >= 8);
    return 0;
}

/* An image that needs recovery whose journal superblock records an abort
 * with s_errno 0x80000000 (INT_MIN, which negating overflows): the log is
 * replayed, the file system marked as having errors, and the open refused
 * for them, with no undefined behaviour (the ASan+UBSan build halts on
 * any). */
static int test_aborted_journal_errno_int_min(void)
{
    /* No metadata_csum: the journal superblock has no checksum to fix. */
    const char *img = mkimg("-t ext4 -b 4096 -O ^metadata_csum");
    char cmd[1024], why[256] = "";
    struct uext4_fs *fs = NULL;
    int status;

    CHECK(img);
    CHECK_EQ(run_child(img, NULL, NULL, false, &status), NPHASES);
    CHECK(sb_says(img, "needs_recovery"));
    /* s_errno is the big-endian word at byte 32 of the journal superblock,
     * the first block of the journal inode (8). */
    snprintf(cmd, sizeof(cmd),
             "b=$(debugfs -R 'bmap <8> 0' %s 2>/dev/null) && [ \"$b\" -gt 0 ] && "
             "printf '\\200\\000\\000\\000' | "
             "dd of=%s bs=1 seek=$((b * 4096 + 32)) conv=notrunc status=none",
             img, img);
    CHECK_EQ(system(cmd), 0);
    CHECK_EQ(uext4_open(img, NULL, &fs, why, sizeof(why)), -EUCLEAN);
    CHECK(strstr(why, "errors"));
    CHECK(!sb_says(img, "needs_recovery"));
    CHECK(sb_says(img, "Filesystem state:.*with errors"));
    /* The replay itself was whole: once e2fsck has cleared the error
     * state, the data of every phase is there. */
    snprintf(cmd, sizeof(cmd), "e2fsck -fy %s >&2", img);
    status = system(cmd);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    CHECK(fsck_clean(img));
    return check_after_crash(img, NPHASES);
}

/* A power cut at every write step of the workload (with a seeded subset of
 * the unflushed writes lost), on @mkfs_args images. */
static unsigned long long count_steps(const char *img, bool only_warm_up)
{
    char count_path[128];
    unsigned long long steps = 0;
    int status;
    FILE *f;

    snprintf(count_path, sizeof(count_path), "%s/steps", tmpdir);
    unlink(count_path);
    warm_only = only_warm_up;
    run_child(img, NULL, count_path, true, &status);
    warm_only = false;
    f = fopen(count_path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%llu", &steps) != 1)
        steps = 0;
    fclose(f);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? steps : 0;
}

static int power_cut_sweep(const char *mkfs_args, unsigned stride)
{
    char at[32];
    const char *img;
    unsigned long long steps, first = 1;
    unsigned tried = 0;
    int status;

    img = mkimg(mkfs_args);
    CHECK(img);
    steps = count_steps(img, false);
    CHECK(steps > 20);
    if (warm_commits) {
        /* Cut only after the warm-up: that is where the log wraps. */
        img = mkimg(mkfs_args);
        CHECK(img);
        first = count_steps(img, true) + 1;
        CHECK(first > 1 && first < steps);
    }
    for (unsigned long long n = first; n <= steps;
         n += (n < first + 12 || n + 12 > steps) ? 1 : stride) {
        int done;
        img = mkimg(mkfs_args);
        CHECK(img);
        snprintf(at, sizeof(at), "%llu", n);
        done = run_child(img, at, NULL, true, &status);
        CHECK(WIFEXITED(status));
        if (WEXITSTATUS(status) != FAULT_EXIT) {
            /* Exit 0: this run took fewer write steps than the counting
             * run, so step numbers do not name the same moments. */
            fprintf(stderr, "  step %llu of %llu: child exited %d, not by the power cut\n", n,
                    steps, WEXITSTATUS(status));
            return 1;
        }
        if (check_after_crash(img, done)) {
            fprintf(stderr, "  power cut at step %llu of %llu (%d phases done)\n", n, steps, done);
            return 1;
        }
        tried++;
    }
    fprintf(stderr, "  %u power cuts over %llu write steps, all clean\n", tried, steps);
    return 0;
}

static int test_power_cut_every_step_csum(void)
{
    return power_cut_sweep("-t ext4 -O inline_data,metadata_csum,64bit", 3);
}

static int test_power_cut_every_step_1k_nocsum(void)
{
    return power_cut_sweep("-t ext4 -b 1024 -O ^metadata_csum,^64bit", 5);
}

static int test_power_cut_while_log_wraps(void)
{
    /* A 1024-block log: 400 commits of at least 3 blocks each go round it
     * once, so the phases' transactions wrap past its end. */
    int ret;

    warm_commits = 400;
    ret = power_cut_sweep("-t ext4 -b 1024 -J size=1 -O ^metadata_csum", 4);
    warm_commits = 0;
    return ret;
}

static int test_transactions_larger_than_the_log(void)
{
    /* A log of 12 blocks: most phases outgrow it and are written home
     * unprotected, with the superblock marked not clean meanwhile; a clean
     * run must still end clean and whole. */
    const char *img = mkimg("-t ext4 -O inline_data");
    int status, done;

    CHECK(img);
    setenv("UEXT4_TEST_LOG_BLOCKS", "12", 1);
    done = run_child(img, NULL, NULL, true, &status);
    unsetenv("UEXT4_TEST_LOG_BLOCKS");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(done, NPHASES);
    CHECK(sb_says(img, "Filesystem state: *clean$"));
    CHECK(fsck_clean(img));
    return check_after_crash(img, NPHASES);
}

/* The small-journal workload, in a child whose stderr goes to @log. */
static void many_creates_child(const char *img, const char *log)
{
    struct uext4_fs *fs;
    char name[32];
    struct stat st;

    if (!freopen(log, "w", stderr))
        _exit(2);
    setvbuf(stderr, NULL, _IONBF, 0); /* the child ends with _exit() */
    fs = open_img(img, NULL);
    if (!fs)
        _exit(3);
    for (int i = 0; i < 6000; i++) {
        snprintf(name, sizeof(name), "f%05d", i);
        if (uext4_mknod(fs, &root, UEXT4_ROOT_INO, name, S_IFREG | 0644, 0, &st))
            _exit(4);
    }
    /* Their lookup references stay: at close they are 3,000 orphans. */
    for (int i = 0; i < 6000; i += 2) {
        snprintf(name, sizeof(name), "f%05d", i);
        if (uext4_unlink(fs, &root, UEXT4_ROOT_INO, name))
            _exit(5);
    }
    _exit(uext4_close(fs) ? 6 : 0);
}

static int test_small_journal_many_commits(void)
{
    /* A 1024-block journal: creating 6,000 256-byte inodes (1,500 inode
     * table blocks) outgrows a quarter of it many times, and so does
     * releasing 3,000 orphans at close; commits must come between operations, so that no
     * transaction outgrows the log (which the daemon would log as written unprotected). */
    const char *img = mkimg("-t ext4 -b 1024 -I 256 -J size=1 -N 8192");
    char log[128];
    int status;
    pid_t pid;

    CHECK(img);
    snprintf(log, sizeof(log), "%s/many.log", tmpdir);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        many_creates_child(img, log);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (sh("grep -q 'does not fit' %s", log) == 0) {
        sh("cat %s >&2", log);
        return 1;
    }
    CHECK(fsck_clean(img));
    return 0;
}

static int test_enospc_after_delete_retries(void)
{
    /* The blocks of a deleted file are held back until the commit that
     * frees them is durable; a write that finds the disk full commits and
     * tries again instead of failing. */
    const char *img = mkimg("-t ext4");
    static unsigned char buf[1 << 20];
    struct uext4_fs *fs;
    uint32_t big, other;
    off_t off = 0;
    ssize_t w;

    CHECK(img);
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(put_file(fs, UEXT4_ROOT_INO, "big", 0, 0, &big), 0);
    memset(buf, 0xab, sizeof(buf));
    while ((w = uext4_write(fs, &root, big, buf, sizeof(buf), off, 0)) > 0)
        off += w;
    CHECK_EQ(w, -ENOSPC);
    CHECK(off > (8 << 20));
    CHECK_EQ(uext4_unlink(fs, &root, UEXT4_ROOT_INO, "big"), 0);
    uext4_forget(fs, big, 1); /* the last reference: its blocks are freed */
    CHECK_EQ(put_file(fs, UEXT4_ROOT_INO, "after", 0, 0, &other), 0);
    for (off_t o = 0; o < (4 << 20); o += (off_t)sizeof(buf))
        CHECK_EQ(uext4_write(fs, &root, other, buf, sizeof(buf), o, 0), sizeof(buf));
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

int main(int argc, char **argv)
{
    static const struct test_case cases[] = {
        {"clean_unmount_leaves_empty_journal", test_clean_unmount_leaves_empty_journal},
        {"killed_after_sync_replays", test_killed_after_sync_replays},
        {"e2fsck_replays_our_journal", test_e2fsck_replays_our_journal},
        {"norecovery_reads_unreplayed", test_norecovery_reads_unreplayed},
        {"ro_replays_in_memory", test_ro_replays_in_memory},
        {"remount_ro_and_back", test_remount_ro_and_back},
        {"aborted_journal_errno_int_min", test_aborted_journal_errno_int_min},
        {"small_journal_many_commits", test_small_journal_many_commits},
        {"transactions_larger_than_the_log", test_transactions_larger_than_the_log},
        {"enospc_after_delete_retries", test_enospc_after_delete_retries},
        {"power_cut_every_step_csum", test_power_cut_every_step_csum},
        {"power_cut_every_step_1k_nocsum", test_power_cut_every_step_1k_nocsum},
        {"power_cut_while_log_wraps", test_power_cut_while_log_wraps},
    };
    int ret;

    /* tmpfs when there is one: hundreds of images, each synced often. */
    if (make_tmpdir(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", "uext4-jlib"))
        return 1;
    if (argc > 1) {
        /* One case by name, for a developer's run. */
        ret = 1;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            if (!strcmp(cases[i].name, argv[1]))
                ret = run_tests(&cases[i], 1);
    } else {
        ret = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    }
    sh("rm -rf %s", tmpdir);
    return ret;
}
