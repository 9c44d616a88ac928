/* Library mode from several threads at once, as an embedding program (or
 * the FUSE daemon's worker threads) calls it: writers creating, writing,
 * renaming and unlinking files in one shared directory; two threads
 * writing disjoint ranges of one shared file while a third stores through
 * emulated mmap pages and writes them back; a reader listing the directory,
 * syncing and asking statfs; the commit thread running every second.
 * Every byte is checked afterwards, and the image by e2fsck.
 *
 * Under ThreadSanitizer (.ci/run) this is the test that makes the core's
 * locking race: the data races it reports are the ones a FUSE daemon with
 * many worker threads would hit. */
#include "lib_images.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define WRITERS     3
#define FILES       24   /* per writer */
#define SHARED_PART 8192 /* each of the two shared-file writers' ranges */
#define ROUNDS      40
#define MAP_PAGE    4096 /* one emulated mmap page */

static struct uext4_fs *fs;
static atomic_int failures;
static atomic_bool writers_done;

#define FAILED(...)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "  " __VA_ARGS__);                                                         \
        atomic_fetch_add(&failures, 1);                                                            \
    } while (0)

static void fill(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 9));
}

/* Create, write (inline-sized and block-sized), read back, rename; unlink
 * every other file. */
static void *writer(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    unsigned char buf[6000], back[6000];

    for (unsigned i = 0; i < FILES; i++) {
        char name[32], renamed[32];
        size_t len = i % 2 ? 100 : sizeof(buf); /* inline, then extents */
        struct stat st;
        uint32_t ino;
        ssize_t n;

        snprintf(name, sizeof(name), "w%u-%u", t, i);
        snprintf(renamed, sizeof(renamed), "r%u-%u", t, i);
        if (uext4_mknod(fs, &root, 2, name, S_IFREG | 0644, 0, &st)) {
            FAILED("mknod %s\n", name);
            continue;
        }
        ino = (uint32_t)st.st_ino;
        fill(buf, len, t * 1000 + i);
        n = uext4_write(fs, &root, ino, buf, len, 0, 0);
        if (n != (ssize_t)len)
            FAILED("write %s: %zd\n", name, n);
        n = uext4_read(fs, ino, back, len, 0);
        if (n != (ssize_t)len || memcmp(buf, back, len))
            FAILED("read back %s: %zd\n", name, n);
        if (uext4_rename(fs, &root, 2, name, 2, renamed, 0))
            FAILED("rename %s\n", name);
        if (i % 2 == 0 && uext4_unlink(fs, &root, 2, renamed))
            FAILED("unlink %s\n", renamed);
        uext4_forget(fs, ino, 1);
    }
    return NULL;
}

struct shared {
    uint32_t ino;
    unsigned part; /* 0 or 1: which range write(2)s go to */
};

/* write(2) into one half of the first 16 KiB of the shared file. */
static void *shared_writer(void *arg)
{
    const struct shared *s = arg;
    unsigned char buf[SHARED_PART];

    for (unsigned r = 0; r < ROUNDS; r++) {
        fill(buf, sizeof(buf), 50 + s->part * 100 + r);
        if (uext4_write(fs, &root, s->ino, buf, sizeof(buf), (off_t)s->part * SHARED_PART, 0) !=
            (ssize_t)sizeof(buf))
            FAILED("shared write part %u round %u\n", s->part, r);
    }
    return NULL;
}

/* Stores through emulated mmap pages past the written halves, each round
 * written back (or left for fsync). */
static void *shared_mapper(void *arg)
{
    const struct shared *s = arg;
    unsigned char buf[MAP_PAGE];

    for (unsigned r = 0; r < ROUNDS; r++) {
        int ret;
        fill(buf, sizeof(buf), 900 + r);
        ret = uext4_mmap_store(fs, s->ino, 2 * SHARED_PART, buf, sizeof(buf));
        if (ret)
            FAILED("mmap store round %u: %d\n", r, ret);
        ret = r % 2 ? uext4_writeback(fs, s->ino) : uext4_fsync(fs, s->ino, true);
        if (ret)
            FAILED("writeback round %u: %d\n", r, ret);
    }
    return NULL;
}

static int count_entry(void *ctx, const char *name, uint32_t ino, unsigned dtype, uint64_t next_pos)
{
    (void)name, (void)ino, (void)dtype, (void)next_pos;
    ++*(unsigned *)ctx;
    return 0;
}

/* List the shared directory, sync, statfs, until the writers are done. */
static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&writers_done)) {
        struct uext4_dir *d;
        struct statvfs sv;
        unsigned n = 0;

        if (uext4_opendir(fs, &root, 2, &d)) {
            FAILED("opendir\n");
            break;
        }
        if (uext4_readdir(fs, d, 0, count_entry, &n) || n < 3)
            FAILED("readdir: %u entries\n", n);
        uext4_releasedir(fs, d);
        if (uext4_sync(fs))
            FAILED("sync\n");
        if (uext4_statfs(fs, &sv))
            FAILED("statfs\n");
    }
    return NULL;
}

static int check_results(uint32_t shared_ino)
{
    unsigned char want[6000], got[6000], page[MAP_PAGE];
    int bad = 0;

    for (unsigned t = 0; t < WRITERS; t++) {
        for (unsigned i = 0; i < FILES; i++) {
            char path[40];
            size_t len = i % 2 ? 100 : sizeof(want);
            uint32_t ino;
            int ret;

            snprintf(path, sizeof(path), "/r%u-%u", t, i);
            ret = uext4_resolve(fs, path, &ino);
            if (i % 2 == 0) {
                if (ret != -ENOENT) {
                    fprintf(stderr, "  %s: unlinked, resolves: %d\n", path, ret);
                    bad++;
                }
                continue;
            }
            fill(want, len, t * 1000 + i);
            if (ret || uext4_read(fs, ino, got, sizeof(got), 0) != (ssize_t)len ||
                memcmp(want, got, len)) {
                fprintf(stderr, "  %s: content differs (%d)\n", path, ret);
                bad++;
            }
        }
    }
    for (unsigned part = 0; part < 2; part++) {
        fill(want, SHARED_PART > sizeof(want) ? sizeof(want) : SHARED_PART,
             50 + part * 100 + ROUNDS - 1);
        if (uext4_read(fs, shared_ino, got, sizeof(got), (off_t)part * SHARED_PART) !=
                (ssize_t)sizeof(got) ||
            memcmp(want, got, sizeof(got))) {
            fprintf(stderr, "  shared file part %u differs\n", part);
            bad++;
        }
    }
    fill(page, sizeof(page), 900 + ROUNDS - 1);
    if (uext4_read(fs, shared_ino, got, sizeof(page), 2 * SHARED_PART) != (ssize_t)sizeof(page) ||
        memcmp(page, got, sizeof(page))) {
        fprintf(stderr, "  shared file's mmap page differs\n");
        bad++;
    }
    return bad;
}

int main(void)
{
    pthread_t w[WRITERS], sw[2], sm, rd;
    struct shared parts[2];
    struct uext4_options o;
    const char *img;
    struct stat st;
    unsigned char zero[MAP_PAGE] = {0};
    int bad;

    if (make_tmpdir("/tmp", "uext4-threads") || !(img = mkimg("-t ext4 -b 4096 -I 256"))) {
        fprintf(stderr, "cannot make the image\n");
        return 1;
    }
    uext4_options_init(&o, sizeof(o));
    o.commit_seconds = 1;
    fs = open_img(img, &o);
    if (!fs)
        return 1;
    /* The shared file, long enough for the mapped page to lie below EOF. */
    if (uext4_mknod(fs, &root, 2, "shared", S_IFREG | 0644, 0, &st) ||
        uext4_write(fs, &root, (uint32_t)st.st_ino, zero, sizeof(zero), 2 * SHARED_PART, 0) !=
            (ssize_t)sizeof(zero)) {
        fprintf(stderr, "cannot make the shared file\n");
        return 1;
    }
    for (unsigned p = 0; p < 2; p++)
        parts[p] = (struct shared){(uint32_t)st.st_ino, p};
    pthread_create(&rd, NULL, reader, NULL);
    for (unsigned t = 0; t < WRITERS; t++)
        pthread_create(&w[t], NULL, writer, (void *)(uintptr_t)t);
    for (unsigned p = 0; p < 2; p++)
        pthread_create(&sw[p], NULL, shared_writer, &parts[p]);
    pthread_create(&sm, NULL, shared_mapper, &parts[0]);
    for (unsigned t = 0; t < WRITERS; t++)
        pthread_join(w[t], NULL);
    for (unsigned p = 0; p < 2; p++)
        pthread_join(sw[p], NULL);
    pthread_join(sm, NULL);
    atomic_store(&writers_done, true);
    pthread_join(rd, NULL);

    bad = check_results(parts[0].ino);
    uext4_forget(fs, parts[0].ino, 1);
    if (uext4_close(fs)) {
        fprintf(stderr, "  close failed\n");
        bad++;
    }
    if (!fsck_clean(img)) {
        fprintf(stderr, "  e2fsck -fn %s is not clean\n", img);
        bad++;
    }
    sh("rm -rf %s", tmpdir);
    bad += atomic_load(&failures);
    printf("%s threads\n%d passed, %d failed\n", bad ? "FAIL" : "ok", bad ? 0 : 1, bad ? 1 : 0);
    return bad ? 1 : 0;
}
