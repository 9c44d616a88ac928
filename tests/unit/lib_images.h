/* Shared by the library-mode tests: a scratch directory, fresh mke2fs
 * images in it (fixed UUID and hash seed), e2fsck as the oracle, and
 * opening an image with the reason printed on failure. */
#ifndef UEXT4_TEST_LIB_IMAGES_H
#define UEXT4_TEST_LIB_IMAGES_H

#include "uext4.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];
static const struct uext4_cred root = {.uid = 0, .gid = 0, .umask = 022};

/* Run @fmt with every %s (at most two) replaced by @arg. */
static int sh(const char *fmt, const char *arg)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), fmt, arg, arg);
    return system(cmd);
}

/* Create the scratch directory under @base, named after @prefix. */
static int make_tmpdir(const char *base, const char *prefix)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/%s-XXXXXX", base, prefix);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* A fresh 32 MiB image (the same path each time); @mkfs_args are mke2fs
 * options. */
static const char *mkimg(const char *mkfs_args)
{
    static char path[128];
    char cmd[512];

    snprintf(path, sizeof(path), "%s/t.img", tmpdir);
    unlink(path);
    snprintf(cmd, sizeof(cmd),
             "mke2fs -q -F -U 6b1a4c3e-1f1d-4c55-9d39-0d1f0b6a2c11 -E hash_seed="
             "1b4d7e43-5a7b-4c1c-8a64-2f4b1e7d9a10 %s %s 32M >/dev/null 2>&1",
             mkfs_args, path);
    return system(cmd) == 0 ? path : NULL;
}

static int fsck_clean(const char *img)
{
    /* The report goes to stderr, to be read when a case fails. */
    return sh("e2fsck -fn %s >&2", img) == 0;
}

/* For a child whose write steps are counted (UEXT4_FAULT_COUNT) and then
 * cut one by one (UEXT4_FAULT_AT), so that step N is the same moment in
 * every run; call before uext4_open(). Every commit's ext2fs_flush2()
 * stamps s_wtime with time(NULL), unless ext2fs_open2() found
 * E2FSPROGS_FAKE_TIME (libext2fs's own test hook, its fs->now): a commit
 * that otherwise leaves the superblock alone then logs it and writes it
 * home whenever the wall clock's second has changed since the last one,
 * two steps more in a run that crosses a second than in one that does not. */
static inline void fix_libext2fs_clock(void)
{
    setenv("E2FSPROGS_FAKE_TIME", "1700000000", 1);
}

static struct uext4_fs *open_img(const char *img, const struct uext4_options *o)
{
    struct uext4_fs *fs = NULL;
    char why[256];
    int ret = uext4_open(img, o, &fs, why, sizeof(why));

    if (ret)
        fprintf(stderr, "  open %s: %d %s\n", img, ret, why);
    return fs;
}

#endif
