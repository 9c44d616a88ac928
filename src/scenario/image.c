/* Scenario images: made by mke2fs from the `image` header line with a fixed
 * UUID and hash seed, so runs are reproducible, and checked by e2fsck. */
#include "scenario/scn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCN_UUID      "5c3e7a10-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
#define SCN_HASH_SEED "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
#define TOOL_TIMEOUT  120

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
    return 0;
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
