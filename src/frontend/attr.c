/* Attributes: getattr, setattr, access, statfs. */
#include "frontend/fe_int.h"

#include <errno.h>

/* GETATTR, and statx(2)'s STATX, which reaches us as a GETATTR (wire.c). */
void fe_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct statx stx;
    struct stat st;
    int rc;

    if (fe_wire_is_statx()) {
        rc = uext4_statx(fe_fs(req), fe_ext4_ino(ino), &stx);
        fe_reply_statx(req, rc, &stx);
        return;
    }
    rc = uext4_getattr(fe_fs(req), fe_ext4_ino(ino), &st);
    fe_reply_attr(req, rc, &st);
}

/* FUSE_SET_ATTR_* -> UEXT4_SET_*. The kernel sends ATIME together with
 * ATIME_NOW for utimensat(UTIME_NOW) and touch; both are passed on, and the
 * core lets _NOW win (it also decides the permission rule from it: any
 * writer may set "now", only the owner may set a given time). KILL_SUID and
 * KILL_SGID never reach us: libfuse 3.14 only produces them for
 * handle_killpriv_v2, and with FUSE_CAP_HANDLE_KILLPRIV the core clears the
 * bits itself on write, truncate and chown. */
static unsigned fe_setattr_mask(int to_set)
{
    static const struct {
        int fuse;
        unsigned core;
    } map[] = {
        {FUSE_SET_ATTR_MODE, UEXT4_SET_MODE},
        {FUSE_SET_ATTR_UID, UEXT4_SET_UID},
        {FUSE_SET_ATTR_GID, UEXT4_SET_GID},
        {FUSE_SET_ATTR_SIZE, UEXT4_SET_SIZE},
        {FUSE_SET_ATTR_ATIME, UEXT4_SET_ATIME},
        {FUSE_SET_ATTR_MTIME, UEXT4_SET_MTIME},
        {FUSE_SET_ATTR_ATIME_NOW, UEXT4_SET_ATIME_NOW},
        {FUSE_SET_ATTR_MTIME_NOW, UEXT4_SET_MTIME_NOW},
        {FUSE_SET_ATTR_CTIME, UEXT4_SET_CTIME},
    };
    unsigned out = 0;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (to_set & map[i].fuse)
            out |= map[i].core;
    }
    return out;
}

/* With writeback_cache the kernel keeps mtime and ctime of regular files
 * itself and sends its values, never "now": with its flush of the times
 * (MTIME|CTIME and the handle of a file open for writing), with a size
 * change, and for utimensat(UTIME_NOW), where the mtime it sends is the
 * ctime it took at the same instant. For the permission rules such an mtime
 * is "now": whoever may write the file may set it, while the core stores an
 * explicit mtime only for the owner. An explicit time that is not one of
 * these (utimensat with a given mtime) stays the owner's. */
static bool fe_is_kernel_mtime(const struct stat *attr, int to_set, bool fh)
{
    if (!(to_set & FUSE_SET_ATTR_MTIME) || (to_set & FUSE_SET_ATTR_MTIME_NOW))
        return false;
    if (fh || (to_set & FUSE_SET_ATTR_SIZE))
        return true;
    return (to_set & FUSE_SET_ATTR_CTIME) && attr->st_mtim.tv_sec == attr->st_ctim.tv_sec &&
           attr->st_mtim.tv_nsec == attr->st_ctim.tv_nsec;
}

void fe_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi)
{
    struct uext4_fs *fs = fe_fs(req);
    /* With a file handle (ftruncate, the kernel's flush of the times) the
     * right to write was checked at open and must not be checked again. */
    unsigned mask = fe_setattr_mask(to_set) | (fi ? UEXT4_SET_FH : 0);
    struct fe_cred c;
    struct stat st;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_setattr(fs, &c.cr, fe_ext4_ino(ino), attr, mask, &st);
    /* The core has no "given value with the right of now": for a caller
     * who is not the owner the kernel's mtime is replaced by the core's
     * clock at this request (the ctime stays the kernel's). The refused
     * attempt changed nothing: the core checks before it writes. */
    if (rc == -EPERM && fe_ctx(req)->writeback_cache && fe_is_kernel_mtime(attr, to_set, fi))
        rc = uext4_setattr(fs, &c.cr, fe_ext4_ino(ino), attr, mask | UEXT4_SET_MTIME_NOW, &st);
    fe_cred_release(&c);
    if (rc == 0)
        fe_rec_setattr(fe_ctx(req)->rec, fe_ext4_ino(ino), mask, &st);
    fe_reply_attr(req, rc, &st);
}

void fe_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    struct fe_cred c;
    int rc;

    fe_cred_init(&c, req, true);
    rc = uext4_access(fe_fs(req), &c.cr, fe_ext4_ino(ino), mask);
    fe_cred_release(&c);
    fe_reply_status(req, rc);
}

void fe_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    int rc;

    rc = uext4_statfs(fe_fs(req), &sv);
    fe_reply_statfs(req, rc, &sv);
}
