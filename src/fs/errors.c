/* The errors= policy, and the checks every write operation shares. */
#include "fs/fs_internal.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int fs_check(struct uext4_fs *fs, uint32_t ino, int err, const char *func, int line)
{
    if (err != -EUCLEAN)
        return err;
    log_corrupt("corruption found in inode %u (%s:%d)", ino, func, line);
    fs_record_error(fs, ino, func, line);
    return err;
}

void fs_record_error(struct uext4_fs *fs, uint32_t ino, const char *func, int line)
{
    e2_record_error(fs->img, ino, func, line);
    switch (fs->opts.errors) {
    case UEXT4_ERRORS_PANIC:
        log_err("errors=panic: stopping");
        abort();
    case UEXT4_ERRORS_REMOUNT_RO:
        if (!e2_is_read_only(fs->img))
            log_err("errors=remount-ro: the image is now read-only");
        e2_set_read_only(fs->img);
        break;
    case UEXT4_ERRORS_CONTINUE:
    case UEXT4_ERRORS_DEFAULT:
        break;
    }
}

int fs_may_write(struct uext4_fs *fs)
{
    if (e2_is_read_only(fs->img))
        return -EROFS;
    /* A failed write of the image stops every change (e2_image_error). */
    int err = e2_image_error(fs->img);
    if (err)
        return err;
    /* Every change asks first, so this is where the commit learns of it. */
    atomic_store(&fs->dirty, true);
    return 0;
}

int fs_may_write_data(const struct e2_attr *a)
{
    return (a->flags & E2_FL_VERITY) ? -EPERM : 0;
}

void fs_now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}
