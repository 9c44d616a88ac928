/* Dropping what the kernel caches of an inode when the daemon changed it
 * behind the kernel's back (a mode cleared by a write, an ioctl).
 *
 * No page ranges: an O_DIRECT write bypasses the page cache, and the kernel
 * drops the range itself after every synchronous O_DIRECT write. FUSE
 * makes aio O_DIRECT writes asynchronous only with FUSE_ASYNC_DIO, after
 * which it would not (fstests generic/451); session.c never asks for it. */
#include "frontend/fe_int.h"

#include <errno.h>
#include <string.h>

#include "base/log.h"

/* Attributes only (offset < 0): the kernel takes no page lock for that, so
 * any worker may wait for it, whatever the others hold. */
void fe_inval_attr(fuse_req_t req, fuse_ino_t ino)
{
    int rc = fuse_lowlevel_notify_inval_inode(fe_ctx(req)->se, ino, -1, 0);

    /* -ENOENT: the kernel holds no such inode, so nothing cached. */
    if (rc < 0 && rc != -ENOENT)
        log_debug("inode %u: attribute invalidation: %s", fe_ext4_ino(ino), strerror(-rc));
}

void fe_inval_data(fuse_req_t req, fuse_ino_t ino)
{
    int rc = fuse_lowlevel_notify_inval_inode(fe_ctx(req)->se, ino, 0, 0);

    if (rc < 0 && rc != -ENOENT)
        log_debug("inode %u: page invalidation: %s", fe_ext4_ino(ino), strerror(-rc));
}
