/* Scenario images: made by mke2fs from the `image` header line with a fixed
 * UUID and hash seed, so runs are reproducible, edited by the header's
 * `debugfs` lines, filled to the `fill` figure, and checked by e2fsck. */
#include "scenario/scn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define SCN_UUID      "5c3e7a10-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
#define SCN_HASH_SEED "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
#define TOOL_TIMEOUT  120
/* the file `fill` allocates, out of the way of the root's entries */
#define FILL_DIR  "/lost+found"
#define FILL_NAME "fill"

/* `debugfs "CMD"`: debugfs -w -R CMD. debugfs exits 0 after most failed
 * commands, so its stderr decides: anything but its version banner there
 * is the command's error. */
static int run_debugfs(const char *cmd, const char *img, const char *log, char *why, size_t why_len)
{
    char err[320], excerpt[512], line[512];
    /* the shell only redirects: the command and paths are its arguments */
    char *argv[] = {"sh", "-c",        "exec debugfs -w -R \"$1\" \"$2\" 2>\"$3\"",
                    "sh", (char *)cmd, (char *)img,
                    err,  NULL};
    bool failed = false;
    FILE *f;
    int ret;

    snprintf(err, sizeof(err), "%s.debugfs", img);
    ret = scn_run_cmd(argv, log, TOOL_TIMEOUT);
    excerpt[0] = '\0';
    f = fopen(err, "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "debugfs ", 8) && strchr(line, '('))
            continue;
        if (!failed)
            snprintf(excerpt, sizeof(excerpt), "%.*s", (int)strcspn(line, "\n"), line);
        failed = true;
    }
    if (f)
        fclose(f);
    unlink(err);
    if (!ret && !failed)
        return 0;
    snprintf(why, why_len, "debugfs -w -R \"%s\": %s", cmd,
             failed    ? excerpt
             : ret < 0 ? scn_errno_name(ret)
                       : "non-zero exit");
    return -EINVAL;
}

static int fill_statfs(struct uext4_fs *fs, uint64_t *bfree, off_t *bsize)
{
    struct statvfs sv;
    int ret = uext4_statfs(fs, &sv);

    *bfree = sv.f_bfree;
    *bsize = (off_t)sv.f_frsize;
    return ret;
}

static const struct uext4_cred fill_root = {.uid = 0, .gid = 0, .umask = 022};

/* Create and open FILL_DIR/FILL_NAME; *@ino is set once it exists,
 * *@opened once it is open (both are undone by the caller). */
static int fill_create(struct uext4_fs *fs, uint32_t *ino, bool *opened)
{
    struct stat st;
    uint32_t dir;
    int ret;

    ret = uext4_resolve(fs, FILL_DIR, &dir);
    if (!ret)
        ret = uext4_mknod(fs, &fill_root, dir, FILL_NAME, S_IFREG | 0600, 0, &st);
    if (!ret) {
        *ino = (uint32_t)st.st_ino;
        ret = uext4_open_file(fs, &fill_root, *ino, O_RDWR | O_CREAT);
        *opened = ret == 0;
    }
    return ret;
}

/* Grow or shrink the file until statfs says @want_free blocks are free
 * (the last count seen in *@bfree); at most 16 rounds. */
static int fill_to(struct uext4_fs *fs, uint32_t ino, uint64_t want_free, uint64_t *bfree)
{
    struct stat in = {0};
    off_t size = 0, bsize = 4096;
    int ret = 0;

    for (unsigned round = 0; !ret && round < 16; round++) {
        ret = fill_statfs(fs, bfree, &bsize);
        if (ret || *bfree == want_free)
            break;
        if (*bfree > want_free) {
            off_t more = (off_t)(*bfree - want_free) * bsize;

            ret = uext4_fallocate(fs, &fill_root, ino, 0, size, more);
            size += more;
        } else {
            off_t less = (off_t)(want_free - *bfree) * bsize;

            if (less > size)
                break; /* cannot free what the file does not hold */
            size -= less;
            in.st_size = size;
            ret = uext4_setattr(fs, &fill_root, ino, &in, UEXT4_SET_SIZE | UEXT4_SET_FH, NULL);
        }
    }
    return ret;
}

/* Release and forget the file, close the image; the first error wins. */
static int fill_close(struct uext4_fs *fs, uint32_t ino, bool opened, int ret, char *why,
                      size_t why_len)
{
    int err;

    if (opened && (err = uext4_release(fs, ino)) && !ret) {
        ret = err;
        snprintf(why, why_len, "fill: release: %s", scn_errno_name(err));
    }
    if (ino)
        uext4_forget(fs, ino, 1);
    err = uext4_close(fs);
    if (err && !ret) {
        ret = err;
        snprintf(why, why_len, "fill: closing the image: %s", scn_errno_name(err));
    }
    return ret;
}

/* `fill N`: allocate a file (lost+found/fill) with the library until
 * exactly N blocks are free. The file's own extent blocks count too, so
 * the size is corrected until statfs says N. */
static int fill_image(const char *img, uint64_t want_free, char *why, size_t why_len)
{
    struct uext4_options opts;
    struct uext4_fs *fs = NULL;
    uint64_t bfree = 0;
    uint32_t ino = 0;
    bool opened = false;
    int ret;

    uext4_options_init(&opts, sizeof(opts));
    ret = uext4_open(img, &opts, &fs, why, why_len);
    if (ret)
        return ret;
    ret = fill_create(fs, &ino, &opened);
    if (!ret)
        ret = fill_to(fs, ino, want_free, &bfree);
    if (!ret && bfree != want_free) {
        snprintf(why, why_len, "fill %" PRIu64 ": %" PRIu64 " blocks free, cannot reach %" PRIu64,
                 want_free, bfree, want_free);
        ret = -ENOSPC;
    } else if (ret) {
        snprintf(why, why_len, "fill %" PRIu64 ": %s (%" PRIu64 " blocks free)", want_free,
                 scn_errno_name(ret), bfree);
    }
    return fill_close(fs, ino, opened, ret, why, why_len);
}

static int edit_image(const struct scn_image *im, const char *img, const char *log, char *why,
                      size_t why_len)
{
    int ret = 0;

    for (unsigned i = 0; !ret && i < im->ndebugfs; i++)
        ret = run_debugfs(im->debugfs[i], img, log, why, why_len);
    if (!ret && im->fill_free >= 0)
        ret = fill_image(img, (uint64_t)im->fill_free, why, why_len);
    return ret;
}

int scn_mkfs(const struct scn_image *im, const char *img, const char *log, char *why,
             size_t why_len)
{
    char size[32], isize[16], bsize[16], ext[96];
    char *argv[20];
    int argc = 0, fd, ret;

    fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)(im->size ? im->size : 16u << 20)) < 0) {
        ret = -errno;
        snprintf(why, why_len, "cannot create image %s: %s", img, strerror(errno));
        if (fd >= 0)
            close(fd);
        return ret;
    }
    close(fd);
    snprintf(size, sizeof(size), "%" PRIu64, im->size);
    snprintf(isize, sizeof(isize), "%u", im->inode_size);
    snprintf(bsize, sizeof(bsize), "%u", im->block_size ? im->block_size : 4096);
    snprintf(ext, sizeof(ext), "hash_seed=%s", SCN_HASH_SEED);
    argv[argc++] = "mke2fs";
    argv[argc++] = "-F";
    argv[argc++] = "-q";
    argv[argc++] = "-t";
    argv[argc++] = (char *)im->fstype;
    argv[argc++] = "-U";
    argv[argc++] = SCN_UUID;
    argv[argc++] = "-E";
    argv[argc++] = ext;
    /* Small images would get 1 KiB blocks by default: say it. */
    argv[argc++] = "-b";
    argv[argc++] = bsize;
    if (im->inode_size) {
        argv[argc++] = "-I";
        argv[argc++] = isize;
    }
    if (im->features[0]) {
        argv[argc++] = "-O";
        argv[argc++] = (char *)im->features;
    }
    argv[argc++] = (char *)img;
    argv[argc] = NULL;
    ret = scn_run_cmd(argv, log, TOOL_TIMEOUT);
    if (ret) {
        char excerpt[512];

        scn_log_excerpt(log, excerpt, sizeof(excerpt));
        snprintf(why, why_len, "mke2fs failed (%s): %s",
                 ret < 0 ? scn_errno_name(ret) : "non-zero exit", excerpt);
        return ret < 0 ? ret : -EINVAL;
    }
    return edit_image(im, img, log, why, why_len);
}

int scn_fsck(const char *img, const char *log, char *why, size_t why_len)
{
    char out[300], excerpt[600];
    char *argv[] = {"e2fsck", "-fn", (char *)img, NULL};
    int ret;

    /* Its own file, not @log: the report is what a failure message quotes. */
    snprintf(out, sizeof(out), "%s.fsck", img);
    unlink(out);
    ret = scn_run_cmd(argv, out, TOOL_TIMEOUT);
    if (ret == 0)
        return 0;
    scn_log_excerpt(out, excerpt, sizeof(excerpt));
    snprintf(why, why_len, "e2fsck -fn: %s: %s", ret < 0 ? scn_errno_name(ret) : "not clean",
             excerpt);
    return -EUCLEAN;
}
