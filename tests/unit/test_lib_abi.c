/* The library's ABI contract (include/uext4.h): struct uext4_options carries
 * its size, so that programs built against an older or newer uext4.h keep
 * working or are refused with a reason; and uext4_set_log_func() hands the
 * library's messages to the embedding program instead of stderr. On real
 * images made by mke2fs, checked by e2fsck. */
#include "harness.h"
#include "lib_images.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static int init_sets_size_and_defaults(void)
{
    struct uext4_options o;

    memset(&o, 0xa5, sizeof(o));
    uext4_options_init(&o, sizeof(o));
    CHECK_EQ(o.size, sizeof(o));
    CHECK(!o.read_only);
    CHECK(!o.fakeroot);
    CHECK_EQ(o.errors, UEXT4_ERRORS_DEFAULT);
    CHECK_EQ(o.commit_seconds, 0);
    CHECK_EQ(o.cache_bytes, 0);
    CHECK_EQ(o.nuidmap, 0);
    CHECK_EQ(o.gidmap[UEXT4_MAX_IDMAP - 1].count, 0);
    return 0;
}

static int open_honours_initialised_options(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_options o;
    struct uext4_fs *fs;
    struct stat st;

    CHECK(img);
    uext4_options_init(&o, sizeof(o));
    o.read_only = true;
    fs = open_img(img, &o);
    CHECK(fs);
    CHECK(uext4_is_read_only(fs));
    CHECK_EQ(uext4_mkdir(fs, &root, UEXT4_ROOT_INO, "d", 0755, &st), -EROFS);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A caller that never set the size (`= {.read_only = true}`) gets the first
 * layout's fields; a size shorter than that layout is refused with a reason
 * that names the fix, and the image is left alone. */
static int open_size_zero_or_too_short(void)
{
    const char *img = mkimg("-t ext4");
    struct uext4_options o = {.read_only = true};
    struct uext4_fs *fs = NULL;
    char why[256];

    CHECK(img);
    CHECK_EQ(o.size, 0);
    CHECK_EQ(uext4_open(img, &o, &fs, why, sizeof(why)), 0);
    CHECK(uext4_is_read_only(fs));
    CHECK_EQ(uext4_close(fs), 0);

    fs = NULL;
    o.size = sizeof(size_t) + 1;
    CHECK_EQ(uext4_open(img, &o, &fs, why, sizeof(why)), -EINVAL);
    CHECK(fs == NULL);
    CHECK(strstr(why, "uext4_options_init"));
    o.size = offsetof(struct uext4_options, gidmap);
    CHECK_EQ(uext4_open(img, &o, &fs, why, sizeof(why)), -EINVAL);
    /* Not left locked: a proper open works. */
    fs = open_img(img, NULL);
    CHECK(fs);
    CHECK_EQ(uext4_close(fs), 0);
    CHECK(fsck_clean(img));
    return 0;
}

/* A program built against a newer uext4.h: its struct is longer. Fields
 * left at zero (their default) are fine; a set one is refused rather than
 * ignored. */
static int open_newer_caller(void)
{
    const char *img = mkimg("-t ext4");
    struct {
        struct uext4_options o;
        uint64_t later[2];
    } newer;
    struct uext4_fs *fs = NULL;
    char why[256];

    CHECK(img);
    uext4_options_init(&newer.o, sizeof(newer));
    CHECK_EQ(newer.o.size, sizeof(newer));
    CHECK_EQ(newer.later[0], 0);
    CHECK_EQ(newer.later[1], 0);
    newer.o.read_only = true;
    CHECK_EQ(uext4_open(img, &newer.o, &fs, why, sizeof(why)), 0);
    CHECK(uext4_is_read_only(fs));
    CHECK_EQ(uext4_close(fs), 0);

    fs = NULL;
    newer.later[1] = 1;
    CHECK_EQ(uext4_open(img, &newer.o, &fs, why, sizeof(why)), -EINVAL);
    CHECK(fs == NULL);
    CHECK(strstr(why, "does not know"));
    CHECK(fsck_clean(img));
    return 0;
}

struct log_record {
    unsigned n;
    enum uext4_log_level level[8];
    char msg[8][256];
};

static void record(enum uext4_log_level level, const char *msg, void *data)
{
    struct log_record *r = data;

    if (r->n < 8) {
        r->level[r->n] = level;
        snprintf(r->msg[r->n], sizeof(r->msg[0]), "%s", msg);
    }
    r->n++;
}

/* Open @img read-write (a read-only feature image is forced read-only with
 * a warning)
 * with stderr sent to a file; returns the bytes written to stderr. */
static long open_close_capturing_stderr(const char *img, int *open_ret)
{
    char path[128];
    struct uext4_fs *fs = NULL;
    char why[256];
    int saved, fd;
    long len;

    snprintf(path, sizeof(path), "%s/stderr", tmpdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    *open_ret = uext4_open(img, NULL, &fs, why, sizeof(why));
    if (*open_ret == 0)
        uext4_close(fs);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    len = lseek(fd, 0, SEEK_END);
    close(fd);
    return len;
}

static int log_func_gets_messages(void)
{
    const char *img = mkimg("-t ext4");
    struct log_record r = {0};
    int ret;

    CHECK(img);
    CHECK_EQ(sh("tune2fs -O read-only %s >/dev/null 2>&1", img), 0);
    /* The default: the warning goes to stderr. */
    CHECK(open_close_capturing_stderr(img, &ret) > 0);
    CHECK_EQ(ret, 0);

    uext4_set_log_func(record, &r, UEXT4_LOG_WARNING);
    CHECK_EQ(open_close_capturing_stderr(img, &ret), 0);
    CHECK_EQ(ret, 0);
    CHECK(r.n >= 1);
    CHECK_EQ(r.level[0], UEXT4_LOG_WARNING);
    CHECK(strstr(r.msg[0], "'read-only'"));
    CHECK(!strchr(r.msg[0], '\n'));

    /* Only errors asked for: the warning is not passed on. */
    memset(&r, 0, sizeof(r));
    uext4_set_log_func(record, &r, UEXT4_LOG_ERR);
    CHECK_EQ(open_close_capturing_stderr(img, &ret), 0);
    CHECK_EQ(ret, 0);
    CHECK_EQ(r.n, 0);

    /* NULL: back to stderr. */
    uext4_set_log_func(NULL, NULL, UEXT4_LOG_DEBUG);
    CHECK(open_close_capturing_stderr(img, &ret) > 0);
    CHECK_EQ(r.n, 0);
    CHECK(fsck_clean(img));
    return 0;
}

int main(void)
{
    static const struct test_case cases[] = {
        {"options_init_sets_size_and_defaults", init_sets_size_and_defaults},
        {"open_honours_initialised_options", open_honours_initialised_options},
        {"open_size_zero_or_too_short", open_size_zero_or_too_short},
        {"open_newer_caller", open_newer_caller},
        {"log_func_gets_messages", log_func_gets_messages},
    };
    const char *base = getenv("TMPDIR");
    int ret;

    if (make_tmpdir(base ? base : "/tmp", "uext4-abi") < 0)
        return 1;
    ret = run_tests(cases, sizeof(cases) / sizeof(cases[0]));
    sh("rm -rf %s", tmpdir);
    return ret;
}
